import copy
import pickle
from unittest.mock import Mock

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.model_selection import GridSearchCV, cross_validate
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import MinMaxScaler
from skorch.callbacks import Callback, EpochScoring, GradientNormClipping
from skorch.dataset import ValidSplit

from sklearn_robust import AdversarialClassifier, TRADESClassifier
from sklearn_robust.attacks import PGD
from sklearn_robust.attacks._losses import kl_loss
from sklearn_robust.metrics import (
    make_robust_scorer,
    robust_accuracy_score,
    robust_correct,
)
from sklearn_robust.nn import MLP, SmallCNN
from sklearn_robust.utils import get_torch_view

FAST = dict(eps=0.1, n_steps=3, step_size=0.05, max_epochs=2, random_state=0)


@pytest.fixture(scope="module")
def trained_pair(digits_split):
    """Natural and PGD-AT nets on digits (read-only: do not refit)."""
    X_train, X_test, y_train, y_test = digits_split
    common = dict(eps=0.1, n_steps=7, step_size=0.03, max_epochs=20, random_state=0)
    natural = AdversarialClassifier(**{**common, "eps": 0.0}).fit(X_train, y_train)
    robust = AdversarialClassifier(**common).fit(X_train, y_train)
    return natural, robust


def test_adversarial_training_beats_natural_under_strong_attack(trained_pair,
                                                               digits_split):
    natural, robust = trained_pair
    _, X_test, _, y_test = digits_split
    nat = robust_accuracy_score(natural, X_test, y_test, eps=0.1)
    adv = robust_accuracy_score(robust, X_test, y_test, eps=0.1)
    assert robust.score(X_test, y_test) > 0.9
    assert adv > nat + 0.2, (nat, adv)


def test_trades_beats_natural_under_strong_attack(trained_pair, digits_split):
    natural, _ = trained_pair
    X_train, X_test, y_train, y_test = digits_split
    trades = TRADESClassifier(beta=6.0, eps=0.1, n_steps=7, step_size=0.03,
                              max_epochs=20, random_state=0).fit(X_train, y_train)
    nat = robust_accuracy_score(natural, X_test, y_test, eps=0.1)
    rob = robust_accuracy_score(trades, X_test, y_test, eps=0.1)
    assert trades.score(X_test, y_test) > 0.9
    assert rob > nat + 0.2, (nat, rob)


def test_pgd_at_equals_hand_written_madry_loop(small_digits):
    X, _, y, _ = small_digits
    X, y = X[:64], y[:64]
    torch.manual_seed(0)
    module = MLP(input_shape=(64,), n_classes=10, hidden_layer_sizes=(32,))
    eps, alpha, steps, lr = 0.1, 0.04, 3, 0.1
    clf = AdversarialClassifier(module=copy.deepcopy(module), eps=eps, n_steps=steps,
                                step_size=alpha, random_start=False,
                                optimizer=torch.optim.SGD, lr=lr, batch_size=32,
                                max_epochs=1, iterator_train__shuffle=False)
    clf.fit(X, y)

    opt = torch.optim.SGD(module.parameters(), lr=lr)
    Xt, yt = torch.tensor(X), torch.tensor(y)
    for start in (0, 32):
        xb, yb = Xt[start:start + 32], yt[start:start + 32]
        module.eval()
        xa = xb.clone()
        for _ in range(steps):
            xa.requires_grad_(True)
            loss = torch.nn.functional.cross_entropy(module(xa), yb, reduction="sum")
            (g,) = torch.autograd.grad(loss, xa)
            xa = torch.min(torch.max(xa.detach() + alpha * g.sign(), xb - eps),
                           xb + eps)
            xa = xa.clamp(0, 1)
        module.train()
        opt.zero_grad()
        torch.nn.functional.cross_entropy(module(xa), yb).backward()
        opt.step()
    for p, q in zip(module.parameters(), clf.module_.parameters()):
        torch.testing.assert_close(p, q)


