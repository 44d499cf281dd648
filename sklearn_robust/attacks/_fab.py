"""Fast Adaptive Boundary attack, untargeted and targeted (Croce & Hein, 2020)."""

# SPDX-License-Identifier: BSD-3-Clause

import numbers

import torch

from ..utils._param_validation import POSITIVE_INT, Interval
from ..utils._torch import per_sample
from ..utils._validation import check_clip_box, check_float_tensor, check_in_box
from ._base import BaseAttack
from ._projections import clip_to_box

__all__ = ["FAB", "project_onto_hyperplane_box"]

_TINY = 1e-12  # guards the distance ratios (as the reference's 1e-12)
_MIN_STEP = 1e-8  # floor of the step norms in the extrapolation weight alpha


def _norm(t, norm):
    """Per-row ``norm`` of a flat ``(n, d)`` tensor (``"l2"`` as ``flat_norm``)."""
    if norm == "linf":
        return t.abs().amax(dim=1)
    if norm == "l2":
        return t.norm(p=2, dim=1)
    return t.abs().sum(dim=1)


_DUAL_NORMS = {"linf": "l1", "l2": "l2", "l1": "linf"}


def _dual_norm(t, norm):
    """Per-row dual norm of ``norm`` (l1 for linf, l2 for l2, linf for l1)."""
    return _norm(t, _DUAL_NORMS[norm])


def _exclusive_cumsum(t):
    """Cumulative sums along rows with a leading zero column: ``(n, d + 1)``."""
    return torch.cat([torch.zeros_like(t[:, :1]), t.cumsum(dim=1)], dim=1)


def _project_onto_hyperplane_box(p, w, c, norm, clip_min=None, clip_max=None):
    """The unchecked projection (FAB's inner loop); see the public function."""
    a = w * torch.sign(c)[:, None]  # needs a . d = -|c|
    target = c.abs()
    inf = torch.full_like(p, float("inf"))
    room_down = p - clip_min if clip_min is not None else inf
    room_up = clip_max - p if clip_max is not None else inf
    absa = a.abs()
    active = absa > 0
    # room of each coordinate in the direction -sign(a_i)
    room = torch.where(a > 0, room_down, room_up).clamp_min(0)
    room = torch.where(active, room, torch.zeros_like(room))
    if norm == "l1":
        amount = _l1_amounts(absa, room, target)
    else:
        # g(lam) = sum_i min(lam * k_i, v_i) must reach |c|; breakpoints v_i / k_i
        k = absa if norm == "linf" else absa * absa
        v = absa * room
        breaks = torch.where(active, room if norm == "linf" else room / absa, inf)
        order = breaks.argsort(dim=1)
        b_s, k_s, v_s = (t.gather(1, order) for t in (breaks, k, v))
        cum_k, cum_v = k_s.cumsum(dim=1), v_s.cumsum(dim=1)
        total_k = cum_k[:, -1:]
        g = cum_v + b_s * (total_k - cum_k).clamp_min(0)
        g = torch.where(torch.isfinite(b_s), g, inf)
        # first breakpoint where g reaches the target; lam lies just before it
        pos = (g < target[:, None]).sum(dim=1, keepdim=True)
        slope = (total_k - _exclusive_cumsum(k_s).gather(1, pos)).squeeze(1)
        rest = (target - _exclusive_cumsum(v_s).gather(1, pos).squeeze(1)).clamp_min(0)
        feasible = slope > 0
        lam = torch.where(feasible, rest / torch.where(feasible, slope, 1.0),
                          torch.full_like(rest, float("inf")))[:, None]
        amount = torch.minimum(lam if norm == "linf" else lam * absa, room)
    d = -torch.sign(a) * torch.where(active, amount, torch.zeros_like(amount))
    return torch.where(active, d, torch.zeros_like(d))



