# SPDX-License-Identifier: BSD-3-Clause
"""Loaders for small image benchmarks, scaled to [0, 1] for attack threat models.

Nothing here downloads anything: :func:`load_digits_images` uses the copy of the
UCI digits shipped inside scikit-learn, and :func:`load_mnist` /
:func:`load_fashion_mnist` read files the user already has on disk.
"""

import gzip
import numbers
import os
import struct
import zipfile
import zlib

import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from sklearn.utils import Bunch

from ..utils._docstring import Substitution

__all__ = ["load_digits_images", "load_mnist", "load_fashion_mnist"]

_SUBSETS = ("train", "test", "all")
_IDX_PREFIX = {"train": "train", "test": "t10k"}
_IMAGE_MAGIC = 2051  # 0x00000803: unsigned bytes, 3 dimensions
_LABEL_MAGIC = 2049  # 0x00000801: unsigned bytes, 1 dimension
_GZIP_MAGIC = b"\x1f\x8b"
_SIDE = 28
_N_CLASSES = 10

_MNIST_SOURCE = (
    "Get the official IDX files (train-images-idx3-ubyte.gz, "
    "train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz, "
    "t10k-labels-idx1-ubyte.gz) from Yann LeCun's MNIST page "
    "(http://yann.lecun.com/exdb/mnist/) or any mirror of it")
_FASHION_SOURCE = (
    "Get the official IDX files (train-images-idx3-ubyte.gz, "
    "train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz, "
    "t10k-labels-idx1-ubyte.gz) from "
    "https://github.com/zalandoresearch/fashion-mnist (folder data/fashion)")


# --------------------------------------------------------------------------- digits


def load_digits_images(*, flat=False, return_X_y=True):
    """Load scikit-learn's 8x8 handwritten digits as images scaled to [0, 1].

    The data are the copy of the UCI optical digits test set embedded in
    scikit-learn (:func:`sklearn.datasets.load_digits`, 1797 images, 10 classes),
    so nothing is downloaded. Pixel counts 0..16 are divided by 16, which puts
    every feature in ``[0, 1]``, the box that the attacks' default
    ``clip_min=0, clip_max=1`` assume.

    Parameters
    ----------
    flat : bool, default=False
        If True, ``X`` has shape ``(1797, 64)`` (one row per image, for
        tabular models such as MLPs on vectors); otherwise it has shape
        ``(1797, 1, 8, 8)`` (channels-first images, for convolutional nets).
    return_X_y : bool, default=True
        If True, return ``(X, y)``. If False, return a
        :class:`~sklearn.utils.Bunch`.

    Returns
    -------
    X : ndarray of shape (1797, 1, 8, 8) or (1797, 64), dtype float32
        Pixel intensities in ``[0, 1]``. Returned when ``return_X_y=True``.
    y : ndarray of shape (1797,), dtype int64
        Digit labels 0..9. Returned when ``return_X_y=True``.
    data : :class:`~sklearn.utils.Bunch`
        Returned when ``return_X_y=False``, with attributes

        - ``data``: ``X`` as above (its shape follows ``flat``);
        - ``target``: ``y`` as above;
        - ``images``: ndarray of shape (1797, 8, 8), float32, in ``[0, 1]``;
        - ``target_names``: ndarray ``[0, 1, ..., 9]``;
        - ``DESCR``: description of the dataset.

    See Also
    --------
    sklearn.datasets.load_digits : The unscaled data this function wraps.

    References
    ----------
    .. [1] E. Alpaydin and C. Kaynak, "Optical Recognition of Handwritten
       Digits", UCI Machine Learning Repository, 1998.
       https://doi.org/10.24432/C50P49

    Examples
    --------
    >>> from sklearn_robust.datasets import load_digits_images
    >>> X, y = load_digits_images()
    >>> X.shape, X.dtype, y.dtype
    ((1797, 1, 8, 8), dtype('float32'), dtype('int64'))
    >>> float(X.min()), float(X.max())
    (0.0, 1.0)
    >>> load_digits_images(flat=True)[0].shape
    (1797, 64)
    >>> bunch = load_digits_images(return_X_y=False)
    >>> bunch.images.shape, bunch.target_names[:3].tolist()
    ((1797, 8, 8), [0, 1, 2])
    """
    digits = load_digits()
    images = np.ascontiguousarray(digits.images, dtype=np.float32) / np.float32(16.0)
    n = images.shape[0]
    X = images.reshape(n, -1) if flat else images.reshape(n, 1, 8, 8)
    X = np.ascontiguousarray(X)
    y = np.asarray(digits.target, dtype=np.int64)
    if return_X_y:
        return X, y
    descr = (
        "Handwritten digits (sklearn.datasets.load_digits) as loaded by "
        "sklearn_robust.datasets.load_digits_images: pixel counts 0..16 divided "
        "by 16 to lie in [0, 1], stored as float32; `data` has shape "
        f"{X.shape}, `images` has shape {images.shape}.\n\n" + digits.DESCR)
    return Bunch(data=X, target=y, images=images,
                 target_names=np.arange(_N_CLASSES), DESCR=descr)


