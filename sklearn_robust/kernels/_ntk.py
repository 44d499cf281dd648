"""Closed-form infinite-width NNGP and NTK of fully connected ReLU networks.

The recursion follows the semantics of ``neural_tangents.stax`` (Novak et al.,
2020) with ``parameterization='ntk'``: a network
``serial(Flatten, [Dense(W_std, b_std), Relu] * depth, Dense(W_std, b_std))``,
each layer written ``h = W_std / sqrt(fan_in) * W x + b_std * b`` with standard
normal ``W`` and ``b``.
"""

# SPDX-License-Identifier: BSD-3-Clause

import math

import numpy as np
import torch

from ..utils._param_validation import (
    NON_NEGATIVE_INT,
    NON_NEGATIVE_REAL,
    POSITIVE_REAL,
    validate_function_params,
    validate_params,
)
from ..utils._validation import check_finite_tensor, check_float_tensor

__all__ = ["FCKernel", "fc_kernel"]

# Correlations are clamped to [-1 + _CLAMP, 1 - _CLAMP] for the *gradient* of
# arccos and sqrt(1 - c^2); values use the exact correlation (see relu_step).
_CLAMP = 1e-7
# Floor of a variance before its square root (zero-variance inputs stay finite).
_TINY = 1e-30
_GETS = ("nngp", "ntk")


# --------------------------------------------------------------------- checks
def _check_get(get):
    """Return ``(names, as_tuple)`` for a ``get`` argument."""
    if isinstance(get, str):
        names, as_tuple = (get,), False
    elif isinstance(get, (tuple, list)) and len(get) > 0:
        names, as_tuple = tuple(get), True
    else:
        names, as_tuple = (get,), False
    for name in names:
        if name not in _GETS:
            raise ValueError(f"get must be 'ntk', 'nngp' or a tuple of them, "
                             f"got {get!r}.")
    return names, as_tuple


def _functorch_active():
    """True inside torch.func transforms (no checkpointing, no checks on values)."""
    probe = getattr(torch._C, "_are_functorch_transforms_active", None)
    return bool(probe()) if probe is not None else False


def _check_input(X, name, *, min_ndim=2, check_values=True):
    """``X`` as a floating tensor of shape ``(n_samples, ...)``, or a clear error.

    Tensors, arrays and lists are accepted (also with negative strides); complex,
    boolean and non-numeric values raise a ``TypeError``, too few dimensions, no
    samples, no features and NaN or infinity a ``ValueError``, naming ``name``.
    Arrays and lists are converted by :func:`check_float_tensor`. The values of a
    tensor are not read with ``check_values=False`` (the caller checks its result
    instead, one pass instead of one per input) nor inside torch.func transforms,
    which cannot branch on values.
    """
    if isinstance(X, torch.Tensor) and (not check_values or _functorch_active()):
        if X.is_complex() or X.dtype == torch.bool:
            raise TypeError(f"{name} must hold real numbers, got a {X.dtype} tensor.")
        if not X.is_floating_point():
            X = X.to(torch.float32)
        if X.ndim < min_ndim:
            raise ValueError(f"{name} must have at least {min_ndim} dimensions "
                             f"(n_samples, ...), got shape {tuple(X.shape)}.")
        if X.shape[0] == 0:
            raise ValueError(f"{name} has no samples (shape {tuple(X.shape)}).")
    else:
        X = check_float_tensor(X, name, min_ndim=min_ndim)
    if X.ndim >= 2 and math.prod(X.shape[1:]) == 0:
        raise ValueError(f"{name} has no features (shape {tuple(X.shape)}).")
    return X


def _prepare_pair(X1, X2):
    """Tensors of a common floating dtype on X1's device (X2 may be None).

    The values of tensors are left to :func:`_check_output`.
    """
    X1 = _check_input(X1, "X1", check_values=False)
    if X2 is None:
        return X1, None
    X2 = _check_input(X2, "X2", check_values=False)
    if X2.device != X1.device:
        raise ValueError(f"X1 and X2 are on different devices ({X1.device} and "
                         f"{X2.device}).")
    dtype = torch.promote_types(X1.dtype, X2.dtype)
    return X1.to(dtype), X2.to(dtype)


def _check_diag(diag):
    if not isinstance(diag, (bool, np.bool_)):
        raise TypeError(f"diag must be a bool, got {diag!r}.")
    return bool(diag)


