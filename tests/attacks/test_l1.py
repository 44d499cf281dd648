"""Tests of the L1 threat model: the ball-and-box projection and the L1 attacks."""

import numpy as np
import pytest
import torch
from scipy.optimize import minimize

from sklearn_robust.attacks import (
    FGSM,
    PGD,
    LangevinSampler,
    LocalLinearityAttack,
    LogitScaledPGD,
)
from sklearn_robust.attacks._projections import (
    project_feasible,
    project_l1_box,
    random_init,
    sparse_l1_step,
)
from sklearn_robust.utils._torch import flat_norm


# ------------------------------------------------------------ the projection
def _qp_projection(v, eps, lower, upper):
    """``argmin ||d - v||_2`` s.t. ``||d||_1 <= eps``, ``lower <= d <= upper``, by
    SLSQP on the smooth split ``d = p - q`` with ``p, q >= 0`` (at the optimum
    ``p_i q_i = 0``, so ``sum(p + q) = ||d||_1``)."""
    m = len(v)

    def objective(z):
        r = z[:m] - z[m:] - v
        return r @ r

    def gradient(z):
        r = 2 * (z[:m] - z[m:] - v)
        return np.r_[r, -r]

    bounds = [(0, max(u, 0)) for u in upper] + [(0, max(-lo, 0)) for lo in lower]
    start = np.zeros(2 * m)
    res = minimize(objective, start, jac=gradient, method="SLSQP", bounds=bounds,
                   constraints=[{"type": "ineq", "fun": lambda z: eps - z.sum(),
                                 "jac": lambda z: -np.ones(2 * m)}],
                   options={"ftol": 1e-12, "maxiter": 1000})
    assert res.success, res.message
    return res.x[:m] - res.x[m:]


def _instances(seed, n=40, d=7):
    """Random centres in [0, 1] (some on the edges), proposals of several scales,
    radii from tiny to larger than the box allows: the ball, the box or both bind."""
    rng = np.random.RandomState(seed)
    x = rng.rand(n, d)
    x[rng.rand(n, d) < 0.15] = 0.0
    x[rng.rand(n, d) < 0.15] = 1.0
    v = rng.randn(n, d) * rng.choice([0.05, 0.5, 2.0], size=(n, 1))
    v[rng.rand(n, d) < 0.1] = 0.0
    eps = rng.choice([0.01, 0.3, 1.0, 3.0, 10.0], size=n)
    return x, v, eps


@pytest.mark.parametrize("seed", [0, 1])
def test_l1_box_projection_matches_a_qp_solver(seed):
    x, v, eps = _instances(seed)
    binds = {"ball": 0, "box": 0}
    for xi, vi, ei in zip(x, v, eps):
        lower, upper = -xi, 1 - xi
        got = project_l1_box(torch.tensor(vi[None]), float(ei),
                             torch.tensor(lower[None]), torch.tensor(upper[None]))
        got = got[0].numpy()
        want = _qp_projection(vi, ei, lower, upper)
        assert np.allclose(got, want, atol=1e-5), (xi, vi, ei)
        assert np.abs(got).sum() <= ei * (1 + 1e-12)
        assert np.all(got >= lower - 1e-15) and np.all(got <= upper + 1e-15)
        binds["ball"] += np.abs(got).sum() > ei - 1e-9
        binds["box"] += bool(np.any(np.isclose(got, lower) & (lower < 0))
                             or np.any(np.isclose(got, upper) & (upper > 0)))
    # the instances exercise both constraints
    assert binds["ball"] >= 10 and binds["box"] >= 10


def test_l1_box_projection_batched_float32_and_open_box():
    x, v, eps = _instances(2, n=30)
    eps = 0.7
    lower, upper = torch.tensor(-x), torch.tensor(1 - x)
    batch = project_l1_box(torch.tensor(v), eps, lower, upper)
    rows = torch.cat([project_l1_box(torch.tensor(v[i:i + 1]), eps, lower[i:i + 1],
                                     upper[i:i + 1]) for i in range(len(v))])
    assert torch.allclose(batch, rows, atol=1e-12)
    single = project_l1_box(torch.tensor(v, dtype=torch.float32), eps,
                            lower.float(), upper.float())
    assert torch.allclose(single.double(), batch, atol=1e-5)
    assert float(flat_norm(single, "l1").max()) <= eps * (1 + 1e-6)
    # without a box: soft thresholding of the rows outside the ball
    free = project_l1_box(torch.tensor(v), eps)
    for vi, di in zip(v, free.numpy()):
        want = _qp_projection(vi, eps, np.full(len(vi), -np.inf),
                              np.full(len(vi), np.inf))
        assert np.allclose(di, want, atol=1e-5)
    # the open box is the infinite box
    inf = torch.full_like(lower, float("inf"))
    assert torch.allclose(free, project_l1_box(torch.tensor(v), eps, -inf, inf))


