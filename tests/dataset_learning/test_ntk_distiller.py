# SPDX-License-Identifier: BSD-3-Clause
"""Tests for NTKRobustDistiller (adversarial kernel inducing points)."""

import pickle

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import cross_val_score
from sklearn.pipeline import make_pipeline

from sklearn_robust import AdversarialClassifier
from sklearn_robust.attacks import PGD
from sklearn_robust.dataset_learning import NTKRobustDistiller, RobustDatasetSampler
from sklearn_robust.dataset_learning._ntk_distiller import (
    _KRRModule,
    _per_sample_mse,
    krr_mse,
    krr_predict,
)
from sklearn_robust.kernels import (
    ConvKernel,
    FCKernel,
    NTKClassifier,
    centered_one_hot,
    solve_kernel_ridge,
)
from sklearn_robust.metrics import make_robust_scorer, robust_accuracy_score
from sklearn_robust.nn import MLP

# a quick configuration for the tests that do not measure robustness
FAST = dict(eps=0.1, max_iter=3, target_batch_size=40, n_steps=2, random_state=0)


@pytest.fixture(scope="module")
def digits_small(small_digits):
    X, _, y, _ = small_digits
    return X[:80], y[:80]


# ----------------------------------------------------------------- the KRR machinery


def test_krr_predict_matches_a_numpy_solve():
    rng = np.random.RandomState(0)
    Xs, X = rng.rand(12, 5), rng.rand(7, 5)
    codes = np.arange(12) % 3
    kernel = FCKernel(2)
    Y = centered_one_hot(codes, 3)
    out = krr_predict(kernel, torch.tensor(Xs), Y, torch.tensor(X), ridge=1e-3)
    K = kernel(torch.tensor(Xs)).numpy()
    reg = 1e-3 * np.trace(K) / 12
    ref = kernel(torch.tensor(X), torch.tensor(Xs)).numpy() @ np.linalg.solve(
        K + reg * np.eye(12), Y.numpy())
    np.testing.assert_allclose(out.numpy(), ref, rtol=1e-8, atol=1e-10)
    # float32 kernels, float64 solve: same predictions to float32 precision
    out32 = krr_predict(kernel, torch.tensor(Xs, dtype=torch.float32), Y.float(),
                        torch.tensor(X, dtype=torch.float32), ridge=1e-3)
    assert out32.dtype == torch.float32
    np.testing.assert_allclose(out32.numpy(), ref, rtol=1e-4, atol=1e-5)


def test_outer_gradient_matches_finite_differences():
    """The gradient of the outer loss in the support images (attack held fixed)."""
    rng = np.random.RandomState(1)
    Xs = torch.tensor(rng.rand(6, 4), requires_grad=True)
    Y = centered_one_hot(np.arange(6) % 2, 2)
    x_adv = torch.tensor(rng.rand(5, 4))
    Y_t = centered_one_hot(np.arange(5) % 2, 2)
    kernel = FCKernel(1)

    def loss_of(support):
        return krr_mse(krr_predict(kernel, support, Y, x_adv, ridge=1e-2), Y_t)

    (grad,) = torch.autograd.grad(loss_of(Xs), Xs)
    h, numeric = 1e-6, np.zeros((6, 4))
    base = Xs.detach()
    for i in range(6):
        for j in range(4):
            plus, minus = base.clone(), base.clone()
            plus[i, j] += h
            minus[i, j] -= h
            numeric[i, j] = (float(loss_of(plus)) - float(loss_of(minus))) / (2 * h)
    np.testing.assert_allclose(grad.numpy(), numeric, rtol=1e-5, atol=1e-9)


def test_attack_loss_is_the_outer_squared_error():
    out = torch.randn(4, 3, dtype=torch.float64)
    codes = torch.tensor([0, 2, 1, 1])
    Y = centered_one_hot(codes, 3)
    assert torch.allclose(_per_sample_mse(out, codes).sum() / out.numel(),
                          krr_mse(out, Y))


