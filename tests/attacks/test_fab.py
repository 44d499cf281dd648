"""Tests of FAB: the box-constrained projection and minimal norms."""

import numpy as np
import pytest
import torch
from scipy.optimize import linprog, minimize

from sklearn_robust.attacks import FAB, AutoAttack, cascade
from sklearn_robust.attacks._fab import _norm, project_onto_hyperplane_box
from sklearn_robust.attacks._projections import flat_norm

DUAL = {"linf": 1.0, "l2": 2.0, "l1": float("inf")}


# ------------------------------------------------------- brute-force solvers
def _min_step_to_halfspace(p, w, c, norm, lo=None, hi=None):
    """Smallest ||d|| with ``w . d <= -c`` and ``lo <= p + d <= hi`` (scipy).

    Returns ``inf`` where the half-space does not meet the box.
    """
    d = len(p)
    lb = [None] * d if lo is None else list(lo - p)
    ub = [None] * d if hi is None else list(hi - p)
    if norm == "l2":
        if lo is not None and np.sum(np.minimum(w * (lo - p), w * (hi - p))) > -c:
            return np.inf
        res = minimize(lambda v: v @ v, np.zeros(d), jac=lambda v: 2 * v,
                       bounds=list(zip(lb, ub)), method="SLSQP",
                       constraints=[{"type": "ineq", "fun": lambda v: -c - w @ v,
                                     "jac": lambda v: -w}],
                       options={"ftol": 1e-14, "maxiter": 500})
        assert res.success, res.message
        return float(np.sqrt(res.fun))
    if norm == "linf":  # variables (d, t): min t, |d_i| <= t
        cost = np.r_[np.zeros(d), 1.0]
        eye = np.eye(d)
        a_ub = np.vstack([np.c_[eye, -np.ones(d)], np.c_[-eye, -np.ones(d)],
                          np.r_[w, 0.0][None]])
        b_ub = np.r_[np.zeros(2 * d), -c]
        bounds = list(zip(lb, ub)) + [(0, None)]
    else:  # l1: variables (d, u): min sum u, |d_i| <= u_i
        cost = np.r_[np.zeros(d), np.ones(d)]
        eye = np.eye(d)
        a_ub = np.vstack([np.c_[eye, -eye], np.c_[-eye, -eye],
                          np.r_[w, np.zeros(d)][None]])
        b_ub = np.r_[np.zeros(2 * d), -c]
        bounds = list(zip(lb, ub)) + [(0, None)] * d
    res = linprog(cost, A_ub=a_ub, b_ub=b_ub, bounds=bounds, method="highs")
    if res.status == 2:
        return np.inf
    assert res.status == 0, res.message
    return float(res.fun)


def _affine_min_norms(model, x, y, norm, lo=None, hi=None):
    """Exact minimal perturbation norms of an affine model, per sample."""
    W = model.weight.detach().double().numpy()
    b = model.bias.detach().double().numpy()
    xs = x.double().numpy()
    out = []
    for xi, yi in zip(xs, y.numpy()):
        f = W @ xi + b
        best = np.inf
        for j in range(len(b)):
            if j == yi:
                continue
            # cross into f_j >= f_y: (W_y - W_j) . d <= -(f_y - f_j)
            best = min(best, _min_step_to_halfspace(xi, W[yi] - W[j], f[yi] - f[j],
                                                    norm, lo, hi))
        out.append(best)
    return np.array(out)


def _affine_problem(n=12, d=6, n_classes=4, seed=0, low=0.2, high=0.8):
    g = torch.Generator().manual_seed(seed)
    model = torch.nn.Linear(d, n_classes)
    with torch.no_grad():
        model.weight.copy_(torch.randn(d, n_classes, generator=g).T)
        model.bias.copy_(0.3 * torch.randn(n_classes, generator=g))
    x = low + (high - low) * torch.rand(n, d, generator=g)
    with torch.no_grad():
        y = model(x).argmax(dim=1)
    return model, x, y


