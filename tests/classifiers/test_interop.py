"""Interop with pandas, skorch callbacks and set_output."""

import warnings

import numpy as np
import pytest
from sklearn.pipeline import make_pipeline
from skorch.callbacks import Checkpoint, EarlyStopping
from skorch.dataset import ValidSplit

from sklearn_robust import AdversarialClassifier, TriLevelDatasetLearner

pd = pytest.importorskip("pandas")
FAST = dict(eps=0.1, n_steps=1, step_size=0.1, max_epochs=2, random_state=0,
            module__hidden_layer_sizes=(16,))


@pytest.fixture(scope="module")
def frame(digits_split):
    X, _, y, _ = digits_split
    X, y = X[:200], y[:200]
    return pd.DataFrame(X, columns=[f"px{i}" for i in range(X.shape[1])]), y


def test_dataframes_fit_and_predict_without_warnings(frame):
    df, y = frame
    X0 = df.to_numpy().copy()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        clf = AdversarialClassifier(**FAST).fit(df, y)
        clf.predict(df)
        clf.predict_proba(df.iloc[:5])
    np.testing.assert_array_equal(clf.feature_names_in_, df.columns)
    np.testing.assert_array_equal(df.to_numpy(), X0)
    with pytest.warns(UserWarning, match="feature names"):
        clf.predict(df.to_numpy())


def test_dataset_learner_in_a_pandas_pipeline(frame):
    df, y = frame
    learner = TriLevelDatasetLearner(eps=0.1, max_iter=2, inner_steps=2,
                                     random_state=0)
    learner.set_output(transform="pandas")
    out = learner.fit_transform(df, y)
    assert isinstance(out, pd.DataFrame)
    assert list(out.columns) == list(df.columns)
    assert out.index.equals(df.index)
    np.testing.assert_array_equal(learner.get_feature_names_out(), df.columns)
    pipe = make_pipeline(TriLevelDatasetLearner(eps=0.1, max_iter=2, inner_steps=2,
                                                random_state=0),
                         AdversarialClassifier(**FAST)).set_output(transform="pandas")
    pipe.fit(df, y)
    assert pipe.predict(df).shape == (len(df),)


@pytest.mark.parametrize("callback", [
    EarlyStopping(patience=2),
    Checkpoint(monitor="valid_loss_best", dirname="unused"),
])
def test_validation_callbacks_need_a_split(callback, frame, tmp_path):
    df, y = frame
    clf = AdversarialClassifier(**FAST, callbacks=[callback])
    with pytest.raises(ValueError, match=r"train_split=skorch\.dataset\.ValidSplit"):
        clf.fit(df, y)
    if isinstance(callback, Checkpoint):
        callback = Checkpoint(monitor="valid_loss_best", dirname=str(tmp_path))
    clf = AdversarialClassifier(**FAST, callbacks=[callback],
                                train_split=ValidSplit(0.25, random_state=0))
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # no feature-name warning
        clf.fit(df, y)
    assert "valid_loss" in clf.history[-1]


def test_repr_shows_the_changed_parameters(frame):
    df, y = frame
    clf = AdversarialClassifier(eps=0.1, n_steps=5, module__hidden_layer_sizes=(8,))
    assert repr(clf) == ("AdversarialClassifier(module__hidden_layer_sizes=(8,), "
                         "eps=0.1, n_steps=5)")
    assert repr(AdversarialClassifier()) == "AdversarialClassifier()"
    clf.set_params(max_epochs=1, step_size=0.05).fit(df, y)
    assert repr(clf).startswith("AdversarialClassifier(")
    assert "with module_=MLP(" in repr(clf)


def test_channels_last_images_are_named():
    rng = np.random.RandomState(0)
    X, y = rng.rand(8, 28, 28, 1).astype(np.float32), np.arange(8) % 2
    with pytest.raises(ValueError, match=r"channels-last.*transpose\(0, 3, 1, 2\)"):
        AdversarialClassifier(max_epochs=1).fit(X, y)
    # channels first is fine
    AdversarialClassifier(max_epochs=1, n_steps=1, step_size=0.3).fit(
        X.transpose(0, 3, 1, 2), y)


def test_a_training_attack_too_short_for_eps_warns(frame):
    df, y = frame
    with pytest.warns(UserWarning, match=r"travel at most 0\.05, less than eps=0\.15"):
        AdversarialClassifier(eps=0.15, n_steps=5, step_size=0.01,
                              max_epochs=1).fit(df, y)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        AdversarialClassifier(eps=0.15, n_steps=5, step_size=None,
                              max_epochs=1).fit(df, y)


def test_constructor_classes_fix_the_classes(frame):
    df, y = frame
    labels = np.arange(12)  # two labels that y never shows
    clf = AdversarialClassifier(**FAST, classes=labels).fit(df, y)
    np.testing.assert_array_equal(clf.classes_, labels)
    assert clf.predict_proba(df).shape == (len(df), 12)
    with pytest.raises(ValueError, match="not in classes"):
        AdversarialClassifier(**FAST, classes=[0, 1]).fit(df, y)