def test_trades_loss_matches_formula(small_digits):
    X, _, y, _ = small_digits
    clf = TRADESClassifier(beta=3.0, **{**FAST, "max_epochs": 1}).fit(X, y)
    Xb, yb = torch.tensor(X[:16]), torch.tensor(y[:16])
    clf.attack_.set_params(random_state=3)
    loss, logits = clf.robust_loss(Xb, yb)
    clf.attack_.set_params(random_state=3)
    X_adv = clf.attack_.perturb(clf.module_, Xb, yb)
    assert float((X_adv - Xb).abs().max()) <= 0.1 + 1e-6
    clean = clf.module_(Xb)
    expected = (torch.nn.functional.cross_entropy(clean, yb)
                + 3.0 * kl_loss(clf.module_(X_adv), yb, clean).mean())
    torch.testing.assert_close(loss, expected)
    assert clf.attack_.loss == "kl" and clf.attack_.random_start == "normal"


def test_attack_runs_in_eval_mode_and_loss_in_train_mode(small_digits):
    X, _, y, _ = small_digits

    class Recorder(torch.nn.Module):
        def __init__(self, input_shape, n_classes):
            super().__init__()
            self.net = MLP(input_shape=input_shape, n_classes=n_classes, dropout=0.5)
            self.modes = []

        def forward(self, x):
            self.modes.append(self.training)
            return self.net(x)

    clf = AdversarialClassifier(module=Recorder, eps=0.1, n_steps=3, max_epochs=1,
                                batch_size=len(X), random_state=0).fit(X, y)
    assert clf.module_.modes == [False, False, False, True]


def test_string_labels_and_image_inputs(small_digits):
    X, X_test, y, y_test = small_digits
    names = np.array(["zero", "one", "two", "three", "four", "five", "six", "seven",
                      "eight", "nine"], dtype=object)
    clf = AdversarialClassifier(**FAST).fit(X.reshape(-1, 1, 8, 8), names[y])
    pred = clf.predict(X_test.reshape(-1, 1, 8, 8))
    assert set(pred) <= set(names)
    assert list(clf.classes_) == sorted(names)
    score = robust_accuracy_score(clf, X_test.reshape(-1, 1, 8, 8), names[y_test],
                                  eps=0.1, attack="pgd")
    assert 0.0 <= score <= clf.score(X_test.reshape(-1, 1, 8, 8), names[y_test])


def test_default_module_follows_input_shape(rng):
    X = rng.rand(20, 1, 28, 28).astype(np.float32)
    y = np.arange(20) % 2
    clf = AdversarialClassifier(**{**FAST, "max_epochs": 1}).fit(X, y)
    assert isinstance(clf.module_, SmallCNN)
    flat = AdversarialClassifier(**{**FAST, "max_epochs": 1}).fit(X.reshape(20, -1), y)
    assert isinstance(flat.module_, MLP)
    custom = AdversarialClassifier(module=SmallCNN, **{**FAST, "max_epochs": 1})
    custom.fit(X.reshape(20, -1), y)   # flat 784 features become 1x28x28 images
    assert isinstance(custom.module_, SmallCNN)


def test_random_state_reproducible_and_global_rng_untouched(small_digits):
    X, _, y, _ = small_digits
    state = torch.get_rng_state()
    a = AdversarialClassifier(**FAST).fit(X, y)
    assert torch.equal(torch.get_rng_state(), state)
    b = AdversarialClassifier(**FAST).fit(X, y)
    for p, q in zip(a.module_.parameters(), b.module_.parameters()):
        assert torch.equal(p, q)
    c = AdversarialClassifier(**{**FAST, "random_state": 1}).fit(X, y)
    assert not all(torch.equal(p, q) for p, q in
                   zip(a.module_.parameters(), c.module_.parameters()))


def test_inputs_not_modified(small_digits):
    X, _, y, _ = small_digits
    X64, y_copy = X.astype(np.float64), y.copy()
    X_before = X64.copy()
    clf = AdversarialClassifier(**FAST).fit(X64, y_copy)
    robust_accuracy_score(clf, X64, y_copy, eps=0.1, attack="pgd")
    np.testing.assert_array_equal(X64, X_before)
    np.testing.assert_array_equal(y_copy, y)


