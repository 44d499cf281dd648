"""White-box views through meta-estimators reproduce the estimators' own outputs."""

import warnings

import numpy as np
import pytest
import torch
from sklearn.calibration import CalibratedClassifierCV
from sklearn.compose import ColumnTransformer
from sklearn.decomposition import PCA
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, RandomizedSearchCV
from sklearn.pipeline import FeatureUnion, Pipeline, make_pipeline
from sklearn.preprocessing import MaxAbsScaler, MinMaxScaler, StandardScaler

from sklearn_robust.exceptions import BlackBoxAttackWarning
from sklearn_robust.metrics import robust_accuracy_score, robustness_report
from sklearn_robust.utils import get_torch_view


@pytest.fixture(scope="module")
def data():
    rng = np.random.RandomState(0)
    X = rng.uniform(size=(120, 6)).astype(np.float32)
    y = (X[:, 0] + 2 * X[:, 3] - X[:, 5] > 0.8).astype(int) + (X[:, 1] > 0.7)
    return X, y


def _logits(est, X):
    view = get_torch_view(est)
    with torch.no_grad():
        return view.eval()(torch.as_tensor(X)).double().numpy()


def _check_exact(est, X):
    """The view's scores are the estimator's decision function; argmax = predict."""
    out = _logits(est, X)
    np.testing.assert_allclose(out, est.decision_function(X), rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(est.classes_[out.argmax(1)], est.predict(X))


def _white_box_score(est, X, y):
    with warnings.catch_warnings():
        warnings.simplefilter("error", BlackBoxAttackWarning)
        return robust_accuracy_score(est, X, y, eps=0.1, attack="pgd")


META = {
    "nested make_pipeline": lambda: Pipeline(
        [("prep", make_pipeline(StandardScaler(), PCA(4))),
         ("clf", LogisticRegression())]),
    "FeatureUnion": lambda: make_pipeline(
        FeatureUnion([("scaled", StandardScaler()), ("pca", PCA(3))],
                     transformer_weights={"pca": 0.5}),
        LogisticRegression()),
    "ColumnTransformer": lambda: make_pipeline(
        ColumnTransformer([("a", StandardScaler(), [0, 2]),
                           ("b", MinMaxScaler(), slice(3, 5)),
                           ("c", "drop", [4])],
                          remainder="passthrough"),
        LogisticRegression()),
    "ColumnTransformer, remainder dropped, nested": lambda: make_pipeline(
        ColumnTransformer([("b", make_pipeline(MaxAbsScaler(), PCA(2)), [5, 1, 3]),
                           ("a", "passthrough", [0])],
                          transformer_weights={"a": 2.0}),
        LogisticRegression()),
}


@pytest.mark.parametrize("name", list(META))
def test_meta_estimator_views_are_exact(name, data):
    X, y = data
    est = META[name]().fit(X, y)
    _check_exact(est, X)
    _white_box_score(est, X, y)


@pytest.mark.parametrize("search", [
    lambda: GridSearchCV(make_pipeline(StandardScaler(), LogisticRegression()),
                         {"logisticregression__C": [0.1, 10.0]}, cv=2),
    lambda: RandomizedSearchCV(LogisticRegression(), {"C": [0.1, 1.0, 10.0]},
                               n_iter=2, cv=2, random_state=0),
])
def test_search_is_scored_as_its_best_estimator(search, data):
    X, y = data
    fitted = search().fit(X, y)
    _check_exact(fitted, X)
    assert _white_box_score(fitted, X, y) == \
        _white_box_score(fitted.best_estimator_, X, y)
    a = robustness_report(fitted, X, y, eps=0.1, attack="pgd")
    b = robustness_report(fitted.best_estimator_, X, y, eps=0.1, attack="pgd")
    np.testing.assert_array_equal(a.robust, b.robust)
    np.testing.assert_array_equal(a.X_adv, b.X_adv)


def test_search_without_refit_has_no_view(data):
    X, y = data
    search = GridSearchCV(LogisticRegression(), {"C": [1.0]}, cv=2,
                          refit=False).fit(X, y)
    with pytest.raises(TypeError, match="refit=False"):
        get_torch_view(search)


def test_imbalanced_learn_pipeline_is_white_box(data):
    imblearn = pytest.importorskip("imblearn")
    from imblearn.over_sampling import RandomOverSampler
    from imblearn.pipeline import make_pipeline as imb_pipeline
    from imblearn.under_sampling import RandomUnderSampler

    X, y = data
    for sampler in (RandomOverSampler(random_state=0),
                    RandomUnderSampler(random_state=0)):
        est = imb_pipeline(sampler, StandardScaler(), LogisticRegression()).fit(X, y)
        _check_exact(est, X)
        _white_box_score(est, X, y)
    assert imblearn.__version__


def test_calibrated_classifier_stays_black_box(data):
    X, y = data
    est = CalibratedClassifierCV(LogisticRegression(), cv=2).fit(X, y)
    with pytest.raises(TypeError):
        get_torch_view(est)
    with pytest.warns(BlackBoxAttackWarning):
        robust_accuracy_score(est, X[:20], y[:20], eps=0.1, attack="pgd")