# ------------------------------------------------------------------ the contract


def test_same_size_mode_contract(digits_small):
    X, y = digits_small
    X_before, y_before = X.copy(), y.copy()
    distiller = NTKRobustDistiller(**FAST)
    X_robust = distiller.fit_transform(X, y)
    np.testing.assert_array_equal(X, X_before)       # input untouched
    np.testing.assert_array_equal(y, y_before)
    assert X_robust.shape == X.shape and X_robust.dtype == np.float32
    np.testing.assert_array_equal(X_robust, distiller.X_robust_)
    np.testing.assert_array_equal(distiller.y_robust_, y)
    np.testing.assert_array_equal(distiller.support_indices_, np.arange(len(X)))
    assert X_robust.min() >= 0.0 and X_robust.max() <= 1.0
    assert not np.allclose(X_robust, X)               # the rows did move
    # rows stay close to their own image, in order: an Adam step moves a value by
    # at most lr * (1 - beta1) / sqrt(1 - beta2) ~= 3.2 lr
    assert np.abs(X_robust - X).max() <= FAST["max_iter"] * 3.2 * distiller.lr
    np.testing.assert_array_equal(distiller.transform(X[:5]), X[:5])
    assert (distiller.loss_history_.shape == (3,)
            == distiller.adversarial_loss_history_.shape)
    np.testing.assert_allclose(distiller.Y_robust_,
                               centered_one_hot(np.searchsorted(distiller.classes_, y),
                                                10).numpy(), atol=1e-7)


@pytest.mark.parametrize("n_support", [None, 20])
def test_max_change_bounds_every_row(digits_small, n_support):
    X, y = digits_small
    kw = {**FAST, "lr": 0.3, "max_iter": 4, "n_support": n_support}   # big steps
    free = NTKRobustDistiller(**kw).fit(X, y)
    start = X[free.support_indices_]
    assert np.abs(free.X_robust_ - start).max() > 0.3
    bound = NTKRobustDistiller(**kw, max_change=0.05).fit(X, y)
    change = np.abs(bound.X_robust_ - X[bound.support_indices_]).max(axis=1)
    assert change.max() <= 0.05 + 1e-6 and np.median(change) > 0.04
    assert bound.X_robust_.min() >= 0.0 and bound.X_robust_.max() <= 1.0
    fixed = NTKRobustDistiller(**kw, max_change=0.0).fit(X, y)
    np.testing.assert_array_equal(fixed.X_robust_, X[fixed.support_indices_])


def test_support_set_mode(digits_small):
    X, y = digits_small
    distiller = NTKRobustDistiller(n_support=20, **FAST).fit(X, y)
    assert distiller.X_robust_.shape == (20, 64)
    # class-balanced initialisation from real rows: two per class
    np.testing.assert_array_equal(np.bincount(distiller.y_robust_, minlength=10),
                                  np.full(10, 2))
    np.testing.assert_array_equal(distiller.y_robust_, y[distiller.support_indices_])
    with pytest.raises(ValueError, match="RobustDatasetSampler"):
        NTKRobustDistiller(n_support=20, **FAST).fit_transform(X, y)
    with pytest.raises(ValueError, match="support-set mode"):
        make_pipeline(NTKRobustDistiller(n_support=20, **FAST),
                      LogisticRegression()).fit(X, y)
    X_res, y_res = RobustDatasetSampler(NTKRobustDistiller(n_support=20, **FAST)) \
        .fit_resample(X, y)
    np.testing.assert_allclose(X_res, distiller.X_robust_)
    np.testing.assert_array_equal(y_res, distiller.y_robust_)


def test_learned_labels(digits_small):
    X, y = digits_small
    distiller = NTKRobustDistiller(n_support=20, learn_labels=True, lr=0.1,
                                   **{**FAST, "max_iter": 5}).fit(X, y)
    start = centered_one_hot(np.searchsorted(distiller.classes_,
                                             y[distiller.support_indices_]), 10)
    assert not np.allclose(distiller.Y_robust_, start.numpy())
    np.testing.assert_array_equal(distiller.y_robust_,
                                  distiller.classes_[distiller.Y_robust_.argmax(1)])
    with pytest.raises(ValueError, match="support-set mode"):
        NTKRobustDistiller(learn_labels=True, **FAST).fit_transform(X, y)


