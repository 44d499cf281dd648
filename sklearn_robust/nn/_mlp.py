# SPDX-License-Identifier: BSD-3-Clause
"""Fully connected network (multilayer perceptron) returning logits."""

from torch import nn

from ._base import _as_tuple, _check_dropout, _check_int, _ShapedModule

__all__ = ["MLP"]


class MLP(_ShapedModule):
    """Multilayer perceptron with ReLU activations that returns logits.

    The input is flattened, passed through ``Linear -> ReLU`` hidden layers (each
    followed by ``Dropout(dropout)`` when ``dropout > 0``) and a final linear readout
    with ``n_classes`` outputs. No softmax is applied.

    Parameters
    ----------
    input_shape : tuple of int
        Shape of one sample without the batch dimension, e.g. ``(64,)`` or
        ``(1, 28, 28)``.
    n_classes : int
        Number of classes (>= 2), i.e. number of output logits.
    hidden_layer_sizes : tuple of int or int, default=(256, 256)
        Width of each hidden layer. An empty tuple gives a linear (multinomial
        logistic regression) model; an int ``k`` means ``(k,)``.
    dropout : float, default=0.0
        Dropout probability applied after every hidden ReLU, in [0, 1).

    Attributes
    ----------
    n_features : int
        ``prod(input_shape)``, the number of input features.
    layers : torch.nn.Sequential
        The stack of layers, ending with the readout ``Linear``.

    Notes
    -----
    ``forward`` accepts a batch either flat, ``(N, prod(input_shape))``, or shaped,
    ``(N, *input_shape)``, and returns logits of shape ``(N, n_classes)``.

    References
    ----------
    .. [1] D. E. Rumelhart, G. E. Hinton and R. J. Williams, "Learning representations
       by back-propagating errors", Nature, 323, 533-536, 1986.
    .. [2] N. Srivastava, G. Hinton, A. Krizhevsky, I. Sutskever and R. Salakhutdinov,
       "Dropout: a simple way to prevent neural networks from overfitting", JMLR,
       15(56), 1929-1958, 2014.

    Examples
    --------
    >>> import torch
    >>> from sklearn_robust.nn import MLP
    >>> net = MLP(input_shape=(64,), n_classes=10, hidden_layer_sizes=(32,))
    >>> net(torch.zeros(5, 64)).shape
    torch.Size([5, 10])
    """

    def __init__(self, input_shape, n_classes, hidden_layer_sizes=(256, 256),
                 dropout=0.0):
        super().__init__(input_shape, n_classes)
        self.hidden_layer_sizes = tuple(
            _check_int(s, "each entry of hidden_layer_sizes")
            for s in _as_tuple(hidden_layer_sizes, "hidden_layer_sizes")
        )
        self.dropout = _check_dropout(dropout)

        layers = []
        width = self.n_features
        for size in self.hidden_layer_sizes:
            layers += [nn.Linear(width, size), nn.ReLU()]
            if self.dropout > 0:
                layers.append(nn.Dropout(self.dropout))
            width = size
        layers.append(nn.Linear(width, self.n_classes))
        self.layers = nn.Sequential(*layers)

    def forward(self, x):
        """Return the logits, shape ``(N, n_classes)``, of a batch ``x``."""
        return self.layers(self._batch(x, (self.n_features,)))
