"""Tests of the strong attacks: APGD, APGD-T, Square, logit-scaled PGD, AutoAttack."""

import copy
import warnings

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.datasets import load_digits
from sklearn.linear_model import RidgeClassifier

from sklearn_robust.attacks import (
    APGD,
    APGDT,
    FGSM,
    PGD,
    AutoAttack,
    LogitScaledPGD,
    Square,
    apgd_checkpoints,
    cascade,
)
from sklearn_robust.attacks._apgd import apgd_run, targeted_dlr_loss
from sklearn_robust.attacks._projections import flat_norm
from sklearn_robust.attacks._square import _eta, _p_selection
from sklearn_robust.exceptions import GradientMaskingWarning, NotLogitsWarning


# ---------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def digits_mlp():
    """A small MLP trained with plain torch on digits / 16, and 200 test points."""
    X, y = load_digits(return_X_y=True)
    X = torch.tensor(X / 16, dtype=torch.float32)
    y = torch.tensor(y)
    perm = torch.randperm(len(X), generator=torch.Generator().manual_seed(0))
    X, y = X[perm], y[perm]
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(64, 32), torch.nn.ReLU(),
                                torch.nn.Linear(32, 10))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(200):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(X[:1400]), y[:1400]).backward()
        opt.step()
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    with torch.no_grad():
        assert (model(X[1400:]).argmax(1) == y[1400:]).float().mean() > 0.9
    return model, X[1400:1600], y[1400:1600], (X[:1400], y[:1400])


def _n_fooled(model, x_adv, y):
    with torch.no_grad():
        out = model(x_adv)
    out = out if isinstance(out, torch.Tensor) else torch.as_tensor(np.asarray(out))
    return int((out.argmax(1) != y).sum())


# ------------------------------------------------------------------- APGD
def _checkpoints_as_the_reference_loop(n_iter):
    """Replays the authors' loop: a counter of steps since the last check, reset
    when it reaches k, after which k shrinks by size_decr down to n_iter_min."""
    k = max(int(0.22 * n_iter), 1)
    n_iter_min, size_decr = max(int(0.06 * n_iter), 1), max(int(0.03 * n_iter), 1)
    checks, counter = [], 0
    for i in range(n_iter):
        counter += 1
        if counter == k:
            checks.append(i + 1)      # after i + 1 steps
            k = max(k - size_decr, n_iter_min)
            counter = 0
    return checks


@pytest.mark.parametrize("n_iter", [100, 10, 20, 25, 37, 50, 250, 1000])
def test_apgd_checkpoints_follow_the_reference_code(n_iter):
    assert apgd_checkpoints(n_iter) == _checkpoints_as_the_reference_loop(n_iter)


def test_apgd_checkpoints_differ_from_the_ceil_formula_where_the_reference_does():
    # the fast preset's 50 iterations: the reference's integer intervals
    assert apgd_checkpoints(50) == [11, 21, 30, 38, 45]


def test_apgd_checkpoints_for_100_iterations():
    assert apgd_checkpoints(100) == [22, 41, 57, 70, 80, 87, 93, 99]


def _ce(logits, y, _target=None):
    return torch.nn.functional.cross_entropy(logits, y, reduction="none")


class _Plateau(torch.nn.Module):
    """Constant logits: the loss never changes, so every checkpoint halves the step."""

    def forward(self, x):
        out = torch.zeros(len(x), 3, dtype=x.dtype) + 0 * x.sum(dim=1, keepdim=True)
        out[:, 0] = 2.0
        return out


def test_apgd_halves_step_at_every_checkpoint_on_a_plateau():
    x = torch.rand(5, 4) * 0.5 + 0.25
    y = torch.zeros(5, dtype=torch.long)
    trace = []
    apgd_run(_Plateau(), x, y, loss_fn=_ce, eps=0.1, norm="linf", n_iter=100,
             clip_min=0.0, clip_max=1.0, generator=torch.Generator().manual_seed(0),
             trace=trace)
    checkpoints = apgd_checkpoints(100)
    for k, (_, step) in enumerate(trace, start=1):
        # the step used for update k was halved at every checkpoint before k
        n_halved = sum(c < k for c in checkpoints)
        assert torch.allclose(step, torch.full((5,), 0.2 / 2 ** n_halved))
    _, info = APGD(eps=0.1, random_state=0).perturb(_Plateau(), x, y, return_info=True)
    assert torch.allclose(info["step_size"], torch.full((5,), 0.2 / 2 ** 8))
    assert not info["fooled"].any()