def test_blocks_visit_every_row(digits_small):
    X, y = digits_small
    # 80 rows in blocks of 30: three steps make one epoch, every row moves once
    distiller = NTKRobustDistiller(support_batch_size=30, **FAST).fit(X, y)
    moved = np.abs(distiller.X_robust_ - X).reshape(len(X), -1).max(axis=1) > 0
    assert moved.all()
    # a single block of 30 rows moves only those rows
    one = NTKRobustDistiller(support_batch_size=30, **{**FAST, "max_iter": 1}).fit(X, y)
    moved = np.abs(one.X_robust_ - X).reshape(len(X), -1).max(axis=1) > 0
    assert moved.sum() == 30


def test_clean_weight_one_is_kip_without_attack(digits_small):
    X, y = digits_small
    kip = NTKRobustDistiller(**{**FAST, "eps": 0.0}).fit(X, y)
    clean = NTKRobustDistiller(clean_weight=1.0, **FAST).fit(X, y)
    np.testing.assert_allclose(kip.X_robust_, clean.X_robust_)
    adv = NTKRobustDistiller(**FAST).fit(X, y)
    assert not np.allclose(adv.X_robust_, kip.X_robust_)
    mixed = NTKRobustDistiller(clean_weight=0.5, **FAST).fit(X, y)
    assert np.all(mixed.loss_history_ <= mixed.adversarial_loss_history_ + 1e-9)


def test_random_state_determinism_and_clone(digits_small):
    X, y = digits_small
    a = NTKRobustDistiller(**FAST).fit(X, y)
    b = clone(a).fit(X, y)
    np.testing.assert_array_equal(a.X_robust_, b.X_robust_)
    c = NTKRobustDistiller(**{**FAST, "random_state": 1}).fit(X, y)
    assert not np.array_equal(a.X_robust_, c.X_robust_)
    assert clone(a).get_params() == a.get_params()


def test_pickle_and_float64(digits_small):
    X, y = digits_small
    distiller = NTKRobustDistiller(dtype="float64", **FAST).fit(X, y)
    restored = pickle.loads(pickle.dumps(distiller))
    np.testing.assert_array_equal(restored.X_robust_, distiller.X_robust_)
    np.testing.assert_array_equal(restored.transform(X[:3]), X[:3])


def test_conv_kernel_on_images():
    rng = np.random.RandomState(0)
    X = rng.rand(16, 1, 5, 5).astype(np.float32)
    y = np.arange(16) % 2
    distiller = NTKRobustDistiller(kernel="conv", eps=0.1, max_iter=2,
                                   target_batch_size=8, n_steps=1,
                                   random_state=0).fit(X, y)
    assert distiller.X_robust_.shape == X.shape
    assert isinstance(distiller.kernel_, ConvKernel)


def test_verbose_progress_bar(digits_small, capsys):
    pytest.importorskip("tqdm")
    X, y = digits_small
    NTKRobustDistiller(**FAST).fit(X, y)
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""
    NTKRobustDistiller(verbose=1, **FAST).fit(X, y)
    captured = capsys.readouterr()   # a tqdm bar over the max_iter steps, on stderr
    assert captured.out == ""
    assert "NTKRobustDistiller" in captured.err
    assert f"0/{FAST['max_iter']}" in captured.err


