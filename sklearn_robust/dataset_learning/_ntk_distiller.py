"""Robust datasets from bi-level optimisation on NTK kernel regression.

Tsilivis, Su and Kempe (2022), "Can we achieve robustness from data alone?".
"""

# SPDX-License-Identifier: BSD-3-Clause

import math
import numbers

import numpy as np
import torch

from ..attacks._base import ATTACK_CONSTRAINT
from ..kernels import ConvKernel, FCKernel, centered_one_hot
from ..kernels._classifier import _centered_one_hot, _solve_kernel_ridge
from ..kernels._conv import as_images
from ..utils._docstring import FRAGMENTS, Substitution
from ..utils._param_validation import (
    NON_NEGATIVE_INT,
    NON_NEGATIVE_REAL,
    POSITIVE_INT,
    POSITIVE_REAL,
    THREAT_CONSTRAINTS,
    InstanceOf,
    Interval,
    StrOptions,
    TorchDevice,
)
from ..utils._torch import seed_from_random_state
from ..utils._validation import check_clip_box
from ._base import BaseRobustDataset, _adam_step, _change_bounds

__all__ = ["NTKRobustDistiller", "krr_predict", "krr_mse"]

_DTYPES = {"float32": torch.float32, "float64": torch.float64}


def krr_mse(outputs, targets):
    """KIP's loss: ``0.5 * mean((outputs - targets) ** 2)`` over all entries."""
    return 0.5 * ((outputs - targets) ** 2).mean()


def _per_sample_mse(outputs, codes):
    """Per-sample squared error to centred one-hot targets (the attack's loss)."""
    # the attack's inner loop: the unchecked one-hot of the checked codes
    targets = _centered_one_hot(codes.to(outputs.device), outputs.shape[1],
                                outputs.dtype)
    return 0.5 * ((outputs - targets) ** 2).sum(dim=1)


def krr_predict(kernel, X_support, Y_support, X, *, ridge=1e-6, get="ntk"):
    r"""Kernel ridge regression prediction of a support set, differentiable in all.

    .. math:: f_S(X) = K(X, X_s)\,\bigl(K(X_s, X_s) + \lambda
              \operatorname{tr}(K_{ss}) / n_s\, I\bigr)^{-1} Y_s

    The kernels are evaluated in the dtype of ``X_support``; the linear solve is
    done in float64 (it is only ``n_s x n_s``), so that KIP's small ridge
    (``1e-6``) stays well conditioned in float32.

    Parameters
    ----------
    kernel : callable
        ``kernel(X1, X2, get=...)``, e.g. :class:`~sklearn_robust.kernels.FCKernel`.
    X_support : Tensor of shape (n_s, ...)
    Y_support : Tensor of shape (n_s, n_outputs)
    X : Tensor of shape (n, ...)
    ridge : float, default=1e-6
    get : {"ntk", "nngp"}, default="ntk"

    Returns
    -------
    outputs : Tensor of shape (n, n_outputs), in the dtype of ``X_support``.
    """
    alpha = _krr_coefficients(kernel, X_support, Y_support, ridge, get)
    return _krr_apply(kernel, X_support, alpha, X, get)


def _krr_coefficients(kernel, X_support, Y_support, ridge, get):
    """``alpha = (K_ss + ridge tr(K_ss) / n_s I)^{-1} Y_s``, solved in float64,
    differentiable in the support and its labels."""
    return _solve_kernel_ridge(kernel(X_support, get=get).double(),
                               Y_support.double(), ridge)


def _krr_apply(kernel, X_support, alpha, X, get):
    """``K(X, X_s) @ alpha``, in the dtype of ``X_support``."""
    K = kernel(X.to(X_support.dtype), X_support, get=get)
    return K @ alpha.to(K.dtype)