# --------------------------------------------------------------- projection
@pytest.mark.parametrize("norm", ["linf", "l2", "l1"])
def test_projection_matches_a_brute_force_solver_inside_the_box(norm):
    g = torch.Generator().manual_seed(1)
    n, d = 40, 7
    p = torch.rand(n, d, generator=g, dtype=torch.float64)
    w = torch.randn(n, d, generator=g, dtype=torch.float64)
    w[::5, :3] = 0.0  # coordinates the hyperplane does not see
    c = 2.0 * torch.randn(n, generator=g, dtype=torch.float64)
    step = project_onto_hyperplane_box(p, w, c, norm, 0.0, 1.0)
    assert torch.isfinite(step).all()
    assert float((p + step).min()) >= -1e-12 and float((p + step).max()) <= 1 + 1e-12
    assert bool((step[w == 0] == 0).all())
    n_feasible = 0
    for i in range(n):
        # a step onto the hyperplane is a step into the half-space, and back
        expected = _min_step_to_halfspace(p[i].numpy(), w[i].numpy(), float(c[i]),
                                          norm, 0.0, 1.0) if c[i] > 0 else \
            _min_step_to_halfspace(p[i].numpy(), -w[i].numpy(), -float(c[i]), norm,
                                   0.0, 1.0)
        got = float(_norm(step[i:i + 1], norm))
        if np.isfinite(expected):
            n_feasible += 1
            assert float(c[i] + w[i] @ step[i]) == pytest.approx(0.0, abs=1e-9)
            assert got == pytest.approx(expected, rel=1e-5, abs=1e-7)
        else:  # unreachable: the box corner nearest to the hyperplane
            room = torch.where(w[i] * c[i].sign() > 0, p[i], 1 - p[i])
            assert torch.allclose(step[i].abs(), torch.where(w[i] != 0, room, 0.0))
    assert 10 < n_feasible < n  # both cases were exercised


@pytest.mark.parametrize("norm", ["linf", "l2", "l1"])
def test_projection_without_a_box_is_the_closed_form(norm):
    g = torch.Generator().manual_seed(2)
    p, w = torch.randn(20, 9, generator=g), torch.randn(20, 9, generator=g)
    c = torch.randn(20, generator=g)
    step = project_onto_hyperplane_box(p, w, c, norm)
    assert torch.allclose(c + (w * step).sum(dim=1), torch.zeros(20), atol=1e-5)
    expected = c.abs() / w.norm(p=DUAL[norm], dim=1)
    assert torch.allclose(_norm(step, norm), expected, rtol=1e-5)
    # a side of the box left open
    half = project_onto_hyperplane_box(p.abs(), w, c, norm, 0.0, None)
    assert float((p.abs() + half).min()) >= -1e-6
    assert torch.isfinite(half).all()


def test_projection_degenerate_rows():
    p = torch.full((3, 4), 0.5)
    w = torch.tensor([[0.0] * 4, [1.0, 0, 0, 0], [1.0, -1.0, 0, 0]])
    c = torch.tensor([1.0, 0.0, 5.0])  # no normal, on the plane, unreachable
    for norm in ("linf", "l2", "l1"):
        step = project_onto_hyperplane_box(p, w, c, norm, 0.0, 1.0)
        assert torch.isfinite(step).all()
        assert torch.equal(step[0], torch.zeros(4))
        assert torch.equal(step[1], torch.zeros(4))
        assert torch.allclose(step[2], torch.tensor([-0.5, 0.5, 0.0, 0.0]))


# ---------------------------------------------------- minimal perturbations
@pytest.mark.parametrize("norm", ["linf", "l2", "l1"])
@pytest.mark.parametrize("box", [False, True])
def test_fab_finds_the_minimal_perturbation_of_an_affine_model(norm, box):
    lo, hi = (0.0, 1.0) if box else (None, None)
    # points near the box faces, so that the box constrains the minimal steps
    model, x, y = _affine_problem(low=0.02 if box else 0.2, high=0.98 if box else 0.8)
    exact = _affine_min_norms(model, x, y, norm, lo, hi)
    assert np.isfinite(exact).all()
    if box:  # the box makes some minimal steps longer than the free ones
        assert (exact > 1.001 * _affine_min_norms(model, x, y, norm)).any()
    attack = FAB(eps=50.0, norm=norm, n_iter=50, clip_min=lo, clip_max=hi)
    x_adv, info = attack.perturb(model, x, y, return_info=True)
    found = _norm((x_adv - x).reshape(len(x), -1).double(), norm).numpy()
    assert bool(info["fooled"].all())
    with torch.no_grad():
        assert bool((model(x_adv).argmax(dim=1) != y).all())
    np.testing.assert_allclose(info["min_norm"].double().numpy(), found, rtol=1e-6)
    ratio = found / exact
    assert ratio.min() >= 1 - 1e-4, "below the minimal perturbation"
    assert ratio.max() <= 1.05


