"""Infinite-width kernels and the NTK classifier, checked against independent oracles.

Oracles:

1. exact values computed once with neural-tangents (pasted below as literals);
2. the empirical NNGP / NTK (J J^T over parameters) of wide finite networks in
   the NTK parameterisation, whose error must shrink with width;
3. a slow brute-force loop implementation of the convolutional recursion;
4. structural properties: symmetry, PSD, diagonal fast paths, gradients.
"""

import math

import numpy as np
import pytest
import scipy.linalg
import torch
import torch.nn.functional as F
from numpy.testing import assert_allclose
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from torch.func import jacrev

from sklearn_robust.kernels import (
    ConvKernel,
    FCKernel,
    NTKClassifier,
    conv_kernel,
    fc_kernel,
)
from sklearn_robust.kernels._classifier import centered_one_hot, solve_kernel_ridge
from sklearn_robust.metrics import robust_accuracy_score
from sklearn_robust.utils._views import get_torch_view

W_STD, B_STD = 2 ** 0.5, 0.1


# ------------------------------------------------------------------ fixed inputs
def _fc_inputs():
    X = [[math.sin(1.0 + i + 0.7 * j) for j in range(5)] for i in range(3)]
    X2 = [[math.cos(0.5 * i - 0.3 * j) for j in range(5)] for i in range(2)]
    return torch.tensor(X, dtype=torch.float64), torch.tensor(X2, dtype=torch.float64)


def _images(n, channels=2):
    return torch.tensor(np.fromfunction(
        lambda i, c, h, w: np.sin(1.0 + i + 0.7 * c + 0.3 * h - 0.2 * w * h),
        (n, channels, 4, 4)))


def _conv_inputs():
    X2 = np.fromfunction(
        lambda i, c, h, w: np.cos(0.5 * i - 0.3 * c + 0.4 * w - 0.1 * h), (2, 2, 4, 4))
    return _images(3), torch.tensor(X2)


# ---------------------------------------------------- neural-tangents references
# Computed once with neural-tangents 0.6.5 on jax 0.4.30 (CPU, jax_enable_x64) in a
# separate virtual environment, never a dependency of this project:
#   FC:   stax.serial(*[stax.Dense(8, W_std=2**0.5, b_std=0.1), stax.Relu()] * depth,
#                     stax.Dense(1, W_std=2**0.5, b_std=0.1))   # parameterization='ntk'
#   Conv: stax.serial(*[stax.Conv(8, (3, 3), padding='SAME', W_std=2**0.5, b_std=0.1),
#                       stax.Relu()] * depth, stax.GlobalAvgPool() | stax.Flatten(),
#                     stax.Dense(1, W_std=2**0.5, b_std=0.1))
#   on the inputs of _fc_inputs / _conv_inputs (NCHW transposed to NT's NHWC), with
#   kernel_fn(X, X2, ("nngp", "ntk")) and kernel_fn(X, None, "ntk").
NT_FC = {
    (1, "XX", "nngp"): [
        [1.0295288212163372, 0.7361055166279973, 0.17889417510090652],
        [0.7361055166279973, 1.114679194269823, 0.6594322046030362],
        [0.17889417510090652, 0.6594322046030362, 0.9316702844192257]],
    (1, "XX", "ntk"): [
        [2.0490576424326745, 1.194379556248061, 0.055591434202323056],
        [1.194379556248061, 2.219358381831767, 1.0408754921415133],
        [0.055591434202323056, 1.0408754921415133, 1.8533405688384514]],
    (1, "XX2", "nngp"): [
        [0.9182195099151311, 0.9000447368954965],
        [0.438634431645518, 0.34218341611949527],
        [0.06513972364559509, 0.04021300562698449]],
    (1, "XX2", "ntk"): [
        [1.5964840063414631, 1.4595351761606628],
        [0.49402237593512166, 0.24707245101261238],
        [-0.12571991436583982, -0.15917547217625155]],
    (3, "XX", "nngp"): [
        [1.0495288212163376, 0.8561572039726864, 0.5614650562038951],
        [0.8561572039726864, 1.1346791942698238, 0.7927065298355231],
        [0.5614650562038951, 0.7927065298355231, 0.9516702844192262]],
    (3, "XX", "ntk"): [
        [4.138115284865351, 2.150482741731685, 0.8470645700759163],
        [2.150482741731685, 4.478716734069526, 1.9135933019652123],
        [0.8470645700759163, 1.9135933019652123, 3.7466811376769042]],
    (3, "XX2", "nngp"): [
        [0.9919917829295926, 1.0448097928419402],
        [0.762466174243148, 0.8110757903685044],
        [0.5752702559276951, 0.6495237699273769]],
    (3, "XX2", "ntk"): [
        [2.806216016755363, 2.62192579024994],
        [1.399145153574905, 1.3150411027067397],
        [0.7743310458911277, 0.8616235798780532]],
}
NT_CONV = {
    (1, "gap", "XX2", "nngp"): [
        [0.8185700085317905, 0.6189013661838592],
        [0.6108232353731008, 0.44757666507139704],
        [0.13126884136222253, 0.09754014428444016]],
    (1, "gap", "XX2", "ntk"): [
        [1.4199633567973728, 1.055600498659872],
        [1.017608284262295, 0.7231405302522639],
        [0.08853415481048518, 0.059318574635242545]],
    (1, "gap", "XX", "ntk"): [
        [1.4181599453271256, 1.0018178506536088, 0.08444811709051839],
        [1.001817850653609, 0.8721639146512533, 0.16223598043470774],
        [0.08444811709051844, 0.16223598043470766, 0.31957117085673387]],
    (1, "flatten", "XX2", "nngp"): [
        [1.06839846029422, 0.8076521678442139],
        [0.7555041517346711, 0.5031195289323227],
        [0.09907181122667788, 0.052033396110167794]],
    (1, "flatten", "XX2", "ntk"): [
        [2.0767959556757454, 1.5263468011302224],
        [1.3649191825388072, 0.8521517669027665],
        [0.031570995808241964, -0.016955347144711537]],
    (1, "flatten", "XX", "ntk"): [
        [2.1541453215595885, 1.3610300229778707, 0.00982523901495333],
        [1.3610300229778707, 1.428964239971989, 0.2215793116507382],
        [0.00982523901495333, 0.2215793116507382, 0.6752468048011693]],
    (2, "gap", "XX2", "nngp"): [
        [0.5569542899441424, 0.43165106551211363],
        [0.4293029601440866, 0.32617522232417834],
        [0.18910980912559466, 0.14969793109759322]],
    (2, "gap", "XX2", "ntk"): [
        [1.2006364652709878, 0.9006179196745627],
        [0.8648552977717252, 0.6228768856646962],
        [0.21506081908947183, 0.16576623023255505]],
    (2, "gap", "XX", "ntk"): [
        [1.2057720725502348, 0.8547389801768074, 0.21271339305756695],
        [0.8547389801768073, 0.7611399210529128, 0.2313639862266978],
        [0.21271339305756687, 0.2313639862266978, 0.3111186718145399]],
    (2, "flatten", "XX2", "nngp"): [
        [0.8187372871641501, 0.6245215261386954],
        [0.592672047964357, 0.4150851401646936],
        [0.19567659492419373, 0.14781739870779723]],
    (2, "flatten", "XX2", "ntk"): [
        [2.3085430420656, 1.6521655873788361],
        [1.4536971933236764, 0.909501070465002],
        [0.20882890036067786, 0.14144763504837868]],
    (2, "flatten", "XX", "ntk"): [
        [2.4528205532716814, 1.450183263404183, 0.19510507766266127],
        [1.450183263404183, 1.6271200722643824, 0.31064141067200907],
        [0.19510507766266127, 0.31064141067200907, 0.7689277327903493]],
}
# NT does not force unit correlations for identical inputs, so its arccos near c = 1
# carries ~1e-9 relative rounding on a few NTK diagonal entries.
NT_RTOL = 1e-7


