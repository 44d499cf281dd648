import pickle

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer, MinMaxScaler, StandardScaler

from sklearn_robust import AdversarialClassifier
from sklearn_robust.attacks import FGSM, PGD
from sklearn_robust.metrics import (
    RobustScorer,
    make_robust_scorer,
    robust_accuracy_score,
    robust_correct,
)
from sklearn_robust.utils._views import get_torch_view

FAST = dict(eps=0.1, n_steps=3, step_size=0.05, max_epochs=3, random_state=0)


@pytest.fixture(scope="module")
def natural_net(small_digits):
    X, _, y, _ = small_digits
    return AdversarialClassifier(**{**FAST, "eps": 0.0, "max_epochs": 10}).fit(X, y)


def test_eps_zero_is_clean_accuracy(natural_net, small_digits):
    _, X_test, _, y_test = small_digits
    assert robust_accuracy_score(natural_net, X_test, y_test, eps=0.0) == \
        pytest.approx(natural_net.score(X_test, y_test))


def test_cascade_is_worst_case_per_sample(natural_net, small_digits):
    _, X_test, _, y_test = small_digits
    # deterministic attacks: each point's fate does not depend on its batch-mates
    attacks = [FGSM(eps=0.05), PGD(eps=0.05, n_steps=5, loss="cw", random_start=False)]
    each = [robust_correct(natural_net, X_test, y_test, eps=0.05, attack=a)
            for a in attacks]
    both = robust_correct(natural_net, X_test, y_test, eps=0.05, attack=attacks)
    # a point survives the cascade exactly when it survives every attack
    np.testing.assert_array_equal(both, each[0] & each[1])
    assert both.sum() <= min(e.sum() for e in each)
    clean = natural_net.predict(X_test) == y_test
    assert np.all(both <= clean)


def test_default_is_stronger_than_fgsm(natural_net, small_digits):
    _, X_test, _, y_test = small_digits
    strong = robust_accuracy_score(natural_net, X_test, y_test, eps=0.1)
    weak = robust_accuracy_score(natural_net, X_test, y_test, eps=0.1,
                                 attack=FGSM())
    assert strong <= weak
    assert strong < natural_net.score(X_test, y_test) - 0.2


def test_scorer_threat_model_overrides_attack(natural_net, small_digits):
    _, X_test, _, y_test = small_digits
    tiny = robust_accuracy_score(natural_net, X_test, y_test, eps=1e-4,
                                 attack=PGD(eps=0.5))
    assert tiny == pytest.approx(natural_net.score(X_test, y_test), abs=0.02)


def test_scorer_is_picklable_and_sample_weighted(natural_net, small_digits):
    _, X_test, _, y_test = small_digits
    scorer = pickle.loads(pickle.dumps(make_robust_scorer(eps=0.05, attack="pgd")))
    assert isinstance(scorer, RobustScorer)
    w = np.zeros(len(y_test))
    correct = robust_correct(natural_net, X_test, y_test, eps=0.05, attack="pgd")
    w[np.flatnonzero(correct)[:3]] = 1.0
    assert scorer(natural_net, X_test, y_test, sample_weight=w) == 1.0


def test_pipeline_view_matches_pipeline(small_digits):
    X, X_test, y, _ = small_digits
    for scaler in (StandardScaler(), MinMaxScaler(), StandardScaler(with_mean=False)):
        pipe = make_pipeline(scaler, AdversarialClassifier(
            **{**FAST, "clip_min": None, "clip_max": None})).fit(X, y)
        view = get_torch_view(pipe)
        with torch.no_grad():
            logits = view.eval()(torch.tensor(X_test)).numpy()
        np.testing.assert_allclose(logits, pipe.decision_function(X_test), atol=1e-4)


