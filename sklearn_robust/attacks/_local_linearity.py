"""The local-linearity attack of LLR training (Qin et al., 2019)."""

# SPDX-License-Identifier: BSD-3-Clause

import torch

from ..utils._docstring import FRAGMENTS, Substitution
from ..utils._param_validation import POSITIVE_INT, POSITIVE_REAL
from ._ascent import ascend
from ._base import BaseAttack
from ._losses import _ce_loss as ce_loss
from ._projections import ascent_step, normal_start

__all__ = ["LocalLinearityAttack", "per_sample_dot"]


def per_sample_dot(a, b):
    """Per-sample inner product over all but the first dimension."""
    return (a * b).reshape(a.shape[0], -1).sum(dim=1)


@Substitution(**FRAGMENTS)
class LocalLinearityAttack(BaseAttack):
    """Inner maximisation of LLR: the perturbation where the loss is least linear.

    Maximises ``|l(x + delta) - l(x) - <delta, grad l(x)>|`` (``l`` the per-sample
    cross-entropy) over the ``norm``-ball and the pixel box by ``n_steps``
    steepest-ascent steps (signed for linf, normalised for l2, sparse as in
    :class:`~sklearn_robust.attacks.PGD` for l1) from ``0.001 * N(0, I)``.

    Parameters
    ----------
    eps : float, default=0.1
        Radius of the ball.
    norm : {"linf", "l2", "l1"}, default="linf"
        Norm of the ball.
    n_steps : int, default=2
        Ascent steps (Yang et al. use 2).
    step_size : float or None, default=None
        Step length; ``None`` uses ``eps / n_steps`` (``eps / 2`` for 2 steps, as
        in the reference code).
    %(clip_box)s
    random_state : int, RandomState instance or None, default=None
        Seeds the random start (local generator).

    Notes
    -----
    The reference code (``lolip/models/torch_utils/llr.py``) steps along the
    gradient divided by its ``norm`` (for linf this moves mostly one coordinate)
    and maximises ``|l(x + delta) - <delta, grad>|`` without the ``- l(x)`` term;
    this attack takes the steepest-ascent step of the ball and Qin et al.'s
    definition of the gap. The gradient ``grad l(x)`` is computed once, in the
    mode the attack runs in (eval).

    References
    ----------
    .. [1] C. Qin, J. Martens, S. Gowal, D. Krishnan, K. Dvijotham, A. Fawzi,
       S. De, R. Stanforth and P. Kohli, "Adversarial Robustness through Local
       Linearization", NeurIPS 2019, arXiv:1907.02610.
    """

    def __init__(self, *, eps=0.1, norm="linf", n_steps=2, step_size=None,
                 clip_min=0.0, clip_max=1.0, random_state=None):
        self.eps = eps
        self.norm = norm
        self.n_steps = n_steps
        self.step_size = step_size
        self.clip_min = clip_min
        self.clip_max = clip_max
        self.random_state = random_state

    _parameter_constraints = {**BaseAttack._parameter_constraints,
                              "n_steps": [POSITIVE_INT],
                              "step_size": [POSITIVE_REAL, None]}

    def _perturb(self, model, x, y, generator, return_info):
        eps, norm = float(self.eps), self.norm
        step = (eps / self.n_steps if self.step_size is None
                else float(self.step_size))
        x = x.detach()
        x0 = x.clone().requires_grad_(True)
        logits0 = model(x0)
        self._warn_if_probabilities(logits0.detach())
        loss0 = ce_loss(logits0, y)
        (grad0,) = torch.autograd.grad(loss0.sum(), x0)
        loss0 = loss0.detach()

        def objective(logits, delta):
            return (ce_loss(logits, y) - loss0 - per_sample_dot(delta, grad0)).abs()

        def update(grad):
            return ascent_step(grad, step, norm)

        threat = self._threat()
        x_adv, _ = ascend(model, x, normal_start(x, generator, **threat), objective,
                          update, n_steps=self.n_steps, **threat)
        return x_adv, {}
