"""Infinite-width NNGP and NTK of convolutional ReLU networks (CNTK).

Network (``neural_tangents.stax`` semantics, NTK parameterization)::

    serial(*[Conv(C, (3, 3), padding='SAME', W_std, b_std), Relu()] * depth,
           GlobalAvgPool() | Flatten(),
           Dense(1, W_std, b_std))

With global average pooling this is the CNTK-GAP of Arora et al. (2019); with
``Flatten`` it is the ``'Conv'`` architecture of KIP (Nguyen et al., 2021).
"""

# SPDX-License-Identifier: BSD-3-Clause

import math
import numbers

import torch
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

from ..utils._param_validation import (
    POSITIVE_INT,
    StrOptions,
    validate_function_params,
)
from ._ntk import (
    _BaseKernel,
    _check_input,
    _dense,
    _functorch_active,
    relu_step,
    std_of,
)

__all__ = ["ConvKernel", "conv_kernel"]

_POOLINGS = ("gap", "flatten")
# automatic block size: about this many entries per (block x block x positions)
# tensor; a block holds ~10 such temporaries at once
_BLOCK_ELEMENTS = 2 ** 21


def _shift_sum(t, dim1, dim2):
    """``t[i-1, j-1] + t[i, j] + t[i+1, j+1]`` along axes ``dim1, dim2`` (0 outside)."""
    out = t.clone()
    n1, n2 = t.shape[dim1], t.shape[dim2]

    def idx(a, b):
        index = [slice(None)] * t.ndim
        index[dim1], index[dim2] = a, b
        return tuple(index)

    lo1, hi1 = slice(0, n1 - 1), slice(1, n1)
    lo2, hi2 = slice(0, n2 - 1), slice(1, n2)
    out[idx(lo1, lo2)] += t[idx(hi1, hi2)]
    out[idx(hi1, hi2)] += t[idx(lo1, lo2)]
    return out


def _box2(t):
    """3x3 'SAME' box average over the last two axes (zero padding, divide by 9)."""
    H, W = t.shape[-2:]
    p = F.pad(t, (1, 1, 1, 1))
    out = None
    for a in range(3):
        for b in range(3):
            s = p[..., a:a + H, b:b + W]
            out = s if out is None else out + s
    return out / 9.0


def _box4(t):
    """The 3x3 'SAME' box average acting on pairs of positions.

    ``t`` has trailing axes ``(H, W, H', W')`` holding ``k((h, w), (h', w'))``;
    the output at ``(h, w, h', w')`` averages ``t`` over the 9 joint shifts
    ``(h + a, w + b, h' + a, w' + b)``, zero outside the image. The sum is
    separable: joint shifts of ``(w, w')``, then of ``(h, h')``.
    """
    return _shift_sum(_shift_sum(t, -3, -1), -4, -2) / 9.0


def _eye(n, device):
    return torch.eye(n, dtype=torch.bool, device=device)


def _position_eye(images):
    """Boolean ``(H, W, H, W)`` mask of equal pixel positions."""
    H, W = images.shape[-2:]
    return _eye(H * W, images.device).reshape(H, W, H, W)


def _check_input_shape(input_shape):
    if input_shape is None:
        return None
    try:
        shape = tuple(input_shape)
    except TypeError:
        shape = ()
    if len(shape) == 2:
        shape = (1,) + shape
    if len(shape) != 3 or any(isinstance(s, bool) or not isinstance(s, numbers.Integral)
                              or s < 1 for s in shape):
        raise ValueError(f"input_shape must be (C, H, W) or (H, W) of positive "
                         f"integers, got {input_shape!r}.")
    return tuple(int(s) for s in shape)