@pytest.mark.parametrize("make, error, match", [
    (lambda X, y: (np.where(np.eye(len(X), X.shape[1]) > 0, np.nan, X), y),
     ValueError, "NaN"),
    (lambda X, y: (np.where(np.eye(len(X), X.shape[1]) > 0, np.inf, X), y),
     ValueError, "infinity"),
    (lambda X, y: (X[:, 0], y), ValueError, "2D"),
    (lambda X, y: (X, y[:-3]), ValueError, "inconsistent"),
    (lambda X, y: (X * 3, y), ValueError, "clip range"),
    (lambda X, y: (X, np.zeros_like(y)), ValueError, "one class"),
    (lambda X, y: (X, y + 0.5), ValueError, "Unknown label type"),
])
def test_bad_fit_input(small_digits, make, error, match):
    X, _, y, _ = small_digits
    X_bad, y_bad = make(X, y)
    with pytest.raises(error, match=match):
        AdversarialClassifier(**FAST).fit(X_bad, y_bad)


@pytest.mark.parametrize("params, error, match", [
    ({"eps": -0.1}, ValueError, "eps"),
    ({"norm": "l3"}, ValueError, "norm"),
    ({"n_steps": 0}, ValueError, "n_steps"),
    ({"clip_min": 1.0, "clip_max": 0.0}, ValueError, "clip_min"),
    ({"attack": "pgd"}, TypeError, "attack"),
])
def test_bad_parameters(small_digits, params, error, match):
    X, _, y, _ = small_digits
    with pytest.raises(error, match=match):
        AdversarialClassifier(**{**FAST, **params}).fit(X, y)
    with pytest.raises(ValueError, match="beta"):
        TRADESClassifier(beta=-1.0, **FAST).fit(X, y)


def test_predict_errors(small_digits):
    X, X_test, y, _ = small_digits
    with pytest.raises(NotFittedError):
        AdversarialClassifier().predict(X_test)
    clf = AdversarialClassifier(**FAST).fit(X, y)
    with pytest.raises(ValueError, match="features"):
        clf.predict(X_test[:, :10])
    with pytest.raises(ValueError, match="not seen"):
        clf.partial_fit(X[:10], np.full(10, 42))


def test_partial_fit_continues_training(small_digits):
    X, _, y, _ = small_digits
    clf = AdversarialClassifier(**FAST).fit(X, y)
    n = len(clf.history)
    clf.partial_fit(X, y)
    assert len(clf.history) == n + FAST["max_epochs"]


@pytest.mark.parametrize("relabel", [lambda y: y, lambda y: y + 3,
                                     lambda y: np.array(list("abcdefghij"))[y]],
                         ids=["codes", "shifted-ints", "strings"])
def test_internal_validation_split_and_valid_acc(small_digits, relabel):
    X, _, y, _ = small_digits
    clf = AdversarialClassifier(train_split=ValidSplit(3, stratified=True),
                                **{**FAST, "max_epochs": 4})
    clf.fit(X, relabel(y))
    accs = clf.history[:, "valid_acc"]
    assert all(0 <= v <= 1 for v in accs)
    # a wrong label mapping would score about chance (0.1)
    assert accs[-1] > 0.5


def test_pickle_and_clone(small_digits):
    X, X_test, y, _ = small_digits
    clf = AdversarialClassifier(**FAST).fit(X, y)
    again = pickle.loads(pickle.dumps(clf))
    np.testing.assert_allclose(again.predict_proba(X_test), clf.predict_proba(X_test))
    fresh = clone(clf)
    assert fresh.get_params()["eps"] == 0.1 and not hasattr(fresh, "module_")


def test_set_params_changes_next_fit_attack(small_digits):
    X, _, y, _ = small_digits
    clf = AdversarialClassifier(**FAST).fit(X, y)
    assert clf.attack_.eps == 0.1
    clf.set_params(eps=0.2, n_steps=2)
    clf.fit(X, y)
    assert clf.attack_.eps == 0.2 and clf.attack_.n_steps == 2


def test_user_attack_takes_threat_model(small_digits):
    X, _, y, _ = small_digits
    attack = PGD(eps=0.9, n_steps=2, loss="cw", clip_min=None)
    clf = AdversarialClassifier(attack=attack, **FAST).fit(X, y)
    assert clf.attack_.loss == "cw" and clf.attack_.n_steps == 2
    assert clf.attack_.eps == 0.1 and clf.attack_.clip_min == 0.0
    assert attack.eps == 0.9  # the user's object is untouched