def project_onto_hyperplane_box(p, w, c, norm, clip_min=None, clip_max=None):
    """Minimal-norm step from ``p`` onto a hyperplane inside a box.

    Solves, for each row, ``min ||d||`` subject to ``w . d = -c`` and
    ``clip_min <= p + d <= clip_max``: the projection of ``p`` onto the hyperplane
    ``{z : w . (z - p) + c = 0}`` intersected with the box, the core step of FAB.
    Where the hyperplane does not meet the box, the step goes to the box corner
    nearest to it (every coordinate moved as far as the box allows in the direction
    that brings ``w . z`` towards the hyperplane).

    The optimality conditions make every coordinate move against the sign of
    ``w_i`` (times the sign of ``c``) by ``min(lambda, r_i)`` (L-inf) or
    ``min(lambda |w_i|, r_i)`` (L2), ``r_i`` being its room to the box, for the
    scalar ``lambda`` that meets the constraint; the constraint is piecewise
    linear and non-decreasing in ``lambda``, so ``lambda`` is found exactly by
    sorting its breakpoints. For L1 the cheapest coordinates (largest ``|w_i|``)
    are used up to their room first.

    Parameters
    ----------
    p, w : tensors of shape (n, d)
        Points and hyperplane normals.
    c : tensor of shape (n,)
        ``w . p - b``: the value at ``p`` of the affine function whose zero set is
        the hyperplane (any sign; zero gives ``d = 0``).
    norm : {"linf", "l2", "l1"}
        Norm of the step to minimise.
    clip_min, clip_max : float or None, default=None
        The box; ``None`` leaves a side open. ``p`` must lie inside it.

    Returns
    -------
    d : tensor of shape (n, d)
        The step; zero on the coordinates where ``w`` is zero.

    Raises
    ------
    ValueError, TypeError
        If ``p`` and ``w`` are not finite floating tensors of one shape ``(n, d)``,
        ``c`` not ``n`` finite values, ``norm`` unknown, the box invalid or ``p``
        outside it.
    """
    p = check_float_tensor(p, "p", min_ndim=2)
    w = check_float_tensor(w, "w", min_ndim=2, dtype=p.dtype, device=p.device)
    c = check_float_tensor(c, "c", min_ndim=1, dtype=p.dtype, device=p.device)
    if p.ndim != 2 or w.shape != p.shape or c.shape != p.shape[:1]:
        raise ValueError(f"p and w must have one shape (n, d) and c shape (n,); got "
                         f"{tuple(p.shape)}, {tuple(w.shape)} and {tuple(c.shape)}.")
    if norm not in ("linf", "l2", "l1"):
        raise ValueError(f"norm must be one of ('l1', 'l2', 'linf'), got {norm!r}.")
    check_clip_box(clip_min, clip_max)
    check_in_box(p, clip_min, clip_max, name="p")
    return _project_onto_hyperplane_box(p, w, c, norm, clip_min, clip_max)

def _l1_amounts(absa, room, target):
    """Per-coordinate moves of the L1 projection: largest ``|w_i|`` first."""
    n_features = absa.shape[1]
    order = absa.argsort(dim=1, descending=True)
    a_s, r_s = absa.gather(1, order), room.gather(1, order)
    capacity = torch.where(a_s > 0, a_s * r_s, torch.zeros_like(a_s))
    cum = capacity.cumsum(dim=1)
    pos = (cum < target[:, None]).sum(dim=1, keepdim=True)  # fully used before pos
    at = pos.clamp_max(n_features - 1)
    a_at = a_s.gather(1, at).squeeze(1)
    feasible = (pos.squeeze(1) < n_features) & (a_at > 0)
    partial = ((target - _exclusive_cumsum(capacity).gather(1, pos).squeeze(1))
               .clamp_min(0) / torch.where(feasible, a_at, torch.ones_like(a_at)))
    cols = torch.arange(n_features, device=absa.device)[None, :]
    full = (cols < pos) | ~feasible[:, None]
    amount_s = torch.where(full, r_s, torch.zeros_like(r_s))
    amount_s = torch.where((cols == pos) & feasible[:, None], partial[:, None],
                           amount_s)
    return torch.zeros_like(amount_s).scatter(1, order, amount_s)


