"""GAIRATClassifier and GAIRTRADESClassifier (Zhang et al., ICLR 2021)."""

import math
import pickle
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV
from skorch.dataset import ValidSplit

from sklearn_robust import (
    AdversarialClassifier,
    GAIRATClassifier,
    GAIRTRADESClassifier,
    TRADESClassifier,
)
from sklearn_robust.attacks import PGD
from sklearn_robust.attacks._losses import kl_loss
from sklearn_robust.classifiers import gair_weights
from sklearn_robust.classifiers._gairat import _log_gair_weights, _normalised
from sklearn_robust.metrics import make_robust_scorer, robust_accuracy_score

INF = float("inf")
FAST = dict(eps=0.1, n_steps=3, step_size=0.05, max_epochs=2, random_state=0)

# methods.md section 4, weights for K=10 before normalisation (from GAIR.py)
TABLE_K10 = {
    -1.0: [.9997, .9975, .9820, .8808, .5, .1192, .0180, .0025, 3.4e-4, 4.5e-5, 6e-6],
    0.0: [1.0, .9997, .9975, .9820, .8808, .5, .1192, .0180, .0025, 3.4e-4, 4.5e-5],
}


def _equal_params(a, b):
    return all(torch.equal(p, q) for p, q in zip(a.module_.parameters(),
                                                 b.module_.parameters()))


class Threshold(torch.nn.Module):
    """1-D model: class 1 iff x > 0.5; PGD of step 0.1 flips points at known steps."""

    def __init__(self):
        super().__init__()
        self.scale = torch.nn.Parameter(torch.tensor(10.0))

    def forward(self, x):
        z = x[:, :1] - 0.5
        return torch.cat([-z, z], dim=1) * self.scale


# ------------------------------------------------------------------- weights
@pytest.mark.parametrize("lam", [-1.0, 0.0])
def test_weight_table_of_methods_md_for_k10(lam):
    w = gair_weights(np.arange(11), n_steps=10, gair_lambda=lam)
    np.testing.assert_allclose(w, TABLE_K10[lam], atol=1e-3)
    # GAIR.py's floor(K/2) form, identical for even K
    half = 10 // 2
    ref = (np.tanh(lam + (half - np.arange(11)) * 5 / half) + 1) / 2
    np.testing.assert_allclose(w, ref, rtol=1e-9)


def test_weight_functions_and_lambda_inf():
    k = np.arange(5)
    z = -1.0 + 5 * (1 - 2 * k / 4)
    np.testing.assert_allclose(gair_weights(k, 4, -1.0, "sigmoid"),
                               1 / (1 + np.exp(-z)))
    np.testing.assert_allclose(gair_weights(k, 4, -1.0, "discrete"), (5 - k) / 5)
    for fn in ("tanh", "sigmoid", "discrete"):
        np.testing.assert_array_equal(gair_weights(k, 4, INF, fn), np.ones(5))
    # K/2 (not floor(K/2)) keeps odd K centred: kappa and K - kappa are symmetric
    w = gair_weights(np.arange(4), 3, 0.0)
    np.testing.assert_allclose(w + w[::-1], 1.0)
    assert np.isfinite(gair_weights([0, 1], 1, -1.0)).all()   # K=1: no division by 0
    with pytest.raises(ValueError, match="kappa"):
        gair_weights([11], 10)


def test_batch_weights_sum_to_batch_size():
    log_w = torch.log(torch.tensor(gair_weights([0, 3, 5, 7, 10, 10], 10, -1.0)))
    w = _normalised(log_w, 6)
    assert float(w.sum()) == pytest.approx(6.0, rel=1e-12)
    np.testing.assert_allclose((w / w[0]).numpy(), (log_w - log_w[0]).exp().numpy(),
                               rtol=1e-10)
    # every weight underflows (lambda = -1000): still normalised, equal kappa equal w
    tiny = _log_gair_weights(torch.tensor([10, 10, 9]), 10, -1000.0, "tanh")
    assert float(tiny.exp().max()) == 0.0
    w = _normalised(tiny, 3)
    assert torch.isfinite(w).all() and float(w.sum()) == pytest.approx(3.0)
    assert float(w[0]) == float(w[1])
    # zero weights (log -inf) give zeros, not NaN; no rows give no rows
    zeros = _normalised(torch.full((3,), -math.inf, dtype=torch.float64), 3)
    assert zeros.tolist() == [0.0, 0.0, 0.0]
    assert _normalised(torch.zeros(0, dtype=torch.float64), 0).shape == (0,)


