# SPDX-License-Identifier: BSD-3-Clause
"""PyTorch network modules for robust classifiers.

Every network takes ``input_shape`` (one sample, without the batch dimension) and
``n_classes``, accepts batches either flat ``(N, prod(input_shape))`` or shaped
``(N, *input_shape)``, and returns logits of shape ``(N, n_classes)`` (no softmax).
:class:`Normalize` is a first layer that keeps the data, and so the threat model,
in pixel units.
"""

from ._base import image_shape
from ._cnn import SmallCNN
from ._default import default_module
from ._mlp import MLP
from ._normalize import Normalize
from ._resnet import PreActResNet18, WideResNet

__all__ = ["MLP", "Normalize", "SmallCNN", "PreActResNet18", "WideResNet",
           "default_module", "image_shape"]
