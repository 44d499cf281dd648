"""Robust-dataset learners: transformers that learn a robust training set."""

# SPDX-License-Identifier: BSD-3-Clause

from ._base import BaseRobustDataset, RobustDatasetSampler

__all__ = ["BaseRobustDataset", "RobustDatasetSampler"]
