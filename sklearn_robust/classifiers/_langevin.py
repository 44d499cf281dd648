"""DALE: Langevin perturbations and primal-dual training (Robey et al., 2021)."""

# SPDX-License-Identifier: BSD-3-Clause

import math
import numbers

from ..attacks._langevin import NOISE_CONSTRAINTS, LangevinSampler
from ..attacks._losses import _kl_loss as kl_loss
from ..utils._docstring import FRAGMENTS, Substitution
from ..utils._param_validation import (
    FINITE_REAL,
    NON_NEGATIVE_REAL,
    StrOptions,
    validate_function_params,
)
from ._base import BaseAdversarialClassifier

__all__ = ["LangevinAdvClassifier", "dual_update"]

ROBUST_CRITERIA = ("ce", "kl")


@validate_function_params({
    "dual_variable": [NON_NEGATIVE_REAL], "nominal_loss": [FINITE_REAL],
    "margin": [FINITE_REAL], "dual_step_size": [NON_NEGATIVE_REAL]})
def dual_update(dual_variable, nominal_loss, *, margin, dual_step_size):
    """Projected dual ascent: ``max(0, nu + dual_step_size * (loss - margin))``.

    Parameters
    ----------
    dual_variable : float
        Current dual variable ``nu >= 0``.
    nominal_loss : float
        Nominal (clean) loss of the batch, the constrained quantity.
    margin : float
        Constraint level ``rho``: the constraint is ``nominal_loss <= margin``.
    dual_step_size : float
        Dual step ``eta_d``; 0 keeps ``nu`` fixed.

    Returns
    -------
    dual_variable : float
        The updated dual variable: it grows while the constraint is violated and
        shrinks (down to 0) while it is satisfied.

    Raises
    ------
    ValueError, TypeError
        If an argument is not a finite real number (or ``dual_variable`` or
        ``dual_step_size`` is negative).

    Examples
    --------
    >>> from sklearn_robust.classifiers import dual_update
    >>> dual_update(1.0, 0.5, margin=0.1, dual_step_size=0.5)
    1.2
    >>> dual_update(0.01, 0.0, margin=0.1, dual_step_size=0.5)
    0.0
    """
    return max(0.0, float(dual_variable)
               + float(dual_step_size) * (float(nominal_loss) - float(margin)))


