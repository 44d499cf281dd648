# SPDX-License-Identifier: BSD-3-Clause
"""Tests for sklearn_robust.datasets (offline, on tiny fake files only)."""

import gzip
import struct

import numpy as np
import pytest
from sklearn.utils import Bunch

from sklearn_robust.datasets import load_digits_images, load_fashion_mnist, load_mnist

LOADERS = [(load_mnist, "mnist.npz"), (load_fashion_mnist, "fashion_mnist.npz")]
N_TRAIN, N_TEST = 60, 30  # 6 and 3 images per class


# --------------------------------------------------------------------------- helpers


def _fake_split(n, seed):
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
    x[0, 0, 0], x[0, 0, 1] = 0, 255  # make sure both ends of the range occur
    y = np.tile(np.arange(10, dtype=np.uint8), n // 10)
    rng.shuffle(y)
    return x, y


@pytest.fixture(scope="module")
def fake():
    x_train, y_train = _fake_split(N_TRAIN, 0)
    x_test, y_test = _fake_split(N_TEST, 1)
    return {"x_train": x_train, "y_train": y_train,
            "x_test": x_test, "y_test": y_test}


def _idx_bytes(array, magic):
    header = struct.pack(">i", magic) + struct.pack(f">{array.ndim}i", *array.shape)
    return header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()


def _write_idx(directory, fake, *, gz=False, dot=False, splits=("train", "test")):
    sep = "." if dot else "-"
    for split in splits:
        prefix = "train" if split == "train" else "t10k"
        for what, key, code, magic in (("images", "x", "idx3-ubyte", 2051),
                                       ("labels", "y", "idx1-ubyte", 2049)):
            name = f"{prefix}-{what}{sep}{code}" + (".gz" if gz else "")
            data = _idx_bytes(fake[f"{key}_{split}"], magic)
            (directory / name).write_bytes(gzip.compress(data) if gz else data)
    return directory


def _expected(fake, subset):
    splits = ("train", "test") if subset == "all" else (subset,)
    x = np.concatenate([fake[f"x_{s}"] for s in splits])
    y = np.concatenate([fake[f"y_{s}"] for s in splits])
    return x.astype(np.float32) / 255, y.astype(np.int64)


# --------------------------------------------------------------------------- digits


def test_digits_images():
    X, y = load_digits_images()
    assert X.shape == (1797, 1, 8, 8)
    assert X.dtype == np.float32 and y.dtype == np.int64
    assert X.min() == 0.0 and X.max() == 1.0
    assert y.shape == (1797,) and set(np.unique(y)) == set(range(10))
    assert X.flags.c_contiguous


def test_digits_flat_matches_images():
    X_img, y_img = load_digits_images()
    X_flat, y_flat = load_digits_images(flat=True)
    assert X_flat.shape == (1797, 64)
    np.testing.assert_array_equal(X_flat, X_img.reshape(1797, 64))
    np.testing.assert_array_equal(y_flat, y_img)


def test_digits_scaling_matches_sklearn():
    from sklearn.datasets import load_digits

    X, _ = load_digits_images(flat=True)
    np.testing.assert_allclose(X, load_digits().data / 16, rtol=0, atol=1e-7)


@pytest.mark.parametrize("flat", [False, True])
def test_digits_bunch(flat):
    bunch = load_digits_images(flat=flat, return_X_y=False)
    assert isinstance(bunch, Bunch)
    X, y = load_digits_images(flat=flat)
    np.testing.assert_array_equal(bunch.data, X)
    np.testing.assert_array_equal(bunch.target, y)
    assert bunch.images.shape == (1797, 8, 8) and bunch.images.dtype == np.float32
    np.testing.assert_array_equal(bunch.images.reshape(1797, -1), X.reshape(1797, -1))
    np.testing.assert_array_equal(bunch.target_names, np.arange(10))
    assert "digits" in bunch.DESCR.lower() and "[0, 1]" in bunch.DESCR


# ------------------------------------------------------------------------ MNIST files


@pytest.mark.parametrize("loader, npz_name", LOADERS)
@pytest.mark.parametrize("subset", ["train", "test", "all"])
def test_npz_file(tmp_path, fake, loader, npz_name, subset):
    path = tmp_path / "anything.npz"
    np.savez_compressed(path, **fake)
    X, y = loader(path, subset=subset)
    X_exp, y_exp = _expected(fake, subset)
    assert X.shape == (len(y_exp), 1, 28, 28)
    assert X.dtype == np.float32 and y.dtype == np.int64
    assert X.min() == 0.0 and X.max() == 1.0
    np.testing.assert_array_equal(X.reshape(len(y_exp), 28, 28), X_exp)
    np.testing.assert_array_equal(y, y_exp)


@pytest.mark.parametrize("loader, npz_name", LOADERS)
def test_directory_with_npz(tmp_path, fake, loader, npz_name):
    np.savez(tmp_path / npz_name, **fake)
    X, y = loader(str(tmp_path), subset="test")
    X_exp, y_exp = _expected(fake, "test")
    np.testing.assert_array_equal(X.reshape(-1, 28, 28), X_exp)
    np.testing.assert_array_equal(y, y_exp)


@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize("dot", [False, True])
@pytest.mark.parametrize("subset", ["train", "test", "all"])
def test_idx_directory(tmp_path, fake, gz, dot, subset):
    _write_idx(tmp_path, fake, gz=gz, dot=dot)
    X, y = load_mnist(tmp_path, subset=subset)
    X_exp, y_exp = _expected(fake, subset)
    assert X.dtype == np.float32 and y.dtype == np.int64
    np.testing.assert_array_equal(X.reshape(-1, 28, 28), X_exp)
    np.testing.assert_array_equal(y, y_exp)


def test_idx_only_requested_split_needed(tmp_path, fake):
    _write_idx(tmp_path, fake, gz=True, splits=("test",))
    X, y = load_fashion_mnist(tmp_path, subset="test")
    assert X.shape == (N_TEST, 1, 28, 28)
    with pytest.raises(FileNotFoundError, match="train-images-idx3-ubyte"):
        load_fashion_mnist(tmp_path, subset="train")


@pytest.mark.parametrize("loader, npz_name", LOADERS)
def test_flat(tmp_path, fake, loader, npz_name):
    np.savez(tmp_path / npz_name, **fake)
    X_img, y_img = loader(tmp_path)
    X_flat, y_flat = loader(tmp_path, flat=True)
    assert X_flat.shape == (N_TRAIN, 784) and X_flat.dtype == np.float32
    np.testing.assert_array_equal(X_flat, X_img.reshape(N_TRAIN, 784))
    np.testing.assert_array_equal(y_flat, y_img)


def test_n_samples_stratified_and_deterministic(tmp_path, fake):
    np.savez(tmp_path / "mnist.npz", **fake)
    X1, y1 = load_mnist(tmp_path, subset="all", n_samples=30, random_state=0)
    X2, y2 = load_mnist(tmp_path, subset="all", n_samples=30, random_state=0)
    X3, y3 = load_mnist(tmp_path, subset="all", n_samples=30, random_state=1)
    assert X1.shape == (30, 1, 28, 28) and y1.shape == (30,)
    np.testing.assert_array_equal(X1, X2)
    np.testing.assert_array_equal(y1, y2)
    assert not np.array_equal(X1, X3)
    # 9 images per class in "all": a 30-image subset keeps 3 per class
    np.testing.assert_array_equal(np.bincount(y1, minlength=10), np.full(10, 3))
    np.testing.assert_array_equal(np.bincount(y3, minlength=10), np.full(10, 3))
    # every returned (image, label) pair is a pair of the full data
    X_all, y_all = load_mnist(tmp_path, subset="all", flat=True)
    rows = {x.tobytes(): label for x, label in zip(X_all, y_all)}
    for x, label in zip(X1.reshape(30, -1), y1):
        assert rows[x.tobytes()] == label


def test_n_samples_flat_and_full_size(tmp_path, fake):
    np.savez(tmp_path / "mnist.npz", **fake)
    X, y = load_mnist(tmp_path, subset="test", flat=True, n_samples=10,
                      random_state=np.random.RandomState(3))
    assert X.shape == (10, 784)
    np.testing.assert_array_equal(np.sort(y), np.arange(10))
    X_full, y_full = load_mnist(tmp_path, subset="test", n_samples=N_TEST)
    np.testing.assert_array_equal(y_full, _expected(fake, "test")[1])


@pytest.mark.parametrize("n_samples", [0, -1, 2.5, True, "10", N_TEST + 1])
def test_bad_n_samples(tmp_path, fake, n_samples):
    np.savez(tmp_path / "mnist.npz", **fake)
    with pytest.raises(ValueError, match="n_samples"):
        load_mnist(tmp_path, subset="test", n_samples=n_samples)


def test_n_samples_too_small_to_stratify(tmp_path, fake):
    np.savez(tmp_path / "mnist.npz", **fake)
    with pytest.raises(ValueError, match="stratified"):
        load_mnist(tmp_path, subset="test", n_samples=5)


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize("loader, where", [
    (load_mnist, "LeCun"), (load_fashion_mnist, "zalandoresearch/fashion-mnist")])
def test_missing_path(tmp_path, loader, where):
    missing = tmp_path / "nope.npz"
    with pytest.raises(FileNotFoundError) as info:
        loader(missing)
    message = str(info.value)
    assert str(missing) in message
    assert where in message
    assert "never downloads" in message
    assert "train-images-idx3-ubyte" in message


@pytest.mark.parametrize("loader, npz_name", LOADERS)
def test_empty_directory(tmp_path, loader, npz_name):
    with pytest.raises(FileNotFoundError) as info:
        loader(tmp_path, subset="all")
    message = str(info.value)
    assert npz_name in message
    for name in ("train-images-idx3-ubyte.gz", "train-labels.idx1-ubyte",
                 "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte.gz"):
        assert name in message
    assert "never downloads" in message


@pytest.mark.parametrize("gz", [False, True])
def test_corrupt_idx_magic(tmp_path, fake, gz):
    _write_idx(tmp_path, fake, gz=gz)
    name = "train-images-idx3-ubyte" + (".gz" if gz else "")
    data = bytearray(_idx_bytes(fake["x_train"], 2051))
    data[:4] = struct.pack(">i", 1234)
    (tmp_path / name).write_bytes(gzip.compress(bytes(data)) if gz else bytes(data))
    with pytest.raises(ValueError, match="magic number is 1234, expected 2051"):
        load_mnist(tmp_path)


def test_swapped_idx_files(tmp_path, fake):
    _write_idx(tmp_path, fake)
    images = (tmp_path / "t10k-images-idx3-ubyte").read_bytes()
    labels = (tmp_path / "t10k-labels-idx1-ubyte").read_bytes()
    (tmp_path / "t10k-images-idx3-ubyte").write_bytes(labels)
    (tmp_path / "t10k-labels-idx1-ubyte").write_bytes(images)
    with pytest.raises(ValueError, match="expected 2051"):
        load_mnist(tmp_path, subset="test")


def test_truncated_idx(tmp_path, fake):
    _write_idx(tmp_path, fake)
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(ValueError, match="truncated"):
        load_mnist(tmp_path)


def test_truncated_gzip(tmp_path, fake):
    _write_idx(tmp_path, fake, gz=True)
    path = tmp_path / "train-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[:-20])
    with pytest.raises(ValueError, match="corrupt"):
        load_mnist(tmp_path)


def test_mismatched_idx_counts(tmp_path, fake):
    _write_idx(tmp_path, fake)
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(
        _idx_bytes(fake["y_test"], 2049))
    with pytest.raises(ValueError, match="labels must have shape"):
        load_mnist(tmp_path)


def test_npz_missing_keys(tmp_path, fake):
    path = tmp_path / "data.npz"
    np.savez(path, x_train=fake["x_train"], y_train=fake["y_train"])
    load_mnist(path, subset="train")
    with pytest.raises(ValueError, match="x_test"):
        load_mnist(path, subset="test")


@pytest.mark.parametrize("field, value, match", [
    ("x_train", np.zeros((60, 32, 32), dtype=np.uint8), "shape"),
    ("x_train", np.zeros((60, 28, 28), dtype=np.float32), "0..255"),
    ("y_train", np.full(60, 10), "labels must be integers"),
])
def test_npz_bad_content(tmp_path, fake, field, value, match):
    path = tmp_path / "data.npz"
    np.savez(path, **{**fake, field: value})
    with pytest.raises(ValueError, match=match):
        load_mnist(path)


def test_not_an_npz(tmp_path):
    path = tmp_path / "data.npz"
    path.write_bytes(b"this is not a zip archive")
    with pytest.raises(ValueError, match="npz"):
        load_mnist(path)


@pytest.mark.parametrize("subset", ["val", "TRAIN", None, "t10k"])
def test_bad_subset(tmp_path, fake, subset):
    np.savez(tmp_path / "mnist.npz", **fake)
    with pytest.raises(ValueError, match="subset"):
        load_mnist(tmp_path, subset=subset)
