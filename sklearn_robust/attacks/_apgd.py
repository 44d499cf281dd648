"""Auto-PGD and its targeted variant APGD-T (Croce & Hein, 2020)."""

# SPDX-License-Identifier: BSD-3-Clause

import math
import numbers

import torch

from ..utils._param_validation import POSITIVE_INT, Interval, StrOptions
from ..utils._torch import per_sample
from ._base import BaseAttack
from ._losses import _targeted_dlr_loss as targeted_dlr_loss
from ._losses import get_loss
from ._projections import (
    ascent_step,
    clip_to_box,
    project,
    project_feasible,
    random_init,
    sparse_l1_step,
)

__all__ = ["APGD", "APGDT", "apgd_checkpoints", "apgd_run", "l1_apgd_checkpoints",
           "large_eps_stages", "LARGE_EPS_SCHEDULE"]

_MOMENTUM = 0.75  # alpha of Croce & Hein (2020), Algorithm 1

# l1-APGD (Croce & Hein, 2021), as the authors' code: the initial fraction of the
# coordinates moved by a step, the factor between the sparsity of the best point
# and the next fraction (and the step size's decrease), the sparsity decrease that
# resets the step size, and the smallest step size (as a fraction of eps)
_L1_INITIAL_FRACTION = 0.2
_L1_SHRINK = 1.5
_L1_SPARSER = 0.95
_L1_MIN_STEP = 0.1

#: The radii (in units of eps) and the fractions of the iterations of the stages
#: of l1-APGD's ``use_largereps`` schedule: 3 eps, 2 eps, then eps.
LARGE_EPS_SCHEDULE = ((3.0, 0.3), (2.0, 0.3), (1.0, 0.4))


def apgd_checkpoints(n_iter):
    """Iterations at which APGD checks whether to halve its step size.

    As the authors' code (fra31/auto-attack) computes them: the first check comes
    after ``k_0 = max(int(0.22 N), 1)`` steps, and each later one
    ``k_{j+1} = max(k_j - max(int(0.03 N), 1), max(int(0.06 N), 1))`` steps after
    the previous one, for ``N = n_iter``; the checkpoints are the running sums
    ``k_0 + ... + k_j <= N``. This is the integer form of the paper's
    ``p_0 = 0, p_1 = 0.22, p_{j+1} = p_j + max(p_j - p_{j-1} - 0.03, 0.06)``
    (Croce & Hein, 2020, Section 3.2): for ``N = 100`` both give the same
    iterations, for other ``N`` the rounding of the interval lengths differs from
    ``ceil(p_j N)`` (``N = 50``: ``[11, 21, 30, 38, 45]``, not ``[11, 21, 29, 35,
    40, 44, 47, 50]``). The check at a checkpoint ``w`` happens after ``w`` steps.

    Parameters
    ----------
    n_iter : int
        Number of iterations of the attack.

    Returns
    -------
    checkpoints : list of int
        Increasing iteration counts.

    Examples
    --------
    >>> from sklearn_robust.attacks import apgd_checkpoints
    >>> apgd_checkpoints(100)
    [22, 41, 57, 70, 80, 87, 93, 99]
    >>> apgd_checkpoints(50)
    [11, 21, 30, 38, 45]
    """
    if isinstance(n_iter, bool) or not isinstance(n_iter, numbers.Integral) \
            or n_iter < 1:
        raise ValueError(f"n_iter must be an integer >= 1, got {n_iter!r}.")
    n_iter = int(n_iter)
    # the reference's float expressions, truncated by int() as it does
    k = max(int(0.22 * n_iter), 1)
    k_min = max(int(0.06 * n_iter), 1)
    decrease = max(int(0.03 * n_iter), 1)
    points, total = [], 0
    while total + k <= n_iter:
        total += k
        points.append(total)
        k = max(k - decrease, k_min)
    return points


