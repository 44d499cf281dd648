"""sklearn_robust: adversarially robust classification with scikit-learn and PyTorch."""

# SPDX-License-Identifier: BSD-3-Clause

from . import (
    attacks,
    callbacks,
    dataset_learning,
    datasets,
    kernels,
    metrics,
    nn,
    utils,
)
from .classifiers import (
    AdversarialClassifier,
    FastAdversarialClassifier,
    GAIRATClassifier,
    GAIRTRADESClassifier,
    LangevinAdvClassifier,
    LipschitzDropoutClassifier,
    TRADESClassifier,
)
from .dataset_learning import NTKRobustDistiller, TriLevelDatasetLearner
from .kernels import NTKClassifier

__version__ = "0.1.0.dev0"

__all__ = ["AdversarialClassifier", "TRADESClassifier", "FastAdversarialClassifier",
           "LangevinAdvClassifier",
           "GAIRATClassifier", "GAIRTRADESClassifier", "LipschitzDropoutClassifier",
           "NTKClassifier", "NTKRobustDistiller", "TriLevelDatasetLearner", "attacks",
           "callbacks", "dataset_learning", "datasets", "kernels", "metrics", "nn",
           "utils", "__version__"]