def _apgd_reference_replay(model, x, y, eps, n_iter):
    """The authors' APGD-CE loop (fra31/auto-attack, L-inf, no random start),
    replayed step by step: counter-based checkpoints, the oscillation count over
    the last k steps (<= 0.75 k halves), condition (b) off at the first check,
    restarts from the best point that keep the previous iterate for the momentum.
    Returns the iterate after every step. The first pair compares with the
    starting loss, as the paper (the authors' code compares with an unset 0)."""
    def loss_grad(v):
        v = v.clone().requires_grad_(True)
        loss = torch.nn.functional.cross_entropy(model(v), y, reduction="none")
        return loss.detach(), torch.autograd.grad(loss.sum(), v)[0]

    def proj(v):
        return torch.min(torch.max(v, x - eps), x + eps).clamp(0, 1)

    n = len(x)
    x_adv, (loss0, grad) = x.clone(), loss_grad(x)
    x_best, grad_best, loss_best = x_adv.clone(), grad.clone(), loss0.clone()
    step = torch.full((n, 1), 2 * eps, dtype=x.dtype)
    x_old = x_adv.clone()
    k = max(int(0.22 * n_iter), 1)
    k_min, decr = max(int(0.06 * n_iter), 1), max(int(0.03 * n_iter), 1)
    losses, counter = [loss0], 0
    best_last, reduced_last = loss_best.clone(), torch.ones(n, dtype=torch.bool)
    trace = []
    for i in range(n_iter):
        momentum, x_old = x_adv - x_old, x_adv.clone()
        a = 0.75 if i > 0 else 1.0
        z = proj(x_adv + step * grad.sign())
        x_adv = proj(x_adv + (z - x_adv) * a + momentum * (1 - a))
        trace.append(x_adv.clone())
        loss, grad = loss_grad(x_adv)
        losses.append(loss)
        better = loss > loss_best
        x_best[better], grad_best[better] = x_adv[better], grad[better]
        loss_best = torch.where(better, loss, loss_best)
        counter += 1
        if counter == k:
            ups = sum((losses[-1 - c] > losses[-2 - c]).long() for c in range(k))
            halve = (ups <= k * 0.75) | (~reduced_last & (best_last >= loss_best))
            reduced_last, best_last = halve, loss_best.clone()
            step[halve] /= 2
            x_adv[halve], grad[halve] = x_best[halve], grad_best[halve]
            k, counter = max(k - decr, k_min), 0
    return trace


@pytest.mark.parametrize("n_iter", [100, 50])
def test_apgd_iterates_match_a_replay_of_the_reference_loop(n_iter):
    # seed and radius chosen so that restarts happen away from the last iterate,
    # where keeping or resetting the momentum changes the path
    torch.manual_seed(4)
    model = torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.Tanh(),
                                torch.nn.Linear(16, 16), torch.nn.Tanh(),
                                torch.nn.Linear(16, 3)).double()
    with torch.no_grad():  # a wide margin: no sample is fooled (none leaves the batch)
        model[4].bias[0] += 4.0
    x = torch.rand(8, 6, dtype=torch.float64) * 0.4 + 0.3
    y = model(x).argmax(1).detach()
    assert bool((y == 0).all())
    trace = []
    apgd_run(model, x, y, loss_fn=_ce, eps=0.3, norm="linf", n_iter=n_iter,
             clip_min=0.0, clip_max=1.0, generator=torch.Generator(),
             random_start=False, trace=trace)
    expected = _apgd_reference_replay(model, x, y, 0.3, n_iter)
    assert len(trace) == n_iter
    for k, (got, want) in enumerate(zip(trace, expected)):
        assert torch.allclose(got[0], want, atol=1e-10), f"iterate {k + 1} differs"


def test_apgd_first_step_without_then_with_momentum():
    torch.manual_seed(0)
    model = torch.nn.Linear(6, 3).double()
    with torch.no_grad():  # a wide margin: no sample is fooled (and leaves the batch)
        model.bias[0] += 10.0
    x = torch.rand(4, 6, dtype=torch.float64) * 0.4 + 0.3
    y = model(x).argmax(1).detach()
    assert bool((y == 0).all())
    eps = 0.2

    def grad_at(v):
        v = v.clone().requires_grad_(True)
        loss = torch.nn.functional.cross_entropy(model(v), y, reduction="sum")
        return torch.autograd.grad(loss, v)[0]

    def proj(v):
        return torch.min(torch.max(v, x - eps), x + eps).clamp(0, 1)

    trace = []
    apgd_run(model, x, y, loss_fn=_ce, eps=eps, norm="linf", n_iter=100, clip_min=0.0,
             clip_max=1.0, generator=torch.Generator(), random_start=False, trace=trace)
    x1 = proj(x + 2 * eps * grad_at(x).sign())
    assert torch.allclose(trace[0][0], x1)
    z2 = proj(x1 + 2 * eps * grad_at(x1).sign())
    x2 = proj(x1 + 0.75 * (z2 - x1) + 0.25 * (x1 - x))
    assert torch.allclose(trace[1][0], x2)
    assert not bool((model(trace[1][0]).argmax(1) != y).any())