def _check_output(kernel, values, X1, X2):
    """Raise a ``ValueError`` naming the cause when a kernel value is not finite.

    NaN or infinity in an input makes the kernel rows (or columns) of that sample
    non-finite, so one pass over the result detects them; the inputs are read only
    then, to name the one at fault. With finite inputs a non-finite kernel value
    can only come from overflow: the kernel grows like ``(W_std**2 / 2)**depth``
    times the inputs' squared scale.
    """
    if _functorch_active():
        return
    if all(bool(torch.isfinite(v).all()) for v in values):
        return
    check_finite_tensor(X1, "X1")
    if X2 is not None:
        check_finite_tensor(X2, "X2")
    scale = max(float(X.abs().max()) for X in (X1, X2) if X is not None)
    raise ValueError(
        f"{type(kernel).__name__}: the kernel overflowed the range of "
        f"{X1.dtype} (inputs of magnitude up to {scale:.3g}, depth={kernel.depth}, "
        f"W_std={kernel.W_std:.3g}, b_std={kernel.b_std:.3g}); scale the inputs "
        "down, lower W_std, b_std or depth, or use float64.")


# ------------------------------------------------------------ shared algebra
_INV_2PI = 1.0 / (2 * math.pi)


def _relu_values(nngp, ntk, std1, std2, same, unit_diagonal):
    """The ReLU step's values and what its backward needs: ``c``, ``sin t``, ``u``.

    ``c = nngp / (std1 std2)`` (exactly 1 where ``same`` and, with
    ``unit_diagonal``, on the diagonal), ``t = arccos(c)`` and ``sin t`` of ``c``
    clipped to ``[-1, 1]``, ``u = (pi - t) / (2 pi)``.
    """
    root = std1 * std2
    c = nngp / root
    if same is not None:
        c = torch.where(same, torch.ones_like(c), c)
    if unit_diagonal:
        c.diagonal().fill_(1.0)     # c is a fresh tensor
    exact = c.clamp(-1.0, 1.0)
    sin = torch.sqrt((1.0 - exact) * (1.0 + exact))
    # u = (pi - t) / (2 pi); (pi - t) cos t * root == (pi - t) * nngp keeps the
    # derivative in nngp exact
    u = torch.arccos(exact).mul_(-_INV_2PI).add_(0.5)
    new_nngp = torch.addcmul(sin.mul(root).mul_(_INV_2PI), u, nngp)
    new_ntk = None if ntk is None else ntk * u
    return new_nngp, new_ntk, c, sin, u


class _ReluStep(torch.autograd.Function):
    """:func:`relu_step` with a closed-form backward (one pass, few temporaries).

    With ``root = std1 std2``, ``K' = root sin(t) / (2 pi) + u K`` and
    ``Theta' = Theta u``, the chain rule through ``c = K / root`` cancels the
    derivatives of ``sin t`` and ``u`` in ``K'`` (``dK'/dK = u``,
    ``dK'/droot = sin t / (2 pi)``), leaving for the cotangents ``gK'``, ``gTheta'``:

    - ``grad_K = gK' u + a``, ``grad_root = gK' sin t / (2 pi) - a c``,
      ``grad_Theta = gTheta' u``, with ``a = gTheta' Theta / (2 pi sin t root)``
      where ``-1 + 1e-7 <= c <= 1 - 1e-7`` and 0 elsewhere (where ``c`` is
      forced to 1, and where the arccos has an infinite slope: the gradient of
      the correlation clamped to that interval, as the autograd implementation
      of the same formulas gave);
    - ``grad_std1 = sum(grad_root std2)`` over the broadcast dimensions, and
      ``grad_std2`` likewise.

    Written in the ``setup_context`` style with ``generate_vmap_rule`` so that it
    works under ``torch.func`` transforms. First derivatives only.
    """

    generate_vmap_rule = True

    @staticmethod
    def forward(nngp, ntk, std1, std2, same, unit_diagonal):
        return _relu_values(nngp, ntk, std1, std2, same, unit_diagonal)

    @staticmethod
    def setup_context(ctx, inputs, output):
        _, ntk, std1, std2, _, _ = inputs
        _, _, c, sin, u = output
        ctx.mark_non_differentiable(c, sin, u)
        ctx.save_for_backward(ntk, std1, std2, c, sin, u)

    @staticmethod
    def backward(ctx, g_nngp, g_ntk, _g_c, _g_sin, _g_u):
        ntk, std1, std2, c, sin, u = ctx.saved_tensors
        need_nngp, need_ntk, need_std1, need_std2 = ctx.needs_input_grad[:4]
        grad_nngp = g_nngp * u
        grad_root = g_nngp * sin * _INV_2PI
        grad_ntk = None
        if ntk is not None and g_ntk is not None:
            if need_ntk:
                grad_ntk = g_ntk * u
            inner = (c >= -1.0 + _CLAMP) & (c <= 1.0 - _CLAMP)
            root = std1 * std2
            a = torch.where(inner, g_ntk * ntk * _INV_2PI
                            / (torch.where(inner, sin, torch.ones_like(sin)) * root),
                            torch.zeros_like(sin))
            grad_nngp = grad_nngp + a
            grad_root = grad_root - a * c
        grad_std1 = (grad_root * std2).sum_to_size(std1.shape) if need_std1 else None
        grad_std2 = (grad_root * std1).sum_to_size(std2.shape) if need_std2 else None
        return (grad_nngp if need_nngp else None), grad_ntk, grad_std1, grad_std2, \
            None, None


