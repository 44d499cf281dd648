"""Projected gradient descent (Madry et al., 2018) and FGSM (Goodfellow et al.,
2015)."""

# SPDX-License-Identifier: BSD-3-Clause

import functools

import torch

from ..utils._param_validation import POSITIVE_INT, POSITIVE_REAL, StrOptions
from ._ascent import ascend, compiled_pgd_step, pgd_step
from ._base import BaseAttack
from ._losses import LOSSES, get_loss
from ._projections import clip_to_box, random_init

__all__ = ["PGD", "FGSM"]


class PGD(BaseAttack):
    """Projected gradient descent attack (Madry et al., 2018).

    Maximises a loss inside the ``norm``-ball of radius ``eps`` (intersected with
    the clip box) by steepest-ascent steps of the ball, projecting after each
    step: signed gradient steps (linf), normalised gradient steps (l2) or sparse
    steps on the largest gradient entries (l1, SLIDE).

    Parameters
    ----------
    eps : float, default=0.3
        Radius of the threat model's ball.
    norm : {"linf", "l2", "l1"}, default="linf"
        Norm of the threat model.
    n_steps : int, default=10
        Number of gradient steps.
    step_size : float or None, default=None
        Step length. ``None`` uses ``2.5 * eps / n_steps`` (Madry et al.).
    random_start : bool or {"uniform", "normal"}, default=True
        Start from a uniform point of the ball (``True``/``"uniform"``), from
        ``x + 0.001 * N(0, I)`` (``"normal"``, as in TRADES) or from ``x``
        (``False``).
    n_restarts : int, default=1
        Number of runs; per sample, the run that fools the model (else the one with
        the highest loss) is kept.
    loss : {"ce", "kl", "cw", "dlr"} or callable, default="ce"
        Objective to maximise: cross-entropy, KL divergence to the clean prediction
        (TRADES), Carlini-Wagner margin, difference of logits ratio, or a callable
        ``loss(logits, y) -> per-sample tensor``.
    clip_min, clip_max : float or None, default=0.0, 1.0
        Pixel box; ``None`` leaves a side open. Inputs outside it are rejected.
    random_state : int, RandomState instance or None, default=None
        Seeds the random start through a local :class:`torch.Generator`; the global
        torch RNG is never touched.
    compile : bool, default=False
        Run the step after each gradient (the ascent step and the projection onto
        the threat model) through ``torch.compile``, which fuses its chain of
        elementwise operations into one kernel: fewer kernel launches per step
        on a GPU. The model itself is not compiled (compile it, or use a
        classifier's ``compile=True``). The first call with each new norm,
        constant, dtype or device compiles (seconds); on a CPU the fused step is
        no faster. Results equal the eager step's for L-inf; for L2 and L1 the
        fused reductions may round differently (about 1e-7).

    See Also
    --------
    FGSM : Single-step attack.
    sklearn_robust.metrics.robust_accuracy_score : Evaluate a fitted estimator.

    Notes
    -----
    Threat model: untargeted, white-box, ``||x_adv - x|| <= eps`` in ``norm`` and
    ``clip_min <= x_adv <= clip_max``. The model must return logits. The final iterate
    of each run is returned. With ``return_info=True`` the info dict holds
    ``"n_correct_steps"``: per sample, the number of iterations (checked before each
    update, out of ``n_steps``) at which the point was still classified correctly,
    GAIRAT's geometry value kappa (Zhang et al., 2021).

    L1 (``norm="l1"``): the exact steepest-ascent direction of the L1 ball moves a
    single coordinate, which makes slow progress; as SLIDE (Tramer & Boneh,
    2019), each step of L1 length ``step_size`` is spread equally, with the signs
    of the gradient, over the coordinates whose ``|grad|`` is in the top
    :data:`~sklearn_robust.attacks._projections.L1_STEP_FRACTION` (1%, SLIDE's
    99th percentile; at least one coordinate), leaving out the coordinates that
    sit on a side of the clip box that the gradient points out of. Each step is
    followed by the exact projection onto the intersection of the L1 ball and
    the clip box (Croce & Hein, 2021), not a projection onto the ball followed by
    clipping. The uniform random start is uniform in the volume of the L1 ball,
    then clipped into the box. :class:`APGD` with ``norm="l1"`` adapts the
    sparsity of the step and is the stronger L1 attack.

    References
    ----------
    .. [1] A. Madry, A. Makelov, L. Schmidt, D. Tsipras and A. Vladu, "Towards Deep
       Learning Models Resistant to Adversarial Attacks", ICLR 2018,
       arXiv:1706.06083.
    .. [2] H. Zhang, Y. Yu, J. Jiao, E. Xing, L. El Ghaoui and M. Jordan,
       "Theoretically Principled Trade-off between Robustness and Accuracy",
       ICML 2019, arXiv:1901.08573.
    .. [3] F. Tramer and D. Boneh, "Adversarial Training and Robustness for
       Multiple Perturbations", NeurIPS 2019, arXiv:1904.13000.
    .. [4] F. Croce and M. Hein, "Mind the box: l1-APGD for sparse adversarial
       attacks on image classifiers", ICML 2021, arXiv:2103.01208.

    Examples
    --------
    >>> import torch
    >>> from sklearn_robust.attacks import PGD
    >>> model = torch.nn.Linear(4, 3)
    >>> x, y = torch.rand(8, 4), torch.randint(0, 3, (8,))
    >>> x_adv = PGD(eps=0.1, random_state=0).perturb(model, x, y)
    >>> bool((x_adv - x).abs().max() <= 0.1 + 1e-6)
    True
    """

    def __init__(self, *, eps=0.3, norm="linf", n_steps=10, step_size=None,
                 random_start=True, n_restarts=1, loss="ce", clip_min=0.0,
                 clip_max=1.0, random_state=None, compile=False):
        self.eps = eps
        self.norm = norm
        self.n_steps = n_steps
        self.step_size = step_size
        self.random_start = random_start
        self.n_restarts = n_restarts
        self.loss = loss
        self.clip_min = clip_min
        self.clip_max = clip_max
        self.random_state = random_state
        self.compile = compile

    _parameter_constraints = {
        **BaseAttack._parameter_constraints,
        "n_steps": [POSITIVE_INT],
        "n_restarts": [POSITIVE_INT],
        "step_size": [POSITIVE_REAL, None],
        "random_start": ["boolean", StrOptions({"uniform", "normal"})],
        "loss": [StrOptions(set(LOSSES)), callable],
        "compile": ["boolean"],
    }

    def _step_size(self):
        if self.step_size is None:
            return 2.5 * self.eps / self.n_steps
        return float(self.step_size)

    def _start(self, x, generator):
        """The starting perturbation of a run, inside the clip box."""
        if not self.random_start:
            return torch.zeros_like(x)
        kind = "normal" if self.random_start == "normal" else "uniform"
        delta = random_init(x, float(self.eps), self.norm, generator, kind)
        return clip_to_box(x + delta, self.clip_min, self.clip_max) - x

    def _perturb(self, model, x, y, generator, return_info):
        loss_fn = get_loss(self.loss)
        clean_logits = None
        if self.loss == "kl":
            with torch.no_grad():
                clean_logits = model(x)
        step_size = self._step_size()

        def objective(logits, _delta):
            return loss_fn(logits, y, clean_logits)

        threat = self._threat()
        step = functools.partial(compiled_pgd_step() if self.compile else pgd_step,
                                 step_size=step_size, **threat)
        best = None
        for restart in range(self.n_restarts):
            x_adv, kappa = ascend(
                model, x, self._start(x, generator), objective, None,
                n_steps=self.n_steps, **threat, y=y if return_info else None,
                warn=self._warn_if_probabilities if restart == 0 else None,
                step=step)
            if self.n_restarts == 1:  # the run is the result (the training attacks)
                return x_adv, ({"n_correct_steps": kappa} if return_info else {})
            if best is None:  # per sample, the run kept so far
                best = x.clone()
                best_kappa = torch.zeros(x.shape[0], dtype=torch.long,
                                         device=x.device)
                best_fooled = torch.zeros(x.shape[0], dtype=torch.bool,
                                          device=x.device)
                best_loss = torch.full((x.shape[0],), float("-inf"), device=x.device)
            with torch.no_grad():
                logits = model(x_adv)
                fooled = logits.argmax(dim=1) != y
                value = loss_fn(logits, y, clean_logits)
            # prefer a restart that fools the model, then the one with the highest
            # loss
            better = (fooled & ~best_fooled) | ((fooled == best_fooled)
                                                & (value > best_loss))
            # torch.where, not boolean indexing: no host synchronisation
            best = torch.where(better.view(-1, *[1] * (x.ndim - 1)), x_adv, best)
            if return_info:
                best_kappa = torch.where(better, kappa, best_kappa)
            best_loss = torch.where(better, value, best_loss)
            best_fooled |= fooled
        return best, ({"n_correct_steps": best_kappa} if return_info else {})

    def _unchanged_info(self, correct, x, y):
        # with eps=0 every iterate equals x: kappa is n_steps where x is correct
        return {"n_correct_steps": correct.long() * self.n_steps}