def test_apgd_returns_a_misclassifying_iterate_even_if_the_loss_prefers_another():
    # the loss (-CE) pulls the iterate back to the correct side; points whose random
    # start was misclassified must still be returned misclassified
    class Threshold(torch.nn.Module):
        def forward(self, x):
            z = (x[:, :1] - 0.5) * 10
            return torch.cat([z, -z], dim=1)

    x = torch.full((200, 1), 0.52)
    y = torch.zeros(200, dtype=torch.long)

    def minus_ce(logits, t):
        return -torch.nn.functional.cross_entropy(logits, t, reduction="none")

    x_adv, info = APGD(eps=0.1, n_iter=20, loss=minus_ce, random_state=0).perturb(
        Threshold(), x, y, return_info=True)
    wrong = Threshold()(x_adv).argmax(1) != y
    assert torch.equal(wrong, info["fooled"])
    assert 0.2 < wrong.float().mean() < 0.6  # about P(start < 0.5) = 0.1 / 0.2
    assert bool((x_adv[~wrong] > 0.6).all())  # the others climbed to the best loss


def test_apgd_at_least_as_strong_as_pgd_same_budget(digits_mlp):
    model, x, y, _ = digits_mlp
    for eps, n_iter in [(0.05, 10), (0.08, 20)]:
        pgd = PGD(eps=eps, n_steps=n_iter, random_state=0).perturb(model, x, y)
        apgd, info = APGD(eps=eps, n_iter=n_iter, random_state=0).perturb(
            model, x, y, return_info=True)
        assert _n_fooled(model, apgd, y) >= _n_fooled(model, pgd, y)
        assert _n_fooled(model, apgd, y) == int(info["fooled"].sum())
        assert float(flat_norm(apgd - x, "linf").max()) <= eps + 1e-6
    pgd = PGD(eps=1.0, norm="l2", n_steps=10, random_state=0).perturb(model, x, y)
    apgd = APGD(eps=1.0, norm="l2", n_iter=10, random_state=0).perturb(model, x, y)
    assert _n_fooled(model, apgd, y) >= _n_fooled(model, pgd, y)
    assert float(flat_norm(apgd - x, "l2").max()) <= 1.0 + 1e-5


def test_apgd_restarts_only_help(digits_mlp):
    model, x, y, _ = digits_mlp
    one = APGD(eps=0.05, n_iter=5, random_state=0).perturb(model, x, y)
    three = APGD(eps=0.05, n_iter=5, n_restarts=3, random_state=0).perturb(model, x, y)
    assert _n_fooled(model, three, y) >= _n_fooled(model, one, y)


def test_targeted_dlr_loss_hand_values():
    logits = torch.tensor([[4.0, 3.0, 2.0, 1.0, 0.0]])
    y, t = torch.tensor([0]), torch.tensor([2])
    # -(z_y - z_t) / (z_pi1 - (z_pi3 + z_pi4) / 2) = -(4 - 2) / (4 - 1.5)
    assert targeted_dlr_loss(logits, y, t).item() == pytest.approx(-0.8)
    # scale invariant, shift invariant
    assert targeted_dlr_loss(3 * logits + 1, y, t).item() == pytest.approx(-0.8)


def test_apgdt_on_ten_classes(digits_mlp):
    model, x, y, _ = digits_mlp
    with torch.no_grad():
        clean = model(x)
    correct = clean.argmax(1) == y
    second = clean.scatter(1, y[:, None], float("-inf")).argmax(1)
    # one target: the most likely wrong class; fooled points mostly land there
    x_adv, info = APGDT(eps=0.08, n_iter=20, n_target_classes=1,
                        random_state=0).perturb(model, x, y, return_info=True)
    with torch.no_grad():
        pred = model(x_adv).argmax(1)
    newly = correct & (pred != y)
    assert newly.sum() >= 20
    assert (pred[newly] == second[newly]).float().mean() >= 0.8
    assert torch.equal(pred != y, info["fooled"])
    # more targets never hurt, and beat untargeted PGD with the same budget per target
    x_adv3 = APGDT(eps=0.08, n_iter=20, n_target_classes=3,
                   random_state=0).perturb(model, x, y)
    pgd = PGD(eps=0.08, n_steps=20, random_state=0).perturb(model, x, y)
    assert _n_fooled(model, x_adv3, y) >= _n_fooled(model, x_adv, y)
    assert _n_fooled(model, x_adv3, y) >= _n_fooled(model, pgd, y)


@pytest.mark.parametrize("params, match", [
    ({"n_iter": 0}, "n_iter"), ({"rho": 1.5}, "rho"), ({"loss": "kl"}, "loss"),
    ({"loss": "hinge"}, "loss"), ({"random_start": "normal"}, "random_start"),
    ({"eot_iter": 0}, "eot_iter"), ({"n_restarts": 0}, "n_restarts"),
])
def test_apgd_bad_parameters(params, match):
    with pytest.raises(ValueError, match=match):
        APGD(**params).perturb(torch.nn.Linear(3, 3), torch.rand(2, 3), [0, 1])


