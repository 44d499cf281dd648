import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from sklearn_robust.metrics import RobustnessCurveDisplay, robust_accuracy_score

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")


def test_from_estimator_plots_several_curves_to_file(small_digits, tmp_path):
    X, X_test, y, y_test = small_digits
    a = LogisticRegression(max_iter=200).fit(X, y)
    b = LogisticRegression(C=0.01, max_iter=200).fit(X, y)
    disp = RobustnessCurveDisplay.from_estimator(a, X_test, y_test,
                                                 eps=[0.1, 0.0, 0.05], attack="pgd")
    assert disp.eps.tolist() == [0.0, 0.05, 0.1]
    assert disp.robust_accuracy[0] == pytest.approx(a.score(X_test, y_test))
    assert disp.robust_accuracy[2] == pytest.approx(
        robust_accuracy_score(a, X_test, y_test, eps=0.1, attack="pgd"))
    other = RobustnessCurveDisplay.from_estimator(b, X_test, y_test, eps=[0.0, 0.1],
                                                  attack="pgd", name="C=0.01",
                                                  ax=disp.ax_)
    assert other.ax_ is disp.ax_ and len(disp.ax_.get_lines()) == 2
    path = tmp_path / "curve.png"
    disp.figure_.savefig(path)
    assert path.stat().st_size > 1000
    np.testing.assert_allclose(disp.line_.get_xdata(), [0.0, 0.05, 0.1])


def test_from_predictions_sorts_and_validates():
    disp = RobustnessCurveDisplay.from_predictions([0.2, 0.0], [0.3, 0.9], name="x")
    assert disp.eps.tolist() == [0.0, 0.2]
    assert disp.robust_accuracy.tolist() == [0.9, 0.3]
    with pytest.raises(ValueError, match="eps"):
        RobustnessCurveDisplay.from_predictions([-0.1, 0.1], [0.5, 0.4])
    with pytest.raises(ValueError, match="same length"):
        RobustnessCurveDisplay.from_predictions([0.1], [0.5, 0.4])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        RobustnessCurveDisplay.from_predictions([0.1], [1.5])
