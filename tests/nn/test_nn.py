# SPDX-License-Identifier: BSD-3-Clause
"""Tests for the network modules in :mod:`sklearn_robust.nn`."""

import math
import pickle

import numpy as np
import pytest
import torch
from torch import nn

from sklearn_robust.nn import (
    MLP,
    PreActResNet18,
    SmallCNN,
    WideResNet,
    default_module,
    image_shape,
)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


# Small instances (factory, input_shape, n_classes) keeping the test file fast on CPU.
CASES = {
    "mlp": (lambda: MLP(input_shape=(20,), n_classes=3, hidden_layer_sizes=(16, 8)),
            (20,), 3),
    "mlp-image": (lambda: MLP(input_shape=(1, 8, 8), n_classes=4,
                              hidden_layer_sizes=(16,)), (1, 8, 8), 4),
    "smallcnn-mnist": (lambda: SmallCNN(), (1, 28, 28), 10),
    "smallcnn-flat": (lambda: SmallCNN(input_shape=(784,), n_classes=5), (784,), 5),
    "smallcnn-cifar": (lambda: SmallCNN(input_shape=(3, 32, 32), n_classes=10),
                       (3, 32, 32), 10),
    "preact": (lambda: PreActResNet18(input_shape=(3, 8, 8), n_classes=10),
               (3, 8, 8), 10),
    "preact-mnist": (lambda: PreActResNet18(input_shape=(1, 28, 28), n_classes=2),
                     (1, 28, 28), 2),
    "wrn": (lambda: WideResNet(input_shape=(3, 16, 16), n_classes=10, depth=10,
                               widen_factor=1), (3, 16, 16), 10),
    "wrn-flat": (lambda: WideResNet(input_shape=(784,), n_classes=3, depth=10,
                                    widen_factor=1), (784,), 3),
}
FAST = ["mlp", "smallcnn-mnist", "smallcnn-flat", "preact", "wrn"]


def _batch(shape, n=3, flat=False):
    x = torch.rand(n, *shape)
    return x.reshape(n, -1) if flat else x


@pytest.mark.parametrize("name", list(CASES))
@pytest.mark.parametrize("flat", [True, False])
def test_output_shape_flat_and_shaped(name, flat):
    factory, shape, n_classes = CASES[name]
    net = factory().eval()
    x = _batch(shape, flat=flat)
    with torch.no_grad():
        out = net(x)
    assert out.shape == (3, n_classes)
    assert out.dtype == torch.float32
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("name", ["smallcnn-flat", "wrn-flat"])
def test_flat_module_accepts_image_batches(name):
    factory, shape, n_classes = CASES[name]
    net = factory().eval()
    x = torch.rand(2, *image_shape(shape))
    with torch.no_grad():
        assert torch.allclose(net(x), net(x.reshape(2, -1)))


@pytest.mark.parametrize("name", FAST)
def test_flat_and_shaped_give_same_logits(name):
    factory, shape, _ = CASES[name]
    net = factory().eval()
    x = _batch(shape)
    with torch.no_grad():
        assert torch.allclose(net(x), net(x.reshape(len(x), -1)))


@pytest.mark.parametrize("name", FAST)
def test_returns_logits_not_probabilities(name):
    factory, shape, _ = CASES[name]
    net = factory().eval()
    with torch.no_grad():
        out = net(_batch(shape, n=4))
    assert not torch.allclose(out.sum(dim=1), torch.ones(4), atol=1e-3)
    assert (out < 0).any() or (out > 1).any()
    # rows are not constant (e.g. not a zero-initialised readout)
    assert (out.std(dim=1) > 0).all()


@pytest.mark.parametrize("factory, shape", [
    (lambda: MLP(input_shape=(20,), n_classes=3, hidden_layer_sizes=(64, 64),
                 dropout=0.5), (20,)),
    (lambda: SmallCNN(dropout=0.5), (1, 28, 28)),
    (lambda: PreActResNet18(input_shape=(3, 8, 8), dropout=0.5), (3, 8, 8)),
    (lambda: WideResNet(input_shape=(3, 16, 16), depth=10, widen_factor=1, dropout=0.3),
     (3, 16, 16)),
])
def test_dropout_active_in_train_only(factory, shape):
    net = factory()
    x = _batch(shape, n=4)
    net.train()
    with torch.no_grad():
        assert not torch.allclose(net(x), net(x))
    net.eval()
    with torch.no_grad():
        assert torch.equal(net(x), net(x))


