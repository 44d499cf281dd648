"""Torch views of fitted estimators must reproduce the estimators' own outputs."""

import numpy as np
import pytest
import torch
from sklearn.decomposition import PCA
from sklearn.linear_model import LogisticRegression, RidgeClassifier, SGDClassifier
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import (
    FunctionTransformer,
    MaxAbsScaler,
    MinMaxScaler,
    StandardScaler,
)
from sklearn.svm import LinearSVC

from sklearn_robust.metrics import robust_accuracy_score
from sklearn_robust.utils._views import get_torch_view


def _scores(view, X):
    with torch.no_grad():
        return view.eval()(torch.tensor(X, dtype=torch.float32)).double().numpy()


def _reference_logits(est, X):
    """The estimator's own scores, in the view's (n_samples, n_classes) layout."""
    if hasattr(est, "decision_function"):
        d = est.decision_function(X)
        return np.column_stack([np.zeros_like(d), d]) if d.ndim == 1 else d
    return None


CLASSIFIERS = [
    LogisticRegression(max_iter=300),
    LinearSVC(max_iter=3000),
    SGDClassifier(random_state=0),
    RidgeClassifier(),
]
TRANSFORMERS = [None, StandardScaler(), MinMaxScaler(), MaxAbsScaler(), PCA(20),
                PCA(10, whiten=True), FunctionTransformer()]


@pytest.mark.parametrize("n_classes", [2, 10])
@pytest.mark.parametrize("clf", CLASSIFIERS, ids=lambda c: type(c).__name__)
@pytest.mark.parametrize("pre", TRANSFORMERS, ids=lambda t: repr(t))
def test_linear_views_match_decision_function(small_digits, clf, pre, n_classes):
    X, X_test, y, _ = small_digits
    keep = y < n_classes
    est = clf if pre is None else make_pipeline(pre, clf)
    est.fit(X[keep], y[keep])
    view = get_torch_view(est)
    # the reference in float64: scikit-learn keeps float32 inputs in float32
    ref = _reference_logits(est, X_test.astype(np.float64))
    np.testing.assert_allclose(_scores(view, X_test), ref,
                               atol=1e-5, rtol=1e-5)
    assert np.array_equal(view.classes[_scores(view, X_test).argmax(1)],
                          est.predict(X_test))


@pytest.mark.parametrize("activation", ["relu", "tanh", "logistic", "identity"])
@pytest.mark.parametrize("n_classes", [2, 10])
def test_mlp_view_matches_predict_proba(small_digits, activation, n_classes):
    X, X_test, y, _ = small_digits
    keep = y < n_classes
    est = MLPClassifier((16,), activation=activation, max_iter=50, random_state=0)
    est = make_pipeline(StandardScaler(), est).fit(X[keep], y[keep])
    logits = _scores(get_torch_view(est), X_test)
    proba = torch.softmax(torch.tensor(logits), dim=1).numpy()
    np.testing.assert_allclose(proba, est.predict_proba(X_test), atol=1e-6)


def test_linear_model_is_attacked_white_box(small_digits):
    X, X_test, y, y_test = small_digits
    est = make_pipeline(StandardScaler(), LogisticRegression(max_iter=300)).fit(X, y)
    robust = robust_accuracy_score(est, X_test, y_test, eps=0.1, attack="pgd")
    # a linear model on digits is far from robust at eps = 0.1
    assert robust < est.score(X_test, y_test) - 0.3


def test_utils_import_nothing_above_them():
    # utils sit below every other package of the library (exceptions aside)
    import ast
    from pathlib import Path

    import sklearn_robust.utils

    for path in Path(sklearn_robust.utils.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level >= 2:
                assert node.module == "exceptions", (path.name, node.module)
