"""precision=: autocast training (bf16, fp16 with a gradient scaler) and evaluation."""

import numpy as np
import pytest
import torch

from sklearn_robust import AdversarialClassifier, TRADESClassifier
from sklearn_robust.metrics import robust_accuracy_score

KW = dict(eps=0.1, n_steps=3, step_size=0.05, max_epochs=8, lr=3e-3, random_state=0,
          module__hidden_layer_sizes=(64,))


@pytest.fixture(scope="module")
def data(digits_split):
    X, X_test, y, y_test = digits_split
    return X[:400], X_test[:150], y[:400], y_test[:150]


def _record_dtypes(clf):
    """Dtypes of the first layer's outputs, recorded by a forward hook."""
    seen = []
    layer = next(m for m in clf.module_.modules() if isinstance(m, torch.nn.Linear))
    layer.register_forward_hook(lambda mod, inp, out: seen.append(out.dtype))
    return seen


class Recording(AdversarialClassifier):
    """Records the first layer's output dtype in training and afterwards."""

    def initialize_module(self):
        super().initialize_module()
        self.seen_ = _record_dtypes(self)
        return self


@pytest.mark.parametrize("precision, dtype", [("bf16", torch.bfloat16),
                                              ("fp16", torch.float16)])
def test_training_runs_in_the_lower_precision(precision, dtype, data):
    X, X_test, y, y_test = data
    clf = Recording(precision=precision, **KW).fit(X, y)
    # attack and training forward passes ran in the lower precision ...
    assert set(clf.seen_) == {dtype}
    # ... predictions in float32
    clf.seen_.clear()
    proba = clf.predict_proba(X_test)
    assert set(clf.seen_) == {torch.float32} and proba.dtype == np.float32
    assert hasattr(clf, "grad_scaler_") == (precision == "fp16")
    if precision == "fp16":
        assert clf.grad_scaler_.get_scale() > 0
    # it learned as float32 training does (measured here: within 0.04)
    fp32 = AdversarialClassifier(**KW).fit(X, y)
    assert clf.score(X_test, y_test) > fp32.score(X_test, y_test) - 0.1
    assert all(p.dtype == torch.float32 for p in clf.module_.parameters())


def test_refit_in_fp32_drops_the_scaler(data):
    X, _, y, _ = data
    clf = TRADESClassifier(precision="fp16", **{**KW, "max_epochs": 1}).fit(X, y)
    assert hasattr(clf, "grad_scaler_")
    clf.set_params(precision="fp32").fit(X, y)
    assert not hasattr(clf, "grad_scaler_")


def test_invalid_precision(data):
    X, _, y, _ = data
    with pytest.raises(ValueError, match="precision"):
        AdversarialClassifier(precision="fp8", **KW).fit(X, y)
    with pytest.raises(ValueError, match="precision"):
        robust_accuracy_score(AdversarialClassifier(**{**KW, "max_epochs": 1}).fit(
            X, y), X, y, eps=0.1, precision="half")


def test_evaluation_precision(data):
    X, X_test, y, y_test = data
    clf = AdversarialClassifier(**KW).fit(X, y)
    seen = _record_dtypes(clf)
    fp32 = robust_accuracy_score(clf, X_test, y_test, eps=0.1, attack="pgd")
    assert set(seen) == {torch.float32}
    seen.clear()
    bf16 = robust_accuracy_score(clf, X_test, y_test, eps=0.1, attack="pgd",
                                 precision="bf16")
    assert set(seen) == {torch.bfloat16}
    assert abs(bf16 - fp32) <= 0.05
