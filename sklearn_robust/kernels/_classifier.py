"""Kernel ridge regression classifier with infinite-width network kernels."""

# SPDX-License-Identifier: BSD-3-Clause

import warnings

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

from ..utils._param_validation import (
    NON_NEGATIVE_REAL,
    POSITIVE_INT,
    StrOptions,
    TorchDevice,
    validate_function_params,
    validate_params,
)
from ..utils._validation import (
    FLOAT32_MAX,
    check_class_codes,
    check_finite_tensor,
    check_float_tensor,
)
from ._conv import ConvKernel, as_images
from ._ntk import FCKernel, _BaseKernel, _check_input, _functorch_active

__all__ = ["NTKClassifier", "KernelRegressionModule", "solve_kernel_ridge",
           "centered_one_hot"]

_KERNELS = ("fc", "conv")
_DTYPES = {"float64": torch.float64, "float32": torch.float32}


@validate_function_params({"n_classes": [POSITIVE_INT]})
def centered_one_hot(codes, n_classes, *, dtype=torch.float64, device=None):
    """KIP's regression targets: ``one_hot(codes) - 1 / n_classes``.

    Parameters
    ----------
    codes : Tensor or array-like of int, shape (n_samples,)
        Class indices in ``[0, n_classes)`` (floats holding whole numbers are
        accepted).
    n_classes : int
        Number of classes ``C >= 1``.
    dtype : torch.dtype, default=torch.float64
        A floating dtype.
    device : torch.device or str, default=None

    Returns
    -------
    Y : Tensor of shape (n_samples, n_classes)
        ``1 - 1/C`` at the true class and ``-1/C`` elsewhere (0.9 / -0.1 for 10
        classes); each row sums to 0.

    Raises
    ------
    TypeError
        If ``codes`` does not hold numbers, ``n_classes`` is not an integer or
        ``dtype`` is not a floating torch dtype.
    ValueError
        If ``codes`` is not 1-D, holds NaN, fractions or indices outside
        ``[0, n_classes)``, or ``n_classes < 1``.
    """
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise TypeError(f"centered_one_hot: dtype must be a floating torch dtype, "
                        f"got {dtype!r}.")
    codes = check_class_codes(codes, n_classes=int(n_classes), name="codes",
                              device=device)
    return _centered_one_hot(codes, int(n_classes), dtype)


def _centered_one_hot(codes, n_classes, dtype):
    """:func:`centered_one_hot` of checked int64 ``codes``, without any check."""
    Y = torch.nn.functional.one_hot(codes, n_classes).to(dtype)
    return Y - 1.0 / n_classes


