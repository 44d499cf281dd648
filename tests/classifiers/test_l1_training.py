"""Training the classifiers and the dataset learners with the L1 threat model."""

import functools

import numpy as np
import pytest

from sklearn_robust import (
    AdversarialClassifier,
    GAIRATClassifier,
    GAIRTRADESClassifier,
    LangevinAdvClassifier,
    LipschitzDropoutClassifier,
    NTKRobustDistiller,
    TRADESClassifier,
    TriLevelDatasetLearner,
)
from sklearn_robust.attacks import APGD, PGD
from sklearn_robust.metrics import robust_accuracy_score
from sklearn_robust.nn import MLP

L1 = dict(eps=2.0, norm="l1", max_epochs=2, random_state=0)
STEPS = dict(n_steps=3, step_size=1.0)  # of the default attacks


@pytest.mark.parametrize("cls, params", [
    (AdversarialClassifier, {}),
    (TRADESClassifier, {}),
    (GAIRATClassifier, {}),
    (GAIRTRADESClassifier, {}),
    (LangevinAdvClassifier, {}),
    (LipschitzDropoutClassifier, {"method": "llr"}),
    (LipschitzDropoutClassifier, {"method": "at"}),
    (AdversarialClassifier, {"attack": APGD(n_iter=5, use_largereps=True)}),
], ids=lambda v: getattr(v, "__name__", None) or "-".join(map(str, v.values())))
def test_classifiers_train_with_the_l1_threat_model(cls, params, small_digits):
    X, X_test, y, y_test = small_digits
    steps = {} if "attack" in params else STEPS  # an attack keeps its own steps
    est = cls(**L1, **steps, **params).fit(X, y)
    assert est.attack_.norm == "l1" and est.attack_.eps == 2.0
    assert est.score(X_test, y_test) > 0.2  # above chance (0.1) after 2 epochs


def test_l1_adversarial_training_raises_l1_robust_accuracy(small_digits):
    X, X_test, y, y_test = small_digits
    common = dict(eps=2.0, norm="l1", n_steps=7, step_size=0.6, max_epochs=30,
                  random_state=0)
    natural = AdversarialClassifier(**{**common, "eps": 0.0}).fit(X, y)
    robust = AdversarialClassifier(**common).fit(X, y)
    attack = PGD(n_steps=50, random_state=0)
    nat = robust_accuracy_score(natural, X_test, y_test, eps=2.0, norm="l1",
                                attack=attack)
    rob = robust_accuracy_score(robust, X_test, y_test, eps=2.0, norm="l1",
                                attack=attack)
    assert rob > nat + 0.15, (nat, rob)


# two outer iterations of a linear inner model: it may stay near chance
@pytest.mark.filterwarnings(
    "ignore::sklearn_robust.exceptions.DatasetLearningWarning")
def test_dataset_learners_with_the_l1_threat_model(small_digits):
    X, _, y, _ = small_digits
    X, y = X[:80], y[:80]
    trilevel = TriLevelDatasetLearner(
        eps=2.0, norm="l1", module=functools.partial(MLP, hidden_layer_sizes=()),
        max_iter=2, inner_steps=2, inner_lr=0.5, n_steps=2, batch_size=32,
        random_state=0)
    X_new = trilevel.fit_transform(X, y)
    assert X_new.shape == X.shape and np.isfinite(X_new).all()
    assert trilevel._make_attack("ce", np.random.RandomState(0)).norm == "l1"
    distiller = NTKRobustDistiller(eps=2.0, norm="l1", max_iter=2,
                                   target_batch_size=40, n_steps=2,
                                   random_state=0).fit(X, y)
    assert np.isfinite(distiller.transform(X)).all()
