"""Separation of a labelled dataset (Yang et al., 2020, Table 1)."""

# SPDX-License-Identifier: BSD-3-Clause

import numpy as np
from scipy.spatial.distance import cdist
from sklearn.utils import Bunch
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_array, check_consistent_length

__all__ = ["dataset_separation"]

_METRICS = {"linf": "chebyshev", "l2": "euclidean"}
#: number of high-variance coordinates on which linf distances are screened first
_N_SCREEN = 64
#: number of screened nearest candidates whose exact distance gives the first bound
_N_SEED = 8
#: entries of one block of pairwise distances (float64): about 64 MB
_BLOCK = 2 ** 23


def _check_X(X, name):
    X = check_array(X, dtype=np.float64, allow_nd=True, ensure_min_samples=1,
                    input_name=name)
    return X.reshape(len(X), -1)


def _check_y(y, n, name):
    y = np.asarray(y)
    if y.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {y.shape}.")
    check_classification_targets(y)
    if len(y) != n:
        raise ValueError(f"{name} has {len(y)} labels for {n} samples.")
    return y


def _exact(A, B, metric):
    """Row-wise distances ``d(A[k], B[k])``."""
    diff = np.abs(A - B)
    return diff.max(axis=1) if metric == "chebyshev" else np.sqrt((diff ** 2).sum(1))