# --------------------------------------------------------------------------- IDX


def _read_bytes(filename):
    """Read a file, transparently decompressing it if it is gzipped."""
    with open(filename, "rb") as f:
        raw = f.read()
    if raw[:2] == _GZIP_MAGIC:
        try:
            return gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as exc:
            raise ValueError(
                f"{filename!s} looks gzipped but could not be decompressed "
                f"({exc}); the file is probably truncated or corrupt.") from exc
    return raw


def _parse_idx(filename, expected_magic):
    """Parse an IDX file of unsigned bytes into an array, checking the header.

    The IDX format is a big-endian int32 magic number (``0x0000TTDD``, with
    type ``TT=0x08`` for unsigned bytes and ``DD`` dimensions), then ``DD``
    big-endian int32 sizes, then the data in C order.
    """
    raw = _read_bytes(filename)
    kind = "image" if expected_magic == _IMAGE_MAGIC else "label"
    if len(raw) < 4:
        raise ValueError(
            f"{filename!s} is too short ({len(raw)} bytes) to be an IDX {kind} file.")
    (magic,) = struct.unpack(">i", raw[:4])
    if magic != expected_magic:
        raise ValueError(
            f"{filename!s} is not an IDX {kind} file: its magic number is {magic}, "
            f"expected {expected_magic}. The file may be corrupt, or an image "
            "file and a label file may have been swapped.")
    ndim = magic & 0xFF
    header_len = 4 + 4 * ndim
    if len(raw) < header_len:
        raise ValueError(f"{filename!s} is truncated: its IDX header is incomplete.")
    shape = struct.unpack(f">{ndim}i", raw[4:header_len])
    expected = int(np.prod(shape, dtype=np.int64))
    if min(shape) < 0 or len(raw) - header_len != expected:
        raise ValueError(
            f"{filename!s} is truncated or corrupt: its header announces shape "
            f"{shape} ({expected} bytes of data) but it holds "
            f"{len(raw) - header_len} bytes of data.")
    return np.frombuffer(raw, dtype=np.uint8, offset=header_len).reshape(shape)


def _idx_candidates(prefix, what):
    """File names tried, in order, for one IDX file (e.g. ``train``, ``images``)."""
    code = "idx3-ubyte" if what == "images" else "idx1-ubyte"
    names = (f"{prefix}-{what}-{code}", f"{prefix}-{what}.{code}")
    return [name + ext for name in names for ext in ("", ".gz")]


def _find_first(directory, names):
    for name in names:
        candidate = os.path.join(directory, name)
        if os.path.isfile(candidate):
            return candidate
    return None


# --------------------------------------------------------------------------- checks


def _check_images_labels(images, labels, where):
    """Check one split's arrays and return them as (uint8 images, int64 labels)."""
    images = np.asarray(images)
    labels = np.asarray(labels)
    if images.ndim != 3 or images.shape[1:] != (_SIDE, _SIDE):
        raise ValueError(
            f"{where}: images must have shape (n, {_SIDE}, {_SIDE}), "
            f"got {images.shape}.")
    if images.dtype != np.uint8:
        if not np.issubdtype(images.dtype, np.integer) or (
                images.size and (images.min() < 0 or images.max() > 255)):
            raise ValueError(
                f"{where}: images must hold raw pixel values 0..255 (uint8), got "
                f"dtype {images.dtype}. Pass the unscaled data; the loader "
                "divides by 255 itself.")
        images = images.astype(np.uint8)
    if labels.ndim != 1 or labels.shape[0] != images.shape[0]:
        raise ValueError(
            f"{where}: labels must have shape ({images.shape[0]},) to match the "
            f"images, got {labels.shape}. The image and label files may come "
            "from different splits.")
    if not np.issubdtype(labels.dtype, np.integer) or (
            labels.size and (labels.min() < 0 or labels.max() >= _N_CLASSES)):
        raise ValueError(
            f"{where}: labels must be integers in 0..{_N_CLASSES - 1}.")
    return images, labels.astype(np.int64)