def l1_apgd_checkpoints(n_iter):
    """Iterations after which l1-APGD adapts its sparsity and step size.

    As the authors' code (fra31/auto-attack, ``autopgd_base.py``) for
    ``norm="L1"``: every ``max(int(0.04 N), 1)`` iterations, ``N = n_iter``.

    Parameters
    ----------
    n_iter : int
        Number of iterations of the attack.

    Returns
    -------
    checkpoints : list of int
        Increasing iteration counts.

    Examples
    --------
    >>> from sklearn_robust.attacks import l1_apgd_checkpoints
    >>> l1_apgd_checkpoints(100)[:3]
    [4, 8, 12]
    >>> l1_apgd_checkpoints(30)[:3]
    [1, 2, 3]
    """
    if isinstance(n_iter, bool) or not isinstance(n_iter, numbers.Integral) \
            or n_iter < 1:
        raise ValueError(f"n_iter must be an integer >= 1, got {n_iter!r}.")
    every = max(int(0.04 * int(n_iter)), 1)
    return list(range(every, int(n_iter) + 1, every))


def large_eps_stages(eps, n_iter):
    """``(radius, iterations)`` of the stages of the ``use_largereps`` schedule.

    The radii are ``3 eps, 2 eps, eps`` and the first two stages take
    ``ceil(0.3 n_iter)`` iterations each, the last one the rest, as the authors'
    ``APGDAttack.perturb`` (every stage has an iteration for ``n_iter = 3`` and
    ``n_iter >= 5``).
    """
    iters = [math.ceil(fraction * n_iter) for _, fraction in LARGE_EPS_SCHEDULE[:-1]]
    iters.append(n_iter - sum(iters))
    return [(factor * eps, k) for (factor, _), k in zip(LARGE_EPS_SCHEDULE, iters)]


def _l0(delta):
    """Per-sample number of nonzero entries, as a float."""
    return (delta != 0).reshape(delta.shape[0], -1).sum(dim=1).to(delta.dtype)


def _take_rows(mask, src, dst):
    """``dst`` with the rows where ``mask`` is True taken from ``src``.

    On CPU the rows are copied into ``dst`` in place (cost proportional to the rows
    copied, far below a dense ``torch.where``); elsewhere a ``torch.where`` avoids
    the host synchronisation of ``nonzero``.
    """
    if dst.device.type == "cpu":
        rows = mask.nonzero().squeeze(1)
        if rows.numel():
            dst.index_copy_(0, rows, src.index_select(0, rows))
        return dst
    return torch.where(per_sample(mask, dst), src, dst)


#: On CPU, fooled samples leave the batch as soon as they are at least this
#: fraction of it (and at every checkpoint, as on other devices).
_DROP_FRACTION = 0.125


