"""The robust-dataset transformer contract and its sampler adapter."""

# SPDX-License-Identifier: BSD-3-Clause

import warnings

import numpy as np
import torch
from sklearn.base import BaseEstimator, OneToOneFeatureMixin, TransformerMixin, clone
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

from ..attacks import PGD
from ..attacks._base import set_threat_model, warn_if_unused_with_attack
from ..exceptions import DatasetLearningWarning
from ..utils._param_validation import validate_params
from ..utils._progress import progress_bar
from ..utils._validation import as_contiguous, check_clip_box, check_in_box
from ._io import data_hash

__all__ = ["BaseRobustDataset", "RobustDatasetSampler"]


# ------------------------------------------------------------ shared helpers


def _adam_step(x, grad, m, v, t, lr, beta1=0.9, beta2=0.999, tiny=1e-8):
    """One in-place Adam update of ``x`` (Kingma and Ba, 2015), as torch.optim.Adam."""
    m.mul_(beta1).add_(grad, alpha=1 - beta1)
    v.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
    denom = (v / (1 - beta2 ** t)).sqrt_().add_(tiny)
    x.addcdiv_(m, denom, value=-lr / (1 - beta1 ** t))


def _change_bounds(x, clip_min, clip_max, max_change):
    """Lower and upper bounds of the learned rows that start at ``x``.

    The clip box, intersected with the ``linf`` ball of radius ``max_change``
    around ``x`` when ``max_change`` is not ``None``; ``None`` for a side
    without a bound (for ``torch.clamp``).
    """
    lo, hi = clip_min, clip_max
    if max_change is not None:
        lo = x - max_change if lo is None else torch.clamp(x - max_change, min=lo)
        hi = x + max_change if hi is None else torch.clamp(x + max_change, max=hi)
    return lo, hi