def test_apgdt_bad_parameters_and_few_classes():
    with pytest.raises(ValueError, match="n_target_classes"):
        APGDT(n_target_classes=0).perturb(torch.nn.Linear(3, 4), torch.rand(2, 3),
                                          [0, 1])
    # 2 classes: falls back to the logit margin and still attacks
    model = torch.nn.Linear(3, 2)
    x = torch.rand(16, 3)
    y = torch.randint(0, 2, (16,))
    x_adv = APGDT(eps=0.5, n_iter=5, random_state=0).perturb(model, x, y)
    assert float((x_adv - x).abs().max()) <= 0.5 + 1e-6


# ----------------------------------------------------------------- Square
def test_square_schedule():
    assert _p_selection(0.8, 0, 10000, False) == 0.8
    assert _p_selection(0.8, 11, 10000, False) == 0.4
    assert _p_selection(0.8, 1000, 10000, False) == pytest.approx(0.8 / 16)
    assert _p_selection(0.8, 9000, 10000, False) == pytest.approx(0.8 / 512)
    # rescaled to 1000 queries: iteration 100 is iteration 1000 of 10000
    assert _p_selection(0.8, 100, 1000, True) == pytest.approx(0.8 / 16)


class _NumpyLinear:
    """A non-differentiable model: scores computed by scikit-learn in NumPy."""

    def __init__(self, clf, proba=False):
        self.clf = clf
        self.proba = proba

    def __call__(self, x):
        scores = self.clf.decision_function(x.detach().cpu().numpy().astype(np.float64))
        if not self.proba:
            return scores
        e = np.exp(10 * (scores - scores.max(axis=1, keepdims=True)))
        return e / e.sum(axis=1, keepdims=True)


@pytest.fixture(scope="module")
def numpy_ridge(digits_mlp):
    _, x, y, (X_train, y_train) = digits_mlp
    clf = RidgeClassifier(alpha=1.0).fit(X_train.numpy(), y_train.numpy())
    return clf, x, y


def test_square_fools_a_non_differentiable_numpy_model(numpy_ridge):
    clf, x, y = numpy_ridge
    model = _NumpyLinear(clf)
    correct = torch.as_tensor(clf.predict(x.numpy())) == y
    with pytest.raises((RuntimeError, TypeError, AttributeError)):
        PGD(eps=0.1).perturb(model, x, y)  # no gradient to follow
    x_adv, info = Square(eps=0.15, n_queries=300, random_state=0).perturb(
        model, x, y, return_info=True)
    fooled = torch.as_tensor(clf.predict(x_adv.numpy())) != y
    assert fooled[correct].float().mean() >= 0.9
    assert torch.equal(fooled, info["fooled"])
    assert float(flat_norm(x_adv - x, "linf").max()) <= 0.15 + 1e-6
    assert int(info["n_queries"].max()) <= 300
    # L2 on the same model
    x_adv = Square(eps=1.2, norm="l2", n_queries=300,
                   random_state=0).perturb(model, x, y)
    assert float(flat_norm(x_adv - x, "l2").max()) <= 1.2 + 1e-5
    assert _n_fooled(model, x_adv, y) >= 0.9 * len(y)


def test_square_on_probabilities_and_binary_decision_function(numpy_ridge):
    clf, x, y = numpy_ridge
    with pytest.warns(NotLogitsWarning, match="logarithm"):
        x_adv = Square(eps=0.15, n_queries=200, random_state=0).perturb(
            _NumpyLinear(clf, proba=True), x, y)
    assert _n_fooled(_NumpyLinear(clf), x_adv, y) >= 0.8 * len(y)
    # a 1-D binary decision function: class 1 vs the rest
    yb = (y == 1).long()
    clf_b = RidgeClassifier(alpha=1.0).fit(x.numpy(), yb.numpy())
    model_b = _NumpyLinear(clf_b)
    x_adv = Square(eps=0.15, n_queries=200, random_state=0).perturb(model_b, x, yb)
    pred = torch.as_tensor(clf_b.predict(x_adv.numpy()))
    assert (pred != yb).sum() > (torch.as_tensor(clf_b.predict(x.numpy())) != yb).sum()