@validate_function_params({"ridge": [NON_NEGATIVE_REAL]})
def solve_kernel_ridge(K, Y, *, ridge=1e-6):
    r"""Dual coefficients of kernel ridge regression with a trace-scaled ridge.

    Solves :math:`(K + \lambda \operatorname{tr}(K)/n \, I)\,\alpha = Y`, the
    regularisation of KIP (Nguyen et al., 2021), by a Cholesky factorisation.
    The solve is differentiable in ``K`` and ``Y`` (first derivatives: the
    gradients of autograd through the factorisation, at a cost of ``O(n^2 k)``
    instead of ``O(n^3)`` in the backward pass). If the factorisation fails (a
    singular matrix, e.g. duplicated samples with ``ridge=0``), a
    least-squares solution from the symmetric pseudo-inverse is returned with a
    warning.

    Parameters
    ----------
    K : Tensor or array-like of shape (n, n)
        Symmetric positive semi-definite kernel matrix.
    Y : Tensor or array-like of shape (n,) or (n, k)
        Targets, on the device of ``K``.
    ridge : float, default=1e-6
        Relative ridge :math:`\lambda >= 0`; the added diagonal is
        ``ridge * trace(K) / n``.

    Returns
    -------
    alpha : Tensor of the shape of ``Y``
        In the common floating dtype of ``K`` and ``Y``.

    Raises
    ------
    TypeError
        If ``K`` or ``Y`` holds complex, boolean or non-numeric values, or
        ``ridge`` is not a real number.
    ValueError
        If ``K`` is not a non-empty square matrix, ``Y`` is not of shape ``(n,)``
        or ``(n, k)``, either holds NaN or infinity, they are on different
        devices, ``ridge`` is negative or not finite, or the solution overflows.

    Examples
    --------
    >>> import torch
    >>> from sklearn_robust.kernels import solve_kernel_ridge
    >>> K = torch.tensor([[2.0, 1.0], [1.0, 2.0]], dtype=torch.float64)
    >>> alpha = solve_kernel_ridge(K, torch.tensor([1.0, -1.0], dtype=torch.float64),
    ...                            ridge=0.0)
    >>> [round(a, 6) for a in alpha.tolist()]
    [1.0, -1.0]
    """
    K = _check_input(K, "K", check_values=False)
    n = K.shape[0]
    if K.ndim != 2 or K.shape[1] != n:
        raise ValueError(f"K must be a square matrix, got shape {tuple(K.shape)}.")
    Y = _check_input(Y, "Y", min_ndim=1, check_values=False)
    if Y.ndim > 2 or Y.shape[0] != n:
        raise ValueError(f"Y must have shape ({n},) or ({n}, n_outputs) for K of "
                         f"shape {tuple(K.shape)}, got {tuple(Y.shape)}.")
    if Y.device != K.device:
        raise ValueError(f"K and Y are on different devices ({K.device} and "
                         f"{Y.device}).")
    # one pass over K (cheap next to the n^3 solve): the Cholesky factorisation
    # reads only one triangle, so NaN in the other would not reach alpha
    check_finite_tensor(K, "K")
    check_finite_tensor(Y, "Y")
    dtype = torch.promote_types(K.dtype, Y.dtype)
    K, Y = K.to(dtype), Y.to(dtype)
    try:
        alpha = _solve_kernel_ridge(K, Y, float(ridge))
    except _NotFinite:
        alpha = None
    if alpha is None or not torch.isfinite(alpha).all():
        raise ValueError(f"solve_kernel_ridge: the solution overflowed {K.dtype} (K "
                         f"has entries up to {float(K.abs().max()):.3g}, "
                         f"ridge={ridge!r}); scale K or Y down, increase ridge or use "
                         "float64.")
    return alpha


class _NotFinite(ValueError):
    """The regularised matrix is not finite (NaN in K, or its trace overflowed)."""


def _solve_kernel_ridge(K, Y, ridge):
    """:func:`solve_kernel_ridge` of tensors of one dtype, without input checks.

    Raises :class:`_NotFinite` instead of computing a pseudo-inverse of a matrix
    holding NaN or infinity (which fails to converge).
    """
    n = K.shape[0]
    vector = Y.ndim == 1
    Y2 = Y[:, None] if vector else Y
    reg = ridge * torch.diagonal(K).sum() / n
    A = K + reg * torch.eye(n, dtype=K.dtype, device=K.device)
    L, info = torch.linalg.cholesky_ex(A.detach())
    if int(info) == 0:
        alpha = torch.cholesky_solve(Y2.detach(), L)
        if torch.is_grad_enabled() and (A.requires_grad or Y2.requires_grad
                                        or _functorch_active()):
            alpha = _with_solve_gradient(alpha, A, Y2, L)
    else:
        if not torch.isfinite(A).all():
            raise _NotFinite("the regularised kernel matrix is not finite.")
        warnings.warn("The regularised kernel matrix is not positive definite "
                      "(singular or ill-conditioned); using its pseudo-inverse. "
                      "Increase ridge or use float64.", RuntimeWarning, stacklevel=4)
        alpha = torch.linalg.pinv(A, hermitian=True) @ Y2
    return alpha[:, 0] if vector else alpha