def test_classifier_weights_use_kappa_of_the_attack():
    X = np.array([[0.1], [0.3], [0.45], [0.85], [0.65]], dtype=np.float32)
    y = np.array([0, 0, 0, 1, 1])
    clf = GAIRATClassifier(module=Threshold, eps=1.0, n_steps=8, step_size=0.1,
                           random_start=False, max_epochs=1, burn_in_epochs=0,
                           optimizer=torch.optim.SGD, lr=0.0).fit(X, y)
    Xt, yt = torch.tensor(X), torch.tensor(y)
    X_adv, info = clf.attack_.perturb(clf.module_, Xt, yt, return_info=True)
    kappa = info["n_correct_steps"]
    assert kappa.tolist() == [5, 3, 1, 4, 2]          # known flips of the threshold
    w = gair_weights(kappa.numpy(), 8, -1.0)
    h = clf.history[-1]
    assert clf.kappa_max_ == 8
    assert h["gair_kappa_hist"] == np.bincount(kappa.numpy(), minlength=9).tolist()
    assert h["gair_kappa_mean"] == pytest.approx(3.0)
    assert h["gair_weight_min"] == pytest.approx(w.min())
    assert h["gair_weight_max"] == pytest.approx(w.max())
    assert h["gair_weight_mean"] == pytest.approx(w.mean())
    assert h["gair_weight_std"] == pytest.approx(w.std())
    assert h["gair_ess"] == pytest.approx(w.sum() ** 2 / (5 * (w ** 2).sum()))
    # the batch loss is sum_i w_i CE_i / sum_i w_i on the attack's examples
    loss, _ = clf.robust_loss(Xt, yt)
    ce = F.cross_entropy(clf.module_(X_adv), yt, reduction="none").double()
    expected = (torch.tensor(w) * ce).sum() / w.sum()
    assert float(loss.detach()) == pytest.approx(float(expected.detach()), rel=1e-5)


# ---------------------------------------------------------------- equivalence
@pytest.mark.parametrize("params", [dict(gair_lambda=INF, burn_in_epochs=0),
                                    dict(gair_lambda=-1.0, burn_in_epochs=2)])
def test_lambda_inf_or_full_burn_in_equals_pgd_at(small_digits, params):
    X, _, y, _ = small_digits
    common = dict(FAST, batch_size=64)
    at = AdversarialClassifier(**common).fit(X[:128], y[:128])
    gairat = GAIRATClassifier(**params, **common).fit(X[:128], y[:128])
    assert _equal_params(at, gairat)
    assert gairat.history[:, "gair_reweighting"] == [False, False]


def test_gair_trades_with_lambda_inf_equals_trades(small_digits):
    X, _, y, _ = small_digits
    common = dict(FAST, batch_size=64, beta=3.0)
    trades = TRADESClassifier(**common).fit(X[:128], y[:128])
    gair = GAIRTRADESClassifier(gair_lambda=INF, burn_in_epochs=0, **common).fit(
        X[:128], y[:128])
    assert _equal_params(trades, gair)


def test_gair_trades_loss_matches_formula(small_digits):
    X, _, y, _ = small_digits
    clf = GAIRTRADESClassifier(beta=3.0, gair_lambda=0.0, burn_in_epochs=0,
                               **{**FAST, "max_epochs": 1}).fit(X, y)
    assert clf.reweighting_ and clf.cw_attack_.loss == "cw"
    assert clf.attack_.loss == "kl" and clf.attack_.random_start == "normal"
    Xb, yb = torch.tensor(X[:32]), torch.tensor(y[:32])
    clf.attack_.set_params(random_state=3)
    clf.cw_attack_.set_params(random_state=4)
    loss, _ = clf.robust_loss(Xb, yb)
    clf.attack_.set_params(random_state=3)
    clf.cw_attack_.set_params(random_state=4)
    X_adv, info = clf.attack_.perturb(clf.module_, Xb, yb, return_info=True)
    X_cw = clf.cw_attack_.perturb(clf.module_, Xb, yb)
    w = torch.tensor(gair_weights(info["n_correct_steps"].numpy(), 3, 0.0),
                     dtype=torch.float32)
    clean = clf.module_(Xb)
    robust = (w * kl_loss(clf.module_(X_adv), yb, clean)
              + (1 - w) * kl_loss(clf.module_(X_cw), yb, clean))
    expected = F.cross_entropy(clean, yb) + 3.0 * robust.mean()
    torch.testing.assert_close(loss, expected)


