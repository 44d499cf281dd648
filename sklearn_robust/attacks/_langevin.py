"""Langevin perturbation sampler of DALE (Robey et al., NeurIPS 2021)."""

# SPDX-License-Identifier: BSD-3-Clause

import math

import torch

from ..utils._param_validation import (
    NON_NEGATIVE_REAL,
    POSITIVE_INT,
    POSITIVE_REAL,
    StrOptions,
)
from ._ascent import ascend
from ._base import BaseAttack
from ._projections import ascent_step, laplace_noise, normal_start

__all__ = ["LangevinSampler", "log_one_minus_softmax", "laplace_noise"]

NOISES = ("gaussian", "laplacian")

# constraints of the sampler's noise parameters, shared with the classifiers that
# forward them to it
NOISE_CONSTRAINTS = {
    "noise": [StrOptions(set(NOISES))],
    "noise_scale": [NON_NEGATIVE_REAL],
    "temperature": [NON_NEGATIVE_REAL, None],
}


def log_one_minus_softmax(logits, y):
    """``log(1 - softmax(logits)[y])`` of each sample, computed stably.

    Evaluated as ``logsumexp`` over the classes other than ``y`` minus
    ``logsumexp`` over all classes, which stays finite (with a useful gradient)
    when ``p_y`` rounds to 1, where ``log(1 - p_y)`` would give ``-inf``.

    Parameters
    ----------
    logits : tensor of shape (n_samples, n_classes)
        Logits, ``n_classes >= 2``.
    y : tensor of shape (n_samples,)
        Integer class indices.

    Returns
    -------
    values : tensor of shape (n_samples,)
    """
    if logits.ndim != 2 or logits.shape[1] < 2:
        raise ValueError("log(1 - p_y) needs logits of shape (n_samples, n_classes) "
                         f"with n_classes >= 2, got {tuple(logits.shape)}.")
    others = logits.scatter(1, y[:, None], float("-inf"))
    return torch.logsumexp(others, dim=1) - torch.logsumexp(logits, dim=1)


