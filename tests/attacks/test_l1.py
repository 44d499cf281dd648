"""Tests of the L1 threat model: the ball-and-box projection and the L1 attacks."""

import warnings

import numpy as np
import pytest
import torch
from scipy.optimize import minimize
from sklearn.datasets import load_digits

from sklearn_robust.attacks import (
    APGD,
    APGDT,
    FGSM,
    PGD,
    AutoAttack,
    LangevinSampler,
    LocalLinearityAttack,
    LogitScaledPGD,
    Square,
    l1_apgd_checkpoints,
)
from sklearn_robust.attacks._apgd import apgd_run, large_eps_stages
from sklearn_robust.attacks._projections import (
    project_feasible,
    project_l1_box,
    random_init,
    sparse_l1_step,
)
from sklearn_robust.attacks._square import _eta
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


# ------------------------------------------------------------------ l1-APGD
def _ce(logits, y, _target=None):
    return torch.nn.functional.cross_entropy(logits, y, reduction="none")


def _l1_apgd_reference_replay(model, x, y, eps, n_iter, x_init=None):
    """The authors' l1-APGD loop (fra31/auto-attack, ``attack_single_run`` with
    ``norm="L1"``), replayed step by step with the box [0, 1]: the gradient
    entries at least the one at ascending rank ``int((1 - topk) d)``, a step of
    L1 length ``step`` spread over their signs, the projection onto the ball and
    the box, no momentum; every ``max(int(0.04 N), 1)`` steps the sparsity of the
    best point sets ``topk``, and a drop of more than 5% resets the step to eps
    and restarts from the best point, otherwise the step shrinks by 1.5 (to at
    least eps / 10). Returns the iterates and the number of restarts."""
    n, d = len(x), x[0].numel()

    def loss_grad(v):
        v = v.clone().requires_grad_(True)
        loss = _ce(model(v), y)
        return loss.detach(), torch.autograd.grad(loss.sum(), v)[0]

    def l0(t):
        return (t != 0).reshape(n, -1).sum(-1).to(x.dtype)

    x_adv = x.clone() if x_init is None else x_init.clone()
    if x_init is None:
        topk, sp_old = torch.full((n,), 0.2, dtype=x.dtype), torch.full((n,), float(d),
                                                                        dtype=x.dtype)
    else:
        sp_old = l0(x_adv - x)
        topk = sp_old / d / 1.5
    loss_best, grad = loss_grad(x_adv)
    x_best, grad_best = x_adv.clone(), grad.clone()
    step = torch.full((n, 1), eps, dtype=x.dtype)
    every, counter, trace, n_restarts = max(int(0.04 * n_iter), 1), 0, [], 0
    rows = torch.arange(n)
    for _ in range(n_iter):
        ranked = grad.abs().reshape(n, -1).sort(-1)[0]
        rank = ((1.0 - topk) * d).clamp(0, d - 1).long()
        sparse = grad * (grad.abs() >= ranked[rows, rank][:, None]).to(x.dtype)
        x_new = x_adv + step * sparse.sign() / (sparse.sign().abs().sum(
            1, keepdim=True) + 1e-10)
        x_adv = x + project_feasible(x, x_new - x, eps, "l1", 0.0, 1.0)
        trace.append(x_adv.clone())
        loss, grad = loss_grad(x_adv)
        better = loss > loss_best
        x_best[better], grad_best[better] = x_adv[better], grad[better]
        loss_best = torch.where(better, loss, loss_best)
        counter += 1
        if counter == every:
            sp_curr = l0(x_best - x)
            restart = sp_curr / sp_old < 0.95
            topk = sp_curr / d / 1.5
            step[restart] = eps
            step[~restart] /= 1.5
            step = step.clamp(eps / 10, eps)
            sp_old = sp_curr
            x_adv[restart], grad[restart] = x_best[restart], grad_best[restart]
            n_restarts += int(restart.sum())
            counter = 0
    return trace, n_restarts


def _wide_margin_mlp(d, seed=4):
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(d, 16), torch.nn.Tanh(),
                                torch.nn.Linear(16, 3)).double()
    with torch.no_grad():  # a wide margin: no sample is fooled (none leaves the batch)
        model[2].bias[0] += 6.0
    return model