@pytest.mark.parametrize("norm", ["linf", "l2", "l1"])
def test_fab_never_beats_the_minimum_where_the_box_binds_everywhere(norm):
    # half the coordinates on the box faces: the box constrains almost every
    # minimal step. FAB picks the boundary by its distance without the box (as the
    # reference), so it may end farther than 1.05x here, never below.
    model, x, y = _affine_problem(n=20, low=0.0, high=1.0, seed=2)
    x[:, ::2] = x[:, ::2].round()
    with torch.no_grad():
        y = model(x).argmax(dim=1)
    exact = _affine_min_norms(model, x, y, norm, 0.0, 1.0)
    _, info = FAB(eps=50.0, norm=norm, n_iter=50).perturb(model, x, y,
                                                           return_info=True)
    assert bool(info["fooled"].all())
    ratio = info["min_norm"].double().numpy() / exact
    assert ratio.min() >= 1 - 1e-4 and np.median(ratio) <= 1.05


@pytest.mark.parametrize("norm", ["linf", "l2"])
@pytest.mark.parametrize("decision_function", [False, True])
def test_fab_binary_affine_model_distance_formula(norm, decision_function):
    g = torch.Generator().manual_seed(3)
    w, b = torch.randn(5, generator=g), torch.tensor(0.2)
    x = torch.rand(16, 5, generator=g)

    def model(z):
        s = z @ w + b
        return s if decision_function else torch.stack([torch.zeros_like(s), s], 1)

    y = (x @ w + b > 0).long()
    attack = FAB(eps=20.0, norm=norm, n_iter=30, clip_min=None, clip_max=None)
    x_adv, info = attack.perturb(model, x, y, return_info=True)
    exact = (x @ w + b).abs() / w.norm(p=DUAL[norm])
    ratio = flat_norm(x_adv - x, norm) / exact
    assert bool(info["fooled"].all())
    assert float(ratio.min()) >= 1 - 1e-4 and float(ratio.max()) <= 1.05


def test_fab_is_deterministic_in_its_first_run_and_restarts_only_help():
    model, x, y = _affine_problem(n=30, seed=4)
    eps = float(np.median(_affine_min_norms(model, x, y, "linf", 0.0, 1.0)))
    one = FAB(eps=eps, n_iter=3).perturb(model, x, y, return_info=True)[1]
    more = FAB(eps=eps, n_iter=3, n_restarts=4, random_state=0).perturb(
        model, x, y, return_info=True)[1]
    assert bool((more["fooled"] >= one["fooled"]).all())
    assert bool((more["min_norm"] <= one["min_norm"]).all())


# ------------------------------------------------------------------ targeted
def _two_routes_model():
    """Class 0 true; class 1 the most likely other but far, class 2 close."""
    model = torch.nn.Linear(2, 3)
    with torch.no_grad():
        model.weight.copy_(torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 20.0]]))
        model.bias.copy_(torch.tensor([2.0, 1.0, -8.0]))
    x = torch.tensor([[0.4, 0.3], [0.5, 0.35], [0.45, 0.32]])
    return model, x, torch.zeros(3, dtype=torch.long)


def test_fab_t_reaches_its_target_classes_in_order():
    model, x, y = _two_routes_model()
    with torch.no_grad():
        ranked = model(x).argsort(dim=1, descending=True)
    assert bool((ranked[:, 1] == 1).all()) and bool((ranked[:, 2] == 2).all())
    first = FAB(eps=0.45, targeted=True, n_target_classes=1, n_iter=20,
                clip_min=None, clip_max=None)
    x_adv, info = first.perturb(model, x, y, return_info=True)
    # only target 1 tried: it is reached along x_0 at distance 1 - x_0 > eps
    exact = 1.0 - x[:, 0]
    assert bool((info["min_norm"] >= exact * (1 - 1e-4)).all())
    assert bool((info["min_norm"] <= exact * 1.05).all())
    assert not bool(info["fooled"].any()) and torch.equal(x_adv, x)
    # the second target (class 2, much closer) is tried next and reached
    both = first.set_params(n_target_classes=2)
    x_adv, info = both.perturb(model, x, y, return_info=True)
    exact2 = (10.0 - 20.0 * x[:, 1]) / 20.0
    assert bool(info["fooled"].all())
    with torch.no_grad():
        assert bool((model(x_adv).argmax(dim=1) == 2).all())
    found = flat_norm(x_adv - x, "linf")
    assert bool((found >= exact2 * (1 - 1e-4)).all())
    assert bool((found <= exact2 * 1.05).all())


