"""Geometry-aware instance-reweighted adversarial training (Zhang et al., 2021)."""

# SPDX-License-Identifier: BSD-3-Clause

import math
import numbers
import warnings

import numpy as np
import torch
import torch.nn.functional as F

from ..attacks._losses import _kl_loss as kl_loss
from ..callbacks import _GAIR_KEYS_NOT_PRINTED, GAIRMonitor
from ..utils._docstring import FRAGMENTS, Substitution
from ..utils._param_validation import (
    NON_NEGATIVE_REAL,
    POSITIVE_INT,
    Interval,
    Options,
    RealNotInt,
    StrOptions,
    validate_parameter_constraints,
)
from ..utils._validation import as_contiguous
from ._base import BaseAdversarialClassifier, _normalised, _PrintLog  # noqa: F401
from ._trades import trades_loss

__all__ = ["GAIRATClassifier", "GAIRTRADESClassifier", "gair_weights"]

WEIGHT_FUNCTIONS = ("tanh", "sigmoid", "discrete")
LAMBDA_SCHEDULES = ("fixed", "linear", "piecewise")
# lambda: a finite real, or +inf (plain adversarial training)
_LAMBDA = [Interval(numbers.Real, None, None, closed="neither"),
           Options(numbers.Real, {math.inf})]
_WEIGHT_FUNCTION = [StrOptions(set(WEIGHT_FUNCTIONS))]


def _renamed_lambda(value, where):
    """``value`` of the deprecated keyword ``lambda_``, with a FutureWarning."""
    warnings.warn(f"The parameter lambda_ of {where} was renamed to gair_lambda in "
                  "version 0.1 and lambda_ will be removed in 0.3: use "
                  f"gair_lambda={value!r} instead.", FutureWarning, stacklevel=3)
    return value

# --------------------------------------------------------------------- weights
def _log_gair_weights(kappa, n_steps, gair_lambda, weight_function):
    """Log of the unnormalised GAIR weights of a tensor of kappa (float64).

    Working with logs keeps the per-batch normalisation exact when every weight
    of a batch underflows (very negative ``gair_lambda``).
    """
    kappa = kappa.to(torch.float64)
    if gair_lambda == math.inf:
        return torch.zeros_like(kappa)
    if weight_function == "discrete":
        return torch.log((n_steps + 1 - kappa) / (n_steps + 1))
    # 5 * (K/2 - kappa) / (K/2): equal to GAIR.py's floor(K/2) form for even K
    z = gair_lambda + 5.0 * (1.0 - 2.0 * kappa / n_steps)
    if weight_function == "tanh":
        # (1 + tanh(z)) / 2 == sigmoid(2 z)
        return F.logsigmoid(2.0 * z)
    return F.logsigmoid(z)


def gair_weights(kappa, n_steps, gair_lambda=-1.0, weight_function="tanh", *,
                 lambda_="deprecated"):
    """Unnormalised GAIR weights of geometry values ``kappa``.

    Parameters
    ----------
    kappa : array-like of int
        Geometry values: the number of the ``n_steps`` PGD iterations at which
        each point was still classified correctly (``0 <= kappa <= n_steps``).
    n_steps : int
        ``K``, the number of PGD steps.
    gair_lambda : float, default=-1.0
        The GAIR parameter lambda; ``float("inf")`` gives weights of one.
    weight_function : {"tanh", "sigmoid", "discrete"}, default="tanh"
        ``"tanh"``: ``(1 + tanh(lambda + 5 (1 - 2 kappa / K))) / 2``;
        ``"sigmoid"``: ``sigmoid(lambda + 5 (1 - 2 kappa / K))``;
        ``"discrete"``: ``(K + 1 - kappa) / (K + 1)`` (independent of a finite
        lambda).
    lambda_ : float
        Deprecated alias of ``gair_lambda``.

        .. deprecated:: 0.1
           ``lambda_`` was renamed to ``gair_lambda``; it will be removed in 0.3.

    Returns
    -------
    weights : ndarray of float64
        Weights in ``(0, 1]``, before the per-batch normalisation.

    Examples
    --------
    >>> from sklearn_robust.classifiers import gair_weights
    >>> gair_weights([0, 5, 10], n_steps=10, gair_lambda=0.0).round(4)
    array([1. , 0.5, 0. ])
    """
    if not (isinstance(lambda_, str) and lambda_ == "deprecated"):
        gair_lambda = _renamed_lambda(lambda_, "gair_weights")
    validate_parameter_constraints(
        {"n_steps": [POSITIVE_INT], "gair_lambda": _LAMBDA,
         "weight_function": _WEIGHT_FUNCTION},
        {"n_steps": n_steps, "gair_lambda": gair_lambda,
         "weight_function": weight_function},
        caller_name="gair_weights")
    kappa = as_contiguous(kappa)
    if kappa.dtype.kind not in "fiu":
        raise TypeError(f"kappa must hold integer counts, got dtype {kappa.dtype}.")
    if not np.isfinite(kappa).all() or not np.array_equal(kappa, np.round(kappa)):
        raise ValueError("kappa must hold integer counts; it holds NaN, infinity or "
                         "fractions.")
    if kappa.size and (kappa.min() < 0 or kappa.max() > n_steps):
        raise ValueError(f"kappa must lie in [0, n_steps={n_steps}].")
    log_w = _log_gair_weights(torch.as_tensor(kappa, dtype=torch.float64), n_steps,
                              float(gair_lambda), weight_function)
    return log_w.exp().numpy()


