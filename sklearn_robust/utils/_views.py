"""Differentiable torch views of fitted estimators, for white-box attacks."""

# SPDX-License-Identifier: BSD-3-Clause

import functools

import numpy as np
import torch
from sklearn.compose import ColumnTransformer
from sklearn.decomposition import PCA
from sklearn.linear_model import LogisticRegression, RidgeClassifier, SGDClassifier
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import FeatureUnion, Pipeline
from sklearn.preprocessing import (
    FunctionTransformer,
    MaxAbsScaler,
    MinMaxScaler,
    StandardScaler,
)
from sklearn.svm import LinearSVC
from sklearn.utils.validation import check_is_fitted
from skorch import NeuralNet

from ._sklearn_private import BaseSearchCV, column_transformer_inputs
from ._torch import eval_mode, module_device

__all__ = ["get_torch_view", "get_score_view", "TorchView", "transformer_view"]


def _buffer(value):
    return torch.as_tensor(np.asarray(value, dtype=np.float64))


class _Affine(torch.nn.Module):
    """``x @ weight + shift`` over flattened features, in float64.

    ``weight`` is a matrix, or a vector for a per-feature scale.
    """

    def __init__(self, weight, shift):
        super().__init__()
        self.register_buffer("weight", _buffer(weight))
        self.register_buffer("shift", _buffer(shift))

    def forward(self, x):
        x = x.reshape(x.shape[0], -1).to(self.weight.dtype)
        out = x @ self.weight if self.weight.ndim == 2 else x * self.weight
        return out + self.shift


class _TwoClassLogits(torch.nn.Module):
    """Turn one decision score ``d`` into logits ``[0, d]`` (argmax = predict)."""

    def __init__(self, module):
        super().__init__()
        self.module = module

    def forward(self, x):
        d = self.module(x).reshape(x.shape[0], 1)
        return torch.cat([torch.zeros_like(d), d], dim=1)


class _CastInput(torch.nn.Module):
    """Cast inputs to the dtype of a network's parameters (e.g. after a float64
    scaler)."""

    def __init__(self, module):
        super().__init__()
        self.module = module

    def forward(self, x):
        for p in self.module.parameters():
            return self.module(x.to(p.dtype))
        return self.module(x)


_ACTIVATIONS = {"relu": torch.relu, "tanh": torch.tanh, "logistic": torch.sigmoid,
                "identity": lambda t: t}


class _MLPView(torch.nn.Module):
    """scikit-learn's ``MLPClassifier`` forward pass up to the output logits."""

    def __init__(self, est):
        super().__init__()
        self.layers = torch.nn.ModuleList(
            _Affine(w, b) for w, b in zip(est.coefs_, est.intercepts_))
        self.activation = est.activation

    def forward(self, x):
        act = _ACTIVATIONS[self.activation]
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < len(self.layers) - 1:
                x = act(x)
        return x


class _Union(torch.nn.Module):
    """Features side by side: ``parts`` of ``(input columns or None, module, weight)``
    in output order (a :class:`~sklearn.pipeline.FeatureUnion` or a
    :class:`~sklearn.compose.ColumnTransformer`)."""

    def __init__(self, parts):
        super().__init__()
        self.columns = [None if c is None else torch.as_tensor(np.asarray(c))
                        for c, _, _ in parts]
        self.parts = torch.nn.ModuleList(m for _, m, _ in parts)
        self.weights = [w for _, _, w in parts]

    def forward(self, x):
        x = x.reshape(x.shape[0], -1)
        outs = []
        for columns, module, weight in zip(self.columns, self.parts, self.weights):
            xi = x if columns is None else x[:, columns.to(x.device)]
            out = module(xi).reshape(x.shape[0], -1)
            outs.append(out if weight is None else out * weight)
        dtype = functools.reduce(torch.promote_types, [o.dtype for o in outs])
        return torch.cat([o.to(dtype) for o in outs], dim=1)


def _union_view(parts):
    """:class:`_Union` of ``(columns, step, weight)``, or None if a step has no view."""
    views = [(c, transformer_view(step), w) for c, step, w in parts]
    if not views or any(v is None for _, v, _ in views):
        return None
    return _Union(views)