class _Quantized(torch.nn.Module):
    """Rounds inputs to 1/16 steps: exact on digits, but its gradient is zero."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x):
        return self.model(torch.round(x * 16) / 16)


def test_square_breaks_zero_gradient_model_that_pgd_cannot(digits_mlp):
    model, x, y, _ = digits_mlp
    masked = _Quantized(model)
    with torch.no_grad():
        assert torch.equal(masked(x).argmax(1), model(x).argmax(1))
    clean = _n_fooled(masked, x, y)
    pgd = PGD(eps=0.1, n_steps=20, random_start=False).perturb(masked, x, y)
    apgd = APGD(eps=0.1, n_iter=20, random_start=False).perturb(masked, x, y)
    square = Square(eps=0.1, n_queries=300, random_state=0).perturb(masked, x, y)
    assert _n_fooled(masked, pgd, y) == clean  # zero gradient: PGD never moves
    assert _n_fooled(masked, apgd, y) == clean
    assert _n_fooled(masked, square, y) >= clean + 0.5 * (len(y) - clean)
    # in the ensemble, Square's late successes are reported as gradient masking
    attack = AutoAttack(eps=0.1, attacks=[APGD(n_iter=10), Square(n_queries=100)],
                        random_state=0)
    with pytest.warns(GradientMaskingWarning, match="Square"):
        _, info = attack.perturb(masked, x, y, return_info=True)
    assert int((info["fooled_by"] == 1).sum()) > int((info["fooled_by"] == 0).sum())


def test_square_bad_parameters():
    for params, match in [({"n_queries": 0}, "n_queries"), ({"p_init": 1.5}, "p_init"),
                          ({"n_restarts": 0}, "n_restarts"),
                          ({"rescale_schedule": "yes"}, "rescale_schedule")]:
        with pytest.raises(ValueError, match=match):
            Square(**params).perturb(torch.nn.Linear(3, 3), torch.rand(2, 3), [0, 1])


def test_square_images_and_restarts():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU(),
                                torch.nn.Flatten(), torch.nn.Linear(4 * 6 * 6, 5))
    x = torch.rand(12, 3, 8, 8)
    y = model(x).argmax(1).detach()
    for norm, eps in [("linf", 0.05), ("l2", 0.5)]:
        x_adv, info = Square(eps=eps, norm=norm, n_queries=40, n_restarts=2,
                             random_state=0).perturb(model, x, y, return_info=True)
        assert x_adv.shape == x.shape
        assert float(flat_norm(x_adv - x, norm).max()) <= eps * (1 + 1e-5)
        assert int(info["n_queries"].max()) <= 80
        assert torch.equal(model(x_adv).argmax(1) != y, info["fooled"])


def test_square_l2_pattern_has_halves_of_equal_norm_as_the_reference():
    # fra31/auto-attack's eta(s): each half of nested rings normalised, then the
    # whole; for s = 3 the halves are 1 and 2 rows of rings weighted 1 + 1/4 at
    # the centre and 1/4 around it
    top = torch.tensor([[1.0, 5.0, 1.0]]) / 27 ** 0.5
    bottom = torch.tensor([[1.0, 1.0, 1.0], [1.0, 5.0, 1.0]]) / 30 ** 0.5
    want = torch.cat([top, -bottom]) / 2 ** 0.5
    assert torch.allclose(_eta(3, 3, torch.float32, "cpu"), want, atol=1e-6)
    for shape in [(5, 5), (7, 7), (4, 4), (1, 7)]:
        eta = _eta(*shape, torch.float64, "cpu")
        assert float(eta.norm()) == pytest.approx(1.0)
        positive, negative = eta.clamp_min(0), eta.clamp_max(0)
        assert float(positive.norm()) == pytest.approx(float(negative.norm()))


class _ConstantScores:
    """Class 0 always wins by the same margin: Square accepts no candidate, so every
    query after the start is a proposal made from the starting point. Records the
    queries (the first is the attack's input check, the second the start)."""

    def __init__(self):
        self.queries = []

    def __call__(self, x):
        self.queries.append(x.detach().clone())
        out = torch.zeros(len(x), 3, dtype=x.dtype)
        out[:, 0] = 5.0
        return out


@pytest.mark.parametrize("n_channels", [3, 1])
def test_square_l2_proposal_leaves_the_rest_of_the_perturbation_alone(n_channels):
    # fra31/auto-attack (square.py, L2 branch) gives each channel's new window the
    # mass of that channel's two windows plus a share of the unused budget, so a
    # proposal changes the two windows only and keeps the norm at eps; a budget
    # summed over the channels overshot, and the rescaling to eps then shrank the
    # whole perturbation (by 0.94 on 3 x 16 x 16 inputs)
    g = torch.Generator().manual_seed(0)
    x = torch.rand(4, n_channels, 16, 16, generator=g)
    y = torch.zeros(4, dtype=torch.long)
    scores = _ConstantScores()
    eps = 2.0
    Square(eps=eps, norm="l2", n_queries=30, p_init=0.05, clip_min=None,
           clip_max=None, random_state=0).perturb(scores, x, y)
    start, proposals = scores.queries[1] - x, scores.queries[2:]
    assert len(proposals) == 29
    # p_init=0.05 on 16 x 16: windows of at most 5 x 5
    most_changed = 2 * 5 * 5 * n_channels
    for query in proposals:
        delta = query - x
        assert torch.allclose(flat_norm(delta, "l2"), torch.full((4,), eps),
                              rtol=1e-5)
        changed = ((delta - start).abs() > 1e-6).reshape(4, -1).sum(dim=1)
        assert int(changed.max()) <= most_changed


# ------------------------------------------------------- logit-scaled PGD
class _SmallLogits(torch.nn.Module):
    """GAIRAT-like low-magnitude logits on a 2-D toy problem with 10 classes.

    Class 0 is true; class 1 wins when x_0 > 0.55; classes 2..9 can never win but
    pull the (nearly uniform) softmax's cross-entropy gradient the other way.
    """

    def forward(self, x):
        x0 = x[:, :1]
        raw = torch.cat([torch.zeros_like(x0), 10 * (x0 - 0.55),
                         (-20 * x0 - 100).expand(-1, 8)], dim=1)
        return 0.01 * raw


def test_logit_scaled_pgd_beats_pgd_on_low_magnitude_logits():
    x = torch.rand(50, 2, generator=torch.Generator().manual_seed(0)) * 0.05 + 0.45
    y = torch.zeros(50, dtype=torch.long)
    model = _SmallLogits()
    assert _n_fooled(model, x, y) == 0
    pgd = PGD(eps=0.1, n_steps=10, random_state=0).perturb(model, x, y)
    scaled = LogitScaledPGD(eps=0.1, n_steps=10, random_state=0).perturb(model, x, y)
    assert _n_fooled(model, pgd, y) == 0
    assert _n_fooled(model, scaled, y) == 50
    # the scale-invariant DLR loss of AutoAttack is not fooled either
    _, info = AutoAttack(eps=0.1, attacks=[APGDT(n_iter=10, n_target_classes=1)],
                         random_state=0).perturb(model, x, y, return_info=True)
    assert not info["robust"].any()


def test_logit_scaled_pgd_unsaturates_huge_logits(digits_mlp):
    model, x, y, _ = digits_mlp
    saturated = torch.nn.Sequential(model, _Scale(1e3))  # CE gradients underflow to 0
    clean = _n_fooled(saturated, x, y)
    pgd = PGD(eps=0.05, n_steps=10, random_start=False).perturb(saturated, x, y)
    scaled = LogitScaledPGD(eps=0.05, n_steps=10, random_start=False,
                            logit_scale=1e-3).perturb(saturated, x, y)
    unmasked = PGD(eps=0.05, n_steps=10, random_start=False).perturb(model, x, y)
    assert _n_fooled(saturated, pgd, y) < _n_fooled(saturated, scaled, y)
    assert _n_fooled(saturated, scaled, y) == _n_fooled(model, unmasked, y) > clean


class _Scale(torch.nn.Module):
    def __init__(self, factor):
        super().__init__()
        self.factor = factor

    def forward(self, z):
        return z * self.factor


def test_logit_scaled_pgd_params():
    attack = LogitScaledPGD()
    assert attack.logit_scale == 10.0
    # the attack is PGD on the model's logits times logit_scale
    model, x, y = torch.nn.Linear(3, 3), torch.rand(6, 3), torch.tensor([0, 1, 2] * 2)
    scaled = torch.nn.Sequential(model, _Scale(10.0))
    assert torch.equal(attack.set_params(random_state=0).perturb(model, x, y),
                       PGD(random_state=0).perturb(scaled, x, y))
    assert "logit_scale" in attack.get_params()
    with pytest.raises(ValueError, match="logit_scale"):
        LogitScaledPGD(logit_scale=0).perturb(torch.nn.Linear(3, 3), torch.rand(2, 3),
                                              [0, 1])


# ------------------------------------------------------------- AutoAttack
def test_cascade_robust_mask_is_and_over_members():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.Tanh(),
                                torch.nn.Linear(16, 4)).double()
    x = torch.rand(300, 8, dtype=torch.float64)
    y = model(x).argmax(1).detach()
    y[:20] = (y[:20] + 1) % 4  # some clean errors
    # deterministic members: per-sample results do not depend on the subset
    members = [FGSM(eps=0.05), PGD(eps=0.05, n_steps=5, random_start=False, loss="cw")]
    x_adv, robust, info = cascade(members, model, x, y, return_info=True)
    alone = [(model(m.perturb(model, x, y)).argmax(1) == y) for m in members]
    clean = model(x).argmax(1) == y
    assert torch.equal(robust, clean & alone[0] & alone[1])
    assert 0 < int(robust.sum()) < int(clean.sum())
    assert torch.equal(info["clean_correct"], clean)
    # the returned points fool the model exactly where the point is not robust
    assert torch.equal(model(x_adv).argmax(1) == y, robust)
    assert torch.equal(x_adv[~clean], x[~clean])
    assert set(info["fooled_by"][clean & ~robust].tolist()) <= {0, 1}
    assert bool((info["fooled_by"][robust | ~clean] == -1).all())
    assert torch.equal(info["fooled_by"] == 0, clean & ~alone[0])
    # numpy in, numpy out
    x_np, robust_np = cascade(members, model.float(), x.float().numpy(), y.numpy())
    assert isinstance(x_np, np.ndarray) and robust_np.dtype == bool


