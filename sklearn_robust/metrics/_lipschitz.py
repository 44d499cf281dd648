"""Empirical local Lipschitzness (Yang et al., 2020)."""

# SPDX-License-Identifier: BSD-3-Clause

import numpy as np
import torch

from ..attacks._ascent import ascend
from ..attacks._projections import ascent_step, random_init
from ..utils._param_validation import (
    POSITIVE_INT,
    POSITIVE_REAL,
    validate_function_params,
)
from ..utils._torch import eval_mode, make_generator
from ..utils._validation import check_clip_box, check_eps, check_sample_weight
from ..utils._views import get_torch_view
from ._robust import check_scoring_data

__all__ = ["empirical_local_lipschitz", "make_lipschitz_scorer", "LipschitzScorer"]


def _ratio(logits_adv, logits, delta):
    top = (logits_adv - logits).reshape(len(delta), -1).abs().sum(dim=1)
    bottom = (delta + 1e-6).reshape(len(delta), -1).abs().amax(dim=1)
    return top / bottom


@validate_function_params({
    "n_steps": [POSITIVE_INT], "step_size": [POSITIVE_REAL],
    "batch_size": [POSITIVE_INT], "return_per_sample": ["boolean"]})
def empirical_local_lipschitz(estimator, X, *, eps, n_steps=10, step_size=0.003,
                              clip_min=0.0, clip_max=1.0, batch_size=256,
                              random_state=0, return_per_sample=False):
    """Empirical local Lipschitz constant of a fitted estimator's logits.

    ``(1/n) sum_i max_{x' in B_inf(x_i, eps)} ||f(x_i) - f(x')||_1 / ||x_i - x'||_inf``,
    where ``f`` are the logits. The inner maximum is approximated as in Yang et al.
    (2020): ``n_steps`` sign-gradient ascent steps of ``step_size`` on the ratio from
    ``x + 0.001 * N(0, I)``, projected on the linf-ball and the clip box; the
    ratio at the final iterate is reported, with ``1e-6`` added to every coordinate
    of ``x - x'`` before the norm, as in the reference code.

    Parameters
    ----------
    estimator : fitted estimator
        Anything :func:`robust_accuracy_score` can attack white-box.
    X : array-like of shape (n_samples, ...)
        Points at which the local Lipschitzness is measured (inside the clip box).
    eps : float
        Radius of the linf-ball (Yang et al. use the attack radius: 0.1 on MNIST,
        0.031 on CIFAR-10).
    n_steps : int, default=10
        Ascent steps.
    step_size : float, default=0.003
        Sign-step length.
    clip_min, clip_max : float or None, default=0.0, 1.0
        Pixel box; ``None`` leaves a side open.
    batch_size : int, default=256
        Points processed at once.
    random_state : int, RandomState instance or None, default=0
        Seeds the random start (local generator; the global RNG is untouched).
    return_per_sample : bool, default=False
        Return the per-sample ratios instead of their mean.

    Returns
    -------
    lipschitz : float or ndarray of shape (n_samples,)

    Notes
    -----
    The authors' code (``lolip/utils.py``, ``estimate_local_lip_v2``) steps along the
    sign of the gradient of the *negated* ratio, i.e. it descends; this function
    ascends, as the definition's maximum requires, so its values are upper bounds of
    what that code reports for the same model.

    References
    ----------
    .. [1] Y.-Y. Yang, C. Rashtchian, H. Zhang, R. Salakhutdinov and K. Chaudhuri,
       "A Closer Look at Accuracy vs. Robustness", NeurIPS 2020, arXiv:2003.02460.
    """
    check_eps(eps)
    check_clip_box(clip_min, clip_max)
    view = get_torch_view(estimator)
    X, _ = check_scoring_data(estimator, X, clip_min=clip_min, clip_max=clip_max,
                              labels=False)
    device = view.device
    generator = make_generator(random_state, device)
    out = []
    with eval_mode(view):
        for start in range(0, len(X), batch_size):
            x = torch.as_tensor(X[start:start + batch_size], device=device)
            with torch.no_grad():
                logits = view(x)
            with torch.enable_grad():
                x_adv, _ = ascend(
                    view, x, random_init(x, eps, "linf", generator, kind="normal"),
                    lambda out, delta: _ratio(out, logits, delta),
                    lambda grad: ascent_step(grad, step_size, "linf"),
                    n_steps=n_steps, eps=eps, norm="linf", clip_min=clip_min,
                    clip_max=clip_max)
            with torch.no_grad():
                ratio = _ratio(view(x_adv), logits, x_adv - x)
            out.append(ratio.double().cpu().numpy())
    per_sample = np.concatenate(out) if out else np.zeros(0)
    return per_sample if return_per_sample else float(per_sample.mean())


class LipschitzScorer:
    """Scorer returning the *negated* empirical local Lipschitz constant.

    Higher is better, as scikit-learn's model selection expects (like its
    ``neg_*`` scorers); parameters are those of :func:`empirical_local_lipschitz`.
    The ``y`` argument of ``__call__`` is ignored.
    """

    def __init__(self, *, eps, n_steps=10, step_size=0.003, clip_min=0.0, clip_max=1.0,
                 batch_size=256, random_state=0):
        check_eps(eps)
        self.eps = eps
        self.n_steps = n_steps
        self.step_size = step_size
        self.clip_min = clip_min
        self.clip_max = clip_max
        self.batch_size = batch_size
        self.random_state = random_state

    def __call__(self, estimator, X, y=None, sample_weight=None):
        values = empirical_local_lipschitz(
            estimator, X, eps=self.eps, n_steps=self.n_steps, step_size=self.step_size,
            clip_min=self.clip_min, clip_max=self.clip_max, batch_size=self.batch_size,
            random_state=self.random_state, return_per_sample=True)
        return -float(np.average(
            values, weights=check_sample_weight(sample_weight, len(values))))

    def __repr__(self):
        return f"LipschitzScorer(eps={self.eps!r})"


def make_lipschitz_scorer(*, eps, **kwargs):
    """Make a scorer of ``-empirical_local_lipschitz`` (higher is smoother).

    Parameters
    ----------
    eps : float
        Radius of the linf-ball.
    **kwargs
        Other parameters of :func:`empirical_local_lipschitz`.

    Returns
    -------
    scorer : LipschitzScorer
    """
    return LipschitzScorer(eps=eps, **kwargs)