def _nearest(Q, R, metric, screen):
    """Distance from each row of ``Q`` to its nearest row of ``R`` (exact).

    For linf with many features, distances on the ``screen`` coordinates (a lower
    bound of the full distance) are computed for all pairs first; the exact
    distance to the few screened-nearest rows gives an upper bound, and only the
    pairs whose lower bound is below it are computed in full.
    """
    n_rows = max(1, _BLOCK // max(len(R), 1))
    out = np.empty(len(Q))
    for start in range(0, len(Q), n_rows):
        q = Q[start:start + n_rows]
        if screen is None:
            out[start:start + n_rows] = cdist(q, R, metric).min(axis=1)
            continue
        lower = cdist(q[:, screen], R[:, screen], metric)
        k = min(_N_SEED, len(R))
        seeds = np.argpartition(lower, k - 1, axis=1)[:, :k]
        upper = _exact(np.repeat(q, k, axis=0), R[seeds.ravel()], metric)
        best = upper.reshape(len(q), k).min(axis=1)
        rows, cols = np.nonzero(lower < best[:, None])
        step = max(1, _BLOCK // Q.shape[1])
        for s in range(0, len(rows), step):
            r, c = rows[s:s + step], cols[s:s + step]
            np.minimum.at(best, r, _exact(q[r], R[c], metric))
        out[start:start + n_rows] = best
    return out


def _nearest_other_class(Q, yq, R, yr, metric, screen):
    """Per row of ``Q``, the distance to the nearest row of ``R`` of another label."""
    out = np.full(len(Q), np.inf)
    for label in np.unique(yq):
        rows = yq == label
        others = yr != label
        if others.any():
            out[rows] = _nearest(Q[rows], R[others], metric, screen)
    return out


def dataset_separation(X, y, norm="linf", X_test=None, y_test=None):
    """Distances between differently labelled points: the r-separation of a dataset.

    A labelled dataset is *r-separated* in a norm when any two points of different
    classes are at distance at least ``2r``. Yang et al. (2020, Table 1) measure it
    on the training set (train-train) and between test and training points
    (test-train) and find ``2r`` much larger than the attack radius ``eps`` on
    MNIST, CIFAR-10, SVHN and Restricted ImageNet (L-infinity).

    **Consequence** (Yang et al., Theorem 4.2): when the data are r-separated and
    ``eps < r``, the classifier that predicts the label of the nearest training
    point, smoothed so that its logits are locally ``1/r``-Lipschitz, is both
    perfectly accurate and robust at radius ``eps`` on the data. Accuracy and
    robustness need not conflict; a gap between them is a failure of the training
    method (generalisation), not of the data. Compare ``separation`` (``= 2r``)
    with ``2 * eps``: the test-train value plays the same role for test points.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features) or (n_samples, ...)
        Training points; images are flattened.
    y : array-like of shape (n_samples,)
        Their labels (at least two classes).
    norm : {"linf", "l2"}, default="linf"
        The distance: L-infinity (Chebyshev) or Euclidean.
    X_test : array-like of shape (n_test, ...), default=None
        Test points, compared with the training points of other classes.
    y_test : array-like of shape (n_test,), default=None
        Their labels; required with ``X_test``.

    Returns
    -------
    result : :class:`~sklearn.utils.Bunch`
        With the keys

        - ``separation`` : float, the minimum distance between two training
          points of different labels (``2r``; 0 when a point appears with two
          labels);
        - ``r`` : float, ``separation / 2``, the radius up to which the training
          set is separated;
        - ``train_nearest`` : ndarray of shape (n_samples,), for each training
          point the distance to the nearest training point of another label;
        - ``test_separation`` : float or None, the minimum over test points of the
          distance to the nearest training point of another label;
        - ``test_nearest`` : ndarray of shape (n_test,) or None, that distance
          for each test point (a test label unseen in training makes every
          training point "another label");
        - ``norm`` : the norm used.

    Raises
    ------
    ValueError
        For a bad ``norm``, fewer than two training labels, NaN or infinite
        values, ``X_test`` without ``y_test`` (or the reverse), or shapes that do
        not match.

    Notes
    -----
    The computation is exact and runs in blocks of about 64 MB. For L-infinity
    with more than 64 features, Chebyshev distances on the 64 coordinates of
    largest variance, a lower bound of the full distance, are computed for all
    pairs first, and full distances only for the pairs that this bound cannot
    rule out (a few percent on MNIST). The authors' notebook
    (``notebooks/dataset_dist.ipynb``) uses a 1-nearest-neighbour search with
    the Minkowski ``p = inf`` metric over the other classes, which gives the
    same values.

    References
    ----------
    .. [1] Y.-Y. Yang, C. Rashtchian, H. Zhang, R. Salakhutdinov and K. Chaudhuri,
       "A Closer Look at Accuracy vs. Robustness", NeurIPS 2020, arXiv:2003.02460.
       https://github.com/yangarbiter/robust-local-lipschitz

    Examples
    --------
    >>> from sklearn_robust.datasets import load_digits_images
    >>> from sklearn_robust.metrics import dataset_separation
    >>> X, y = load_digits_images(flat=True)
    >>> sep = dataset_separation(X[:1000], y[:1000], X_test=X[1000:],
    ...                          y_test=y[1000:])
    >>> print(f"2r = {sep.separation:.4f}, r = {sep.r:.4f}")
    2r = 0.4375, r = 0.2188
    >>> sep.separation > 2 * 0.1        # eps = 0.1 < r: accurate and robust possible
    True
    """
    if norm not in _METRICS:
        raise ValueError(f"norm must be one of {tuple(_METRICS)}, got {norm!r}.")
    metric = _METRICS[norm]
    X = _check_X(X, "X")
    y = _check_y(y, len(X), "y")
    labels = np.unique(y)
    if len(labels) < 2:
        raise ValueError(f"y has only one class ({labels[0]!r}); the separation "
                         "needs points of at least 2 classes.")
    if (X_test is None) != (y_test is None):
        raise ValueError("X_test and y_test must be given together.")
    screen = None
    if metric == "chebyshev" and X.shape[1] > _N_SCREEN:
        screen = np.sort(np.argsort(X.var(axis=0), kind="stable")[::-1][:_N_SCREEN])

    train = _nearest_other_class(X, y, X, y, metric, screen)
    result = Bunch(separation=float(train.min()), r=float(train.min()) / 2,
                   train_nearest=train, test_separation=None, test_nearest=None,
                   norm=norm)
    if X_test is not None:
        X_test = _check_X(X_test, "X_test")
        if X_test.shape[1] != X.shape[1]:
            raise ValueError(f"X_test has {X_test.shape[1]} features per sample, X "
                             f"has {X.shape[1]}.")
        y_test = _check_y(y_test, len(X_test), "y_test")
        check_consistent_length(X_test, y_test)
        test = _nearest_other_class(X_test, y_test, X, y, metric, screen)
        result.test_nearest = test
        result.test_separation = float(test.min())
    return result