def apgd_run(model, x, y, *, loss_fn, eps, norm, n_iter, clip_min, clip_max,
             generator, rho=0.75, random_start=True, eot_iter=1, target=None,
             trace=None, x_init=None, drop_fooled=True):
    """One run of APGD (Croce & Hein, 2020, Algorithm 1) on a batch.

    All bookkeeping is per sample and batched: step sizes, the best-loss iterate,
    the checkpoint conditions and restarts from the best point. Samples for which a
    misclassifying iterate has been found leave the batch (their result is final),
    which saves time on non-robust points: at every checkpoint, and on CPU also as
    soon as they make up an eighth of the batch. The remaining samples' iterates do
    not depend on the others'.

    For ``norm="l1"`` this is l1-APGD (Croce & Hein, 2021): sparse steps on an
    adaptive fraction of the coordinates, the exact projection onto the L1 ball
    and the box, and the authors' sparsity-driven checkpoints (see :class:`APGD`).

    Parameters
    ----------
    loss_fn : callable
        ``loss_fn(logits, y, target) -> per-sample loss`` to maximise.
    target : tensor of shape (n_samples,) or None
        Per-sample extra argument passed to ``loss_fn`` (target classes).
    x_init : tensor shaped like ``x`` or None
        A feasible starting point (instead of the random start or ``x``); for L1
        the first fraction of coordinates moved is then ``||x_init - x||_0 /
        (1.5 d)``, as in the authors' code.
    drop_fooled : bool, default=True
        Let fooled samples leave the batch; ``False`` runs every sample for all
        ``n_iter`` iterations (the early stages of the ``use_largereps``
        schedule, whose radius is larger than the threat model's).
    trace : list or None
        If a list, ``(x_k, step_size_k)`` is appended after every step (for tests
        and diagnostics; ``x_k`` only covers the samples still in the batch).

    Returns
    -------
    result : dict of tensors
        ``"x_best"`` (highest-loss iterate), ``"loss_best"``, ``"x_adv"`` (the
        highest-loss misclassifying iterate found while the sample was in the batch
        where ``"fooled"``, else ``x_best``), ``"fooled"`` and ``"step_size"``
        (final per-sample step size).
    """
    n = x.shape[0]
    device = x.device
    linf, l1 = norm == "linf", norm == "l1"
    n_features = x[0].numel()

    def box(center):
        """The L-inf ball around ``center`` intersected with the clip box."""
        return (clip_to_box(center - eps, clip_min, clip_max),
                clip_to_box(center + eps, clip_min, clip_max))

    def feasible(v, center):  # L2: project onto the ball, then into the box
        return clip_to_box(center + project(v - center, eps, norm), clip_min, clip_max)

    def l1_feasible(v, center):  # the exact projection onto the L1 ball and the box
        return center + project_feasible(center, v - center, eps, "l1", clip_min,
                                         clip_max)

    def loss_and_grad(xa, ys, ts):
        xa = xa.detach().requires_grad_(True)
        if eot_iter == 1:
            logits = model(xa)
            value = loss_fn(logits, ys, ts)
            (grad,) = torch.autograd.grad(value.sum(), xa)
            return logits.detach(), value.detach().to(xa.dtype), grad
        grad = torch.zeros_like(xa)
        loss = torch.zeros(xa.shape[0], dtype=xa.dtype, device=device)
        for _ in range(eot_iter):
            logits = model(xa)
            value = loss_fn(logits, ys, ts)
            (g,) = torch.autograd.grad(value.sum(), xa)
            grad += g
            loss += value.detach().to(loss.dtype)
        return logits.detach(), loss / eot_iter, grad / eot_iter

    # full-size outputs, written when samples leave the batch and at the end
    out_best = x.clone()
    out_adv = x.clone()
    out_loss = torch.empty(n, dtype=x.dtype, device=device)
    out_fooled = torch.zeros(n, dtype=torch.bool, device=device)
    out_step = torch.empty(n, dtype=x.dtype, device=device)

    if x_init is not None:
        x_adv = x_init.clone()
    elif random_start and l1:
        # as the authors' code: Gaussian noise projected onto the ball and the box
        noise = torch.randn(x.shape, generator=generator, device=device,
                            dtype=x.dtype)
        x_adv = l1_feasible(x + noise, x)
    elif random_start:
        x_adv = clip_to_box(x + random_init(x, eps, norm, generator), clip_min,
                            clip_max)
    else:
        x_adv = x.clone()
    x_adv = x_adv.detach()
    logits, loss, grad = loss_and_grad(x_adv, y, target)

    # working state of the samples still in the batch
    idx = torch.arange(n, device=device)
    xc, yc, tc = x, y, target
    lower, upper = box(x) if linf else (None, None)
    x_best, loss_best, grad_best = x_adv.clone(), loss.clone(), grad.clone()
    fooled = logits.argmax(dim=1) != y
    x_found = x_adv.clone()
    loss_found = torch.where(fooled, loss, torch.full_like(loss, float("-inf")))
    # the first step size: 2 eps (L-inf, L2), eps (L1, the authors' alpha = 1)
    step = per_sample(torch.full((n,), (1.0 if l1 else 2.0) * eps, dtype=x.dtype,
                                 device=device), x)
    if l1:
        # the fraction of coordinates moved by a step and the sparsity of the best
        # point at the last checkpoint (d without a given start)
        if x_init is None:
            fraction = torch.full((n,), _L1_INITIAL_FRACTION, dtype=x.dtype,
                                  device=device)
            sparsity_last = torch.full((n,), float(n_features), dtype=x.dtype,
                                       device=device)
        else:
            sparsity_last = _l0(x_adv - x)
            fraction = sparsity_last / n_features / _L1_SHRINK
    else:
        fraction = sparsity_last = torch.zeros(n, dtype=x.dtype, device=device)
    x_prev = x_adv.clone()
    loss_prev = loss.clone()
    n_success = torch.zeros(n, dtype=torch.long, device=device)
    loss_best_last = loss_best.clone()
    # as the authors' code: condition (b) cannot fire at the first checkpoint
    reduced_last = torch.ones(n, dtype=torch.bool, device=device)
    checkpoints = set(l1_apgd_checkpoints(n_iter) if l1 else apgd_checkpoints(n_iter))
    eager_drop = device.type == "cpu"
    last_check = 0

    def write_back(sel=None):
        """Write the state of the samples ``sel`` (default: all) to the outputs."""
        if sel is None:
            rows, xb, lb, fo, xf, st = idx, x_best, loss_best, fooled, x_found, step
        else:
            rows, xb, lb, fo, xf, st = (idx[sel], x_best[sel], loss_best[sel],
                                        fooled[sel], x_found[sel], step[sel])
        out_best[rows] = xb
        out_loss[rows] = lb
        out_fooled[rows] = fo
        out_adv[rows] = torch.where(per_sample(fo, xb), xf, xb)
        out_step[rows] = st.reshape(-1)

    for k in range(n_iter):
        with torch.no_grad():
            if linf:
                z = torch.addcmul(x_adv, step, grad.sign()).clamp_(lower, upper)
                if k > 0:  # the first step has no momentum
                    # x_k + a (z - x_k) + (1 - a) (x_k - x_{k-1}), a = 0.75
                    z = (z.mul_(_MOMENTUM).add_(x_adv, alpha=2 * (1 - _MOMENTUM))
                         .add_(x_prev, alpha=_MOMENTUM - 1).clamp_(lower, upper))
            elif l1:
                # the coordinates with |grad| at least its value at the ascending
                # rank int((1 - fraction) d), as the authors' code; no momentum
                rank = ((1 - fraction) * n_features).long().clamp(0, n_features - 1)
                z = l1_feasible(x_adv + sparse_l1_step(grad, step, n_features - rank),
                                xc)
            else:
                z = feasible(x_adv + ascent_step(grad, step, norm), xc)
                if k > 0:
                    z = feasible(x_adv + _MOMENTUM * (z - x_adv)
                                 + (1 - _MOMENTUM) * (x_adv - x_prev), xc)
            x_prev, x_adv = x_adv, z
        logits, loss, grad = loss_and_grad(x_adv, yc, tc)
        with torch.no_grad():
            wrong = logits.argmax(dim=1) != yc
            new_found = wrong & (loss > loss_found)
            x_found = _take_rows(new_found, x_adv, x_found)
            loss_found = torch.where(new_found, loss, loss_found)
            fooled |= wrong
            n_success += loss > loss_prev
            loss_prev = loss
            improved = loss > loss_best
            x_best = _take_rows(improved, x_adv, x_best)
            grad_best = _take_rows(improved, grad, grad_best)
            loss_best = torch.where(improved, loss, loss_best)
            if trace is not None:
                trace.append((x_adv.clone(), step.reshape(-1).clone()))

            at_checkpoint = k + 1 in checkpoints
            if at_checkpoint and l1:
                # the best point's sparsity sets the next fraction of coordinates;
                # if it fell by more than 5%, restart from the best point with the
                # full step size eps, else shrink the step (to at least eps / 10)
                sparsity = _l0(x_best - xc)
                restart = sparsity / sparsity_last < _L1_SPARSER
                fraction = sparsity / n_features / _L1_SHRINK
                step = torch.where(per_sample(restart, step),
                                   torch.full_like(step, eps), step / _L1_SHRINK)
                step = step.clamp(_L1_MIN_STEP * eps, eps)
                sparsity_last = sparsity
                x_adv[restart] = x_best[restart]
                grad = torch.where(per_sample(restart, grad), grad_best, grad)
            elif at_checkpoint:
                h = k + 1 - last_check
                last_check = k + 1
                # (a) too few steps increased the loss, or (b) neither the step size
                # nor the best loss changed since the last checkpoint
                # (<= as the authors' code; the paper writes <)
                halve = (n_success <= rho * h) | (~reduced_last
                                                  & (loss_best <= loss_best_last))
                step = torch.where(per_sample(halve, step), step / 2, step)
                # restart from the best point; as in the authors' code, x_prev (the
                # iterate before the last step) and loss_prev (the last loss) are
                # kept, so the next step's momentum is x_best - x_prev
                x_adv = _take_rows(halve, x_best, x_adv)
                # not in place: autograd may return an expanded gradient
                grad = torch.where(per_sample(halve, grad), grad_best, grad)
                reduced_last = halve
                loss_best_last = loss_best.clone()
                n_success.zero_()
            if drop_fooled and (at_checkpoint or eager_drop):
                n_fooled = int(fooled.sum())
                if n_fooled and (at_checkpoint
                                 or n_fooled >= _DROP_FRACTION * fooled.numel()):
                    write_back(fooled)  # drop finished samples from the batch
                    keep = ~fooled
                    if n_fooled == fooled.numel():
                        break
                    idx, xc, yc = idx[keep], xc[keep], yc[keep]
                    tc = None if tc is None else tc[keep]
                    if linf:
                        lower, upper = lower[keep], upper[keep]
                    (x_adv, x_prev, grad, x_best, grad_best, x_found, step) = (
                        t[keep] for t in (x_adv, x_prev, grad, x_best, grad_best,
                                          x_found, step))
                    (loss_best, loss_found, loss_prev, n_success, loss_best_last,
                     reduced_last, fooled, fraction, sparsity_last) = (
                        t[keep] for t in (loss_best, loss_found, loss_prev, n_success,
                                          loss_best_last, reduced_last, fooled,
                                          fraction, sparsity_last))
    else:
        write_back()
    return {"x_best": out_best, "loss_best": out_loss, "x_adv": out_adv,
            "fooled": out_fooled, "step_size": out_step}


