"""The robust-dataset transformer contract, on a minimal learner."""

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
