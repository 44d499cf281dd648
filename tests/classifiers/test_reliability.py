"""Reliability of the classifiers' entry points (issue 13): skorch parameters
checked at fit, RNG hygiene and determinism, partial_fit's classes, and the
save_params/load_params round trip."""

import io
import pickle
import threading
import time

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.datasets import make_classification
from sklearn.exceptions import NotFittedError
from skorch.callbacks import Callback

from sklearn_robust import AdversarialClassifier, GAIRTRADESClassifier
from sklearn_robust.attacks import PGD
from sklearn_robust.dataset_learning import NTKRobustDistiller
from sklearn_robust.nn import MLP
from sklearn_robust.utils._torch import derive_seed, fork_rng, seed_from_random_state

TINY = dict(module=MLP, module__hidden_layer_sizes=(8,), eps=0.1, n_steps=2,
            step_size=0.05, max_epochs=1, batch_size=16, random_state=0)


@pytest.fixture(scope="module")
def data():
    X, y = make_classification(n_samples=60, n_features=6, n_informative=4,
                               n_classes=3, random_state=0)
    X = (X - X.min()) / (X.max() - X.min())
    return X.astype(np.float32), y


def _weights(clf):
    return torch.cat([p.detach().flatten() for p in clf.module_.parameters()])


def _clf(**params):
    return AdversarialClassifier(**{**TINY, **params})


# ------------------------------------------------- item 6: skorch parameters
@pytest.mark.parametrize("params, name", [
    (dict(batch_size=0), "batch_size"),
    (dict(batch_size=-2), "batch_size"),
    (dict(batch_size=16.0), "batch_size"),
    (dict(batch_size="16"), "batch_size"),
    (dict(iterator_train__batch_size=0), "iterator_train__batch_size"),
    (dict(iterator_valid__batch_size=-3), "iterator_valid__batch_size"),
    (dict(max_epochs=-1), "max_epochs"),
    (dict(device="gpu"), "device"),
])
def test_invalid_skorch_parameters_are_value_errors(data, params, name):
    X, y = data
    for method in ("fit", "partial_fit"):
        with pytest.raises(ValueError, match=name):
            getattr(_clf(**params), method)(X, y)


@pytest.mark.parametrize("module", ["mlp", int, 3])
def test_module_that_is_no_torch_module_is_a_type_error(data, module):
    X, y = data
    with pytest.raises(TypeError, match="module must be"):
        _clf(module=module).fit(X, y)


def test_module_factory_must_return_a_torch_module(data):
    X, y = data
    _clf(module=lambda **kw: MLP((6,), 3, **kw)).fit(X, y)   # a factory is fine
    with pytest.raises(TypeError, match="not a torch.nn.Module"):
        _clf(module=lambda **kw: "mlp").fit(X, y)


def test_unavailable_cuda_device_is_a_value_error(data, monkeypatch):
    X, y = data
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValueError, match=r"device='cuda' is not available"):
        _clf(device="cuda").fit(X, y)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    with pytest.raises(ValueError, match=r"device='cuda:3' does not exist"):
        _clf(device="cuda:3").fit(X, y)


def test_numpy_integer_batch_size_is_accepted(data):
    X, y = data
    # DataLoader itself rejects NumPy ints: the prediction and validation
    # iterators, and a training iterator that is not sliced, must convert them
    clf = _clf(batch_size=np.int64(16), train_split=lambda ds, y: (ds, ds),
               iterator_train__num_workers=0).fit(X, y)
    assert clf.predict_proba(X).shape == (60, 3)
    assert not clf.partial_fit(X, y).module_.training
    assert np.isfinite(clf.history[:, "valid_loss"]).all()
    _clf(batch_size=-1).fit(X, y).predict(X)           # -1: one batch


# ------------------------------------------------------- item 8: the seeds
def test_seed_range_is_scikit_learns():
    assert seed_from_random_state(2**32 - 1) == 2**32 - 1
    assert seed_from_random_state(np.uint32(7)) == 7
    assert 0 <= seed_from_random_state(np.random.RandomState(0)) < 2**32
    for bad in (-1, 2**32, 1.5, "0", True, np.random.default_rng(0)):
        with pytest.raises(ValueError, match="random_state must be an int in"):
            seed_from_random_state(bad)
    assert derive_seed(2**32 - 1, 5) == derive_seed(2**32 - 1, 5) < 2**32
    assert derive_seed(0, 1) != derive_seed(0, 2)


def test_largest_seed_is_accepted_everywhere(data):
    X, y = data
    # the attack seeds are offsets of the training seed: they wrap modulo 2**32
    _clf(random_state=2**32 - 1).fit(X, y).partial_fit(X, y)
    GAIRTRADESClassifier(**{**TINY, "random_state": 2**32 - 1},
                         burn_in_epochs=0).fit(X, y)