@pytest.mark.parametrize("depth", [1, 3])
def test_fc_matches_neural_tangents(depth):
    X, X2 = _fc_inputs()
    kernel = FCKernel(depth)
    nngp, ntk = kernel(X, X2, get=("nngp", "ntk"))
    assert_allclose(nngp.numpy(), NT_FC[depth, "XX2", "nngp"], rtol=NT_RTOL)
    assert_allclose(ntk.numpy(), NT_FC[depth, "XX2", "ntk"], rtol=NT_RTOL)
    nngp, ntk = kernel(X, get=("nngp", "ntk"))
    assert_allclose(nngp.numpy(), NT_FC[depth, "XX", "nngp"], rtol=NT_RTOL)
    assert_allclose(ntk.numpy(), NT_FC[depth, "XX", "ntk"], rtol=NT_RTOL)
    # the functional form and get="nngp" alone agree
    assert_allclose(fc_kernel(X, X2, depth=depth, get="nngp").numpy(),
                    NT_FC[depth, "XX2", "nngp"], rtol=NT_RTOL)


@pytest.mark.parametrize("pooling", ["gap", "flatten"])
@pytest.mark.parametrize("depth", [1, 2])
def test_conv_matches_neural_tangents(depth, pooling):
    X, X2 = _conv_inputs()
    kernel = ConvKernel(depth, pooling=pooling)
    nngp, ntk = kernel(X, X2, get=("nngp", "ntk"))
    assert_allclose(nngp.numpy(), NT_CONV[depth, pooling, "XX2", "nngp"], rtol=NT_RTOL)
    assert_allclose(ntk.numpy(), NT_CONV[depth, pooling, "XX2", "ntk"], rtol=NT_RTOL)
    assert_allclose(kernel(X).numpy(), NT_CONV[depth, pooling, "XX", "ntk"],
                    rtol=NT_RTOL)
    # blocks of one row give the same kernel
    small = ConvKernel(depth, pooling=pooling, batch_size=1)
    assert_allclose(small(X, X2).numpy(), ntk.numpy(), rtol=1e-12)
    assert_allclose(small(X).numpy(), kernel(X).numpy(), rtol=1e-12)


# ------------------------------------------------------- closed form, depth 1
def test_fc_depth1_closed_form():
    """Depth 1 by hand: arc-cosine kernels of Cho & Saul on the first layer."""
    X, X2 = _fc_inputs()
    d = X.shape[1]
    w2, b2 = W_STD ** 2, B_STD ** 2
    S = w2 * (X @ X2.T).numpy() / d + b2
    q1 = w2 * (X * X).sum(1).numpy() / d + b2
    q2 = w2 * (X2 * X2).sum(1).numpy() / d + b2
    root = np.sqrt(np.outer(q1, q2))
    t = np.arccos(np.clip(S / root, -1, 1))
    relu = root * (np.sin(t) + (np.pi - t) * np.cos(t)) / (2 * np.pi)
    nngp = w2 * relu + b2
    ntk = nngp + w2 * S * (np.pi - t) / (2 * np.pi)
    got_nngp, got_ntk = fc_kernel(X, X2, depth=1, get=("nngp", "ntk"))
    assert_allclose(got_nngp.numpy(), nngp, rtol=1e-12)
    assert_allclose(got_ntk.numpy(), ntk, rtol=1e-12)