class _Gram(torch.autograd.Function):
    """``X @ X.T`` whose backward is one matrix product, ``(G + G^T) @ X``.

    Autograd of ``X @ X.T`` multiplies twice (once for each factor): twice the
    forward's cost for the support kernel ``k(X_s)`` of the dataset learners.
    ``setup_context`` style with ``generate_vmap_rule`` (works under
    ``torch.func``); first derivatives only.
    """

    generate_vmap_rule = True

    @staticmethod
    def forward(X):
        return X @ X.mT

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.save_for_backward(inputs[0])

    @staticmethod
    def backward(ctx, G):
        (X,) = ctx.saved_tensors
        return (G + G.mT) @ X


def _gram(X):
    """``X @ X.T``, with the one-product backward of :class:`_Gram` when needed."""
    if torch.is_grad_enabled() and (X.requires_grad or _functorch_active()):
        return _Gram.apply(X)
    return X @ X.mT


def relu_step(nngp, ntk, std1, std2, same=None, *, unit_diagonal=False):
    """Map pre-activation kernels through a ReLU (arc-cosine kernels of order 1 and 0).

    Parameters
    ----------
    nngp : Tensor
        Covariance ``k(x, x')`` of the pre-activations.
    ntk : Tensor or None
        NTK of the pre-activations (skipped when None).
    std1, std2 : Tensor
        ``sqrt(k(x, x))`` and ``sqrt(k(x', x'))``, broadcastable to ``nngp``.
    same : Tensor of bool or None
        Where ``x`` and ``x'`` are the same input (correlation set to exactly 1).
    unit_diagonal : bool, default=False
        ``nngp`` is a square matrix of an input with itself: its diagonal
        correlations are set to exactly 1.

    Returns
    -------
    nngp, ntk : Tensor
        ``std1 std2 (sin t + (pi - t) cos t) / (2 pi)`` and
        ``ntk (pi - t) / (2 pi)`` with ``t = arccos(nngp / (std1 std2))``.

    Notes
    -----
    Values are exact for the correlation clipped to ``[-1, 1]``. Gradients (a
    closed-form backward, :class:`_ReluStep`) are those of the formulas with
    the correlation clamped to ``[-1 + 1e-7, 1 - 1e-7]`` inside ``arccos`` and
    ``sqrt(1 - c^2)``: finite everywhere, exact away from the end points and
    zero along the correlation at ``|c| = 1`` (identical or opposite inputs,
    where the kernel has a cone and no derivative).
    """
    tensors = (nngp, ntk, std1, std2)
    if torch.is_grad_enabled() and (_functorch_active() or any(
            t is not None and t.requires_grad for t in tensors)):
        out = _ReluStep.apply(nngp, ntk, std1, std2, same, unit_diagonal)
    else:
        out = _relu_values(nngp, ntk, std1, std2, same, unit_diagonal)
    return out[0], out[1]


def std_of(q):
    """``sqrt(q)`` with a tiny floor (zero-variance inputs stay finite)."""
    return torch.sqrt(q.clamp_min(_TINY))


