"""Lp-ball projections, steps and random starts as pure tensor functions."""

# SPDX-License-Identifier: BSD-3-Clause

import math

import torch

from ..utils._torch import flat_norm, per_sample

__all__ = ["flat_norm", "project", "ascent_step", "random_init", "clip_to_box",
           "project_feasible", "normal_start", "project_l1_box", "sparse_l1_step",
           "movable_gradient", "laplace_noise", "L1_STEP_FRACTION"]

_TINY = 1e-12

#: Fraction of the coordinates that one L1 steepest-ascent step of PGD moves: those
#: above the 99th percentile of ``|grad|``, the default of SLIDE (Tramer & Boneh,
#: 2019, and its cleverhans implementation ``sparse_l1_descent``).
L1_STEP_FRACTION = 0.01


def project(delta, eps, norm):
    """Project each row of ``delta`` onto the ``norm``-ball of radius ``eps``."""
    if norm == "linf":
        return delta.clamp(-eps, eps)
    if norm == "l1":
        return project_l1_box(delta, eps)
    scale = (eps / (flat_norm(delta, "l2") + _TINY)).clamp(max=1.0)
    return delta * per_sample(scale, delta)


def project_l1_box(delta, eps, lower=None, upper=None):
    """Euclidean projection of each row of ``delta`` onto the L1 ball within a box.

    Solves, per sample, ``min ||d - delta||_2`` subject to ``||d||_1 <= eps`` and
    ``lower <= d <= upper``, where ``lower <= 0 <= upper`` (the box of the
    perturbation ``d = x_adv - x`` of a point ``x`` inside the clip box:
    ``lower = clip_min - x``, ``upper = clip_max - x``). This is the projection onto
    the intersection of the L1 ball and the box of Croce & Hein (2021), which
    differs from projecting onto the ball and then clipping.

    With the multiplier ``lam >= 0`` of the L1 constraint the problem separates
    into one-dimensional ones, solved by the box-clipped soft thresholding
    ``d_i(lam) = sign(delta_i) min(max(|delta_i| - lam, 0), r_i)``, ``r_i`` the
    room of coordinate ``i`` in the direction of ``delta_i``. ``lam = 0`` if that
    point is inside the ball; otherwise ``lam`` solves ``||d(lam)||_1 = eps``, whose
    left side is piecewise linear and non-increasing in ``lam`` with breakpoints
    ``|delta_i|`` and ``|delta_i| - r_i``: sorting them gives ``lam`` exactly
    (the reference code sorts the same breakpoints and bisects on their index).

    Parameters
    ----------
    delta : tensor of shape (n_samples, ...)
        Perturbations to project.
    eps : float
        Radius of the L1 ball (>= 0).
    lower, upper : tensor shaped like ``delta``, or None
        Bounds of the perturbation, ``lower <= 0 <= upper`` (entries may be
        infinite); None leaves the side open.

    Returns
    -------
    d : tensor shaped like ``delta``
        The projection; ``||d||_1 <= eps`` holds up to the rounding of the dtype
        (a final rescaling towards 0, which stays inside the box, removes the
        error accumulated by the cumulative sums).

    References
    ----------
    .. [1] F. Croce and M. Hein, "Mind the box: l1-APGD for sparse adversarial
       attacks on image classifiers", ICML 2021, arXiv:2103.01208.
    """
    if eps <= 0:
        return torch.zeros_like(delta)
    n = delta.shape[0]
    v = delta.reshape(n, -1)
    a = v.abs()
    # room of each coordinate in the direction of delta (0 where delta is 0)
    inf = torch.full_like(v, float("inf"))
    up = inf if upper is None else upper.reshape(n, -1).clamp_min(0)
    down = inf if lower is None else (-lower.reshape(n, -1)).clamp_min(0)
    room = torch.where(v > 0, up, torch.where(v < 0, down, torch.zeros_like(v)))
    clipped = torch.minimum(a, room)  # d(0): the box clip of delta
    inside = clipped.sum(dim=1) <= eps
    # the shortcut needs the host to read a device value: CPU only (the general
    # path below gives the same result for rows already inside)
    if delta.device.type == "cpu" and bool(inside.all()):
        return (v.sign() * clipped).reshape(delta.shape)
    # ||d(lam)||_1 = sum_j s_j relu(t_j - lam) with t = |delta_i| (s = +1) and
    # |delta_i| - r_i (s = -1); breakpoints below 0 only matter for lam < 0
    t = torch.cat([a, (a - room).clamp_min(0)], dim=1)
    s = torch.cat([torch.ones_like(a), -torch.ones_like(a)], dim=1)
    t, order = t.sort(dim=1, descending=True)
    s = s.gather(1, order)
    count = s.cumsum(dim=1)  # number of coordinates on the sloped part
    total = (s * t).cumsum(dim=1)
    at_breaks = total - t * count  # ||d(t_k)||_1, non-decreasing in k
    # the first breakpoint where the norm reaches eps (the last one if rounding
    # hides it); lam lies between it and the previous one, where the norm is
    # total_{k-1} - lam * count_{k-1} (the first breakpoint has norm 0 < eps)
    reached = at_breaks >= eps
    last = t.shape[1] - 1
    first = torch.where(reached.any(dim=1, keepdim=True),
                        reached.to(torch.uint8).argmax(dim=1, keepdim=True),
                        torch.full_like(order[:, :1], last)).clamp(1, last)
    prev = first - 1
    slope = count.gather(1, prev)
    lam = (total.gather(1, prev) - eps) / slope.clamp_min(1)
    # rounding may put lam outside its interval, or flatten the norm on it
    lam = torch.minimum(torch.maximum(lam, t.gather(1, first)), t.gather(1, prev))
    lam = torch.where(inside[:, None], torch.zeros_like(lam), lam.clamp_min(0))
    d = v.sign() * torch.minimum((a - lam).clamp_min(0), room)
    # rounding may leave ||d||_1 a hair above eps: shrink towards 0 (feasible)
    norm = d.abs().sum(dim=1, keepdim=True)
    d = d * (eps / norm.clamp_min(_TINY)).clamp(max=1.0)
    return d.reshape(delta.shape)


