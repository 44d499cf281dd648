"""Utilities shared across sklearn_robust: torch views of fitted estimators."""

# SPDX-License-Identifier: BSD-3-Clause

from ._views import TorchView, get_score_view, get_torch_view

__all__ = ["TorchView", "get_torch_view", "get_score_view"]
