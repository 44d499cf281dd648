"""Synthetic data with robust and non-robust features (Tsipras et al., 2019)."""

# SPDX-License-Identifier: BSD-3-Clause

import numbers

import numpy as np
from sklearn.utils import check_random_state

from ..utils._param_validation import (
    POSITIVE_INT,
    POSITIVE_REAL,
    Interval,
    validate_parameter_constraints,
)

__all__ = ["make_robust_nonrobust_features"]

_CONSTRAINTS = {"n_samples": [POSITIVE_INT], "n_nonrobust": [POSITIVE_INT],
                "p": [Interval(numbers.Real, 0.5, 1, closed="right")],
                "eta": [POSITIVE_REAL, None]}


def make_robust_nonrobust_features(n_samples=1000, *, n_nonrobust=50, p=0.9, eta=None,
                                   random_state=None):
    """Generate the robust / non-robust feature model of Tsipras et al. (2019).

    Labels are drawn uniformly from ``{-1, +1}``. Feature 0 is the *robust* feature,
    ``x_0 = y`` with probability ``p`` and ``-y`` otherwise; features ``1 ..
    n_nonrobust`` are *non-robust*, i.i.d. ``N(eta * y, 1)``. Each non-robust
    feature is weakly correlated with the label, but together they predict it
    almost perfectly (a linear model that averages them is right with probability
    ``Phi(eta * sqrt(n_nonrobust))``), whereas an ``linf`` perturbation of size
    ``2 * eta`` turns every one of them into a feature of the opposite class. The
    robust feature survives any perturbation smaller than 1 but is only right
    with probability ``p``. A naturally trained linear classifier leans on the
    non-robust features and is not robust; a robust one uses feature 0.

    Parameters
    ----------
    n_samples : int, default=1000
        Number of samples.
    n_nonrobust : int, default=50
        Number of non-robust features; ``X`` has ``1 + n_nonrobust`` columns.
    p : float, default=0.9
        Probability that the robust feature equals the label, in ``(0.5, 1]``.
    eta : float or None, default=None
        Mean shift of the non-robust features. ``None`` uses
        ``3 / sqrt(n_nonrobust)``, so that the non-robust features alone give a
        Bayes accuracy of ``Phi(3) ~ 0.9987 > p``, and ``eps = 2 * eta`` stays below
        1 (the robust feature survives it) once ``n_nonrobust >= 37``.
    random_state : int, RandomState instance or None, default=None
        Seed of the NumPy generator used to draw the data.

    Returns
    -------
    X : ndarray of shape (n_samples, 1 + n_nonrobust), dtype float32
        Column 0 is the robust feature, the others are non-robust.
    y : ndarray of shape (n_samples,), dtype int64
        Labels in ``{-1, +1}``, as in Tsipras et al.

    Notes
    -----
    The features are **unbounded** (Gaussian): they are not in the ``[0, 1]`` pixel
    box, and no rescaling is offered because it would change the meaning of
    ``eps``. Use the library's estimators and scorers on these data with
    ``clip_min=None, clip_max=None``. The natural threat model is ``norm="linf"``
    with ``eps = 2 * eta``: every linear classifier that relies on the non-robust
    features loses, while the classifier ``sign(x_0)`` keeps accuracy ``p``.

    References
    ----------
    .. [1] D. Tsipras, S. Santurkar, L. Engstrom, A. Turner and A. Madry,
       "Robustness May Be at Odds with Accuracy", ICLR 2019, arXiv:1805.12152.
    .. [2] Y. Wu, X. Li, F. Kerschbaum, H. Huang and H. Zhang, "Towards Robust
       Dataset Learning", arXiv:2211.10752, 2022.

    Examples
    --------
    >>> from sklearn_robust.datasets import make_robust_nonrobust_features
    >>> X, y = make_robust_nonrobust_features(200, n_nonrobust=10, random_state=0)
    >>> X.shape, X.dtype, sorted(set(y.tolist()))
    ((200, 11), dtype('float32'), [-1, 1])
    """
    validate_parameter_constraints(
        _CONSTRAINTS, dict(n_samples=n_samples, n_nonrobust=n_nonrobust, p=p, eta=eta),
        caller_name="make_robust_nonrobust_features")
    n_samples, n_nonrobust = int(n_samples), int(n_nonrobust)
    if eta is None:
        eta = 3.0 / np.sqrt(n_nonrobust)
    rng = check_random_state(random_state)
    y = np.where(rng.rand(n_samples) < 0.5, -1, 1).astype(np.int64)
    agree = rng.rand(n_samples) < p
    robust = np.where(agree, y, -y)
    nonrobust = eta * y[:, None] + rng.randn(n_samples, n_nonrobust)
    X = np.column_stack([robust, nonrobust]).astype(np.float32)
    return X, y
