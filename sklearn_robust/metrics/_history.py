"""Plots of what training did: history curves and learned images."""

# SPDX-License-Identifier: BSD-3-Clause

import numbers

import numpy as np

__all__ = ["TrainingHistoryDisplay", "LearnedSetDisplay"]

#: skorch history entries that are bookkeeping, not curves.
_NOT_CURVES = {"epoch", "dur", "batches"}


def _pyplot(what):
    try:
        import matplotlib.pyplot as plt
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(f"{what} needs matplotlib: pip install matplotlib") from exc
    return plt


def _scalar(value):
    return (isinstance(value, (numbers.Real, np.floating, np.integer))
            and not isinstance(value, (bool, np.bool_)))


def _skorch_curves(history):
    """Every scalar per-epoch entry of a skorch history, by key."""
    keys = []
    for row in history:
        for key, value in row.items():
            if (key not in _NOT_CURVES
                    and not key.endswith(("_best", "_batch_count"))
                    and key not in keys and _scalar(value)):
                keys.append(key)
    curves = {}
    for key in keys:
        values = [row.get(key, np.nan) for row in history]
        curves[key] = np.array([v if _scalar(v) else np.nan for v in values], float)
    return curves


def _learner_curves(learner):
    """The ``*_history_`` arrays of a fitted robust-dataset learner, by key."""
    return {name[:-len("_history_")]: np.asarray(value, dtype=float)
            for name, value in sorted(vars(learner).items())
            if name.endswith("_history_") and np.ndim(value) == 1}


class TrainingHistoryDisplay:
    """Curves of what training recorded: losses, accuracies, method variables.

    For a classifier of this library (or any skorch net), every scalar entry of
    its ``history`` per epoch: ``train_loss``, ``valid_loss`` and ``valid_acc``
    with a validation split, GAIRAT's ``gair_*`` weight statistics, DALE's
    ``dual_variable`` and ``nominal_loss``, the local Lipschitz constant of
    :class:`~sklearn_robust.callbacks.LocalLipschitzMonitor`, ... For a fitted
    robust-dataset learner, its ``*_history_`` arrays per outer step (the outer
    loss, the inner network's clean loss and accuracy on real batches, its
    adversarial accuracy, ...). Each curve gets its own axes (they have
    different scales), sharing the x axis. matplotlib is needed for plotting.

    Parameters
    ----------
    curves : dict of str to array-like
        The curves, by name.
    xlabel : str, default="epoch"
        What the x axis counts.
    name : str, default=None
        Title of the figure.

    Attributes
    ----------
    axes_ : ndarray of matplotlib Axes
        One axes per curve.
    lines_ : dict of str to matplotlib Line2D
        The curves.
    figure_ : matplotlib Figure

    Examples
    --------
    >>> from sklearn_robust import AdversarialClassifier
    >>> from sklearn_robust.datasets import load_digits_images
    >>> from sklearn_robust.metrics import TrainingHistoryDisplay
    >>> X, y = load_digits_images(flat=True)
    >>> clf = AdversarialClassifier(eps=0.1, n_steps=2, max_epochs=3,
    ...                             random_state=0).fit(X[:100], y[:100])
    >>> disp = TrainingHistoryDisplay.from_estimator(clf, plot=False)
    >>> list(disp.curves), disp.curves["train_loss"].shape
    (['train_loss'], (3,))
    """

    def __init__(self, *, curves, xlabel="epoch", name=None):
        self.curves = {key: np.asarray(value, dtype=float)
                       for key, value in curves.items()}
        if not self.curves:
            raise ValueError("curves must hold at least one curve.")
        self.xlabel = xlabel
        self.name = name

    @classmethod
    def from_estimator(cls, estimator, keys=None, *, name=None, ax=None, plot=True,
                       **kwargs):
        """The curves of a fitted classifier (skorch history) or dataset learner.

        Parameters
        ----------
        estimator : fitted skorch net or robust-dataset learner
            A classifier of this library (its ``history``), or a learner of
            :mod:`sklearn_robust.dataset_learning` (its ``*_history_`` arrays).
        keys : list of str, default=None
            The curves to draw (history keys, or learner history names such as
            ``"loss"`` for ``loss_history_``); None draws every one.
        name : str, default=None
            Title of the figure (default: the estimator's class name).
        ax : array-like of matplotlib Axes, default=None
            One axes per curve; None makes a new figure.
        plot : bool, default=True
            Draw the curves.
        **kwargs
            Passed to ``ax.plot``.

        Returns
        -------
        display : TrainingHistoryDisplay
        """
        history = getattr(estimator, "history", None)
        if history is not None and len(history):
            available, xlabel = _skorch_curves(history), "epoch"
        else:
            available, xlabel = _learner_curves(estimator), "outer step"
        if not available:
            raise ValueError(f"{type(estimator).__name__} has no training history to "
                             "plot: fit it first (a skorch net's history, or a "
                             "robust-dataset learner's *_history_ arrays).")
        if keys is None:
            keys = list(available)
        else:
            keys = [keys] if isinstance(keys, str) else list(keys)
            unknown = [k for k in keys if k not in available]
            if unknown or not keys:
                raise ValueError(f"Unknown history keys {unknown}; "
                                 f"{type(estimator).__name__} recorded "
                                 f"{sorted(available)}.")
        disp = cls(curves={k: available[k] for k in keys}, xlabel=xlabel,
                   name=type(estimator).__name__ if name is None else name)
        return disp.plot(ax=ax, **kwargs) if plot else disp

    def plot(self, ax=None, **kwargs):
        """Draw each curve on its own axes (a new figure if ``ax`` is None).

        Parameters
        ----------
        ax : array-like of matplotlib Axes, default=None
            As many axes as curves.
        **kwargs
            Passed to ``ax.plot``.

        Returns
        -------
        display : TrainingHistoryDisplay
        """
        plt = _pyplot("TrainingHistoryDisplay.plot")
        n = len(self.curves)
        if ax is None:
            fig, ax = plt.subplots(n, 1, sharex=True, squeeze=False,
                                   figsize=(6, 1.8 * n + 0.6))
            ax = ax[:, 0]
        ax = np.atleast_1d(np.asarray(ax, dtype=object)).ravel()
        if len(ax) != n:
            raise ValueError(f"ax must hold one axes per curve ({n}), got {len(ax)}.")
        self.lines_ = {}
        for axis, (key, values) in zip(ax, self.curves.items()):
            steps = np.arange(1, len(values) + 1)
            (self.lines_[key],) = axis.plot(steps, values, **kwargs)
            axis.set_ylabel(key.replace("_", " "))
        ax[-1].set_xlabel(self.xlabel)
        if self.name:
            ax[0].set_title(self.name)
        self.axes_ = ax
        self.figure_ = ax[0].figure
        return self