@pytest.mark.parametrize("n_iter, given_start", [(50, False), (100, False),
                                                  (30, True)])
def test_l1_apgd_iterates_match_a_replay_of_the_reference_loop(n_iter, given_start):
    d = 20
    model = _wide_margin_mlp(d)
    g = torch.Generator().manual_seed(1)
    x = torch.rand(6, d, generator=g, dtype=torch.float64) * 0.6 + 0.2
    x[:2, :5] = 0.0  # on the box: the projection clips
    y = model(x).argmax(1).detach()
    assert bool((y == 0).all())
    eps = 1.5
    x_init = None
    if given_start:
        noise = torch.randn(x.shape, generator=g, dtype=x.dtype)
        noise[:, ::2] = 0  # a sparse start
        x_init = x + project_feasible(x, noise, eps, "l1", 0.0, 1.0)
    trace = []
    apgd_run(model, x, y, loss_fn=_ce, eps=eps, norm="l1", n_iter=n_iter,
             clip_min=0.0, clip_max=1.0, generator=torch.Generator(),
             random_start=False, trace=trace, x_init=x_init)
    expected, n_restarts = _l1_apgd_reference_replay(model, x, y, eps, n_iter, x_init)
    assert n_restarts > 0  # the sparsity-driven restarts are exercised
    assert len(trace) == n_iter
    for k, ((got, _), want) in enumerate(zip(trace, expected)):
        assert torch.allclose(got, want, atol=1e-9), f"iterate {k + 1} differs"


def test_l1_apgd_checkpoints_and_large_eps_stages():
    assert l1_apgd_checkpoints(100) == list(range(4, 101, 4))
    assert l1_apgd_checkpoints(30) == list(range(1, 31))
    assert l1_apgd_checkpoints(10) == list(range(1, 11))
    # the authors' APGDAttack.perturb: ceil(0.3 N), ceil(0.3 N), the rest
    assert large_eps_stages(2.0, 100) == [(6.0, 30), (4.0, 30), (2.0, 40)]
    assert large_eps_stages(1.0, 10) == [(3.0, 3), (2.0, 3), (1.0, 4)]
    assert large_eps_stages(1.0, 5) == [(3.0, 2), (2.0, 2), (1.0, 1)]
    with pytest.raises(ValueError, match="n_iter"):
        l1_apgd_checkpoints(0)


class _StageRecorder(torch.nn.Module):
    """A wide-margin linear model that records the L1 radius of every query."""

    def __init__(self, x):
        super().__init__()
        torch.manual_seed(0)
        self.linear = torch.nn.Linear(x.shape[1], 3).double()
        with torch.no_grad():
            self.linear.bias[0] += 50.0
        self.x, self.radii = x, []

    def forward(self, z):
        if z.shape == self.x.shape:
            self.radii.append(float(flat_norm(z.detach() - self.x, "l1").max()))
        return self.linear(z)


def test_apgd_use_largereps_runs_the_three_radii():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(5, 30, generator=g, dtype=torch.float64) * 0.5 + 0.25
    model = _StageRecorder(x)
    y = torch.zeros(5, dtype=torch.long)
    eps = 1.0
    x_adv = APGD(eps=eps, norm="l1", n_iter=10, use_largereps=True,
                 random_state=0).perturb(model, x, y)
    assert float(flat_norm(x_adv - x, "l1").max()) <= eps * (1 + 1e-9)
    # stages of 3, 3 and 4 iterations at radii 3, 2 and 1, each starting from the
    # previous best point projected onto its ball (one query per start and step)
    radii = np.array(model.radii[1:])  # [0]: the probabilities check
    assert len(radii) == 4 + 4 + 5
    assert np.all(radii[:4] <= 3 * eps + 1e-9) and radii[:4].max() > 2 * eps
    assert np.all(radii[4:8] <= 2 * eps + 1e-9) and radii[4:8].max() > eps
    assert np.all(radii[8:] <= eps + 1e-9)


