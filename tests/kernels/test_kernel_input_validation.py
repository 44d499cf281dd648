"""Bad input to the kernels: a ValueError/TypeError naming the argument, never a
raw torch error or NaN in an output (issue 13, item 5). One test per root cause."""

import re

import numpy as np
import pytest
import torch
from numpy.testing import assert_allclose

from sklearn_robust.kernels import (
    ConvKernel,
    FCKernel,
    KernelRegressionModule,
    NTKClassifier,
    centered_one_hot,
    conv_kernel,
    fc_kernel,
    solve_kernel_ridge,
)
from sklearn_robust.kernels._conv import as_images

RNG = np.random.RandomState(0)
FLAT = RNG.rand(3, 4)                      # 4 features = one 2x2 image
IMAGES = RNG.rand(3, 1, 3, 3)


def _with(X, value):
    X = X.copy()
    X.flat[0] = value
    return X


KERNEL_CALLS = {
    "fc_kernel": (fc_kernel, FLAT),
    "FCKernel": (FCKernel(2), FLAT),
    "conv_kernel": (conv_kernel, IMAGES),
    "ConvKernel": (ConvKernel(1, pooling="flatten"), IMAGES),
}


# ---------------------------------------------------- root cause 1: kernel inputs
BAD_INPUTS = {
    "nan": (lambda X: _with(X, np.nan), ValueError, "contains NaN or infinity"),
    "inf": (lambda X: _with(X, -np.inf), ValueError, "contains NaN or infinity"),
    "nan tensor": (lambda X: torch.tensor(_with(X, np.nan)), ValueError,
                   "contains NaN or infinity"),
    "empty": (lambda X: X[:0], ValueError, "has no samples"),
    "complex": (lambda X: X + 1j, TypeError, "must hold real numbers"),
    "complex tensor": (lambda X: torch.tensor(X + 1j), TypeError,
                       "must hold real numbers"),
    "bool": (lambda X: X > 0.5, TypeError, "must hold real numbers"),
    "strings": (lambda X: X.astype(str), TypeError, "must hold real numbers"),
    "no features": (lambda X: X.reshape(len(X), -1)[:, :0], ValueError,
                    "has no features"),
}


@pytest.mark.parametrize("bad", list(BAD_INPUTS))
@pytest.mark.parametrize("which", ["X1", "X2"])
@pytest.mark.parametrize("call", list(KERNEL_CALLS))
def test_kernel_rejects_bad_inputs_naming_them(call, which, bad):
    kernel, X = KERNEL_CALLS[call]
    make, error, message = BAD_INPUTS[bad]
    args = (make(X), None) if which == "X1" else (X, make(X))
    with pytest.raises(error, match=f"{which} .*{message}"):
        kernel(*args)
    if which == "X1" and error is ValueError:
        with pytest.raises(error, match=message):
            kernel(args[0], diag=True)


# ------------------------------------------- root cause 2: negative strides work
@pytest.mark.parametrize("call", list(KERNEL_CALLS))
def test_kernel_accepts_negative_strides(call):
    kernel, X = KERNEL_CALLS[call]
    expected = kernel(np.ascontiguousarray(X[::-1])).numpy()
    assert_allclose(kernel(X[::-1]).numpy(), expected)
    # (X2=None sets the diagonal correlations to exactly 1: rounding differs)
    assert_allclose(kernel(X, X[::-1]).numpy(), kernel(X).numpy()[:, ::-1],
                    rtol=1e-6)


def test_solver_and_classifier_accept_negative_strides():
    K = np.array([[2.0, 1.0], [1.0, 3.0]])
    Y = np.array([[1.0], [-1.0]])
    assert_allclose(solve_kernel_ridge(K[::-1, ::-1], Y[::-1], ridge=0.0).numpy(),
                    solve_kernel_ridge(K[::-1, ::-1].copy(), Y[::-1].copy(),
                                       ridge=0.0).numpy())
    X, y = RNG.rand(12, 4), np.arange(12) % 2
    clf = NTKClassifier().fit(X[::-1], y[::-1])
    assert_allclose(clf.decision_function(X[::-1]),
                    clf.decision_function(X.copy())[::-1])


# ---------------------------------------------- root cause 3: image shapes (conv)
@pytest.mark.parametrize("make, which, match", [
    (lambda: conv_kernel(IMAGES[:, None]), "X1", "got 5 dimensions"),
    (lambda: conv_kernel(IMAGES, IMAGES[..., None]), "X2", "got 5 dimensions"),
    (lambda: ConvKernel()(IMAGES[:, None]), "X1", "got 5 dimensions"),
    (lambda: conv_kernel(np.ones((2, 1, 0, 3))), "X1", "has no features"),
    (lambda: as_images(torch.ones(4)), "X", "at least 2 dimensions"),
    (lambda: as_images(torch.ones(2, 1, 1, 3, 3)), "X", "got 5 dimensions"),
    (lambda: as_images(_with(IMAGES, np.nan)), "X", "contains NaN"),
    (lambda: as_images(np.ones((2, 1, 3, 0)), name="X_s"), "X_s", "has no features"),
])
def test_conv_rejects_inputs_that_are_not_image_batches(make, which, match):
    with pytest.raises(ValueError, match=f"{which} .*{match}"):
        make()