def as_images(X, input_shape=None, name="X"):
    """Reshape a batch to ``(n, C, H, W)``.

    4-D inputs are kept, 3-D ones get one channel; flat ``(n, d)`` inputs use
    ``input_shape`` or, when it is None and ``d`` is a perfect square, one square
    channel (e.g. 64 features -> 1x8x8).

    Parameters
    ----------
    X : Tensor or array-like of shape (n, C, H, W), (n, H, W) or (n, d)
        The batch.
    input_shape : tuple of int or None, default=None
        ``(C, H, W)`` or ``(H, W)`` of one sample.
    name : str, default="X"
        The argument's name in error messages.

    Returns
    -------
    images : Tensor of shape (n, C, H, W)

    Raises
    ------
    TypeError
        If ``X`` holds complex, boolean or non-numeric values.
    ValueError
        If ``X`` has NaN or infinite values, no samples, fewer than 2 or more than
        4 dimensions, an empty image axis, or a shape that does not fit
        ``input_shape`` (or, flat without it, is not a square image), or if
        ``input_shape`` is not a shape.
    """
    return _as_images(_check_input(X, name), _check_input_shape(input_shape), name)


def _as_images(X, shape, name):
    """:func:`as_images` of a checked tensor and a checked ``input_shape``."""
    n = X.shape[0]
    if X.ndim > 4:
        raise ValueError(f"{name} must have shape (n, C, H, W), (n, H, W) or (n, d), "
                         f"got {X.ndim} dimensions {tuple(X.shape)}.")
    if X.ndim == 4:
        images = X
    elif X.ndim == 3:
        images = X.unsqueeze(1)
    elif shape is not None:
        if math.prod(X.shape[1:]) != math.prod(shape):
            raise ValueError(f"{name} has {math.prod(X.shape[1:])} features per "
                             f"sample, which does not match input_shape {shape}.")
        images = X.reshape(n, *shape)
    else:
        d = X.shape[1]
        side = math.isqrt(d)
        if side * side != d:
            raise ValueError(
                f"{name} is flat with {d} features, which is not a square image; "
                "pass input_shape=(C, H, W) or images of shape (n, C, H, W).")
        images = X.reshape(n, 1, side, side)
    if shape is not None and tuple(images.shape[1:]) != shape:
        raise ValueError(f"{name} has images of shape {tuple(images.shape[1:])}, "
                         f"but input_shape is {shape}.")
    if math.prod(images.shape[1:]) == 0:
        raise ValueError(f"{name} has empty images of shape "
                         f"{tuple(images.shape[1:])}.")
    return images