@pytest.mark.parametrize("cls", [APGD, APGDT])
def test_apgd_use_largereps_needs_l1_and_three_iterations(cls):
    model, x, y = torch.nn.Linear(4, 3), torch.rand(3, 4), torch.tensor([0, 1, 2])
    with pytest.raises(ValueError, match="use_largereps.*norm='l1'"):
        cls(norm="linf", use_largereps=True).perturb(model, x, y)
    for n_iter in (1, 2, 4):  # a stage without iterations
        with pytest.raises(ValueError, match="n_iter must be 3 or >= 5"):
            cls(norm="l1", n_iter=n_iter, use_largereps=True).perturb(model, x, y)
    cls(norm="l1", n_iter=3, use_largereps=True).perturb(model, x, y)
    with pytest.raises(ValueError, match="use_largereps"):
        cls(norm="l1", use_largereps="yes").perturb(model, x, y)


@pytest.mark.parametrize("attack", [
    APGD(eps=3.0, norm="l1", n_iter=10, random_state=0),
    APGD(eps=3.0, norm="l1", n_iter=10, loss="dlr", use_largereps=True,
         n_restarts=2, random_state=0),
    APGDT(eps=3.0, norm="l1", n_iter=10, n_target_classes=2, random_state=0),
    APGDT(eps=3.0, norm="l1", n_iter=10, n_target_classes=2, use_largereps=True,
          random_state=0),
], ids=["apgd", "apgd-largereps", "apgdt", "apgdt-largereps"])
def test_l1_apgd_stays_in_the_ball_and_the_box(attack):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU(),
                                torch.nn.Flatten(), torch.nn.Linear(4 * 6 * 6, 5))
    x = torch.rand(16, 3, 8, 8)
    x[:4] = 0.0
    x[4:8] = 1.0
    y = model(x).argmax(1).detach()
    x_adv, info = attack.perturb(model, x, y, return_info=True)
    assert float(flat_norm(x_adv - x, "l1").max()) <= 3.0 * (1 + 1e-6)
    assert float(x_adv.min()) >= 0.0 and float(x_adv.max()) <= 1.0
    with torch.no_grad():
        assert torch.equal(model(x_adv).argmax(1) != y, info["fooled"])


# ------------------------------------------------------------------- Square
class _ConstantScores:
    """Class 0 always wins by the same margin: Square accepts no candidate, so every
    query after the start is a proposal made from the starting point."""

    def __init__(self):
        self.queries = []

    def __call__(self, x):
        self.queries.append(x.detach().clone())
        out = torch.zeros(len(x), 3, dtype=x.dtype)
        out[:, 0] = 5.0
        return out


def test_square_l1_pattern_is_the_references():
    # fra31/auto-attack's eta(3) for L1: rings weighted 1 + 1/16 at the centre and
    # 1/16 around it, each half normalised in L1, then the whole
    top = torch.tensor([[1.0, 17.0, 1.0]]) / 19
    bottom = torch.tensor([[1.0, 1.0, 1.0], [1.0, 17.0, 1.0]]) / 22
    want = torch.cat([top, -bottom]) / 2
    assert torch.allclose(_eta(3, 3, torch.float32, "cpu", "l1"), want, atol=1e-6)


def test_square_l1_proposal_on_one_channel_moves_mass_between_two_windows():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(4, 1, 16, 16, generator=g)
    y = torch.zeros(4, dtype=torch.long)
    scores = _ConstantScores()
    eps = 4.0
    Square(eps=eps, norm="l1", n_queries=30, p_init=0.05, clip_min=None,
           clip_max=None, random_state=0).perturb(scores, x, y)
    start, proposals = scores.queries[1] - x, scores.queries[2:]
    assert torch.allclose(flat_norm(start, "l1"), torch.full((4,), eps), rtol=1e-5)
    for query in proposals:
        delta = query - x
        assert torch.allclose(flat_norm(delta, "l1"), torch.full((4,), eps),
                              rtol=1e-5)
        changed = ((delta - start).abs() > 1e-6).reshape(4, -1).sum(dim=1)
        assert int(changed.max()) <= 2 * 5 * 5


