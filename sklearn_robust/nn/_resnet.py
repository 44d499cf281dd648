# SPDX-License-Identifier: BSD-3-Clause
"""Pre-activation residual networks: PreActResNet-18 and Wide ResNets."""

from torch import nn

from ._base import _check_dropout, _check_int, _ShapedModule, image_shape

__all__ = ["PreActResNet18", "WideResNet"]


def _conv3x3(in_channels, out_channels, stride=1):
    return nn.Conv2d(in_channels, out_channels, kernel_size=3, stride=stride, padding=1,
                     bias=False)


class _PreActBlock(nn.Module):
    """Pre-activation basic block: (BN-ReLU-conv3x3) x 2 plus an identity shortcut.

    When the block changes the number of channels or the resolution, the shortcut is
    a strided 1x1 convolution applied to the pre-activated input. ``dropout > 0``
    inserts dropout between the two convolutions (the wide-dropout block of WRN).
    """

    def __init__(self, in_channels, out_channels, stride=1, dropout=0.0):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_channels)
        self.relu1 = nn.ReLU()
        self.conv1 = _conv3x3(in_channels, out_channels, stride)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.relu2 = nn.ReLU()
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.conv2 = _conv3x3(out_channels, out_channels)
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Conv2d(in_channels, out_channels, kernel_size=1,
                                      stride=stride, bias=False)
        else:
            self.shortcut = None

    def forward(self, x):
        out = self.relu1(self.bn1(x))
        residual = x if self.shortcut is None else self.shortcut(out)
        out = self.conv1(out)
        out = self.conv2(self.dropout(self.relu2(self.bn2(out))))
        return out + residual


def _stage(in_channels, out_channels, n_blocks, stride, dropout=0.0):
    blocks = [_PreActBlock(in_channels, out_channels, stride, dropout)]
    blocks += [_PreActBlock(out_channels, out_channels, 1, dropout)
               for _ in range(n_blocks - 1)]
    return nn.Sequential(*blocks)


class PreActResNet18(_ShapedModule):
    """Pre-activation ResNet-18 returning logits.

    A 3x3 stem convolution with 64 channels, four stages of two pre-activation
    basic blocks (64, 128, 256 and 512 channels; strides 1, 2, 2, 2), a final
    BN-ReLU, global average pooling, optional dropout and a linear readout.
    Global average pooling makes the network valid for any image size (e.g.
    ``(3, 32, 32)`` CIFAR-10 or ``(1, 28, 28)`` MNIST).

    Parameters
    ----------
    input_shape : tuple of int, default=(3, 32, 32)
        Shape of one sample without the batch dimension: ``(C, H, W)``, ``(H, W)``
        or flat ``(n,)`` (read with :func:`image_shape`).
    n_classes : int, default=10
        Number of classes (>= 2), i.e. number of output logits.
    dropout : float, default=0.0
        Dropout probability before the final linear layer, in [0, 1).

    Attributes
    ----------
    image_shape : tuple of int
        The ``(C, H, W)`` shape images are reshaped to.

    Notes
    -----
    ``forward`` accepts a batch flat, ``(N, prod(input_shape))``, shaped
    ``(N, *input_shape)`` or ``(N, C, H, W)``, and returns logits of shape
    ``(N, n_classes)``. The network contains batch normalisation: attack it in
    ``eval()`` mode. This is the architecture used for CIFAR-10 by Rice et al.
    (2020) and Wong et al. (2020).

    References
    ----------
    .. [1] K. He, X. Zhang, S. Ren and J. Sun, "Identity Mappings in Deep Residual
       Networks", ECCV 2016. https://arxiv.org/abs/1603.05027
    .. [2] L. Rice, E. Wong and J. Z. Kolter, "Overfitting in adversarially robust
       deep learning", ICML 2020.

    Examples
    --------
    >>> import torch
    >>> from sklearn_robust.nn import PreActResNet18
    >>> net = PreActResNet18(input_shape=(3, 32, 32), n_classes=10).eval()
    >>> net(torch.zeros(2, 3, 32, 32)).shape
    torch.Size([2, 10])
    """

    def __init__(self, input_shape=(3, 32, 32), n_classes=10, dropout=0.0):
        super().__init__(input_shape, n_classes)
        self.image_shape = image_shape(self.input_shape)
        self.dropout = _check_dropout(dropout)
        widths = (64, 128, 256, 512)
        self.conv1 = _conv3x3(self.image_shape[0], widths[0])
        self.layer1 = _stage(widths[0], widths[0], 2, stride=1)
        self.layer2 = _stage(widths[0], widths[1], 2, stride=2)
        self.layer3 = _stage(widths[1], widths[2], 2, stride=2)
        self.layer4 = _stage(widths[2], widths[3], 2, stride=2)
        self.bn = nn.BatchNorm2d(widths[3])
        self.relu = nn.ReLU()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.drop = nn.Dropout(self.dropout) if self.dropout > 0 else nn.Identity()
        self.linear = nn.Linear(widths[3], self.n_classes)

    def forward(self, x):
        """Return the logits, shape ``(N, n_classes)``, of a batch ``x``."""
        out = self.conv1(self._batch(x, self.image_shape))
        out = self.layer4(self.layer3(self.layer2(self.layer1(out))))
        out = self.pool(self.relu(self.bn(out))).flatten(1)
        return self.linear(self.drop(out))