class FAB(BaseAttack):
    """Fast Adaptive Boundary attack (FAB and FAB-T, Croce & Hein, 2020).

    A minimum-norm white-box attack: at each iteration the decision boundary is
    linearised at the current iterate, and the iterate moves to a biased
    combination of its own projection and the clean point's projection onto that
    hyperplane (intersected with the clip box), overshooting slightly; once
    misclassified it steps back towards the clean point. The smallest
    misclassifying perturbation found is kept. Untargeted FAB linearises the
    boundary of the closest class (one gradient per class and iteration); FAB-T
    (``targeted=True``) that of each of the ``n_target_classes`` most likely
    other classes in turn (one gradient per iteration), as AutoAttack's FAB-T.

    Parameters
    ----------
    eps : float, default=0.3
        Radius of the threat model's ball: the minimum-norm search is not bounded
        by it, but only adversarial examples within ``eps`` are returned. The
        random restarts start at distance ``eps / 2`` from the clean point.
    norm : {"linf", "l2", "l1"}, default="linf"
        Norm of the threat model, minimised by the attack.
    n_iter : int, default=100
        Iterations per restart (and per target class).
    n_restarts : int, default=1
        Runs per target class; the first starts from the clean point, the others
        from random points at distance ``eps / 2``, on the points not yet fooled
        within ``eps``. AutoAttack uses 1 for FAB-T (standard version) and 5 for
        the untargeted FAB of its ``"plus"`` version.
    targeted : bool, default=False
        Linearise the boundary towards the most likely other classes one at a
        time (FAB-T) instead of towards the closest one.
    n_target_classes : int, default=9
        Target classes tried by FAB-T, most likely first (at most
        ``n_classes - 1`` are used); ignored when ``targeted=False``.
    alpha_max : float, default=0.1
        Largest weight of the clean point's projection in the update (the bias
        towards the clean point that keeps the perturbation small).
    eta : float, default=1.05
        Overshoot factor (>= 1) of the projection steps, so that iterates cross
        the linearised boundary.
    beta : float, default=0.9
        Backward step: a misclassified iterate ``x_k`` continues from
        ``x + beta (x_k - x)``.
    clip_min, clip_max : float or None, default=0.0, 1.0
        Pixel box; ``None`` leaves a side open. Every iterate and projection stays
        inside it.
    random_state : int, RandomState instance or None, default=None
        Seeds the random restarts through a local :class:`torch.Generator`; the
        global torch RNG is never touched. With ``n_restarts=1`` the attack is
        deterministic.

    See Also
    --------
    APGD, APGDT : Loss-maximising attacks of the same ensemble.
    AutoAttack : The ensemble of Croce & Hein (2020).
    project_onto_hyperplane_box : The projection FAB is built on.

    Notes
    -----
    Threat model: untargeted success criterion (any wrong class, also for FAB-T,
    as in AutoAttack), white-box, ``||x_adv - x|| <= eps`` in ``norm`` and inside
    the clip box; the model must return logits (a 1-D output is read as a binary
    decision function). Per sample, the attack returns the smallest misclassifying
    point found if its norm is at most ``eps``, else the clean point (as the
    reference implementation's ``perturb``); points misclassified from the start
    are returned unchanged.

    Iteration ``k`` (Algorithm 1 of the paper), from the iterate ``x_k`` and the
    clean point ``x``: with ``f`` the logits, the linearised boundary between the
    true class ``y`` and class ``j`` is ``f_j(x_k) - f_y(x_k) + grad(f_j -
    f_y)(x_k) . (z - x_k) = 0``; untargeted FAB picks the ``j`` whose hyperplane is
    closest (``|f_j - f_y| / ||grad||_*`` in the dual norm), FAB-T the target.
    ``d_k`` and ``d_0`` are the minimal-norm steps from ``x_k`` and ``x`` onto that
    hyperplane inside the box (:func:`project_onto_hyperplane_box`), ``alpha =
    min(||d_k|| / (||d_k|| + ||d_0||), alpha_max)`` and ``x_{k+1} = clip((1 -
    alpha) (x_k + eta d_k) + alpha (x + eta d_0))``; if ``x_{k+1}`` is
    misclassified it is recorded when smaller than the best so far, and replaced
    by ``x + beta (x_{k+1} - x)``. The projection is solved exactly (sorting the
    breakpoints of its one-dimensional dual), which is the problem the reference
    solves by bisection. All iterations run (the search keeps shrinking the
    perturbation); a point fooled within ``eps`` leaves the later restarts and
    target classes.

    Cost per sample and restart: ``n_iter`` times one forward pass with
    ``n_classes`` backward passes (untargeted) or one (FAB-T), plus one forward
    pass to test the new iterate. With ``return_info=True`` the info dict holds
    ``"fooled"`` (misclassified within ``eps``, or from the start) and
    ``"min_norm"`` (the norm of the smallest misclassifying perturbation found,
    within ``eps`` or not; 0 for points misclassified from the start, ``inf``
    where none was found), the minimum-norm evaluation of the paper.

    Deliberate differences from the reference code: any clip box (open sides
    included) instead of ``[0, 1]``; the projection solved exactly by sorting
    instead of by bisection, and where the hyperplane does not meet the box the
    step stops at the box corner (the reference extrapolates past the box and
    clips afterwards, so its ``||d||`` in ``alpha`` is larger there); a local
    generator instead of reseeding the global RNG; the input's dtype instead of
    float32. Like the reference, the boundary is chosen by its distance without
    the box, so where the box binds the search may end farther than the
    box-constrained minimum.

    ``norm="l1"`` is the reference's L1 variant: the same algorithm with the L1
    projection (FAB-T of AutoAttack's L1 version).

    References
    ----------
    .. [1] F. Croce and M. Hein, "Minimally distorted adversarial examples with a
       fast adaptive boundary attack", ICML 2020, arXiv:1907.02044.
    .. [2] F. Croce and M. Hein, "Reliable evaluation of adversarial robustness
       with an ensemble of diverse parameter-free attacks", ICML 2020,
       arXiv:2003.01690.

    Examples
    --------
    >>> import torch
    >>> from sklearn_robust.attacks import FAB
    >>> model = torch.nn.Linear(4, 3)
    >>> x, y = torch.rand(8, 4), torch.randint(0, 3, (8,))
    >>> attack = FAB(eps=0.1, n_iter=10, targeted=True, n_target_classes=2)
    >>> x_adv, info = attack.perturb(model, x, y, return_info=True)
    >>> bool((x_adv - x).abs().max() <= 0.1 + 1e-6)
    True
    >>> sorted(info)
    ['fooled', 'min_norm']
    """

    def __init__(self, *, eps=0.3, norm="linf", n_iter=100, n_restarts=1,
                 targeted=False, n_target_classes=9, alpha_max=0.1, eta=1.05,
                 beta=0.9, clip_min=0.0, clip_max=1.0, random_state=None):
        self.eps = eps
        self.norm = norm
        self.n_iter = n_iter
        self.n_restarts = n_restarts
        self.targeted = targeted
        self.n_target_classes = n_target_classes
        self.alpha_max = alpha_max
        self.eta = eta
        self.beta = beta
        self.clip_min = clip_min
        self.clip_max = clip_max
        self.random_state = random_state

    _parameter_constraints = {
        **BaseAttack._parameter_constraints,
        "n_iter": [POSITIVE_INT],
        "n_restarts": [POSITIVE_INT],
        "n_target_classes": [POSITIVE_INT],
        "targeted": ["boolean"],
        "alpha_max": [Interval(numbers.Real, 0, 1, closed="both")],
        "eta": [Interval(numbers.Real, 1, None, closed="left")],
        "beta": [Interval(numbers.Real, 0, 1, closed="right")],
    }

    # ------------------------------------------------------------------ model
    @staticmethod
    def _logits(model, x):
        out = model(x)
        if out.ndim == 1:  # binary decision function: score of class 1
            out = torch.stack([-out, out], dim=1)
        return out

    @staticmethod
    def _grad(value, x, retain):
        if not value.requires_grad:  # the output does not depend on x
            return torch.zeros_like(x)
        (g,) = torch.autograd.grad(value, x, retain_graph=retain, allow_unused=True)
        return torch.zeros_like(x) if g is None else g

    def _linearise(self, model, x1, y, target, shape):
        """Logit difference ``f_j - f_y`` at ``x1`` and its gradient, per sample.

        ``j`` is ``target`` (FAB-T) or the class whose linearised boundary is the
        closest in ``norm`` (untargeted).
        """
        n = x1.shape[0]
        xg = x1.detach().reshape(shape).requires_grad_(True)
        logits = self._logits(model, xg)
        rows = torch.arange(n, device=x1.device)
        f_y = logits[rows, y]
        if target is not None:
            diff = logits[rows, target] - f_y
            grad = self._grad(diff.sum(), xg, retain=False)
            return diff.detach().to(x1.dtype), grad.reshape(n, -1).to(x1.dtype)
        n_classes = logits.shape[1]
        best_dist = torch.full((n,), float("inf"), dtype=x1.dtype, device=x1.device)
        best_df = torch.zeros(n, dtype=x1.dtype, device=x1.device)
        best_dg = torch.zeros_like(x1)
        for j in range(n_classes):
            diff = logits[:, j] - f_y
            g = self._grad(diff.sum(), xg, retain=j < n_classes - 1)
            g = g.reshape(n, -1).to(x1.dtype)
            df = diff.detach().to(x1.dtype)
            dist = df.abs() / (_dual_norm(g, self.norm) + _TINY)
            dist = torch.where(y == j, torch.full_like(dist, float("inf")), dist)
            better = dist < best_dist
            best_dist = torch.where(better, dist, best_dist)
            best_df = torch.where(better, df, best_df)
            best_dg = torch.where(better[:, None], g, best_dg)
        return best_df, best_dg

    # ------------------------------------------------------------------- runs
    def _random_start(self, x, generator):
        """A point at distance ``eps / 2`` from each row of ``x``, in the box."""
        n = x.shape[0]
        if self.norm == "linf":
            t = 2 * torch.rand(x.shape, generator=generator, device=x.device,
                               dtype=x.dtype) - 1
        else:
            t = torch.randn(x.shape, generator=generator, device=x.device,
                            dtype=x.dtype)
        t = t / per_sample(_norm(t.reshape(n, -1), self.norm) + _TINY, t)
        return clip_to_box(x + 0.5 * float(self.eps) * t, self.clip_min,
                           self.clip_max)

    def _run(self, model, x0, y, target, start):
        """One FAB run; returns the smallest misclassifying point and its norm."""
        shape = x0.shape
        n = shape[0]
        norm, lo, hi = self.norm, self.clip_min, self.clip_max
        eta, beta = float(self.eta), float(self.beta)
        x0f = x0.reshape(n, -1)
        x1 = start.reshape(n, -1).clone()
        best = x0f.clone()
        best_norm = torch.full((n,), float("inf"), dtype=x0.dtype, device=x0.device)
        for _ in range(self.n_iter):
            df, w = self._linearise(model, x1, y, target, shape)
            with torch.no_grad():
                # the hyperplane {z : df + w . (z - x1) = 0}, from x1 and from x0
                c0 = df + (w * (x0f - x1)).sum(dim=1)
                steps = _project_onto_hyperplane_box(
                    torch.cat([x1, x0f]), torch.cat([w, w]), torch.cat([df, c0]),
                    norm, lo, hi)
                d1, d0 = steps[:n], steps[n:]
                a1 = _norm(d1, norm).clamp_min(_MIN_STEP)
                a0 = _norm(d0, norm).clamp_min(_MIN_STEP)
                alpha = (a1 / (a1 + a0)).clamp(0.0, float(self.alpha_max))[:, None]
                x1 = clip_to_box((x1 + eta * d1) * (1 - alpha)
                                 + (x0f + eta * d0) * alpha, lo, hi)
                pred = self._logits(model, x1.reshape(shape)).argmax(dim=1)
                adv = pred != y
                dist = _norm(x1 - x0f, norm)
                better = adv & (dist < best_norm)
                best = torch.where(better[:, None], x1, best)
                best_norm = torch.where(better, dist, best_norm)
                x1 = torch.where(adv[:, None], x0f + beta * (x1 - x0f), x1)
        return best.reshape(shape), best_norm

    def _perturb(self, model, x, y, generator, return_info):
        n = x.shape[0]
        with torch.no_grad():
            clean = torch.cat([self._logits(model, x[i:i + 1024])
                               for i in range(0, n, 1024)])
        self._warn_if_probabilities(clean[:256])
        correct = clean.argmax(dim=1) == y
        x_out = x.clone()
        fooled = ~correct
        min_norm = torch.where(correct, float("inf"), 0.0).to(x.dtype)
        if self.targeted:
            # the other classes, most likely first (the reference's sort of the
            # clean logits, whose top class is y on the attacked points)
            ranked = clean.scatter(1, y[:, None], float("-inf")).argsort(
                dim=1, descending=True)
            n_targets = min(self.n_target_classes, clean.shape[1] - 1)
            targets = [ranked[:, r] for r in range(n_targets)]
        else:
            targets = [None]
        eps = float(self.eps)
        for target in targets:
            for restart in range(self.n_restarts):
                idx = (~fooled).nonzero().squeeze(1)
                if idx.numel() == 0:
                    break
                xs, ys = x[idx], y[idx]
                start = xs if restart == 0 else self._random_start(xs, generator)
                adv, norms = self._run(model, xs, ys,
                                       None if target is None else target[idx], start)
                within = norms <= eps
                x_out[idx[within]] = adv[within]
                fooled[idx[within]] = True
                min_norm[idx] = torch.minimum(min_norm[idx], norms)
        info = {"fooled": fooled, "min_norm": min_norm} if return_info else {}
        return x_out, info

    def _unchanged_info(self, correct, x, y):
        return {"fooled": ~correct,
                "min_norm": torch.where(correct, float("inf"), 0.0).to(x.dtype)}