# ------------------------------------ root cause 4: overflow is an error, not NaN
@pytest.mark.parametrize("make", [
    lambda: fc_kernel(FLAT, W_std=1e20, depth=20),
    lambda: fc_kernel(torch.tensor(FLAT, dtype=torch.float32), W_std=1e15, depth=3),
    lambda: FCKernel(1)(FLAT * 1e200, diag=True),
    lambda: conv_kernel(IMAGES, W_std=1e20, depth=20),
    lambda: ConvKernel(1, pooling="flatten")(torch.tensor(IMAGES, dtype=torch.float32)
                                            * 1e25),
])
def test_kernel_overflow_raises_naming_the_parameters(make):
    with pytest.raises(ValueError, match="overflowed .*depth=.*W_std="):
        make()


def test_classifier_never_predicts_from_nan_scores():
    X, y = RNG.rand(12, 4), np.arange(12) % 3
    with pytest.raises(ValueError, match="overflowed .*W_std="):
        NTKClassifier(W_std=1e20, depth=20).fit(X, y)
    with pytest.raises(ValueError, match="X has values beyond float32's range"):
        NTKClassifier(dtype="float32").fit(X * 1e39, y)
    clf = NTKClassifier().fit(X, y)
    for method in (clf.predict, clf.decision_function):
        with pytest.raises(ValueError, match="overflowed"):
            method(X * 1e200)
    with pytest.raises(ValueError, match="X has values beyond float32's range"):
        NTKClassifier(dtype="float32").fit(X, y).predict(X * 1e39)


# ---------------------------- root cause 5: scalar arguments checked by function
@pytest.mark.parametrize("func", [fc_kernel, conv_kernel], ids=lambda f: f.__name__)
@pytest.mark.parametrize("name, value, match", [
    ("depth", -1, "depth must be an integer >= 0, got -1"),
    ("depth", 1.5, "depth must be an integer >= 0"),
    ("depth", True, "depth must be an integer >= 0"),
    ("depth", "x", "depth must be an integer >= 0"),
    ("depth", float("nan"), "depth must be an integer >= 0"),
    ("W_std", float("nan"), "W_std must be a finite number > 0"),
    ("W_std", float("inf"), "W_std must be a finite number > 0"),
    ("W_std", -1.0, "W_std must be a finite number > 0"),
    ("W_std", 0.0, "W_std must be a finite number > 0"),
    ("W_std", 1e39, "W_std must be a finite number > 0.*float32"),
    ("b_std", float("nan"), "b_std must be a finite number >= 0"),
    ("b_std", -0.1, "b_std must be a finite number >= 0"),
    ("b_std", 1e39, "b_std must be a finite number >= 0.*float32"),
    ("diag", "yes", "diag must be a bool"),
])
def test_kernel_functions_name_their_bad_argument(func, name, value, match):
    X = FLAT if func is fc_kernel else IMAGES
    with pytest.raises(ValueError, match=f"{func.__name__}: {match}"):
        func(X, **{name: value})


def test_kernel_parameters_that_are_valid():
    # depth 0 is the linear kernel, b_std 0 a network without biases, numpy ints
    K = fc_kernel(FLAT, depth=0, W_std=1.0, b_std=0.0).numpy()
    assert_allclose(K, FLAT @ FLAT.T / FLAT.shape[1])      # NTK = NNGP = x.x'/d
    assert fc_kernel(FLAT, depth=np.int64(2)).shape == (3, 3)
    assert conv_kernel(IMAGES, depth=np.int64(0)).shape == (3, 3)
    with pytest.raises(TypeError, match="diag must be a bool"):
        FCKernel()(FLAT, diag=1)


# ------------------------------------------------ root cause 6: solve_kernel_ridge
K2 = torch.tensor([[2.0, 1.0], [1.0, 2.0]], dtype=torch.float64)
Y2 = torch.tensor([[1.0], [-1.0]], dtype=torch.float64)


@pytest.mark.parametrize("K, Y, kwargs, error, match", [
    (torch.tensor(1.0), Y2, {}, ValueError, "K must have at least 2 dimensions"),
    (torch.ones(0, 0), Y2[:0], {}, ValueError, "K has no samples"),
    (K2 + 0j, Y2, {}, TypeError, "K must hold real numbers"),
    (K2, torch.ones(3, 1, dtype=torch.float64), {}, ValueError,
     r"Y must have shape \(2,\) or \(2, n_outputs\)"),
    (K2, torch.ones(2, 1, 1, dtype=torch.float64), {}, ValueError,
     r"Y must have shape \(2,\)"),
    (torch.tensor([[np.nan, 1.0], [1.0, 2.0]]), Y2, {}, ValueError,
     "K contains NaN or infinity"),
    (torch.tensor([[np.inf, 1.0], [1.0, 2.0]]), Y2, {}, ValueError,
     "K contains NaN or infinity"),
    (K2, torch.tensor([[np.nan], [1.0]]), {}, ValueError,
     "Y contains NaN or infinity"),
    (K2, Y2, {"ridge": float("nan")}, ValueError,
     "solve_kernel_ridge: ridge must be a finite number >= 0"),
    (K2, Y2, {"ridge": float("inf")}, ValueError, "ridge must be a finite number"),
    (K2, Y2, {"ridge": -1.0}, ValueError, "ridge must be a finite number >= 0"),
    (K2, Y2, {"ridge": "a"}, TypeError, "ridge must be a finite number >= 0"),
    (torch.tensor([[3e38, 0.0], [0.0, 3e38]]), torch.ones(2), {"ridge": 1.0},
     ValueError, "solve_kernel_ridge: the solution overflowed .*ridge="),
])
def test_solve_kernel_ridge_rejects_bad_input(K, Y, kwargs, error, match):
    with pytest.raises(error, match=match):
        solve_kernel_ridge(K, Y, **kwargs)