@Substitution(**FRAGMENTS)
class GAIRATClassifier(BaseAdversarialClassifier):
    """Neural network classifier trained with GAIRAT.

    Geometry-aware instance-reweighted adversarial training: PGD adversarial
    training whose per-sample cross-entropies are reweighted by how close each
    training point is to the decision boundary. During the ``K = n_steps`` PGD
    iterations of a batch, the geometry value ``kappa_i`` counts the iterations
    (checked before each update, starting at the random start) at which point
    ``i`` is still classified correctly. Points that are attacked easily (small
    ``kappa``) get large weights, points that stay correct small ones::

        w_i = (1 + tanh(lambda + 5 * (1 - 2 * kappa_i / K))) / 2
        loss = mean_i(w~_i * CE(f(x_adv_i), y_i)),  w~_i = n * w_i / sum_j w_j

    The first ``burn_in_epochs`` epochs are plain PGD adversarial training.

    Parameters
    ----------
    module : torch.nn.Module class or instance, default=None
        The network; it must return logits. ``None`` picks one from the input
        shape (see :class:`AdversarialClassifier`).
    gair_lambda : float, default=-1.0
        The weight parameter lambda of the paper (after the burn-in). Smaller
        values concentrate the weight on the points closest to the boundary;
        ``float("inf")`` gives uniform weights, i.e. exactly
        :class:`AdversarialClassifier`. The paper uses -1.0 (GAIRAT) and 0.0
        (GAIR-FAT).

        .. versionchanged:: 0.1
           Renamed from ``lambda_`` (scikit-learn reserves a trailing underscore
           for fitted attributes); ``lambda_=`` is still accepted with a
           ``FutureWarning`` until 0.3.
    weight_function : {"tanh", "sigmoid", "discrete"}, default="tanh"
        The weight assignment function of the authors' ``GAIR.py``: ``"tanh"``
        as above, ``"sigmoid"``: ``sigmoid(lambda + 5 * (1 - 2 * kappa / K))``,
        ``"discrete"``: ``(K + 1 - kappa) / (K + 1)``, which ignores a finite
        lambda (``gair_lambda=inf`` still means uniform weights).
    burn_in_epochs : int or float, default=0.5
        Epochs of plain adversarial training before the reweighting starts: an
        int is a number of epochs, a float in ``[0, 1]`` a fraction of
        ``max_epochs`` (rounded down). The default keeps the paper's proportion
        (reweighting from epoch 60 of 120).
    lambda_schedule : {"fixed", "linear", "piecewise"}, default="fixed"
        lambda in epoch ``t`` (1-based) of ``E = max_epochs``, after the burn-in:
        ``"fixed"``: ``gair_lambda``; ``"linear"``:
        ``lambda_max - (t / E) * (lambda_max - gair_lambda)``, reaching
        ``gair_lambda`` in the last epoch; ``"piecewise"``: ``gair_lambda`` until
        ``t < 0.75 E``, ``gair_lambda - 1`` until ``t < 11/12 E``, then
        ``gair_lambda - 1.5`` (the
        authors' intended WRN schedule, 90 and 110 of 120 epochs).
    lambda_max : float, default=10.0
        Start value of the ``"linear"`` schedule (its value at epoch 0; the ramp
        is applied only after the burn-in). Unused by the other schedules.
    eps : float, default=0.3
        Radius of the threat model (MNIST setting; the paper's CIFAR-10 setting
        is 0.031).
    %(norm)s
    n_steps : int, default=40
        ``K``, the PGD steps of the training attack and the range of ``kappa``
        (MNIST setting of Madry et al.; the paper's CIFAR-10 setting is 10). The
        weights depend on ``kappa / K`` only, so any ``K`` works.
    step_size : float or None, default=0.01
        PGD step length (MNIST setting; CIFAR-10: 0.007); ``None`` uses
        ``2.5 * eps / n_steps``.
    random_start : bool, default=True
        Start PGD from a uniform point of the ball (as the paper).
    %(clip_box)s
    %(preprocessor)s
    %(precision)s
    %(channels_last)s
    attack : attack instance or None, default=None
        Replaces the PGD training attack. It must report ``kappa`` as
        ``info["n_correct_steps"]`` from ``perturb(..., return_info=True)`` (every
        :class:`~sklearn_robust.attacks.PGD` does); its ``n_steps`` is ``K``. It
        takes ``eps``, ``norm`` and the clip box from the classifier.
    random_state : int, RandomState instance or None, default=None
        Seeds initialisation, shuffling and the attack's random starts without
        touching the global torch RNG.
    criterion : torch criterion, default=torch.nn.CrossEntropyLoss
        Loss on logits. It must accept ``reduction="none"``: the reweighted loss
        switches the instance's ``reduction`` to ``"none"`` for the batch and
        reduces the weighted per-sample losses the way the criterion was set
        (``"mean"`` or ``"sum"``).
    **kwargs
        All other parameters are those of :class:`AdversarialClassifier` and
        :class:`skorch.NeuralNetClassifier` (``optimizer``, ``lr``, ``max_epochs``,
        ``batch_size``, ``device``, ``callbacks``, ...).

    Attributes
    ----------
    %(net_attributes)s
    %(data_attributes)s
    kappa_max_ : int
        ``K``: the ``n_steps`` of the training attack.
    current_lambda_ : float
        lambda of the last epoch (``inf`` during the burn-in).
    reweighting_ : bool
        Whether the last epoch reweighted its samples.
    gair_batch_ : dict
        ``kappa``, the unnormalised weights ``w`` and the loss weights ``w~`` of
        the last training batch, which :class:`~sklearn_robust.callbacks.GAIRMonitor`
        reads.
    history_ : skorch.History
        skorch's history (also ``history``). The default callback
        :class:`~sklearn_robust.callbacks.GAIRMonitor` adds to each epoch
        ``gair_lambda``, ``gair_reweighting``, ``gair_kappa_mean``,
        ``gair_kappa_frac_zero`` and ``gair_kappa_frac_max`` (fractions with
        ``kappa = 0`` and ``kappa = K``), ``gair_kappa_hist`` (counts of
        ``kappa = 0..K``), ``gair_weight_min``, ``gair_weight_max``,
        ``gair_weight_mean``, ``gair_weight_std`` (of the unnormalised weights
        ``w_i``, all 1 when not reweighting) and ``gair_ess``, the Kish effective
        sample size ``(sum w~)^2 / (n sum w~^2)`` of the loss weights of the
        epoch, as a fraction of its ``n`` samples.

    See Also
    --------
    GAIRTRADESClassifier : GAIR applied to the TRADES robust term.
    AdversarialClassifier : PGD adversarial training (``gair_lambda=inf``).
    TRADESClassifier : The TRADES trade-off between accuracy and robustness.
    sklearn_robust.metrics.robust_accuracy_score : Evaluate robust accuracy.

    Notes
    -----
    Threat model: untargeted white-box perturbations with ``||delta|| <= eps``
    in ``norm`` and the pixel box.

    Gradient masking: GAIRAT's reported gains are measured with PGD. Its
    reweighting concentrates the loss on few points and lets the network grow
    over-confident logits elsewhere, which weakens cross-entropy PGD rather than
    the model: PGD on logits multiplied by a constant (the logit scaling attack
    of Hitaj et al., 2021) or AutoAttack shrink its advantage over plain
    adversarial training, or reverse it, on CIFAR-10; the authors concede in
    their repository that GAIRAT trained with PGD "cannot perform well on other
    attacks". Evaluate with the strong default of
    :func:`~sklearn_robust.metrics.robust_accuracy_score`, a margin-loss attack
    or logit scaling, never with PGD alone.

    Weight formula: the authors' ``GAIR.py`` writes the exponent as
    ``5 * (floor(K/2) - kappa) / floor(K/2)``. This class uses ``K / 2``; both
    are equal for even ``K`` (the paper's ``K = 10``), while ``K / 2`` stays
    centred on ``kappa = K/2`` for odd ``K`` and is defined for ``K = 1``.
    The weights of a batch are normalised to sum to the batch size (computed in
    log space, so a batch whose weights all underflow is still normalised).

    Burn-in and schedules: the authors' ``--begin_epoch 60`` starts the
    reweighting in (1-based) epoch 60, after 59 plain epochs; here
    ``burn_in_epochs`` counts the plain epochs and reweighting starts in epoch
    ``burn_in_epochs + 1``. Epochs are counted over ``partial_fit`` calls too.
    The authors' ``piecewise`` branch never leaves ``gair_lambda`` (its later
    ``elif`` conditions are unreachable); the intended drops are implemented.
    Their ``linear`` schedule uses ``Lambda_max = inf`` by default, which gives
    ``nan``; ``lambda_max`` must be finite here.

    Sample weights: ``fit(X, y, sample_weight=w)`` multiplies each loss weight
    by ``w_i`` and normalises the products per batch (during the burn-in the
    loss is the ``w``-weighted mean cross-entropy). With a deterministic attack
    and a single batch, integer weights give the loss of repeated samples (up
    to rounding); otherwise random starts and batch composition differ, as for
    any stochastic-gradient learner, so scikit-learn's
    ``check_sample_weight_equivalence_on_dense_data`` does not hold exactly.

    The diagnostics in ``history`` cover the training batches only.

    The paper's CIFAR-10 recipe: ``eps=0.031, n_steps=10, step_size=0.007``,
    SGD (lr 0.1, momentum 0.9, weight decay 2e-4), 120 epochs with the learning
    rate divided by 10 at 50% of the epochs (where the reweighting starts), 100
    at 75% and 200 at 11/12. The authors select the checkpoint with the best
    test PGD-20 accuracy; this class keeps the last one.

    References
    ----------
    .. [1] J. Zhang, J. Zhu, G. Niu, B. Han, M. Sugiyama and M. Kankanhalli,
       "Geometry-aware Instance-reweighted Adversarial Training", ICLR 2021,
       arXiv:2010.01736.
    .. [2] D. Hitaj, G. Pagnotta, I. Masi and L. V. Mancini, "Evaluating the
       Robustness of Geometry-Aware Instance-Reweighted Adversarial Training",
       arXiv:2103.01914, 2021.

    Examples
    --------
    >>> from sklearn_robust import GAIRATClassifier
    >>> from sklearn_robust.datasets import load_digits_images
    >>> X, y = load_digits_images(flat=True)
    >>> clf = GAIRATClassifier(eps=0.1, n_steps=4, step_size=0.05, max_epochs=2,
    ...                        burn_in_epochs=1, random_state=0)
    >>> clf = clf.fit(X[:200], y[:200])
    >>> clf.history[:, "gair_lambda"]
    [inf, -1.0]
    >>> len(clf.history[-1, "gair_kappa_hist"])  # counts of kappa = 0..4
    5
    >>> clf.predict(X[:3]).shape
    (3,)
    """

    def __init__(self, module=None, *, gair_lambda=-1.0, weight_function="tanh",
                 burn_in_epochs=0.5, lambda_schedule="fixed", lambda_max=10.0,
                 **kwargs):
        if "lambda_" in kwargs:  # deprecated in 0.1, to be removed in 0.3
            gair_lambda = _renamed_lambda(kwargs.pop("lambda_"), type(self).__name__)
        super().__init__(module, **kwargs)
        self.gair_lambda = gair_lambda
        self.weight_function = weight_function
        self.burn_in_epochs = burn_in_epochs
        self.lambda_schedule = lambda_schedule
        self.lambda_max = lambda_max

    def set_params(self, **params):
        if "lambda_" in params:  # deprecated in 0.1, to be removed in 0.3
            params["gair_lambda"] = _renamed_lambda(params.pop("lambda_"),
                                                    type(self).__name__)
        return super().set_params(**params)

    @property
    def lambda_(self):
        """Deprecated alias of ``gair_lambda`` (removed in 0.3)."""
        warnings.warn(f"{type(self).__name__}.lambda_ was renamed to gair_lambda in "
                      "version 0.1 and will be removed in 0.3.", FutureWarning,
                      stacklevel=2)
        return self.gair_lambda

    @property
    def _default_callbacks(self):
        callbacks = []
        for name, cb in super()._default_callbacks:
            if name == "print_log":
                # the diagnostics are recorded before the log is printed
                callbacks.append(("gair_monitor", GAIRMonitor()))
                cb = _PrintLog(keys_ignored=list(_GAIR_KEYS_NOT_PRINTED))
            callbacks.append((name, cb))
        return callbacks

    # ------------------------------------------------------------------ params
    _parameter_constraints = {
        **BaseAdversarialClassifier._parameter_constraints,
        "gair_lambda": _LAMBDA,
        "weight_function": _WEIGHT_FUNCTION,
        # epochs, or a fraction of max_epochs
        "burn_in_epochs": [Interval(numbers.Integral, 0, None, closed="left"),
                           Interval(RealNotInt, 0, 1, closed="both")],
        "lambda_schedule": [StrOptions(set(LAMBDA_SCHEDULES))],
        "lambda_max": [Interval(numbers.Real, None, None, closed="neither")],
    }

    def n_burn_in_epochs(self):
        """Number of plain adversarial-training epochs before the reweighting."""
        b = self.burn_in_epochs
        if isinstance(b, numbers.Integral):
            return int(b)
        return int(math.floor(b * self.max_epochs + 1e-9))

    def lambda_for_epoch(self, epoch):
        """lambda used in (1-based) ``epoch``; ``inf`` means no reweighting.

        Parameters
        ----------
        epoch : int
            Epoch number, counted from 1 over all ``fit``/``partial_fit`` calls of
            the current history.

        Returns
        -------
        lambda_t : float
            ``inf`` during the burn-in or when ``gair_lambda`` is ``inf``; otherwise
            the value of ``lambda_schedule``.
        """
        self._check_params()
        lam = float(self.gair_lambda)
        if epoch <= self.n_burn_in_epochs() or lam == math.inf:
            return math.inf
        n_epochs = self.max_epochs
        if self.lambda_schedule == "linear":
            t = min(epoch, n_epochs) / n_epochs
            return float(self.lambda_max - t * (self.lambda_max - lam))
        if self.lambda_schedule == "piecewise":
            # integer comparisons: epoch / E >= 11/12 and epoch / E >= 3/4
            if 12 * epoch >= 11 * n_epochs:
                return lam - 1.5
            if 4 * epoch >= 3 * n_epochs:
                return lam - 1.0
        return lam

    # ------------------------------------------------------------- callbacks
    def on_train_begin(self, net, X=None, y=None, **kwargs):
        super().on_train_begin(net, X=X, y=y, **kwargs)
        self.kappa_max_ = int(getattr(self.attack_, "n_steps", self.n_steps))
        # the largest kappa of the call's batches so far, kept on the device and
        # read at each epoch's end (None until the first batch)
        self._kappa_top = None

    def on_epoch_begin(self, net, dataset_train=None, dataset_valid=None, **kwargs):
        super().on_epoch_begin(net, dataset_train=dataset_train,
                               dataset_valid=dataset_valid, **kwargs)
        self.current_lambda_ = self.lambda_for_epoch(len(self.history))
        self.reweighting_ = math.isfinite(self.current_lambda_)

    def on_epoch_end(self, net, **kwargs):
        super().on_epoch_end(net, **kwargs)
        if getattr(self, "_kappa_top", None) is not None:
            self._check_kappa(self._kappa_top)

    def on_train_end(self, net, X=None, y=None, **kwargs):
        super().on_train_end(net, X=X, y=y, **kwargs)
        self._kappa_top = None  # no device tensor left in the fitted state

    # ---------------------------------------------------------------- weights
    def _check_kappa(self, top):
        """Raise when ``top``, the largest kappa of some batches, exceeds ``K``."""
        kappa_max = getattr(self, "kappa_max_", self.n_steps)
        if int(top) > kappa_max:
            raise ValueError(f"The training attack returned kappa up to "
                             f"{int(top)}, above its n_steps={kappa_max}.")

    def perturb_with_kappa(self, X, y):
        """Attack a clean batch and return ``(X_adv, kappa)``.

        ``kappa`` is the attack's ``info["n_correct_steps"]``.
        """
        X_adv, info = self._run_attack(self.attack_, X, y, return_info=True)
        kappa = info.get("n_correct_steps")
        if kappa is None:
            raise TypeError(
                f"{type(self).__name__} needs the geometry value kappa: the training "
                f"attack {type(self.attack_).__name__} must return "
                "info['n_correct_steps'] from perturb(..., return_info=True), as "
                "sklearn_robust.attacks.PGD does.")
        kappa = torch.as_tensor(kappa, device=X.device).long()
        if not kappa.numel():
            return X_adv, kappa
        # read on the host at once outside training and at the first batch of a
        # training call; the later batches' largest kappa stays on the device
        # until the epoch's end, so that no batch is held up by the read
        top = kappa.max()
        if getattr(self, "_train_seed", None) is None:
            self._check_kappa(top)
        elif self._kappa_top is None:
            self._check_kappa(top)
            self._kappa_top = top
        else:
            self._kappa_top = torch.maximum(self._kappa_top, top)
        return X_adv, kappa

    def log_weights(self, kappa):
        """Log of the unnormalised GAIR weights under the current lambda.

        Returns ``None`` when the current epoch does not reweight (burn-in or
        ``gair_lambda=inf``).
        """
        lam = getattr(self, "current_lambda_", math.inf)
        if lam == math.inf:
            return None
        return _log_gair_weights(kappa, getattr(self, "kappa_max_", self.n_steps),
                                 lam, self.weight_function)

    # ---------------------------------------------------------------- training
    def robust_loss(self, X, y, sample_weight=None, **fit_params):
        """GAIR-weighted cross-entropy on the PGD adversarial examples."""
        X_adv, kappa = self.perturb_with_kappa(X, y)
        y_pred = self.infer(X_adv, **fit_params)
        log_w = self.log_weights(kappa)
        # with neither GAIR nor sample weights: exactly AdversarialClassifier's loss
        weights = self.loss_weights(sample_weight, log_w)
        loss = self.criterion_loss(y_pred, y, weights, X=X_adv)
        ones = torch.ones(len(y), dtype=torch.float64, device=kappa.device)
        self.gair_batch_ = {"kappa": kappa,
                            "weights": ones if log_w is None else log_w.exp(),
                            "loss_weights": ones if weights is None else weights}
        return loss, y_pred