@pytest.mark.parametrize("params, match", [
    ({"eps": -0.1}, "eps"),
    ({"norm": "l3"}, "norm"),
    ({"kernel": "rbf"}, "kernel"),
    ({"get": "gp"}, "get"),
    ({"ridge": -1.0}, "ridge"),
    ({"n_support": 1}, "n_support"),
    ({"n_support": 500}, "n_support"),
    ({"n_support": 5}, "classes"),
    ({"target_batch_size": 0}, "target_batch_size"),
    ({"support_batch_size": 1}, "support_batch_size"),
    ({"max_iter": 0}, "max_iter"),
    ({"lr": 0.0}, "lr"),
    ({"n_steps": 0}, "n_steps"),
    ({"clean_weight": 1.5}, "clean_weight"),
    ({"max_change": -0.1}, "max_change"),
    ({"dtype": "float16"}, "dtype"),
    ({"device": "gpu:x"}, "device"),
    ({"clip_min": 1.0, "clip_max": 0.0}, "clip"),
    ({"depth": []}, "depth"),
    ({"depth": "1"}, "depth"),
    ({"depth": [1, -1]}, "depth"),
])
def test_bad_parameters(digits_small, params, match):
    X, y = digits_small
    with pytest.raises(ValueError, match=match):
        NTKRobustDistiller(**{**FAST, **params}).fit(X, y)


