# SPDX-License-Identifier: BSD-3-Clause
"""Tests for RobustFeatureDataset, the robust dataset D_R of Ilyas et al. (2019)."""

import importlib.util
import pickle

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.dummy import DummyClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline

from sklearn_robust import AdversarialClassifier
from sklearn_robust.dataset_learning import RobustFeatureDataset
from sklearn_robust.dataset_learning._robust_features import _Representation
from sklearn_robust.nn import MLP, SmallCNN

N_TRAIN = 200


def _robust_net(**kw):
    params = dict(module=MLP, module__hidden_layer_sizes=(32,), norm="l2", eps=0.5,
                  n_steps=5, step_size=0.25, max_epochs=20, lr=1e-2, batch_size=64,
                  random_state=0)
    return AdversarialClassifier(**{**params, **kw})


@pytest.fixture(scope="module")
def data(digits_split):
    X_train, X_test, y_train, y_test = digits_split
    return X_train[:N_TRAIN], y_train[:N_TRAIN], X_test[:300], y_test[:300]


@pytest.fixture(scope="module")
def robust_net(data):
    """An L2-PGD-trained MLP with a 32-unit penultimate layer (fitted once)."""
    X, y, _, _ = data
    return _robust_net().fit(X, y)


@pytest.fixture(scope="module")
def tiny_net():
    """An unfitted L2 classifier that trains in a fraction of a second."""
    return _robust_net(max_epochs=2, n_steps=2)


class _Pair(torch.nn.Module):
    def forward(self, x):
        return x, x


