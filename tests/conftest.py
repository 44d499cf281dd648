import numpy as np
import pytest
from sklearn.base import clone
from sklearn.metrics import check_scoring
from sklearn.model_selection import check_cv, train_test_split

from sklearn_robust.datasets import load_digits_images


@pytest.fixture(scope="session")
def digits_split():
    """Flat digits in [0, 1], stratified 70/30 split (read-only: do not modify)."""
    X, y = load_digits_images(flat=True)
    return train_test_split(X, y, test_size=0.3, stratify=y, random_state=0)


@pytest.fixture(scope="session")
def small_digits(digits_split):
    """A 300-sample training subset and 150-sample test subset of digits."""
    X_train, X_test, y_train, y_test = digits_split
    return X_train[:300], X_test[:150], y_train[:300], y_test[:150]


@pytest.fixture
def rng():
    return np.random.RandomState(0)


@pytest.fixture
def check_grid_search():
    """A check of a fitted ``GridSearchCV`` against hand-made fits of its grid.

    ``check(search, X, y)`` asserts that the refit candidate has the best mean
    score of the refit metric, and that each candidate's score on the first
    fold equals the score of a clone fitted there with that candidate's
    parameters (so each grid value reaches the fit, and fits are reproducible).
    """
    def check(search, X, y):
        key = search.refit if isinstance(search.refit, str) else "score"
        scores = search.cv_results_[f"mean_test_{key}"]
        assert np.all(np.isfinite(scores))
        assert scores[search.best_index_] == scores.max()
        scoring = search.scoring
        scorer = check_scoring(search.estimator, scoring[key] if isinstance(
            scoring, dict) else scoring)
        train, test = next(check_cv(search.cv, y, classifier=True).split(X, y))
        for i, params in enumerate(search.cv_results_["params"]):
            fold = clone(search.estimator).set_params(**params).fit(X[train], y[train])
            assert scorer(fold, X[test], y[test]) == pytest.approx(
                search.cv_results_[f"split0_test_{key}"][i]), params
        fitted = search.best_estimator_.get_params()
        assert all(fitted[name] == value for name, value in search.best_params_.items())

    return check


# hypothesis profiles of the property suite (tests/test_api_properties.py): "ci" is
# the default, bounded to the suite's budget; "thorough" for a local search
# (``pytest --hypothesis-profile=thorough tests/test_api_properties.py``)
try:
    from hypothesis import HealthCheck, settings
except ImportError:  # the suite then skips the property tests
    pass
else:
    settings.register_profile(
        "ci", max_examples=8, deadline=None, derandomize=True, print_blob=True,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    settings.register_profile(
        "thorough", max_examples=200, deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    settings.load_profile("ci")
