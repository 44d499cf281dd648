"""Input and parameter checks with clear messages."""

# SPDX-License-Identifier: BSD-3-Clause

import numbers

import numpy as np
import torch

__all__ = ["check_eps", "check_norm", "check_clip_box", "check_in_box",
           "check_finite_tensor", "check_float_tensor", "check_class_codes",
           "check_logits", "check_sample_weight", "as_contiguous", "FLOAT32_MAX",
           "looks_standardised"]

NORMS = ("linf", "l2", "l1")

#: The largest float32: real parameters beyond it overflow the models' arithmetic.
FLOAT32_MAX = float(np.finfo(np.float32).max)


def check_eps(eps, name="eps"):
    """Check that ``eps`` is a finite non-negative real number (float32 range)."""
    if isinstance(eps, (bool, np.bool_)) or not isinstance(eps, numbers.Real):
        raise TypeError(f"{name} must be a non-negative real number, got {eps!r}.")
    if not np.isfinite(eps) or eps < 0 or eps > FLOAT32_MAX:
        raise ValueError(f"{name} must be a finite number >= 0 (at most float32's "
                         f"{FLOAT32_MAX:.3g}), got {eps!r}.")
    return float(eps)


def check_norm(norm):
    """Check that ``norm`` names a supported threat model."""
    if norm not in NORMS:
        raise ValueError(f"norm must be one of {NORMS}, got {norm!r}.")
    return norm


def check_clip_box(clip_min, clip_max):
    """Check that the clip box is a valid (possibly unbounded) interval.

    Each bound is None (unbounded), +-inf (the same) or a real number within
    float32's range; NaN is rejected.
    """
    for name, value in (("clip_min", clip_min), ("clip_max", clip_max)):
        if value is not None and (isinstance(value, (bool, np.bool_))
                                  or not isinstance(value, numbers.Real)):
            raise TypeError(f"{name} must be a real number or None, got {value!r}.")
        if value is not None and (np.isnan(value) or (
                np.isfinite(value) and abs(value) > FLOAT32_MAX)):
            raise ValueError(f"{name} must be None, +-inf or a number within float32's "
                             f"range (+-{FLOAT32_MAX:.3g}), got {value!r}.")
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
        hint = ""
        if looks_standardised(X):
            hint = (" The values look standardised (mean 0, unit variance per "
                    "feature): an eps meant for pixels would then be measured in "
                    "standard deviations. Keep the raw pixels and put the "
                    "normalisation inside the model (sklearn_robust.nn.Normalize, "
                    "or a classifier's preprocessor=).")
        raise ValueError(
            f"{name} has values in [{lo:.4g}, {hi:.4g}], outside the clip range "
            f"[{clip_min}, {clip_max}] of the threat model. Scale the data into the "
            "range (e.g. pixels / 255) or set clip_min/clip_max (None = unbounded)."
            + hint)


def looks_standardised(X, tol=0.1):
    """True when most varying features have mean ~0 and standard deviation ~1."""
    flat = (X.detach().cpu().numpy() if isinstance(X, torch.Tensor)
            else np.asarray(X)).reshape(len(X), -1).astype(np.float64)
    if len(flat) < 2:
        return False
    std = flat.std(axis=0)
    varying = std > 1e-8
    if not varying.any():
        return False
    mean, std = flat.mean(axis=0)[varying], std[varying]
    return bool(np.mean((np.abs(mean) < tol) & (np.abs(std - 1) < tol)) >= 0.9)


def check_finite_tensor(X, name="X"):
    """Raise a ``ValueError`` if a tensor holds NaN or infinite values."""
    if X.is_floating_point() and not torch.isfinite(X).all():
        raise ValueError(f"{name} contains NaN or infinity.")


def as_contiguous(a):
    """``a`` as an array torch takes without copies or warnings.

    Non-negative strides (torch rejects negative ones, e.g. ``X[::-1]``) and
    writable memory (a read-only array, e.g. the values of a pandas DataFrame
    under copy-on-write, makes ``torch.as_tensor`` warn): copied only when
    needed, so the caller's array is never modified. Unlike
    :func:`numpy.ascontiguousarray`, a 0-d array stays 0-d, so that shape checks
    see what the caller passed.
    """
    a = np.asarray(a)
    if a.ndim and not a.flags.writeable:
        return np.array(a, order="C")
    return np.ascontiguousarray(a) if a.ndim else a


