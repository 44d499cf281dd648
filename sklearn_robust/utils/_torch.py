"""Small torch helpers: mode switching, local RNG, tensors and per-sample norms."""

# SPDX-License-Identifier: BSD-3-Clause

import contextlib
import numbers

import numpy as np
import torch
from sklearn.utils import check_random_state

__all__ = ["eval_mode", "make_generator", "as_tensor", "seed_from_random_state",
           "fork_rng", "flat_norm", "per_sample"]


@contextlib.contextmanager
def eval_mode(model):
    """Put every sub-module of ``model`` in eval mode and restore each one's flag.

    Works for any callable: objects that are not :class:`torch.nn.Module` are left
    alone. The flags are restored even when the body raises.
    """
    if not isinstance(model, torch.nn.Module):
        yield model
        return
    flags = [(m, m.training) for m in model.modules()]
    try:
        model.eval()
        yield model
    finally:
        for m, flag in flags:
            m.training = flag


def seed_from_random_state(random_state):
    """Draw a 63-bit seed from an sklearn-style ``random_state``.

    An int is used as is; ``None`` draws from NumPy's global RNG and a
    :class:`numpy.random.RandomState` instance advances its own stream, so repeated
    calls give fresh but reproducible seeds.
    """
    if (isinstance(random_state, numbers.Integral)
            and not isinstance(random_state, bool)):
        return int(random_state)
    rng = check_random_state(random_state)
    return int(rng.randint(0, np.iinfo(np.int32).max))


def make_generator(random_state, device):
    """A :class:`torch.Generator` on ``device`` seeded from ``random_state``.

    The global torch RNG is never touched.
    """
    device = torch.device(device)
    gen = torch.Generator(device=device)
    gen.manual_seed(seed_from_random_state(random_state))
    return gen


@contextlib.contextmanager
def fork_rng(seed, device="cpu"):
    """Run the body with torch's global RNG seeded by ``seed`` and restore it after.

    ``seed=None`` runs the body without forking or seeding.
    """
    if seed is None:
        yield
        return
    device = torch.device(device)
    devices = []
    if device.type == "cuda" and torch.cuda.is_available():
        devices = [device.index if device.index is not None
                   else torch.cuda.current_device()]
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield


def as_tensor(X, *, device=None, dtype=None):
    """Convert an array-like to a tensor without copying a tensor needlessly."""
    if isinstance(X, torch.Tensor):
        return X.to(device=device if device is not None else X.device,
                    dtype=dtype if dtype is not None else X.dtype)
    return torch.as_tensor(np.asarray(X), device=device, dtype=dtype)


def module_device(module, default="cpu"):
    """The device of the first parameter or buffer of ``module``, else ``default``."""
    if isinstance(module, torch.nn.Module):
        for t in module.parameters():
            return t.device
        for t in module.buffers():
            return t.device
    return torch.device(default)


def flat_norm(t, norm):
    """Per-sample ``"linf"`` or ``"l2"`` norm of ``t`` over all but its first axis."""
    flat = t.reshape(t.shape[0], -1)
    if norm == "linf":
        return flat.abs().amax(dim=1)
    return flat.norm(p=2, dim=1)


def per_sample(v, like):
    """The 1-D per-sample tensor ``v`` reshaped to broadcast against ``like``."""
    return v.reshape((-1,) + (1,) * (like.ndim - 1))
