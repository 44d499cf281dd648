"""The projected gradient ascent loop shared by the iterative attacks."""

# SPDX-License-Identifier: BSD-3-Clause

import functools

import torch

from ._projections import ascent_step, movable_gradient, project_feasible

__all__ = ["ascend", "pgd_step", "compiled_pgd_step"]


def pgd_step(x, delta, grad, step_size, eps, norm, clip_min, clip_max):
    """One step of PGD after its gradient: the steepest-ascent step of length
    ``step_size`` from ``x + delta``, projected onto the threat model.

    The new perturbation ``P(delta + ascent_step(grad))``; for L1 the step leaves
    out the coordinates stuck on a side of the box (:func:`movable_gradient`).
    A pure function of tensors and constants, so that :func:`compiled_pgd_step`
    can fuse its elementwise chain (sign, scale, add, clamp to the ball, clamp to
    the box) into one kernel.
    """
    if norm == "l1":
        grad = movable_gradient(grad, x + delta, clip_min, clip_max)
    return project_feasible(x, delta + ascent_step(grad, step_size, norm), eps, norm,
                            clip_min, clip_max)


@functools.cache
def compiled_pgd_step():
    """:func:`pgd_step` through ``torch.compile`` (built once, on first use).

    One compiled function serves every attack: torch.compile specialises it on
    the norm, the constants, the dtype, the device and (until a second size
    makes it dynamic) the batch shape, recompiling on the first call with each
    new combination and running eagerly past its recompilation limit
    (``torch._dynamo.config.recompile_limit``).
    """
    return torch.compile(pgd_step)


def ascend(model, x, delta, objective, update, *, n_steps, eps, norm, clip_min,
           clip_max, y=None, warn=None, step=None):
    """Projected gradient ascent from ``x + delta`` inside the threat model.

    Makes ``n_steps`` steps ``delta <- P(delta + update(grad))``, where ``grad`` is
    the gradient with respect to ``delta`` of ``objective(model(x + delta),
    delta).sum()`` and ``P`` projects ``delta`` onto the ``norm``-ball of radius
    ``eps`` and then ``x + delta`` into the clip box (for L1, exactly onto the
    intersection of the ball and the box). For L1, ``grad`` is zero on the
    coordinates that sit on a side of the box it points out of
    (:func:`movable_gradient`), so that the sparse step moves coordinates that can
    move, as SLIDE does. PGD, the Langevin sampler,
    the local-linearity attack and the empirical Lipschitz estimate are this loop
    with their own objective and update step. Must run with gradients enabled.

    Parameters
    ----------
    model : callable
        Torch callable returning logits.
    x : tensor of shape (n_samples, ...)
        Clean inputs.
    delta : tensor shaped like ``x``
        The starting perturbation (not projected here).
    objective : callable
        ``objective(logits, delta) -> tensor of shape (n_samples,)``, maximised.
        Samples must not interact, so that each gets the gradient of its own
        objective.
    update : callable or None
        ``update(grad) -> step`` added to ``delta`` before the projection (e.g.
        the steepest-ascent step ``ascent_step``); it may draw noise. Not used
        when ``step`` is given.
    n_steps : int
        Number of steps.
    eps : float
        Radius of the ball.
    norm : {"linf", "l2", "l1"}
        Norm of the ball.
    clip_min, clip_max : float or None
        Pixel box; ``None`` leaves a side open.
    y : tensor of shape (n_samples,) or None, default=None
        Labels whose correct classification is counted, see ``n_correct``.
    warn : callable or None, default=None
        Called with the logits of the first iterate (the attacks' check that
        the model returns logits).
    step : callable or None, default=None
        ``step(x, delta, grad) -> delta``: the whole move after the gradient,
        update and projection in one function (PGD's :func:`pgd_step`, possibly
        compiled), used in place of ``update`` and the projection.

    Returns
    -------
    x_adv : tensor
        The final iterate ``x + delta``, detached.
    n_correct : tensor of shape (n_samples,) or None
        Where ``y`` is given, per sample the number of iterations (checked before
        each update, out of ``n_steps``) at which the iterate was classified as
        ``y``: GAIRAT's geometry value kappa.
    """
    if step is None:
        def step(x, delta, grad):
            if norm == "l1":
                grad = movable_gradient(grad, x + delta, clip_min, clip_max)
            return project_feasible(x, delta + update(grad), eps, norm, clip_min,
                                    clip_max)
    n_correct = None if y is None else torch.zeros(
        x.shape[0], dtype=torch.long, device=x.device)
    for i in range(n_steps):
        delta.requires_grad_(True)
        logits = model(x + delta)
        if warn is not None and i == 0:
            warn(logits)
        if y is not None:
            n_correct += (logits.detach().argmax(dim=1) == y).long()
        (grad,) = torch.autograd.grad(objective(logits, delta).sum(), delta)
        with torch.no_grad():
            delta = step(x, delta, grad)
    return (x + delta).detach(), n_correct
