# SPDX-License-Identifier: BSD-3-Clause
"""PyTorch network modules for robust classifiers.

Every module takes ``input_shape`` (one sample, without the batch dimension) and
``n_classes``, accepts batches either flat ``(N, prod(input_shape))`` or shaped
``(N, *input_shape)``, and returns logits of shape ``(N, n_classes)`` (no softmax).
"""

from ._base import image_shape
from ._cnn import SmallCNN
from ._default import default_module
from ._mlp import MLP
from ._resnet import PreActResNet18, WideResNet

__all__ = ["MLP", "SmallCNN", "PreActResNet18", "WideResNet", "default_module",
           "image_shape"]