class LearnedSetDisplay:
    """Original rows above their learned versions (and the change), as images.

    Parameters
    ----------
    original, learned : ndarray of shape (n_images, H, W)
        The images to show, in pairs.
    labels : array-like of shape (n_images,), default=None
        A label per pair, shown as its title.

    Attributes
    ----------
    axes_ : ndarray of matplotlib Axes, shape (3, n_images)
        Original, learned and change rows.
    figure_ : matplotlib Figure

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_robust.metrics import LearnedSetDisplay
    >>> rng = np.random.RandomState(0)
    >>> X = rng.rand(5, 64)
    >>> disp = LearnedSetDisplay.from_arrays(X, X + 0.1, image_shape=(8, 8),
    ...                                      plot=False)
    >>> disp.learned.shape
    (5, 8, 8)
    """

    def __init__(self, *, original, learned, labels=None):
        self.original = np.asarray(original, dtype=float)
        self.learned = np.asarray(learned, dtype=float)
        if self.original.shape != self.learned.shape or self.original.ndim != 3:
            raise ValueError("original and learned must be image stacks of the same "
                             f"shape (n, H, W); got {self.original.shape} and "
                             f"{self.learned.shape}.")
        self.labels = None if labels is None else np.asarray(labels)

    @classmethod
    def from_arrays(cls, original, learned, *, labels=None, n_images=10,
                    image_shape=None, plot=True, **kwargs):
        """The first ``n_images`` rows of ``original`` and ``learned``.

        Parameters
        ----------
        original, learned : array-like of shape (n_samples, ...)
            Rows of the same shape: flat (give ``image_shape``), ``(H, W)`` or
            ``(C, H, W)`` (the channels are averaged).
        labels : array-like of shape (n_samples,), default=None
            Their labels.
        n_images : int, default=10
            Pairs shown.
        image_shape : tuple of int, default=None
            ``(H, W)`` of flat rows; None guesses a square.
        plot : bool, default=True
            Draw the grid.
        **kwargs
            Passed to ``ax.imshow``.

        Returns
        -------
        display : LearnedSetDisplay
        """
        original, learned = np.asarray(original), np.asarray(learned)
        if original.shape != learned.shape:
            raise ValueError(f"original and learned must have the same shape, got "
                             f"{original.shape} and {learned.shape}.")
        if not isinstance(n_images, numbers.Integral) or n_images < 1:
            raise ValueError(f"n_images must be an int >= 1, got {n_images!r}.")
        n = min(int(n_images), len(original))
        images = [cls._as_images(a[:n], image_shape) for a in (original, learned)]
        disp = cls(original=images[0], learned=images[1],
                   labels=None if labels is None else np.asarray(labels)[:n])
        return disp.plot(**kwargs) if plot else disp

    @classmethod
    def from_learner(cls, learner, X, **kwargs):
        """A same-size learner's learned rows beside the rows ``X`` it learned from.

        Parameters
        ----------
        learner : fitted robust-dataset learner
            Fitted on ``X`` (its ``X_robust_`` row ``i`` replaces ``X[i]``).
        X : array-like of shape (n_samples, ...)
            The training inputs.
        **kwargs
            As in :meth:`from_arrays`.

        Returns
        -------
        display : LearnedSetDisplay
        """
        learned = getattr(learner, "X_robust_", None)
        if learned is None:
            raise ValueError(f"{type(learner).__name__} is not a fitted "
                             "robust-dataset learner (no X_robust_).")
        X = np.asarray(X, dtype=np.float32)
        if X.shape != learned.shape:
            raise ValueError(f"X has shape {X.shape} but the learned set has shape "
                             f"{learned.shape}: pass the rows the learner was fitted "
                             "on (same-size mode).")
        kwargs.setdefault("labels", getattr(learner, "y_robust_", None))
        return cls.from_arrays(X, learned, **kwargs)

    @staticmethod
    def _as_images(a, image_shape):
        if a.ndim == 4:                      # (n, C, H, W): average the channels
            return a.mean(axis=1)
        if a.ndim == 3:
            return a
        if image_shape is None:
            side = int(round(np.sqrt(a.shape[1])))
            if side * side != a.shape[1]:
                raise ValueError(f"Rows of {a.shape[1]} features are no square image: "
                                 "pass image_shape=(H, W).")
            image_shape = (side, side)
        return a.reshape((len(a), *image_shape))

    def plot(self, **kwargs):
        """Draw the original, learned and change rows.

        Parameters
        ----------
        **kwargs
            Passed to ``ax.imshow`` for the first two rows.

        Returns
        -------
        display : LearnedSetDisplay
        """
        plt = _pyplot("LearnedSetDisplay.plot")
        n = len(self.original)
        fig, axes = plt.subplots(3, n, squeeze=False, figsize=(1.1 * n + 1, 3.6))
        kwargs.setdefault("cmap", "gray_r")
        lo = min(self.original.min(), self.learned.min())
        hi = max(self.original.max(), self.learned.max())
        change = self.learned - self.original
        span = max(float(np.abs(change).max()), 1e-12)
        for j in range(n):
            axes[0, j].imshow(self.original[j], vmin=lo, vmax=hi, **kwargs)
            axes[1, j].imshow(self.learned[j], vmin=lo, vmax=hi, **kwargs)
            axes[2, j].imshow(change[j], cmap="RdBu_r", vmin=-span, vmax=span)
            if self.labels is not None:
                axes[0, j].set_title(str(self.labels[j]), fontsize=8)
        for axis in axes.ravel():
            axis.set_xticks([])
            axis.set_yticks([])
        for i, text in enumerate(("original", "learned", "change")):
            axes[i, 0].set_ylabel(text)
        self.axes_ = axes
        self.figure_ = fig
        return self