def test_solve_kernel_ridge_promotes_dtypes_and_accepts_arrays():
    alpha = solve_kernel_ridge(K2, Y2.float(), ridge=0.0)
    assert alpha.dtype == torch.float64
    assert_allclose(alpha.numpy(), [[1.0], [-1.0]], rtol=1e-12)
    assert_allclose(solve_kernel_ridge(K2.numpy(), Y2.numpy()[:, 0], ridge=0.0),
                    [1.0, -1.0], rtol=1e-12)
    assert solve_kernel_ridge([[2, 1], [1, 2]], [1, -1]).shape == (2,)


# ------------------------------------------------- root cause 7: centered_one_hot
@pytest.mark.parametrize("codes, n_classes, error, match", [
    ([0, 3], 3, ValueError, r"codes holds class indices in \[0, 3\]"),
    ([0, -1], 3, ValueError, r"codes holds class indices in \[-1, 0\]"),
    ([0.5, 1.0], 3, ValueError, "codes must hold integer class indices"),
    ([0.0, np.nan], 3, ValueError, "codes must hold integer class indices"),
    ([[0, 1]], 3, ValueError, "codes must be 1-D"),
    (["a"], 3, TypeError, "codes must hold integer class indices"),
    ([0], 0, ValueError, "centered_one_hot: n_classes must be an integer >= 1"),
    ([0], -1, ValueError, "n_classes must be an integer >= 1"),
    ([0], 1.5, TypeError, "n_classes must be an integer >= 1"),
    ([0], True, TypeError, "n_classes must be an integer >= 1"),
])
def test_centered_one_hot_rejects_bad_codes(codes, n_classes, error, match):
    with pytest.raises(error, match=match):
        centered_one_hot(codes, n_classes)


def test_centered_one_hot_dtype_and_valid_forms():
    with pytest.raises(TypeError, match="dtype must be a floating"):
        centered_one_hot([0, 1], 2, dtype=torch.int64)   # was silently float
    expected = [[0.5, -0.5], [-0.5, 0.5]]
    assert_allclose(centered_one_hot([0, 1], np.int64(2)).numpy(), expected)
    assert_allclose(centered_one_hot(np.array([0.0, 1.0]), 2).numpy(), expected)
    assert centered_one_hot([], 2).shape == (0, 2)


# -------------------------------------- root cause 8: KernelRegressionModule
def test_kernel_regression_module_checks_its_arguments():
    X_fit = torch.tensor(FLAT)
    alpha = torch.ones(3, 2, dtype=torch.float64)
    with pytest.raises(ValueError, match=re.escape("alpha must have shape (n_fit, "
                                                   "n_outputs) with n_fit = 3")):
        KernelRegressionModule(FCKernel(), X_fit, alpha[:2])
    with pytest.raises(ValueError, match="X_fit contains NaN"):
        KernelRegressionModule(FCKernel(), _with(FLAT, np.nan), alpha)
    with pytest.raises(TypeError, match="kernel must be callable"):
        KernelRegressionModule("fc", X_fit, alpha)
    with pytest.raises(ValueError, match="get must be 'ntk' or 'nngp'"):
        KernelRegressionModule(FCKernel(), X_fit, alpha, get="both")
    module = KernelRegressionModule(FCKernel(), X_fit, alpha)
    with pytest.raises(ValueError, match="x contains NaN"):
        module(torch.tensor(_with(FLAT, np.nan)))
    assert_allclose(module(FLAT).numpy(), module(X_fit).numpy())   # arrays work


# ------------------------------------------- root cause 9: NTKClassifier options
@pytest.mark.parametrize("params, error, match", [
    (dict(device="foo"), ValueError, "NTKClassifier: device must be a torch device"),
    (dict(W_std=float("nan")), ValueError, "NTKClassifier: W_std must be a finite"),
    (dict(b_std=-1.0), ValueError, "NTKClassifier: b_std must be a finite number"),
    (dict(depth=1.5), TypeError, "NTKClassifier: depth must be an integer >= 0"),
])
def test_classifier_names_its_bad_parameter(params, error, match):
    X, y = RNG.rand(12, 4), np.arange(12) % 2
    with pytest.raises(error, match=match):
        NTKClassifier(**params).fit(X, y)