# ------------------------------------------------ empirical kernels of wide nets
def _params(shapes, seed):
    g = torch.Generator().manual_seed(seed)
    return {k: torch.randn(s, generator=g, dtype=torch.float64)
            for k, s in shapes.items()}


def _empirical(forward, params, X):
    """Empirical NNGP (readout features) and NTK (J J^T over all parameters)."""
    _, feat = forward(params, X)
    nngp = W_STD ** 2 * feat @ feat.T / feat.shape[1] + B_STD ** 2
    jac = jacrev(lambda p: forward(p, X)[0])(params)
    flat = [j.reshape(len(X), -1) for j in jac.values()]
    ntk = sum(j @ j.T for j in flat)
    return nngp, ntk


def _readout(p, feat):
    """Dense(1) readout in the NTK parameterisation."""
    out = W_STD / math.sqrt(feat.shape[1]) * feat @ p["Wout"].T + B_STD * p["bout"]
    return out[:, 0], feat


def _mlp(d, width, depth):
    shapes, n_in = {}, d
    for layer in range(depth):
        shapes[f"W{layer}"], shapes[f"b{layer}"] = (width, n_in), (width,)
        n_in = width
    shapes["Wout"], shapes["bout"] = (1, n_in), (1,)

    def forward(p, x):
        a = x
        for layer in range(depth):
            W = p[f"W{layer}"]
            a = torch.relu(W_STD / math.sqrt(W.shape[1]) * a @ W.T
                           + B_STD * p[f"b{layer}"])
        return _readout(p, a)
    return shapes, forward


def _cnn(channels_in, channels, depth, pooling, n_pixels):
    shapes, c = {}, channels_in
    for layer in range(depth):
        shapes[f"W{layer}"], shapes[f"b{layer}"] = (channels, c, 3, 3), (channels,)
        c = channels
    n_feat = channels if pooling == "gap" else channels * n_pixels
    shapes["Wout"], shapes["bout"] = (1, n_feat), (1,)

    def forward(p, x):
        a = x
        for layer in range(depth):
            W = p[f"W{layer}"]
            pre = F.conv2d(a, W, padding=1) * (W_STD / math.sqrt(W.shape[1] * 9))
            a = torch.relu(pre + B_STD * p[f"b{layer}"][None, :, None, None])
        feat = a.mean((-2, -1)) if pooling == "gap" else a.reshape(len(a), -1)
        return _readout(p, feat)
    return shapes, forward


def _rms_errors(make, X, nngp, ntk, widths, n_seeds):
    """RMS over seeds of the relative Frobenius errors, one row per width."""
    rows = []
    for width in widths:
        shapes, forward = make(width)
        errs = []
        for seed in range(n_seeds):
            en, et = _empirical(forward, _params(shapes, seed), X)
            errs.append([float((en - nngp).norm() / nngp.norm()),
                         float((et - ntk).norm() / ntk.norm())])
        rows.append(np.sqrt(np.mean(np.square(errs), axis=0)))
    return np.array(rows)


@pytest.mark.parametrize("depth, widths, final_tol", [
    (1, (256, 1024, 4096, 16384), 0.05),
    (3, (64, 256, 1024), 0.15),
])
def test_fc_matches_wide_network(depth, widths, final_tol):
    X = torch.tensor([[math.sin(1.0 + i + 0.7 * j) for j in range(5)]
                      for i in range(4)], dtype=torch.float64)
    nngp, ntk = fc_kernel(X, depth=depth, get=("nngp", "ntk"))
    errs = _rms_errors(lambda w: _mlp(5, w, depth), X, nngp, ntk, widths, n_seeds=4)
    # Monte Carlo error ~ 1/sqrt(width): 16x (64x) wider -> about 4x (8x) smaller
    assert np.all(errs[-1] < errs[0] / 3), errs
    assert np.all(errs[-1] < final_tol), errs


@pytest.mark.parametrize("pooling, depth, channels, final_tol", [
    ("gap", 2, (16, 64, 256), 0.2),
    ("flatten", 1, (16, 64, 1024), 0.1),
])
def test_conv_matches_wide_network(pooling, depth, channels, final_tol):
    X = _images(4, channels=1)
    nngp, ntk = conv_kernel(X, depth=depth, pooling=pooling, get=("nngp", "ntk"))
    errs = _rms_errors(lambda c: _cnn(1, c, depth, pooling, 16), X, nngp, ntk,
                       channels, n_seeds=4)
    assert np.all(errs[-1] < errs[0] / 2.5), errs
    assert np.all(errs[-1] < final_tol), errs


