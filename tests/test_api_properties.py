"""Property suite: every public entry point gives a correct result or a clear error.

The promise (README, "Guarantees"): for bad input a ``ValueError`` or ``TypeError``
(scikit-learn's ``NotFittedError`` where it applies) whose message names the
argument; never another exception type, a hang, NaN in an output or a result
computed on garbage; valid but unusual input (negative strides, NumPy integer
sizes, lists) works. The entry points come from one registry: the public
functions from ``_public_api`` (which fails when a public function has no
entry), the estimators and attacks from ``INIT_PARAMS`` of ``test_common``
(which fails when a public class has none). Hypothesis draws the corruption
(which value, where, how large) for each argument from its role; the ``ci``
profile (tests/conftest.py) bounds the examples, ``--hypothesis-profile=thorough``
searches longer.
"""

import math
import numbers
import warnings

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.exceptions import NotFittedError

hypothesis = pytest.importorskip("hypothesis")
import _public_api as api  # noqa: E402
from hypothesis import given  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from test_common import ATTACKS, ESTIMATORS  # noqa: E402

from sklearn_robust.utils._param_validation import Interval  # noqa: E402

FLOAT32_MAX = float(np.finfo(np.float32).max)
CLEAN_ERRORS = (ValueError, TypeError, NotFittedError)

# ------------------------------------------------------------------ helpers


def _finite(out):
    if isinstance(out, dict):
        return all(_finite(v) for v in out.values())
    if isinstance(out, (tuple, list)):
        return all(_finite(v) for v in out)
    if isinstance(out, torch.Tensor):
        return not out.is_floating_point() or bool(torch.isfinite(out).all())
    if isinstance(out, (np.ndarray, float, np.floating)):
        out = np.asarray(out)
        return out.dtype.kind != "f" or bool(np.isfinite(out).all())
    return True


