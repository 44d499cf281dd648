"""Gradient-masking diagnostics: AutoAttack's sanity checks, as a report and
warnings."""

# SPDX-License-Identifier: BSD-3-Clause

import numbers
import warnings
from dataclasses import dataclass, field

import numpy as np
import torch

from ..attacks import PGD
from ..attacks._base import _looks_like_probabilities
from ..exceptions import GradientMaskingWarning, NotLogitsWarning
from ..utils._param_validation import (
    NON_NEGATIVE_INT,
    POSITIVE_INT,
    Interval,
    validate_function_params,
)
from ..utils._progress import log_line
from ..utils._torch import eval_mode
from ..utils._validation import check_clip_box, check_eps, check_norm
from ..utils._views import get_torch_view
from ._robust import _report_on_view, _resolve_attacks, check_scoring_data

__all__ = ["GradientMaskingReport", "gradient_masking_report"]


@dataclass
class GradientMaskingReport:
    """What :func:`gradient_masking_report` measured, and which checks fired.

    Attributes
    ----------
    flags : dict of str to bool
        ``True`` where a check found evidence of gradient masking:
        ``"probabilities"``, ``"zero_gradients"``, ``"black_box_beats_white_box"``,
        ``"more_steps_raise_accuracy"``, ``"larger_eps_raises_accuracy"``,
        ``"unbounded_attack_fails"`` and ``"randomized"``.
    messages : dict of str to str
        A sentence per fired check.
    values : dict
        The numbers behind the checks (accuracies, fractions).
    """

    flags: dict = field(default_factory=dict)
    messages: dict = field(default_factory=dict)
    values: dict = field(default_factory=dict)

    @property
    def masking_suspected(self):
        """True when any check fired."""
        return any(self.flags.values())

    def _flag(self, name, fired, message):
        self.flags[name] = bool(fired)
        if fired:
            self.messages[name] = message

    def __repr__(self):
        fired = [k for k, v in self.flags.items() if v]
        return f"GradientMaskingReport(fired={fired})"


def _input_gradients(view, x, y):
    x = x.clone().requires_grad_(True)
    with torch.enable_grad():
        loss = torch.nn.functional.cross_entropy(view(x), y, reduction="sum")
        (grad,) = torch.autograd.grad(loss, x, allow_unused=True)
    if grad is None:
        return torch.zeros_like(x)
    return grad


CHECKS = ("randomized", "probabilities", "zero_gradients", "more_steps_raise_accuracy",
          "larger_eps_raises_accuracy", "unbounded_attack_fails",
          "black_box_beats_white_box")


@validate_function_params({
    "n_samples": [POSITIVE_INT], "square_queries": [POSITIVE_INT],
    "tolerance": [Interval(numbers.Real, 0, 1, closed="both")], "warn": ["boolean"],
    "verbose": [NON_NEGATIVE_INT]})
