"""Robust-accuracy scorers and robustness metrics."""

# SPDX-License-Identifier: BSD-3-Clause

from ._diagnostics import GradientMaskingReport, gradient_masking_report
from ._display import RobustnessCurveDisplay
from ._history import LearnedSetDisplay, TrainingHistoryDisplay
from ._lipschitz import (
                         LipschitzScorer,
                         empirical_local_lipschitz,
                         make_lipschitz_scorer,
)
from ._report import RobustnessReport
from ._robust import (
                         ATTACK_PRESETS,
                         RobustScorer,
                         make_robust_scorer,
                         robust_accuracy_score,
                         robust_correct,
                         robustness_report,
)
from ._separation import dataset_separation

__all__ = ["ATTACK_PRESETS", "GradientMaskingReport", "gradient_masking_report",
           "LipschitzScorer", "RobustnessCurveDisplay", "empirical_local_lipschitz",
           "make_lipschitz_scorer", "RobustScorer", "make_robust_scorer",
           "robust_accuracy_score", "robust_correct", "dataset_separation",
           "RobustnessReport", "robustness_report", "TrainingHistoryDisplay",
           "LearnedSetDisplay"]