def check_float_tensor(X, name="X", *, min_ndim=2, dtype=None, device=None,
                       allow_empty=False):
    """``X`` as a floating tensor, or a clear error for what a tensor op would choke on.

    Accepts tensors, arrays and nested lists, also with negative strides (``X[::-1]``).
    Rejects, naming ``name``: non-numeric, boolean and complex values (``TypeError``),
    fewer than ``min_ndim`` dimensions, no samples (unless ``allow_empty``), NaN or
    infinity (``ValueError``). Integer values are converted to ``dtype`` (default
    float32); floating tensors keep their dtype unless ``dtype`` is given.
    """
    if isinstance(X, torch.Tensor):
        if X.is_complex() or X.dtype == torch.bool:
            raise TypeError(f"{name} must hold real numbers, got a {X.dtype} tensor.")
        if not X.is_floating_point():
            X = X.to(dtype or torch.float32)
    else:
        try:
            X = np.asarray(X)
        except (ValueError, TypeError) as exc:
            raise ValueError(f"{name} must be an array of numbers: {exc}") from None
        if X.dtype.kind not in "fiu":
            what = {"c": "complex numbers", "b": "booleans"}.get(
                X.dtype.kind, f"values of dtype {X.dtype}")
            raise TypeError(f"{name} must hold real numbers, got {what}.")
        kept = None if X.dtype.kind == "f" else torch.float32
        X = torch.as_tensor(as_contiguous(X), dtype=dtype or kept)
    if dtype is not None or device is not None:
        X = X.to(dtype=dtype or X.dtype, device=device or X.device)
    if X.ndim < min_ndim:
        raise ValueError(f"{name} must have at least {min_ndim} dimensions "
                         f"(n_samples, ...), got shape {tuple(X.shape)}.")
    if not allow_empty and X.ndim and X.shape[0] == 0:
        raise ValueError(f"{name} has no samples (shape {tuple(X.shape)}).")
    check_finite_tensor(X, name)
    return X


def check_class_codes(y, *, n_samples=None, n_classes=None, name="y", device=None,
                      rows_of="X"):
    """``y`` as a 1-D int64 tensor of class indices in ``[0, n_classes)``.

    Floats are accepted when they hold whole numbers; NaN, fractions, a wrong
    length or shape and indices out of range raise a ``ValueError`` naming ``name``
    (and ``rows_of``, the argument whose rows ``y`` labels, for a wrong length).
    """
    if y is None:
        raise ValueError(f"{name} is required (class indices), got None.")
    if not isinstance(y, torch.Tensor):
        y = np.asarray(y)
        if y.dtype.kind not in "fiu":
            raise TypeError(f"{name} must hold integer class indices, got values of "
                            f"dtype {y.dtype}.")
        y = torch.as_tensor(as_contiguous(y))
    if y.is_complex() or y.dtype == torch.bool:
        raise TypeError(f"{name} must hold integer class indices, got {y.dtype}.")
    y = y.to(device=device) if device is not None else y
    if y.ndim != 1:
        raise ValueError(f"{name} must be 1-D (n_samples,), got shape "
                         f"{tuple(y.shape)}.")
    if n_samples is not None and y.shape[0] != n_samples:
        raise ValueError(f"{name} has {y.shape[0]} entries, but {rows_of} has "
                         f"{n_samples} rows: one class index per row is needed.")
    if y.is_floating_point():
        if not torch.isfinite(y).all() or not torch.equal(y, y.round()):
            raise ValueError(f"{name} must hold integer class indices; it holds NaN, "
                             "infinity or fractions.")
    y = y.long()
    if y.numel() and n_classes is not None:
        low, high = int(y.min()), int(y.max())
        if low < 0 or high >= n_classes:
            raise ValueError(f"{name} holds class indices in [{low}, {high}], outside "
                             f"[0, {n_classes - 1}] ({n_classes} classes).")
    return y


def check_logits(logits, name="logits", *, n_samples=None):
    """A 2-D floating tensor of finite scores ``(n_samples, n_classes)``."""
    if not isinstance(logits, torch.Tensor) or not logits.is_floating_point():
        raise TypeError(f"{name} must be a floating point tensor, got "
                        f"{getattr(logits, 'dtype', type(logits).__name__)}.")
    if logits.ndim != 2:
        raise ValueError(f"{name} must have shape (n_samples, n_classes), got "
                         f"{tuple(logits.shape)}.")
    if n_samples is not None and logits.shape[0] != n_samples:
        raise ValueError(f"{name} has {logits.shape[0]} rows, expected {n_samples}.")
    check_finite_tensor(logits, name)
    return logits


def check_sample_weight(sample_weight, n_samples, name="sample_weight"):
    """``sample_weight`` as a float64 array: 1-D, finite, >= 0, not all zero."""
    if sample_weight is None:
        return None
    w = np.asarray(sample_weight)
    if w.dtype.kind not in "fiu":
        raise TypeError(f"{name} must hold real numbers, got dtype {w.dtype}.")
    w = w.astype(np.float64)
    if w.ndim != 1 or w.shape[0] != n_samples:
        raise ValueError(f"{name} must have shape ({n_samples},), got "
                         f"{w.shape}.")
    if not np.isfinite(w).all():
        raise ValueError(f"{name} contains NaN or infinity.")
    if (w < 0).any():
        raise ValueError(f"{name} must be non-negative.")
    if n_samples and not w.sum() > 0:
        raise ValueError(f"{name} sums to zero: at least one weight must be positive.")
    return w