# ------------------------------------------------------------ burn-in, lambda
def test_burn_in_switches_after_burn_in_epochs(small_digits, capsys):
    X, _, y, _ = small_digits
    for burn_in in (2, 0.5):
        clf = GAIRATClassifier(burn_in_epochs=burn_in, verbose=int(burn_in == 2),
                               **{**FAST, "max_epochs": 4, "n_steps": 2}).fit(X, y)
        assert clf.n_burn_in_epochs() == 2
        h = clf.history
        assert h[:, "gair_reweighting"] == [False, False, True, True]
        assert h[:, "gair_lambda"] == [INF, INF, -1.0, -1.0]
        for epoch in (0, 1):   # uniform weights during the burn-in
            assert h[epoch, "gair_weight_min"] == h[epoch, "gair_weight_max"] == 1.0
            assert h[epoch, "gair_weight_std"] == 0.0 and h[epoch, "gair_ess"] == 1.0
        for epoch in (2, 3):   # reweighting: every finite-lambda weight is < 1
            assert h[epoch, "gair_weight_max"] < 1.0
            assert h[epoch, "gair_ess"] < 1.0
        for epoch in range(4):
            hist = h[epoch, "gair_kappa_hist"]
            assert len(hist) == 3 and sum(hist) == len(X)
    assert "gair_lambda" in capsys.readouterr().out


def test_lambda_schedules():
    epochs = [1, 60, 61, 89, 90, 109, 110, 120]
    clf = GAIRATClassifier(gair_lambda=-1.0, lambda_max=10.0, max_epochs=120)
    assert [clf.lambda_for_epoch(e) for e in epochs] == [INF, INF] + [-1.0] * 6
    clf.set_params(lambda_schedule="piecewise")
    assert [clf.lambda_for_epoch(e) for e in epochs] == [
        INF, INF, -1.0, -1.0, -2.0, -2.0, -2.5, -2.5]
    clf.set_params(lambda_schedule="linear")
    got = [clf.lambda_for_epoch(e) for e in epochs]
    assert got[:2] == [INF, INF]
    np.testing.assert_allclose(got[2:], [10 - e / 120 * 11 for e in epochs[2:]])
    assert got[-1] == pytest.approx(-1.0)
    assert clf.lambda_for_epoch(200) == pytest.approx(-1.0)   # partial_fit beyond E
    for schedule in ("fixed", "linear", "piecewise"):
        clf.set_params(lambda_schedule=schedule, gair_lambda=INF)
        assert clf.lambda_for_epoch(120) == INF
    # the schedule reaches the history of a fit
    fit = GAIRATClassifier(lambda_schedule="linear", gair_lambda=0.0, lambda_max=4.0,
                           burn_in_epochs=1, **{**FAST, "max_epochs": 4,
                                                "n_steps": 1})
    X = np.random.RandomState(0).rand(40, 5).astype(np.float32)
    fit.fit(X, np.arange(40) % 2)
    assert fit.history[:, "gair_lambda"] == [INF, 2.0, 1.0, 0.0]
    assert fit.current_lambda_ == 0.0