def _box_of_perturbation(x, clip_min, clip_max):
    """``(clip_min - x, clip_max - x)``, None for an open side."""
    lower = None if clip_min is None else clip_min - x
    upper = None if clip_max is None else clip_max - x
    return lower, upper


def sparse_l1_step(grad, step_size, k):
    """The L1 steepest-ascent step spread over the ``k`` largest gradient entries.

    ``step_size * e / ||e||_1`` with ``e = sign(grad)`` on the coordinates where
    ``|grad|`` is at least its ``k``-th largest value and 0 elsewhere, per sample:
    the step of SLIDE (Tramer & Boneh, 2019) and of l1-APGD (Croce & Hein, 2021).
    ``k = 1`` is the exact steepest-ascent direction of the L1 ball (one
    coordinate), which makes slow progress on neural networks; larger ``k``
    moves more coordinates per step.

    Parameters
    ----------
    grad : tensor of shape (n_samples, ...)
        Gradient of the objective.
    step_size : float or tensor broadcastable against ``grad``
        L1 length of the step.
    k : int or int tensor of shape (n_samples,)
        Number of coordinates moved, in ``[1, n_features]`` (ties may add more).
    """
    n = grad.shape[0]
    flat = grad.reshape(n, -1).abs()
    if isinstance(k, int):
        threshold = flat.topk(min(max(k, 1), flat.shape[1]), dim=1).values[:, -1:]
    else:
        ranked = flat.sort(dim=1, descending=True).values
        index = (k.long() - 1).clamp(0, flat.shape[1] - 1)[:, None]
        threshold = ranked.gather(1, index)
    e = grad.sign() * (flat >= threshold).reshape(grad.shape)
    return step_size * e / per_sample(flat_norm(e, "l1") + _TINY, e)