class ConvKernel(_BaseKernel):
    r"""Infinite-width NNGP and NTK of a convolutional ReLU network (CNTK).

    The network is ``depth`` layers ``Conv(3x3, 'SAME', W_std, b_std) -> ReLU``,
    then global average pooling (``pooling="gap"``, the CNTK-GAP of Arora et al.
    [2]_) or flattening (``pooling="flatten"``, KIP's ``'Conv'`` network [4]_),
    then a ``Dense(W_std, b_std)`` readout, all in the NTK parameterization
    (``neural_tangents.stax`` semantics [3]_). The input kernel is the
    channel-averaged product ``sum_c x[c, p] x'[c, p'] / C`` for every pair of
    pixel positions ``p, p'``; a convolution averages the kernel over the 9 joint
    shifts of both positions (zeros outside the image) then applies the Dense
    rule, and a ReLU acts entrywise as in :class:`FCKernel`.

    Parameters
    ----------
    depth : int, default=1
        Number of ``Conv -> ReLU`` layers.
    W_std : float, default=sqrt(2)
        Weight standard deviation.
    b_std : float, default=0.1
        Bias standard deviation.
    pooling : {"gap", "flatten"}, default="gap"
        Readout: global average pooling or flattening.
    input_shape : tuple of int or None, default=None
        ``(C, H, W)`` (or ``(H, W)``) of flat inputs. Image inputs
        ``(n, C, H, W)`` or ``(n, H, W)`` need none; flat inputs without it must
        be square single-channel images.
    batch_size : int or None, default=None
        Rows of ``X1`` (and of ``X2``) per block. None picks the largest block
        with about ``2**21`` entries per ``(block, block, positions)`` tensor.

    See Also
    --------
    conv_kernel : Functional form.
    FCKernel : Fully connected kernels.

    Notes
    -----
    Cost, for ``P = H * W`` pixels: with ``pooling="gap"`` every pair of images
    carries a ``P x P`` kernel over pairs of positions, so time is
    ``O(n1 n2 P^2 (C + 9 depth))`` and memory ``O(b^2 P^2)`` for blocks of ``b``
    rows (``O(n1 n2 P^2)`` if unblocked): 4096 entries per pair for 8x8 digits,
    about 10^6 for 32x32 CIFAR images. With ``pooling="flatten"`` only equal
    positions interact: ``O(n1 n2 P (C + 9 depth))`` time. The kernel is computed
    block by block over pairs of row blocks; for ``X2=None`` only the upper
    triangle of blocks is computed. When an input requires a gradient, each block
    is checkpointed (:func:`torch.utils.checkpoint.checkpoint`), so backward
    memory is also one block's (recomputing the block once in backward); inside
    :mod:`torch.func` transforms, which do not support checkpointing, blocks are
    not checkpointed. Gradients are finite everywhere (see
    :class:`FCKernel`).

    References
    ----------
    .. [1] Jacot, A., Gabriel, F. and Hongler, C. "Neural Tangent Kernel:
       Convergence and Generalization in Neural Networks." NeurIPS 2018.
    .. [2] Arora, S., Du, S. S., Hu, W., Li, Z., Salakhutdinov, R. and Wang, R.
       "On Exact Computation with an Infinitely Wide Neural Net." NeurIPS 2019.
    .. [3] Novak, R., Xiao, L., Hron, J., Lee, J., Alemi, A. A.,
       Sohl-Dickstein, J. and Schoenholz, S. S. "Neural Tangents: Fast and Easy
       Infinite Neural Networks in Python." ICLR 2020.
    .. [4] Nguyen, T., Chen, Z. and Lee, J. "Dataset Meta-Learning from Kernel
       Ridge-Regression." ICLR 2021.

    Examples
    --------
    >>> import torch
    >>> from sklearn_robust.kernels import ConvKernel
    >>> X = torch.rand(4, 1, 5, 5, dtype=torch.float64,
    ...                generator=torch.Generator().manual_seed(0))
    >>> kernel = ConvKernel(depth=2)
    >>> K = kernel(X)
    >>> K.shape
    torch.Size([4, 4])
    >>> bool(torch.allclose(K.diagonal(), kernel(X, diag=True)))
    True
    """

    _param_names = ("depth", "W_std", "b_std", "pooling", "input_shape", "batch_size")
    _parameter_constraints = {**_BaseKernel._parameter_constraints,
                              "pooling": [StrOptions(set(_POOLINGS))],
                              "batch_size": [None, POSITIVE_INT]}

    def __init__(self, depth=1, *, W_std=2 ** 0.5, b_std=0.1, pooling="gap",
                 input_shape=None, batch_size=None):
        self._set_params(depth=depth, W_std=W_std, b_std=b_std, pooling=pooling,
                         batch_size=batch_size)
        self.input_shape = _check_input_shape(input_shape)
        self.batch_size = None if batch_size is None else int(batch_size)

    # ----------------------------------------------------------------- public
    def __call__(self, X1, X2=None, *, get="ntk", diag=False):
        """Evaluate the kernel.

        Parameters
        ----------
        X1 : Tensor or array-like of shape (n1, C, H, W), (n1, H, W) or (n1, d)
            Images (flat inputs are reshaped, see ``input_shape``).
        X2 : Tensor or array-like, default=None
            Second inputs, same image shape; None means ``X1``.
        get : {"ntk", "nngp"} or tuple of them, default="ntk"
            Which kernel(s); a tuple returns a tuple in the same order.
        diag : bool, default=False
            Return only ``k(x_i, x_i)``, shape ``(n1,)`` (``X2`` must be None).

        Returns
        -------
        K : Tensor of shape (n1, n2), or (n1,) with ``diag=True``

        Raises
        ------
        TypeError
            If ``X1`` or ``X2`` holds complex, boolean or non-numeric values, or
            ``diag`` is not a bool.
        ValueError
            If ``X1`` or ``X2`` has NaN or infinite values, no samples, fewer than
            2 or more than 4 dimensions, or a shape that is not an image (see
            :func:`as_images`), if their images differ in shape, if ``get`` is not
            valid, or if the kernel overflows the inputs' dtype.
        """
        return self._checked_call(X1, X2, get, diag)

    def _check_shapes(self, X1, X2):
        X1 = _as_images(X1, self.input_shape, "X1")
        if X2 is not None:
            X2 = _as_images(X2, self.input_shape, "X2")
            if X2.shape[1:] != X1.shape[1:]:
                raise ValueError(f"X1 and X2 must have images of the same shape, got "
                                 f"{tuple(X1.shape[1:])} and {tuple(X2.shape[1:])}.")
        return X1, X2

    def _evaluate(self, X1, X2, names, diag):
        """The kernels ``names`` (a tuple) of checked ``(n, C, H, W)`` tensors.

        No check: the fast path for callers that validated their inputs once.
        """
        want_ntk = "ntk" in names
        out = self._diag(X1, want_ntk) if diag else self._blocked(X1, X2, want_ntk)
        return tuple(out[n] for n in names)

    def block_size(self, image_shape):
        """Rows per block used for images of shape ``(C, H, W)``."""
        if self.batch_size is not None:
            return self.batch_size
        P = image_shape[-2] * image_shape[-1]
        per_pair = P * P if self.pooling == "gap" else P
        return max(1, math.isqrt(max(1, _BLOCK_ELEMENTS // per_pair)))

    # ---------------------------------------------------------------- helpers
    def _blocked(self, X1, X2, want_ntk):
        b = self.block_size(X1.shape[1:])
        sym = X2 is None
        Y = X1 if sym else X2
        starts1 = range(0, len(X1), b)
        starts2 = range(0, len(Y), b)
        grad = (torch.is_grad_enabled() and (X1.requires_grad or Y.requires_grad)
                and not _functorch_active())
        blocks = {}
        for i, s1 in enumerate(starts1):
            for j, s2 in enumerate(starts2):
                if sym and j < i:
                    continue
                x1, x2 = X1[s1:s1 + b], Y[s2:s2 + b]
                same = sym and i == j
                if grad:
                    out = checkpoint(self._block, x1, x2, want_ntk, same,
                                     use_reentrant=False)
                else:
                    out = self._block(x1, x2, want_ntk, same)
                blocks[i, j] = out
        result = {}
        for k, name in enumerate(("nngp", "ntk")):
            if name == "ntk" and not want_ntk:
                result[name] = None
                continue
            rows = []
            for i in range(len(starts1)):
                row = [blocks[i, j][k] if (i, j) in blocks else blocks[j, i][k].T
                       for j in range(len(starts2))]
                rows.append(torch.cat(row, dim=1))
            result[name] = torch.cat(rows, dim=0)
        return result

    def _block(self, x1, x2, want_ntk, same_block=False):
        """Kernels between two blocks of images, shape (b1, b2).

        ``same_block``: ``x1 is x2``, so equal samples at equal positions get a
        correlation of exactly 1.
        """
        C = x1.shape[1]
        q1 = (x1 * x1).sum(1) / C                       # (b1, H, W)
        q2 = (x2 * x2).sum(1) / C                       # (b2, H, W)
        same = None
        if self.pooling == "gap":
            S = torch.einsum("ichw,jcuv->ijhwuv", x1, x2) / C
            if same_block:
                same = (_eye(len(x1), x1.device)[:, :, None, None, None, None]
                        & _position_eye(x1)[None, None])
            return self._recurse(S, q1, q2, lambda q: q[:, None, :, :, None, None],
                                 lambda q: q[None, :, None, None, :, :], _box4, 4,
                                 want_ntk, same)
        S = torch.einsum("ichw,jchw->ijhw", x1, x2) / C
        if same_block:
            same = _eye(len(x1), x1.device)[:, :, None, None]
        return self._recurse(S, q1, q2, lambda q: q[:, None], lambda q: q[None],
                             _box2, 2, want_ntk, same)

    def _diag(self, X, want_ntk):
        C = X.shape[1]
        q = (X * X).sum(1) / C                          # (n, H, W)
        if self.pooling == "gap":
            S = torch.einsum("nchw,ncuv->nhwuv", X, X) / C
            nngp, ntk = self._recurse(S, q, q, lambda t: t[:, :, :, None, None],
                                      lambda t: t[:, None, None, :, :], _box4, 4,
                                      want_ntk, _position_eye(X)[None])
        else:
            # equal positions of identical images: correlation 1 everywhere
            w2, b2 = self.W_std ** 2, self.b_std ** 2
            ntk = torch.zeros_like(q) if want_ntk else None
            for _ in range(self.depth):
                q = w2 * _box2(q) + b2
                ntk = None if ntk is None else (w2 * _box2(ntk) + q) / 2
                q = q / 2
            nngp, ntk = _dense(q.mean((-2, -1)), None if ntk is None
                               else ntk.mean((-2, -1)), w2, b2)
        return {"nngp": nngp, "ntk": ntk}

    def _recurse(self, S, q1, q2, expand1, expand2, box, n_spatial, want_ntk,
                 same=None):
        w2, b2 = self.W_std ** 2, self.b_std ** 2
        ntk = torch.zeros_like(S) if want_ntk else None
        for _ in range(self.depth):
            S = w2 * box(S) + b2
            ntk = None if ntk is None else w2 * box(ntk) + S
            q1, q2 = w2 * _box2(q1) + b2, w2 * _box2(q2) + b2
            S, ntk = relu_step(S, ntk, expand1(std_of(q1)), expand2(std_of(q2)), same)
            q1, q2 = q1 / 2, q2 / 2
        dims = tuple(range(-n_spatial, 0))
        nngp, ntk = _dense(S.mean(dims), None if ntk is None else ntk.mean(dims),
                           w2, b2)
        return nngp, ntk


@validate_function_params({**ConvKernel._parameter_constraints, "diag": ["boolean"]})
def conv_kernel(X1, X2=None, *, depth=1, W_std=2 ** 0.5, b_std=0.1, pooling="gap",
                input_shape=None, get="ntk", diag=False, batch_size=None):
    """Infinite-width NNGP/NTK of a convolutional ReLU network.

    Functional form of :class:`ConvKernel`; see there for the network, the cost
    and the blocking.

    Parameters
    ----------
    X1 : Tensor or array-like of shape (n1, C, H, W), (n1, H, W) or (n1, d)
        Images.
    X2 : Tensor or array-like, default=None
        Second images; None means ``X1``.
    depth : int, default=1
        Number of ``Conv -> ReLU`` layers.
    W_std : float, default=sqrt(2)
        Weight standard deviation.
    b_std : float, default=0.1
        Bias standard deviation.
    pooling : {"gap", "flatten"}, default="gap"
        Global average pooling (CNTK-GAP) or flattening before the readout.
    input_shape : tuple of int or None, default=None
        ``(C, H, W)`` of flat inputs.
    get : {"ntk", "nngp"} or tuple of them, default="ntk"
        Which kernel(s) to return.
    diag : bool, default=False
        Return only the diagonal ``k(x_i, x_i)`` (``X2`` must be None).
    batch_size : int or None, default=None
        Rows per block (None: automatic).

    Returns
    -------
    K : Tensor of shape (n1, n2), or (n1,) with ``diag=True``

    Raises
    ------
    TypeError
        If the inputs hold complex, boolean or non-numeric values, or a parameter
        has the wrong type (the message names it).
    ValueError
        If a parameter is out of range, or the inputs are invalid or the kernel
        overflows, as for :meth:`ConvKernel.__call__`.

    References
    ----------
    .. [1] Arora, S., Du, S. S., Hu, W., Li, Z., Salakhutdinov, R. and Wang, R.
       "On Exact Computation with an Infinitely Wide Neural Net." NeurIPS 2019.

    Examples
    --------
    >>> import torch
    >>> from sklearn_robust.kernels import conv_kernel
    >>> X = torch.ones(2, 1, 3, 3, dtype=torch.float64)
    >>> conv_kernel(X, depth=1, pooling="flatten", diag=True)
    tensor([2.4498, 2.4498], dtype=torch.float64)
    """
    kernel = ConvKernel(depth, W_std=W_std, b_std=b_std, pooling=pooling,
                        input_shape=input_shape, batch_size=batch_size)
    return kernel(X1, X2, get=get, diag=diag)