class _BaseKernel:
    """Shared plumbing of the infinite-width kernels (parameters, repr, equality)."""

    _param_names = ()
    _parameter_constraints = {"depth": [NON_NEGATIVE_INT], "W_std": [POSITIVE_REAL],
                              "b_std": [NON_NEGATIVE_REAL]}

    def _set_params(self, **params):
        """Store ``params`` and validate them against ``_parameter_constraints``.

        Called by ``__init__``: a kernel is an immutable value, not an estimator.
        """
        for name, value in params.items():
            setattr(self, name, value)
        validate_params(self)
        self.depth, self.W_std, self.b_std = (int(self.depth), float(self.W_std),
                                              float(self.b_std))

    def get_params(self):
        """The kernel's parameters as a dict."""
        return {name: getattr(self, name) for name in self._param_names}

    def _checked_call(self, X1, X2, get, diag):
        """Validate the arguments of ``__call__``, evaluate, and check the result."""
        names, as_tuple = _check_get(get)
        diag = _check_diag(diag)
        X1, X2 = _prepare_pair(X1, X2)
        if diag and X2 is not None:
            raise ValueError("diag=True computes k(x, x) for the rows of X1; "
                             "X2 must be None.")
        X1, X2 = self._check_shapes(X1, X2)
        out = self._evaluate(X1, X2, names, diag)
        _check_output(self, out, X1, X2)
        return out if as_tuple else out[0]

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"

    def __eq__(self, other):
        return type(self) is type(other) and self.get_params() == other.get_params()

    def __hash__(self):
        return hash((type(self).__name__,) + tuple(
            repr(v) for v in self.get_params().values()))


