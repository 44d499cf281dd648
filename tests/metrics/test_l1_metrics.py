"""The metrics with the L1 threat model (norm="l1")."""

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression

from sklearn_robust.attacks import PGD
from sklearn_robust.metrics import (
    RobustnessCurveDisplay,
    gradient_masking_report,
    make_robust_scorer,
    robust_accuracy_score,
    robust_correct,
)
from sklearn_robust.utils._views import get_torch_view


@pytest.fixture(scope="module")
def linear_digits(small_digits):
    X, X_test, y, y_test = small_digits
    return LogisticRegression(max_iter=300).fit(X, y), X_test[:60], y_test[:60]


def _best_l1_margin(est, X, y):
    """Per point, the exact smallest L1 distance in [0, 1]^d to another class's
    half-space of a linear model, for the pair of classes closest that way
    (greedy: the coordinates with the largest |w_y - w_j| first)."""
    W, b = est.coef_, est.intercept_
    out = []
    for x, label in zip(X, y):
        t = int(np.flatnonzero(est.classes_ == label)[0])
        best = np.inf
        for j in range(len(W)):
            if j == t:
                continue
            w, gap = W[t] - W[j], (W[t] - W[j]) @ x + b[t] - b[j]
            if gap <= 0:
                best = 0.0
                break
            spent = 0.0
            for i in np.argsort(-np.abs(w)):
                room = x[i] if w[i] > 0 else 1 - x[i]
                move = min(room, gap / abs(w[i]))
                spent, gap = spent + move, gap - abs(w[i]) * move
                if gap <= 1e-12:
                    best = min(best, spent)
                    break
        out.append(best)
    return np.array(out)


def test_l1_robust_accuracy_of_a_linear_model_is_near_exact(linear_digits):
    est, X, y = linear_digits
    eps = 1.0
    exact = float((_best_l1_margin(est, X, y) > eps).mean())
    pgd = robust_accuracy_score(est, X, y, eps=eps, norm="l1",
                                attack=PGD(n_steps=50, random_state=0))
    fast = robust_accuracy_score(est, X, y, eps=eps, norm="l1", attack="fast",
                                 random_state=0)
    clean = est.score(X, y)
    assert exact < clean
    # no attack finds a point that does not exist; AutoAttack finds (almost) all
    # of those that do, PGD on the cross-entropy most (0.80 for 0.75)
    assert exact <= fast <= exact + 1 / 60 + 1e-9
    assert exact <= pgd <= exact + 0.1
    # the radius is read as an L1 radius: the same eps in L-inf is far stronger
    assert robust_accuracy_score(est, X, y, eps=eps, norm="linf", attack="pgd",
                                 random_state=0) < exact


def test_l1_scorer_and_robust_correct(linear_digits):
    est, X, y = linear_digits
    scorer = make_robust_scorer(eps=1.0, norm="l1", attack="pgd", random_state=0)
    assert "norm='l1'" in repr(scorer)
    correct = robust_correct(est, X, y, eps=1.0, norm="l1", attack="pgd",
                             random_state=0)
    assert scorer(est, X, y) == pytest.approx(correct.mean())


def test_l1_gradient_masking_report_on_a_linear_model(linear_digits):
    est, X, y = linear_digits
    report = gradient_masking_report(
        est, X, y, eps=1.0, norm="l1", n_samples=40, square_queries=200,
        checks=["unbounded_attack_fails", "more_steps_raise_accuracy",
                "black_box_beats_white_box"])
    assert not report.masking_suspected, report.messages
    # the "unbounded" L1 radius covers the whole box
    assert report.values["unbounded_accuracy"] == 0.0


def test_l1_robustness_curve_labels_its_norm(linear_digits):
    pytest.importorskip("matplotlib")
    import matplotlib

    matplotlib.use("Agg")
    est, X, y = linear_digits
    display = RobustnessCurveDisplay.from_estimator(
        est, X, y, eps=[0.0, 0.5, 2.0], norm="l1", attack="pgd", random_state=0)
    assert display.norm == "l1" and display.ax_.get_xlabel() == "eps (l1)"
    assert np.all(np.diff(display.robust_accuracy) <= 0)


def test_l1_attack_on_the_view_stays_in_the_ball(linear_digits):
    est, X, y = linear_digits
    view = get_torch_view(est)
    x = torch.as_tensor(X, dtype=torch.float32)
    codes = torch.as_tensor(view.resolve_classes(x).encode(y))
    x_adv = PGD(eps=1.5, norm="l1", random_state=0).perturb(view, x, codes)
    assert float((x_adv - x).abs().sum(dim=1).max()) <= 1.5 * (1 + 1e-6)
