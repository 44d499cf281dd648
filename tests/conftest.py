import numpy as np
import pytest
from sklearn.model_selection import train_test_split

from sklearn_robust.datasets import load_digits_images


@pytest.fixture(scope="session")
def digits_split():
    """Flat digits in [0, 1], stratified 70/30 split (read-only: do not modify)."""
    X, y = load_digits_images(flat=True)
    return train_test_split(X, y, test_size=0.3, stratify=y, random_state=0)


@pytest.fixture(scope="session")
def small_digits(digits_split):
    """A 300-sample training subset and 150-sample test subset of digits."""
    X_train, X_test, y_train, y_test = digits_split
    return X_train[:300], X_test[:150], y_train[:300], y_test[:150]


@pytest.fixture
def rng():
    return np.random.RandomState(0)