def test_autoattack_fast_on_digits(digits_mlp):
    model, x, y, _ = digits_mlp
    attack = AutoAttack(eps=0.05, attacks=[APGD(n_iter=10), APGDT(n_iter=10,
                        n_target_classes=3), Square(n_queries=100)], random_state=0)
    x_adv, info = attack.perturb(model, x, y, return_info=True)
    with torch.no_grad():
        pred = model(x_adv).argmax(1)
    assert torch.equal(pred == y, info["robust"])
    assert float(flat_norm(x_adv - x, "linf").max()) <= 0.05 + 1e-6
    pgd = PGD(eps=0.05, n_steps=10, random_state=0).perturb(model, x, y)
    assert _n_fooled(model, x_adv, y) >= _n_fooled(model, pgd, y)
    assert int((info["fooled_by"] == 0).sum()) > 0
    never_fooled = info["fooled_by"] == -1
    assert torch.equal(info["robust"], info["clean_correct"] & never_fooled)


def _describe(members):
    """(name, loss or targeted, targets, restarts, iterations or queries) per member."""
    out = []
    for m in members:
        name = type(m).__name__
        if name == "APGD":
            out.append((name, m.loss, None, m.n_restarts, m.n_iter))
        elif name == "APGDT":
            out.append((name, "dlr-t", m.n_target_classes, m.n_restarts, m.n_iter))
        elif name == "FAB":
            out.append((name, m.targeted, m.n_target_classes if m.targeted else None,
                        m.n_restarts, m.n_iter))
        else:
            out.append((name, None, None, m.n_restarts, m.n_queries))
    return out