def _check_n_samples(n_samples, n_total=None):
    """Check ``n_samples`` (None or an int >= 1, and <= ``n_total`` if given)."""
    if n_samples is None:
        return None
    upper = "" if n_total is None else f" and at most {n_total}, the size of the subset"
    if (isinstance(n_samples, bool) or not isinstance(n_samples, numbers.Integral)
            or n_samples < 1 or (n_total is not None and n_samples > n_total)):
        raise ValueError(
            f"n_samples must be None or an integer >= 1{upper}; got {n_samples!r}.")
    return int(n_samples)


# --------------------------------------------------------------------------- reading


def _load_npz(filename, splits):
    """Read the requested splits from an ``.npz`` with keys x_train, y_train, ..."""
    try:
        archive = np.load(filename, allow_pickle=False)
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise ValueError(
            f"Could not read {filename!s} as a NumPy .npz archive ({exc}).") from exc
    if not hasattr(archive, "files"):  # a plain .npy file
        raise ValueError(f"{filename!s} is a single array, not an .npz archive.")
    with archive:
        out = []
        for split in splits:
            keys = (f"x_{split}", f"y_{split}")
            missing = [k for k in keys if k not in archive.files]
            if missing:
                raise ValueError(
                    f"{filename!s} lacks the key(s) {missing}; expected an .npz "
                    "with keys x_train, y_train, x_test, y_test. Found "
                    f"{sorted(archive.files)}.")
            try:
                images, labels = archive[keys[0]], archive[keys[1]]
            except (OSError, ValueError, EOFError, zlib.error,
                    zipfile.BadZipFile) as exc:
                raise ValueError(
                    f"Could not read {keys} from {filename!s} ({exc}); the file "
                    "is probably truncated or corrupt.") from exc
            out.append(_check_images_labels(images, labels, f"{filename!s} [{split}]"))
    return out


def _find_idx_files(directory, splits):
    """Locate the IDX files of ``splits``; return ``(found, missing)``."""
    found, missing = {}, []
    for split in splits:
        for what in ("images", "labels"):
            names = _idx_candidates(_IDX_PREFIX[split], what)
            hit = _find_first(directory, names)
            if hit is None:
                missing.append(" or ".join(names))
            found[split, what] = hit
    return found, missing


def _load_idx_files(found, splits):
    out = []
    for split in splits:
        images = _parse_idx(found[split, "images"], _IMAGE_MAGIC)
        labels = _parse_idx(found[split, "labels"], _LABEL_MAGIC)
        where = f"{found[split, 'images']!s} with {found[split, 'labels']!s}"
        out.append(_check_images_labels(images, labels, where))
    return out


def _not_found(problem, looked_for, name, source):
    looked = "\n".join(f"  - {item}" for item in looked_for)
    return FileNotFoundError(
        f"{problem} Looked for:\n{looked}\n"
        f"sklearn_robust never downloads anything. {source}, then pass either "
        "the directory that holds them (gzipped or not) or an .npz file with "
        "keys x_train, y_train, x_test, y_test (uint8 pixels 0..255).")


def _load_image_dataset(path, *, subset, flat, n_samples, random_state, name,
                        npz_name, source):
    if subset not in _SUBSETS:
        raise ValueError(f"subset must be one of {_SUBSETS}, got {subset!r}.")
    _check_n_samples(n_samples)  # fail before reading any file
    splits = ("train", "test") if subset == "all" else (subset,)
    path = os.path.expanduser(os.fspath(path))

    if os.path.isfile(path):
        parts = _load_npz(path, splits)
    elif os.path.isdir(path):
        npz = os.path.join(path, npz_name)
        if os.path.isfile(npz):
            parts = _load_npz(npz, splits)
        else:
            found, missing = _find_idx_files(path, splits)
            if missing:
                raise _not_found(
                    f"No {name} data found in the directory {path!s}.",
                    [npz_name] + missing, name, source)
            parts = _load_idx_files(found, splits)
    else:
        looked_for = [f"{path!s} as an .npz file",
                      f"{path!s} as a directory holding {npz_name} or the IDX files "
                      + ", ".join(_idx_candidates(_IDX_PREFIX[s], w)[0] + "[.gz]"
                                  for s in splits for w in ("images", "labels"))]
        raise _not_found(f"{name} data not found: {path!s} does not exist.",
                         looked_for, name, source)

    images = np.concatenate([p[0] for p in parts]) if len(parts) > 1 else parts[0][0]
    labels = np.concatenate([p[1] for p in parts]) if len(parts) > 1 else parts[0][1]

    n_samples = _check_n_samples(n_samples, labels.shape[0])
    if n_samples is not None and n_samples < labels.shape[0]:
        try:
            idx, _ = train_test_split(
                np.arange(labels.shape[0]), train_size=n_samples,
                stratify=labels, random_state=random_state)
        except ValueError as exc:
            raise ValueError(
                f"Cannot draw a stratified subset of n_samples={n_samples} out of "
                f"{labels.shape[0]} samples with {np.unique(labels).size} classes "
                f"({exc}). Choose n_samples so that both it and the number of "
                "samples left out are at least the number of classes.") from exc
        images, labels = images[idx], labels[idx]

    X = images.astype(np.float32)
    X /= np.float32(255.0)
    X = X.reshape(X.shape[0], -1) if flat else X.reshape(X.shape[0], 1, _SIDE, _SIDE)
    return X, labels