@Substitution(**FRAGMENTS)
class GAIRTRADESClassifier(GAIRATClassifier):
    """Neural network classifier trained with GAIR-TRADES.

    TRADES whose robust KL term is mixed per sample, as in the authors'
    ``GAIR_RST/losses.py`` (``GAIR_trades_loss``)::

        loss = CE(f(x), y)
               + beta * mean_i[ w_i KL(f(x_i) || f(x_adv_i))
                                + (1 - w_i) KL(f(x_i) || f(x_cw_i)) ]

    ``x_adv`` is the TRADES KL attack (sign-gradient ascent from
    ``x + 0.001 N(0, I)``), during which the geometry value ``kappa_i`` is
    counted; ``x_cw`` is a PGD on the Carlini-Wagner margin loss from the same
    kind of start; ``w_i`` is the unnormalised GAIR weight of
    :class:`GAIRATClassifier` (``tanh`` by default). Points far from the
    boundary (large ``kappa``) thus move their robust term from the KL attack to
    the margin attack. During the burn-in (or with ``gair_lambda=inf``) the loss is
    exactly :class:`TRADESClassifier`'s and no CW example is computed.

    Parameters
    ----------
    module : torch.nn.Module class or instance, default=None
        The network; it must return logits.
    beta : float, default=1.0
        Weight of the robust term (TRADES' MNIST setting; the authors' GAIR-RST
        runs use 6.0).
    gair_lambda : float, default=-1.0
        The GAIR parameter lambda after the burn-in (the authors' GAIR-RST script
        defaults to 0.0); ``float("inf")`` gives exactly
        :class:`TRADESClassifier`. Renamed from ``lambda_`` in 0.1 (see
        :class:`GAIRATClassifier`).
    weight_function : {"tanh", "sigmoid", "discrete"}, default="tanh"
        The weight function (see :class:`GAIRATClassifier`).
    burn_in_epochs : int or float, default=0.5
        Plain TRADES epochs before the reweighting: an int is a number of epochs,
        a float in ``[0, 1]`` a fraction of ``max_epochs`` (the authors: 50%).
    lambda_schedule : {"fixed", "linear", "piecewise"}, default="fixed"
        The lambda schedule after the burn-in (see :class:`GAIRATClassifier`).
    lambda_max : float, default=10.0
        Start value of the ``"linear"`` schedule.
    eps : float, default=0.3
        Radius of the threat model (MNIST setting; CIFAR-10: 0.031).
    %(norm)s
    n_steps : int, default=40
        ``K``: steps of the KL attack (and of the CW attack).
    step_size : float or None, default=0.01
        Step length of both attacks; ``None`` uses ``2.5 * eps / n_steps``.
    %(clip_box)s
    %(preprocessor)s
    %(precision)s
    %(channels_last)s
    attack : attack instance or None, default=None
        Replaces the KL attack (it must report ``n_correct_steps``); the CW
        attack is always built from ``eps``, ``n_steps`` and ``step_size``.
    random_state : int, RandomState instance or None, default=None
        Seeds initialisation, shuffling and both attacks' random starts.
    **kwargs
        All other parameters are those of :class:`GAIRATClassifier` and
        :class:`skorch.NeuralNetClassifier`.

    Attributes
    ----------
    module_ : torch.nn.Module
        The trained network.
    attack_ : attack
        The KL training attack.
    cw_attack_ : PGD
        The Carlini-Wagner margin attack of the reweighted epochs.
    classes_ : ndarray of shape (n_classes,)
        Class labels.
    kappa_max_ : int
        ``K``: the ``n_steps`` of the KL attack.
    current_lambda_ : float
        lambda of the last epoch (``inf`` during the burn-in).
    reweighting_ : bool
        Whether the last epoch reweighted.
    gair_batch_ : dict
        ``kappa``, mixing weights ``w`` and loss weights of the last batch.
    history_ : skorch.History
        With the per-epoch keys of :class:`GAIRATClassifier`; here ``gair_ess``
        is the Kish effective sample size fraction of the mixing weights ``w_i``
        (times the sample weights), which are not normalised.

    See Also
    --------
    GAIRATClassifier : GAIR on PGD adversarial training.
    TRADESClassifier : TRADES (``gair_lambda=inf``).

    Notes
    -----
    Threat model: untargeted white-box perturbations with ``||delta|| <= eps``
    in ``norm`` and the pixel box.

    What is implemented, compared with ``GAIR_trades_loss``: the weights are
    *not* normalised (they are convex mixing coefficients between the two KL
    terms); only the robust term is reweighted, the natural cross-entropy is
    the plain batch mean; the KL terms are summed over classes and averaged over
    the batch. The authors write the weight as
    ``(tanh(lambda + K/2 - kappa) + 1) / 2``, which equals the ``tanh`` weight
    used here, ``(1 + tanh(lambda + 5 (1 - 2 kappa / K))) / 2``, for their
    ``K = 10`` only. Their CW loss is the margin clipped at a confidence of 50,
    here the unclipped margin (same sign-gradient steps unless a point is
    misclassified by a margin above 50). They switch GAIR off with
    ``lambda = 100`` for the first half of the epochs; here the burn-in is plain
    TRADES. Their entropy term for unlabeled data (weight 0 in their runs) is
    not implemented. With ``sample_weight`` both terms are weighted by the
    normalised sample weights.

    The authors' early ``GAIR_TRADES.py`` (deleted from their repository) ran a
    variant with ``nat_boost=True`` that also reweighted the natural term; it is
    not implemented.

    Gradient masking: as for :class:`GAIRATClassifier`, evaluate with
    AutoAttack-like or logit-scaled attacks, not with PGD alone. The authors'
    AutoAttack result (59.6% on CIFAR-10, RobustBench) is for GAIR-RST, trained
    with 500K extra unlabeled images; it says nothing about GAIR without them.

    References
    ----------
    .. [1] J. Zhang, J. Zhu, G. Niu, B. Han, M. Sugiyama and M. Kankanhalli,
       "Geometry-aware Instance-reweighted Adversarial Training", ICLR 2021,
       arXiv:2010.01736.
    .. [2] H. Zhang, Y. Yu, J. Jiao, E. Xing, L. El Ghaoui and M. Jordan,
       "Theoretically Principled Trade-off between Robustness and Accuracy",
       ICML 2019, arXiv:1901.08573.
    .. [3] D. Hitaj, G. Pagnotta, I. Masi and L. V. Mancini, "Evaluating the
       Robustness of Geometry-Aware Instance-Reweighted Adversarial Training",
       arXiv:2103.01914, 2021.

    Examples
    --------
    >>> from sklearn_robust import GAIRTRADESClassifier
    >>> from sklearn_robust.datasets import load_digits_images
    >>> X, y = load_digits_images(flat=True)
    >>> clf = GAIRTRADESClassifier(eps=0.1, n_steps=3, step_size=0.05, max_epochs=2,
    ...                            burn_in_epochs=1, random_state=0)
    >>> clf.fit(X[:200], y[:200]).history[:, "gair_reweighting"]
    [False, True]
    """

    def __init__(self, module=None, *, beta=1.0, **kwargs):
        super().__init__(module, **kwargs)
        self.beta = beta

    _parameter_constraints = {**GAIRATClassifier._parameter_constraints,
                              "beta": [NON_NEGATIVE_REAL]}

    def default_attack(self):
        """TRADES' sign-gradient ascent on KL(f(x) || f(x')) from x + 0.001 N(0, I)."""
        return self.pgd_attack(loss="kl", random_start="normal")

    def on_train_begin(self, net, X=None, y=None, **kwargs):
        super().on_train_begin(net, X=X, y=y, **kwargs)
        self.cw_attack_ = self.pgd_attack(loss="cw", random_start="normal",
                                          random_state=self.training_random_state(2))
        self.cw_attack_._check_params()  # once: _run_attack does not at every batch

    def robust_loss(self, X, y, sample_weight=None, **fit_params):
        """``CE(f(x), y) + beta * mean[w KL(x, x_adv) + (1 - w) KL(x, x_cw)]``."""
        X_adv, kappa = self.perturb_with_kappa(X, y)
        log_w = self.log_weights(kappa)
        s = self.loss_weights(sample_weight)
        if log_w is None:  # burn-in or gair_lambda=inf: TRADESClassifier's loss
            w = torch.ones(len(y), dtype=torch.float64, device=kappa.device)
            loss, logits = trades_loss(self, X, X_adv, y, beta=self.beta, weights=s,
                                       **fit_params)
        else:
            logits = self.infer(X, **fit_params)
            logits_adv = self.infer(X_adv, **fit_params)
            X_cw = self._run_attack(self.cw_attack_, X, y)
            logits_cw = self.infer(X_cw, **fit_params)
            w = log_w.exp()
            wt = w.to(logits.device, logits.dtype)
            robust = (wt * kl_loss(logits_adv, y, logits)
                      + (1 - wt) * kl_loss(logits_cw, y, logits))
            loss = (self.criterion_loss(logits, y, s, X=X)
                    + self.beta * self.batch_mean(robust, s))
        self.gair_batch_ = {"kappa": kappa, "weights": w,
                            "loss_weights": w if s is None else w.to(s.device) * s}
        return loss, logits
