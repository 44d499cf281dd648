"""Warnings raised by sklearn_robust."""

# SPDX-License-Identifier: BSD-3-Clause

__all__ = ["NotLogitsWarning", "GradientMaskingWarning", "BlackBoxAttackWarning",
           "DatasetLearningWarning", "ThreatModelWarning"]


class NotLogitsWarning(UserWarning):
    """The model seems to return probabilities rather than logits.

    Gradient-based attacks on probabilities suffer from vanishing gradients and
    under-report robustness failures.
    """


class GradientMaskingWarning(UserWarning):
    """The evaluation shows signs of gradient masking (robustness may be overstated)."""


class BlackBoxAttackWarning(UserWarning):
    """The estimator has no differentiable view and was scored with a black-box
    attack."""


class DatasetLearningWarning(UserWarning):
    """A robust-dataset learner did not learn what it should.

    Raised when the inner network of a learner stays at chance level (its
    hypergradient is then noise) or when the learned set loses the classes (the
    learner's own model classifies real data much worse at the end than at the
    start, the sign of an ``eps`` too large for the input's scale).
    """


class ThreatModelWarning(UserWarning):
    """The threat model is likely measured in other units than intended.

    Raised when a robust classifier is trained on inputs that look standardised
    with an open clip box (``eps`` is then in standardised units), and when a
    pipeline whose robust classifier follows preprocessing is scored (the scorer's
    ``eps`` is in the pipeline's input units, the classifier's in the
    preprocessed units). Put the preprocessing inside the model instead: the
    classifiers' ``preprocessor=`` parameter or :class:`sklearn_robust.nn.Normalize`.
    """
