# SPDX-License-Identifier: BSD-3-Clause
"""Choice of a default network for a given input shape."""

import inspect

from ._base import _check_n_classes, _check_shape
from ._cnn import SmallCNN
from ._mlp import MLP

__all__ = ["default_module"]

#: smallest height and width for which :func:`default_module` picks a CNN
_MIN_CNN_SIDE = 20


def default_module(input_shape, n_classes, dropout=None, **params):
    """Return a reasonable default network for inputs of shape ``input_shape``.

    Parameters
    ----------
    input_shape : tuple of int
        Shape of one sample without the batch dimension.
    n_classes : int
        Number of classes (>= 2).
    dropout : float or None, default=None
        Dropout probability in [0, 1) passed to the chosen network (after the
        first fully connected layer of :class:`SmallCNN`, after every hidden layer
        of :class:`MLP`). ``None`` keeps each network's own default (0.5 for
        :class:`SmallCNN`, no dropout for :class:`MLP`).
    **params
        Other parameters of the chosen network (e.g. ``hidden_layer_sizes`` of
        :class:`MLP`, which is what a classifier's ``module__hidden_layer_sizes``
        sets when it uses the default network). A parameter that the chosen
        network does not take raises a ``ValueError``.

    Returns
    -------
    module : torch.nn.Module
        A :class:`SmallCNN` (dropout 0.5 unless ``dropout`` is given) when
        ``input_shape`` is an image ``(C, H, W)`` with ``H >= 20`` and ``W >= 20``;
        otherwise an :class:`MLP` with ``hidden_layer_sizes=(256, 256)``. Flat
        inputs always get an MLP, even when their size is a perfect square: pass
        ``input_shape=(C, H, W)`` to get a convolutional network.

    References
    ----------
    .. [1] H. Zhang, Y. Yu, J. Jiao, E. P. Xing, L. El Ghaoui and M. I. Jordan,
       "Theoretically Principled Trade-off between Robustness and Accuracy",
       ICML 2019.

    Examples
    --------
    >>> from sklearn_robust.nn import default_module
    >>> type(default_module((1, 28, 28), 10)).__name__
    'SmallCNN'
    >>> type(default_module((64,), 10)).__name__
    'MLP'
    >>> default_module((64,), 10, dropout=0.2).dropout
    0.2
    >>> default_module((64,), 10, hidden_layer_sizes=(32,)).hidden_layer_sizes
    (32,)
    """
    shape = _check_shape(input_shape)
    n_classes = _check_n_classes(n_classes)
    extra = {} if dropout is None else {"dropout": dropout}
    if (len(shape) == 3 and shape[-1] in (1, 3, 4) and shape[0] > 4
            and min(shape[:2]) >= _MIN_CNN_SIDE):
        raise ValueError(
            f"Inputs of shape {shape} look like channels-last images (H, W, C), "
            "but the networks take channels first (C, H, W); a default network "
            "for this shape would be an MLP over the pixels. Transpose the data: "
            "X.transpose(0, 3, 1, 2), or pass a module that takes (H, W, C).")
    if len(shape) == 3 and min(shape[1:]) >= _MIN_CNN_SIDE:
        cls, defaults = SmallCNN, {}
    else:
        cls, defaults = MLP, {"hidden_layer_sizes": (256, 256)}
    accepted = set(inspect.signature(cls.__init__).parameters) - {
        "self", "input_shape", "n_classes"}
    unknown = sorted(set(params) - accepted)
    if unknown:
        raise ValueError(
            f"The default network for inputs of shape {shape} is {cls.__name__}, "
            f"which takes no parameter {unknown} (it takes {sorted(accepted)}); "
            "pass module= the network you want (e.g. module=sklearn_robust.nn.MLP "
            "or SmallCNN) with its module__* parameters.")
    return cls(input_shape=shape, n_classes=n_classes,
               **{**defaults, **extra, **params})