# ------------------------------------------------- lambda_ -> gair_lambda
@pytest.mark.parametrize("cls", [GAIRATClassifier, GAIRTRADESClassifier])
def test_deprecated_lambda_keyword(cls, small_digits):
    X, _, y, _ = small_digits
    with pytest.warns(FutureWarning, match=r"lambda_ .*renamed to gair_lambda.*0\.3"):
        old = cls(lambda_=0.0, burn_in_epochs=0, **FAST)
    new = cls(gair_lambda=0.0, burn_in_epochs=0, **FAST)
    assert old.get_params().keys() == new.get_params().keys()
    assert "lambda_" not in old.get_params()
    assert old.get_params()["gair_lambda"] == 0.0
    with pytest.warns(FutureWarning, match="gair_lambda"):
        assert old.lambda_ == 0.0
    old.fit(X[:100], y[:100])
    new.fit(X[:100], y[:100])
    np.testing.assert_array_equal(old.predict_proba(X[:20]), new.predict_proba(X[:20]))
    assert old.history[:, "gair_lambda"] == new.history[:, "gair_lambda"]


def test_deprecated_lambda_in_set_params_and_gair_weights():
    clf = GAIRATClassifier(**FAST)
    with pytest.warns(FutureWarning, match="gair_lambda"):
        clf.set_params(lambda_=2.0)
    assert clf.gair_lambda == 2.0 and clone(clf).gair_lambda == 2.0
    with pytest.warns(FutureWarning, match="gair_lambda"):
        old = gair_weights(np.arange(5), n_steps=4, lambda_=0.5)
    np.testing.assert_array_equal(old, gair_weights(np.arange(5), n_steps=4,
                                                    gair_lambda=0.5))


# ------------------------------------------------------- sklearn integration
def test_clone_pickle_and_grid_search_over_lambda(small_digits, check_grid_search):
    X, _, y, _ = small_digits
    clf = GAIRATClassifier(gair_lambda=0.5, **FAST)
    assert clf.get_params()["gair_lambda"] == 0.5
    assert clone(clf).gair_lambda == 0.5
    search = GridSearchCV(GAIRATClassifier(burn_in_epochs=1, **FAST),
                          {"gair_lambda": [-1.0, INF]},
                          scoring=make_robust_scorer(eps=0.1, attack="pgd"), cv=2)
    search.fit(X, y)
    check_grid_search(search, X, y)
    assert np.all(np.isfinite(search.cv_results_["mean_test_score"]))
    best = pickle.loads(pickle.dumps(search.best_estimator_))
    assert best.gair_lambda == search.best_params_["gair_lambda"]
    np.testing.assert_allclose(best.predict_proba(X[:5]),
                               search.best_estimator_.predict_proba(X[:5]))


def test_gairat_beats_natural_training_under_strong_attack(digits_split):
    X_train, X_test, y_train, y_test = digits_split
    X_eval, y_eval = X_test[:150], y_test[:150]   # the default attack is AutoAttack
    # natural training as in test_classifiers.py (eps=0: no attack, cheap)
    natural = AdversarialClassifier(eps=0.0, max_epochs=20, random_state=0).fit(
        X_train, y_train)
    gairat = GAIRATClassifier(eps=0.1, n_steps=5, step_size=0.04, max_epochs=16,
                              random_state=0).fit(X_train, y_train)
    assert gairat.history[:, "gair_reweighting"] == [False] * 8 + [True] * 8
    nat = robust_accuracy_score(natural, X_eval, y_eval, eps=0.1)
    rob = robust_accuracy_score(gairat, X_eval, y_eval, eps=0.1)
    assert gairat.score(X_eval, y_eval) > 0.85
    assert rob > nat + 0.2, (nat, rob)


# ------------------------------------------------------------- sample weights
def test_integer_sample_weights_equal_repeated_samples(small_digits):
    X, _, y, _ = small_digits
    X, y = X[:150], y[:150]
    sw = np.random.RandomState(0).randint(0, 4, len(X))
    # deterministic attack, one full batch, no shuffling: exactly the same loss
    params = dict(eps=0.1, n_steps=3, step_size=0.05, random_start=False,
                  burn_in_epochs=1, max_epochs=2, batch_size=1000, lr=0.5,
                  optimizer=torch.optim.SGD, iterator_train__shuffle=False,
                  random_state=0)
    weighted = GAIRATClassifier(**params).fit(X, y, sample_weight=sw)
    repeated = GAIRATClassifier(**params).fit(X.repeat(sw, axis=0), y.repeat(sw))
    for p, q in zip(weighted.module_.parameters(), repeated.module_.parameters()):
        torch.testing.assert_close(p, q, atol=1e-6, rtol=1e-5)
    assert weighted.history[-1, "gair_reweighting"]
    assert not {"_sample_weight_pending_", "_sample_weight_fit_"} & set(vars(weighted))