def test_bad_input(digits_small):
    X, y = digits_small
    with pytest.raises(TypeError, match="learn_labels"):
        NTKRobustDistiller(learn_labels="yes", **FAST).fit(X, y)
    X_nan = X.copy()
    X_nan[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        NTKRobustDistiller(**FAST).fit(X_nan, y)
    with pytest.raises(ValueError, match="clip|box|range"):
        NTKRobustDistiller(**FAST).fit(X * 2.0, y)
    with pytest.raises(ValueError, match="class"):
        NTKRobustDistiller(**FAST).fit(X, np.zeros(len(X)))
    with pytest.raises(ValueError, match="y"):
        NTKRobustDistiller(**FAST).fit_transform(X)
    fitted = NTKRobustDistiller(**FAST).fit(X, y)
    with pytest.raises(ValueError, match="features"):
        fitted.transform(X[:, :10])


# ------------------------------------------------------------ behaviour on digits


def _krr_adversarial_loss(X_support, y_support, X_test, y_test, eps):
    """Mean squared loss of KRR on a PGD attack of the held-out set."""
    kernel = FCKernel(1)
    Xs = torch.tensor(X_support, dtype=torch.float64)
    codes = torch.as_tensor(y_support)
    alpha = solve_kernel_ridge(kernel(Xs), centered_one_hot(codes, 10), ridge=1e-6)
    model = _KRRModule(kernel, Xs, alpha, "ntk")
    x, yt = torch.tensor(X_test), torch.as_tensor(y_test)
    x_adv = PGD(eps=eps, n_steps=20, loss=_per_sample_mse,
                random_state=0).perturb(model, x, yt)
    with torch.no_grad():
        out = model(x_adv)
    loss = float(_per_sample_mse(out, yt).mean())
    return loss, float((out.argmax(1) == yt).double().mean())


def test_distillation_lowers_adversarial_loss_of_the_kernel_predictor(small_digits):
    X_train, X_test, y_train, y_test = small_digits
    params = dict(max_iter=80, target_batch_size=150, n_steps=5, random_state=0)
    distiller = NTKRobustDistiller(eps=0.1, **params).fit(X_train, y_train)
    control = NTKRobustDistiller(eps=0.0, **params).fit(X_train, y_train)   # KIP
    before, acc_before = _krr_adversarial_loss(X_train, y_train, X_test, y_test, 0.1)
    after, acc_after = _krr_adversarial_loss(distiller.X_robust_, distiller.y_robust_,
                                             X_test, y_test, 0.1)
    kip, _ = _krr_adversarial_loss(control.X_robust_, control.y_robust_, X_test,
                                   y_test, 0.1)
    # measured (seeds 0-2): held-out adversarial loss 0.239 -> 0.183-0.185, PGD-20
    # accuracy 0.77 -> 0.83-0.85; the KIP control (eps=0) only reaches 0.219
    assert after < 0.85 * before
    assert acc_after > acc_before + 0.02
    assert after < 0.92 * kip
    # the outer objective went down during learning
    history = distiller.loss_history_
    assert history[-10:].mean() < 0.6 * history[:10].mean()


def test_naturally_trained_network_on_distilled_set_beats_its_controls(digits_split):
    # the claim that matters: a finite network the distiller never saw, trained
    # naturally on the learned rows, is more robust on held-out data than the same
    # network trained on the original rows or on the eps=0 learner's rows
    X_train, X_test, y_train, y_test = digits_split
    X, y, X_test, y_test = X_train[:500], y_train[:500], X_test[:300], y_test[:300]

    def robust(X_fit):
        net = AdversarialClassifier(
            eps=0.0, module=MLP, module__hidden_layer_sizes=(256, 256),
            max_epochs=60, lr=1e-3, batch_size=64, random_state=0).fit(X_fit, y)
        return (net.score(X_test, y_test),
                robust_accuracy_score(net, X_test, y_test, eps=0.1, attack="fast",
                                      random_state=0))

    learned = NTKRobustDistiller(eps=0.1, max_iter=50, random_state=0).fit(X, y)
    eps0 = NTKRobustDistiller(eps=0.0, max_iter=50, random_state=0).fit(X, y)
    (clean0, robust0), (clean1, robust1), (_, robust_eps0) = (
        robust(X), robust(learned.X_robust_), robust(eps0.X_robust_))
    # measured (2026-12-03, CPU, fast AutoAttack): original 0.963 clean / 0.413
    # robust, learned 0.970 / 0.550, eps=0 control 0.96 / 0.430; learner seeds 1
    # and 2 gave 0.560 and 0.573 against eps=0 controls of 0.450 and 0.483
    assert robust1 >= robust0 + 0.07
    assert robust1 >= robust_eps0 + 0.07
    assert clean1 >= clean0 - 0.02


def test_pipeline_cross_val_score_with_robust_scorer(small_digits):
    X, _, y, _ = small_digits
    pipe = make_pipeline(
        NTKRobustDistiller(eps=0.1, max_iter=5, target_batch_size=60, n_steps=2,
                           random_state=0),
        NTKClassifier())
    scorer = make_robust_scorer(eps=0.1, attack="pgd", random_state=0)
    scores = cross_val_score(pipe, X[:150], y[:150], cv=2, scoring=scorer)
    assert scores.shape == (2,)
    assert np.all((scores >= 0) & (scores <= 1))
    # the scorer attacked the classifier through the pipeline: robust < clean
    clean = cross_val_score(pipe, X[:150], y[:150], cv=2)
    assert np.all(scores < clean)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu(digits_small):
    X, y = digits_small
    cpu = NTKRobustDistiller(dtype="float64", **FAST).fit(X, y)
    gpu = NTKRobustDistiller(dtype="float64", device="cuda", **FAST).fit(X, y)
    np.testing.assert_allclose(gpu.X_robust_, cpu.X_robust_, atol=1e-4)


def test_kernel_ensemble_draws_one_depth_per_step(digits_small, monkeypatch):
    from sklearn_robust.kernels import FCKernel

    X, y = digits_small
    used = []
    call = FCKernel.__call__

    def spy(self, *args, **kwargs):
        used.append(self.depth)
        return call(self, *args, **kwargs)

    monkeypatch.setattr(FCKernel, "__call__", spy)
    d = NTKRobustDistiller(**{**FAST, "max_iter": 12}, depth=[1, 3]).fit(X, y)
    assert [k.depth for k in d.kernel_] == [1, 3]
    assert set(used) == {1, 3}
    used.clear()
    single = NTKRobustDistiller(**FAST, depth=[2]).fit(X, y)
    assert single.kernel_.depth == 2 and set(used) == {2}
    # a one-depth list is the plain distiller with that depth
    np.testing.assert_array_equal(
        single.X_robust_, NTKRobustDistiller(**FAST, depth=2).fit(X, y).X_robust_)