def test_autoattack_versions_are_the_authors():
    # fra31/auto-attack, AutoAttack.set_version, L-inf and L2
    standard = AutoAttack(eps=0.03, norm="l2", random_state=0)._members()
    assert _describe(standard) == [("APGD", "ce", None, 1, 100),
                                   ("APGDT", "dlr-t", 9, 1, 100),
                                   ("FAB", True, 9, 1, 100),
                                   ("Square", None, None, 1, 5000)]
    assert standard[3].p_init == 0.8
    assert all(m.eps == 0.03 and m.norm == "l2" for m in standard)
    assert not any(getattr(m, "use_largereps", False) for m in standard)
    # plus: the shared FAB object runs "fab" with 5 restarts, and "fab-t" with
    # n_restarts set to 1 by run_standard_evaluation
    assert _describe(AutoAttack(version="plus")._members()) == [
        ("APGD", "ce", None, 5, 100), ("APGD", "dlr", None, 5, 100),
        ("FAB", False, None, 5, 100), ("Square", None, None, 1, 5000),
        ("APGDT", "dlr-t", 9, 1, 100), ("FAB", True, 9, 1, 100)]
    rand = AutoAttack(version="rand")._members()
    assert [(m.loss, m.eot_iter, m.n_restarts) for m in rand] == [("ce", 20, 1),
                                                                   ("dlr", 20, 1)]


def test_autoattack_versions_and_members():
    custom = AutoAttack(attacks=["apgd-dlr", Square(n_queries=7), "fab-t"],
                        eps=0.2)._members()
    assert custom[0].loss == "dlr" and custom[1].n_queries == 7 and custom[1].eps == 0.2
    assert custom[2].targeted and custom[2].eps == 0.2
    model, x, y = torch.nn.Linear(3, 3), torch.rand(2, 3), [0, 1]
    for params, error in [({"version": "best"}, ValueError),
                          ({"attacks": []}, ValueError),
                          ({"attacks": ["fab-x"]}, ValueError),
                          ({"attacks": [object()]}, TypeError)]:
        with pytest.raises(error):
            AutoAttack(**params).perturb(model, x, y)


def test_autoattack_binary_problem_uses_margin_for_dlr():
    torch.manual_seed(0)
    model = torch.nn.Linear(5, 2)
    x = torch.rand(30, 5)
    y = model(x).argmax(1).detach()
    attack = AutoAttack(eps=0.3, attacks=["apgd-dlr", APGDT(n_iter=5)], random_state=0)
    x_adv, info = attack.perturb(model, x, y, return_info=True)
    assert torch.equal(model(x_adv).argmax(1) == y, info["robust"])