def _with_solve_gradient(alpha, A, Y, L):
    """``alpha = A^{-1} Y`` (given, from the Cholesky factor ``L`` of ``A``) with its
    first derivative attached at a cost of ``O(n^2 k)``.

    Back-propagating through ``cholesky`` and ``cholesky_solve`` costs several
    ``n x n`` triangular solves, ``O(n^3)``: measured on one CPU thread, 7 to 10
    times the forward of the solve at ``n = 1000 .. 4000``, and most of the NTK
    distiller's backward. The derivative ``d alpha = A^{-1} (dY - dA alpha)`` needs
    one solve with the ``k`` columns of the cotangent and an outer product:
    ``r = A^{-1} (Y - sym(A) alpha)``, with ``L`` and ``alpha`` held constant and
    ``sym(A) alpha = (A alpha + A^T alpha) / 2``, has exactly that derivative for a
    symmetric ``A``, and ``alpha + (r - r.detach())`` adds it to ``alpha`` without
    changing a value. The gradient in ``A``, ``-(b alpha^T + alpha b^T) / 2`` with
    ``b = A^{-1} g``, is the symmetric one that autograd through the Cholesky
    factorisation gives. Only first derivatives are exact (nothing in the library
    takes second derivatives through the solve).
    """
    r = torch.cholesky_solve(Y - 0.5 * (A @ alpha + A.mT @ alpha), L)
    return alpha + (r - r.detach())


class KernelRegressionModule(torch.nn.Module):
    """A kernel regression predictor ``x -> K(x, X_fit) @ alpha`` as a torch module.

    Differentiable in ``x`` (and in the buffers if they require grad); inputs are
    cast to the dtype of ``alpha``. This is what :meth:`NTKClassifier.torch_view`
    returns, so attacks and the robust scorer can run white-box gradients through
    the kernel model.

    Parameters
    ----------
    kernel : FCKernel or ConvKernel
        Any callable ``kernel(X1, X2) -> Tensor (n1, n2)``.
    X_fit : Tensor of shape (n_fit, ...)
        Support inputs.
    alpha : Tensor of shape (n_fit, n_outputs)
        Dual coefficients.
    get : {"ntk", "nngp"}, default="ntk"
        Which kernel of ``kernel`` to use.

    Raises
    ------
    TypeError
        If ``kernel`` is not callable, or ``X_fit`` or ``alpha`` holds complex,
        boolean or non-numeric values.
    ValueError
        If ``X_fit`` or ``alpha`` holds NaN or infinity or has no rows, ``alpha``
        is not of shape ``(n_fit, n_outputs)``, they are on different devices, or
        ``get`` is not ``"ntk"`` or ``"nngp"``. :meth:`forward` raises as the
        kernel does for a bad ``x``.
    """

    def __init__(self, kernel, X_fit, alpha, *, get="ntk"):
        super().__init__()
        if not callable(kernel):
            raise TypeError(f"kernel must be callable, kernel(X1, X2, get=...), got "
                            f"{kernel!r}.")
        if get not in ("ntk", "nngp"):
            raise ValueError(f"get must be 'ntk' or 'nngp', got {get!r}.")
        X_fit = check_float_tensor(X_fit, "X_fit")
        alpha = check_float_tensor(alpha, "alpha")
        if alpha.ndim != 2 or alpha.shape[0] != X_fit.shape[0]:
            raise ValueError(f"alpha must have shape (n_fit, n_outputs) with n_fit = "
                             f"{X_fit.shape[0]} rows of X_fit, got "
                             f"{tuple(alpha.shape)}.")
        if alpha.device != X_fit.device:
            raise ValueError(f"X_fit and alpha are on different devices "
                             f"({X_fit.device} and {alpha.device}).")
        self.kernel = kernel
        self.get = get
        self.register_buffer("X_fit", X_fit)
        self.register_buffer("alpha", alpha)

    def forward(self, x):
        x = _check_input(x, "x").to(device=self.alpha.device, dtype=self.alpha.dtype)
        return self.kernel(x, self.X_fit, get=self.get) @ self.alpha