def test_negative_seeds_are_rejected_consistently(data):
    X, y = data
    with pytest.raises(ValueError, match="AdversarialClassifier: random_state"):
        _clf(random_state=-1).fit(X, y)
    with pytest.raises(ValueError, match="random_state must be an int"):
        PGD(eps=0.1, n_steps=1, random_state=-1).perturb(
            torch.nn.Linear(6, 3), X[:4], y[:4])
    with pytest.raises(ValueError, match="NTKRobustDistiller: random_state must"):
        NTKRobustDistiller(eps=0.1, max_iter=1, n_steps=1,
                           random_state=-1).fit(X, y)


# ------------------------------------------------- item 8: the global RNG
def test_training_and_prediction_leave_the_global_torch_rng_alone(data):
    X, y = data
    for random_state in (0, None, np.random.RandomState(0)):
        torch.manual_seed(3)
        state = torch.get_rng_state()
        clf = _clf(random_state=random_state).fit(X, y)
        clf.partial_fit(X, y)
        clf.predict(X)
        clf.predict_proba(X)
        clf.decision_function(X)
        clf.score(X, y)
        assert torch.equal(torch.get_rng_state(), state), random_state


def test_random_state_none_does_not_depend_on_the_torch_rng(data):
    X, y = data
    fits = []
    for torch_seed in (1, 2):
        torch.manual_seed(torch_seed)
        np.random.seed(0)   # None means NumPy's global RNG, as in scikit-learn
        fits.append(_weights(_clf(random_state=None).fit(X, y)))
    assert torch.equal(*fits)


class _RecordAttackStream(Callback):
    """Records the attack's random stream at the start of each training call."""

    def initialize(self):
        self.states = []
        return self

    def on_train_begin(self, net, **kwargs):
        self.states.append(net.attack_.random_state.get_state()[1].copy())


def test_partial_fit_is_reproducible_and_never_replays_its_random_draws(data):
    X, y = data
    runs = []
    for torch_seed in (1, 2):
        torch.manual_seed(torch_seed)  # the global RNG plays no part
        rec = _RecordAttackStream()
        clf = _clf(callbacks=[("rec", rec)],
                   module__dropout=0.5)
        weights = [_weights(clf.partial_fit(X, y)).clone() for _ in range(3)]
        runs.append((weights, rec.states))
    (w1, s1), (w2, s2) = runs
    assert all(torch.equal(a, b) for a, b in zip(w1, w2))
    assert all(np.array_equal(a, b) for a, b in zip(s1, s2))
    # every call has its own attack stream (and torch seed)
    assert not np.array_equal(s1[0], s1[1]) and not np.array_equal(s1[1], s1[2])
    # the first partial_fit is fit's first call; fit restarts the sequence
    fitted = _clf(module__dropout=0.5).fit(X, y)
    assert torch.equal(_weights(fitted), w1[0])


class _Yield(Callback):
    """Sleeps at every batch so that training threads interleave."""

    def on_batch_begin(self, net, **kwargs):
        time.sleep(0.002)