def test_l1_box_projection_degenerate_cases():
    v = torch.tensor([[0.0, 0.0, 0.0], [0.3, -0.2, 0.1], [5.0, 5.0, 5.0]])
    # eps = 0: the centre
    assert torch.equal(project_l1_box(v, 0.0), torch.zeros_like(v))
    # zero rows and rows inside the ball are unchanged (no box)
    out = project_l1_box(v, 1.0)
    assert torch.equal(out[:2], v[:2])
    # ties: equal coordinates share the radius
    assert torch.allclose(out[2], torch.full((3,), 1 / 3))
    # a box with no room at all: nothing moves
    zero = torch.zeros_like(v)
    assert torch.equal(project_l1_box(v, 1.0, zero, zero), zero)
    # the projection is idempotent
    lower, upper = -torch.full_like(v, 0.4), torch.full_like(v, 0.25)
    once = project_l1_box(v, 0.5, lower, upper)
    assert torch.allclose(project_l1_box(once, 0.5, lower, upper), once)


def test_l1_box_projection_where_the_norm_is_flat_at_eps():
    # ||d(lam)||_1 = 1 = eps on a whole interval of lam (coordinate 0 at its
    # bound, coordinate 2 thresholded to 0); rounding made the norm at the
    # breakpoints non-monotone there, and an earlier version shrank the result
    x = np.array([0.0, 0.8065937981616575, 0.982741914544214])
    v = np.array([1.583996183787413, 0.0, -0.014522017278432685])
    got = project_l1_box(torch.tensor(v[None]), 1.0, torch.tensor(-x[None]),
                         torch.tensor(1 - x[None]))
    assert torch.allclose(got, torch.tensor([[1.0, 0.0, 0.0]], dtype=got.dtype),
                          atol=1e-12)
    assert np.allclose(got[0].numpy(), _qp_projection(v, 1.0, -x, 1 - x), atol=1e-5)


def test_project_feasible_l1_is_the_exact_projection_not_ball_then_clip():
    # the box binds on the first coordinate: clipping after the ball projection
    # would waste budget that the exact projection gives the second coordinate
    x = torch.tensor([[0.9, 0.5]])
    delta = torch.tensor([[1.0, 0.6]])
    d = project_feasible(x, delta, 0.5, "l1", 0.0, 1.0)
    want = _qp_projection(delta[0].numpy(), 0.5, -x[0].numpy(), 1 - x[0].numpy())
    assert np.allclose(d[0].numpy(), want, atol=1e-6)
    assert torch.allclose(d, torch.tensor([[0.1, 0.4]]), atol=1e-6)


def test_l1_random_start_is_uniform_in_the_ball():
    g = torch.Generator().manual_seed(0)
    x = torch.zeros(20000, 3, dtype=torch.float64)
    delta = random_init(x, 2.0, "l1", g)
    r = flat_norm(delta, "l1") / 2.0
    assert float(r.max()) <= 1.0
    # uniform in the volume of the 3-d ball: P(||d||_1 <= t eps) = t^3
    for t in (0.5, 0.8):
        assert abs(float((r <= t).double().mean()) - t ** 3) < 0.015
    # symmetric in each coordinate
    assert float(delta.mean(dim=0).abs().max()) < 0.03


def test_sparse_l1_step_moves_the_top_coordinates():
    grad = torch.tensor([[0.1, -3.0, 2.0, 0.0, -0.5], [1.0, 1.0, 0.0, 0.0, 0.0]])
    step = sparse_l1_step(grad, 0.6, 2)
    assert torch.allclose(step, torch.tensor([[0.0, -0.3, 0.3, 0.0, 0.0],
                                              [0.3, 0.3, 0.0, 0.0, 0.0]]))
    # per-sample k; zero gradients are never moved
    step = sparse_l1_step(grad, 1.0, torch.tensor([1, 5]))
    assert torch.allclose(step, torch.tensor([[0.0, -1.0, 0.0, 0.0, 0.0],
                                              [0.5, 0.5, 0.0, 0.0, 0.0]]))


