"""The robust-dataset transformer contract, on a minimal learner."""

import functools
import warnings

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline

from sklearn_robust.dataset_learning import BaseRobustDataset, RobustDatasetSampler
from sklearn_robust.metrics import robust_accuracy_score
from sklearn_robust.utils._views import get_torch_view


class ShrinkToward(BaseRobustDataset):
    """Moves every image halfway to its class mean; optionally keeps k per class."""

    def __init__(self, *, per_class=None, clip_min=0.0, clip_max=1.0):
        self.per_class = per_class
        self.clip_min = clip_min
        self.clip_max = clip_max

    def _learn(self, X, y):
        out = X.copy()
        for c in np.unique(y):
            out[y == c] = 0.5 * X[y == c] + 0.5 * X[y == c].mean(axis=0)
        if self.per_class is None:
            return out, y
        keep = np.concatenate([np.flatnonzero(y == c)[:self.per_class]
                               for c in np.unique(y)])
        return out[keep], y[keep]

    def _is_same_size(self):
        return self.per_class is None


def test_same_size_contract(small_digits):
    X, X_test, y, _ = small_digits
    X_before = X.copy()
    t = ShrinkToward()
    Xr = t.fit_transform(X, y)
    assert Xr.shape == X.shape and np.array_equal(t.y_robust_, y)
    np.testing.assert_allclose(Xr, t.X_robust_)
    np.testing.assert_array_equal(t.transform(X_test), X_test)   # identity
    np.testing.assert_array_equal(X, X_before)                   # input untouched


def test_pipeline_trains_on_robust_rows_and_scores_downstream(small_digits):
    X, X_test, y, y_test = small_digits
    pipe = make_pipeline(ShrinkToward(), LogisticRegression(max_iter=200)).fit(X, y)
    direct = LogisticRegression(max_iter=200).fit(ShrinkToward().fit_transform(X, y), y)
    np.testing.assert_allclose(pipe[-1].coef_, direct.coef_, rtol=1e-6, atol=1e-8)
    # the transformer is the identity in the torch view: scoring attacks the model
    view_scores = robust_accuracy_score(pipe, X_test, y_test, eps=0.1, attack="pgd")
    model_scores = robust_accuracy_score(pipe[-1], X_test, y_test, eps=0.1,
                                         attack="pgd")
    assert view_scores == model_scores
    assert get_torch_view(pipe).classes.tolist() == list(range(10))


def test_support_set_mode_needs_the_sampler(small_digits):
    X, _, y, _ = small_digits
    with pytest.raises(ValueError, match="RobustDatasetSampler"):
        make_pipeline(ShrinkToward(per_class=3), LogisticRegression()).fit(X, y)
    sampler = RobustDatasetSampler(ShrinkToward(per_class=3))
    assert not hasattr(sampler, "transform")
    Xs, ys = sampler.fit_resample(X, y)
    assert Xs.shape == (30, 64) and np.bincount(ys).tolist() == [3] * 10


def test_bad_input(small_digits):
    X, _, y, _ = small_digits
    with pytest.raises(ValueError, match="clip range"):
        ShrinkToward().fit(X * 2, y)
    with pytest.raises(ValueError, match="one class"):
        ShrinkToward().fit(X, np.zeros_like(y))
    with pytest.raises(ValueError, match="needs y"):
        ShrinkToward().fit_transform(X)
    t = ShrinkToward().fit(X, y)
    with pytest.raises(ValueError, match="features"):
        t.transform(X[:, :10])
    with pytest.raises(TypeError, match="robust-dataset"):
        RobustDatasetSampler(LogisticRegression()).fit_resample(X, y)


def test_fit_transform_and_fit_resample_take_no_fit_parameters(small_digits):
    X, _, y, _ = small_digits
    # the learners' fit takes no parameters: an extra one is refused at the
    # entry point, with its name, not deep inside fit
    with pytest.raises(TypeError, match="sample_weight"):
        ShrinkToward().fit_transform(X, y, sample_weight=np.ones(len(y)))
    with pytest.raises(TypeError, match="sample_weight"):
        RobustDatasetSampler(ShrinkToward()).fit_resample(
            X, y, sample_weight=np.ones(len(y)))


# ------------------------------------------------------- attack= of the learners

def _learners():
    from sklearn_robust.dataset_learning import (
        NTKRobustDistiller,
        TriLevelDatasetLearner,
    )
    from sklearn_robust.nn import MLP

    return [NTKRobustDistiller(eps=0.1, max_iter=3, target_batch_size=40, n_steps=3,
                               random_state=0),
            TriLevelDatasetLearner(eps=0.1, module=functools.partial(
                MLP, hidden_layer_sizes=()), max_iter=3, inner_steps=2, inner_lr=0.5,
                n_steps=3, batch_size=32, random_state=0)]


@pytest.mark.parametrize("index", [0, 1], ids=["ntk", "trilevel"])
def test_attack_parameter(small_digits, index):
    from sklearn.base import clone

    from sklearn_robust.attacks import FGSM, PGD

    X, _, y, _ = small_digits
    X, y = X[:80], y[:80]
    learner = _learners()[index]
    default = clone(learner).fit_transform(X, y)
    # a user attack takes the learner's threat model (eps 0.5 here is replaced)
    # (n_steps=3 is not the default: the learner says that it is unused)
    with pytest.warns(UserWarning, match="n_steps of .* is ignored when attack"):
        fgsm = clone(learner).set_params(attack=FGSM(eps=0.5)).fit_transform(X, y)
    assert not np.allclose(fgsm, default)
    assert learner.get_params()["attack"] is None
    if index == 1:   # the default is cross-entropy PGD: the same PGD gives the same
        pgd = PGD(eps=0.5, n_steps=3, random_start=True, loss="ce")
        same = clone(learner).set_params(n_steps=10, attack=pgd)   # default n_steps
        with warnings.catch_warnings():
            warnings.filterwarnings("error", message=".*ignored when attack")
            np.testing.assert_array_equal(same.fit_transform(X, y), default)
    with pytest.raises(TypeError, match="attack must be None or an attack"):
        clone(learner).set_params(attack="pgd").fit(X, y)


class _Interrupted(ShrinkToward):
    """Sets fitted attributes, then is interrupted (as Ctrl-C would)."""

    def _learn(self, X, y):
        self.classes_ = np.unique(y)
        raise KeyboardInterrupt


def test_interrupted_fit_leaves_the_learner_as_it_was(small_digits):
    from sklearn.exceptions import NotFittedError
    from sklearn.utils.validation import check_is_fitted

    X, _, y, _ = small_digits
    learner = _Interrupted()
    with pytest.raises(KeyboardInterrupt):
        learner.fit(X, y)
    assert not any(k.endswith("_") for k in vars(learner))
    with pytest.raises(NotFittedError):
        check_is_fitted(learner)
    # fitted before: the earlier fit survives an interrupted refit unchanged
    fitted = ShrinkToward().fit(X, y)
    before = {k: v for k, v in vars(fitted).items()}
    fitted.__class__ = _Interrupted
    with pytest.raises(KeyboardInterrupt):
        fitted.fit(X[:50, :32], y[:50])
    assert vars(fitted).keys() == before.keys()
    assert fitted.n_features_in_ == 64 and fitted.X_robust_ is before["X_robust_"]


def test_transform_returns_a_new_array(small_digits):
    X, _, y, _ = small_digits
    X = np.ascontiguousarray(X, dtype=np.float32)
    out = ShrinkToward().fit(X, y).transform(X)
    np.testing.assert_array_equal(out, X)
    assert not np.shares_memory(out, X)
