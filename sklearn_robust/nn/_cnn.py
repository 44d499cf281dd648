# SPDX-License-Identifier: BSD-3-Clause
"""The small four-layer convolutional network used for MNIST in TRADES."""

from collections import OrderedDict

import torch
from torch import nn

from ._base import _check_dropout, _ShapedModule, image_shape

__all__ = ["SmallCNN"]


def _valid_conv_size(size, kernel):
    # 'valid' (unpadded) convolution with stride 1
    return size - kernel + 1


def _small_cnn_spatial(height, width):
    """Spatial size after SmallCNN's feature extractor, or ``None`` when it is empty."""
    sizes = [height, width]
    for _ in range(2):  # two stages of conv3x3 -> conv3x3 -> maxpool2
        sizes = [_valid_conv_size(_valid_conv_size(s, 3), 3) for s in sizes]
        if min(sizes) < 2:
            return None
        sizes = [s // 2 for s in sizes]
    return tuple(sizes)


class SmallCNN(_ShapedModule):
    """Four-convolution network of TRADES for MNIST-like images; returns logits.

    Architecture (all convolutions 3x3, stride 1, no padding)::

        conv(32) - ReLU - conv(32) - ReLU - maxpool(2)
        conv(64) - ReLU - conv(64) - ReLU - maxpool(2)
        fc(200) - ReLU - Dropout(dropout) - fc(200) - ReLU - fc(n_classes)

    With 28x28 inputs the flattened feature map is ``64 * 4 * 4``, as in the
    reference; for other image sizes it is computed from ``input_shape``.

    Parameters
    ----------
    input_shape : tuple of int, default=(1, 28, 28)
        Shape of one sample without the batch dimension. ``(C, H, W)``, ``(H, W)``
        or flat ``(n,)``; see :func:`image_shape` for how the latter two are read
        (``(784,)`` means ``(1, 28, 28)``).
    n_classes : int, default=10
        Number of classes (>= 2), i.e. number of output logits.
    dropout : float, default=0.5
        Dropout probability after the first fully connected layer, in [0, 1).

    Attributes
    ----------
    image_shape : tuple of int
        The ``(C, H, W)`` shape images are reshaped to.
    features : torch.nn.Sequential
        Convolutional feature extractor (``conv1`` to ``conv4``).
    classifier : torch.nn.Sequential
        Fully connected head (``fc1``, ``fc2``, ``fc3``).

    Raises
    ------
    ValueError
        If the image is too small for the two conv-conv-pool stages (height and
        width must be at least 16).

    Notes
    -----
    Convolution weights use Kaiming-normal initialisation with zero biases as in
    the reference implementation. Unlike the reference, the final linear layer
    keeps PyTorch's default initialisation instead of being set to zero: a zero
    readout makes every logit and every input gradient vanish at initialisation,
    which defeats gradient-based attacks on an untrained network.

    ``forward`` accepts a batch flat, ``(N, prod(input_shape))``, shaped
    ``(N, *input_shape)`` or ``(N, C, H, W)``, and returns logits of shape
    ``(N, n_classes)``.

    References
    ----------
    .. [1] H. Zhang, Y. Yu, J. Jiao, E. P. Xing, L. El Ghaoui and M. I. Jordan,
       "Theoretically Principled Trade-off between Robustness and Accuracy",
       ICML 2019. https://github.com/yaodongyu/TRADES
    .. [2] N. Carlini and D. Wagner, "Towards Evaluating the Robustness of Neural
       Networks", IEEE S&P 2017.

    Examples
    --------
    >>> import torch
    >>> from sklearn_robust.nn import SmallCNN
    >>> net = SmallCNN(input_shape=(784,), n_classes=10)
    >>> net(torch.zeros(2, 784)).shape
    torch.Size([2, 10])
    """

    def __init__(self, input_shape=(1, 28, 28), n_classes=10, dropout=0.5):
        super().__init__(input_shape, n_classes)
        self.image_shape = image_shape(self.input_shape)
        self.dropout = _check_dropout(dropout)
        channels, height, width = self.image_shape
        spatial = _small_cnn_spatial(height, width)
        if spatial is None:
            raise ValueError(
                f"SmallCNN needs images of at least 16x16 pixels, got {height}x{width} "
                f"(from input_shape={self.input_shape}); use MLP for small inputs."
            )
        n_flat = 64 * spatial[0] * spatial[1]

        self.features = nn.Sequential(OrderedDict([
            ("conv1", nn.Conv2d(channels, 32, kernel_size=3)),
            ("relu1", nn.ReLU()),
            ("conv2", nn.Conv2d(32, 32, kernel_size=3)),
            ("relu2", nn.ReLU()),
            ("pool1", nn.MaxPool2d(2)),
            ("conv3", nn.Conv2d(32, 64, kernel_size=3)),
            ("relu3", nn.ReLU()),
            ("conv4", nn.Conv2d(64, 64, kernel_size=3)),
            ("relu4", nn.ReLU()),
            ("pool2", nn.MaxPool2d(2)),
        ]))
        self.classifier = nn.Sequential(OrderedDict([
            ("fc1", nn.Linear(n_flat, 200)),
            ("relu1", nn.ReLU()),
            ("dropout", nn.Dropout(self.dropout)),
            ("fc2", nn.Linear(200, 200)),
            ("relu2", nn.ReLU()),
            ("fc3", nn.Linear(200, self.n_classes)),
        ]))
        for module in self.features:
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight)
                nn.init.zeros_(module.bias)

    def forward(self, x):
        """Return the logits, shape ``(N, n_classes)``, of a batch ``x``."""
        h = self.features(self._batch(x, self.image_shape))
        return self.classifier(torch.flatten(h, 1))