# ------------------------------------------------------------------ FC kernel
class FCKernel(_BaseKernel):
    r"""Infinite-width NNGP and NTK of a fully connected ReLU network.

    The network is ``depth`` hidden layers ``Dense(W_std, b_std) -> ReLU`` and a
    ``Dense(W_std, b_std)`` readout in the NTK parameterization, exactly the
    ``neural_tangents.stax`` network ``serial(Flatten(), *[Dense(w, W_std, b_std),
    Relu()] * depth, Dense(1, W_std, b_std))`` used by KIP [5]_. Image inputs are
    flattened. In closed form, with input kernel :math:`q_0 = x \cdot x' / d`:

    - Dense: :math:`K \leftarrow W^2 K + b^2`, :math:`\Theta \leftarrow W^2
      \Theta + K` (:math:`\Theta = 0` before the first layer);
    - ReLU: with :math:`c = K / \sqrt{K(x,x) K(x',x')}` and :math:`t = \arccos c`,
      :math:`K \leftarrow \sqrt{K(x,x) K(x',x')}\,(\sin t + (\pi - t)\cos t) /
      (2\pi)` and :math:`\Theta \leftarrow \Theta\,(\pi - t)/(2\pi)`.

    Computation is in torch on the device and dtype of the inputs, batched over
    both arguments, and differentiable in both (see Notes). Cost is
    ``O(n1 n2 (d + depth))`` time and ``O(n1 n2)`` memory.

    Parameters
    ----------
    depth : int, default=1
        Number of hidden ``Dense -> ReLU`` layers (0 gives the linear kernel
        ``W_std**2 q0 + b_std**2``).
    W_std : float, default=sqrt(2)
        Weight standard deviation (KIP's default).
    b_std : float, default=0.1
        Bias standard deviation (KIP's default).

    See Also
    --------
    fc_kernel : Functional form.
    ConvKernel : Convolutional NTK for images.
    NTKClassifier : Kernel ridge regression with these kernels.

    Notes
    -----
    Gradients: ``arccos`` and ``sqrt(1 - c^2)`` have infinite derivatives at
    ``c = +-1``. Values are computed exactly, while gradients come from the
    correlation clamped to ``[-1 + 1e-7, 1 - 1e-7]``, so they are finite
    everywhere, exact for distinct inputs, and zero along the arccos direction for
    (near-)identical pairs, where the NTK has a cone-shaped, non-differentiable
    point. When ``X2`` is None the diagonal correlations are set to exactly 1.
    The backward pass is written out in closed form for the ReLU step and for
    ``X X^T`` (one elementwise pass, one matrix product): its cost is about that
    of the forward (``benchmarks/scaling.py``).
    Use float64 where accuracy matters (float32 correlations of nearly parallel
    inputs lose about 4 digits in the arccos).

    References
    ----------
    .. [1] Jacot, A., Gabriel, F. and Hongler, C. "Neural Tangent Kernel:
       Convergence and Generalization in Neural Networks." NeurIPS 2018.
    .. [2] Lee, J., Xiao, L., Schoenholz, S. S., Bahri, Y., Novak, R.,
       Sohl-Dickstein, J. and Pennington, J. "Wide Neural Networks of Any Depth
       Evolve as Linear Models Under Gradient Descent." NeurIPS 2019.
    .. [3] Cho, Y. and Saul, L. K. "Kernel Methods for Deep Learning."
       NeurIPS 2009.
    .. [4] Novak, R., Xiao, L., Hron, J., Lee, J., Alemi, A. A.,
       Sohl-Dickstein, J. and Schoenholz, S. S. "Neural Tangents: Fast and Easy
       Infinite Neural Networks in Python." ICLR 2020.
    .. [5] Nguyen, T., Chen, Z. and Lee, J. "Dataset Meta-Learning from Kernel
       Ridge-Regression." ICLR 2021.

    Examples
    --------
    >>> import torch
    >>> from sklearn_robust.kernels import FCKernel
    >>> kernel = FCKernel(depth=2)
    >>> X = torch.eye(3, dtype=torch.float64)
    >>> K = kernel(X)                      # NTK, shape (3, 3)
    >>> K.shape
    torch.Size([3, 3])
    >>> bool(torch.allclose(K.diagonal(), kernel(X, diag=True)))
    True
    >>> nngp, ntk = kernel(X, X[:2], get=("nngp", "ntk"))
    >>> tuple(ntk.shape)
    (3, 2)
    """

    _param_names = ("depth", "W_std", "b_std")

    def __init__(self, depth=1, *, W_std=2 ** 0.5, b_std=0.1):
        self._set_params(depth=depth, W_std=W_std, b_std=b_std)

    def __call__(self, X1, X2=None, *, get="ntk", diag=False):
        """Evaluate the kernel.

        Parameters
        ----------
        X1 : Tensor or array-like of shape (n1, ...)
            Inputs; every sample is flattened.
        X2 : Tensor or array-like of shape (n2, ...), default=None
            Second inputs; None means ``X1`` (and exact unit correlations on the
            diagonal).
        get : {"ntk", "nngp"} or tuple of them, default="ntk"
            Which kernel(s); a tuple returns a tuple in the same order.
        diag : bool, default=False
            Return only ``k(x_i, x_i)`` for the rows of ``X1``, shape ``(n1,)``,
            in ``O(n1 d)`` (``X2`` must be None).

        Returns
        -------
        K : Tensor of shape (n1, n2), or (n1,) with ``diag=True``
            On the device and in the floating dtype of the inputs.

        Raises
        ------
        TypeError
            If ``X1`` or ``X2`` holds complex, boolean or non-numeric values, or
            ``diag`` is not a bool.
        ValueError
            If ``X1`` or ``X2`` has fewer than 2 dimensions, no samples, no
            features or NaN or infinite values, if they differ in their number of
            features or device, if ``get`` is not valid, or if the kernel overflows
            the inputs' dtype (huge inputs, ``W_std`` or ``depth``).
        """
        return self._checked_call(X1, X2, get, diag)

    def _check_shapes(self, X1, X2):
        if X2 is not None and math.prod(X2.shape[1:]) != math.prod(X1.shape[1:]):
            raise ValueError(f"X1 and X2 must have the same number of features, "
                             f"got {math.prod(X1.shape[1:])} and "
                             f"{math.prod(X2.shape[1:])}.")
        return X1, X2

    def _evaluate(self, X1, X2, names, diag):
        """The kernels ``names`` (a tuple) of checked tensors, without any check.

        The fast path for callers that validated their inputs once (the dataset
        learners call the kernel in their inner loops).
        """
        X1 = X1.reshape(X1.shape[0], -1)
        d = X1.shape[1]
        want_ntk = "ntk" in names
        if diag:
            out = self._diag(X1, d, want_ntk)
        else:
            out = self._full(X1, None if X2 is None else X2.reshape(X2.shape[0], -1),
                             d, want_ntk)
        return tuple(out[n] for n in names)

    def _full(self, X1, X2, d, want_ntk):
        w2, b2 = self.W_std ** 2, self.b_std ** 2
        sym = X2 is None
        q1 = (X1 * X1).sum(1) / d
        if sym:
            nngp = _gram(X1) / d
            q2 = q1
        else:
            nngp = X1 @ X2.T / d
            q2 = (X2 * X2).sum(1) / d
        ntk = torch.zeros_like(nngp) if want_ntk else None
        for _ in range(self.depth):
            nngp, ntk = _dense(nngp, ntk, w2, b2)
            q1, q2 = w2 * q1 + b2, w2 * q2 + b2
            nngp, ntk = relu_step(nngp, ntk, std_of(q1)[:, None], std_of(q2)[None, :],
                                  unit_diagonal=sym)
            q1, q2 = q1 / 2, q2 / 2
        nngp, ntk = _dense(nngp, ntk, w2, b2)
        return {"nngp": nngp, "ntk": ntk}

    def _diag(self, X1, d, want_ntk):
        # identical inputs: correlation 1, so ReLU halves both kernels
        w2, b2 = self.W_std ** 2, self.b_std ** 2
        nngp = (X1 * X1).sum(1) / d
        ntk = torch.zeros_like(nngp) if want_ntk else None
        for _ in range(self.depth):
            nngp, ntk = _dense(nngp, ntk, w2, b2)
            nngp = nngp / 2
            ntk = None if ntk is None else ntk / 2
        nngp, ntk = _dense(nngp, ntk, w2, b2)
        return {"nngp": nngp, "ntk": ntk}


