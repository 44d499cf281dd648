"""Robust-dataset learners: transformers that learn a robust training set."""

# SPDX-License-Identifier: BSD-3-Clause

from ._base import BaseRobustDataset, RobustDatasetSampler
from ._io import RobustDataset, load_dataset, save_dataset
from ._ntk_distiller import NTKRobustDistiller
from ._robust_features import RobustFeatureDataset
from ._trilevel import TriLevelDatasetLearner

__all__ = ["BaseRobustDataset", "RobustDatasetSampler", "NTKRobustDistiller",
           "RobustFeatureDataset", "TriLevelDatasetLearner", "RobustDataset",
           "save_dataset", "load_dataset"]