class _WithUnused(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.pair = _Pair()
        self.fc = torch.nn.Linear(4, 2)
        self.unused = torch.nn.ReLU()

    def forward(self, x):
        return self.fc(self.pair(x)[0])


def _penultimate(net, X):
    """The 32-unit hidden layer of the fitted MLP, computed without hooks."""
    with torch.no_grad():
        return net.module_.layers[:-1](torch.as_tensor(X)).numpy()


# --------------------------------------------------------------------- contract


def test_transformer_contract(data, robust_net):
    X, y, X_test, _ = data
    labels = np.array(list("abcdefghij"))[y]           # string labels
    X_before = X.copy()
    module = robust_net.module_
    weights = [p.detach().clone() for p in module.parameters()]
    grads = [None if p.grad is None else p.grad.clone() for p in module.parameters()]
    module.train()                                      # its mode must come back
    d = RobustFeatureDataset(estimator=robust_net, max_iter=10, random_state=0)
    X_robust = d.fit_transform(X, labels)
    assert X_robust.shape == X.shape and X_robust.dtype == np.float32
    np.testing.assert_array_equal(X_robust, d.X_robust_)
    np.testing.assert_array_equal(d.y_robust_, labels)  # order and labels kept
    assert X_robust.min() >= 0.0 and X_robust.max() <= 1.0
    np.testing.assert_array_equal(d.transform(X_test), X_test)        # identity
    np.testing.assert_array_equal(X, X_before)                        # untouched
    assert d._is_same_size()
    assert d.classes_.tolist() == list("abcdefghij")
    assert d.n_iter_ == 10 and d.loss_history_.shape == (11,)
    assert d.distance_.shape == (N_TRAIN,)
    assert d.n_features_in_ == 64 and d.input_shape_ == (64,)
    # the start of row i is another training row
    idx = d.init_indices_
    assert idx.shape == (N_TRAIN,) and idx.min() >= 0 and idx.max() < N_TRAIN
    assert np.all(idx != np.arange(N_TRAIN))
    # a fitted network is used as it is: not copied, trained, nor left changed
    assert d.estimator_ is robust_net
    assert all(torch.equal(p, w) for p, w in zip(module.parameters(), weights))
    assert all(p.requires_grad for p in module.parameters())
    assert all((p.grad is None and g is None) or torch.equal(p.grad, g)
               for p, g in zip(module.parameters(), grads))
    assert module.training
    assert not any(m._forward_hooks or m._forward_pre_hooks for m in module.modules())
    module.eval()
    # clone / get_params
    params = d.get_params()
    assert params["estimator"] is robust_net and params["max_iter"] == 10
    twin = clone(d)
    assert not hasattr(twin, "X_robust_")
    np.testing.assert_array_equal(twin.fit_transform(X, labels), X_robust)
    # pickling the fitted transformer
    back = pickle.loads(pickle.dumps(d))
    np.testing.assert_array_equal(back.X_robust_, X_robust)
    np.testing.assert_array_equal(back.transform(X_test[:5]), X_test[:5])
    assert back.estimator_.predict(X_test[:5]).shape == (5,)
    with pytest.raises(ValueError, match="features"):
        d.transform(X_test[:, :10])


def test_pipeline_trains_the_next_step_on_d_r(data, robust_net):
    X, y, _, _ = data
    kw = dict(estimator=robust_net, max_iter=5, random_state=0)
    pipe = make_pipeline(RobustFeatureDataset(**kw),
                         LogisticRegression(max_iter=200)).fit(X, y)
    direct = LogisticRegression(max_iter=200).fit(
        RobustFeatureDataset(**kw).fit_transform(X, y), y)
    np.testing.assert_allclose(pipe[-1].coef_, direct.coef_, rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------- optimisation


def test_representation_distance_goes_down(data, robust_net):
    X, y, _, _ = data
    d = RobustFeatureDataset(estimator=robust_net, max_iter=60, random_state=0)
    d.fit(X, y)
    h = d.loss_history_
    # the distance is that of the 32-unit penultimate layer (input of the readout)
    target = _penultimate(robust_net, X)
    start = np.linalg.norm(_penultimate(robust_net, X[d.init_indices_]) - target,
                           axis=1)
    final = np.linalg.norm(_penultimate(robust_net, d.X_robust_) - target, axis=1)
    np.testing.assert_allclose(h[0], start.mean(), rtol=1e-5)
    np.testing.assert_allclose(d.distance_, final, rtol=1e-4, atol=1e-5)
    # measured (seed 0): mean distance 5.68 at the start, 0.18 after 60 steps
    assert h[-1] < 0.1 * h[0]
    assert h[-10:].mean() < h[10:20].mean() < h[:10].mean()    # decreasing overall
    assert np.all(d.distance_ <= start + 1e-5)                # the best iterate
    assert d.distance_.mean() < 0.1 * start.mean()
    # the images moved far from their starts, towards the targets' representation
    assert np.linalg.norm(d.X_robust_ - X[d.init_indices_], axis=1).mean() > 1.0


def test_batch_size_does_not_change_the_result(data, robust_net):
    X, y, _, _ = data
    kw = dict(estimator=robust_net, max_iter=8, random_state=0)
    full = RobustFeatureDataset(**kw).fit(X, y)
    small = RobustFeatureDataset(**kw, batch_size=7).fit(X, y)
    np.testing.assert_allclose(small.X_robust_, full.X_robust_, atol=1e-4)
    np.testing.assert_allclose(small.loss_history_, full.loss_history_, rtol=1e-4)


@pytest.mark.parametrize("init", ["normal", "uniform"])
def test_noise_starts(data, robust_net, init):
    X, y, _, _ = data
    d = RobustFeatureDataset(estimator=robust_net, init=init, max_iter=15,
                             random_state=0).fit(X, y)
    assert d.init_indices_ is None
    assert d.X_robust_.min() >= 0.0 and d.X_robust_.max() <= 1.0
    assert d.loss_history_[-1] < 0.5 * d.loss_history_[0]
    # unbounded box: the noise range comes from the data, no clipping happens
    open_box = RobustFeatureDataset(estimator=robust_net, init=init, max_iter=3,
                                    clip_min=None, clip_max=None,
                                    random_state=0).fit(X, y)
    assert np.isfinite(open_box.X_robust_).all()


def test_layer_by_name(data, robust_net):
    X, y, _, _ = data
    kw = dict(estimator=robust_net, max_iter=5, random_state=0)
    default = RobustFeatureDataset(**kw).fit(X, y)
    # the output of the hidden ReLU is the input of the readout: the same problem
    named = RobustFeatureDataset(**kw, layer="layers.1").fit(X, y)
    np.testing.assert_array_equal(named.X_robust_, default.X_robust_)
    # the pre-activation of the hidden layer is another representation
    pre = RobustFeatureDataset(**kw, layer="layers.0").fit(X, y)
    with torch.no_grad():
        z = robust_net.module_.layers[0]
        target = z(torch.as_tensor(X)).numpy()
        final = z(torch.as_tensor(pre.X_robust_)).numpy()
    np.testing.assert_allclose(pre.distance_, np.linalg.norm(final - target, axis=1),
                               rtol=1e-4, atol=1e-5)


def test_representation_of_the_library_networks():
    gen = torch.Generator().manual_seed(0)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        cnn = SmallCNN(input_shape=(1, 16, 16), n_classes=3).eval()
        mlp = MLP(input_shape=(1, 8, 8), n_classes=3, hidden_layer_sizes=(16, 8))
    x = torch.rand(4, 1, 16, 16, generator=gen)
    rep = _Representation(cnn, None)
    assert rep.site is cnn.classifier.fc3
    with torch.no_grad():
        expected = cnn.classifier[:-1](torch.flatten(cnn.features(x), 1))
        torch.testing.assert_close(rep(x), expected)
        torch.testing.assert_close(_Representation(cnn, "features.pool2")(x),
                                   torch.flatten(cnn.features(x), 1))
    assert _Representation(mlp, None).site is mlp.layers[-1]
    assert _Representation(mlp, None)(torch.rand(4, 64)).shape == (4, 8)
    with pytest.raises(ValueError, match="no torch.nn.Linear"):
        _Representation(torch.nn.Sequential(torch.nn.Flatten()), None)
    with pytest.raises(ValueError, match="not a sub-module.*'features'"):
        _Representation(cnn, "features.conv9")
    # a sub-module that the forward pass never calls
    with pytest.raises(ValueError, match="never called that module"):
        _Representation(_WithUnused(), "unused")(torch.rand(3, 4))
    with pytest.raises(ValueError, match="not a tensor.*tuple"):
        _Representation(_WithUnused(), "pair")(torch.rand(3, 4))


def test_torch_module_as_estimator(data):
    X, y, _, _ = data
    images = X[:40].reshape(-1, 1, 8, 8)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        net = MLP(input_shape=(1, 8, 8), n_classes=10, hidden_layer_sizes=(16,))
    before = [p.detach().clone() for p in net.parameters()]
    d = RobustFeatureDataset(estimator=net, max_iter=5, random_state=0)
    with torch.no_grad():                 # fit needs autograd and enables it
        X_robust = d.fit_transform(images, y[:40])
    assert X_robust.shape == images.shape and d.estimator_ is net
    assert all(torch.equal(p, b) for p, b in zip(net.parameters(), before))
    assert d.loss_history_[-1] < d.loss_history_[0]


# ------------------------------------------------------------------ the network


def test_unfitted_estimator_is_cloned_and_trained(data, tiny_net):
    X, y, _, _ = data
    net = clone(tiny_net).set_params(random_state=None)
    d = RobustFeatureDataset(estimator=net, max_iter=3, random_state=0).fit(X, y)
    assert not hasattr(net, "module_")            # the parameter is left unfitted
    assert d.estimator_ is not net and hasattr(d.estimator_, "module_")
    assert d.estimator_.norm == "l2" and d.estimator_.max_epochs == 2
    # a missing random_state is drawn from the transformer's
    assert isinstance(d.estimator_.random_state, int)


def test_default_estimator(data):
    X, y, _, _ = data
    d = RobustFeatureDataset(eps=0.7, max_iter=2, random_state=0)
    d.fit(X[:60], y[:60])
    est = d.estimator_
    assert isinstance(est, AdversarialClassifier)
    assert est.norm == "l2" and est.eps == 0.7 and est.n_steps == 7
    assert est.step_size == pytest.approx(2.5 * 0.7 / 7)
    assert isinstance(est.module_, MLP)           # default_module for 64 features
    assert (est.clip_min, est.clip_max) == (0.0, 1.0)


@pytest.mark.parametrize("kw", [dict(norm="linf", eps=0.1), dict(eps=0.0)],
                         ids=["linf", "eps0"])
def test_warns_when_the_network_is_not_l2_robust(data, tiny_net, kw):
    X, y, _, _ = data
    net = clone(tiny_net).set_params(**kw)
    with pytest.warns(UserWarning, match="L2-adversarially trained"):
        RobustFeatureDataset(estimator=net, max_iter=2, random_state=0).fit(X, y)


def test_random_state_determinism_and_global_rng(data, tiny_net):
    X, y, _, _ = data
    kw = dict(estimator=tiny_net.set_params(random_state=None), max_iter=5)
    torch_state = torch.get_rng_state()
    np_state = np.random.get_state()[1].copy()
    a = RobustFeatureDataset(**kw, random_state=0).fit(X, y)
    b = RobustFeatureDataset(**kw, random_state=0).fit(X, y)
    assert torch.equal(torch.get_rng_state(), torch_state)
    np.testing.assert_array_equal(np.random.get_state()[1], np_state)
    np.testing.assert_array_equal(a.X_robust_, b.X_robust_)
    np.testing.assert_array_equal(a.loss_history_, b.loss_history_)
    np.testing.assert_array_equal(a.init_indices_, b.init_indices_)
    c = RobustFeatureDataset(**kw, random_state=1).fit(X, y)
    assert not np.array_equal(a.init_indices_, c.init_indices_)
    assert not np.array_equal(a.X_robust_, c.X_robust_)
    d = RobustFeatureDataset(**kw, random_state=np.random.RandomState(0)).fit(X, y)
    assert np.isfinite(d.X_robust_).all()


def test_verbose(data, robust_net, capsys):
    X, y, _, _ = data
    RobustFeatureDataset(estimator=robust_net, max_iter=2).fit(X, y)
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""
    RobustFeatureDataset(estimator=robust_net, max_iter=2, verbose=1).fit(X, y)
    captured = capsys.readouterr()
    assert captured.out == ""
    if importlib.util.find_spec("tqdm") is None:   # the bar needs the extra
        assert captured.err == ""
    else:   # a tqdm bar over the max_iter + 1 steps, on stderr
        assert "RobustFeatureDataset" in captured.err and "0/3" in captured.err


# ------------------------------------------------------------------ bad input


@pytest.mark.parametrize("param, value, error, match", [
    ("eps", -0.5, ValueError, "eps"),
    ("eps", "big", TypeError, "eps"),
    ("max_iter", 0, ValueError, "max_iter"),
    ("lr", 0.0, ValueError, "lr"),
    ("lr", float("nan"), ValueError, "lr"),
    ("batch_size", 0, ValueError, "batch_size"),
    ("init", "zeros", ValueError, "init must be"),
    ("layer", 3, TypeError, "layer must be"),
    ("layer", "layers.9", ValueError, "not a sub-module"),
    ("clip_min", 2.0, ValueError, "clip_min must be smaller"),
    ("device", "not-a-device", ValueError, "device"),
    ("verbose", -1, ValueError, "verbose"),
    ("estimator", "mlp", TypeError, "estimator must be"),
    ("estimator", LogisticRegression(), TypeError, "estimator must be"),
], ids=lambda v: v if isinstance(v, str) else None)
def test_bad_parameters(data, robust_net, param, value, error, match):
    X, y, _, _ = data
    params = {"estimator": robust_net, "max_iter": 2, param: value}
    with pytest.raises(error, match=match):
        RobustFeatureDataset(**params).fit(X, y)


def test_bad_input(data, robust_net):
    X, y, _, _ = data
    d = RobustFeatureDataset(estimator=robust_net, max_iter=2)
    X_nan = X.copy()
    X_nan[3, 5] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        d.fit(X_nan, y)
    with pytest.raises(ValueError, match="clip range"):
        d.fit(X * 2, y)
    with pytest.raises(ValueError, match="one class"):
        d.fit(X, np.zeros_like(y))
    with pytest.raises(ValueError, match="needs y"):
        d.fit_transform(X)
    with pytest.raises(ValueError, match="trained on"):   # the net saw 64 features
        d.fit(X[:, :32], y)
    fitted_dummy = DummyClassifier().fit(X, y)
    with pytest.raises(TypeError, match="module_"):
        RobustFeatureDataset(estimator=fitted_dummy, max_iter=2).fit(X, y)


# ------------------------------------------------------------------ behaviour


def _natural_mlp(X, y, seed=0):
    return AdversarialClassifier(eps=0.0, module=MLP, module__hidden_layer_sizes=(64,),
                                 max_epochs=30, lr=1e-2, batch_size=64,
                                 random_state=seed).fit(X, y)


def test_natural_training_on_d_r_generalises_to_real_digits(data, robust_net):
    # The key property of D_R: each image starts from another, random training
    # image, so the label reaches it only through the robust representation of
    # the target. A network trained naturally on D_R classifies real digits.
    X, y, X_test, y_test = data
    d = RobustFeatureDataset(estimator=robust_net, max_iter=100, random_state=0)
    X_robust = d.fit_transform(X, y)
    acc = _natural_mlp(X_robust, y).score(X_test, y_test)
    # control: the start images with the same labels carry no label information
    control = _natural_mlp(X[d.init_indices_], y).score(X_test, y_test)
    # measured (seed 0): D_R 0.89, start images 0.07 (real images 0.92, the robust
    # net itself 0.87); over seeds 0-3 of the robust net and the synthesis, and 2
    # downstream seeds each, D_R 0.89-0.91 and start images 0.03-0.17
    assert acc > 0.7
    assert control < 0.25