def test_sample_weight_with_validation_split_and_partial_fit(small_digits):
    X, _, y, _ = small_digits
    sw = np.where(y % 2, 2.0, 0.5)
    clf = GAIRATClassifier(burn_in_epochs=0, train_split=ValidSplit(3),
                           callbacks__valid_acc=None, **FAST)
    clf.fit(X, y, sample_weight=sw)
    assert np.isfinite(clf.history[-1, "valid_loss"])
    clf.partial_fit(X, y, sample_weight=sw)
    assert len(clf.history) == 4
    trades = GAIRTRADESClassifier(burn_in_epochs=1, **FAST).fit(X, y, sample_weight=sw)
    assert np.isfinite(trades.history[:, "train_loss"]).all()


def test_ones_sample_weight_matches_unweighted_loss(small_digits):
    X, _, y, _ = small_digits
    for cls in (GAIRATClassifier, GAIRTRADESClassifier):
        clf = cls(burn_in_epochs=0, **{**FAST, "max_epochs": 1}).fit(X, y)
        Xb, yb = torch.tensor(X[:32]), torch.tensor(y[:32])
        losses = []
        for sample_weight in (None, torch.ones(32)):
            clf.attack_.set_params(random_state=1)
            if cls is GAIRTRADESClassifier:
                clf.cw_attack_.set_params(random_state=2)
            losses.append(clf.robust_loss(Xb, yb, sample_weight=sample_weight)[0])
        torch.testing.assert_close(losses[0], losses[1])


@pytest.mark.parametrize("make_sw, match", [
    (lambda y: np.zeros(len(y)), "zero"),
    (lambda y: -np.ones(len(y)), "Negative"),
    (lambda y: np.ones(len(y) + 1), "sample_weight"),
    (lambda y: np.where(y == 3, np.nan, 1.0), "NaN"),
    (lambda y: (y == 3).astype(float), "class"),
])
def test_bad_sample_weight(small_digits, make_sw, match):
    X, _, y, _ = small_digits
    with pytest.raises(ValueError, match=match):
        GAIRATClassifier(**FAST).fit(X, y, sample_weight=make_sw(y))


# -------------------------------------------------------------- parameters
@pytest.mark.parametrize("params, match", [
    ({"gair_lambda": float("nan")}, "gair_lambda"),
    ({"gair_lambda": -INF}, "gair_lambda"),
    ({"gair_lambda": "inf"}, "gair_lambda"),
    ({"gair_lambda": True}, "gair_lambda"),
    ({"weight_function": "Tanh"}, "weight_function"),
    ({"burn_in_epochs": -1}, "burn_in_epochs"),
    ({"burn_in_epochs": 1.5}, "burn_in_epochs"),
    ({"burn_in_epochs": True}, "burn_in_epochs"),
    ({"burn_in_epochs": None}, "burn_in_epochs"),
    ({"lambda_schedule": "cosine"}, "lambda_schedule"),
    ({"lambda_max": INF}, "lambda_max"),
    ({"n_steps": 0}, "n_steps"),
])
def test_bad_parameters(small_digits, params, match):
    X, _, y, _ = small_digits
    with pytest.raises(ValueError, match=match):
        GAIRATClassifier(**{**FAST, **params}).fit(X, y)
    with pytest.raises(ValueError, match="beta"):
        GAIRTRADESClassifier(beta=-1.0, **FAST).fit(X, y)


