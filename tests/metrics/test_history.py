"""Plots of what training did."""

import numpy as np
import pytest
from skorch.dataset import ValidSplit

from sklearn_robust import AdversarialClassifier, LangevinAdvClassifier
from sklearn_robust.dataset_learning import TriLevelDatasetLearner
from sklearn_robust.metrics import LearnedSetDisplay, TrainingHistoryDisplay

plt = pytest.importorskip("matplotlib.pyplot")
FAST = dict(eps=0.1, n_steps=1, step_size=0.1, max_epochs=3, random_state=0,
            module__hidden_layer_sizes=(16,))


@pytest.fixture(scope="module")
def data(digits_split):
    X, _, y, _ = digits_split
    return X[:120], y[:120]


def test_classifier_history_curves(data):
    X, y = data
    clf = AdversarialClassifier(**FAST, train_split=ValidSplit(0.25, random_state=0)
                                ).fit(X, y)
    disp = TrainingHistoryDisplay.from_estimator(clf)
    assert list(disp.curves) == ["train_loss", "valid_loss", "valid_acc"]
    np.testing.assert_array_equal(disp.curves["valid_acc"],
                                  clf.history[:, "valid_acc"])
    assert len(disp.axes_) == 3 and disp.axes_[-1].get_xlabel() == "epoch"
    np.testing.assert_array_equal(disp.lines_["train_loss"].get_ydata(),
                                  clf.history[:, "train_loss"])
    plt.close("all")


def test_method_variables_and_key_selection(data):
    X, y = data
    clf = LangevinAdvClassifier(**{**FAST, "n_steps": 2}).fit(X, y)
    disp = TrainingHistoryDisplay.from_estimator(clf, keys="dual_variable",
                                                 plot=False)
    np.testing.assert_array_equal(disp.curves["dual_variable"],
                                  clf.history[:, "dual_variable"])
    with pytest.raises(ValueError, match=r"Unknown history keys \['kappa'\]"):
        TrainingHistoryDisplay.from_estimator(clf, keys=["kappa"], plot=False)
    with pytest.raises(ValueError, match="no training history"):
        TrainingHistoryDisplay.from_estimator(AdversarialClassifier(), plot=False)


def test_learner_history_and_images(data):
    X, y = data
    learner = TriLevelDatasetLearner(eps=0.1, max_iter=3, inner_steps=2,
                                     random_state=0).fit(X, y)
    disp = TrainingHistoryDisplay.from_estimator(learner)
    assert "loss" in disp.curves and "clean_loss" in disp.curves
    np.testing.assert_array_equal(disp.curves["loss"], learner.loss_history_)
    assert disp.axes_[-1].get_xlabel() == "outer step"
    grid = LearnedSetDisplay.from_learner(learner, X, n_images=4)
    assert grid.axes_.shape == (3, 4)
    np.testing.assert_allclose(grid.learned, learner.X_robust_[:4].reshape(4, 8, 8))
    np.testing.assert_allclose(grid.original, X[:4].reshape(4, 8, 8))
    with pytest.raises(ValueError, match="same-size"):
        LearnedSetDisplay.from_learner(learner, X[:10])
    with pytest.raises(ValueError, match="image_shape"):
        LearnedSetDisplay.from_arrays(np.zeros((2, 10)), np.zeros((2, 10)))
    images = LearnedSetDisplay.from_arrays(np.zeros((2, 3, 4, 4)),
                                           np.ones((2, 3, 4, 4)), plot=False)
    assert images.learned.shape == (2, 4, 4)
    plt.close("all")
