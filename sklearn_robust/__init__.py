"""sklearn_robust: adversarially robust classification with scikit-learn and PyTorch."""

# SPDX-License-Identifier: BSD-3-Clause

from . import attacks, datasets, metrics, nn
from .classifiers import AdversarialClassifier, TRADESClassifier

__version__ = "0.1.0.dev0"

__all__ = ["AdversarialClassifier", "TRADESClassifier", "attacks", "datasets",
           "metrics", "nn", "__version__"]
