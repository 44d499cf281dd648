"""Synthetic data with robust and non-robust features (Tsipras et al., 2019)."""

# SPDX-License-Identifier: BSD-3-Clause

import numbers

import numpy as np
from sklearn.utils import check_random_state

__all__ = ["make_robust_nonrobust_features"]


def _check_int(value, name, low=1):
    if (isinstance(value, bool) or not isinstance(value, numbers.Integral)
            or value < low):
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}.")
    return int(value)


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
    n_samples = _check_int(n_samples, "n_samples")
    n_nonrobust = _check_int(n_nonrobust, "n_nonrobust")
    if isinstance(p, bool) or not isinstance(p, numbers.Real) or not 0.5 < p <= 1:
        raise ValueError(f"p must be a number in (0.5, 1], got {p!r}.")
    if eta is None:
        eta = 3.0 / np.sqrt(n_nonrobust)
    if isinstance(eta, bool) or not isinstance(eta, numbers.Real) or not (
            np.isfinite(eta) and eta > 0):
        raise ValueError(f"eta must be a finite number > 0 or None, got {eta!r}.")
    rng = check_random_state(random_state)
    y = np.where(rng.rand(n_samples) < 0.5, -1, 1).astype(np.int64)
    agree = rng.rand(n_samples) < p
    robust = np.where(agree, y, -y)
    nonrobust = eta * y[:, None] + rng.randn(n_samples, n_nonrobust)
    X = np.column_stack([robust, nonrobust]).astype(np.float32)
    return X, y