def test_attack_and_criterion_requirements(small_digits):
    X, _, y, _ = small_digits

    class NoKappa(PGD):
        def _perturb(self, model, x, y, generator, return_info):
            return super()._perturb(model, x, y, generator, False)

    with pytest.raises(TypeError, match="n_correct_steps"):
        GAIRATClassifier(attack=NoKappa(), **FAST).fit(X, y)

    class OverCounting(PGD):  # kappa above K: caught at the first batch of a call
        def _perturb(self, model, x, y, generator, return_info):
            x_adv, info = super()._perturb(model, x, y, generator, True)
            return x_adv, {"n_correct_steps": info["n_correct_steps"] + 10}

    for cls in (GAIRATClassifier, GAIRTRADESClassifier):
        with pytest.raises(ValueError, match="kappa up to 1[0-3], above its n_steps=3"):
            cls(attack=OverCounting(n_steps=3), **FAST).fit(X, y)

    calls = []  # the fitted classifier attacks with a clone: counted here

    class LateOverCounting(PGD):  # kappa above K from the second batch on
        def _perturb(self, model, x, y, generator, return_info):
            x_adv, info = super()._perturb(model, x, y, generator, True)
            calls.append(len(x))
            return x_adv, {"n_correct_steps": info["n_correct_steps"]
                           + (10 if len(calls) > 1 else 0)}

    # caught at the epoch's end by the classifier, with or without the monitor
    for without_monitor in ({}, {"callbacks__gair_monitor": None}):
        calls.clear()
        with pytest.raises(ValueError, match="kappa up to 1[0-3], above its n_steps=3"):
            GAIRATClassifier(attack=LateOverCounting(n_steps=3), batch_size=16,
                             **without_monitor, **FAST).fit(X[:64], y[:64])
        assert calls == [16] * 4                   # the four batches of the epoch ran
    clf = GAIRATClassifier(attack=PGD(n_steps=5), burn_in_epochs=0, **FAST).fit(X, y)
    assert clf.kappa_max_ == 5 and len(clf.history[-1, "gair_kappa_hist"]) == 6

    class MeanOnly(torch.nn.Module):
        def forward(self, logits, y):
            return F.cross_entropy(logits, y)

    with pytest.raises(TypeError, match="reduction"):
        GAIRATClassifier(criterion=MeanOnly, burn_in_epochs=0, **FAST).fit(X, y)
    # a summed criterion keeps its reduction: sum_i w~_i CE_i
    clf = GAIRATClassifier(criterion__reduction="sum", burn_in_epochs=0,
                           **{**FAST, "max_epochs": 1}).fit(X, y)
    Xb, yb = torch.tensor(X[:16]), torch.tensor(y[:16])
    clf.attack_.set_params(random_state=5)
    loss, _ = clf.robust_loss(Xb, yb)
    clf.attack_.set_params(random_state=5)
    X_adv, info = clf.attack_.perturb(clf.module_, Xb, yb, return_info=True)
    w = gair_weights(info["n_correct_steps"].numpy(), 3, -1.0)
    ce = F.cross_entropy(clf.module_(X_adv), yb, reduction="none").double()
    expected = 16 * (torch.tensor(w) * ce).sum() / w.sum()
    assert float(loss.detach()) == pytest.approx(float(expected.detach()), rel=1e-5)
    assert clf.criterion_.reduction == "sum"
    assert math.isfinite(clf.history[-1, "train_loss"])


class _CheckInputSpy(PGD):
    """PGD recording the ``check_input`` flag of every call."""

    flags = []

    def perturb(self, model, X, y, **kwargs):
        _CheckInputSpy.flags.append(kwargs.get("check_input", True))
        return super().perturb(model, X, y, **kwargs)


@pytest.mark.parametrize("cls", [GAIRATClassifier, GAIRTRADESClassifier])
def test_training_attacks_skip_the_input_validation(small_digits, cls):
    X, _, y, _ = small_digits
    _CheckInputSpy.flags.clear()
    clf = cls(attack=_CheckInputSpy(eps=0.1, n_steps=2), burn_in_epochs=0,
              **{**FAST, "max_epochs": 1}).fit(X[:64], y[:64])
    if cls is GAIRTRADESClassifier:  # the CW attack of the reweighted epochs
        clf.cw_attack_ = _CheckInputSpy(**clf.cw_attack_.get_params())
        clf.robust_loss(torch.as_tensor(X[:8]), torch.as_tensor(y[:8]))
    # the batches come validated from fit: the attacks skip their own checks
    assert _CheckInputSpy.flags and not any(_CheckInputSpy.flags)
    if cls is GAIRTRADESClassifier:
        assert len(_CheckInputSpy.flags) > 2  # the CW attack ran too


