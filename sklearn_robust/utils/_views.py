"""Differentiable torch views of fitted estimators, for white-box attacks."""

# SPDX-License-Identifier: BSD-3-Clause

import numpy as np
import torch
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import MinMaxScaler, StandardScaler
from sklearn.utils.validation import check_is_fitted
from skorch import NeuralNet

from ._torch import module_device

__all__ = ["get_torch_view", "TorchView"]


class _Affine(torch.nn.Module):
    """``x * scale + shift`` over the feature axis (a fitted scaler)."""

    def __init__(self, scale, shift):
        super().__init__()
        self.register_buffer("scale", torch.as_tensor(np.asarray(scale), dtype=torch.float32))
        self.register_buffer("shift", torch.as_tensor(np.asarray(shift), dtype=torch.float32))

    def forward(self, x):
        return x * self.scale.to(x.dtype) + self.shift.to(x.dtype)


def _scaler_view(step):
    if isinstance(step, StandardScaler):
        mean = step.mean_ if step.with_mean else np.zeros(step.n_features_in_)
        scale = step.scale_ if step.with_std else np.ones(step.n_features_in_)
        return _Affine(1.0 / scale, -mean / scale)
    return _Affine(step.scale_, step.min_)


def _transformer_view(step):
    """A torch module equal to ``step.transform``, or None if there is none."""
    if step is None or step == "passthrough":
        return torch.nn.Identity()
    if getattr(step, "_is_identity_at_transform", False):
        # robust-dataset transformers: transform(X) returns X unchanged
        return torch.nn.Identity()
    if isinstance(step, (StandardScaler, MinMaxScaler)):
        check_is_fitted(step)
        return _scaler_view(step)
    return None


class TorchView(torch.nn.Module):
    """A fitted estimator seen as a torch module from inputs to class scores.

    Parameters
    ----------
    module : torch.nn.Module
        Maps a float batch shaped like the estimator's input to logits.
    classes : ndarray
        The estimator's ``classes_``; column ``j`` of the output scores
        ``classes[j]``.
    """

    def __init__(self, module, classes):
        super().__init__()
        self.module = module
        self.classes = np.asarray(classes)

    def forward(self, x):
        return self.module(x)

    @property
    def device(self):
        return module_device(self.module)

    def encode(self, y):
        """Map labels to column indices; unseen labels raise a ``ValueError``."""
        lookup = {c: i for i, c in enumerate(self.classes.tolist())}
        labels = np.asarray(y).tolist()
        unseen = sorted({v for v in labels if v not in lookup}, key=repr)
        if unseen:
            raise ValueError(f"y contains labels unseen in fit: {unseen}.")
        return np.array([lookup[v] for v in labels], dtype=np.int64)


def get_torch_view(estimator):
    """Return a :class:`TorchView` of a fitted estimator for white-box attacks.

    Supported: skorch nets (this library's classifiers included) whose ``module_``
    returns logits, and :class:`~sklearn.pipeline.Pipeline` objects whose final
    step is supported and whose other steps have exact torch equivalents
    (``StandardScaler``, ``MinMaxScaler``, ``"passthrough"`` and this library's
    robust-dataset transformers, which are the identity at predict time).

    Raises
    ------
    TypeError
        If the estimator has no differentiable view.
    """
    if isinstance(estimator, Pipeline):
        layers = []
        for name, step in estimator.steps[:-1]:
            layer = _transformer_view(step)
            if layer is None:
                raise TypeError(
                    f"Pipeline step {name!r} ({type(step).__name__}) has no exact "
                    "torch equivalent, so the pipeline cannot be attacked white-box.")
            layers.append(layer)
        final = get_torch_view(estimator.steps[-1][1])
        device = final.device
        layers = [layer.to(device) for layer in layers]
        return TorchView(torch.nn.Sequential(*layers, final.module), final.classes)
    if isinstance(estimator, NeuralNet):
        check_is_fitted(estimator)
        return TorchView(estimator.module_, estimator.classes_)
    raise TypeError(
        f"{type(estimator).__name__} has no differentiable torch view; supported are "
        "skorch nets (including sklearn_robust classifiers) and Pipelines of "
        "supported steps.")