class BaseRobustDataset(OneToOneFeatureMixin, TransformerMixin, BaseEstimator):
    """Base class of transformers that learn a robust training set.

    The contract (like scikit-learn's ``TargetEncoder``, ``fit_transform`` is *not*
    ``fit().transform()``):

    - ``fit(X, y)`` learns the robust set and stores it in ``X_robust_`` and
      ``y_robust_``;
    - ``fit_transform(X, y)`` returns the robust version of the *same* rows, in the
      same order, so that ``Pipeline.fit`` hands the next step a robust training
      set; in support-set mode (a learned set of another size, or learned labels)
      it raises a ``ValueError`` pointing to :class:`RobustDatasetSampler`;
    - ``transform(X)`` returns ``X`` unchanged (after validation): at predict and
      score time test data pass straight through, so a robust scorer attacking the
      whole pipeline attacks the downstream model.

    Subclasses implement ``_learn(X, y) -> (X_robust, y_robust)`` (run with
    autograd enabled), ``_is_same_size()`` (True when the learned set holds the
    input rows, in order, with their labels) and declare the constraints of their
    parameters in ``_parameter_constraints`` (scikit-learn's style), checked before
    the data are validated; checks that are no simple constraint extend
    ``_check_params()`` (calling ``super()``).
    """

    # read by sklearn_robust.utils._views: the step is the identity at predict time
    _is_identity_at_transform = True

    _parameter_constraints = {}

    def _check_params(self):
        """Validate the declared constraints; called before the data."""
        validate_params(self)

    def _check_attack(self):
        """Say which parameters a given ``attack`` makes unused."""
        warn_if_unused_with_attack(self, ("n_steps", "step_size"), stacklevel=5)

    def _make_attack(self, loss, rng):
        """The attack of the inner maximisation, its random stream drawn from ``rng``.

        A clone of ``attack``, which keeps its own procedure but takes the
        learner's threat model (``eps``, ``norm`` and the clip box), or PGD with
        ``n_steps`` steps of ``step_size``, a uniform random start and ``loss``.
        """
        seed = np.random.RandomState(rng.randint(2**31 - 1))
        threat = dict(eps=self.eps, norm=self.norm, clip_min=self.clip_min,
                      clip_max=self.clip_max)
        if self.attack is None:
            return PGD(**threat, n_steps=self.n_steps, step_size=self.step_size,
                       random_start=True, loss=loss, random_state=seed)
        attack = set_threat_model(clone(self.attack), **threat)
        if "random_state" in attack.get_params():
            attack.set_params(random_state=seed)
        return attack

    def _validate_fit(self, X, y):
        # parameters first: a bad parameter is reported before a bad input
        self._check_params()
        X, y = validate_data(self, X, y, dtype=np.float32, allow_nd=True)
        X = as_contiguous(X)   # a view of X[::-1] has negative strides
        check_classification_targets(y)
        if len(np.unique(y)) < 2:
            raise ValueError("y has only one class; a robust dataset needs samples of "
                             "at least 2 classes.")
        clip_min = getattr(self, "clip_min", None)
        clip_max = getattr(self, "clip_max", None)
        check_clip_box(clip_min, clip_max)
        check_in_box(X, clip_min, clip_max)
        return X, y

    def fit(self, X, y):
        """Learn the robust training set from ``(X, y)``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or (n_samples, C, H, W)
            Training inputs inside the clip box.
        y : array-like of shape (n_samples,)
            Class labels.

        Returns
        -------
        self : object
            The fitted transformer, with ``X_robust_`` and ``y_robust_``.

        Notes
        -----
        A fit that is interrupted (``KeyboardInterrupt``) or fails leaves the
        learner as it was before the call: unfitted, or fitted on the earlier
        data.
        """
        before = dict(vars(self))
        try:
            X, y = self._validate_fit(X, y)
            self.input_shape_ = tuple(X.shape[1:])
            self.source_hash_ = data_hash(X, y)
            # learning needs autograd, even when fit runs under torch.no_grad
            with torch.enable_grad():
                X_robust, y_robust = self._learn(X, y)
            X_robust = np.asarray(X_robust, dtype=np.float32)
            if not np.isfinite(X_robust).all():
                raise ValueError(
                    f"{type(self).__name__}: the learned set holds NaN or infinity; "
                    "the optimisation diverged. Lower the learning rates (lr, and "
                    "inner_lr where there is one) or check the scale of X.")
            self.X_robust_ = X_robust
            self.y_robust_ = np.asarray(y_robust)
        except BaseException:
            # an interrupted or failed fit leaves the learner as it was (unfitted,
            # or fitted on the previous data): no half-set fitted attributes
            vars(self).clear()
            vars(self).update(before)
            raise
        return self

    def fit_transform(self, X, y=None):
        """Learn the robust set and return it for the same rows, in the same order.

        Parameters
        ----------
        X : array-like of shape (n_samples, ...)
            Training inputs.
        y : array-like of shape (n_samples,)
            Class labels (required).

        Returns
        -------
        X_robust : ndarray of shape (n_samples, ...)
            The robust training inputs, row ``i`` replacing ``X[i]`` (label ``y[i]``).
        """
        if y is None:
            raise ValueError(
                f"{type(self).__name__} needs y to learn a robust dataset.")
        self.fit(X, y)
        if not self._is_same_size():
            raise ValueError(
                f"{type(self).__name__} is in support-set mode (it learned "
                f"{len(self.X_robust_)} rows or new labels from {len(y)} rows), which "
                "a scikit-learn Pipeline cannot pass on. Read the learned set from "
                "X_robust_/y_robust_, or wrap the transformer in "
                "sklearn_robust.dataset_learning.RobustDatasetSampler and use it in an "
                "imbalanced-learn Pipeline (fit_resample).")
        return self.X_robust_

    def transform(self, X):
        """Return ``X`` unchanged (validated): test data pass straight through.

        Parameters
        ----------
        X : array-like of shape (n_samples, ...)
            Inputs.

        Returns
        -------
        X : ndarray of shape (n_samples, ...)
            The same values, as float32.
        """
        check_is_fitted(self, "X_robust_")
        # a new array, as scikit-learn's transformers return, never the caller's
        X = validate_data(self, X, reset=False, dtype=np.float32, allow_nd=True,
                          copy=True)
        if tuple(X.shape[1:]) != self.input_shape_:
            raise ValueError(f"X has samples of shape {tuple(X.shape[1:])}, but "
                             f"{type(self).__name__} was fitted on "
                             f"{self.input_shape_}.")
        return X

    def _is_same_size(self):
        raise NotImplementedError

    def _progress(self, iterable):
        """``iterable`` wrapped in a tqdm progress bar when ``verbose`` > 0."""
        return progress_bar(iterable, getattr(self, "verbose", 0),
                            desc=type(self).__name__)

    def _learn(self, X, y):
        raise NotImplementedError

    def _warn_if_collapsed(self, accuracy, model, drop=0.1):
        """Warn when the clean accuracy of the learner's ``model`` on real batches
        fell by more than ``drop`` from the first to the last tenth of the steps."""
        k = max(1, len(accuracy) // 10)
        start, end = float(np.mean(accuracy[:k])), float(np.mean(accuracy[-k:]))
        if end < start - drop:
            warnings.warn(
                f"The learned set is losing the classes: the clean accuracy of "
                f"{model} on real batches fell from {start:.3f} to {end:.3f} during "
                f"learning. eps={self.eps} may be too large for the scale of the "
                "inputs; check the set with a model trained on it, or lower eps or "
                "lr.", DatasetLearningWarning, stacklevel=3)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.required = True
        tags.input_tags.allow_nan = False
        # the learned set and the pass-through are float32 (the torch dtype)
        tags.transformer_tags.preserves_dtype = ["float32"]
        return tags


class RobustDatasetSampler(BaseEstimator):
    """Use a robust-dataset transformer as an imbalanced-learn-style sampler.

    imbalanced-learn's ``Pipeline`` applies samplers at fit time only and refuses
    a step that has both ``transform`` and ``fit_resample``, so this adapter exposes
    ``fit_resample`` alone. It is the way to use a support-set mode (a learned
    set smaller than the input, or learned labels) inside a pipeline.

    Parameters
    ----------
    learner : BaseRobustDataset
        The (unfitted) transformer; it is cloned at each ``fit_resample``.

    Attributes
    ----------
    learner_ : BaseRobustDataset
        The fitted clone.
    """

    _is_identity_at_transform = True

    def __init__(self, learner):
        self.learner = learner

    def fit_resample(self, X, y):
        """Learn the robust set and return it: ``(X_robust_, y_robust_)``.

        Parameters
        ----------
        X : array-like of shape (n_samples, ...)
            Training inputs.
        y : array-like of shape (n_samples,)
            Class labels.

        Returns
        -------
        X_resampled, y_resampled : ndarray
            The learned set.
        """
        if not isinstance(self.learner, BaseRobustDataset):
            raise TypeError("learner must be a robust-dataset transformer of "
                            f"sklearn_robust, got {self.learner!r}.")
        self.learner_ = clone(self.learner).fit(X, y)
        return self.learner_.X_robust_, self.learner_.y_robust_
