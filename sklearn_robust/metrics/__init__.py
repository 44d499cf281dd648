"""Robust-accuracy scorers and robustness metrics."""

# SPDX-License-Identifier: BSD-3-Clause

from ._robust import (ATTACK_PRESETS, RobustScorer, make_robust_scorer,
                      robust_accuracy_score, robust_correct)

__all__ = ["ATTACK_PRESETS", "RobustScorer", "make_robust_scorer",
           "robust_accuracy_score", "robust_correct"]
