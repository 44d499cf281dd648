# SPDX-License-Identifier: BSD-3-Clause
"""Input normalisation as the first layer of a network."""

import numpy as np
import torch
from torch import nn

__all__ = ["Normalize"]


class Normalize(nn.Module):
    """``(x - mean) / std`` per channel (images) or per feature (flat inputs).

    Put the normalisation *inside* the model, as its first layer, and keep the
    data in pixel space (e.g. ``[0, 1]``): the threat model's ``eps`` and clip box
    are then in pixel units, which is what robustness numbers are reported in.
    Attacking normalised inputs with a pixel-space ``eps``, or clamping them to
    ``[0, 1]``, is a classic evaluation error.

    Parameters
    ----------
    mean, std : float or array-like of shape (n_channels,) or (n_features,)
        Statistics of the training data in pixel units; ``std`` must be > 0. For
        images ``(N, C, H, W)`` a vector has one entry per channel; for flat inputs
        ``(N, n_features)`` one per feature (or a scalar).

    Examples
    --------
    >>> import torch
    >>> from sklearn_robust.nn import Normalize
    >>> layer = Normalize(mean=[0.5, 0.5, 0.5], std=[0.25, 0.25, 0.25])
    >>> layer(torch.ones(1, 3, 2, 2))[0, :, 0, 0]
    tensor([2., 2., 2.])
    """

    def __init__(self, mean, std):
        super().__init__()
        mean = np.asarray(mean, dtype=np.float64)
        std = np.asarray(std, dtype=np.float64)
        if mean.ndim > 1 or std.ndim > 1:
            raise ValueError("mean and std must be scalars or 1-D, got shapes "
                             f"{mean.shape} and {std.shape}.")
        if not (np.isfinite(mean).all() and np.isfinite(std).all()):
            raise ValueError("mean and std must be finite.")
        if (std <= 0).any():
            raise ValueError(f"std must be > 0, got {std.tolist()}.")
        if mean.ndim and std.ndim and mean.shape != std.shape:
            raise ValueError(f"mean and std have different lengths ({mean.size} and "
                             f"{std.size}).")
        self.register_buffer("mean", torch.as_tensor(mean, dtype=torch.float32))
        self.register_buffer("std", torch.as_tensor(std, dtype=torch.float32))

    def forward(self, x):
        mean, std = self.mean.to(x.dtype), self.std.to(x.dtype)
        if mean.ndim or std.ndim:
            n = max(mean.numel(), std.numel())
            if x.ndim > 2:          # images: one entry per channel
                if x.shape[1] != n:
                    raise ValueError(f"Normalize has {n} channel statistics, the "
                                     f"input has {x.shape[1]} channels.")
                shape = (1, n) + (1,) * (x.ndim - 2)
            else:                   # flat: one entry per feature
                if x.shape[-1] != n:
                    raise ValueError(f"Normalize has {n} feature statistics, the "
                                     f"input has {x.shape[-1]} features.")
                shape = (1, n)
            mean = mean.reshape(shape) if mean.ndim else mean
            std = std.reshape(shape) if std.ndim else std
        return (x - mean) / std

    def extra_repr(self):
        return f"mean={self.mean.tolist()}, std={self.std.tolist()}"