# ------------------------------------------------ brute-force conv recursion
def _brute_cntk(x1, x2, depth, pooling):
    """The CNTK by explicit loops over pixel positions (pure Python, tiny images)."""
    C, H, W = x1.shape
    pos = [(h, w) for h in range(H) for w in range(W)]
    w2, b2 = W_STD ** 2, B_STD ** 2

    def inner(a, b):
        return {(p, q): sum(a[c][p] * b[c][q] for c in range(C)) / C
                for p in pos for q in pos}

    def conv(K):
        out = {}
        for (h, w) in pos:
            for (u, v) in pos:
                total = 0.0
                for da in (-1, 0, 1):
                    for db in (-1, 0, 1):
                        p, q = (h + da, w + db), (u + da, v + db)
                        total += K.get((p, q), 0.0)   # zero padding
                out[(h, w), (u, v)] = w2 * total / 9 + b2
        return out

    K12, K11, K22 = inner(x1, x2), inner(x1, x1), inner(x2, x2)
    T12 = {k: 0.0 for k in K12}
    for _ in range(depth):
        K12, K11, K22 = conv(K12), conv(K11), conv(K22)
        T12 = {k: v - b2 for k, v in conv(T12).items()}
        T12 = {k: T12[k] + K12[k] for k in K12}
        new12, newT = {}, {}
        for (p, q), s in K12.items():
            root = math.sqrt(K11[p, p] * K22[q, q])
            t = math.acos(max(-1.0, min(1.0, s / root)))
            j1 = math.sin(t) + (math.pi - t) * math.cos(t)
            new12[p, q] = root * j1 / (2 * math.pi)
            newT[p, q] = T12[p, q] * (math.pi - t) / (2 * math.pi)
        K11 = {(p, q): v / 2 if p == q else v for (p, q), v in K11.items()}
        K22 = {(p, q): v / 2 if p == q else v for (p, q), v in K22.items()}
        K12, T12 = new12, newT
    keys = list(K12) if pooling == "gap" else [(p, p) for p in pos]
    nngp = w2 * sum(K12[k] for k in keys) / len(keys) + b2
    ntk = w2 * sum(T12[k] for k in keys) / len(keys) + nngp
    return nngp, ntk


@pytest.mark.parametrize("pooling", ["gap", "flatten"])
def test_conv_matches_brute_force(pooling):
    rng = np.random.RandomState(0)
    X = rng.randn(2, 2, 3, 4)
    Y = rng.randn(2, 2, 3, 4)
    nngp, ntk = conv_kernel(torch.tensor(X), torch.tensor(Y), depth=2, pooling=pooling,
                            get=("nngp", "ntk"))
    for i in range(2):
        for j in range(2):
            ref = _brute_cntk(X[i], Y[j], 2, pooling)
            assert_allclose([nngp[i, j].item(), ntk[i, j].item()], ref, rtol=1e-10)


# ------------------------------------------------------------ structure
KERNELS = [FCKernel(1), FCKernel(3, b_std=0.0), ConvKernel(2),
           ConvKernel(1, pooling="flatten")]


@pytest.mark.parametrize("kernel", KERNELS, ids=repr)
@pytest.mark.parametrize("get", ["ntk", "nngp"])
def test_symmetric_psd_and_diagonal(kernel, get):
    rng = np.random.RandomState(1)
    X = torch.tensor(rng.rand(12, 1, 5, 5))
    K = kernel(X, get=get)
    assert_allclose(K.numpy(), K.T.numpy(), rtol=1e-12, atol=1e-14)
    eig = np.linalg.eigvalsh(K.numpy())
    assert eig.min() >= -1e-6 * eig.max()
    assert_allclose(kernel(X, diag=True, get=get).numpy(), K.diagonal().numpy(),
                    rtol=1e-10)
    # an explicit second argument gives the same matrix
    assert_allclose(kernel(X, X.clone(), get=get).numpy(), K.numpy(), rtol=1e-6)


@pytest.mark.parametrize("kernel", KERNELS, ids=repr)
def test_gradcheck_both_arguments(kernel):
    g = torch.Generator().manual_seed(0)
    X = torch.randn(3, 1, 3, 3, dtype=torch.float64, generator=g, requires_grad=True)
    Y = torch.randn(2, 1, 3, 3, dtype=torch.float64, generator=g, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, b: kernel(a, b), (X, Y))
    assert torch.autograd.gradcheck(lambda a: kernel(a), (X,))
    assert torch.autograd.gradcheck(lambda a: kernel(a, diag=True), (X,))
    assert torch.autograd.gradcheck(lambda a, b: kernel(a, b, get="nngp"), (X, Y))


# ------------------------------------- the fused ReLU step against plain autograd
def _reference_arccos_sqrt(c, clamp=1e-7):
    """The autograd implementation the fused backward replaced: values at ``c``
    clipped to [-1, 1], gradients of ``c`` clamped to [-1 + 1e-7, 1 - 1e-7]."""
    exact = c.clamp(-1.0, 1.0)
    if not (torch.is_grad_enabled() and c.requires_grad):
        return torch.arccos(exact), torch.sqrt((1.0 - exact) * (1.0 + exact))
    safe = c.clamp(-1.0 + clamp, 1.0 - clamp)
    theta, sin = torch.arccos(safe), torch.sqrt((1.0 - safe) * (1.0 + safe))
    with torch.no_grad():
        theta_fix = torch.arccos(exact) - theta
        sin_fix = torch.sqrt((1.0 - exact) * (1.0 + exact)) - sin
    return theta + theta_fix, sin + sin_fix


def _reference_relu_step(nngp, ntk, std1, std2, same=None, *, unit_diagonal=False):
    root = std1 * std2
    c = nngp / root
    if same is not None:
        c = torch.where(same, torch.ones_like(c), c)
    if unit_diagonal:
        c.diagonal().fill_(1.0)
    theta, sin = _reference_arccos_sqrt(c)
    u = theta.mul(-1.0 / (2 * math.pi)).add_(0.5)
    new_nngp = torch.addcmul(sin.mul(root).mul_(1.0 / (2 * math.pi)), u, nngp)
    return new_nngp, None if ntk is None else ntk * u