def test_no_dropout_layers_when_dropout_is_zero():
    net = MLP(input_shape=(10,), n_classes=2, hidden_layer_sizes=(8, 8))
    assert not any(isinstance(m, nn.Dropout) for m in net.modules())
    net = MLP(input_shape=(10,), n_classes=2, hidden_layer_sizes=(8, 8), dropout=0.2)
    assert sum(isinstance(m, nn.Dropout) for m in net.modules()) == 2
    x = torch.rand(3, 10)
    net = MLP(input_shape=(10,), n_classes=2).train()
    with torch.no_grad():
        assert torch.equal(net(x), net(x))
    wrn = WideResNet(depth=10, widen_factor=1, dropout=0.2)
    assert sum(isinstance(m, nn.Dropout) for m in wrn.modules()) == 3  # one per block


def test_mlp_structure():
    net = MLP(input_shape=(1, 5, 4), n_classes=3, hidden_layer_sizes=(7, 6))
    linears = [m for m in net.modules() if isinstance(m, nn.Linear)]
    shapes = [(m.in_features, m.out_features) for m in linears]
    assert shapes == [(20, 7), (7, 6), (6, 3)]
    assert sum(isinstance(m, nn.ReLU) for m in net.modules()) == 2
    assert net.hidden_layer_sizes == (7, 6)
    default = MLP(input_shape=(4,), n_classes=2)
    assert default.hidden_layer_sizes == (256, 256)
    # int and empty hidden_layer_sizes
    single = MLP(input_shape=(4,), n_classes=2, hidden_layer_sizes=5)
    assert single.hidden_layer_sizes == (5,)
    linear = MLP(input_shape=(4,), n_classes=2, hidden_layer_sizes=())
    assert [type(m) for m in linear.layers] == [nn.Linear]