_LOADER_DOCS = {
    "split_params": """
    subset : {"train", "test", "all"}, default="train"
        Which split to load; ``"all"`` is the training split followed by the
        test split.
    flat : bool, default=False
        If True, ``X`` has shape ``(n, 784)``; otherwise ``(n, 1, 28, 28)``
        (channels-first images).
    n_samples : int or None, default=None
        If an int, return a random subset of that size, stratified by class
        (drawn with :func:`sklearn.model_selection.train_test_split`), in
        shuffled order. ``None`` returns the whole split in the official order.
    random_state : int, RandomState instance or None, default=None
        Seed of the subset drawn when ``n_samples`` is given; pass an int for
        the same subset on every call.""",
    "raises": """
    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist or lacks the files of ``subset``; the
        message lists the files looked for and where to get them.
    ValueError
        If ``subset`` or ``n_samples`` is invalid, or a file is corrupt or
        does not hold 28x28 images with labels 0..9 (e.g. a bad IDX magic
        number, a truncated file, or image and label counts that differ).""",
    "X_returned": """
    X : ndarray of shape (n, 1, 28, 28) or (n, 784), dtype float32
        Pixel intensities divided by 255, so in ``[0, 1]``.""",
}


@Substitution(**_LOADER_DOCS)
def load_mnist(path, *, subset="train", flat=False, n_samples=None,
               random_state=None):
    """Load the MNIST handwritten digits from local files, scaled to [0, 1].

    MNIST has 60000 training and 10000 test images of handwritten digits,
    28x28 grey levels, in 10 classes. Nothing is downloaded: ``path`` must
    point to data already on disk.

    Parameters
    ----------
    path : str or path-like
        One of

        - an ``.npz`` file with keys ``x_train``, ``y_train``, ``x_test``,
          ``y_test`` (uint8 pixels 0..255 of shape ``(n, 28, 28)`` and integer
          labels of shape ``(n,)``);
        - a directory holding ``mnist.npz`` in that format;
        - a directory holding the official IDX files
          ``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``,
          ``t10k-images-idx3-ubyte`` and ``t10k-labels-idx1-ubyte``, each
          optionally gzipped (``.gz``); the spellings with a dot
          (``train-images.idx3-ubyte``) are accepted too.

        Only the files of the requested ``subset`` need to exist.
    %(split_params)s

    Returns
    -------
    %(X_returned)s
    y : ndarray of shape (n,), dtype int64
        Digit labels 0..9.

    %(raises)s

    See Also
    --------
    load_fashion_mnist : The same loader for Fashion-MNIST.
    load_digits_images : 8x8 digits shipped with scikit-learn.

    References
    ----------
    .. [1] Y. LeCun, L. Bottou, Y. Bengio and P. Haffner, "Gradient-based
       learning applied to document recognition", Proceedings of the IEEE
       86(11):2278-2324, 1998. https://doi.org/10.1109/5.726791
    .. [2] Y. LeCun, C. Cortes and C. J. C. Burges, "The MNIST database of
       handwritten digits", http://yann.lecun.com/exdb/mnist/

    Examples
    --------
    A tiny stand-in file with the expected layout (real use: point ``path`` at
    the full data, e.g. ``load_mnist("data/mnist.npz")``):

    >>> import os, tempfile
    >>> import numpy as np
    >>> from sklearn_robust.datasets import load_mnist
    >>> rng = np.random.default_rng(0)
    >>> tmp = tempfile.TemporaryDirectory()
    >>> path = os.path.join(tmp.name, "mnist.npz")
    >>> np.savez(path,
    ...          x_train=rng.integers(0, 256, (50, 28, 28), dtype=np.uint8),
    ...          y_train=np.arange(50) % 10,
    ...          x_test=rng.integers(0, 256, (20, 28, 28), dtype=np.uint8),
    ...          y_test=np.arange(20) % 10)
    >>> X, y = load_mnist(path, subset="test")
    >>> X.shape, X.dtype, y.dtype
    ((20, 1, 28, 28), dtype('float32'), dtype('int64'))
    >>> X, y = load_mnist(tmp.name, flat=True, n_samples=20, random_state=0)
    >>> X.shape, np.bincount(y).tolist()
    ((20, 784), [2, 2, 2, 2, 2, 2, 2, 2, 2, 2])
    >>> tmp.cleanup()
    """
    return _load_image_dataset(
        path, subset=subset, flat=flat, n_samples=n_samples,
        random_state=random_state, name="MNIST", npz_name="mnist.npz",
        source=_MNIST_SOURCE)