def _dense(nngp, ntk, w2, b2):
    """A Dense layer in the NTK parameterization."""
    nngp = w2 * nngp + b2
    ntk = None if ntk is None else w2 * ntk + nngp
    return nngp, ntk


@validate_function_params({**_BaseKernel._parameter_constraints, "diag": ["boolean"]})
def fc_kernel(X1, X2=None, *, depth=1, W_std=2 ** 0.5, b_std=0.1, get="ntk",
              diag=False):
    """Infinite-width NNGP/NTK of a fully connected ReLU network.

    Functional form of :class:`FCKernel`; see there for the network and the
    recursion.

    Parameters
    ----------
    X1 : Tensor or array-like of shape (n1, ...)
        Inputs, flattened per sample.
    X2 : Tensor or array-like of shape (n2, ...), default=None
        Second inputs; None means ``X1``.
    depth : int, default=1
        Number of hidden ``Dense -> ReLU`` layers.
    W_std : float, default=sqrt(2)
        Weight standard deviation.
    b_std : float, default=0.1
        Bias standard deviation.
    get : {"ntk", "nngp"} or tuple of them, default="ntk"
        Which kernel(s) to return.
    diag : bool, default=False
        Return only the diagonal ``k(x_i, x_i)`` (``X2`` must be None).

    Returns
    -------
    K : Tensor of shape (n1, n2), or (n1,) with ``diag=True``

    Raises
    ------
    TypeError
        If the inputs hold complex, boolean or non-numeric values, or a parameter
        has the wrong type (the message names it).
    ValueError
        If a parameter is out of range (``depth >= 0``, ``W_std > 0`` and
        ``b_std >= 0``, finite), or the inputs are invalid or the kernel overflows,
        as for :meth:`FCKernel.__call__`.

    References
    ----------
    .. [1] Jacot, A., Gabriel, F. and Hongler, C. "Neural Tangent Kernel:
       Convergence and Generalization in Neural Networks." NeurIPS 2018.
    .. [2] Novak, R. et al. "Neural Tangents: Fast and Easy Infinite Neural
       Networks in Python." ICLR 2020.

    Examples
    --------
    >>> import torch
    >>> from sklearn_robust.kernels import fc_kernel
    >>> X = torch.tensor([[1.0, 0.0], [0.0, 1.0]], dtype=torch.float64)
    >>> fc_kernel(X, depth=1, get="nngp")
    tensor([[1.0200, 0.3365],
            [0.3365, 1.0200]], dtype=torch.float64)
    """
    return FCKernel(depth, W_std=W_std, b_std=b_std)(X1, X2, get=get, diag=diag)