class _APGDBase(BaseAttack):
    """Shared parameters checks and the run-merging logic of APGD and APGD-T."""

    _parameter_constraints = {
        **BaseAttack._parameter_constraints,
        "n_iter": [POSITIVE_INT],
        "n_restarts": [POSITIVE_INT],
        "eot_iter": [POSITIVE_INT],
        "rho": [Interval(numbers.Real, 0, 1, closed="neither")],
        "random_start": ["boolean"],
        "use_largereps": ["boolean"],
    }

    def _check_params(self):
        super()._check_params()
        if self.use_largereps and self.norm != "l1":
            raise ValueError(
                f"{type(self).__name__}: use_largereps=True is the schedule of "
                f"l1-APGD and needs norm='l1', got norm={self.norm!r}.")
        if self.use_largereps and min(
                k for _, k in large_eps_stages(1.0, self.n_iter)) < 1:
            raise ValueError(
                f"{type(self).__name__}: use_largereps=True splits n_iter into "
                "stages of ceil(0.3 n_iter), ceil(0.3 n_iter) and the remaining "
                "iterations, each at least 1: n_iter must be 3 or >= 5, got "
                f"n_iter={self.n_iter}.")

    def _run(self, model, x, y, generator, loss_fn, target=None):
        def run(eps, n_iter, **kwargs):
            return apgd_run(model, x, y, loss_fn=loss_fn, eps=eps, norm=self.norm,
                            n_iter=n_iter, clip_min=self.clip_min,
                            clip_max=self.clip_max, generator=generator, rho=self.rho,
                            eot_iter=self.eot_iter, target=target, **kwargs)

        eps = float(self.eps)
        if not self.use_largereps:
            return run(eps, self.n_iter, random_start=self.random_start)
        # l1-APGD's schedule: radii 3 eps, 2 eps, eps, each stage starting from the
        # highest-loss point of the previous one projected onto its ball; only the
        # last stage (radius eps) may fool, so the earlier ones keep every sample
        stages = large_eps_stages(eps, self.n_iter)
        if self.random_start:
            noise = torch.randn(x.shape, generator=generator, device=x.device,
                                dtype=x.dtype)
            start = x + noise
        else:
            start = x.clone()
        for i, (radius, n_iter) in enumerate(stages):
            start = x + project_feasible(x, start - x, radius, "l1", self.clip_min,
                                         self.clip_max)
            last = i == len(stages) - 1
            res = run(radius, n_iter, x_init=start, drop_fooled=last)
            start = res["x_best"]
        return res

    @staticmethod
    def _merge(state, idx, res):
        """Keep per sample the first misclassifying point, else the highest loss."""
        x_out, fooled, best_loss, step = state
        newly = res["fooled"]
        better = newly | (res["loss_best"] > best_loss[idx])
        take = idx[better]
        x_out[take] = res["x_adv"][better]
        best_loss[take] = res["loss_best"][better]
        step[idx] = res["step_size"]
        fooled[idx[newly]] = True

    def _new_state(self, x):
        n = x.shape[0]
        return (x.clone(), torch.zeros(n, dtype=torch.bool, device=x.device),
                torch.full((n,), float("-inf"), dtype=x.dtype, device=x.device),
                torch.zeros(n, dtype=x.dtype, device=x.device))

    @staticmethod
    def _info(state, return_info):
        if not return_info:
            return {}
        return {"fooled": state[1].clone(), "step_size": state[3].clone()}

    def _unchanged_info(self, correct, x, y):
        return {"fooled": ~correct,
                "step_size": torch.zeros(x.shape[0], dtype=x.dtype, device=x.device)}