def movable_gradient(grad, x_adv, clip_min, clip_max):
    """``grad`` with zeros where ``x_adv`` is on a side of the box it points out of.

    Those coordinates cannot move in the ascent direction, so an L1 step that
    spent part of its length on them would be cut by the projection; SLIDE
    (cleverhans' ``zero_out_clipped_grads``) leaves them out of the step.
    """
    stuck = torch.zeros_like(grad, dtype=torch.bool)
    if clip_min is not None:
        stuck |= (x_adv <= clip_min) & (grad < 0)
    if clip_max is not None:
        stuck |= (x_adv >= clip_max) & (grad > 0)
    return grad.masked_fill(stuck, 0.0)


def ascent_step(grad, step_size, norm):
    """Steepest-ascent direction for ``norm`` scaled by ``step_size``.

    L-inf: the sign of the gradient; L2: the normalised gradient; L1: the sparse
    step of :func:`sparse_l1_step` on the top :data:`L1_STEP_FRACTION` of the
    coordinates (at least one).
    """
    if norm == "linf":
        return step_size * grad.sign()
    if norm == "l1":
        d = grad[0].numel()
        return sparse_l1_step(grad, step_size, max(1, math.ceil(L1_STEP_FRACTION * d)))
    return step_size * grad / per_sample(flat_norm(grad, "l2") + _TINY, grad)


def laplace_noise(like, generator):
    """Standard Laplace noise (location 0, scale 1) shaped like ``like``.

    Drawn as the difference of two standard exponential variables from
    ``generator``, on the device and with the dtype of ``like``.
    """
    e1 = torch.empty_like(like).exponential_(generator=generator)
    e2 = torch.empty_like(like).exponential_(generator=generator)
    return e1 - e2


def random_init(x, eps, norm, generator, kind="uniform"):
    """A random starting perturbation.

    ``"uniform"``: uniform in the linf-ball, or uniform in the volume of the
    l2-ball or of the l1-ball (``e / (||e||_1 + z)`` with Laplace ``e`` and
    exponential ``z``, Barthe et al., 2005). ``"normal"``: ``0.001 * N(0, I)``
    (the TRADES start).
    """
    if kind == "normal":
        return 1e-3 * torch.randn(x.shape, generator=generator, device=x.device,
                                  dtype=x.dtype)
    if norm == "linf":
        u = torch.rand(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        return (2 * u - 1) * eps
    if norm == "l1":
        e = laplace_noise(x, generator)
        z = torch.empty(x.shape[0], device=x.device, dtype=x.dtype).exponential_(
            generator=generator)
        return eps * e / per_sample(flat_norm(e, "l1") + z, x)
    direction = torch.randn(x.shape, generator=generator, device=x.device,
                            dtype=x.dtype)
    direction = direction / per_sample(flat_norm(direction, "l2") + _TINY, x)
    d = x[0].numel()
    r = torch.rand(x.shape[0], generator=generator, device=x.device, dtype=x.dtype)
    return direction * per_sample(eps * r ** (1.0 / d), x)


def clip_to_box(x_adv, clip_min, clip_max):
    """Clamp to the pixel box (``None`` bounds are open)."""
    if clip_min is None and clip_max is None:
        return x_adv
    return x_adv.clamp(min=clip_min, max=clip_max)


def project_feasible(x, delta, eps, norm, clip_min, clip_max):
    """``delta`` projected onto the ``norm``-ball, then with ``x + delta`` in the box.

    Returns the feasible perturbation (not the point) of the threat model around
    ``x``. For L1 the projection is the exact one onto the intersection of the
    ball and the box (:func:`project_l1_box`).
    """
    if norm == "l1":
        delta = project_l1_box(delta, eps, *_box_of_perturbation(x, clip_min, clip_max))
        return clip_to_box(x + delta, clip_min, clip_max) - x
    return clip_to_box(x + project(delta, eps, norm), clip_min, clip_max) - x


def normal_start(x, generator, *, eps, norm, clip_min, clip_max):
    """TRADES' start ``0.001 * N(0, I)``, made feasible by :func:`project_feasible`."""
    delta = random_init(x, eps, norm, generator, kind="normal")
    return project_feasible(x, delta, eps, norm, clip_min, clip_max)