def test_apgd_dropping_fooled_samples_leaves_the_others_unchanged(digits_mlp):
    # without random starts each sample's iterates depend on itself only, whether
    # its batch-mates are fooled (and leave the batch early) or not
    model, x, y, _ = digits_mlp
    model = copy.deepcopy(model).double()  # the fixture is shared
    x = x.double()
    attack = APGD(eps=0.05, n_iter=30, random_start=False)
    x_all, info = attack.perturb(model, x, y, return_info=True)
    kept = ~info["fooled"]
    assert 0 < int(kept.sum()) < len(y) - 20
    x_kept, info_kept = attack.perturb(model, x[kept], y[kept], return_info=True)
    assert not info_kept["fooled"].any()
    assert torch.allclose(x_all[kept], x_kept, atol=1e-10)


class _ModuleEstimator:
    """A fitted-classifier stand-in whose torch view is ``module``."""

    def __init__(self, module, n_classes):
        self.module = module
        self.classes_ = np.arange(n_classes)

    def torch_view(self):
        return self.module


def test_robust_correct_runs_autoattack_members_over_the_data_set(digits_mlp):
    from sklearn_robust.metrics import robust_correct

    model, x, y, _ = digits_mlp
    estimator = _ModuleEstimator(model, 10)
    attack = AutoAttack(attacks=[APGD(n_iter=10), APGDT(n_iter=10, n_target_classes=3),
                                 Square(n_queries=100)], random_state=0)
    X, Y = x.numpy(), y.numpy()
    # one batch: the members see exactly the points the ensemble's cascade gives them
    whole = robust_correct(estimator, X, Y, eps=0.05, attack=attack, batch_size=len(X))
    _, info = clone(attack).set_params(eps=0.05).perturb(model, x, y, return_info=True)
    np.testing.assert_array_equal(whole, info["robust"].numpy())
    # small batches, refilled after each member: reproducible, and robust points
    # are clean-correct ones
    small = robust_correct(estimator, X, Y, eps=0.05, attack=attack, batch_size=16)
    np.testing.assert_array_equal(
        small, robust_correct(estimator, X, Y, eps=0.05, attack=attack, batch_size=16))
    clean = (model(x).argmax(1) == y).numpy()
    assert np.all(small <= clean)
    assert abs(int(small.sum()) - int(whole.sum())) <= 5
    # a masked model: the ensemble's Square member fools what APGD could not
    masked = _ModuleEstimator(_Quantized(model), 10)
    with pytest.warns(GradientMaskingWarning, match="Square"):
        robust_correct(masked, X, Y, eps=0.1, attack=AutoAttack(
            attacks=[APGD(n_iter=10), Square(n_queries=100)]), batch_size=64)


def test_cascade_runs_an_ensemble_as_its_members(digits_mlp):
    model, x, y, _ = digits_mlp
    attack = AutoAttack(eps=0.05, attacks=[APGD(n_iter=10), Square(n_queries=50)],
                        random_state=0)
    members = attack.members(model, x)
    assert [type(m).__name__ for m in members] == ["APGD", "Square"]
    assert all(m.eps == 0.05 and m.random_state is not None for m in members)
    _, info = attack.perturb(model, x, y, return_info=True)
    # the members over the whole batch are the ensemble's own cascade
    _, robust = cascade([attack], model, x, y)
    assert torch.equal(robust, info["robust"])
    # fooled_by indexes the given list, not the members
    weak = FGSM(eps=0.01)
    _, robust, cinfo = cascade([weak, attack], model, x, y, return_info=True)
    assert set(cinfo["fooled_by"].tolist()) <= {-1, 0, 1}
    assert int((cinfo["fooled_by"] == 1).sum()) > 0
    assert torch.equal(robust, cinfo["clean_correct"] & (cinfo["fooled_by"] == -1))
    # an ensemble's own gradient-masking check runs on its members' results
    masked = _Quantized(model)
    with pytest.warns(GradientMaskingWarning, match="Square"):
        cascade([AutoAttack(eps=0.1, attacks=[APGD(n_iter=10), Square(n_queries=100)],
                            random_state=0)], masked, x, y)


def test_apgd_restart_does_not_write_into_the_gradient():
    # a constant model's input gradient is an expanded tensor: torch deprecates
    # writing into it (a UserWarning), which every checkpoint used to do
    x = torch.rand(5, 4) * 0.5 + 0.25
    y = torch.zeros(5, dtype=torch.long)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        APGD(eps=0.1, n_iter=30, random_state=0).perturb(_Plateau(), x, y)


@pytest.mark.parametrize("n_iter", [0, -3, 2.5, True, "10", None])
def test_apgd_checkpoints_rejects_bad_n_iter(n_iter):
    # 0 used to loop forever; negative and fractional counts were accepted
    with pytest.raises(ValueError, match="n_iter must be an integer >= 1"):
        apgd_checkpoints(n_iter)
    assert apgd_checkpoints(np.int64(100)) == apgd_checkpoints(100)