def test_skorch_hooks_still_fire(small_digits):
    X, _, y, _ = small_digits
    spy = Mock(spec=Callback)
    clf = AdversarialClassifier(callbacks=[("spy", spy),
                                           ("clip", GradientNormClipping(1.0))],
                                **FAST)
    clf.fit(X, y)
    n_batches = int(np.ceil(len(X) / 128)) * FAST["max_epochs"]
    assert spy.on_grad_computed.call_count == n_batches


def test_grid_search_over_eps_with_robust_scorer(small_digits, check_grid_search):
    X, _, y, _ = small_digits
    scorer = make_robust_scorer(eps=0.1, attack="pgd")
    search = GridSearchCV(AdversarialClassifier(**FAST), {"eps": [0.0, 0.1]},
                          scoring={"robust": scorer, "accuracy": "accuracy"},
                          refit="robust", cv=2)
    search.fit(X, y)
    # refit="robust": the refit candidate is the most robust one (measured on
    # seed 0, the most accurate one is the other, eps=0.0)
    check_grid_search(search, X, y)
    assert np.all(np.isfinite(search.cv_results_["mean_test_robust"]))
    assert search.best_estimator_.attack_.eps == search.best_params_["eps"]
    pickle.loads(pickle.dumps(search))


def test_cross_validate_and_epoch_scoring(small_digits):
    X, _, y, _ = small_digits
    scorer = make_robust_scorer(eps=0.1, attack="pgd")
    res = cross_validate(AdversarialClassifier(**FAST), X, y, cv=2,
                         scoring={"accuracy": "accuracy", "robust": scorer})
    assert np.all(res["test_robust"] <= res["test_accuracy"] + 1e-12)
    clf = AdversarialClassifier(
        callbacks=[("valid_robust_acc", EpochScoring(
            scorer, lower_is_better=False, use_caching=False, on_train=True,
            name="train_robust_acc"))], **FAST)
    clf.fit(X, y)
    values = clf.history[:, "train_robust_acc"]
    assert len(values) == FAST["max_epochs"] and all(0 <= v <= 1 for v in values)
    pickle.loads(pickle.dumps(clf))


def test_robust_score_of_pipeline_attacks_raw_inputs(small_digits):
    X, X_test, y, y_test = small_digits
    # raw inputs in [0, 0.5]: the scaler doubles them, far from the identity
    X, X_test = 0.5 * X, 0.5 * X_test
    pipe = make_pipeline(MinMaxScaler(), AdversarialClassifier(**FAST)).fit(X, y)
    attack = PGD(eps=0.1, n_steps=3, step_size=0.05, random_start=False)
    X_adv = attack.perturb(get_torch_view(pipe), X_test, y_test)
    # the eps-ball is in the raw input space, before the scaler
    assert np.abs(X_adv - X_test).max() <= 0.1 + 1e-6
    assert np.abs(pipe[0].transform(X_adv) - pipe[0].transform(X_test)).max() > 0.15
    # the scorer attacks the whole pipeline: its verdicts are those of the real
    # pipeline on these raw-space adversarial inputs
    correct = robust_correct(pipe, X_test, y_test, eps=0.1, attack=attack)
    expected = (pipe.predict(X_test) == y_test) & (pipe.predict(X_adv) == y_test)
    np.testing.assert_array_equal(correct, expected)
    score = robust_accuracy_score(pipe, X_test, y_test, eps=0.1, attack=attack)
    assert score == pytest.approx(expected.mean())
    assert score < pipe.score(X_test, y_test)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no cuda device")
def test_cuda_fit_predict_and_move_to_cpu(small_digits):
    X, X_test, y, y_test = small_digits
    clf = AdversarialClassifier(device="cuda", **FAST).fit(X, y)
    assert next(clf.module_.parameters()).is_cuda
    robust_accuracy_score(clf, X_test, y_test, eps=0.1, attack="pgd")
    cpu = pickle.loads(pickle.dumps(clf))
    cpu.set_params(device="cpu")
    cpu.module_.to("cpu")
    np.testing.assert_allclose(cpu.predict_proba(X_test), clf.predict_proba(X_test),
                               atol=1e-5)
