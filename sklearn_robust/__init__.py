"""sklearn_robust: adversarially robust classification with scikit-learn and PyTorch."""

# SPDX-License-Identifier: BSD-3-Clause

from . import attacks, callbacks, datasets, kernels, metrics, nn, utils
from . import dataset_learning
from .classifiers import AdversarialClassifier, TRADESClassifier
from .classifiers import GAIRATClassifier, GAIRTRADESClassifier
from .classifiers import LangevinAdvClassifier
from .classifiers import LipschitzDropoutClassifier
from .kernels import NTKClassifier
from .dataset_learning import NTKRobustDistiller, TriLevelDatasetLearner

__version__ = "0.1.0.dev0"

__all__ = ["AdversarialClassifier", "TRADESClassifier", "LangevinAdvClassifier",
           "GAIRATClassifier", "GAIRTRADESClassifier", "LipschitzDropoutClassifier",
           "NTKClassifier", "NTKRobustDistiller", "TriLevelDatasetLearner", "attacks",
           "callbacks", "dataset_learning", "datasets", "kernels", "metrics", "nn",
           "utils", "__version__"]