class LangevinSampler(BaseAttack):
    """Langevin Monte Carlo sampler of perturbations (DALE, Robey et al., 2021).

    Draws perturbations from (an approximation of) the distribution whose density
    grows with the perturbation loss ``1 - p_y(x + delta)``, by noisy sign-gradient
    ascent on ``log(1 - p_y(x + delta))`` projected onto the threat model, starting
    from ``x + 0.001 * N(0, I)``. Two flavours, after ``noise``:

    - ``"gaussian"``: ``x' <- P(x' + step_size * sign(g) + noise_scale * xi)``,
      ``xi ~ N(0, I)``: the noise is added outside the sign;
    - ``"laplacian"``: ``x' <- P(x' + step_size * sign(g + noise_scale * xi))``,
      ``xi ~ Laplace(0, 1)``: the sign of a noisy gradient (the paper's form);

    where ``g = grad_x' log(1 - p_y(x'))`` and ``P`` projects onto the ``eps``-ball
    around ``x`` and then into the clip box. With ``noise_scale=0`` both reduce to
    the deterministic sign ascent (PGD on ``log(1 - p_y)`` from the Gaussian start).

    Parameters
    ----------
    eps : float, default=0.3
        Radius of the threat model's ball (DALE's MNIST setting).
    norm : {"linf", "l2", "l1"}, default="linf"
        Norm of the threat model. For ``"l2"`` the sign is replaced by the
        steepest-ascent direction of the l2 ball, ``v / ||v||_2`` per sample (of
        ``g`` for the Gaussian flavour, of ``g + noise_scale * xi`` for the
        Laplacian one), and ``P`` rescales onto the l2 ball. For ``"l1"`` it is
        replaced by the sparse L1 step of :class:`PGD` (the signs of the top 1%
        entries of ``v``, normalised to L1 length 1), and ``P`` is the exact
        projection onto the intersection of the l1 ball and the clip box.
    n_steps : int, default=7
        Number of Langevin steps (MNIST setting).
    step_size : float or None, default=0.1
        Step length ``eta`` (MNIST setting); ``None`` uses ``2.5 * eps / n_steps``.
    noise : {"gaussian", "laplacian"}, default="gaussian"
        Distribution and placement of the noise (see above).
    noise_scale : float, default=1e-3
        Noise coefficient ``c`` (MNIST setting); 0 gives deterministic steps.
        Ignored when ``temperature`` is given.
    temperature : float or None, default=None
        Alternative parametrisation of the noise: when not None, it overrides
        ``noise_scale`` with ``c = sqrt(2 * step_size * temperature)`` (the
        Langevin relation between step, temperature and noise).
    clip_min, clip_max : float or None, default=0.0, 1.0
        Pixel box; ``None`` leaves a side open. Inputs outside it are rejected.
    random_state : int, RandomState instance or None, default=None
        Seeds the start and the noise through a local :class:`torch.Generator`;
        the global torch RNG is never touched. A ``RandomState`` instance gives
        fresh, reproducible draws at every call.

    See Also
    --------
    PGD : Deterministic projected gradient ascent.
    sklearn_robust.LangevinAdvClassifier : DALE training with this sampler.

    Notes
    -----
    Threat model: untargeted, white-box, ``||x' - x|| <= eps`` in ``norm`` and
    ``clip_min <= x' <= clip_max``; the model must return logits and is put in eval
    mode. The final iterate is returned: it is a sample, not the loss maximiser,
    so use :class:`PGD` (or :func:`~sklearn_robust.metrics.robust_accuracy_score`)
    to evaluate robustness.

    ``log(1 - p_y)`` is computed as ``logsumexp`` over the other classes minus
    ``logsumexp`` over all classes, so it keeps a finite gradient when the model
    is confident (the reference code's ``log(1 - softmax)`` gives ``-inf`` there).

    The gradient ``g`` of each sample is that of its own objective (the batch
    objective is the sum over samples, and samples do not interact in eval mode),
    as in the paper's per-sample update. For the Gaussian flavour, whose noise is
    outside the sign, this is the same as the reference code's batch mean. For the
    Laplacian flavour, whose noise is inside the sign, the scale of ``g`` matters:
    the reference code averages over a batch of ``B`` samples, so its noise
    coefficient ``c`` corresponds to ``B * c`` here (e.g. ``1e-3`` at ``B = 128``
    is ``0.128`` here), and here the result does not depend on the batch size.
    The start ``x + 0.001 * N(0, I)`` is clipped into the box before the first
    gradient (the reference code clips only after the first step).

    With ``return_info=True`` the info dict holds ``"n_correct_steps"``: per
    sample, the number of iterations (checked before each update, out of
    ``n_steps``) at which the point was still classified correctly.

    References
    ----------
    .. [1] A. Robey, L. F. O. Chamon, G. J. Pappas, H. Hassani and A. Ribeiro,
       "Adversarial Robustness with Semi-Infinite Constrained Learning",
       NeurIPS 2021, arXiv:2110.15767. Reference code: github.com/arobey1/advbench.

    Examples
    --------
    >>> import torch
    >>> from sklearn_robust.attacks import LangevinSampler
    >>> model = torch.nn.Linear(4, 3)
    >>> x, y = torch.rand(8, 4), torch.randint(0, 3, (8,))
    >>> sampler = LangevinSampler(eps=0.1, step_size=0.03, noise="laplacian",
    ...                           random_state=0)
    >>> x_adv = sampler.perturb(model, x, y)
    >>> bool((x_adv - x).abs().max() <= 0.1 + 1e-6)
    True
    """

    def __init__(self, *, eps=0.3, norm="linf", n_steps=7, step_size=0.1,
                 noise="gaussian", noise_scale=1e-3, temperature=None, clip_min=0.0,
                 clip_max=1.0, random_state=None):
        self.eps = eps
        self.norm = norm
        self.n_steps = n_steps
        self.step_size = step_size
        self.noise = noise
        self.noise_scale = noise_scale
        self.temperature = temperature
        self.clip_min = clip_min
        self.clip_max = clip_max
        self.random_state = random_state

    _parameter_constraints = {
        **BaseAttack._parameter_constraints,
        "n_steps": [POSITIVE_INT],
        "step_size": [POSITIVE_REAL, None],
        **NOISE_CONSTRAINTS,
    }

    def _step_size(self):
        """The step length ``eta`` (``2.5 * eps / n_steps`` when ``None``)."""
        if self.step_size is None:
            return 2.5 * float(self.eps) / self.n_steps
        return float(self.step_size)

    def _noise_scale(self):
        """The noise coefficient ``c``; ``sqrt(2 * eta * T)`` with a temperature."""
        if self.temperature is not None:
            return math.sqrt(2.0 * self._step_size() * float(self.temperature))
        return float(self.noise_scale)

    def _perturb(self, model, x, y, generator, return_info):
        norm = self.norm
        eta, c = self._step_size(), self._noise_scale()

        def objective(logits, _delta):
            # per-sample objectives summed: each sample gets its own gradient
            return log_one_minus_softmax(logits, y)

        def update(grad):
            if self.noise == "gaussian":
                step = ascent_step(grad, eta, norm)
                if c > 0:
                    step = step + c * torch.randn(x.shape, generator=generator,
                                                  device=x.device, dtype=x.dtype)
                return step
            if c > 0:
                grad = grad + c * laplace_noise(grad, generator)
            return ascent_step(grad, eta, norm)

        threat = self._threat()
        x_adv, kappa = ascend(model, x, normal_start(x, generator, **threat), objective,
                              update, n_steps=self.n_steps, **threat,
                              y=y if return_info else None,
                              warn=self._warn_if_probabilities)
        return x_adv, ({"n_correct_steps": kappa} if return_info else {})

    def _unchanged_info(self, correct, x, y):
        return {"n_correct_steps": correct.long() * self.n_steps}
