"""Small torch helpers: mode switching, local RNG, tensors and per-sample norms."""

# SPDX-License-Identifier: BSD-3-Clause

import contextlib
import numbers
import threading

import numpy as np
import torch
from sklearn.utils import check_random_state

__all__ = ["autocast", "PRECISIONS", "eval_mode", "first_parameter",
           "make_generator", "as_tensor",
           "seed_from_random_state",
           "fork_rng", "derive_seed", "flat_norm", "per_sample"]


#: Numeric precisions of training and evaluation: float32, or autocast to bfloat16
#: or float16 (float16 training adds a gradient scaler).
PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def autocast(precision, device):
    """:func:`torch.autocast` to ``precision``'s dtype on ``device`` (a no-op for
    ``"fp32"``): matrix products and convolutions run in the lower precision,
    reductions and losses in float32."""
    dtype = PRECISIONS[precision]
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=torch.device(device).type, dtype=dtype)


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
        if any(flag for _, flag in flags):  # else already in eval mode
            model.eval()
        yield model
    finally:
        # the flags are plain attributes: set them without Module.__setattr__'s
        # search of the parameters, buffers and sub-modules (a training batch
        # switches modes twice)
        for m, flag in flags:
            object.__setattr__(m, "training", flag)


#: The largest seed: scikit-learn and NumPy take int seeds in ``[0, MAX_SEED]``.
MAX_SEED = 2**32 - 1
# the bound of a drawn seed (np.iinfo(np.int32).max, without building np.iinfo)
_DRAWN_SEED_BOUND = 2**31 - 1

# fork_rng reseeds torch's process-global generators: the lock lets one thread at
# a time run a forked body (re-entrant, so a forked fit may fit a nested net)
_RNG_LOCK = threading.RLock()


def seed_from_random_state(random_state, name="random_state", max_seed=MAX_SEED):
    """A seed in ``[0, 2**32 - 1]`` from a scikit-learn-style ``random_state``.

    Parameters
    ----------
    random_state : int, RandomState instance or None
        An int in ``[0, 2**32 - 1]`` (Python or NumPy) is returned as it is; a
        :class:`numpy.random.RandomState` instance advances its own stream and
        ``None`` draws from NumPy's global RNG, so repeated calls give fresh but
        reproducible seeds (after ``np.random.seed``). Negative ints and ints
        above ``max_seed`` are rejected, as by scikit-learn and NumPy.
    name : str, default="random_state"
        The parameter's name in error messages.
    max_seed : int, default=2**32 - 1
        The largest int accepted: NumPy's limit by default; a seed used only by a
        :class:`torch.Generator` may go up to ``2**64 - 1``.

    Returns
    -------
    seed : int
        A seed in ``[0, max_seed]``; with the default ``max_seed``, one that
        :class:`numpy.random.RandomState`, :func:`torch.manual_seed` and
        :class:`torch.Generator` all accept.

    Raises
    ------
    ValueError
        For an int outside ``[0, max_seed]`` or a value that is none of the above.
    """
    bound = "2**32 - 1" if max_seed == MAX_SEED else str(max_seed)
    allowed = (f"{name} must be an int in [0, {bound}], a numpy.random.RandomState "
               "instance or None, got")
    if isinstance(random_state, bool | np.bool_):
        raise ValueError(f"{allowed} {random_state!r}.")
    if isinstance(random_state, numbers.Integral):
        seed = int(random_state)
        if not 0 <= seed <= max_seed:
            raise ValueError(f"{allowed} {seed}" + (
                " (negative seeds are not accepted, as in scikit-learn and NumPy)."
                if seed < 0 else "."))
        return seed
    if random_state is not None and not isinstance(random_state,
                                                   np.random.RandomState):
        raise ValueError(f"{allowed} {random_state!r}.")
    rng = check_random_state(random_state)
    return int(rng.randint(0, _DRAWN_SEED_BOUND))


def derive_seed(seed, *keys):
    """A seed in ``[0, 2**32 - 1]`` derived from ``seed`` and integer ``keys``.

    Distinct ``keys`` give independent seeds (NumPy's :class:`SeedSequence`
    with ``keys`` as its spawn key); the same arguments always give the same seed.
    """
    sequence = np.random.SeedSequence(int(seed), spawn_key=tuple(int(k) for k in keys))
    return int(sequence.generate_state(1, dtype=np.uint32)[0])