class APGD(_APGDBase):
    """Auto-PGD: step-size-free projected gradient ascent (Croce & Hein, 2020).

    PGD with momentum whose per-sample step size starts at ``2 * eps`` and is halved
    at fixed checkpoints when progress stalls, restarting from the best point found.

    Parameters
    ----------
    eps : float, default=0.3
        Radius of the threat model's ball.
    norm : {"linf", "l2", "l1"}, default="linf"
        Norm of the threat model.
    n_iter : int, default=100
        Number of iterations (gradient evaluations) per restart.
    loss : {"ce", "dlr", "cw"} or callable, default="ce"
        Objective to maximise: cross-entropy (APGD-CE), the difference of logits
        ratio (APGD-DLR, needs at least 3 classes), the Carlini-Wagner margin, or a
        callable ``loss(logits, y) -> per-sample tensor``.
    n_restarts : int, default=1
        Number of runs from fresh random starts; each restart only attacks the
        points not yet misclassified.
    rho : float, default=0.75
        Step-size halving threshold: the step is halved at a checkpoint when fewer
        than a fraction ``rho`` of the steps since the last one increased the loss
        (L-inf and L2; l1-APGD adapts its step to the sparsity instead).
    random_start : bool, default=True
        Start from a uniform point of the ball (L1: Gaussian noise projected onto
        the ball and the box, as the authors' code), else from ``x``.
    eot_iter : int, default=1
        Gradients averaged per iteration (Expectation over Transformation, for
        randomized models).
    use_largereps : bool, default=False
        For ``norm="l1"`` only: run each restart as three stages of radii
        ``3 eps``, ``2 eps`` and ``eps`` (30%, 30% and 40% of ``n_iter``), each
        started from the previous stage's highest-loss point projected onto its
        ball, as AutoAttack's L1 version does; only the last stage's points count.
    clip_min, clip_max : float or None, default=0.0, 1.0
        Pixel box; ``None`` leaves a side open.
    random_state : int, RandomState instance or None, default=None
        Seeds the random starts through a local :class:`torch.Generator`.

    See Also
    --------
    APGDT : The targeted-DLR variant.
    AutoAttack : The ensemble built on APGD.
    PGD : Fixed step size, no momentum.

    Notes
    -----
    Threat model: untargeted, white-box, ``||x_adv - x|| <= eps`` in ``norm`` and
    inside the clip box; the model must return logits.

    The algorithm follows Algorithm 1 of the paper: checkpoints
    :func:`apgd_checkpoints`; momentum ``x_{k+1} = P(x_k + 0.75 (z_{k+1} - x_k) +
    0.25 (x_k - x_{k-1}))`` with ``z_{k+1} = P(x_k + eta_k * step(grad))`` and no
    momentum on the first step; at a checkpoint the step size of a sample is halved
    if (a) at most a fraction ``rho`` of its steps since the last checkpoint
    increased the loss (``<=``, as the authors' code; the paper writes ``<``), or
    (b) its step size and best loss are both unchanged since the last checkpoint;
    halving restarts the sample from its best-loss point, keeping, as the authors'
    code does, the previous iterate for the next step's momentum (condition (b)
    cannot fire at the first checkpoint). Per sample, the attack returns the
    highest-loss misclassifying iterate found before the sample left the batch if
    there is one, else the highest-loss iterate. Samples already fooled leave the
    batch at the next checkpoint (on CPU as soon as they are an eighth of the
    batch), so a non-robust batch costs far fewer than ``n_iter`` full gradient
    evaluations; the others' iterates are unaffected.

    With ``return_info=True`` the info dict holds ``"fooled"`` (a misclassifying
    point was found) and ``"step_size"`` (the final step size of each sample).

    ``norm="l1"`` is l1-APGD (Croce & Hein, 2021), following the authors' code
    (fra31/auto-attack, ``autopgd_base.py``): the random start is Gaussian noise
    projected onto the intersection of the L1 ball and the clip box; a step of L1
    length ``eta_k`` (first ``eps``) moves the signs of the gradient entries at
    least as large as the one at ascending rank ``int((1 - k_s) d)``, ``k_s`` the
    fraction of coordinates (first 0.2), followed by the exact projection onto
    the ball and the box, without momentum; every ``max(int(0.04 n_iter), 1)``
    iterations (:func:`l1_apgd_checkpoints`) the sparsity ``s`` (number of
    nonzero entries) of the best point's perturbation sets ``k_s = s / (1.5 d)``;
    if ``s`` fell by more than 5% since the last checkpoint, the step size is reset
    to ``eps`` and the sample restarts from its best point, otherwise the step
    shrinks by 1.5 (to at least ``eps / 10``). ``rho`` is not used. As for the
    other norms, the step adapts per sample and fooled samples leave the batch
    (during the last stage of ``use_largereps``).

    References
    ----------
    .. [1] F. Croce and M. Hein, "Reliable evaluation of adversarial robustness
       with an ensemble of diverse parameter-free attacks", ICML 2020,
       arXiv:2003.01690.
    .. [2] F. Croce and M. Hein, "Mind the box: l1-APGD for sparse adversarial
       attacks on image classifiers", ICML 2021, arXiv:2103.01208.

    Examples
    --------
    >>> import torch
    >>> from sklearn_robust.attacks import APGD
    >>> model = torch.nn.Linear(4, 3)
    >>> x, y = torch.rand(8, 4), torch.randint(0, 3, (8,))
    >>> x_adv = APGD(eps=0.1, n_iter=10, random_state=0).perturb(model, x, y)
    >>> bool((x_adv - x).abs().max() <= 0.1 + 1e-6)
    True
    """

    def __init__(self, *, eps=0.3, norm="linf", n_iter=100, loss="ce", n_restarts=1,
                 rho=0.75, random_start=True, eot_iter=1, use_largereps=False,
                 clip_min=0.0, clip_max=1.0, random_state=None):
        self.eps = eps
        self.norm = norm
        self.n_iter = n_iter
        self.loss = loss
        self.n_restarts = n_restarts
        self.rho = rho
        self.random_start = random_start
        self.eot_iter = eot_iter
        self.use_largereps = use_largereps
        self.clip_min = clip_min
        self.clip_max = clip_max
        self.random_state = random_state

    # the KL loss of TRADES needs clean logits APGD does not pass
    _parameter_constraints = {**_APGDBase._parameter_constraints,
                              "loss": [StrOptions({"ce", "dlr", "cw"}), callable]}

    def _perturb(self, model, x, y, generator, return_info):
        base_loss = get_loss(self.loss)

        def loss_fn(logits, ys, _target):
            return base_loss(logits, ys)

        with torch.no_grad():
            self._warn_if_probabilities(model(x[:256]))
        state = self._new_state(x)
        for _ in range(self.n_restarts):
            idx = (~state[1]).nonzero().squeeze(1)
            if idx.numel() == 0:
                break
            res = self._run(model, x[idx], y[idx], generator, loss_fn)
            self._merge(state, idx, res)
        return state[0], self._info(state, return_info)


