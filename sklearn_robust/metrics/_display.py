"""Robustness curves: robust accuracy against the attack radius."""

# SPDX-License-Identifier: BSD-3-Clause

import numpy as np

from ..utils._validation import check_eps
from ._robust import robust_accuracy_score

__all__ = ["RobustnessCurveDisplay"]


def _check_eps_list(eps):
    values = np.asarray([check_eps(e) for e in np.atleast_1d(eps).tolist()])
    if values.size == 0:
        raise ValueError("eps must hold at least one radius.")
    return np.sort(values)


class RobustnessCurveDisplay:
    """Robust accuracy as a function of the attack radius ``eps``.

    Create it with :meth:`from_estimator` (which runs the attacks) or
    :meth:`from_predictions` (from precomputed accuracies); several curves can
    share one axes by passing ``ax=display.ax_``. matplotlib is needed for
    plotting only.

    Parameters
    ----------
    eps : array-like of shape (n_radii,)
        Attack radii, non-negative (sorted on input).
    robust_accuracy : array-like of shape (n_radii,)
        Robust accuracy at each radius.
    name : str, default=None
        Label of the curve.
    norm : {"linf", "l2", "l1"}, default="linf"
        Norm of the threat model, used in the axis label.

    Attributes
    ----------
    line_ : matplotlib Line2D
        The curve.
    ax_ : matplotlib Axes
        Axes with the curve.
    figure_ : matplotlib Figure
        Figure containing the curve.

    Examples
    --------
    >>> from sklearn_robust.metrics import RobustnessCurveDisplay
    >>> disp = RobustnessCurveDisplay.from_predictions(
    ...     [0.0, 0.1, 0.2], [0.98, 0.80, 0.35], name="PGD-AT", plot=False)
    >>> disp.robust_accuracy.tolist()
    [0.98, 0.8, 0.35]
    """

    def __init__(self, *, eps, robust_accuracy, name=None, norm="linf"):
        self.eps = np.asarray(eps, dtype=float)
        self.robust_accuracy = np.asarray(robust_accuracy, dtype=float)
        if self.eps.shape != self.robust_accuracy.shape:
            raise ValueError("eps and robust_accuracy must have the same length, got "
                             f"{self.eps.shape} and {self.robust_accuracy.shape}.")
        self.name = name
        self.norm = norm

    def plot(self, ax=None, *, name=None, **kwargs):
        """Draw the curve on ``ax`` (a new figure if None).

        Parameters
        ----------
        ax : matplotlib Axes, default=None
            Axes to draw on.
        name : str, default=None
            Label overriding ``self.name``.
        **kwargs
            Passed to ``ax.plot``.

        Returns
        -------
        display : RobustnessCurveDisplay
        """
        try:
            import matplotlib.pyplot as plt
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise ImportError("RobustnessCurveDisplay.plot needs matplotlib: "
                              "pip install matplotlib") from exc
        if ax is None:
            _, ax = plt.subplots()
        label = name if name is not None else self.name
        kwargs.setdefault("marker", "o")
        (self.line_,) = ax.plot(self.eps, self.robust_accuracy, label=label, **kwargs)
        ax.set_xlabel(f"eps ({self.norm})")
        ax.set_ylabel("robust accuracy")
        ax.set_ylim(-0.02, 1.02)
        if label is not None:
            ax.legend(loc="upper right")
        self.ax_ = ax
        self.figure_ = ax.figure
        return self

    @classmethod
    def from_predictions(cls, eps, robust_accuracy, *, name=None, norm="linf", ax=None,
                         plot=True, **kwargs):
        """Build (and plot) the curve from precomputed robust accuracies.

        Parameters
        ----------
        eps : array-like of shape (n_radii,)
            Radii, non-negative; the pairs are sorted by radius.
        robust_accuracy : array-like of shape (n_radii,)
            Robust accuracy at each radius.
        name, norm, ax, **kwargs
            As in :meth:`plot`.
        plot : bool, default=True
            Draw the curve.

        Returns
        -------
        display : RobustnessCurveDisplay
        """
        eps_arr = np.asarray([check_eps(e) for e in np.atleast_1d(eps).tolist()])
        acc = np.asarray(robust_accuracy, dtype=float)
        if eps_arr.size == 0:
            raise ValueError("eps must hold at least one radius.")
        if eps_arr.shape != acc.shape:
            raise ValueError("eps and robust_accuracy must have the same length.")
        if not np.all((acc >= 0) & (acc <= 1)):
            raise ValueError("robust_accuracy values must lie in [0, 1] (no NaN).")
        order = np.argsort(eps_arr, kind="stable")
        disp = cls(eps=eps_arr[order], robust_accuracy=acc[order], name=name, norm=norm)
        return disp.plot(ax=ax, **kwargs) if plot else disp

    @classmethod
    def from_estimator(cls, estimator, X, y, *, eps, norm="linf", attack=None,
                       name=None, ax=None, plot=True, **score_kwargs):
        """Attack a fitted estimator at each radius and plot robust accuracy.

        Parameters
        ----------
        estimator : fitted estimator
            Anything :func:`robust_accuracy_score` accepts.
        X, y : array-like
            Evaluation data.
        eps : array-like of shape (n_radii,)
            Radii, non-negative (sorted).
        norm : {"linf", "l2", "l1"}, default="linf"
            Norm of the threat model.
        attack : None, str, attack or list, default=None
            As in :func:`robust_accuracy_score` (None: the strong default).
        name : str, default=None
            Curve label (default: the estimator's class name).
        ax : matplotlib Axes, default=None
            Axes to draw on.
        plot : bool, default=True
            Draw the curve.
        **score_kwargs
            Other parameters of :func:`robust_accuracy_score` (``clip_min``,
            ``batch_size``, ...).

        Returns
        -------
        display : RobustnessCurveDisplay
        """
        radii = _check_eps_list(eps)
        acc = [robust_accuracy_score(estimator, X, y, eps=float(e), norm=norm,
                                     attack=attack, **score_kwargs) for e in radii]
        if name is None:
            name = type(estimator).__name__
        disp = cls(eps=radii, robust_accuracy=acc, name=name, norm=norm)
        return disp.plot(ax=ax) if plot else disp
