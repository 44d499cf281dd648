"""Each gradient-masking check fires on a model built to trigger it, and only then."""

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression

from sklearn_robust.exceptions import GradientMaskingWarning, NotLogitsWarning
from sklearn_robust.metrics import gradient_masking_report


class TorchModelEstimator:
    """A fitted 'estimator' around a torch module (labels 0..k-1)."""

    def __init__(self, module, n_classes):
        self.module = module
        self.classes_ = np.arange(n_classes)

    def torch_view(self):
        return self.module


class _MisleadingAbs(torch.autograd.Function):
    """|d| forward; backward points outward only while |d| < 0.2, inward beyond.

    Gradient ascent then settles around |d| = 0.2, inside the correct region
    (|d| < 0.25): small steps never leave it, large ones overshoot it.
    """

    @staticmethod
    def forward(ctx, d):
        ctx.save_for_backward(d)
        return d.abs()

    @staticmethod
    def backward(ctx, grad):
        (d,) = ctx.saved_tensors
        direction = torch.where(d.abs() < 0.2, d.sign(), -d.sign())
        return grad * direction


class RingModel(torch.nn.Module):
    """Class 0 iff |x0 - 0.5| < 0.25; ``masked`` makes the gradient misleading."""

    def __init__(self, masked):
        super().__init__()
        self.masked = masked

    def forward(self, x):
        d = x[:, :1] - 0.5
        r = _MisleadingAbs.apply(d) if self.masked else d.abs()
        return torch.cat([torch.zeros_like(r), 8 * (r - 0.25)], dim=1)


class Quantised(torch.nn.Module):
    """A linear model on inputs rounded to a coarse grid: zero input gradients."""

    def __init__(self, weight):
        super().__init__()
        self.linear = torch.nn.Linear(weight.shape[1], weight.shape[0], bias=False)
        with torch.no_grad():
            self.linear.weight.copy_(weight)

    def forward(self, x):
        return self.linear(torch.round(x * 4) / 4)


@pytest.fixture
def ring_data():
    rng = np.random.RandomState(0)
    X = np.column_stack([np.full(100, 0.5), rng.rand(100)]).astype(np.float32)
    return X, np.zeros(100, dtype=int)


def test_well_behaved_linear_model_fires_nothing(small_digits):
    X, X_test, y, y_test = small_digits
    est = LogisticRegression(max_iter=300).fit(X, y)
    report = gradient_masking_report(est, X_test, y_test, eps=0.1, n_samples=60,
                                     square_queries=300)
    assert not report.masking_suspected, report.messages
    assert report.values["unbounded_accuracy"] == 0.0


def test_misleading_gradients_fire_step_and_black_box_checks(ring_data):
    X, y = ring_data
    est = TorchModelEstimator(RingModel(masked=True), 2)
    with pytest.warns(GradientMaskingWarning):
        report = gradient_masking_report(est, X, y, eps=0.3, n_samples=60,
                                         square_queries=300)
    assert report.flags["more_steps_raise_accuracy"], report.values
    assert report.flags["black_box_beats_white_box"], report.values
    honest = gradient_masking_report(TorchModelEstimator(RingModel(masked=False), 2),
                                     X, y, eps=0.3, n_samples=60, warn=False,
                                     square_queries=300)
    assert not honest.flags["more_steps_raise_accuracy"]
    assert not honest.flags["black_box_beats_white_box"]
    assert honest.values["pgd100_accuracy"] == 0.0


def test_zero_gradients_fire(small_digits):
    X, X_test, y, y_test = small_digits
    W = torch.tensor(LogisticRegression(max_iter=300).fit(X, y).coef_,
                     dtype=torch.float32)
    est = TorchModelEstimator(Quantised(W), 10)
    report = gradient_masking_report(est, X_test, y_test, eps=0.1, n_samples=30,
                                     square_queries=300, warn=False,
                                     checks=["zero_gradients",
                                             "black_box_beats_white_box"])
    assert report.flags["zero_gradients"]
    assert report.values["zero_gradient_fraction"] == 1.0
    assert report.flags["black_box_beats_white_box"]


def test_probabilities_and_randomness_fire(small_digits):
    X, X_test, y, y_test = small_digits
    linear = torch.nn.Linear(64, 10)
    probs = TorchModelEstimator(
        torch.nn.Sequential(linear, torch.nn.Softmax(dim=1)), 10)
    with pytest.warns(NotLogitsWarning):
        report = gradient_masking_report(probs, X_test, y_test, eps=0.1, n_samples=20,
                                         checks=["probabilities", "randomized"])
    assert report.flags["probabilities"]

    class Noisy(torch.nn.Module):
        def forward(self, x):
            return linear(torch.nn.functional.dropout(x, 0.5, training=True))

    report = gradient_masking_report(TorchModelEstimator(Noisy(), 10), X_test, y_test,
                                     eps=0.1, n_samples=20, warn=False,
                                     checks=["probabilities", "randomized"])
    assert report.flags["randomized"] and not report.flags["probabilities"]
    with pytest.raises(ValueError, match="Unknown checks"):
        gradient_masking_report(probs, X_test, y_test, eps=0.1, checks=["nope"])


def test_black_box_check_reports_counts_and_fires_above_tolerance(ring_data, capsys):
    X, y = ring_data
    est = TorchModelEstimator(RingModel(masked=True), 2)
    report = gradient_masking_report(est, X, y, eps=0.3, n_samples=60,
                                     square_queries=300, warn=False, verbose=1,
                                     checks=["black_box_beats_white_box"])
    fooled = report.values["square_only_fooled"]
    assert fooled > 0
    assert report.values["square_only_fooled_fraction"] == pytest.approx(fooled / 60)
    assert f"{fooled} of 60 points" in report.messages["black_box_beats_white_box"]
    assert "black_box_beats_white_box: FIRED" in capsys.readouterr().out
    # the same count under a tolerance above its fraction is not a flag
    lenient = gradient_masking_report(est, X, y, eps=0.3, n_samples=60,
                                      square_queries=300, warn=False,
                                      tolerance=min(1.0, fooled / 60 + 0.01),
                                      checks=["black_box_beats_white_box"])
    assert lenient.values["square_only_fooled"] == fooled
    assert not lenient.flags["black_box_beats_white_box"]