@Substitution(**_LOADER_DOCS)
def load_fashion_mnist(path, *, subset="train", flat=False, n_samples=None,
                       random_state=None):
    """Load Fashion-MNIST from local files, scaled to [0, 1].

    Fashion-MNIST is a drop-in replacement for MNIST: 60000 training and
    10000 test 28x28 grey-level images of Zalando articles in 10 classes.
    Nothing is downloaded: ``path`` must point to data already on disk.

    Parameters
    ----------
    path : str or path-like
        One of

        - an ``.npz`` file with keys ``x_train``, ``y_train``, ``x_test``,
          ``y_test`` (uint8 pixels 0..255 of shape ``(n, 28, 28)`` and integer
          labels of shape ``(n,)``);
        - a directory holding ``fashion_mnist.npz`` in that format;
        - a directory holding the official IDX files
          ``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``,
          ``t10k-images-idx3-ubyte`` and ``t10k-labels-idx1-ubyte``, each
          optionally gzipped (``.gz``), as in the ``data/fashion`` folder of
          the Fashion-MNIST repository; the spellings with a dot
          (``train-images.idx3-ubyte``) are accepted too.

        Only the files of the requested ``subset`` need to exist.
    %(split_params)s

    Returns
    -------
    %(X_returned)s
    y : ndarray of shape (n,), dtype int64
        Labels 0..9: 0 T-shirt/top, 1 Trouser, 2 Pullover, 3 Dress, 4 Coat,
        5 Sandal, 6 Shirt, 7 Sneaker, 8 Bag, 9 Ankle boot.

    %(raises)s

    See Also
    --------
    load_mnist : The same loader for MNIST.

    References
    ----------
    .. [1] H. Xiao, K. Rasul and R. Vollgraf, "Fashion-MNIST: a Novel Image
       Dataset for Benchmarking Machine Learning Algorithms",
       arXiv:1708.07747, 2017. https://github.com/zalandoresearch/fashion-mnist

    Examples
    --------
    A tiny stand-in file with the expected layout (real use: point ``path`` at
    the full data, e.g. ``load_fashion_mnist("data/fashion_mnist.npz")``):

    >>> import os, tempfile
    >>> import numpy as np
    >>> from sklearn_robust.datasets import load_fashion_mnist
    >>> rng = np.random.default_rng(0)
    >>> tmp = tempfile.TemporaryDirectory()
    >>> path = os.path.join(tmp.name, "fashion_mnist.npz")
    >>> np.savez(path,
    ...          x_train=rng.integers(0, 256, (50, 28, 28), dtype=np.uint8),
    ...          y_train=np.arange(50) % 10,
    ...          x_test=rng.integers(0, 256, (20, 28, 28), dtype=np.uint8),
    ...          y_test=np.arange(20) % 10)
    >>> X, y = load_fashion_mnist(path, subset="all", flat=True)
    >>> X.shape, X.dtype, y.dtype
    ((70, 784), dtype('float32'), dtype('int64'))
    >>> X, y = load_fashion_mnist(path, n_samples=20, random_state=0)
    >>> X.shape, np.bincount(y).tolist()
    ((20, 1, 28, 28), [2, 2, 2, 2, 2, 2, 2, 2, 2, 2])
    >>> tmp.cleanup()
    """
    return _load_image_dataset(
        path, subset=subset, flat=flat, n_samples=n_samples,
        random_state=random_state, name="Fashion-MNIST",
        npz_name="fashion_mnist.npz", source=_FASHION_SOURCE)
