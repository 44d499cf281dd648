"""Lp-ball projections, steps and random starts as pure tensor functions."""

# SPDX-License-Identifier: BSD-3-Clause

import torch

from ..utils._torch import flat_norm, per_sample

__all__ = ["flat_norm", "project", "ascent_step", "random_init", "clip_to_box",
           "project_feasible", "normal_start"]

_TINY = 1e-12


def project(delta, eps, norm):
    """Project each row of ``delta`` onto the ``norm``-ball of radius ``eps``."""
    if norm == "linf":
        return delta.clamp(-eps, eps)
    scale = (eps / (flat_norm(delta, "l2") + _TINY)).clamp(max=1.0)
    return delta * per_sample(scale, delta)


def ascent_step(grad, step_size, norm):
    """Steepest-ascent direction for ``norm`` scaled by ``step_size``."""
    if norm == "linf":
        return step_size * grad.sign()
    return step_size * grad / per_sample(flat_norm(grad, "l2") + _TINY, grad)


def random_init(x, eps, norm, generator, kind="uniform"):
    """A random starting perturbation.

    ``"uniform"``: uniform in the linf-ball, or uniform in the volume of the
    l2-ball. ``"normal"``: ``0.001 * N(0, I)`` (the TRADES start).
    """
    if kind == "normal":
        return 1e-3 * torch.randn(x.shape, generator=generator, device=x.device,
                                  dtype=x.dtype)
    if norm == "linf":
        u = torch.rand(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        return (2 * u - 1) * eps
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
    ``x``.
    """
    return clip_to_box(x + project(delta, eps, norm), clip_min, clip_max) - x


def normal_start(x, generator, *, eps, norm, clip_min, clip_max):
    """TRADES' start ``0.001 * N(0, I)``, made feasible by :func:`project_feasible`."""
    delta = random_init(x, eps, norm, generator, kind="normal")
    return project_feasible(x, delta, eps, norm, clip_min, clip_max)
