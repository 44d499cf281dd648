# SPDX-License-Identifier: BSD-3-Clause
"""Shape handling and argument checks shared by the network modules."""

import math
import numbers

import torch
from torch import nn

from ..utils._torch import first_parameter

__all__ = ["image_shape"]


def _is_int(value):
    """True for Python and NumPy integers, False for ``bool``."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _check_int(value, name, minimum=1):
    """Return ``value`` as an ``int``; raise if it is not an integer >= ``minimum``."""
    if not _is_int(value) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}.")
    return int(value)


def _check_dropout(value, name="dropout"):
    """Return ``value`` as a ``float`` or raise if it is not a real number in [0, 1)."""
    if (isinstance(value, bool) or not isinstance(value, numbers.Real)
            or not 0.0 <= float(value) < 1.0):
        raise ValueError(f"{name} must be a float in [0, 1), got {value!r}.")
    return float(value)


def _check_n_classes(n_classes):
    return _check_int(n_classes, "n_classes", minimum=2)


def _as_tuple(value, name):
    """Return ``value`` as a tuple, a bare integer ``n`` read as ``(n,)``.

    Raises if ``value`` is neither an integer nor iterable; the entries are not
    checked.
    """
    if _is_int(value):
        return (value,)
    try:
        return tuple(value)
    except TypeError:
        raise ValueError(
            f"{name} must be a tuple of positive integers, got {value!r}."
        ) from None


def _check_shape(input_shape):
    """Normalise ``input_shape`` to a non-empty tuple of positive Python ints.

    A bare integer ``n`` is accepted and read as ``(n,)``.
    """
    shape = _as_tuple(input_shape, "input_shape")
    if len(shape) == 0 or any(not _is_int(s) or s < 1 for s in shape):
        shown = shape if _is_int(input_shape) else input_shape
        raise ValueError(
            f"input_shape must be a non-empty tuple of positive integers (without the "
            f"batch dimension), got {shown!r}."
        )
    return tuple(int(s) for s in shape)


def image_shape(input_shape):
    """Read an input shape as a ``(channels, height, width)`` image shape.

    Parameters
    ----------
    input_shape : tuple of int
        Shape of one sample, without the batch dimension.

        - ``(C, H, W)`` is returned unchanged;
        - ``(H, W)`` becomes ``(1, H, W)``;
        - ``(n,)`` (flat features) becomes ``(1, s, s)`` when ``n == s * s``, else
          ``(3, s, s)`` when ``n == 3 * s * s``. For example 784 MNIST pixels give
          ``(1, 28, 28)`` and 3072 CIFAR-10 values give ``(3, 32, 32)``; flat inputs
          are assumed to be stored channel-first (``C, H, W`` order).

    Returns
    -------
    shape : tuple of int
        The ``(C, H, W)`` tuple.

    Raises
    ------
    ValueError
        If ``input_shape`` is not a tuple of positive integers, has more than three
        entries, or is a flat size that is neither a square nor three times a square.

    Examples
    --------
    >>> from sklearn_robust.nn import image_shape
    >>> image_shape((784,))
    (1, 28, 28)
    >>> image_shape((3072,))
    (3, 32, 32)
    >>> image_shape((28, 28))
    (1, 28, 28)
    """
    shape = _check_shape(input_shape)
    if len(shape) == 3:
        return shape
    if len(shape) == 2:
        return (1,) + shape
    if len(shape) == 1:
        (n,) = shape
        side = math.isqrt(n)
        if side * side == n:
            return (1, side, side)
        if n % 3 == 0:
            side = math.isqrt(n // 3)
            if 3 * side * side == n:
                return (3, side, side)
        raise ValueError(
            f"Cannot infer an image shape from {n} flat features (neither a square nor "
            f"three times a square); pass input_shape=(C, H, W) explicitly."
        )
    raise ValueError(
        f"input_shape must have 1, 2 or 3 entries to be read as an image, got "
        f"{shape!r}; pass input_shape=(C, H, W)."
    )


class _ShapedModule(nn.Module):
    """Base class: stores ``input_shape``/``n_classes`` and reshapes incoming batches.

    Sub-classes call :meth:`_batch` with the shape their layers need (``(n_features,)``
    for a multilayer perceptron, ``(C, H, W)`` for a convolutional network).
    """

    def __init__(self, input_shape, n_classes):
        super().__init__()
        self.input_shape = _check_shape(input_shape)
        self.n_classes = _check_n_classes(n_classes)
        self.n_features = math.prod(self.input_shape)

    def _batch(self, x, target_shape):
        """Reshape a batch to ``(N, *target_shape)``, cast to the parameters' dtype.

        Accepted batches are flat ``(N, prod(input_shape))``, shaped
        ``(N, *input_shape)`` or already ``(N, *target_shape)``; anything else raises
        a ``ValueError`` rather than being silently reinterpreted.
        """
        if not isinstance(x, torch.Tensor):
            x = torch.as_tensor(x)
        sample = tuple(x.shape[1:])
        if x.dim() < 2 or sample not in {(self.n_features,), self.input_shape,
                                         tuple(target_shape)}:
            expected = f"(N, {self.n_features})"
            if len(self.input_shape) > 1:
                shaped = ", ".join(map(str, self.input_shape))
                expected += f" or (N, {shaped})"
            raise ValueError(
                f"{type(self).__name__} expects a batch of shape {expected}, got "
                f"{tuple(x.shape)}."
            )
        param = first_parameter(self)
        if param is not None and x.dtype != param.dtype:
            x = x.to(param.dtype)
        return x.reshape(x.shape[0], *target_shape)

    def extra_repr(self):
        return f"input_shape={self.input_shape}, n_classes={self.n_classes}"