# --------------------------------------------------------------- PGD, FGSM
def _best_l1_decrease(w, x, eps, lo=0.0, hi=1.0):
    """The largest decrease of ``w . x`` over ``||d||_1 <= eps`` inside the box:
    the coordinates with the largest ``|w_i|`` first, each as far as its room."""
    left, gain = eps, 0.0
    for i in np.argsort(-np.abs(w)):
        room = x[i] - lo if w[i] > 0 else hi - x[i]
        move = min(room, left)
        gain, left = gain + abs(w[i]) * move, left - move
        if left <= 0:
            break
    return gain


def _binary_linear_problem(n=40, d=10, seed=0):
    g = torch.Generator().manual_seed(seed)
    model = torch.nn.Linear(d, 2).double()
    with torch.no_grad():
        model.weight.copy_(torch.randn(2, d, generator=g, dtype=torch.float64))
        model.bias.zero_()
    x = 0.3 + 0.4 * torch.rand(n, d, generator=g, dtype=torch.float64)
    # half of the points on the edges of the box: the box binds
    edge = torch.where(torch.rand(n // 2, d, generator=g) < 0.5, 0.02, 0.98)
    x[: n // 2] = edge.double()
    with torch.no_grad():
        y = model(x).argmax(1)
    return model, x, y


def _margin_decrease(model, x, x_adv, y):
    rows = torch.arange(len(y))
    with torch.no_grad():
        def margin(z):
            out = model(z)
            return out[rows, y] - out[rows, 1 - y]
        return (margin(x) - margin(x_adv)).numpy()


@pytest.mark.parametrize("eps", [0.2, 0.6])
def test_l1_pgd_reaches_the_optimum_of_a_linear_model(eps):
    # on 10 features the sparse step moves one coordinate (the exact L1 steepest
    # ascent): PGD must end at the best allocation of the budget, the largest
    # |w_i| first, also where the box stops a coordinate (the blocked coordinate
    # leaves the step, the budget goes to the next one)
    model, x, y = _binary_linear_problem()
    x_adv = PGD(eps=eps, norm="l1", n_steps=50, random_start=False).perturb(
        model, x, y)
    assert float(flat_norm(x_adv - x, "l1").max()) <= eps * (1 + 1e-9)
    assert float(x_adv.min()) >= 0 and float(x_adv.max()) <= 1
    W = model.weight.detach().numpy()
    best = np.array([_best_l1_decrease(W[t] - W[1 - t], xi, eps)
                     for xi, t in zip(x.numpy(), y.numpy())])
    ratio = _margin_decrease(model, x, x_adv, y) / best
    assert ratio.min() >= 0.99 and ratio.max() <= 1 + 1e-9


def test_fgsm_l1_moves_the_best_coordinate_by_eps():
    model, x, y = _binary_linear_problem()
    x, y = x[20:], y[20:]  # inside the box by at least 0.3 > eps
    eps = 0.2
    x_adv = FGSM(eps=eps, norm="l1").perturb(model, x, y)
    delta = (x_adv - x).numpy()
    W = model.weight.detach().numpy()
    for di, t in zip(delta, y.numpy()):
        w = W[t] - W[1 - t]
        best = np.argmax(np.abs(w))
        assert np.flatnonzero(np.abs(di) > 1e-12).tolist() == [best]
        assert di[best] == pytest.approx(-np.sign(w[best]) * eps)


@pytest.mark.parametrize("attack", [
    PGD(eps=3.0, norm="l1", n_steps=5, random_state=0),
    PGD(eps=3.0, norm="l1", n_steps=5, random_start="normal", random_state=0),
    FGSM(eps=3.0, norm="l1"),
    LogitScaledPGD(eps=3.0, norm="l1", n_steps=5, random_state=0),
    LangevinSampler(eps=3.0, norm="l1", n_steps=5, step_size=1.0, random_state=0),
    LangevinSampler(eps=3.0, norm="l1", n_steps=5, step_size=1.0, noise="laplacian",
                    noise_scale=0.1, random_state=0),
    LocalLinearityAttack(eps=3.0, norm="l1", n_steps=3, random_state=0),
], ids=lambda a: type(a).__name__)
def test_l1_gradient_attacks_stay_in_the_ball_and_the_box(attack):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU(),
                                torch.nn.Flatten(), torch.nn.Linear(4 * 6 * 6, 5))
    x = torch.rand(16, 3, 8, 8)
    x[:4] = 0.0  # on the edges of the box
    x[4:8] = 1.0
    y = torch.randint(0, 5, (16,))
    x_adv = attack.perturb(model, x, y)
    assert float(flat_norm(x_adv - x, "l1").max()) <= 3.0 * (1 + 1e-6)
    assert float(x_adv.min()) >= 0.0 and float(x_adv.max()) <= 1.0
    assert float((x_adv - x).abs().max()) > 0