@pytest.mark.parametrize("kwargs, error, match", [
    ({"eps": -1.0}, ValueError, "eps"),
    ({"eps": 0.1, "norm": "l3"}, ValueError, "norm"),
    ({"eps": 0.1, "attack": "autoattack"}, ValueError, "preset"),
    ({"eps": 0.1, "attack": []}, ValueError, "empty"),
    ({"eps": 0.1, "attack": 3}, TypeError, "attack"),
    ({"eps": 0.1, "batch_size": 0}, ValueError, "batch_size"),
])
def test_bad_arguments(natural_net, small_digits, kwargs, error, match):
    _, X_test, _, y_test = small_digits
    with pytest.raises(error, match=match):
        robust_accuracy_score(natural_net, X_test, y_test, **kwargs)


def test_bad_data(natural_net, small_digits):
    _, X_test, _, y_test = small_digits
    with pytest.raises(ValueError, match="unseen"):
        robust_accuracy_score(natural_net, X_test, y_test + 100, eps=0.1)
    with pytest.raises(ValueError, match="clip range"):
        robust_accuracy_score(natural_net, X_test * 5, y_test, eps=0.1)
    with pytest.raises(ValueError, match="one label per row"):
        robust_accuracy_score(natural_net, X_test, y_test[:5], eps=0.1)


def test_pipeline_with_unsupported_step_is_a_clear_error(small_digits):
    X, X_test, y, y_test = small_digits
    pipe = make_pipeline(FunctionTransformer(np.sqrt), LogisticRegression(max_iter=50))
    pipe.fit(X, y)
    with pytest.raises(TypeError, match="no exact torch equivalent"):
        get_torch_view(pipe)


def test_non_differentiable_estimator_gets_black_box_attack_with_warning(small_digits):
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.neighbors import KNeighborsClassifier

    from sklearn_robust.exceptions import BlackBoxAttackWarning

    X, X_test, y, y_test = small_digits
    for est in (RandomForestClassifier(n_estimators=10, random_state=0),
                KNeighborsClassifier(3)):
        est.fit(X, y)
        with pytest.warns(BlackBoxAttackWarning, match="Square"):
            robust = robust_accuracy_score(est, X_test[:40], y_test[:40], eps=0.2,
                                           attack="pgd")
        # a real attack, not a silent zero or a copy of clean accuracy
        assert 0.0 <= robust < est.score(X_test[:40], y_test[:40]) - 0.1


def test_estimator_without_scores_is_a_clear_error(small_digits):
    from sklearn.base import BaseEstimator, ClassifierMixin

    class PredictOnly(ClassifierMixin, BaseEstimator):
        def fit(self, X, y):
            self.classes_ = np.unique(y)
            return self

        def predict(self, X):
            return np.zeros(len(X), dtype=int)

    X, X_test, y, y_test = small_digits
    with pytest.raises(TypeError, match="decision_function or predict_proba"):
        robust_accuracy_score(PredictOnly().fit(X, y), X_test, y_test, eps=0.1)


def test_plain_torch_module_is_scored_with_class_index_labels(small_digits):
    from sklearn.base import clone

    from sklearn_robust.attacks import cascade

    X_train, X_test, y_train, y_test = small_digits
    torch.manual_seed(0)
    module = torch.nn.Sequential(torch.nn.Linear(64, 32), torch.nn.ReLU(),
                                 torch.nn.Linear(32, 10))
    opt = torch.optim.Adam(module.parameters(), lr=1e-2)
    xt, yt = torch.as_tensor(X_train, dtype=torch.float32), torch.as_tensor(y_train)
    for _ in range(100):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(module(xt), yt).backward()
        opt.step()
    attack = PGD(eps=0.1, n_steps=5, random_state=0)
    score = robust_accuracy_score(module, X_test, y_test, eps=0.1, attack=attack)
    _, robust = cascade([clone(attack)], module, X_test.astype(np.float32), y_test)
    assert score == pytest.approx(robust.mean())
    clean = (module(torch.as_tensor(X_test, dtype=torch.float32)).argmax(1).numpy()
             == y_test).mean()
    assert 0 < score < clean
    with pytest.raises(ValueError, match="unseen"):
        robust_accuracy_score(module, X_test, y_test + 10, eps=0.1, attack=attack)
    with pytest.raises(ValueError, match="module failed"):
        robust_accuracy_score(module, X_test[:, :10], y_test, eps=0.1, attack=attack)