def assert_clean_error(thunk, name=None):
    """``thunk()`` raises a ValueError/TypeError (naming ``name`` if given)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(CLEAN_ERRORS) as info:
            thunk()
    if name is not None and not isinstance(info.value, NotFittedError):
        assert name in str(info.value), (
            f"the message does not name {name!r}: {info.value}")


def assert_works(thunk):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = thunk()
    assert _finite(out), "NaN or infinity in the output"
    return out


def _as_numpy(value):
    return value.numpy() if isinstance(value, torch.Tensor) else np.asarray(value)


def _like(valid, array):
    if isinstance(valid, torch.Tensor):
        return torch.as_tensor(np.ascontiguousarray(array))
    return array


# -------------------------------------------------------- corruption strategies

NON_FINITE = st.sampled_from([math.nan, math.inf, -math.inf])
TOO_LARGE = st.floats(min_value=3.5e38, max_value=1e300)
JUNK = st.one_of(st.booleans(), st.text(max_size=3), st.none().map(lambda _: [1.0]))


@st.composite
def bad_features(draw, valid, square=False, shapes=True, text=True):
    """An array the function must reject: a non-finite value somewhere, no rows,
    complex or text values, a scalar, or (``shapes``) a shape that does not fit.

    ``text=False`` leaves out arrays of numeric strings, which the estimators
    convert as scikit-learn's ``check_array`` does with a float dtype.
    """
    a = _as_numpy(valid).copy()
    kinds = ["value", "empty", "complex", "scalar"] + (["text"] if text else []) + (
        ["extra_axis", "shape"] if shapes else [])
    kind = draw(st.sampled_from(kinds))
    if kind == "value":
        flat = a.reshape(-1)
        flat[draw(st.integers(0, flat.size - 1))] = draw(NON_FINITE)
        return _like(valid, flat.reshape(a.shape))
    if kind == "empty":
        return _like(valid, a[:0])
    if kind == "complex":
        return a.astype(np.complex64)
    if kind == "text":
        return a.astype(str)
    if kind == "scalar":
        return _like(valid, np.float32(draw(st.floats(0, 1))))
    if kind == "extra_axis":
        return _like(valid, a[..., None])
    return _like(valid, a[:, :-1] if square or a.ndim == 2 else a[..., :-1])


@st.composite
def bad_codes(draw, valid, n_classes, length=True, shape=True):
    """Class indices out of range, fractional or NaN, of the wrong shape or (where
    they label the rows of another argument) length."""
    a = _as_numpy(valid).copy()
    kind = draw(st.sampled_from(["range", "fraction", "nan"] + (["2d"] if shape else [])
                                + (["length"] if length else [])))
    i = draw(st.integers(0, len(a) - 1))
    if kind == "range":
        a[i] = draw(st.one_of(st.integers(n_classes, 10 ** 6),
                              st.integers(-10 ** 6, -1)))
        return _like(valid, a)
    if kind in ("fraction", "nan"):
        b = a.astype(np.float64)
        b[i] = math.nan if kind == "nan" else b[i] + draw(st.floats(0.01, 0.99))
        return _like(valid, b)
    if kind == "2d":
        return _like(valid, np.stack([a, a], axis=1))
    return _like(valid, a[:-1] if draw(st.booleans()) else np.r_[a, a[:1]])


@st.composite
def bad_labels(draw, valid):
    """Labels of the wrong shape or length, or none (any values are labels)."""
    a = np.asarray(valid)
    kind = draw(st.sampled_from(["2d", "length", "none", "nan"]))
    if kind == "2d":
        return np.stack([a, a], axis=1)
    if kind == "none":
        return None
    if kind == "nan":
        b = a.astype(float)
        b[draw(st.integers(0, len(b) - 1))] = math.nan
        return b
    return a[:-1]


@st.composite
def bad_weights(draw, valid):
    a = np.asarray(valid, dtype=float).copy()
    kind = draw(st.sampled_from(["value", "negative", "zeros", "length", "2d"]))
    if kind == "value":
        a[draw(st.integers(0, len(a) - 1))] = draw(NON_FINITE)
    elif kind == "negative":
        a[draw(st.integers(0, len(a) - 1))] = draw(st.floats(-1e6, -1e-6))
    elif kind == "zeros":
        a[:] = 0.0
    elif kind == "length":
        a = a[:-1]
    else:
        a = np.stack([a, a], axis=1)
    return a


BAD_SCALARS = {
    # a finite real >= 0 or > 0
    "real": st.one_of(NON_FINITE, TOO_LARGE, st.floats(-1e6, -1e-6), JUNK),
    # any finite real
    "anyreal": st.one_of(NON_FINITE, TOO_LARGE, JUNK),
    # a finite real or +inf (GAIR's lambda)
    "lambda": st.one_of(st.sampled_from([math.nan, -math.inf]), JUNK),
    # a clip bound: None, +-inf or a float32 number
    "clip": st.one_of(st.just(math.nan), TOO_LARGE, st.booleans(), st.text(max_size=3)),
    # an integer >= 0
    "int0": st.one_of(st.integers(-10 ** 6, -1), st.floats(0.1, 100).filter(
        lambda v: v != int(v)), st.just(math.nan), JUNK),
    # an integer >= 1
    "int": st.one_of(st.integers(-10 ** 6, 0), st.floats(0.1, 100).filter(
        lambda v: v != int(v)), st.just(math.nan), JUNK),
    # a probability
    "prob": st.one_of(st.floats(1.0001, 1e6), st.floats(-1e6, -1e-6),
                      st.just(math.nan)),
}


def bad_values(role, valid):
    if role in ("X", "images"):
        return bad_features(valid)
    if role == "values":    # any shape is fine (flattened, or any number of columns)
        return bad_features(valid, shapes=False)
    if role == "square":
        return bad_features(valid, square=True)
    if role == "codes":
        return bad_codes(valid, n_classes=api.C)
    if role == "counts":        # elementwise: any shape, values in [0, n_steps]
        return bad_codes(valid, n_classes=4, length=False, shape=False)
    if role == "free_codes":    # any number of them
        return bad_codes(valid, n_classes=api.C, length=False)
    if role == "labels":
        return bad_labels(valid)
    if role == "weights":
        return bad_weights(valid)
    if role == "logits":
        return st.sampled_from(["nan", "1d", "int", "short"]).map(
            lambda kind: _bad_logits(valid, kind))
    if role == "radii":
        return st.sampled_from([[0.0, math.nan], [-0.1, 0.1], []])
    if role == "accuracies":
        return st.sampled_from([[1.5, 0.5], [math.nan, 0.5], [0.5]])
    return BAD_SCALARS[role]


def _bad_logits(valid, kind):
    a = _as_numpy(valid).copy()
    if kind == "nan":
        a[0, 0] = math.nan
        return torch.as_tensor(a)
    if kind == "1d":
        return torch.as_tensor(a[:, 0].copy())
    if kind == "int":
        return torch.as_tensor(a).long()
    return torch.as_tensor(a[:-1].copy())


# ------------------------------------------------------------ the registry

CALLS = api.function_calls()
ARGUMENTS = [(name, arg, role) for name, call in CALLS.items()
             for arg, role in call.roles.items()]


def test_registry_covers_every_public_function():
    names = {name for name, _ in api.public_functions()}
    missing = sorted(names - set(CALLS) - api.NOT_DATA)
    assert not missing, (f"public functions without an entry in tests/_public_api.py: "
                         f"{missing}")


@pytest.mark.parametrize("name", sorted(CALLS))
def test_valid_call_works(name):
    assert_works(CALLS[name])


def _valid_value(call, arg):
    if arg in call.kwargs:
        return call.kwargs[arg]
    # a scalar left at its default: its bad values do not depend on it
    return None


@pytest.mark.parametrize("name, arg, role", ARGUMENTS,
                         ids=[f"{n}-{a}" for n, a, _ in ARGUMENTS])
@given(data=st.data())
def test_function_rejects_bad_argument(name, arg, role, data):
    call = CALLS[name]
    value = data.draw(bad_values(role, _valid_value(call, arg)), label=arg)
    # a wrong count of labels may be reported as a mismatch with X (or logits)
    named = None if role in ("codes", "free_codes", "labels", "counts") else arg
    assert_clean_error(lambda: call(**{arg: value}), named)


ARRAY_ARGUMENTS = [(name, arg) for name, arg, role in ARGUMENTS
                   if role in ("X", "values", "images", "codes", "free_codes",
                               "labels", "counts")
                   and not isinstance(_valid_value(CALLS[name], arg), torch.Tensor)]


@pytest.mark.parametrize("name, arg", ARRAY_ARGUMENTS,
                         ids=[f"{n}-{a}" for n, a in ARRAY_ARGUMENTS])
def test_function_takes_negative_strides_and_lists(name, arg):
    call = CALLS[name]
    valid = np.asarray(_valid_value(call, arg))
    expected = assert_works(lambda: call(**{arg: valid}))
    # X[::-1][::-1] is the same data, seen through a negative stride
    flipped = valid[::-1].copy()[::-1]
    assert flipped.strides[0] < 0
    out = assert_works(lambda: call(**{arg: flipped}))
    assert_works(lambda: call(**{arg: valid.tolist()}))
    if isinstance(expected, float):
        assert out == pytest.approx(expected)


# ------------------------------------------------- estimators and attacks

X, Y = api.X, api.Y


def _first_configs(items):
    seen, out = set(), []
    for est in items:
        if type(est) not in seen:
            seen.add(type(est))
            out.append(est)
    return out


EST = _first_configs(ESTIMATORS)
ATT = _first_configs([est for _, _, est in ATTACKS])


def _run(est):
    """What fitting (or attacking) means for ``est``."""
    if hasattr(est, "perturb") and not hasattr(est, "fit"):
        return est.perturb(api.MODEL, torch.tensor(X), torch.tensor(Y))
    if hasattr(est, "predict"):
        return est.fit(X, Y)
    return est.fit_transform(X, Y)


def _real_params(est):
    """The parameters constrained to real intervals (finite by default)."""
    out = []
    for name, constraints in type(est)._parameter_constraints.items():
        if name in est.get_params() and any(
                isinstance(c, Interval) and c.type is not numbers.Integral
                for c in constraints):
            out.append(name)
    return out


REAL_PARAMS = [(est, name) for est in EST + ATT for name in _real_params(est)]


@pytest.mark.parametrize("est, name", REAL_PARAMS,
                         ids=[f"{type(e).__name__}-{n}" for e, n in REAL_PARAMS])
@given(value=st.one_of(st.just(math.nan), TOO_LARGE, st.floats(-1e300, -3.5e38)))
def test_real_parameter_rejects_nan_and_float32_overflow(est, name, value):
    # NaN passes comparisons and 1e39 overflows float32: both must be rejected
    assert_clean_error(lambda: _run(clone(est).set_params(**{name: value})), name)


@pytest.mark.parametrize("est", EST, ids=lambda e: type(e).__name__)
@given(data=st.data())
def test_fit_rejects_bad_data(est, data):
    if data.draw(st.booleans(), label="corrupt X"):
        # any shape of samples is a valid training set
        X_bad = data.draw(bad_features(X, shapes=False, text=False), label="X")
        assert_clean_error(lambda: _run_fit(clone(est), X_bad, Y))
    else:
        y_bad = data.draw(bad_labels(Y), label="y")
        assert_clean_error(lambda: _run_fit(clone(est), X, y_bad))


def _run_fit(est, X_, y_):
    return est.fit(X_, y_) if hasattr(est, "predict") else est.fit_transform(X_, y_)


FITTED = {}


def _fitted(est):
    key = type(est)
    if key not in FITTED:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            FITTED[key] = _run_fit(clone(est), X, Y) if hasattr(est, "predict") \
                else clone(est).fit(X, Y)
    return FITTED[key]


METHODS = [(est, method) for est in EST
           for method in ("predict", "predict_proba", "decision_function", "transform",
                          "score")
           if hasattr(est, method)]


@pytest.mark.parametrize("est, method", METHODS,
                         ids=[f"{type(e).__name__}-{m}" for e, m in METHODS])
@given(data=st.data())
def test_fitted_method_rejects_bad_X(est, method, data):
    fitted = _fitted(est)
    X_bad = data.draw(bad_features(X, text=False), label="X")
    fn = getattr(fitted, method)
    assert_clean_error(lambda: fn(X_bad, Y) if method == "score" else fn(X_bad))


@pytest.mark.parametrize("est, method", METHODS,
                         ids=[f"{type(e).__name__}-{m}" for e, m in METHODS])
def test_fitted_method_takes_negative_strides(est, method):
    fitted = _fitted(est)
    fn = getattr(fitted, method)
    flipped = X[::-1].copy()[::-1]
    args = (flipped, Y) if method == "score" else (flipped,)
    out = assert_works(lambda: fn(*args))
    expected = fn(X, Y) if method == "score" else fn(X)
    np.testing.assert_allclose(np.asarray(out, dtype=float),
                               np.asarray(expected, dtype=float), rtol=1e-5)


@pytest.mark.parametrize("attack", ATT, ids=lambda a: type(a).__name__)
@given(data=st.data())
def test_attack_rejects_bad_data(attack, data):
    Xt, yt = torch.tensor(X), torch.tensor(Y)
    if data.draw(st.booleans(), label="corrupt X"):
        X_bad = data.draw(bad_features(Xt if data.draw(st.booleans()) else X),
                          label="X")
        assert_clean_error(lambda: clone(attack).perturb(api.MODEL, X_bad, yt))
    else:
        y_bad = data.draw(bad_codes(yt, n_classes=api.C), label="y")
        assert_clean_error(lambda: clone(attack).perturb(api.MODEL, Xt, y_bad), "y")


@pytest.mark.parametrize("attack", ATT, ids=lambda a: type(a).__name__)
def test_attack_takes_negative_strides(attack):
    flipped = X[::-1].copy()[::-1]
    out = assert_works(lambda: clone(attack).perturb(api.MODEL, flipped, Y))
    assert out.shape == X.shape


# ------------------------------------------- one regression test per root cause


def test_training_that_diverges_is_an_error_not_nan_weights():
    from sklearn_robust import AdversarialClassifier

    clf = AdversarialClassifier(lr=1e30, max_epochs=3, n_steps=1, random_state=0,
                                clip_min=None, clip_max=None)
    assert_clean_error(lambda: clf.fit(X, Y), "diverged")


def test_learner_that_diverges_is_an_error_and_stays_unfitted():
    from sklearn_robust.dataset_learning import NTKRobustDistiller

    learner = NTKRobustDistiller(lr=1e30, max_iter=2, target_batch_size=8, n_steps=1,
                                 clip_min=None, clip_max=None, random_state=0)
    # the loss, or the kernel of the runaway set, stops the fit
    assert_clean_error(lambda: learner.fit(X, Y))
    assert not hasattr(learner, "X_robust_")


def test_scorer_on_empty_data_is_an_error_not_nan():
    from sklearn_robust.metrics import robust_accuracy_score

    assert_clean_error(lambda: robust_accuracy_score(api.LINEAR, X[:0], Y[:0], eps=0.1,
                                                     attack="pgd"), "X")


def test_losses_check_class_indices_against_the_logits():
    from sklearn_robust.attacks import cw_loss

    logits = torch.randn(4, 3)
    assert_clean_error(lambda: cw_loss(logits, torch.tensor([0, 1, 2, 3])), "y")
    assert_clean_error(lambda: cw_loss(logits, torch.tensor([0.0, 1.5, 2.0, 0.0])), "y")


def test_user_arrays_are_never_modified():
    from sklearn_robust.metrics import robust_accuracy_score

    X_copy, Y_copy = X.copy(), Y.copy()
    robust_accuracy_score(api.LINEAR, X, Y, eps=0.1, attack="pgd")
    for est in EST:
        _fitted(est)
    for attack in ATT:
        clone(attack).perturb(api.MODEL, X, Y)
    np.testing.assert_array_equal(X, X_copy)
    np.testing.assert_array_equal(Y, Y_copy)


def test_scalars_keep_their_shape_through_the_stride_fix():
    # negative strides are copied away, but a 0-d input must stay 0-d: a scalar
    # kappa gives a scalar weight, a 0-d label is not a 1-D array of one label
    from sklearn_robust.attacks import cw_loss
    from sklearn_robust.classifiers import gair_weights

    assert gair_weights(5, n_steps=10).shape == ()
    assert_clean_error(lambda: cw_loss(torch.randn(1, 3), np.int64(1)), "y")