class FGSM(PGD):
    """Fast gradient sign method (Goodfellow et al., 2015).

    A single step of size ``eps`` from the clean point: the sign of the gradient for
    ``norm="linf"``, the normalised gradient for ``norm="l2"`` (fast gradient method),
    the sparse step of :class:`PGD` on the top 1% of the gradient entries for
    ``norm="l1"``, followed by the projection onto the threat model.

    Parameters
    ----------
    eps : float, default=0.3
        Radius of the threat model's ball.
    norm : {"linf", "l2", "l1"}, default="linf"
        Norm of the threat model.
    loss : {"ce", "kl", "cw", "dlr"} or callable, default="ce"
        Objective to maximise (see :class:`PGD`).
    clip_min, clip_max : float or None, default=0.0, 1.0
        Pixel box; ``None`` leaves a side open.

    See Also
    --------
    PGD : The iterated, projected version.

    Notes
    -----
    Threat model: untargeted, white-box, ``norm``-ball of radius ``eps``. FGSM is a
    weak attack: use it for cheap training, never to claim robustness.

    References
    ----------
    .. [1] I. Goodfellow, J. Shlens and C. Szegedy, "Explaining and Harnessing
       Adversarial Examples", ICLR 2015, arXiv:1412.6572.
    """

    def __init__(self, *, eps=0.3, norm="linf", loss="ce", clip_min=0.0, clip_max=1.0):
        self.eps = eps
        self.norm = norm
        self.loss = loss
        self.clip_min = clip_min
        self.clip_max = clip_max

    # FGSM is PGD with one full-size step from the clean point
    n_steps = 1
    n_restarts = 1
    random_start = False
    random_state = 0
    step_size = None
    compile = False

    def _step_size(self):
        return float(self.eps)