class _KRRModule(torch.nn.Module):
    """``x -> K(x, X_s) @ alpha`` with the support held fixed (what PGD attacks)."""

    def __init__(self, kernel, X_support, alpha, get):
        super().__init__()
        self.kernel, self.X_support = kernel, X_support
        self.alpha, self.get = alpha, get

    def forward(self, x):
        return _krr_apply(self.kernel, self.X_support, self.alpha, x, self.get)


@Substitution(**FRAGMENTS)
def _rows(bound, block):
    """The rows ``block`` of a per-row bound (a number or ``None`` as it is)."""
    return bound[block] if isinstance(bound, torch.Tensor) else bound


class NTKRobustDistiller(BaseRobustDataset):
    r"""Learn a training set that is robust for infinite-width network regression.

    Adversarial kernel inducing points (Tsilivis, Su and Kempe [1]_): the support
    set :math:`S = (X_s, Y_s)` of kernel ridge regression with the neural tangent
    kernel (NTK) of an infinitely wide ReLU network is optimised so that the
    kernel predictor

    .. math:: f_S(x) = K(x, X_s)\,\bigl(K(X_s, X_s) + \lambda
              \operatorname{tr}(K_{ss})/n_s\, I\bigr)^{-1} Y_s

    is robust on the *real* data: a bi-level problem

    .. math:: \min_{X_s}\; \mathbb{E}_{(x, y)}\, \max_{\|\delta\| \le \epsilon}
              \tfrac12 \|f_S(x + \delta) - Y(y)\|^2 ,

    with centred one-hot targets :math:`Y(y)` (KIP [2]_). At every outer step a
    target batch of real samples is drawn, the inner maximisation is solved by
    PGD on the kernel predictor (support held fixed), and the support images take
    an Adam step on the gradient of the adversarial loss at the perturbed points
    (Danskin's theorem), after which they are clipped to the pixel box. Plain
    (natural) training of a network on the learned set is then meant to give a
    robust network: the set carries the kernel's robust features.

    Two modes:

    - ``n_support=None`` (same-size mode): every input row is a support row,
      initialised at its own image and keeping its label; ``fit_transform``
      returns the learned rows in the order of ``X``, so the transformer can be
      the first step of a scikit-learn :class:`~sklearn.pipeline.Pipeline`;
    - ``n_support=k`` (support-set mode, KIP's distillation): ``k`` class-balanced
      real images are drawn as the initial support; the learned set has ``k``
      rows (and, with ``learn_labels=True``, learned label vectors), so it is
      read from ``X_robust_``/``y_robust_`` or used through
      :class:`RobustDatasetSampler` (``fit_resample``); ``fit_transform`` raises.

    Large support sets are optimised in blocks: each outer step uses a block of
    at most ``support_batch_size`` support rows as the kernel regression's
    support (blocks run through a random permutation of the support, one epoch
    after another), so memory is ``O(support_batch_size * (support_batch_size +
    target_batch_size))`` kernel entries whatever the number of rows.

    Parameters
    ----------
    eps : float, default=0.1
        Radius of the threat model of the inner maximisation, in the units of
        ``X`` (``eps=0`` is KIP without an adversary, a useful control).
    %(norm)s
    kernel : {"fc", "conv"} or kernel instance, default="fc"
        ``"fc"``: :class:`~sklearn_robust.kernels.FCKernel` (fully connected ReLU
        network, KIP's default); ``"conv"``: :class:`~sklearn_robust.kernels.ConvKernel`
        (ReLU convolutions with global average pooling; far more expensive, see
        its Notes); or an instance of either, used as is (``depth``, ``W_std``,
        ``b_std`` are then ignored).
    depth : int or list of int, default=1
        Hidden layers of the network whose kernel is used (KIP's FC default: 1).
        A list is an ensemble of kernels: one depth is drawn uniformly at every
        step, for the attack and the update of that step. Measured on a digits
        validation split (``benchmarks/robust_datasets.py``, 2026-12-04):
        ``[1, 2, 3]`` gave 256-256 MLPs trained on the set 0.574 robust accuracy
        at ``eps=0.1`` against 0.583 for depth 1, so it is not the default.
    W_std, b_std : float, default=sqrt(2), 0.1
        Weight and bias standard deviations of that network (KIP's values).
    get : {"ntk", "nngp"}, default="ntk"
        Neural tangent kernel (network trained by gradient descent) or NNGP.
    ridge : float, default=1e-6
        Relative ridge :math:`\lambda` (KIP's ``1e-6``).
    n_support : int or None, default=None
        Size of the learned set; ``None`` keeps every input row (same-size mode).
    target_batch_size : int, default=256
        Real samples attacked and scored at every outer step (KIP resamples 5000;
        the cost of PGD grows linearly with it). On digits, 256 transferred as
        well as 1000 at a third of the cost.
    support_batch_size : int, default=2000
        Support rows per block (see above). When it is at least the support
        size, the whole support is used at every step.
    max_iter : int, default=100
        Number of outer (Adam) steps. On digits, 300 steps transferred no better
        to naturally trained networks than 100 (robust accuracy 0.50 vs 0.53 on
        a validation split).
    lr : float, default=0.08
        Adam learning rate of the support images and, with ``learn_labels``, of
        the labels: about how far a value moves per step. Twice KIP's ``4e-2``:
        on a digits validation split, naturally trained 256-256 MLPs reached
        0.58 robust accuracy at ``eps=0.1`` on sets learned with 0.08 against
        0.53 with 0.04, and the margin over the ``eps=0`` and noise controls
        grew from 0.06 to 0.13.
    n_steps : int, default=10
        PGD steps of the inner maximisation.
    step_size : float or None, default=None
        PGD step length; ``None`` uses ``2.5 * eps / n_steps``.
    attack : None or attack of :mod:`sklearn_robust.attacks`, default=None
        The attack of the inner maximisation: ``None`` builds PGD from
        ``n_steps`` and ``step_size`` (on the outer squared error, uniform random
        start); an attack is cloned, takes the learner's ``eps``, ``norm`` and
        clip box and keeps its own procedure (``n_steps`` and ``step_size`` are
        then ignored, with a warning when they were set). Its random stream
        comes from ``random_state``.
    learn_labels : bool, default=False
        Also learn the support's label vectors (KIP's ``LEARN_LABELS``). The
        learned set is then in support-set mode; ``y_robust_`` holds the class
        of the largest learned label value and ``Y_robust_`` the label vectors.
    clean_weight : float in [0, 1], default=0.0
        Weight of the clean loss in the outer objective
        ``(1 - clean_weight) * adversarial + clean_weight * clean``;
        ``1.0`` is plain KIP.
    max_change : float or None, default=None
        Optional ``linf`` bound on how far a support image may move from the
        real image it started from; ``None`` lets it move anywhere in the clip
        box.
    %(clip_box)s
    dtype : {"float32", "float64"}, default="float32"
        Precision of the kernels (the ridge solve is always float64).
    %(device)s
    random_state : int, RandomState instance or None, default=None
        Seeds the initial support, the batches and PGD's random starts; global
        RNGs are left untouched.
        An int must lie in ``[0, 2**32 - 1]`` (as in scikit-learn).
    %(verbose)s

    Attributes
    ----------
    X_robust_ : ndarray of shape (n_support, ...), dtype float32
        The learned images (all input rows in same-size mode, in order).
    y_robust_ : ndarray of shape (n_support,)
        Their labels (``y`` in same-size mode).
    Y_robust_ : ndarray of shape (n_support, n_classes)
        Their regression targets: centred one-hot, or learned.
    support_indices_ : ndarray of shape (n_support,)
        Rows of ``X`` the support was initialised from.
    classes_ : ndarray of shape (n_classes,)
        Class labels.
    kernel_ : FCKernel or ConvKernel
        The kernel used.
    loss_history_ : ndarray of shape (max_iter,)
        Outer objective on the target batch at every step, before the update.
    adversarial_loss_history_ : ndarray of shape (max_iter,)
        Its adversarial part, ``0.5 * mean((f_S(x + delta) - Y) ** 2)``.
    accuracy_history_ : ndarray of shape (max_iter,)
        Clean accuracy of the kernel predictor on the target batch (about 1 in
        same-size mode, where the block holds the target rows and the predictor
        interpolates them).
    adversarial_accuracy_history_ : ndarray of shape (max_iter,)
        Its accuracy on the attacked target batch (the inner PGD).
    n_iter_ : int
        Number of outer steps run.
    input_shape_ : tuple of int
        Shape of one sample.
    n_features_in_ : int
        Size of the second axis of ``X``.

    Warns
    -----
    DatasetLearningWarning
        When the learned set loses the classes: the kernel predictor's clean
        accuracy on the target batches falls by more than 0.1 from the first to
        the last tenth of the steps.

    See Also
    --------
    sklearn_robust.kernels.NTKClassifier : Kernel regression with these kernels.
    TriLevelDatasetLearner : Robust dataset learning with finite networks.
    RobustFeatureDataset : Ilyas et al.'s robust dataset, the paper's baseline.
    RobustDatasetSampler : Support-set mode in an imbalanced-learn pipeline.

    Notes
    -----
    Reading of the paper. No code of the authors is public and only the abstract
    could be checked; the machinery (kernels, centred one-hot targets, trace-scaled
    ridge, MSE, Adam with lr ``4e-2``, class-balanced initialisation from real
    images, resampled target batches) follows KIP's reference implementation [2]_,
    with PGD on the kernel predictor as the inner maximisation. These choices are
    ours: the attack maximises the same squared loss that the outer level
    minimises (Danskin's theorem then gives the outer gradient at the attack's
    output); PGD starts uniformly in the ball; the support is clipped to the
    pixel box (and the optional ``max_change`` ball) after each step; the
    optional clean term and the block scheme for large sets.

    Target batches are drawn from all rows. In same-size mode with a block
    that holds the target rows, kernel regression (ridge ``1e-6``) interpolates
    them, so the *clean* loss is about 0 from the first step: ``eps=0`` (or
    ``clean_weight=1``) is then not a meaningful KIP control, only drift on a
    flat objective (measured: loss 1.5e-9 at the first of 300 steps on digits).
    Use ``n_support`` smaller than the data for KIP itself.

    The distilled set is robust *for the kernel predictor it was optimised
    for*; whether naturally trained finite networks inherit the robustness must
    be measured (the paper reports that it is harder than hoped), with a strong
    attack: :func:`~sklearn_robust.metrics.robust_accuracy_score` defaults to
    AutoAttack. Measured on CPU (digits, a validation split, same-size mode
    with the defaults, ``eps=0.1``, 256-256 MLPs trained naturally to
    convergence, AutoAttack; ``benchmarks/robust_datasets.py``): 0.58 robust
    accuracy at 0.98 clean, against 0.33 on the original rows, 0.45 on the
    ``eps=0`` learner's set (Adam's drift) and at most 0.42 on the original rows
    moved by random noise of the learned change's size. Bounding the change
    (``max_change=0.1``, the size of ``eps``) lost most of the gain (0.37 at
    ``lr=0.04``).

    Cost per outer step, with ``b`` the block, ``t`` the target batch, ``d``
    the input size and ``k`` the attack steps: kernel matrices ``b x b`` and
    ``t x b`` (``O((b + t) b d)`` for the FC kernel) and a ``b x b`` Cholesky
    factorisation, then ``k + 1`` forward and backward passes of ``t x b``
    kernels; the backward pass costs about half the forward (the solve's
    gradient is ``O(b^2)`` per class). Measured on one CPU thread (2026-12-03,
    ``benchmarks/scaling.py``): full MNIST (60000 rows) in same-size mode takes
    1.2 s per step with the defaults (30 steps per pass over the rows) and
    0.56 s with ``support_batch_size=1000`` and ``target_batch_size=500`` (60
    steps per pass), with a peak resident memory of 1.7 and 1.4 GB, 0.5 GB of
    it the process with the data. Time grows as ``b^3`` and memory as ``b^2``
    beyond that (``b = 8000``: 47 s per step, 5.2 GB).

    References
    ----------
    .. [1] N. Tsilivis, J. Su and J. Kempe, "Can we achieve robustness from data
       alone?", ICML 2022 Workshop on New Frontiers in Adversarial Machine
       Learning, arXiv:2207.11727.
    .. [2] T. Nguyen, Z. Chen and J. Lee, "Dataset Meta-Learning from Kernel
       Ridge-Regression", ICLR 2021, arXiv:2011.00050.
    .. [3] A. Jacot, F. Gabriel and C. Hongler, "Neural Tangent Kernel:
       Convergence and Generalization in Neural Networks", NeurIPS 2018.
    .. [4] A. Madry, A. Makelov, L. Schmidt, D. Tsipras and A. Vladu, "Towards
       Deep Learning Models Resistant to Adversarial Attacks", ICLR 2018.

    Examples
    --------
    >>> from sklearn_robust.dataset_learning import NTKRobustDistiller
    >>> from sklearn_robust.datasets import load_digits_images
    >>> X, y = load_digits_images(flat=True)
    >>> distiller = NTKRobustDistiller(eps=0.1, max_iter=5, target_batch_size=100,
    ...                                n_steps=3, random_state=0)
    >>> X_robust = distiller.fit_transform(X[:200], y[:200])
    >>> X_robust.shape, distiller.loss_history_.shape
    ((200, 64), (5,))
    >>> support = NTKRobustDistiller(n_support=20, max_iter=5, random_state=0)
    >>> support.fit(X[:200], y[:200]).X_robust_.shape
    (20, 64)
    """

    def __init__(self, *, eps=0.1, norm="linf", kernel="fc", depth=1, W_std=2 ** 0.5,
                 b_std=0.1, get="ntk", ridge=1e-6, n_support=None,
                 target_batch_size=256, support_batch_size=2000, max_iter=100,
                 lr=0.08, n_steps=10, step_size=None, attack=None,
                 learn_labels=False,
                 clean_weight=0.0, max_change=None, clip_min=0.0, clip_max=1.0,
                 dtype="float32", device="cpu", random_state=None, verbose=0):
        self.eps = eps
        self.norm = norm
        self.kernel = kernel
        self.depth = depth
        self.W_std = W_std
        self.b_std = b_std
        self.get = get
        self.ridge = ridge
        self.n_support = n_support
        self.target_batch_size = target_batch_size
        self.support_batch_size = support_batch_size
        self.max_iter = max_iter
        self.lr = lr
        self.n_steps = n_steps
        self.step_size = step_size
        self.attack = attack
        self.learn_labels = learn_labels
        self.clean_weight = clean_weight
        self.max_change = max_change
        self.clip_min = clip_min
        self.clip_max = clip_max
        self.dtype = dtype
        self.device = device
        self.random_state = random_state
        self.verbose = verbose

    # ------------------------------------------------------------ checks
    _parameter_constraints = {
        **THREAT_CONSTRAINTS,
        "kernel": [StrOptions({"fc", "conv"}),
                   InstanceOf((FCKernel, ConvKernel),
                              "an FCKernel/ConvKernel instance")],
        "get": [StrOptions({"ntk", "nngp"})],
        "ridge": [NON_NEGATIVE_REAL],
        "n_support": [Interval(numbers.Integral, 2, None, closed="left"), None],
        "target_batch_size": [POSITIVE_INT],
        "support_batch_size": [Interval(numbers.Integral, 2, None, closed="left")],
        "max_iter": [POSITIVE_INT],
        "lr": [POSITIVE_REAL],
        "n_steps": [POSITIVE_INT],
        "step_size": [POSITIVE_REAL, None],
        "learn_labels": ["boolean"],
        "clean_weight": [Interval(numbers.Real, 0, 1, closed="both")],
        "max_change": [NON_NEGATIVE_REAL, None],
        "depth": [NON_NEGATIVE_INT, list, tuple],
        "dtype": [StrOptions(set(_DTYPES))],
        "verbose": [NON_NEGATIVE_INT],
        "device": [TorchDevice()],
        "attack": ATTACK_CONSTRAINT,
    }

    def _check_params(self):
        super()._check_params()
        check_clip_box(self.clip_min, self.clip_max)
        self._check_attack()
        self._make_kernels()

    def _make_kernels(self):
        """The kernel, or the kernels of a tuple of depths (the ensemble)."""
        if isinstance(self.kernel, (FCKernel, ConvKernel)):
            return [self.kernel]
        depths = self.depth if isinstance(self.depth, (list, tuple)) else [self.depth]
        if not depths:
            raise ValueError("depth must be an int or a non-empty list of ints.")
        make = FCKernel if self.kernel == "fc" else ConvKernel
        return [make(d, W_std=self.W_std, b_std=self.b_std) for d in depths]

    def _validate_fit(self, X, y):
        X, y = super()._validate_fit(X, y)
        if self.n_support is not None and self.n_support > X.shape[0]:
            raise ValueError(f"n_support={self.n_support} is larger than the number "
                             f"of samples ({X.shape[0]}).")
        return X, y

    def _is_same_size(self):
        return self.n_support is None and not self.learn_labels

    # ------------------------------------------------------------ learning
    def _initial_support(self, codes, n_classes, rng):
        """Rows of the initial support: all rows, or a class-balanced draw."""
        n = len(codes)
        if self.n_support is None:
            return np.arange(n)
        if self.n_support < n_classes:
            raise ValueError(f"n_support={self.n_support} is smaller than the number "
                             f"of classes ({n_classes}); a support set needs every "
                             "class.")
        counts = np.bincount(codes, minlength=n_classes)
        quota = np.full(n_classes, self.n_support // n_classes)
        quota[rng.permutation(n_classes)[:self.n_support % n_classes]] += 1
        # classes with too few samples give their quota to the others
        quota = np.minimum(quota, counts)
        while quota.sum() < self.n_support:
            room = np.flatnonzero(quota < counts)
            quota[room[rng.randint(len(room))]] += 1
        rows = [rng.choice(np.flatnonzero(codes == c), q, replace=False)
                for c, q in enumerate(quota)]
        return np.sort(np.concatenate(rows))

    def _learn(self, X, y):
        kernels = self._make_kernels()
        kernel = kernels[0]
        self.kernel_ = kernel if len(kernels) == 1 else kernels
        device = torch.device(self.device)
        dtype = _DTYPES[self.dtype]
        rng = np.random.RandomState(seed_from_random_state(
            self.random_state, name=f"{type(self).__name__}: random_state"))
        self.classes_, codes = np.unique(y, return_inverse=True)
        n_classes = len(self.classes_)
        n = X.shape[0]

        x_real = torch.as_tensor(X, dtype=dtype, device=device)
        for k in kernels:
            if isinstance(k, ConvKernel):
                as_images(x_real[:1], k.input_shape)   # clear error for bad shapes
        y_real = torch.as_tensor(codes, dtype=torch.long, device=device)
        rows = self._initial_support(codes, n_classes, rng)
        n_s = len(rows)
        X_s = x_real[rows].clone()
        lo, hi = _change_bounds(X_s, self.clip_min, self.clip_max, self.max_change)
        Y_s = centered_one_hot(y_real[rows], n_classes, dtype=dtype, device=device)
        state = {"x": (torch.zeros_like(X_s), torch.zeros_like(X_s))}
        if self.learn_labels:
            state["y"] = (torch.zeros_like(Y_s), torch.zeros_like(Y_s))

        attack = None
        if self.eps > 0 and self.clean_weight < 1:
            attack = self._make_attack(_per_sample_mse, rng)
        block_size = min(self.support_batch_size, n_s)
        n_blocks = math.ceil(n_s / block_size)
        target = min(self.target_batch_size, n)
        lr, ridge, w = float(self.lr), float(self.ridge), float(self.clean_weight)

        history = []
        steps = self._progress(range(self.max_iter))
        order = None
        for step in steps:
            epoch, b = divmod(step, n_blocks)
            if b == 0:
                order = torch.as_tensor(rng.permutation(n_s), device=device)
            block = order[b * block_size:(b + 1) * block_size]
            idx = torch.as_tensor(rng.choice(n, target, replace=False), device=device)
            x_t, y_t = x_real[idx], y_real[idx]
            Y_t = _centered_one_hot(y_t, n_classes, dtype)

            if len(kernels) > 1:
                kernel = kernels[rng.randint(len(kernels))]
            xb = X_s[block].requires_grad_(True)
            yb = Y_s[block].requires_grad_(self.learn_labels)
            # one solve a step: its value for the attack, its graph for the update
            alpha = _krr_coefficients(kernel, xb, yb, ridge, self.get)
            if attack is not None:
                model = _KRRModule(kernel, xb.detach(),
                                   alpha.detach().to(dtype), self.get)
                x_adv = attack.perturb(model, x_t, y_t, check_input=False)
                x_eval = torch.cat([x_adv, x_t]) if w > 0 else x_adv
            else:
                x_eval = x_t
            out = _krr_apply(kernel, xb, alpha, x_eval, self.get)
            if attack is None:
                adv = clean = krr_mse(out, Y_t)
                clean_out = out.detach()
            else:
                adv = krr_mse(out[:target], Y_t)
                clean = krr_mse(out[target:], Y_t) if w > 0 else adv
                if w > 0:
                    clean_out = out[target:].detach()
                else:
                    with torch.no_grad():
                        clean_out = model(x_t)
            loss = (1 - w) * adv + w * clean
            leaves = [xb, yb] if self.learn_labels else [xb]
            grads = torch.autograd.grad(loss, leaves)
            with torch.no_grad():
                for key, leaf, grad, full in zip("xy", leaves, grads, (X_s, Y_s)):
                    m_full, v_full = state[key]
                    m, v, value = m_full[block], v_full[block], leaf.detach().clone()
                    _adam_step(value, grad, m, v, epoch + 1, lr)
                    if key == "x" and (lo is not None or hi is not None):
                        value.clamp_(min=_rows(lo, block), max=_rows(hi, block))
                    full[block], m_full[block], v_full[block] = value, m, v
            history.append((float(loss.detach()), float(adv.detach()),
                            float((clean_out.argmax(1) == y_t).float().mean()),
                            float((out[:target].detach().argmax(1) == y_t)
                                  .float().mean())))
            if not math.isfinite(history[-1][0]):
                raise ValueError(f"{type(self).__name__}: the loss is {history[-1][0]} "
                                 f"at step {step}; the optimisation diverged. Lower "
                                 "lr or check the scale of X.")
            if hasattr(steps, "set_postfix"):
                steps.set_postfix(loss=f"{history[-1][0]:.4f}")

        (self.loss_history_, self.adversarial_loss_history_, self.accuracy_history_,
         self.adversarial_accuracy_history_) = np.asarray(history, np.float64).T
        self.n_iter_ = len(history)
        self._warn_if_collapsed(self.accuracy_history_, "the kernel predictor")
        self.support_indices_ = rows
        Y_np = Y_s.detach().cpu().numpy().astype(np.float32)
        self.Y_robust_ = Y_np
        y_robust = (self.classes_[Y_np.argmax(axis=1)] if self.learn_labels
                    else np.asarray(y)[rows])
        return X_s.cpu().numpy().astype(np.float32), y_robust
