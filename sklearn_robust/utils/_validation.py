"""Input and parameter checks with clear messages."""

# SPDX-License-Identifier: BSD-3-Clause

import numbers

import numpy as np
import torch

__all__ = ["check_eps", "check_norm", "check_clip_box", "check_in_box",
           "check_finite_tensor"]

NORMS = ("linf", "l2")


def check_eps(eps, name="eps"):
    """Check that ``eps`` is a finite non-negative real number."""
    if isinstance(eps, bool) or not isinstance(eps, numbers.Real):
        raise TypeError(f"{name} must be a non-negative real number, got {eps!r}.")
    if not np.isfinite(eps) or eps < 0:
        raise ValueError(f"{name} must be a finite number >= 0, got {eps!r}.")
    return float(eps)


def check_norm(norm):
    """Check that ``norm`` names a supported threat model."""
    if norm not in NORMS:
        raise ValueError(f"norm must be one of {NORMS}, got {norm!r}.")
    return norm


def check_clip_box(clip_min, clip_max):
    """Check that the clip box is a valid (possibly unbounded) interval."""
    for name, value in (("clip_min", clip_min), ("clip_max", clip_max)):
        if value is not None and (isinstance(value, bool)
                                  or not isinstance(value, numbers.Real)):
            raise TypeError(f"{name} must be a real number or None, got {value!r}.")
    if clip_min is not None and clip_max is not None and clip_min >= clip_max:
        raise ValueError(
            f"clip_min must be smaller than clip_max, got [{clip_min}, {clip_max}].")


def check_in_box(X, clip_min, clip_max, *, name="X", atol=1e-6):
    """Raise a ``ValueError`` when ``X`` has values outside ``[clip_min, clip_max]``.

    Inputs are rejected, never silently clipped: a value outside the box usually
    means the data were not scaled the way the threat model assumes.
    """
    if clip_min is None and clip_max is None:
        return
    if isinstance(X, torch.Tensor):
        lo, hi = (float(v) for v in (X.min(), X.max())) if X.numel() else (0.0, 0.0)
    else:
        X = np.asarray(X)
        lo, hi = (float(X.min()), float(X.max())) if X.size else (0.0, 0.0)
    if (clip_min is not None and lo < clip_min - atol) or (
            clip_max is not None and hi > clip_max + atol):
        raise ValueError(
            f"{name} has values in [{lo:.4g}, {hi:.4g}], outside the clip range "
            f"[{clip_min}, {clip_max}] of the threat model. Scale the data into the "
            "range (e.g. pixels / 255) or set clip_min/clip_max (None = unbounded).")


def check_finite_tensor(X, name="X"):
    """Raise a ``ValueError`` if a tensor holds NaN or infinite values."""
    if X.is_floating_point() and not torch.isfinite(X).all():
        raise ValueError(f"{name} contains NaN or infinity.")
