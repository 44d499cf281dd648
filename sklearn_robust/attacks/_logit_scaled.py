"""Logit-scaled PGD (Hitaj et al., 2021): PGD on a model with scaled logits."""

# SPDX-License-Identifier: BSD-3-Clause

from ..utils._param_validation import POSITIVE_REAL
from ._pgd import PGD

__all__ = ["LogitScaledPGD"]


class _ScaledLogits:
    """The logits of ``model`` multiplied by ``scale``."""

    def __init__(self, model, scale):
        self.model = model
        self.scale = scale

    def __call__(self, x):
        return self.model(x) * self.scale


class LogitScaledPGD(PGD):
    """PGD on logits multiplied by a constant (Hitaj et al., 2021).

    Cross-entropy attacks depend on the scale of the logits: when a model outputs
    logits of very small magnitude, its softmax is nearly uniform and the
    cross-entropy gradient is spread over all wrong classes instead of pointing to
    the closest one, which hides adversarial examples from PGD (observed on GAIRAT
    by Hitaj et al.). Multiplying the logits by ``logit_scale > 1`` restores a
    peaked softmax; ``logit_scale < 1`` conversely un-saturates huge logits whose
    cross-entropy gradient underflows to zero.

    Parameters
    ----------
    eps : float, default=0.3
        Radius of the threat model's ball.
    norm : {"linf", "l2", "l1"}, default="linf"
        Norm of the threat model.
    n_steps : int, default=10
        Number of gradient steps.
    step_size : float or None, default=None
        Step length; ``None`` uses ``2.5 * eps / n_steps``.
    random_start : bool or {"uniform", "normal"}, default=True
        Random start (see :class:`PGD`).
    n_restarts : int, default=1
        Number of runs; per sample the best one is kept.
    loss : {"ce", "kl", "cw", "dlr"} or callable, default="ce"
        Objective computed on the scaled logits.
    logit_scale : float, default=10.0
        Factor applied to the model's logits before the loss.
    clip_min, clip_max : float or None, default=0.0, 1.0
        Pixel box; ``None`` leaves a side open.
    random_state : int, RandomState instance or None, default=None
        Seeds the random start through a local :class:`torch.Generator`.

    See Also
    --------
    PGD : The same attack without scaling.
    APGDT : Its DLR loss is invariant to the scale of the logits.

    Notes
    -----
    Threat model: untargeted, white-box, ``norm``-ball of radius ``eps``. Scaling the
    logits does not change the model's predictions, only the attack's objective.
    Info keys are those of :class:`PGD`.

    References
    ----------
    .. [1] D. Hitaj, G. Pagnotta, I. Masi and L. V. Mancini, "Evaluating the
       Robustness of Geometry-Aware Instance-Reweighted Adversarial Training",
       2021, arXiv:2103.01914.

    Examples
    --------
    >>> import torch
    >>> from sklearn_robust.attacks import LogitScaledPGD
    >>> model = torch.nn.Linear(4, 3)
    >>> x, y = torch.rand(8, 4), torch.randint(0, 3, (8,))
    >>> LogitScaledPGD(eps=0.1, random_state=0).perturb(model, x, y).shape
    torch.Size([8, 4])
    """

    def __init__(self, *, eps=0.3, norm="linf", n_steps=10, step_size=None,
                 random_start=True, n_restarts=1, loss="ce", logit_scale=10.0,
                 clip_min=0.0, clip_max=1.0, random_state=None):
        super().__init__(eps=eps, norm=norm, n_steps=n_steps, step_size=step_size,
                         random_start=random_start, n_restarts=n_restarts, loss=loss,
                         clip_min=clip_min, clip_max=clip_max,
                         random_state=random_state)
        self.logit_scale = logit_scale

    _parameter_constraints = {**PGD._parameter_constraints,
                              "logit_scale": [POSITIVE_REAL]}

    def _perturb(self, model, x, y, generator, return_info):
        scaled = _ScaledLogits(model, float(self.logit_scale))
        return super()._perturb(scaled, x, y, generator, return_info)

    def _warn_if_probabilities(self, logits):
        # judge the model's own outputs, not the scaled ones
        super()._warn_if_probabilities(logits / float(self.logit_scale))