@Substitution(**FRAGMENTS)
class LangevinAdvClassifier(BaseAdversarialClassifier):
    """Neural network classifier trained with DALE (Robey et al., 2021).

    Dual Adversarial LEarning solves the constrained problem ``min_theta
    E[l_rob(f(x_adv), y)]`` subject to ``E[l_nom(f(x), y)] <= margin`` by
    stochastic primal-dual steps on its Lagrangian. On every training batch:

    1. ``x_adv`` is sampled by Langevin dynamics on ``log(1 - p_y(x + delta))``
       (:class:`~sklearn_robust.attacks.LangevinSampler`, module in eval mode);
    2. the network takes one optimizer step on
       ``loss = l_rob + nu * l_nom`` (module in train mode);
    3. the dual variable is updated,
       ``nu <- max(0, nu + dual_step_size * (l_nom - margin))``.

    ``nu`` grows while the clean loss is above ``margin`` (pushing clean accuracy
    up) and decays to 0 once the constraint holds (leaving only the robust loss).

    Parameters
    ----------
    module : torch.nn.Module class or instance, default=None
        The network; it must return logits. ``None`` picks one from the input
        shape (see :class:`AdversarialClassifier`).
    eps : float, default=0.3
        Radius of the threat model (DALE's MNIST setting).
    %(norm)s
    n_steps : int, default=7
        Langevin steps per batch (MNIST setting).
    step_size : float or None, default=0.1
        Langevin step length ``eta`` (MNIST setting); ``None`` uses
        ``2.5 * eps / n_steps``.
    noise : {"gaussian", "laplacian"}, default="gaussian"
        Langevin flavour: Gaussian noise added outside the sign
        (``Gaussian_DALE``) or Laplace noise inside the sign (``Laplacian_DALE``);
        see :class:`~sklearn_robust.attacks.LangevinSampler`.
    noise_scale : float, default=1e-3
        Noise coefficient ``c`` (MNIST setting). Ignored when ``temperature`` is
        given.
    temperature : float or None, default=None
        When not None, overrides ``noise_scale`` with
        ``c = sqrt(2 * step_size * temperature)``.
    margin : float, default=0.1
        Constraint level ``rho`` on the mean clean loss.
    dual_step_size : float, default=1e-3
        Dual ascent step ``eta_d``. 0 keeps ``nu = dual_init`` fixed: the
        reference code's non-primal-dual DALE uses ``dual_init=0.1,
        dual_step_size=0``.
    dual_init : float, default=1.0
        Initial dual variable ``nu_0``.
    robust_criterion : {"ce", "kl"}, default="ce"
        Robust term. ``"ce"``: ``l_rob = criterion(f(x_adv), y)`` with the
        Langevin sampler (``Gaussian_DALE_PD``). ``"kl"``: ``l_rob =
        KL(softmax f(x) || softmax f(x_adv))`` averaged over the batch, with
        ``x_adv`` from the TRADES attack (sign ascent on the KL from
        ``x + 0.001 * N(0, I)``, no noise: ``KL_DALE_PD``, the reference code's
        CIFAR-10 choice); ``noise``, ``noise_scale`` and ``temperature`` are then
        unused. In both cases ``l_nom = criterion(f(x), y)``.
    %(clip_box)s
    %(preprocessor)s
    %(precision)s
    %(channels_last)s
    attack : attack instance or None, default=None
        Replaces the training attack; it takes ``eps``, ``norm`` and the clip box
        from the classifier.
    random_state : int, RandomState instance or None, default=None
        Seeds initialisation, shuffling, the Langevin starts and noise without
        touching the global torch RNG.
    **kwargs
        All other parameters are those of :class:`AdversarialClassifier` and
        :class:`skorch.NeuralNetClassifier` (``criterion``, ``optimizer``, ``lr``,
        ``max_epochs``, ``batch_size``, ``device``, ``callbacks``, ...).

    Attributes
    ----------
    dual_variable_ : float
        The dual variable ``nu`` after the last training batch. ``fit`` resets
        it to ``dual_init``; ``partial_fit`` (and ``fit`` with
        ``warm_start=True``) continues from its current value.
    history_ : skorch.History
        skorch's history (also ``history``). Every epoch records
        ``"dual_variable"`` (``nu`` at the end of the epoch) and
        ``"nominal_loss"`` (mean clean loss over its training batches); every
        training batch records both as well (``nu`` after the batch's update).
    %(net_attributes)s
    %(data_attributes)s

    See Also
    --------
    sklearn_robust.attacks.LangevinSampler : The perturbation sampler.
    AdversarialClassifier : PGD adversarial training.
    TRADESClassifier : Fixed trade-off between clean and robust (KL) loss.

    Notes
    -----
    Threat model: untargeted white-box perturbations with ``||delta|| <= eps`` in
    ``norm`` and the pixel box. Training samples perturbations instead of
    maximising the loss; evaluate with a strong attack
    (:func:`~sklearn_robust.metrics.robust_accuracy_score`), not with the
    sampler.

    The dual update uses the clean loss of the batch computed with the weights
    before the primal step (as the reference code), and runs once per training
    batch, in the ``on_batch_end`` hook after the optimizer step. With an
    optimizer that evaluates the loss several times per step (LBFGS) ``nu`` is
    still updated once per batch, with the last evaluated clean loss; validation
    batches never touch it.

    Differences from the reference code (arobey1/advbench): ``nu`` is a float,
    so the dual projection works on any device (the reference code's needs CUDA);
    ``log(1 - p_y)`` is computed stably; the Langevin gradient is per sample (see
    :class:`~sklearn_robust.attacks.LangevinSampler` for what this means for the
    Laplacian ``noise_scale``). Defaults follow its MNIST settings (``eps`` 0.3,
    7 steps of 0.1, ``noise_scale`` 1e-3, ``margin`` 0.1, ``dual_step_size``
    1e-3, ``dual_init`` 1.0) except the optimizer and schedule, which are the
    library's (Adam, lr 1e-3, 10 epochs; the reference code uses SGD with lr
    0.01, momentum 0.9, weight decay 3.5e-3, batch 128, 50 epochs).

    References
    ----------
    .. [1] A. Robey, L. F. O. Chamon, G. J. Pappas, H. Hassani and A. Ribeiro,
       "Adversarial Robustness with Semi-Infinite Constrained Learning",
       NeurIPS 2021, arXiv:2110.15767. Reference code: github.com/arobey1/advbench.

    Examples
    --------
    >>> from sklearn_robust import LangevinAdvClassifier
    >>> from sklearn_robust.datasets import load_digits_images
    >>> X, y = load_digits_images(flat=True)
    >>> clf = LangevinAdvClassifier(eps=0.1, n_steps=3, step_size=0.03,
    ...                             max_epochs=2, random_state=0).fit(X[:200], y[:200])
    >>> len(clf.history[:, "dual_variable"])
    2
    >>> clf.dual_variable_ == clf.history[-1, "dual_variable"] >= 0
    True
    """

    def __init__(self, module=None, *, eps=0.3, n_steps=7, step_size=0.1,
                 noise="gaussian", noise_scale=1e-3, temperature=None, margin=0.1,
                 dual_step_size=1e-3, dual_init=1.0, robust_criterion="ce", **kwargs):
        super().__init__(module, eps=eps, n_steps=n_steps, step_size=step_size,
                         **kwargs)
        self.noise = noise
        self.noise_scale = noise_scale
        self.temperature = temperature
        self.margin = margin
        self.dual_step_size = dual_step_size
        self.dual_init = dual_init
        self.robust_criterion = robust_criterion

    _parameter_constraints = {
        **BaseAdversarialClassifier._parameter_constraints,
        **NOISE_CONSTRAINTS,
        "margin": [NON_NEGATIVE_REAL],
        "dual_step_size": [NON_NEGATIVE_REAL],
        "dual_init": [NON_NEGATIVE_REAL],
        "robust_criterion": [StrOptions(set(ROBUST_CRITERIA))],
    }

    def default_attack(self):
        """The Langevin sampler (``robust_criterion="ce"``) or the TRADES KL attack."""
        if self.robust_criterion == "kl":
            return self.pgd_attack(loss="kl", random_start="normal")
        return LangevinSampler(eps=self.eps, norm=self.norm, n_steps=self.n_steps,
                               step_size=self.step_size, noise=self.noise,
                               noise_scale=self.noise_scale,
                               temperature=self.temperature, clip_min=self.clip_min,
                               clip_max=self.clip_max)

    # ---------------------------------------------------------------- dual
    def initialize(self):
        """Initialise the net and reset ``dual_variable_`` to ``dual_init``."""
        super().initialize()
        self.dual_variable_ = float(self.dual_init)
        self._nominal_loss_ = None
        return self

    def update_dual(self, nominal_loss):
        """Apply :func:`dual_update` to ``dual_variable_`` and return the new value.

        Called after every training batch: with a finite loss and the parameters
        validated by ``fit`` it takes the step without :func:`dual_update`'s
        argument checks (same arithmetic); anything else goes through them.
        """
        nu, loss = self.dual_variable_, nominal_loss
        if (isinstance(nu, float) and isinstance(loss, float) and math.isfinite(loss)
                and isinstance(self.margin, numbers.Real)
                and isinstance(self.dual_step_size, numbers.Real)
                and math.isfinite(nu) and nu >= 0):
            self.dual_variable_ = max(0.0, nu + float(self.dual_step_size)
                                      * (loss - float(self.margin)))
        else:
            self.dual_variable_ = dual_update(nu, nominal_loss, margin=self.margin,
                                              dual_step_size=self.dual_step_size)
        return self.dual_variable_

    # ------------------------------------------------------------ training
    def robust_loss(self, X, y, sample_weight=None, **fit_params):
        """``l_rob + dual_variable_ * l_nom`` on one batch.

        ``l_nom = criterion(f(x), y)``; ``l_rob = criterion(f(x_adv), y)`` for
        ``robust_criterion="ce"``, ``KL(f(x) || f(x_adv))`` averaged over the
        batch for ``"kl"``. Gradients flow through both forward passes. Returns
        the loss and the clean logits.
        """
        X_adv = self.perturb(X, y)
        weights = self.loss_weights(sample_weight)
        logits = self.infer(X, **fit_params)
        logits_adv = self.infer(X_adv, **fit_params)
        nominal = self.criterion_loss(logits, y, weights, X=X)
        if self.robust_criterion == "kl":
            robust = self.batch_mean(kl_loss(logits_adv, y, logits), weights)
        else:
            robust = self.criterion_loss(logits_adv, y, weights, X=X_adv)
        self._nominal_loss_ = nominal.detach()
        return robust + self.dual_variable_ * nominal, logits

    def on_batch_end(self, net, batch=None, training=False, **kwargs):
        super().on_batch_end(net, batch=batch, training=training, **kwargs)
        if not training or self._nominal_loss_ is None:
            return
        nominal = float(self._nominal_loss_)
        self._nominal_loss_ = None
        self.update_dual(nominal)
        self.history.record_batch("nominal_loss", nominal)
        self.history.record_batch("dual_variable", self.dual_variable_)

    def on_epoch_end(self, net, dataset_train=None, dataset_valid=None, **kwargs):
        super().on_epoch_end(net, dataset_train=dataset_train,
                             dataset_valid=dataset_valid, **kwargs)
        batches = [b for b in self.history[-1]["batches"] if "nominal_loss" in b]
        if batches:
            sizes = [b.get("train_batch_size", 1) for b in batches]
            total = sum(s * b["nominal_loss"] for s, b in zip(sizes, batches))
            self.history.record("nominal_loss", total / sum(sizes))
        else:
            self.history.record("nominal_loss", math.nan)
        self.history.record("dual_variable", self.dual_variable_)