def test_fab_t_on_a_linear_multiclass_model_reaches_the_closest_target():
    model, x, y = _affine_problem(n=16, n_classes=5, seed=5)
    with torch.no_grad():
        ranked = model(x).argsort(dim=1, descending=True)
    x_adv, info = FAB(eps=50.0, targeted=True, n_target_classes=1, n_iter=30,
                      clip_min=None, clip_max=None).perturb(model, x, y,
                                                            return_info=True)
    assert bool(info["fooled"].all())
    # no smaller than the minimal perturbation, and as close to the target's
    # hyperplane as the untargeted attack gets to the closest one
    exact = _affine_min_norms(model, x, y, "linf")
    assert bool((info["min_norm"].numpy() >= exact * (1 - 1e-4)).all())
    rows, t = torch.arange(len(x)), ranked[:, 1]
    with torch.no_grad():
        gap = model(x)[rows, y] - model(x)[rows, t]
        to_target = gap / (model.weight[y] - model.weight[t]).abs().sum(dim=1)
    assert bool((info["min_norm"] <= 1.05 * to_target).all())


# ------------------------------------------------------ contract, in detail
@pytest.mark.parametrize("norm, eps", [("linf", 0.05), ("l2", 0.3), ("l1", 0.6)])
@pytest.mark.parametrize("targeted", [False, True])
def test_fab_images_stay_in_ball_and_box(norm, eps, targeted):
    g = torch.Generator().manual_seed(6)
    model = torch.nn.Sequential(torch.nn.Conv2d(2, 4, 3, padding=1), torch.nn.ReLU(),
                                torch.nn.Flatten(), torch.nn.Linear(4 * 5 * 5, 4))
    with torch.no_grad():
        for prm in model.parameters():
            prm.copy_(torch.randn(prm.shape, generator=g))
    x = torch.rand(20, 2, 5, 5, generator=g)
    x[:5] = x[:5].round()  # on the box faces
    y = torch.randint(0, 4, (20,), generator=g)
    attack = FAB(eps=eps, norm=norm, n_iter=10, targeted=targeted, n_target_classes=3,
                 n_restarts=2, random_state=0)
    x_adv, info = attack.perturb(model, x, y, return_info=True)
    assert x_adv.shape == x.shape
    dist = _norm((x_adv - x).reshape(20, -1), norm)
    assert float(dist.max()) <= eps * (1 + 1e-6)
    assert float(x_adv.min()) >= 0.0 and float(x_adv.max()) <= 1.0
    with torch.no_grad():
        wrong = model(x_adv).argmax(dim=1) != y
    changed = (x_adv != x).flatten(1).any(dim=1)
    assert torch.equal(wrong, info["fooled"])  # fooled points, the rest unchanged
    assert bool(wrong[changed].all())
    assert bool(info["fooled"][changed].all()) and bool(changed.any())
    assert bool((info["min_norm"][info["fooled"]] <= eps * (1 + 1e-6)).all())


def test_fab_seeded_restarts_are_reproducible_and_leave_the_global_rng():
    model, x, y = _affine_problem(n=20, seed=7)
    attack = FAB(eps=0.05, n_iter=4, n_restarts=3, random_state=3)
    state = torch.get_rng_state()
    np_state = np.random.get_state()[1].copy()
    first = attack.perturb(model, x, y)
    assert torch.equal(torch.get_rng_state(), state)
    assert np.array_equal(np.random.get_state()[1], np_state)
    assert torch.equal(first, attack.perturb(model, x, y))


def test_random_start_is_at_half_eps():
    attack = FAB(eps=0.2, norm="l2", clip_min=None, clip_max=None)
    x = torch.rand(6, 3, 4)
    start = attack._random_start(x, torch.Generator().manual_seed(0))
    assert torch.allclose(flat_norm(start - x, "l2"), torch.full((6,), 0.1))
    attack.set_params(norm="linf")
    start = attack._random_start(x, torch.Generator().manual_seed(0))
    assert torch.allclose(flat_norm(start - x, "linf"), torch.full((6,), 0.1))