def gradient_masking_report(estimator, X, y, *, eps, norm="linf", clip_min=0.0,
                            clip_max=1.0, n_samples=200, square_queries=1000,
                            tolerance=0.02, checks=None, random_state=0, warn=True,
                            verbose=0):
    """Look for the signs of gradient masking that make robustness look too good.

    Runs AutoAttack's sanity checks (Croce & Hein, 2020) and the evaluation
    red flags of Carlini et al. (2019) on up to ``n_samples`` points:

    - **probabilities**: the outputs look like probabilities, not logits;
    - **zero_gradients**: input gradients of the loss vanish on some points;
    - **black_box_beats_white_box**: the score-based Square attack fools more
      than a fraction ``tolerance`` of the points that white-box PGD
      (cross-entropy and margin losses) could not (the count and the fraction
      are in ``report.values``: AutoAttack's own check warns at any such point,
      but one point in hundreds is within the attacks' randomness);
    - **more_steps_raise_accuracy**: robust accuracy under PGD with 100 steps is
      higher than with 10 steps;
    - **larger_eps_raises_accuracy**: robust accuracy at ``2 * eps`` is higher than
      at ``eps``;
    - **unbounded_attack_fails**: with the whole clip box (or a huge radius)
      allowed, PGD still leaves points correctly classified;
    - **randomized**: two forward passes in eval mode differ.

    Parameters
    ----------
    estimator : fitted estimator
        Anything :func:`robust_accuracy_score` attacks white-box.
    X, y : array-like
        Evaluation data (inside the clip box).
    eps : float
        Radius of the threat model.
    norm : {"linf", "l2"}, default="linf"
        Norm of the threat model.
    clip_min, clip_max : float or None, default=0.0, 1.0
        Pixel box.
    n_samples : int, default=200
        Points checked (the first ``n_samples``).
    square_queries : int, default=1000
        Query budget of the black-box check.
    tolerance : float in [0, 1], default=0.02
        Accuracy increase tolerated before the monotonicity checks fire, the
        accuracy an unbounded attack may leave, and the fraction of points only
        the black-box attack may fool.
    random_state : int, default=0
        Seeds the attacks.
    checks : list of str, default=None
        The checks to run (names as in ``report.flags``); None runs them all.
    warn : bool, default=True
        Emit a :class:`~sklearn_robust.exceptions.GradientMaskingWarning` (or a
        ``NotLogitsWarning``) per fired check.
    verbose : int, default=0
        If > 0, print each check's result as it is done, and the attacks' log
        lines (robust accuracy after each attack, time) with ``verbose`` > 1.

    Returns
    -------
    report : GradientMaskingReport

    References
    ----------
    .. [1] F. Croce and M. Hein, "Reliable evaluation of adversarial robustness
       with an ensemble of diverse parameter-free attacks", ICML 2020.
    .. [2] N. Carlini et al., "On Evaluating Adversarial Robustness",
       arXiv:1902.06705, 2019.
    .. [3] A. Athalye, N. Carlini and D. Wagner, "Obfuscated Gradients Give a False
       Sense of Security", ICML 2018.
    """
    from ..attacks import Square

    check_eps(eps)
    check_norm(norm)
    checks = CHECKS if checks is None else tuple(checks)
    unknown = set(checks) - set(CHECKS)
    if unknown:
        raise ValueError(f"Unknown checks {sorted(unknown)}; choose from {CHECKS}.")
    check_clip_box(clip_min, clip_max)
    view = get_torch_view(estimator)
    X, y = check_scoring_data(estimator, X, y, clip_min=clip_min, clip_max=clip_max)
    # every label checked, the first n_samples used
    codes = view.resolve_classes(X).encode(y)[:n_samples]
    X, y = X[:n_samples], y[:n_samples]
    report = GradientMaskingReport()

    def flag(name, fired, message):
        report._flag(name, fired, message)
        log_line(verbose, f"{name}: {'FIRED' if fired else 'ok'}")
    box = dict(clip_min=clip_min, clip_max=clip_max, random_state=random_state)

    def score(attack, radius=eps):
        attacks = _resolve_attacks(attack, eps=radius, norm=norm, **box)
        return _report_on_view(view, X, y, attacks, eps=radius, norm=norm,
                               clip_min=clip_min, clip_max=clip_max, batch_size=256,
                               verbose=max(verbose - 1, 0)).robust

    device = view.device
    x = torch.as_tensor(X, device=device)
    t = torch.as_tensor(codes, device=device)
    with eval_mode(view), torch.no_grad():
        out1, out2 = view(x), view(x)
    clean = (out1.argmax(dim=1) == t).cpu().numpy()
    report.values["clean_accuracy"] = float(clean.mean())
    if "randomized" in checks:
        change = float((out1 - out2).abs().max())
        report.values["max_output_change"] = change
        flag("randomized", change > 1e-6,
             "Two forward passes in eval mode differ: the model is randomised, "
             "so gradient attacks need expectation over transformation (EOT).")
    if "probabilities" in checks:
        flag("probabilities", _looks_like_probabilities(out1),
             "The model's outputs look like probabilities (in [0, 1], rows "
             "summing to 1); attacks need logits.")
    if "zero_gradients" in checks:
        with eval_mode(view):
            grads = _input_gradients(view, x, t)
        zero = grads.reshape(len(x), -1).abs().amax(dim=1) < 1e-12
        report.values["zero_gradient_fraction"] = float(zero.float().mean())
        flag("zero_gradients", bool(zero.any()),
             f"The input gradient is zero on {int(zero.sum())} of {len(x)} "
             "points: white-box attacks cannot move from there.")

    pgd10 = PGD(n_steps=10, step_size=None)
    pgd100 = PGD(n_steps=100, step_size=None)
    if {"more_steps_raise_accuracy", "larger_eps_raises_accuracy"} & set(checks):
        acc100 = score(pgd100).mean()
        report.values["pgd100_accuracy"] = float(acc100)
    if "more_steps_raise_accuracy" in checks:
        acc10 = score(pgd10).mean()
        report.values["pgd10_accuracy"] = float(acc10)
        flag("more_steps_raise_accuracy", acc100 > acc10 + tolerance,
             f"PGD-100 leaves {acc100:.3f} robust accuracy, more than PGD-10 "
             f"({acc10:.3f}): the loss surface misleads the attack.")
    if "larger_eps_raises_accuracy" in checks:
        acc2 = score(pgd100, 2 * eps).mean()
        report.values["pgd100_accuracy_2eps"] = float(acc2)
        flag("larger_eps_raises_accuracy", acc2 > acc100 + tolerance,
             f"Robust accuracy at 2*eps ({acc2:.3f}) exceeds that at eps "
             f"({acc100:.3f}).")
    if "unbounded_attack_fails" in checks:
        bounded = clip_min is not None and clip_max is not None
        huge = (clip_max - clip_min) if bounded else 1e3
        if norm == "l2":
            huge *= np.sqrt(X[0].size)
        unbounded = score(pgd100, huge).mean()
        report.values["unbounded_accuracy"] = float(unbounded)
        flag("unbounded_attack_fails", unbounded > tolerance,
             f"With an unbounded radius PGD still leaves {unbounded:.3f} "
             "accuracy; a working attack reaches 0.")
    if "black_box_beats_white_box" in checks:
        white = score([pgd10, PGD(n_steps=100, step_size=None, loss="cw")])
        black = score(Square(n_queries=square_queries))
        beaten = white & ~black
        report.values.update(white_box_accuracy=float(white.mean()),
                             square_only_fooled=int(beaten.sum()),
                             square_only_fooled_fraction=float(beaten.mean()))
        flag("black_box_beats_white_box", beaten.mean() > tolerance,
             f"The black-box Square attack fooled {int(beaten.sum())} of {len(X)} "
             f"points ({beaten.mean():.1%}, more than the tolerance of "
             f"{tolerance:.1%}) that white-box PGD could not: gradients may be "
             "masked.")

    if warn:
        for name, message in report.messages.items():
            category = NotLogitsWarning if name == "probabilities" else \
                GradientMaskingWarning
            warnings.warn(message, category, stacklevel=2)
    return report
