"""Learned sets as .npz files with their metadata."""

import numpy as np
import pytest

from sklearn_robust.dataset_learning import (
    RobustDataset,
    TriLevelDatasetLearner,
    load_dataset,
    save_dataset,
)
from sklearn_robust.dataset_learning._io import data_hash


@pytest.fixture(scope="module")
def learned(digits_split):
    X, _, y, _ = digits_split
    X, y = X[:60], y[:60]
    learner = TriLevelDatasetLearner(eps=0.1, max_iter=2, inner_steps=2,
                                     random_state=0).fit(X, y)
    return learner, X, y


def test_round_trip_keeps_the_set_and_its_metadata(learned, tmp_path):
    learner, X, y = learned
    X0 = learner.X_robust_.copy()
    path = save_dataset(tmp_path / "digits_robust", learner,
                        metadata={"data": "digits"})
    assert path.endswith(".npz")
    data = load_dataset(path)
    assert isinstance(data, RobustDataset)
    np.testing.assert_array_equal(data.X, learner.X_robust_)
    np.testing.assert_array_equal(data.y, learner.y_robust_)
    np.testing.assert_array_equal(learner.X_robust_, X0)
    meta = data.metadata
    assert meta["learner"] == "TriLevelDatasetLearner"
    assert meta["eps"] == 0.1 and meta["norm"] == "linf"
    assert meta["clip_min"] == 0.0 and meta["clip_max"] == 1.0
    assert meta["params"]["max_iter"] == 2
    assert meta["data"] == "digits" and meta["format_version"] == 1
    assert meta["input_shape"] == [64]
    # the source is identified: the very data it learned from, and no other
    assert meta["source_hash"] == learner.source_hash_ == data_hash(X, y)
    assert data_hash(X[::-1], y[::-1]) != meta["source_hash"]
    X_loaded, y_loaded = load_dataset(path)
    assert X_loaded.dtype == np.float32 and len(y_loaded) == len(X_loaded)


def test_string_labels_without_pickle(learned, tmp_path):
    _, X, y = learned
    labels = np.array([f"digit {v}" for v in y], dtype=object)
    learner = TriLevelDatasetLearner(eps=0.1, max_iter=1, inner_steps=1,
                                     random_state=0).fit(X, labels)
    data = load_dataset(save_dataset(tmp_path / "s.npz", learner))
    assert data.y.tolist() == labels.tolist()
    with np.load(tmp_path / "s.npz", allow_pickle=False) as raw:
        assert set(raw.files) == {"X", "y", "metadata"}


def test_bad_input(learned, tmp_path):
    learner, _, _ = learned
    with pytest.raises(ValueError, match="fitted robust-dataset learner"):
        save_dataset(tmp_path / "x", TriLevelDatasetLearner())
    with pytest.raises(TypeError, match="metadata must be a dict"):
        save_dataset(tmp_path / "x", learner, metadata=["a"])
    with pytest.raises(TypeError, match="JSON"):
        save_dataset(tmp_path / "x", learner, metadata={"a": object()})
    with pytest.raises(FileNotFoundError, match="No robust dataset"):
        load_dataset(tmp_path / "missing.npz")
    np.savez(tmp_path / "other.npz", a=np.zeros(3))
    with pytest.raises(ValueError, match="not a robust dataset file"):
        load_dataset(tmp_path / "other.npz")