def _relu_inputs(dtype, n1=6, n2=5, seed=0):
    """Pre-activation kernels with generic correlations, plus entries at exactly
    1 and -1, just inside the clamp and (by rounding) just outside [-1, 1]."""
    g = torch.Generator().manual_seed(seed)
    std1 = torch.rand(n1, 1, generator=g, dtype=torch.float64) + 0.5
    std2 = torch.rand(1, n2, generator=g, dtype=torch.float64) + 0.5
    c = torch.rand(n1, n2, generator=g, dtype=torch.float64) * 1.8 - 0.9
    c[0, 0], c[1, 1], c[2, 2] = 1.0, -1.0, 1.0 + 1e-12
    # near the ends (float32 cannot resolve 1e-5 from -1 without an error of 1e-2 in
    # sin t: the inputs' own rounding, not the step's)
    c[3, 3], c[4, 4] = 1.0 - 1e-9, -1.0 + (1e-5 if dtype == torch.float64 else 1e-3)
    nngp = c * std1 * std2
    ntk = torch.rand(n1, n2, generator=g, dtype=torch.float64) + 0.3
    return [t.to(dtype) for t in (nngp, ntk, std1, std2)]


def _relu_grads(step, inputs, cotangents, **kwargs):
    leaves = [t.clone().requires_grad_(True) for t in inputs]
    nngp, ntk = step(*leaves[:2], *leaves[2:], **kwargs)
    outs = [nngp] if ntk is None else [nngp, ntk]
    loss = sum((o * g).sum() for o, g in zip(outs, cotangents))
    return [o.detach() for o in outs], torch.autograd.grad(loss, leaves,
                                                           allow_unused=True)


@pytest.mark.parametrize("dtype, rtol", [(torch.float64, 1e-10), (torch.float32, 1e-4)])
@pytest.mark.parametrize("variant", ["plain", "same", "unit_diagonal", "nngp_only"])
def test_fused_relu_step_matches_autograd(dtype, rtol, variant):
    from sklearn_robust.kernels._ntk import relu_step

    nngp, ntk, std1, std2 = _relu_inputs(dtype)
    kwargs = {}
    if variant == "same":
        same = torch.zeros(nngp.shape, dtype=torch.bool)
        same[5, 0] = same[0, 1] = True
        kwargs["same"] = same
    if variant == "unit_diagonal":      # a square kernel of an input with itself
        nngp, ntk, std1 = nngp[:5], ntk[:5], std1[:5]
        kwargs["unit_diagonal"] = True
    g = torch.Generator().manual_seed(1)
    cot = [torch.randn(nngp.shape, generator=g, dtype=torch.float64).to(dtype)
           for _ in range(2)]
    ref, new = _reference_relu_step, relu_step
    if variant == "nngp_only":          # ntk=None: the NNGP alone
        def ref(a, b, c, d, **kw):
            return _reference_relu_step(a, None, c, d, **kw)

        def new(a, b, c, d, **kw):
            return relu_step(a, None, c, d, **kw)
    inputs = [nngp, ntk, std1, std2]
    # float32: against the autograd step in float64 on the same (float32) values;
    # in float32 itself the autograd step loses digits near |c| = 1, where the
    # derivatives of arccos and sin t cancel (the closed form has no cancellation)
    ref_inputs = [t.double() for t in inputs]
    ref_kwargs = dict(kwargs)
    out_ref, grad_ref = _relu_grads(ref, ref_inputs, [t.double() for t in cot],
                                    **ref_kwargs)
    out_new, grad_new = _relu_grads(new, inputs, cot, **kwargs)
    # values: those of the autograd step without a graph, bit for bit (in float32
    # they carry its own rounding near |c| = 1, see FCKernel's Notes)
    with torch.no_grad():
        plain = ref(*inputs, **kwargs)
    for a, b in zip(out_new, plain):
        assert torch.equal(a, b)
    for a, b in zip(grad_new, grad_ref):
        if b is None:
            assert a is None
            continue
        scale = float(b.abs().max())
        assert_allclose(a.double().numpy(), b.numpy(), rtol=rtol, atol=rtol * scale)
    assert all(torch.isfinite(t).all() for t in grad_new if t is not None)


def test_fused_relu_step_gradcheck():
    from sklearn_robust.kernels._ntk import relu_step

    nngp, ntk, std1, std2 = _relu_inputs(torch.float64, seed=3)
    c = nngp / (std1 * std2)
    generic = (c.abs() < 0.95)          # finite differences need a smooth point
    nngp = torch.where(generic, nngp, 0.5 * std1 * std2)
    leaves = [t.clone().requires_grad_(True) for t in (nngp, ntk, std1, std2)]
    assert torch.autograd.gradcheck(lambda *a: relu_step(*a), leaves)
    assert torch.autograd.gradcheck(lambda a, s1, s2: relu_step(a, None, s1, s2)[0],
                                    [leaves[0], leaves[2], leaves[3]])


def test_gram_backward():
    from sklearn_robust.kernels._ntk import _gram

    g = torch.Generator().manual_seed(0)
    X = torch.randn(5, 3, dtype=torch.float64, generator=g, requires_grad=True)
    assert torch.autograd.gradcheck(_gram, (X,))
    G = torch.randn(5, 5, dtype=torch.float64, generator=g)   # not symmetric
    (mine,) = torch.autograd.grad((_gram(X) * G).sum(), X)
    (ref,) = torch.autograd.grad((X @ X.T * G).sum(), X)
    assert_allclose(mine.numpy(), ref.numpy(), rtol=1e-12)
    jac = jacrev(_gram)(X.detach())
    assert_allclose(jac.numpy(), jacrev(lambda a: a @ a.T)(X.detach()).numpy(),
                    rtol=1e-12)