class APGDT(_APGDBase):
    """Targeted APGD on the targeted DLR loss (APGD-T, Croce & Hein, 2020).

    For each of the ``n_target_classes`` most likely wrong classes of the clean
    point (in order), APGD maximises ``-(z_y - z_t) / (z_pi1 - (z_pi3 + z_pi4) / 2)``
    on the points not yet misclassified. Success means any misclassification.

    Parameters
    ----------
    eps : float, default=0.3
        Radius of the threat model's ball.
    norm : {"linf", "l2", "l1"}, default="linf"
        Norm of the threat model.
    n_iter : int, default=100
        Iterations per target class and restart.
    n_target_classes : int, default=9
        Number of target classes tried (at most ``n_classes - 1`` are used).
    n_restarts : int, default=1
        Random restarts per target class.
    rho : float, default=0.75
        Step-size halving threshold (see :class:`APGD`).
    random_start : bool, default=True
        Start from a uniform point of the ball (L1: Gaussian noise projected onto
        the ball and the box, as the authors' code), else from ``x``.
    eot_iter : int, default=1
        Gradients averaged per iteration (Expectation over Transformation).
    use_largereps : bool, default=False
        For ``norm="l1"`` only: the schedule of radii ``3 eps, 2 eps, eps`` of
        :class:`APGD`, for each target class and restart.
    clip_min, clip_max : float or None, default=0.0, 1.0
        Pixel box; ``None`` leaves a side open.
    random_state : int, RandomState instance or None, default=None
        Seeds the random starts through a local :class:`torch.Generator`.

    See Also
    --------
    APGD : The untargeted attack and the algorithm's details.
    AutoAttack : The ensemble using APGD-T as its second attack.

    Notes
    -----
    Threat model: untargeted success criterion (any wrong class), white-box,
    ``norm``-ball of radius ``eps`` inside the clip box. The targeted DLR loss needs
    at least 4 classes to be scale invariant; with 3 classes the denominator is
    ``z_pi1 - z_pi3`` and with 2 classes the plain logit margin is used. The total
    cost is up to ``n_target_classes * n_restarts * n_iter`` gradient evaluations
    per point. Info keys are those of :class:`APGD`; ``norm="l1"`` runs
    l1-APGD (see :class:`APGD`).

    References
    ----------
    .. [1] F. Croce and M. Hein, "Reliable evaluation of adversarial robustness
       with an ensemble of diverse parameter-free attacks", ICML 2020,
       arXiv:2003.01690.
    .. [2] F. Croce and M. Hein, "Mind the box: l1-APGD for sparse adversarial
       attacks on image classifiers", ICML 2021, arXiv:2103.01208.

    Examples
    --------
    >>> import torch
    >>> from sklearn_robust.attacks import APGDT
    >>> model = torch.nn.Linear(4, 5)
    >>> x, y = torch.rand(8, 4), torch.randint(0, 5, (8,))
    >>> attack = APGDT(eps=0.1, n_iter=10, n_target_classes=2, random_state=0)
    >>> attack.perturb(model, x, y).shape
    torch.Size([8, 4])
    """

    def __init__(self, *, eps=0.3, norm="linf", n_iter=100, n_target_classes=9,
                 n_restarts=1, rho=0.75, random_start=True, eot_iter=1,
                 use_largereps=False, clip_min=0.0, clip_max=1.0, random_state=None):
        self.eps = eps
        self.norm = norm
        self.n_iter = n_iter
        self.n_target_classes = n_target_classes
        self.n_restarts = n_restarts
        self.rho = rho
        self.random_start = random_start
        self.eot_iter = eot_iter
        self.use_largereps = use_largereps
        self.clip_min = clip_min
        self.clip_max = clip_max
        self.random_state = random_state

    _parameter_constraints = {**_APGDBase._parameter_constraints,
                              "n_target_classes": [POSITIVE_INT]}

    def _perturb(self, model, x, y, generator, return_info):
        with torch.no_grad():
            clean = torch.cat([model(x[i:i + 1024]) for i in range(0, len(x), 1024)])
        self._warn_if_probabilities(clean[:256])
        n_classes = clean.shape[1]
        # candidate targets: the other classes, most likely first
        ranked = clean.scatter(1, y[:, None], float("-inf")).argsort(
            dim=1, descending=True)
        state = self._new_state(x)
        for rank in range(min(self.n_target_classes, n_classes - 1)):
            for _ in range(self.n_restarts):
                idx = (~state[1]).nonzero().squeeze(1)
                if idx.numel() == 0:
                    break
                res = self._run(model, x[idx], y[idx], generator, targeted_dlr_loss,
                                target=ranked[idx, rank])
                self._merge(state, idx, res)
        return state[0], self._info(state, return_info)