@pytest.mark.parametrize("shape", [(3, 8, 8), (1, 8, 8), (24,)])
def test_square_l1_stays_in_the_ball_and_the_box(shape):
    torch.manual_seed(0)
    d = int(np.prod(shape))
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(d, 16),
                                torch.nn.ReLU(), torch.nn.Linear(16, 5))
    x = torch.rand(20, *shape)
    x[:4] = 0.0
    x[4:8] = 1.0
    y = model(x).argmax(1).detach()
    x_adv, info = Square(eps=2.0, norm="l1", n_queries=100, n_restarts=2,
                         random_state=0).perturb(model, x, y, return_info=True)
    assert x_adv.shape == x.shape
    assert float(flat_norm(x_adv - x, "l1").max()) <= 2.0 * (1 + 1e-6)
    assert float(x_adv.min()) >= 0.0 and float(x_adv.max()) <= 1.0
    with torch.no_grad():
        assert torch.equal(model(x_adv).argmax(1) != y, info["fooled"])
    assert bool(info["fooled"].any())


# --------------------------------------------------------------- AutoAttack
def _members(**params):
    out = []
    for m in AutoAttack(**params)._members():
        kind = type(m).__name__
        detail = {"APGD": lambda: (m.loss, m.n_restarts, m.n_iter, m.use_largereps),
                  "APGDT": lambda: (m.n_target_classes, m.n_restarts, m.n_iter,
                                    m.use_largereps),
                  "FAB": lambda: (m.targeted, m.n_target_classes, m.n_restarts,
                                  m.n_iter),
                  "Square": lambda: (m.n_queries, m.n_restarts, m.p_init,
                                     m.rescale_schedule)}[kind]()
        assert m.norm == params.get("norm", "linf")
        out.append((kind, *detail))
    return out


def test_autoattack_l1_versions_are_the_authors():
    # fra31/auto-attack, AutoAttack.set_version("standard") with norm="L1":
    # apgd-ce with 5 restarts and apgd-t with 5 target classes, both with
    # use_largereps; fab-t (9 targets, 1 restart) and square (5000 queries)
    assert _members(norm="l1", eps=12.0) == [
        ("APGD", "ce", 5, 100, True), ("APGDT", 5, 1, 100, True),
        ("FAB", True, 9, 1, 100), ("Square", 5000, 1, 0.8, False)]
    # "rand" as for the other norms; "plus" too, with a warning (the authors'
    # code prints one)
    assert _members(norm="l1", version="rand") == [
        ("APGD", "ce", 1, 100, False), ("APGD", "dlr", 1, 100, False)]
    with pytest.warns(UserWarning, match="plus"):
        plus = _members(norm="l1", version="plus")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert plus == _members(norm="linf", version="plus")
    assert _members(norm="l1", version="fast") == [
        ("APGD", "ce", 1, 50, True), ("APGDT", 3, 1, 50, True),
        ("Square", 1000, 1, 0.8, True)]


@pytest.fixture(scope="module")
def digits_mlp():
    """A small MLP trained on digits / 16 and 100 test points."""
    X, y = load_digits(return_X_y=True)
    X = torch.tensor(X / 16, dtype=torch.float32)
    y = torch.tensor(y)
    g = torch.Generator().manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(64, 32), torch.nn.ReLU(),
                                torch.nn.Linear(32, 10))
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(0.3 * torch.randn(p.shape, generator=g))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(100):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(X[:1400]), y[:1400]).backward()
        opt.step()
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model, X[1400:1500], y[1400:1500]


# Square may fool a point or two that the short gradient runs of "fast" missed
@pytest.mark.filterwarnings("ignore::sklearn_robust.exceptions.GradientMaskingWarning")
def test_autoattack_l1_lowers_the_accuracy_of_a_trained_model(digits_mlp):
    model, x, y = digits_mlp
    clean = (model(x).argmax(1) == y).float().mean()
    assert clean > 0.9
    eps = 2.0
    x_adv, info = AutoAttack(eps=eps, norm="l1", version="fast",
                             random_state=0).perturb(model, x, y, return_info=True)
    assert float(flat_norm(x_adv - x, "l1").max()) <= eps * (1 + 1e-6)
    assert float(x_adv.min()) >= 0 and float(x_adv.max()) <= 1
    robust = (model(x_adv).argmax(1) == y).float().mean()
    assert torch.equal(model(x_adv).argmax(1) == y, info["robust"])
    assert robust < clean - 0.5
    # at least as strong as L1 PGD with the iterations of its first member
    pgd = PGD(eps=eps, norm="l1", n_steps=50, random_state=0).perturb(model, x, y)
    assert robust <= (model(pgd).argmax(1) == y).float().mean()