def test_diagnostics_are_a_callback_that_can_be_removed(small_digits):
    X, _, y, _ = small_digits
    from sklearn_robust.callbacks import GAIRMonitor

    params = dict(burn_in_epochs=1, **FAST)
    clf = GAIRATClassifier(**params).fit(X[:64], y[:64])
    assert isinstance(dict(clf.callbacks_)["gair_monitor"], GAIRMonitor)
    assert "gair_ess" in clf.history[-1]
    bare = GAIRATClassifier(callbacks__gair_monitor=None, **params).fit(X[:64], y[:64])
    assert not any(k.startswith("gair_") for k in bare.history[-1])
    assert _equal_params(clf, bare)     # diagnostics do not change training


@pytest.mark.parametrize("cls", [GAIRATClassifier, GAIRTRADESClassifier])
def test_monitor_sums_the_epochs_batches(small_digits, cls):
    # the monitor keeps the batches on the device and takes its statistics once
    # an epoch: the same as a recomputation from every batch's kappa and weights
    X, _, y, _ = small_digits
    clf = cls(burn_in_epochs=0, batch_size=16, **{**FAST, "max_epochs": 1})
    seen = []
    loss_of = clf.robust_loss

    def recording(*args, **kwargs):
        out = loss_of(*args, **kwargs)
        seen.append({k: v.detach().clone() for k, v in clf.gair_batch_.items()})
        return out

    clf.robust_loss = recording
    clf.fit(X[:72], y[:72])
    assert len(seen) == 5                          # 72 rows: four of 16, one of 8
    kappa = torch.cat([b["kappa"] for b in seen]).numpy()
    w = torch.cat([b["weights"] for b in seen]).numpy()
    e = torch.cat([b["loss_weights"] for b in seen]).double().numpy()
    h = clf.history[-1]
    assert h["gair_kappa_hist"] == np.bincount(kappa, minlength=4).tolist()
    assert h["gair_kappa_mean"] == pytest.approx(kappa.mean())
    assert h["gair_weight_min"] == w.min() and h["gair_weight_max"] == w.max()
    assert h["gair_weight_mean"] == pytest.approx(w.mean(), rel=1e-12)
    assert h["gair_weight_std"] == pytest.approx(w.std(), rel=1e-9)
    assert h["gair_ess"] == pytest.approx(e.sum() ** 2 / (72 * (e ** 2).sum()),
                                          rel=1e-12)
    assert 0 < h["gair_ess"] <= 1
    # a kappa outside [0, K] in any batch of the epoch is an error at its end
    monitor = dict(clf.callbacks_)["gair_monitor"]
    monitor.on_epoch_begin(clf)
    clf.gair_batch_ = {**seen[0], "kappa": seen[0]["kappa"] + 4}
    monitor.on_batch_end(clf, training=True)
    with pytest.raises(ValueError, match=r"outside \[0, n_steps=3\]"):
        monitor.on_epoch_end(clf)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no cuda device")
@pytest.mark.parametrize("cls", [GAIRATClassifier, GAIRTRADESClassifier])
def test_gair_batches_synchronise_no_more_than_pgd_at_batches(small_digits, cls):
    # GAIR's kappa check (read at the first batch and at each epoch's end) and
    # its monitor (read once an epoch) add no host synchronisation per batch: the
    # count of synchronising calls grows with the batches exactly as PGD-AT's does
    X, _, y, _ = small_digits

    def syncs(clf, n):
        torch.cuda.synchronize()
        torch.cuda.set_sync_debug_mode("warn")
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                clf.partial_fit(X[:n], y[:n])
        finally:
            torch.cuda.set_sync_debug_mode("default")
        return sum("synchroniz" in str(w.message) for w in caught)

    def growth(clf):
        clf.fit(X[:64], y[:64])                       # warm-up
        return syncs(clf, 128) - syncs(clf, 64)       # 8 batches against 4

    kw = dict(device="cuda", batch_size=16, **{**FAST, "max_epochs": 1})
    gair = growth(cls(burn_in_epochs=0, **kw))
    base = growth((TRADESClassifier if cls is GAIRTRADESClassifier
                   else AdversarialClassifier)(**kw))
    assert gair <= base