class WideResNet(_ShapedModule):
    """Wide residual network WRN-``depth``-``widen_factor`` returning logits.

    A 3x3 stem convolution with 16 channels, three stages of ``n = (depth - 4) / 6``
    pre-activation basic blocks with ``16 k``, ``32 k`` and ``64 k`` channels
    (``k = widen_factor``; strides 1, 2, 2), a final BN-ReLU, global average
    pooling and a linear readout. ``dropout`` is applied inside every block between
    the two convolutions, as in the original wide-dropout block.

    Parameters
    ----------
    input_shape : tuple of int, default=(3, 32, 32)
        Shape of one sample without the batch dimension: ``(C, H, W)``, ``(H, W)``
        or flat ``(n,)`` (read with :func:`image_shape`).
    n_classes : int, default=10
        Number of classes (>= 2), i.e. number of output logits.
    depth : int, default=28
        Total number of weighted layers; must be of the form ``6 n + 4`` with
        ``n >= 1`` (10, 16, 22, 28, 34, ...).
    widen_factor : int, default=10
        Channel multiplier ``k`` (>= 1).
    dropout : float, default=0.0
        Dropout probability between the convolutions of each block, in [0, 1).

    Attributes
    ----------
    image_shape : tuple of int
        The ``(C, H, W)`` shape images are reshaped to.

    Notes
    -----
    Convolutions use Kaiming-normal initialisation (fan-out), batch-norm layers
    unit scale and zero shift, and the readout bias is zero, following the
    reference implementation. WRN-28-10 and WRN-34-10 are the usual CIFAR-10
    models of Madry et al. (2018) and Zhang et al. (2019). The network contains
    batch normalisation: attack it in ``eval()`` mode.

    References
    ----------
    .. [1] S. Zagoruyko and N. Komodakis, "Wide Residual Networks", BMVC 2016.
       https://arxiv.org/abs/1605.07146
    .. [2] H. Zhang, Y. Yu, J. Jiao, E. P. Xing, L. El Ghaoui and M. I. Jordan,
       "Theoretically Principled Trade-off between Robustness and Accuracy",
       ICML 2019.

    Examples
    --------
    >>> import torch
    >>> from sklearn_robust.nn import WideResNet
    >>> net = WideResNet(depth=10, widen_factor=1).eval()
    >>> net(torch.zeros(2, 3 * 32 * 32)).shape
    torch.Size([2, 10])
    """

    def __init__(self, input_shape=(3, 32, 32), n_classes=10, depth=28, widen_factor=10,
                 dropout=0.0):
        super().__init__(input_shape, n_classes)
        self.image_shape = image_shape(self.input_shape)
        depth = _check_int(depth, "depth", minimum=10)
        if (depth - 4) % 6 != 0:
            raise ValueError(
                f"WideResNet depth must be of the form 6 * n + 4 (10, 16, 22, 28, 34, "
                f"...), got {depth}."
            )
        self.depth = depth
        self.widen_factor = _check_int(widen_factor, "widen_factor")
        self.dropout = _check_dropout(dropout)
        n_blocks = (depth - 4) // 6
        widths = (16, 16 * self.widen_factor, 32 * self.widen_factor,
                  64 * self.widen_factor)
        self.conv1 = _conv3x3(self.image_shape[0], widths[0])
        self.block1 = _stage(widths[0], widths[1], n_blocks, 1, self.dropout)
        self.block2 = _stage(widths[1], widths[2], n_blocks, 2, self.dropout)
        self.block3 = _stage(widths[2], widths[3], n_blocks, 2, self.dropout)
        self.bn = nn.BatchNorm2d(widths[3])
        self.relu = nn.ReLU()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(widths[3], self.n_classes)

        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out",
                                        nonlinearity="relu")
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
            elif isinstance(module, nn.Linear):
                nn.init.zeros_(module.bias)

    def forward(self, x):
        """Return the logits, shape ``(N, n_classes)``, of a batch ``x``."""
        out = self.conv1(self._batch(x, self.image_shape))
        out = self.block3(self.block2(self.block1(out)))
        out = self.pool(self.relu(self.bn(out))).flatten(1)
        return self.fc(out)