class _Floor(torch.nn.Module):
    """Piecewise-constant logits: zero gradients everywhere."""

    def __init__(self):
        super().__init__()
        self.linear = torch.nn.Linear(4, 3)

    def forward(self, x):
        return self.linear(torch.floor(4 * x) / 4)


@pytest.mark.parametrize("targeted", [False, True])
def test_fab_on_zero_gradients_does_not_crash(targeted):
    torch.manual_seed(0)
    x = torch.rand(10, 4) * 0.5 + 0.25
    for model in (_Floor(), lambda z: torch.ones(len(z), 3) * torch.arange(3.0)):
        with torch.no_grad():
            y = model(x).argmax(dim=1)
        attack = FAB(eps=0.1, n_iter=5, n_restarts=2, targeted=targeted,
                     n_target_classes=2, random_state=0)
        x_adv, info = attack.perturb(model, x, y, return_info=True)
        assert torch.isfinite(x_adv).all()
        assert torch.equal(x_adv[~info["fooled"]], x[~info["fooled"]])
        assert not torch.isnan(info["min_norm"]).any()
        assert float(flat_norm(x_adv - x, "linf").max()) <= 0.1 + 1e-6


def test_fab_skips_misclassified_points_and_eps_zero_info():
    model, x, y = _affine_problem(n=10, seed=8)
    y_wrong = (y + 1) % 4
    x_adv, info = FAB(eps=0.1, n_iter=3).perturb(model, x, y_wrong, return_info=True)
    assert torch.equal(x_adv, x)
    assert bool(info["fooled"].all()) and bool((info["min_norm"] == 0).all())
    _, info0 = FAB(eps=0.0).perturb(model, x, y, return_info=True)
    assert not bool(info0["fooled"].any())
    assert bool(torch.isinf(info0["min_norm"]).all())


def test_fab_in_a_cascade_and_autoattack():
    model, x, y = _affine_problem(n=20, seed=9)
    eps = 0.05
    fab = FAB(eps=eps, n_iter=10, targeted=True, n_target_classes=3)
    x_adv, robust = cascade([fab], model, x, y)
    assert float(flat_norm(x_adv - x, "linf").max()) <= eps + 1e-6
    direct = fab.perturb(model, x, y, return_info=True)[1]["fooled"]
    assert torch.equal(robust, ~direct)
    # a member of a custom ensemble, which sets its threat model
    ensemble = AutoAttack(eps=eps, norm="l2", attacks=[FAB(n_iter=5)], random_state=0)
    (member,) = ensemble.members(model, x)
    assert member.eps == eps and member.norm == "l2"
    assert ensemble.perturb(model, x, y).shape == x.shape


@pytest.mark.parametrize("params, match", [
    ({"norm": "l3"}, "norm"), ({"n_iter": 0}, "n_iter"), ({"n_restarts": 1.5},
                                                          "n_restarts"),
    ({"n_target_classes": 0}, "n_target_classes"), ({"targeted": "yes"}, "targeted"),
    ({"alpha_max": 1.5}, "alpha_max"), ({"eta": 0.9}, "eta"), ({"beta": 0.0}, "beta"),
    ({"beta": 1.1}, "beta"), ({"eps": -1.0}, "eps"),
])
def test_fab_bad_parameters(params, match):
    model, x, y = _affine_problem(n=4)
    with pytest.raises(ValueError, match=match):
        FAB(**params).perturb(model, x, y)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no cuda device")
def test_fab_on_cuda_matches_cpu():
    model, x, y = _affine_problem(n=16, seed=10)
    attack = FAB(eps=0.1, n_iter=10, targeted=True, n_target_classes=2,
                 n_restarts=2, random_state=0)
    x_adv, info = attack.perturb(model.cuda(), x.cuda(), y.cuda(), return_info=True)
    assert x_adv.is_cuda and info["fooled"].is_cuda
    assert float(flat_norm(x_adv - x.cuda(), "linf").max()) <= 0.1 + 1e-6
    # the first run of each target is deterministic: same points fooled as on CPU
    first = attack.set_params(n_restarts=1)
    on_gpu = first.perturb(model.cuda(), x.cuda(), y.cuda(), return_info=True)[1]
    on_cpu = first.perturb(model.cpu(), x, y, return_info=True)[1]
    assert torch.equal(on_gpu["fooled"].cpu(), on_cpu["fooled"])