def transformer_view(step):
    """A torch module equal to ``step.transform``, or None if there is none."""
    if step is None or step == "passthrough":
        return torch.nn.Identity()
    if getattr(step, "_is_identity_at_transform", False):
        # robust-dataset transformers: transform(X) returns X unchanged
        return torch.nn.Identity()
    if callable(getattr(step, "fit_resample", None)):
        # imbalanced-learn samplers resample in fit only: the identity at predict
        return torch.nn.Identity()
    if isinstance(step, Pipeline):  # a pipeline of transformers inside a pipeline
        layers = [transformer_view(s) for _, s in step.steps]
        return None if any(v is None for v in layers) else torch.nn.Sequential(*layers)
    if isinstance(step, FeatureUnion):
        check_is_fitted(step)
        weights = step.transformer_weights or {}
        return _union_view([(None, t, weights.get(name))
                            for name, t in step.transformer_list if t != "drop"])
    if isinstance(step, ColumnTransformer):
        check_is_fitted(step)
        if step.sparse_output_:
            return None
        weights = step.transformer_weights or {}
        inputs = column_transformer_inputs(step)
        ordered = sorted(((step.output_indices_[name], name, t)
                          for name, t, _ in step.transformers_
                          if t != "drop" and name in inputs),
                         key=lambda item: item[0].start)
        return _union_view([(inputs[name], t, weights.get(name))
                            for out, name, t in ordered if out.stop > out.start])
    if isinstance(step, FunctionTransformer):
        if step.func is None:
            return torch.nn.Identity()
        return None
    if isinstance(step, (StandardScaler, MinMaxScaler, MaxAbsScaler, PCA)):
        check_is_fitted(step)
    if isinstance(step, StandardScaler):
        n = step.n_features_in_
        mean = step.mean_ if step.with_mean else np.zeros(n)
        scale = step.scale_ if step.with_std else np.ones(n)
        return _Affine(1.0 / scale, -mean / scale)
    if isinstance(step, MinMaxScaler):
        if step.clip:
            return None
        return _Affine(step.scale_, step.min_)
    if isinstance(step, MaxAbsScaler):
        return _Affine(1.0 / step.scale_, np.zeros(step.n_features_in_))
    if isinstance(step, PCA):
        weight = step.components_.T
        if step.whiten:
            weight = weight / np.sqrt(step.explained_variance_)
        return _Affine(weight, -step.mean_ @ weight)
    return None


_LINEAR = (LogisticRegression, LinearSVC, SGDClassifier, RidgeClassifier)


def _classifier_view(est):
    """A torch module from inputs to logits for a supported final estimator."""
    if isinstance(est, NeuralNet):
        check_is_fitted(est)
        return _CastInput(est.module_)
    if isinstance(est, _LINEAR):
        check_is_fitted(est)
        coef = np.atleast_2d(est.coef_)
        module = _Affine(coef.T, np.ravel(est.intercept_))
        return _TwoClassLogits(module) if coef.shape[0] == 1 else module
    if isinstance(est, MLPClassifier):
        check_is_fitted(est)
        module = _MLPView(est)
        return _TwoClassLogits(module) if est.n_outputs_ == 1 else module
    view = getattr(est, "torch_view", None)
    if callable(view):
        # the library's own kernel models and any estimator exposing a view
        return view()
    return None