class NTKClassifier(ClassifierMixin, BaseEstimator):
    r"""Kernel ridge regression classifier with an infinite-width network kernel.

    Predicts with the mean of an infinitely wide ReLU network trained by gradient
    descent on the squared loss to convergence (``get="ntk"``, Jacot et al. [1]_,
    Lee et al. [2]_) or with the Bayesian posterior mean of the same network
    (``get="nngp"``), i.e. kernel ridge regression

    .. math:: f(x) = K(x, X)\,\bigl(K(X, X) + \lambda\,\operatorname{tr}(K)/n\,
              I\bigr)^{-1}\,(Y - 1/C),

    on centred one-hot targets (one-hot minus ``1/C``), with the trace-scaled
    ridge of KIP [5]_. The kernel is that of a fully connected network
    (:class:`FCKernel`) or of a convolutional one (:class:`ConvKernel`, CNTK of
    Arora et al. [3]_). The model is white-box attackable: :meth:`torch_view`
    gives the differentiable predictor used by
    :func:`sklearn_robust.metrics.robust_accuracy_score`.

    Parameters
    ----------
    kernel : {"fc", "conv"}, default="fc"
        Fully connected (:class:`FCKernel`) or convolutional
        (:class:`ConvKernel`) network.
    depth : int, default=1
        Hidden ``Dense -> ReLU`` layers (``"fc"``) or ``Conv -> ReLU`` layers
        (``"conv"``).
    W_std : float, default=sqrt(2)
        Weight standard deviation.
    b_std : float, default=0.1
        Bias standard deviation.
    get : {"ntk", "nngp"}, default="ntk"
        Neural tangent kernel (trained network) or NNGP (Bayesian network).
    ridge : float, default=1e-3
        Relative ridge :math:`\lambda`; the regularisation added to the
        diagonal is ``ridge * trace(K) / n_samples``. KIP uses ``1e-6`` for
        learned support sets. On real data accuracy is flat in the ridge (digits,
        70/30 split: 99.3% test accuracy for every ridge from 0 to 1e-2, FC
        NTK/NNGP of depth 1 to 3, float64 and float32); ``1e-3`` keeps the
        Cholesky factorisation well conditioned with duplicated or nearly
        duplicated samples and in float32.
    pooling : {"gap", "flatten"}, default="gap"
        Readout of the convolutional kernel (ignored by ``"fc"``).
    input_shape : tuple of int or None, default=None
        ``(C, H, W)`` of flat inputs for ``kernel="conv"``; None: images are
        given as ``(n, C, H, W)`` or flat square single-channel images.
    batch_size : int or None, default=None
        Rows per block of the convolutional kernel (None: automatic).
    device : str or torch.device, default="cpu"
        Where the kernels are computed.
    dtype : {"float64", "float32"}, default="float64"
        Precision of the kernels and of the solve. float32 is faster, but its
        rounding makes outputs depend slightly (~1e-7) on how rows are batched.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        Class labels; column ``j`` of :meth:`decision_function` scores
        ``classes_[j]``.
    X_fit_ : ndarray of shape (n_samples, ...)
        Training inputs (the kernel's support).
    alpha_ : ndarray of shape (n_samples, n_classes)
        Dual coefficients, ``f(x) = K(x, X_fit_) @ alpha_``.
    kernel_ : FCKernel or ConvKernel
        The kernel used.
    regularization_ : float
        The ridge added to the diagonal, ``ridge * trace(K) / n_samples``.
    input_shape_ : tuple of int
        Shape of one training sample.
    n_features_in_ : int
        Number of features (size of the second axis) seen in fit.
    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        Names of the features, when ``X`` has string column names.

    See Also
    --------
    FCKernel, ConvKernel : The kernels.
    sklearn.kernel_ridge.KernelRidge : Kernel ridge regression with classical
        kernels.

    Notes
    -----
    There is no ``predict_proba``: regression outputs on centred one-hot targets
    are not probabilities (they are near ``1 - 1/C`` for the predicted class and
    ``-1/C`` elsewhere, and need not lie in ``[0, 1]``). :meth:`decision_function`
    returns them; wrap the model in
    :class:`~sklearn.calibration.CalibratedClassifierCV` for probabilities. The
    torch view returns the same outputs as logits (argmax = prediction), which is
    what margin and cross-entropy attacks need.

    Fitting costs one kernel matrix and one Cholesky factorisation,
    ``O(n^2)`` memory and ``O(n^3)`` time; prediction costs ``K(X, X_fit_)``.
    The convolutional kernel with ``pooling="gap"`` is much more expensive (see
    :class:`ConvKernel`): practical for a few hundred tiny images on a CPU.

    References
    ----------
    .. [1] Jacot, A., Gabriel, F. and Hongler, C. "Neural Tangent Kernel:
       Convergence and Generalization in Neural Networks." NeurIPS 2018.
    .. [2] Lee, J., Xiao, L., Schoenholz, S. S., Bahri, Y., Novak, R.,
       Sohl-Dickstein, J. and Pennington, J. "Wide Neural Networks of Any Depth
       Evolve as Linear Models Under Gradient Descent." NeurIPS 2019.
    .. [3] Arora, S., Du, S. S., Hu, W., Li, Z., Salakhutdinov, R. and Wang, R.
       "On Exact Computation with an Infinitely Wide Neural Net." NeurIPS 2019.
    .. [4] Novak, R., Xiao, L., Hron, J., Lee, J., Alemi, A. A.,
       Sohl-Dickstein, J. and Schoenholz, S. S. "Neural Tangents: Fast and Easy
       Infinite Neural Networks in Python." ICLR 2020.
    .. [5] Nguyen, T., Chen, Z. and Lee, J. "Dataset Meta-Learning from Kernel
       Ridge-Regression." ICLR 2021.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from sklearn_robust.kernels import NTKClassifier
    >>> X, y = load_digits(return_X_y=True)
    >>> X = X / 16.0
    >>> clf = NTKClassifier().fit(X[:600], y[:600])
    >>> round(clf.score(X[600:], y[600:]), 2)
    0.96
    >>> clf.decision_function(X[:2]).shape
    (2, 10)
    """

    def __init__(self, *, kernel="fc", depth=1, W_std=2 ** 0.5, b_std=0.1, get="ntk",
                 ridge=1e-3, pooling="gap", input_shape=None, batch_size=None,
                 device="cpu", dtype="float64"):
        self.kernel = kernel
        self.depth = depth
        self.W_std = W_std
        self.b_std = b_std
        self.get = get
        self.ridge = ridge
        self.pooling = pooling
        self.input_shape = input_shape
        self.batch_size = batch_size
        self.device = device
        self.dtype = dtype

    # ------------------------------------------------------------- helpers
    def _torch_dtype(self):
        if isinstance(self.dtype, torch.dtype) and self.dtype in _DTYPES.values():
            return self.dtype
        if isinstance(self.dtype, str) and self.dtype in _DTYPES:
            return _DTYPES[self.dtype]
        raise ValueError(f"dtype must be 'float64' or 'float32', got {self.dtype!r}.")

    # the convolutional kernel's own options (pooling, ...) are checked by it
    _parameter_constraints = {**_BaseKernel._parameter_constraints,
                              "kernel": [StrOptions(set(_KERNELS))],
                              "ridge": [NON_NEGATIVE_REAL], "device": [TorchDevice()]}

    def _make_kernel(self):
        validate_params(self)
        if self.get not in ("ntk", "nngp"):  # the kernels' wording for get
            raise ValueError(f"get must be 'ntk' or 'nngp', got {self.get!r}.")
        if self.kernel == "fc":
            return FCKernel(self.depth, W_std=self.W_std, b_std=self.b_std)
        return ConvKernel(self.depth, W_std=self.W_std, b_std=self.b_std,
                          pooling=self.pooling, input_shape=self.input_shape,
                          batch_size=self.batch_size)

    def _check_range(self, X):
        """``X`` (validated float64) must fit the dtype the kernels compute in."""
        if (self._torch_dtype() == torch.float32 and X.size
                and np.abs(X).max() > FLOAT32_MAX):
            raise ValueError(f"X has values beyond float32's range "
                             f"(+-{FLOAT32_MAX:.3g}); {type(self).__name__} computes "
                             "in dtype='float32'. Scale X down or use dtype='float64'.")
        return X

    def _tensor(self, X):
        # a copy (torch.tensor), also of arrays with negative strides
        return torch.tensor(np.ascontiguousarray(X), dtype=self._torch_dtype(),
                            device=self.device)

    def _check_X(self, X):
        check_is_fitted(self, ["X_fit_", "alpha_"])
        X = validate_data(self, X, reset=False, dtype=np.float64, allow_nd=True)
        self._check_range(X)
        if tuple(X.shape[1:]) != self.input_shape_:
            raise ValueError(f"X has samples of shape {tuple(X.shape[1:])}, but "
                             f"{type(self).__name__} was fitted on "
                             f"{self.input_shape_}.")
        return X

    def _scores(self, X):
        """Regression outputs, shape (n_samples, n_classes), as a numpy array."""
        with torch.no_grad():
            K = self.kernel_(self._tensor(X), self._tensor(self.X_fit_), get=self.get)
            scores = K @ self._tensor(self.alpha_)
        if not torch.isfinite(scores).all():    # finite K and alpha, product overflows
            raise ValueError(
                f"{type(self).__name__}: the regression outputs overflowed "
                f"{scores.dtype} (X has values up to {float(np.abs(X).max()):.3g}); "
                "scale X like the training data or use dtype='float64'.")
        return scores.cpu().numpy()

    # ------------------------------------------------------------ public API
    def fit(self, X, y):
        """Fit kernel ridge regression on centred one-hot targets.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or (n_samples, C, H, W)
            Training inputs.
        y : array-like of shape (n_samples,)
            Class labels of any type (at least two classes).

        Returns
        -------
        self : object
            The fitted classifier.

        Raises
        ------
        ValueError
            If a parameter is invalid (the message names it), ``X`` fails
            scikit-learn's validation (NaN, infinity, no samples, ...) or is not an
            image batch for ``kernel="conv"``, ``y`` has fewer than two classes, or
            the kernel or the solve overflows (huge ``X``, ``W_std`` or ``depth``).
        """
        kernel = self._make_kernel()
        dtype = self._torch_dtype()
        # a copy: the model keeps X, and must not change with the caller's array
        X, y = validate_data(self, X, y, dtype=np.float64, allow_nd=True, copy=True)
        self._check_range(X)
        check_classification_targets(y)
        classes, codes = np.unique(y, return_inverse=True)
        if len(classes) < 2:
            raise ValueError(f"y has only one class ({classes[0]!r}); a classifier "
                             "needs samples of at least 2 classes.")
        Xt = torch.tensor(X, dtype=dtype, device=self.device)
        if self.kernel == "conv":
            as_images(Xt, kernel.input_shape)   # clear error for bad image shapes
        with torch.no_grad():
            K = kernel(Xt, get=self.get)
            Y = centered_one_hot(codes, len(classes), dtype=dtype, device=Xt.device)
            alpha = solve_kernel_ridge(K, Y, ridge=float(self.ridge))
            reg = float(self.ridge) * float(torch.diagonal(K).sum()) / len(X)
        self.kernel_ = kernel
        self.classes_ = classes
        self.input_shape_ = tuple(X.shape[1:])
        self.X_fit_ = X
        self.alpha_ = alpha.cpu().numpy()
        self.regularization_ = reg
        return self

    def decision_function(self, X):
        """Kernel regression outputs for ``X``.

        Parameters
        ----------
        X : array-like of shape (n_samples, ...)
            Inputs shaped like the training inputs.

        Returns
        -------
        scores : ndarray of shape (n_samples, n_classes) or (n_samples,)
            ``K(X, X_fit_) @ alpha_``; column ``j`` scores ``classes_[j]``. For
            two classes, scikit-learn's convention of one score per sample, the
            output of ``classes_[1]`` minus that of ``classes_[0]``.

        Raises
        ------
        ValueError
            If ``X`` fails scikit-learn's validation, is not shaped like the
            training inputs, or its outputs overflow (never NaN scores).
        """
        X = self._check_X(X)
        scores = self._scores(X)
        return scores[:, 1] - scores[:, 0] if scores.shape[1] == 2 else scores

    def predict(self, X):
        """Predicted class labels: the class with the largest regression output.

        Parameters
        ----------
        X : array-like of shape (n_samples, ...)
            Inputs shaped like the training inputs.

        Returns
        -------
        y_pred : ndarray of shape (n_samples,)

        Raises
        ------
        ValueError
            As :meth:`decision_function` (no label is computed from NaN scores).
        """
        X = self._check_X(X)
        return self.classes_[self._scores(X).argmax(axis=1)]

    def torch_view(self):
        """The fitted predictor as a differentiable torch module.

        Returns
        -------
        module : KernelRegressionModule
            Maps a batch shaped like ``X`` (any float dtype) to the regression
            outputs of shape ``(n, n_classes)`` (two columns for two classes),
            ``K(x, X_fit_) @ alpha_``, differentiable in ``x``; used by
            :func:`sklearn_robust.utils.get_torch_view` and the robust scorers.
        """
        check_is_fitted(self, ["X_fit_", "alpha_"])
        return KernelRegressionModule(self.kernel_, self._tensor(self.X_fit_),
                                      self._tensor(self.alpha_), get=self.get)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = False
        return tags