@pytest.mark.parametrize("kernel", KERNELS, ids=repr)
def test_kernel_gradients_match_plain_autograd(kernel, monkeypatch):
    # whole kernels (FC and convolutional, cross and symmetric, NTK and NNGP) with
    # the fused step and the one-product Gram backward against the same kernels
    # with plain autograd, also under torch.func.jacrev
    from sklearn_robust.kernels import _conv, _ntk

    g = torch.Generator().manual_seed(0)
    X = torch.rand(4, 1, 4, 4, dtype=torch.float64, generator=g)
    Y = torch.rand(3, 1, 4, 4, dtype=torch.float64, generator=g)
    W = torch.randn(4, 4, dtype=torch.float64, generator=g)

    def grads():
        out = []
        for get in ("ntk", "nngp"):
            x = X.clone().requires_grad_(True)
            y = Y.clone().requires_grad_(True)
            loss = (kernel(x, y, get=get) * W[:, :3]).sum() + (
                kernel(x, get=get) * W).sum() + kernel(torch.cat([x, x[:1]]),
                                                       get=get).sum()
            out += list(torch.autograd.grad(loss, (x, y)))
        out.append(jacrev(lambda a: kernel(a, Y))(X.clone()))
        out.append(jacrev(lambda a: kernel(a))(X.clone()))
        return out

    fused = grads()
    monkeypatch.setattr(_ntk, "relu_step", _reference_relu_step)
    monkeypatch.setattr(_conv, "relu_step", _reference_relu_step)
    monkeypatch.setattr(_ntk, "_gram", lambda a: a @ a.T)
    reference = grads()
    for a, b in zip(fused, reference):
        assert_allclose(a.numpy(), b.numpy(), rtol=1e-9,
                        atol=1e-12 * float(b.abs().max()))


@pytest.mark.parametrize("kernel", KERNELS, ids=repr)
def test_gradient_finite_at_identical_inputs(kernel):
    g = torch.Generator().manual_seed(0)
    X = torch.rand(3, 1, 4, 4, dtype=torch.float64, generator=g)
    for make in (lambda a: kernel(a), lambda a: kernel(a, X),
                 lambda a: kernel(a, 2 * X)):      # parallel inputs: correlation 1
        x = X.clone().requires_grad_(True)
        (grad,) = torch.autograd.grad(make(x).sum(), x)
        assert torch.isfinite(grad).all()
    # torch.func transforms too
    jac = jacrev(lambda a: kernel(a, X))(X.clone())
    assert torch.isfinite(jac).all()


def test_conv_blocks_and_checkpoint_keep_gradients():
    g = torch.Generator().manual_seed(0)
    X = torch.randn(5, 1, 4, 4, dtype=torch.float64, generator=g)
    Y = torch.randn(3, 1, 4, 4, dtype=torch.float64, generator=g)
    grads = []
    for batch_size in (None, 2):
        x = X.clone().requires_grad_(True)
        K = ConvKernel(1, batch_size=batch_size)(x, Y) + ConvKernel(
            1, batch_size=batch_size)(x).sum()
        (grad,) = torch.autograd.grad(K.sum(), x)
        grads.append(grad)
    assert_allclose(grads[0].numpy(), grads[1].numpy(), rtol=1e-10)


def test_dtype_device_and_input_forms():
    rng = np.random.RandomState(0)
    X = rng.rand(4, 16)
    K64 = fc_kernel(X)                                   # numpy in, torch out
    assert K64.dtype == torch.float64
    K32 = fc_kernel(torch.tensor(X, dtype=torch.float32))
    assert K32.dtype == torch.float32
    assert_allclose(K32.numpy(), K64.numpy(), rtol=1e-4)
    # images are flattened by the FC kernel
    assert_allclose(fc_kernel(X.reshape(4, 1, 4, 4)).numpy(), K64.numpy())
    # the conv kernel takes images, flat square images, or flat + input_shape
    Kc = conv_kernel(X.reshape(4, 1, 4, 4))
    assert_allclose(conv_kernel(X).numpy(), Kc.numpy())
    assert_allclose(conv_kernel(X.reshape(4, 4, 4)).numpy(), Kc.numpy())
    assert_allclose(conv_kernel(X, input_shape=(1, 4, 4)).numpy(), Kc.numpy())
    assert conv_kernel(X, input_shape=(2, 2, 4)).shape == (4, 4)
    # zero inputs with b_std=0 stay finite (zero variance)
    Z = torch.zeros(2, 16, dtype=torch.float64)
    assert torch.isfinite(fc_kernel(Z, b_std=0.0)).all()
    assert torch.isfinite(conv_kernel(Z, b_std=0.0)).all()


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no cuda device")
def test_cuda_matches_cpu():
    X, X2 = _conv_inputs()
    for kernel in KERNELS:
        K = kernel(X.cuda(), X2.cuda())
        assert K.device.type == "cuda"
        assert_allclose(K.cpu().numpy(), kernel(X, X2).numpy(), rtol=1e-10)


