"""The projected gradient ascent loop shared by the iterative attacks."""

# SPDX-License-Identifier: BSD-3-Clause

import torch

from ._projections import movable_gradient, project_feasible

__all__ = ["ascend"]


def ascend(model, x, delta, objective, update, *, n_steps, eps, norm, clip_min,
           clip_max, y=None, warn=None):
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
    update : callable
        ``update(grad) -> step`` added to ``delta`` before the projection (e.g.
        the steepest-ascent step ``ascent_step``); it may draw noise.
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

    Returns
    -------
    x_adv : tensor
        The final iterate ``x + delta``, detached.
    n_correct : tensor of shape (n_samples,) or None
        Where ``y`` is given, per sample the number of iterations (checked before
        each update, out of ``n_steps``) at which the iterate was classified as
        ``y``: GAIRAT's geometry value kappa.
    """
    n_correct = None if y is None else torch.zeros(
        x.shape[0], dtype=torch.long, device=x.device)
    for step in range(n_steps):
        delta.requires_grad_(True)
        logits = model(x + delta)
        if warn is not None and step == 0:
            warn(logits)
        if y is not None:
            n_correct += (logits.detach().argmax(dim=1) == y).long()
        (grad,) = torch.autograd.grad(objective(logits, delta).sum(), delta)
        with torch.no_grad():
            if norm == "l1":
                grad = movable_gradient(grad, x + delta, clip_min, clip_max)
            delta = project_feasible(x, delta + update(grad), eps, norm, clip_min,
                                     clip_max)
    return (x + delta).detach(), n_correct