def test_threads_fitting_their_own_estimators_match_sequential_fits(data):
    X, y = data
    params = dict(module__dropout=0.5, batch_size=8, max_epochs=2,
                  callbacks=[("yield", _Yield())])
    sequential = _weights(_clf(**params).fit(X, y))
    clfs = [_clf(**params) for _ in range(3)]
    threads = [threading.Thread(target=c.fit, args=(X, y)) for c in clfs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for c in clfs:
        assert torch.equal(_weights(c), sequential)


def test_fork_rng_lock_is_reentrant():
    with fork_rng(0):
        a = torch.rand(1)
        with fork_rng(1):
            torch.rand(1)
        assert torch.rand(1) != a   # the outer stream continues


class _SlowMLP(MLP):
    """An MLP whose forward pass waits a little (threads interleave inside it)."""

    def forward(self, x):
        time.sleep(0.001)
        return super().forward(x)


def test_threads_scoring_one_model_agree(data):
    X, y = data
    clf = _clf(module=_SlowMLP, module__dropout=0.5).fit(X, y)
    # a fitted module is in eval mode, so eval-mode contexts (attacks, scorers)
    # that restore the flag never switch dropout on under a concurrent predict
    assert not clf.partial_fit(X, y).module_.training
    expected = pickle.loads(pickle.dumps(clf)).predict_proba(X)  # clf untouched
    results, stop = [], threading.Event()

    def attack():
        while not stop.is_set():
            PGD(eps=0.1, n_steps=1, random_state=0).perturb(clf.module_, X, y)

    def predict():
        for _ in range(10):
            results.append(clf.predict_proba(X))

    attacker, predictor = threading.Thread(target=attack), threading.Thread(
        target=predict)
    attacker.start()
    predictor.start()
    predictor.join()
    stop.set()
    attacker.join()
    assert all(np.array_equal(r, expected) for r in results)


# ------------------------------------------------ item 9: partial_fit classes
def test_partial_fit_honours_classes(data):
    X, y = data
    labels = np.array(["a", "b", "c", "d"])[y]          # "d" never occurs
    first = labels != "c"
    clf = _clf().partial_fit(X[first], labels[first], classes=["d", "c", "b", "a"])
    assert clf.classes_.tolist() == ["a", "b", "c", "d"]
    assert clf.predict_proba(X).shape == (60, 4)       # the network has 4 outputs
    only_c = labels == "c"
    clf.partial_fit(X[only_c], labels[only_c])          # one class: a subset
    clf.partial_fit(X[only_c], labels[only_c], classes=["a", "b", "c", "d"])
    assert clf.classes_.tolist() == ["a", "b", "c", "d"]
    with pytest.raises(ValueError, match="not the same as the classes"):
        clf.partial_fit(X, labels, classes=["a", "b", "c"])
    with pytest.raises(ValueError, match=r"not seen in the first fit: \['e'\]"):
        clf.partial_fit(X[:2], np.array(["a", "e"]))


def test_partial_fit_rejects_labels_outside_classes(data):
    X, y = data
    with pytest.raises(ValueError, match=r"not in classes: \[2\]"):
        _clf().partial_fit(X, y, classes=[0, 1])
    with pytest.raises(ValueError, match="at least 2 labels"):
        _clf().partial_fit(X[y == 0], y[y == 0], classes=[0])
    with pytest.raises(ValueError, match="1-D"):
        _clf().partial_fit(X, y, classes=[[0, 1, 2]])
    # with classes, the first call may see a single class
    assert _clf().partial_fit(X[y == 0], y[y == 0], classes=[0, 1, 2]).predict(
        X).shape == (60,)


# ------------------------------------------------ item 13: save and load
def test_save_params_and_load_params_into_a_new_instance(data, tmp_path):
    X, y = data
    labels = np.array(["x", "y", "z"])[y]
    clf = _clf(max_epochs=2).fit(X, labels)
    files = dict(f_params=tmp_path / "net.pt", f_optimizer=tmp_path / "opt.pt",
                 f_history=tmp_path / "history.json",
                 f_fitted=tmp_path / "fitted.json")
    clf.save_params(**files)
    new = _clf(max_epochs=2)
    new.load_params(**files)
    np.testing.assert_array_equal(new.predict(X), clf.predict(X))
    np.testing.assert_array_equal(new.predict_proba(X), clf.predict_proba(X))
    assert new.classes_.tolist() == ["x", "y", "z"] and new.n_features_in_ == 6
    assert len(new.history) == 2 and not new.module_.training
    new.partial_fit(X, labels)                           # training continues
    assert len(new.history) == 4
    # file objects work too
    buffers = {"f_params": io.BytesIO(), "f_fitted": io.BytesIO()}
    clf.save_params(**buffers)
    for b in buffers.values():
        b.seek(0)
    other = _clf(max_epochs=2)
    other.load_params(**buffers)
    np.testing.assert_array_equal(other.predict_proba(X), clf.predict_proba(X))


def test_load_params_without_the_data_attributes_says_what_is_missing(data,
                                                                      tmp_path):
    X, y = data
    clf = _clf().fit(X, y)
    clf.save_params(f_params=tmp_path / "net.pt")
    params = {k: v for k, v in TINY.items() if not k.startswith("module")}
    new = AdversarialClassifier(MLP((6,), 3, hidden_layer_sizes=(8,)),
                                **params).initialize()
    new.load_params(f_params=tmp_path / "net.pt")
    with pytest.raises(NotFittedError, match="f_fitted"):
        new.predict(X)
    with pytest.raises(ValueError, match="f_fitted is not a file"):
        _clf().load_params(f_fitted=io.StringIO('{"classes": [0, 1]}'))
    with pytest.raises(NotFittedError):
        _clf().save_params(f_fitted=io.StringIO())


def test_pickle_round_trip_is_exact(data):
    X, y = data
    clf = _clf().fit(X, y)
    again = pickle.loads(pickle.dumps(clf))
    np.testing.assert_array_equal(again.predict_proba(X), clf.predict_proba(X))
    assert not clf.partial_fit(X, y).module_.training
    again.partial_fit(X, y)
    assert torch.equal(_weights(again), _weights(clf))
    assert clone(clf).get_params()["random_state"] == 0