@pytest.mark.parametrize("make, match", [
    (lambda: FCKernel(-1), "depth must be an integer >= 0"),
    (lambda: FCKernel(1.5), "depth must be an integer >= 0"),
    (lambda: FCKernel(W_std=0.0), "W_std must be a finite number > 0"),
    (lambda: FCKernel(b_std=-1.0), "b_std must be a finite number >= 0"),
    (lambda: ConvKernel(pooling="max"), "pooling must be one of"),
    (lambda: ConvKernel(input_shape=(0, 3)), "input_shape must be"),
    (lambda: ConvKernel(batch_size=0), "batch_size must be None or an integer"),
    (lambda: fc_kernel(np.ones((2, 3)), get="foo"), "get must be 'ntk', 'nngp'"),
    (lambda: fc_kernel(np.ones((2, 3)), np.ones((2, 4))), "same number of features"),
    (lambda: fc_kernel(np.ones((2, 3)), np.ones((2, 3)), diag=True), "X2 must be None"),
    (lambda: fc_kernel(np.ones(3)), "at least 2"),
    (lambda: conv_kernel(np.ones((2, 10))), "not a square image"),
    (lambda: conv_kernel(np.ones((2, 16)), input_shape=(1, 3, 3)), "does not match"),
    (lambda: conv_kernel(np.ones((2, 1, 4, 4)), np.ones((2, 1, 3, 3))), "same shape"),
])
def test_kernel_errors(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_kernel_repr_and_equality():
    assert repr(FCKernel(2)) == "FCKernel(depth=2, W_std=1.4142135623730951, b_std=0.1)"
    assert FCKernel(2) == FCKernel(2) and FCKernel(2) != FCKernel(3)
    assert ConvKernel(input_shape=(8, 8)).input_shape == (1, 8, 8)


# ------------------------------------------------------------ the classifier
def test_solve_kernel_ridge_matches_scipy():
    rng = np.random.RandomState(0)
    X = rng.rand(30, 6)
    K = fc_kernel(X, depth=2)
    Y = centered_one_hot(rng.randint(0, 3, 30), 3)
    assert_allclose(Y.sum(1).numpy(), 0.0, atol=1e-15)
    for ridge in (0.0, 1e-6, 1e-2):
        alpha = solve_kernel_ridge(K, Y, ridge=ridge)
        A = K.numpy() + ridge * np.trace(K.numpy()) / 30 * np.eye(30)
        ref = scipy.linalg.solve(A, Y.numpy(), assume_a="pos")
        assert_allclose(alpha.numpy(), ref, rtol=1e-6, atol=1e-8)
    # a singular matrix (duplicated rows, no ridge) falls back with a warning
    Kd = fc_kernel(np.vstack([X, X[:3]]))
    with pytest.warns(RuntimeWarning, match="pseudo-inverse"):
        alpha = solve_kernel_ridge(Kd, torch.ones(33, dtype=torch.float64), ridge=0.0)
    assert torch.isfinite(alpha).all()


def _solve_by_cholesky_autograd(K, Y, ridge):
    """The reference: autograd through torch's Cholesky factorisation and solve."""
    n = K.shape[0]
    A = K + ridge * torch.diagonal(K).sum() / n * torch.eye(n, dtype=K.dtype)
    return torch.cholesky_solve(Y, torch.linalg.cholesky(A))


@pytest.mark.parametrize("ridge", [0.0, 1e-6, 1e-2])
def test_solve_kernel_ridge_gradient_matches_cholesky_autograd(ridge):
    # the solve attaches its first derivative in O(n^2 k) instead of autograd's
    # O(n^3) through the factorisation: same values and the same gradients, in the
    # kernel's inputs, in the targets and in the matrix itself (symmetric)
    g = torch.Generator().manual_seed(0)
    X = torch.rand(25, 6, dtype=torch.float64, generator=g)
    Xt = torch.rand(7, 6, dtype=torch.float64, generator=g)
    Y = torch.randn(25, 3, dtype=torch.float64, generator=g)
    kernel = FCKernel(2)
    grads, values = [], []
    for solve in (_solve_by_cholesky_autograd, solve_kernel_ridge):
        x, y = X.clone().requires_grad_(True), Y.clone().requires_grad_(True)
        K = kernel(x)
        K.retain_grad()
        alpha = solve(K, y, ridge=ridge) if solve is solve_kernel_ridge else solve(
            K, y, ridge)
        loss = (kernel(Xt, x) @ alpha).pow(2).sum()
        loss.backward()
        grads.append((x.grad, y.grad, K.grad))
        values.append(alpha.detach())
    assert torch.equal(values[0], values[1])
    for mine, ref in zip(grads[1], grads[0]):
        assert_allclose(mine.numpy(), ref.numpy(), rtol=1e-9, atol=1e-12)
    assert_allclose(grads[1][2].numpy(), grads[1][2].numpy().T, atol=1e-12)
    assert torch.autograd.gradcheck(
        lambda a, b: solve_kernel_ridge(kernel(a), b, ridge=max(ridge, 1e-3)),
        (X[:6].clone().requires_grad_(True), Y[:6].clone().requires_grad_(True)))
    # and under torch.func
    jac = jacrev(lambda a: solve_kernel_ridge(kernel(a), Y, ridge=ridge))(X.clone())
    ref = jacrev(lambda a: _solve_by_cholesky_autograd(kernel(a), Y, ridge))(X.clone())
    assert_allclose(jac.numpy(), ref.numpy(), rtol=1e-8, atol=1e-10)


def test_classifier_alpha_and_targets(small_digits):
    X, _, y, _ = small_digits
    clf = NTKClassifier(depth=2, ridge=1e-4).fit(X[:100], y[:100])
    K = fc_kernel(X[:100].astype(np.float64), depth=2).numpy()
    n = len(K)
    Y = np.eye(10)[np.searchsorted(clf.classes_, y[:100])] - 0.1
    reg = 1e-4 * np.trace(K) / n
    assert clf.regularization_ == pytest.approx(reg)
    ref = scipy.linalg.solve(K + reg * np.eye(n), Y, assume_a="pos")
    assert_allclose(clf.alpha_, ref, rtol=1e-6, atol=1e-8)
    assert clf.X_fit_.shape == (100, 64) and clf.n_features_in_ == 64


def test_classifier_digits_accuracy(digits_split):
    X_train, X_test, y_train, y_test = digits_split
    clf = NTKClassifier().fit(X_train, y_train)
    assert clf.score(X_test, y_test) >= 0.97


def test_conv_classifier_on_small_images(small_digits):
    X, X_test, y, y_test = small_digits
    images = X[:120].reshape(-1, 1, 8, 8)
    clf = NTKClassifier(kernel="conv", pooling="flatten").fit(images, y[:120])
    assert clf.input_shape_ == (1, 8, 8)
    assert clf.score(X_test[:60].reshape(-1, 1, 8, 8), y_test[:60]) >= 0.85
    # GAP CNTK on flat square images
    clf = NTKClassifier(kernel="conv", depth=1).fit(X[:40], y[:40])
    assert clf.decision_function(X_test[:5]).shape == (5, 10)


def test_torch_view_matches_decision_function(small_digits):
    X, X_test, y, _ = small_digits
    clf = NTKClassifier(depth=2).fit(X, y)
    view = get_torch_view(clf)
    assert np.array_equal(view.classes, clf.classes_)
    x = torch.tensor(X_test, dtype=torch.float32, requires_grad=True)
    out = view(x)
    assert_allclose(out.detach().numpy(), clf.decision_function(X_test), atol=1e-5)
    (grad,) = torch.autograd.grad(out[:, 0].sum(), x)        # differentiable in x
    assert grad.dtype == torch.float32 and torch.isfinite(grad).all()
    assert grad.abs().sum() > 0


def test_classifier_is_attacked_white_box(small_digits):
    X, X_test, y, y_test = small_digits
    clf = NTKClassifier().fit(X, y)
    clean = clf.score(X_test, y_test)
    robust = robust_accuracy_score(clf, X_test, y_test, eps=0.1, attack="pgd")
    assert robust < clean - 0.1


def test_binary_and_string_labels(small_digits):
    X, X_test, y, y_test = small_digits
    keep, keep_test = y < 2, y_test < 2
    labels = np.array(["zero", "one"])
    clf = NTKClassifier(get="nngp").fit(X[keep], labels[y[keep]])
    scores = clf.decision_function(X_test[keep_test])
    assert scores.ndim == 1
    pred = clf.predict(X_test[keep_test])
    assert np.array_equal(pred, clf.classes_[(scores > 0).astype(int)])
    assert np.mean(pred == labels[y_test[keep_test]]) > 0.95
    view = get_torch_view(clf)
    with torch.no_grad():
        out = view(torch.tensor(X_test[keep_test])).numpy()
    assert_allclose(out[:, 1] - out[:, 0], scores, atol=1e-8)


@pytest.mark.parametrize("params, match", [
    (dict(kernel="rbf"), "kernel must be one of"),
    (dict(get="both"), "get must be 'ntk' or 'nngp'"),
    (dict(ridge=-1.0), "ridge must be a finite number >= 0"),
    (dict(depth=-2), "depth must be an integer >= 0"),
    (dict(dtype="float16"), "dtype must be 'float64' or 'float32'"),
    (dict(kernel="conv", pooling="max"), "pooling must be one of"),
])
def test_classifier_parameter_errors(small_digits, params, match):
    X, _, y, _ = small_digits
    with pytest.raises(ValueError, match=match):
        NTKClassifier(**params).fit(X[:20], y[:20])


def test_classifier_input_errors(small_digits):
    X, X_test, y, _ = small_digits
    with pytest.raises(ValueError, match="only one class"):
        NTKClassifier().fit(X[:10], np.zeros(10))
    Xn = X[:20].copy()
    Xn[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        NTKClassifier().fit(Xn, y[:20])
    with pytest.raises(NotFittedError):
        NTKClassifier().predict(X_test)
    clf = NTKClassifier().fit(X[:50], y[:50])
    with pytest.raises(ValueError, match="features"):
        clf.predict(X_test[:, :10])
    with pytest.raises(ValueError, match="not a square image"):
        NTKClassifier(kernel="conv").fit(X[:20, :60], y[:20])
    # clone keeps the parameters and drops the fitted state
    assert not hasattr(clone(clf), "alpha_")


def test_ntk_classifier_keeps_its_own_copy_of_the_training_data():
    from sklearn_robust.kernels import NTKClassifier

    rng = np.random.RandomState(0)
    X = rng.uniform(size=(30, 8))                     # float64: no conversion copy
    y = np.arange(30) % 3
    clf = NTKClassifier().fit(X, y)
    before = clf.decision_function(X)
    assert not np.shares_memory(clf.X_fit_, X)
    X_test = X.copy()
    X[:] = 0.5                                        # the caller reuses its buffer
    after = clf.decision_function(X_test)
    np.testing.assert_array_equal(after, before)
