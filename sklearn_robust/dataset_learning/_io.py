"""Learned robust datasets as files: ``.npz`` with their metadata, no pickle."""

# SPDX-License-Identifier: BSD-3-Clause

import hashlib
import json
import os
from dataclasses import dataclass, field

import numpy as np

__all__ = ["RobustDataset", "save_dataset", "load_dataset", "data_hash"]

#: Version of the file layout written by :func:`save_dataset`.
FORMAT_VERSION = 1


def data_hash(X, y):
    """SHA-256 of a data set: the float32 inputs, their shape and the labels.

    Identifies the source data of a learned set (``source_hash_`` of the
    learners), so that a set saved from one split is not mistaken for another.
    """
    X = np.ascontiguousarray(X, dtype=np.float32)
    y = np.asarray(y)
    digest = hashlib.sha256()
    digest.update(repr((X.shape, str(y.dtype))).encode())
    digest.update(X.tobytes())
    digest.update(y.astype(str).tobytes() if y.dtype == object else
                  np.ascontiguousarray(y).tobytes())
    return digest.hexdigest()


@dataclass
class RobustDataset:
    """A learned robust training set read back by :func:`load_dataset`.

    Attributes
    ----------
    X : ndarray of float32
        The learned inputs (``X_robust_`` of the learner).
    y : ndarray
        Their labels (``y_robust_``).
    metadata : dict
        ``"learner"`` (class name), ``"params"`` (its parameters, non-JSON values
        as their repr), ``"eps"``, ``"norm"``, ``"clip_min"``, ``"clip_max"``,
        ``"source_hash"`` (:func:`data_hash` of the data it learned from),
        ``"input_shape"``, ``"sklearn_robust_version"``, ``"format_version"``,
        and whatever the caller added.
    """

    X: np.ndarray
    y: np.ndarray
    metadata: dict = field(default_factory=dict)

    def __iter__(self):
        """``X, y = load_dataset(path)`` unpacks the set."""
        return iter((self.X, self.y))


def _jsonable(value):
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (np.integer, np.floating, np.bool_)):
        return value.item()
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return repr(value)


def save_dataset(path, learner, *, metadata=None):
    """Save a fitted robust-dataset learner's set with its metadata to ``.npz``.

    Parameters
    ----------
    path : str or path-like
        Destination; ``.npz`` is appended when missing (as :func:`numpy.savez`).
    learner : fitted robust-dataset learner
        Any fitted transformer of :mod:`sklearn_robust.dataset_learning` (it has
        ``X_robust_`` and ``y_robust_``).
    metadata : dict, default=None
        Extra JSON-serialisable entries (e.g. the data set's name).

    Returns
    -------
    path : str
        The file written.

    Notes
    -----
    The file holds the arrays ``X`` and ``y`` and the metadata as JSON, and is
    read without ``allow_pickle``: labels must be numbers, booleans or strings.

    Examples
    --------
    >>> import tempfile, os
    >>> from sklearn_robust.dataset_learning import (TriLevelDatasetLearner,
    ...     load_dataset, save_dataset)
    >>> from sklearn_robust.datasets import load_digits_images
    >>> X, y = load_digits_images(flat=True)
    >>> learner = TriLevelDatasetLearner(eps=0.1, max_iter=2, inner_steps=2,
    ...                                  random_state=0).fit(X[:60], y[:60])
    >>> path = save_dataset(os.path.join(tempfile.mkdtemp(), "set"), learner)
    >>> data = load_dataset(path)
    >>> data.X.shape, data.metadata["learner"], data.metadata["eps"]
    ((60, 64), 'TriLevelDatasetLearner', 0.1)
    """
    X = getattr(learner, "X_robust_", None)
    y = getattr(learner, "y_robust_", None)
    if X is None or y is None:
        raise ValueError(f"save_dataset needs a fitted robust-dataset learner (with "
                         f"X_robust_ and y_robust_); got {type(learner).__name__}.")
    y = np.asarray(y)
    if y.dtype == object:
        if not all(isinstance(v, str) for v in y.tolist()):
            raise TypeError("save_dataset writes labels without pickle: they must be "
                            "numbers, booleans or strings.")
        y = y.astype(str)
    if metadata is not None and not isinstance(metadata, dict):
        raise TypeError(f"metadata must be a dict, got {type(metadata).__name__}.")
    from .. import __version__

    params = learner.get_params(deep=False)
    meta = {
        "learner": type(learner).__name__,
        "params": {k: _jsonable(v) for k, v in params.items()},
        **{k: _jsonable(params.get(k)) for k in ("eps", "norm", "clip_min",
                                                   "clip_max")},
        "source_hash": getattr(learner, "source_hash_", None),
        "input_shape": list(getattr(learner, "input_shape_", X.shape[1:])),
        "sklearn_robust_version": __version__,
        "format_version": FORMAT_VERSION,
        **(metadata or {}),
    }
    try:
        text = json.dumps(meta)
    except TypeError as exc:
        raise TypeError(f"metadata must be JSON-serialisable: {exc}") from exc
    path = os.fspath(path)
    if not path.endswith(".npz"):
        path += ".npz"
    np.savez(path, X=np.asarray(X, dtype=np.float32), y=y,
             metadata=np.array(text))
    return path


def load_dataset(path):
    """Read a set written by :func:`save_dataset`.

    Parameters
    ----------
    path : str or path-like
        The ``.npz`` file.

    Returns
    -------
    dataset : RobustDataset
        ``dataset.X``, ``dataset.y`` and ``dataset.metadata``; it also unpacks as
        ``X, y = load_dataset(path)``.

    Raises
    ------
    FileNotFoundError
        If there is no such file.
    ValueError
        If the file is not a data set of :func:`save_dataset`.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"No robust dataset file at {path!r}.")
    try:
        with np.load(path, allow_pickle=False) as data:
            X, y, text = data["X"], data["y"], str(data["metadata"])
    except (KeyError, ValueError, OSError) as exc:
        raise ValueError(f"{path!r} is not a robust dataset file of save_dataset "
                         f"(arrays X, y and metadata): {exc}") from exc
    metadata = json.loads(text)
    if len(X) != len(y):
        raise ValueError(f"{path!r} holds {len(X)} inputs but {len(y)} labels.")
    return RobustDataset(X=X, y=y, metadata=metadata)