def test_smallcnn_structure():
    net = SmallCNN()
    convs = [m for m in net.modules() if isinstance(m, nn.Conv2d)]
    assert [m.out_channels for m in convs] == [32, 32, 64, 64]
    assert [m.in_channels for m in convs] == [1, 32, 32, 64]
    assert all(m.kernel_size == (3, 3) and m.padding == (0, 0) for m in convs)
    assert sum(isinstance(m, nn.MaxPool2d) for m in net.modules()) == 2
    linears = [m for m in net.modules() if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [
        (64 * 4 * 4, 200), (200, 200), (200, 10)]
    # dropout sits right after the first fc-ReLU
    head = list(net.classifier)
    assert isinstance(head[2], nn.Dropout) and head[2].p == 0.5
    assert isinstance(head[0], nn.Linear) and isinstance(head[1], nn.ReLU)
    # conv biases are zero-initialised (Kaiming-normal weights, as in TRADES)
    assert all(torch.count_nonzero(m.bias) == 0 for m in convs)


def test_smallcnn_flat_size_follows_input_shape():
    net = SmallCNN(input_shape=(3, 32, 32), n_classes=7)
    assert net.features.conv1.in_channels == 3
    assert net.classifier.fc1.in_features == 64 * 5 * 5
    assert net.classifier.fc3.out_features == 7
    net = SmallCNN(input_shape=(1, 16, 20))
    assert net.classifier.fc1.in_features == 64 * 1 * 2
    assert net(torch.rand(2, 320)).shape == (2, 10)


@pytest.mark.parametrize("shape", [(1, 8, 8), (64,), (15, 15), (1, 28, 12)])
def test_smallcnn_too_small_image(shape):
    with pytest.raises(ValueError, match="at least 16x16"):
        SmallCNN(input_shape=shape)


@pytest.mark.parametrize("name", FAST)
def test_gradients_flow_to_input(name):
    factory, shape, n_classes = CASES[name]
    net = factory().eval()
    x = _batch(shape, n=2, flat=True).requires_grad_(True)
    loss = nn.functional.cross_entropy(net(x), torch.tensor([0, 1]))
    (grad,) = torch.autograd.grad(loss, x)
    assert grad.shape == x.shape
    assert torch.isfinite(grad).all()
    assert (grad.abs().sum(dim=1) > 0).all()


@pytest.mark.parametrize("name", FAST + ["wrn-flat"])
def test_pickle_round_trip(name):
    factory, shape, _ = CASES[name]
    net = factory().eval()
    x = _batch(shape)
    clone = pickle.loads(pickle.dumps(net))
    assert type(clone) is type(net)
    assert clone.input_shape == net.input_shape and clone.n_classes == net.n_classes
    with torch.no_grad():
        assert torch.equal(net(x), clone(x))


def test_float64_and_numpy_input_cast_to_parameters_dtype():
    net = MLP(input_shape=(6,), n_classes=2, hidden_layer_sizes=(4,)).eval()
    x = torch.rand(3, 6, dtype=torch.float64)
    out = net(x)
    assert out.dtype == torch.float32
    assert torch.allclose(out, net(x.float()))
    assert torch.allclose(net(x.numpy()), out)
    cnn = SmallCNN().eval()
    assert cnn(np.random.RandomState(0).rand(2, 784)).shape == (2, 10)


@pytest.mark.parametrize("bad", [(3, 20), (3, 28, 28), (3, 3, 28, 28), (28, 28, 1),
                                 (2, 1, 28, 28, 1)])
def test_wrong_batch_shape_raises(bad):
    net = SmallCNN().eval()  # expects (N, 784) or (N, 1, 28, 28)
    with pytest.raises(ValueError, match="expects a batch"):
        net(torch.rand(*bad))
    with pytest.raises(ValueError, match="expects a batch"):
        net(torch.rand(784))  # no batch dimension


@pytest.mark.parametrize("shape, expected", [
    ((3, 32, 32), (3, 32, 32)),
    ((1, 28, 28), (1, 28, 28)),
    ((28, 28), (1, 28, 28)),
    ((784,), (1, 28, 28)),
    ((64,), (1, 8, 8)),
    ((3072,), (3, 32, 32)),
    ((12,), (3, 2, 2)),
    (784, (1, 28, 28)),
    ((np.int64(1), np.int64(28), np.int64(28)), (1, 28, 28)),
])
def test_image_shape(shape, expected):
    result = image_shape(shape)
    assert result == expected
    assert all(type(s) is int for s in result)


@pytest.mark.parametrize("shape, match", [
    ((10,), r"input_shape=\(C, H, W\)"),
    ((3 * 10,), r"input_shape=\(C, H, W\)"),
    ((1, 2, 3, 4), "1, 2 or 3 entries"),
    ((), "non-empty"),
    ((0, 28, 28), "positive"),
    ((1, -28, 28), "positive"),
    ((2.5,), "positive"),
    ("abc", "positive"),
    (None, "tuple of positive"),
])
def test_image_shape_errors(shape, match):
    with pytest.raises(ValueError, match=match):
        image_shape(shape)


@pytest.mark.parametrize("shape, n_classes, expected", [
    ((1, 28, 28), 10, SmallCNN),
    ((3, 32, 32), 10, SmallCNN),
    ((1, 20, 20), 2, SmallCNN),
    ((1, 19, 28), 2, MLP),
    ((1, 8, 8), 10, MLP),
    ((64,), 10, MLP),
    ((784,), 10, MLP),  # flat input: no guessing of an image layout
    ((28, 28), 10, MLP),
    ((30,), 2, MLP),
])
def test_default_module(shape, n_classes, expected):
    net = default_module(shape, n_classes)
    assert type(net) is expected
    assert net.n_classes == n_classes
    assert net.input_shape == shape
    if expected is MLP:
        assert net.hidden_layer_sizes == (256, 256)
    else:
        assert net.dropout == 0.5
    x = torch.rand(2, math.prod(shape))
    assert net.eval()(x).shape == (2, n_classes)


@pytest.mark.parametrize("depth", [28, 34, 10, 16, 22])
def test_wideresnet_depth_valid(depth):
    net = WideResNet(depth=depth, widen_factor=1)
    n = (depth - 4) // 6
    convs = [m for m in net.modules()
             if isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3)]
    assert len(convs) == 1 + 3 * 2 * n  # stem + two convs per block
    assert net.fc.in_features == 64


@pytest.mark.parametrize("depth", [27, 12, 4, -2, 0, 10.0, True, "28"])
def test_wideresnet_depth_invalid(depth):
    with pytest.raises(ValueError, match="depth"):
        WideResNet(depth=depth, widen_factor=1)


def test_wideresnet_widths():
    net = WideResNet(input_shape=(1, 28, 28), depth=10, widen_factor=2, n_classes=4)
    assert net.conv1.in_channels == 1 and net.conv1.out_channels == 16
    stages = (net.block1, net.block2, net.block3)
    assert [stage[0].conv1.out_channels for stage in stages] == [32, 64, 128]
    assert net.fc.out_features == 4
    with pytest.raises(ValueError, match="widen_factor"):
        WideResNet(depth=10, widen_factor=0)


def test_preactresnet18_structure():
    net = PreActResNet18(n_classes=7, dropout=0.25)
    blocks = [net.layer1, net.layer2, net.layer3, net.layer4]
    assert [len(layer) for layer in blocks] == [2, 2, 2, 2]
    assert [layer[0].conv1.out_channels for layer in blocks] == [64, 128, 256, 512]
    convs3 = [m for m in net.modules()
              if isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3)]
    assert len(convs3) + 1 == 18  # 17 conv layers + the readout
    assert net.linear.in_features == 512 and net.linear.out_features == 7
    assert isinstance(net.drop, nn.Dropout) and net.drop.p == 0.25
    assert isinstance(PreActResNet18().drop, nn.Identity)