def make_generator(random_state, device):
    """A :class:`torch.Generator` on ``device`` seeded from ``random_state``.

    The global torch RNG is never touched; ``random_state`` is read by
    :func:`seed_from_random_state` (ints in ``[0, 2**32 - 1]``, as everywhere).
    """
    device = torch.device(device)
    gen = torch.Generator(device=device)
    gen.manual_seed(seed_from_random_state(random_state))
    return gen


@contextlib.contextmanager
def fork_rng(seed, device="cpu"):
    """Run the body with torch's global RNG seeded by ``seed`` and restore it after.

    The CPU generator (and, for a CUDA ``device``, that device's generator) is
    saved, seeded with ``seed`` and restored on exit, even when the body raises.
    Other accelerators (``"mps"``, ``"xpu"``) are seeded by
    :func:`torch.manual_seed` but their generators are not restored.
    These generators are process-global, so the body runs under a re-entrant
    process-wide lock: forked bodies of different threads run one at a time and
    each sees only its own draws. Code that draws from torch's global RNG
    outside a fork while another thread is inside one is not protected.

    ``device=None`` (the device is placed by someone else, e.g. Accelerate)
    forks the CPU generator and, when CUDA is available, the current device's.
    ``seed=None`` runs the body without forking, seeding or locking.
    """
    if seed is None:
        yield
        return
    seed = int(seed)
    # None: placement is someone else's (e.g. Accelerate's): the CPU generator
    # and, with CUDA, that of the current device
    device = torch.device(("cuda" if torch.cuda.is_available() else "cpu")
                          if device is None else device)
    devices = []
    if device.type == "cuda" and torch.cuda.is_available():
        devices = [device.index if device.index is not None
                   else torch.cuda.current_device()]
    with _RNG_LOCK, torch.random.fork_rng(devices=devices):
        if device.type in ("cpu", "cuda"):
            # seed only the forked generators (torch.manual_seed seeds every GPU)
            torch.random.default_generator.manual_seed(seed)
            for index in devices:
                with torch.cuda.device(index):
                    torch.cuda.manual_seed(seed)
        else:  # other accelerators (mps, xpu): seeded, their state not restored
            torch.manual_seed(seed)
        yield


def as_tensor(X, *, device=None, dtype=None):
    """Convert an array-like to a tensor without copying a tensor needlessly."""
    if isinstance(X, torch.Tensor):
        return X.to(device=device if device is not None else X.device,
                    dtype=dtype if dtype is not None else X.dtype)
    return torch.as_tensor(np.asarray(X), device=device, dtype=dtype)


def first_parameter(module):
    """The first parameter of ``module`` in ``module.parameters()``'s order, or
    None; without building that generator (a forward pass may ask for it)."""
    for param in module._parameters.values():
        if param is not None:
            return param
    for child in module._modules.values():
        if child is not None:
            param = first_parameter(child)
            if param is not None:
                return param
    return None


def module_device(module, default="cpu"):
    """The device of the first parameter or buffer of ``module``, else ``default``."""
    if isinstance(module, torch.nn.Module):
        for t in module.parameters():
            return t.device
        for t in module.buffers():
            return t.device
    return torch.device(default)


def flat_norm(t, norm):
    """Per-sample ``"linf"``, ``"l2"`` or ``"l1"`` norm of ``t`` over all but its
    first axis."""
    flat = t.reshape(t.shape[0], -1)
    if norm == "linf":
        return flat.abs().amax(dim=1)
    if norm == "l1":
        return flat.abs().sum(dim=1)
    if norm == "l2":
        return flat.norm(p=2, dim=1)
    raise ValueError(f"norm must be one of ('linf', 'l2', 'l1'), got {norm!r}.")


def per_sample(v, like):
    """The 1-D per-sample tensor ``v`` reshaped to broadcast against ``like``."""
    return v.reshape((-1,) + (1,) * (like.ndim - 1))