class TorchView(torch.nn.Module):
    """A fitted estimator seen as a torch module from inputs to class scores.

    Parameters
    ----------
    module : torch.nn.Module
        Maps a float batch shaped like the estimator's input to logits.
    classes : ndarray or None
        The estimator's ``classes_``; column ``j`` of the output scores
        ``classes[j]``. None (a plain torch module): the labels are the class
        indices ``0 .. n_classes - 1``, with ``n_classes`` read from the module's
        output by :meth:`resolve_classes`.
    """

    def __init__(self, module, classes):
        super().__init__()
        self.module = module
        self.classes = None if classes is None else np.asarray(classes)

    def resolve_classes(self, X):
        """Set ``classes`` of a plain module from one forward pass on ``X[:1]``.

        Raises a ``ValueError`` naming the problem if the module fails on ``X``
        or does not return scores of shape ``(n_samples, n_classes)``.
        """
        if self.classes is not None or len(X) == 0:
            return self
        x = torch.as_tensor(np.asarray(X[:1]), device=self.device)
        try:
            with torch.no_grad(), eval_mode(self.module):
                out = self.module(x)
        except (RuntimeError, TypeError, ValueError, IndexError) as exc:
            raise ValueError(
                f"The module failed on an input of shape {tuple(x.shape)} (dtype "
                f"{x.dtype}): {type(exc).__name__}: {exc}. Check that X has the shape "
                "and dtype the module expects.") from exc
        if not isinstance(out, torch.Tensor) or out.ndim != 2 or out.shape[1] < 2 \
                or not out.is_floating_point():
            raise ValueError(
                "A torch module is scored through its logits: it must return floating "
                "scores of shape (n_samples, n_classes) with n_classes >= 2; it "
                f"returned {getattr(out, 'shape', type(out).__name__)}.")
        self.classes = np.arange(out.shape[1])
        return self

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

    Supported final estimators: skorch nets (this library's classifiers included)
    whose ``module_`` returns logits; scikit-learn's ``LogisticRegression``,
    ``LinearSVC``, ``SGDClassifier``, ``RidgeClassifier`` and ``MLPClassifier``
    (their decision functions, computed in float64); and any estimator with a
    ``torch_view()`` method. A :class:`~sklearn.pipeline.Pipeline` is supported
    when its final step is and its other steps have exact torch equivalents:
    ``StandardScaler``, ``MinMaxScaler`` (without ``clip``), ``MaxAbsScaler``,
    ``PCA``, ``FunctionTransformer`` without a function, ``"passthrough"``, this
    library's robust-dataset transformers and imbalanced-learn's samplers (the
    identity at predict time), pipelines of such steps, and ``FeatureUnion`` /
    ``ColumnTransformer`` (dense output) of them. A fitted ``GridSearchCV`` or
    ``RandomizedSearchCV`` is seen through its ``best_estimator_``, so scoring
    the search or its best estimator is the same. Anything else (a
    ``CalibratedClassifierCV``, whose calibration can change the argmax, forests,
    ...) has no exact view and is attacked black-box by the scorers. A plain
    :class:`torch.nn.Module` returning logits is its own view: its labels are the
    class indices (``classes`` is set by :meth:`TorchView.resolve_classes`).

    Raises
    ------
    TypeError
        If the estimator has no differentiable view.
    """
    if isinstance(estimator, TorchView):
        return estimator
    if isinstance(estimator, torch.nn.Module):
        return TorchView(estimator, None)
    if isinstance(estimator, BaseSearchCV):
        best = getattr(estimator, "best_estimator_", None)
        if best is None:
            check_is_fitted(estimator)
            raise TypeError(f"{type(estimator).__name__} was fitted with refit=False: "
                            "it has no best_estimator_ to attack.")
        return get_torch_view(best)
    if isinstance(estimator, Pipeline):
        layers = []
        for name, step in estimator.steps[:-1]:
            layer = transformer_view(step)
            if layer is None:
                raise TypeError(
                    f"Pipeline step {name!r} ({type(step).__name__}) has no exact "
                    "torch equivalent, so the pipeline cannot be attacked white-box.")
            layers.append(layer)
        final = get_torch_view(estimator.steps[-1][1])
        device = final.device
        layers = [layer.to(device) for layer in layers]
        return TorchView(torch.nn.Sequential(*layers, final.module), final.classes)
    module = _classifier_view(estimator)
    if module is None:
        raise TypeError(
            f"{type(estimator).__name__} has no differentiable torch view; supported "
            "are skorch nets (including sklearn_robust classifiers), scikit-learn's "
            "linear classifiers and MLPClassifier, estimators with a torch_view() "
            "method, and Pipelines of supported steps.")
    return TorchView(module, estimator.classes_)


class _ScoreView(torch.nn.Module):
    """Class scores of any fitted estimator, through NumPy (not differentiable).

    Uses ``decision_function`` when the estimator has one (its argmax is the
    prediction), else the log of ``predict_proba``. For score-based attacks only.
    """

    def __init__(self, estimator):
        super().__init__()
        self.estimator = estimator

    def forward(self, x):
        X = x.detach().cpu().numpy()
        if hasattr(self.estimator, "decision_function"):
            scores = np.asarray(self.estimator.decision_function(X), dtype=np.float64)
            if scores.ndim == 1:
                scores = np.column_stack([np.zeros_like(scores), scores])
        else:
            proba = np.asarray(self.estimator.predict_proba(X), dtype=np.float64)
            scores = np.log(np.clip(proba, 1e-300, None))
        return torch.as_tensor(scores, device=x.device)


def get_score_view(estimator):
    """A :class:`TorchView` of any fitted classifier's scores, for black-box attacks.

    Raises
    ------
    TypeError
        If the estimator has neither ``decision_function`` nor ``predict_proba``.
    """
    check_is_fitted(estimator)
    if not (hasattr(estimator, "decision_function")
            or hasattr(estimator, "predict_proba")):
        raise TypeError(
            f"{type(estimator).__name__} has no differentiable torch view and no "
            "decision_function or predict_proba to attack with a score-based "
            "black-box attack; robust accuracy cannot be estimated.")
    return TorchView(_ScoreView(estimator), estimator.classes_)