@pytest.mark.parametrize("factory", [
    lambda **kw: MLP(input_shape=(4,), **kw),
    lambda **kw: SmallCNN(**kw),
    lambda **kw: PreActResNet18(input_shape=(1, 8, 8), **kw),
    lambda **kw: WideResNet(depth=10, widen_factor=1, **kw),
])
@pytest.mark.parametrize("kwargs, match", [
    ({"n_classes": 1}, "n_classes"),
    ({"n_classes": 2.0}, "n_classes"),
    ({"n_classes": True}, "n_classes"),
    ({"n_classes": 3, "dropout": 1.0}, "dropout"),
    ({"n_classes": 3, "dropout": -0.1}, "dropout"),
    ({"n_classes": 3, "dropout": "0.5"}, "dropout"),
])
def test_invalid_arguments(factory, kwargs, match):
    with pytest.raises(ValueError, match=match):
        factory(**kwargs)


@pytest.mark.parametrize("sizes", [(0,), (16, -1), (2.5,), "ab", None])
def test_mlp_invalid_hidden_layer_sizes(sizes):
    with pytest.raises(ValueError, match="hidden_layer_sizes"):
        MLP(input_shape=(4,), n_classes=2, hidden_layer_sizes=sizes)


@pytest.mark.parametrize("shape", [(), (0,), (4, 0), (-1,), None, (2.0,)])
def test_invalid_input_shape(shape):
    with pytest.raises(ValueError, match="input_shape"):
        MLP(input_shape=shape, n_classes=2)


def test_normalize_layer_keeps_the_threat_model_in_pixel_units():
    import copy
    import pickle

    from sklearn_robust.attacks import PGD
    from sklearn_robust.nn import Normalize

    torch.manual_seed(0)
    x = torch.rand(6, 3, 4, 4)
    mean, std = [0.4, 0.5, 0.6], [0.2, 0.25, 0.3]
    layer = Normalize(mean, std)
    m, s = torch.tensor(mean)[:, None, None], torch.tensor(std)[:, None, None]
    expected = (x - m) / s
    assert torch.allclose(layer(x), expected)
    flat = Normalize(0.5, 0.25)
    assert torch.allclose(flat(x.reshape(6, -1)), (x.reshape(6, -1) - 0.5) / 0.25)
    # buffers: they follow .to() and pickling
    assert {n for n, _ in layer.named_buffers()} == {"mean", "std"}
    assert torch.allclose(pickle.loads(pickle.dumps(layer))(x), layer(x))
    assert torch.allclose(copy.deepcopy(layer).double()(x.double()), expected.double())
    # the attack's eps is a pixel-space radius in front of the layer
    model = torch.nn.Sequential(layer, torch.nn.Flatten(), torch.nn.Linear(48, 3))
    y = model(x).argmax(1)
    x_adv = PGD(eps=0.05, n_steps=3).perturb(model, x, y)
    assert float((x_adv - x).abs().max()) <= 0.05 + 1e-6
    for bad in (dict(mean=0.5, std=0.0), dict(mean=[0.5, 0.5], std=[0.2, 0.2, 0.2]),
                dict(mean=float("nan"), std=1.0)):
        with pytest.raises(ValueError):
            Normalize(**bad)
    with pytest.raises(ValueError, match="channels"):
        layer(torch.rand(2, 1, 4, 4))


def test_default_module_takes_the_chosen_networks_parameters():
    from sklearn_robust import AdversarialClassifier
    from sklearn_robust.nn import MLP, SmallCNN, default_module

    net = default_module((64,), 10, hidden_layer_sizes=(16, 8))
    assert isinstance(net, MLP) and net.hidden_layer_sizes == (16, 8)
    with pytest.raises(ValueError, match=r"SmallCNN.*hidden_layer_sizes.*module="):
        default_module((1, 28, 28), 10, hidden_layer_sizes=(16,))
    assert isinstance(default_module((1, 28, 28), 10, dropout=0.1), SmallCNN)
    # what a classifier's module__* parameters reach with the default network
    rng = np.random.RandomState(0)
    X, y = rng.rand(40, 64).astype(np.float32), np.arange(40) % 2
    clf = AdversarialClassifier(eps=0.1, n_steps=1, max_epochs=1, random_state=0,
                                module__hidden_layer_sizes=(12,)).fit(X, y)
    assert clf.module_.hidden_layer_sizes == (12,)
