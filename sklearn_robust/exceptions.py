"""Warnings raised by sklearn_robust."""

# SPDX-License-Identifier: BSD-3-Clause

__all__ = ["NotLogitsWarning", "GradientMaskingWarning", "BlackBoxAttackWarning"]


class NotLogitsWarning(UserWarning):
    """The model seems to return probabilities rather than logits.

    Gradient-based attacks on probabilities suffer from vanishing gradients and
    under-report robustness failures.
    """


class GradientMaskingWarning(UserWarning):
    """The evaluation shows signs of gradient masking (robustness may be overstated)."""


class BlackBoxAttackWarning(UserWarning):
    """The estimator has no differentiable view and was scored with a black-box attack."""
