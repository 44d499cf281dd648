"""Robust training imposing local Lipschitzness, with dropout (Yang et al., 2020)."""

# SPDX-License-Identifier: BSD-3-Clause

import inspect
import numbers

import torch
import torch.nn.functional as F

from ..attacks._local_linearity import LocalLinearityAttack, per_sample_dot
from ..attacks._projections import flat_norm
from ..callbacks import LocalLipschitzMonitor
from ..utils._docstring import FRAGMENTS, Substitution
from ..utils._param_validation import (
    NON_NEGATIVE_REAL,
    POSITIVE_INT,
    POSITIVE_REAL,
    Interval,
    StrOptions,
)
from ._adversarial import adversarial_loss
from ._base import BaseAdversarialClassifier
from ._trades import trades_loss

__all__ = ["LipschitzDropoutClassifier", "rst_objective", "llr_objective",
           "gr_objective"]

METHODS = ("trades", "at", "rst", "llr", "gr")

_TINY = 1e-12


# ----------------------------------------------------------------------- helpers
class _NoiseReplay:
    """Snapshot of torch's global RNG, to draw the same dropout masks twice.

    LLR and GR compare the loss of one network at two nearby inputs; in train mode
    each forward pass would draw its own dropout mask and the difference would
    measure the dropout noise rather than the local behaviour. Replaying the RNG
    before the second pass gives both passes the same masks (same sub-network).
    CPU and CUDA generators are handled.
    """

    def __init__(self, device):
        self.device = torch.device(device)
        self.cpu_state = torch.get_rng_state()
        self.cuda_state = (torch.cuda.get_rng_state(self.device)
                           if self.device.type == "cuda" else None)

    def replay(self):
        torch.set_rng_state(self.cpu_state)
        if self.cuda_state is not None:
            torch.cuda.set_rng_state(self.cuda_state, self.device)


def _ce(logits, y):
    return F.cross_entropy(logits, y, reduction="none")


# batch mean of per-sample values, weighted by the loss weights unless None
_mean = BaseAdversarialClassifier.batch_mean


# -------------------------------------------------------------------- objectives
def rst_objective(module, x, x_adv, y, *, reg_lambda=2.0, weights=None):
    """Robust self-training loss on labelled data: ``CE(x) + reg_lambda * CE(x_adv)``.

    Batch means, weighted per sample by ``weights`` unless None (as in the other
    objectives). Returns the loss and the clean logits.
    """
    logits = module(x)
    robust = _mean(_ce(module(x_adv.detach()), y), weights)
    return _mean(_ce(logits, y), weights) + reg_lambda * robust, logits


def llr_objective(module, x, x_adv, y, *, reg_lambda=4.0, mu=3.0, weights=None):
    """Local linearity regularisation (Qin et al., 2019), batch means.

    With ``delta = x_adv - x`` (a constant), ``l`` the per-sample cross-entropy
    and ``grad = d l(x) / d x``::

        g(delta) = l(x + delta) - l(x) - <delta, grad>
        loss     = l(x) + reg_lambda * |g(delta)| + mu * |<delta, grad>|

    Both passes use the same dropout masks, and the input gradient is part of
    the graph (double back-propagation), so the regulariser trains the network
    through ``grad`` as well. Returns the loss and the clean logits.
    """
    delta = (x_adv - x).detach()
    x = x.detach().requires_grad_(True)
    noise = _NoiseReplay(x.device)
    logits = module(x)
    loss = _ce(logits, y)
    (grad,) = torch.autograd.grad(loss.sum(), x, create_graph=True)
    noise.replay()
    loss_pert = _ce(module(x.detach() + delta), y)
    linear = per_sample_dot(delta, grad)
    gap = loss_pert - loss - linear
    total = (_mean(loss, weights) + reg_lambda * _mean(gap.abs(), weights)
             + mu * _mean(linear.abs(), weights))
    return total, logits


def gr_objective(module, x, x_adv, y, *, reg_lambda=1.0, h=1.0, weights=None):
    """Gradient-norm regularisation by finite differences (TULIP, Finlay & Oberman).

    With ``l`` the per-sample cross-entropy and ``v = grad l(x) / ||grad l(x)||_2``
    (a constant direction; 0 where the gradient vanishes)::

        loss = l(x) + reg_lambda / 2 * ((l(x + h v) - l(x)) / h) ** 2

    averaged over the batch: the squared finite difference approximates
    ``||grad l(x)||_2 ** 2``. Both passes use the same dropout masks; ``x + h v``
    is not clipped to the pixel box (it is a derivative probe, not an input).
    ``x_adv`` is unused (GR needs no attack). Returns the loss and the clean logits.
    """
    x = x.detach().requires_grad_(True)
    noise = _NoiseReplay(x.device)
    logits = module(x)
    loss = _ce(logits, y)
    (grad,) = torch.autograd.grad(loss.sum(), x, retain_graph=True)
    with torch.no_grad():
        norms = flat_norm(grad, "l2").reshape((-1,) + (1,) * (grad.ndim - 1))
        v = torch.where(norms > 0, grad / norms.clamp_min(_TINY),
                        torch.zeros_like(grad))
    noise.replay()
    loss_step = _ce(module(x.detach() + h * v), y)
    slope = (loss_step - loss) / h
    return _mean(loss, weights) + reg_lambda / 2 * _mean(slope ** 2, weights), logits


# ------------------------------------------------------------------- classifier
def _takes_dropout(module):
    """Whether ``module`` (None, a class or an instance) can be built with a dropout."""
    if module is None:
        return True
    if isinstance(module, type):
        params = inspect.signature(module.__init__).parameters
        return "dropout" in params
    return False


@Substitution(**FRAGMENTS)
class LipschitzDropoutClassifier(BaseAdversarialClassifier):
    """Robust training that imposes local Lipschitzness, with dropout.

    Yang et al. (2020) show that real image datasets are r-separated with
    ``2r > eps`` (see :func:`~sklearn_robust.metrics.dataset_separation`), so a
    classifier can be accurate and robust, and that the methods that make the
    network locally smooth (adversarial training, RST, TRADES) do so at the price
    of a large train-test gap, which dropout narrows. This estimator trains one
    of the five methods they compare, on a network with dropout, and can record
    per epoch the empirical local Lipschitz constant and the generalisation gap.

    ``method`` selects the loss per batch (batch means; ``l`` is the per-sample
    cross-entropy, ``f`` the logits):

    - ``"trades"``: ``l(x) + beta * KL(f(x) || f(x_adv))``, ``x_adv`` maximising
      the KL by sign steps from ``x + 0.001 * N(0, I)`` (TRADES);
    - ``"at"``: ``l(x_adv)``, ``x_adv`` from cross-entropy PGD with a uniform
      random start (Madry et al.);
    - ``"rst"``: ``l(x) + rst_lambda * l(x_adv)`` with the same PGD (robust
      self-training, labelled data only);
    - ``"llr"``: ``l(x) + llr_lambda * |g(d)| + llr_mu * |<d, grad l(x)>|`` with
      ``g(d) = l(x + d) - l(x) - <d, grad l(x)>`` and ``d = x_adv - x`` from
      :class:`~sklearn_robust.attacks.LocalLinearityAttack`, which maximises
      ``|g|`` (local linearity
      regularisation, Qin et al.);
    - ``"gr"``: ``l(x) + gr_lambda / 2 * ((l(x + gr_h * v) - l(x)) / gr_h) ** 2``
      with ``v = grad l(x) / ||grad l(x)||_2``, a finite-difference estimate of
      the squared input-gradient norm (TULIP); no attack.

    ``"trades"`` and ``"at"`` are the losses of :class:`TRADESClassifier` and
    :class:`AdversarialClassifier` (``l`` is then the ``criterion``); the others
    are :func:`rst_objective`, :func:`llr_objective` and :func:`gr_objective` of
    this module. The attack runs with the module in eval mode (no dropout); the
    loss in train mode (dropout active). ``sample_weight`` weights every
    per-sample term.

    Parameters
    ----------
    module : torch.nn.Module class or instance, default=None
        The network; it must return logits. ``None`` picks one from the input
        shape (:func:`sklearn_robust.nn.default_module`: the TRADES SmallCNN for
        images of at least 20x20 pixels, else an MLP) and builds it with
        ``dropout``.
    method : {"trades", "at", "rst", "llr", "gr"}, default="trades"
        The training method (see the table).
    beta : float, default=6.0
        ``"trades"`` only: weight of the KL term (the paper uses 1, 3 and 6; 6
        gives the smallest Lipschitz constants).
    rst_lambda : float, default=2.0
        ``"rst"`` only: weight of the adversarial cross-entropy (the paper uses
        0.5, 1 and 2).
    llr_lambda : float, default=4.0
        ``"llr"`` only: weight of the local-linearity gap ``|g|``.
    llr_mu : float, default=3.0
        ``"llr"`` only: weight of the gradient term ``|<d, grad l>|``.
    gr_lambda : float, default=1.0
        ``"gr"`` only: weight of the squared finite difference.
    gr_h : float, default=1.0
        ``"gr"`` only: finite-difference step (in L2 input distance).
    dropout : float or None, default=None
        Dropout probability in [0, 1). It is passed to the default network and
        to a ``module`` class whose ``__init__`` takes ``dropout`` (such as
        :class:`~sklearn_robust.nn.MLP` and :class:`~sklearn_robust.nn.SmallCNN`);
        a module instance, or a class without that parameter, cannot take it
        (``ValueError``): give it the dropout yourself. ``None`` keeps the
        network's own default (0.5 for SmallCNN, the paper's MNIST CNN; none for
        MLP). The paper's dropout variants use 0.2 (CIFAR-10) and 0.5 (SVHN,
        Restricted ImageNet). ``module__dropout`` is an alternative spelling;
        giving both is an error.
    lipschitz_eval_size : int or None, default=None
        When an int, a :class:`LocalLipschitzMonitor` (``eps`` of the classifier,
        at most this many points) is added to the callbacks: each epoch records
        ``train_acc`` and, on the validation split, ``valid_acc``,
        ``generalization_gap`` and ``valid_local_lipschitz`` (without a split,
        ``train_local_lipschitz``), and ``local_lipschitz_`` holds the last value.
        Set ``train_split`` (e.g. ``skorch.dataset.ValidSplit(5)`` or
        ``skorch.helper.predefined_split(Dataset(X_test, y_test))``) to get the
        gap. It needs ``eps > 0``. The callback is named ``"local_lipschitz"``
        (``callbacks__local_lipschitz__*`` parameters).
    eps : float, default=0.1
        Radius of the threat model (the paper's MNIST setting; it uses 0.031 on
        CIFAR-10 and SVHN).
    %(norm)s
    n_steps : int or None, default=None
        Steps of the training attack; ``None`` uses the paper's: 10 (TRADES, AT,
        RST) or 2 (LLR).
    step_size : float or None, default=None
        Attack step length; ``None`` uses the paper's: ``2 * eps / n_steps``
        (``eps / 5`` for 10 steps) for TRADES, AT and RST, ``eps / n_steps``
        (``eps / 2`` for 2 steps) for LLR.
    random_start : bool, default=True
        ``"at"`` and ``"rst"``: start PGD from a uniform point of the ball. TRADES
        and LLR always start from ``x + 0.001 * N(0, I)``.
    %(clip_box)s
    %(preprocessor)s
    %(precision)s
    %(channels_last)s
    attack : attack instance or None, default=None
        Replaces the training attack of TRADES, AT, RST or LLR; it takes ``eps``,
        ``norm`` and the clip box from the classifier. Must be None for ``"gr"``.
    random_state : int, RandomState instance or None, default=None
        Seeds initialisation, shuffling, dropout and the attack's random starts
        without touching the global torch RNG.
    **kwargs
        All other parameters are those of :class:`~sklearn_robust.AdversarialClassifier`
        and :class:`skorch.NeuralNetClassifier` (``optimizer``, ``lr``,
        ``max_epochs``, ``batch_size``, ``train_split``, ``callbacks``,
        ``device``, ``module__*``, ...).

    Attributes
    ----------
    module_ : torch.nn.Module
        The trained network.
    attack_ : attack or None
        The training attack (None for ``"gr"``).
    local_lipschitz_ : float
        Last recorded empirical local Lipschitz constant (only with
        ``lipschitz_eval_size`` or a :class:`LocalLipschitzMonitor`).
    %(data_attributes)s
    history_ : skorch.History
        skorch's training history (also ``history``).

    See Also
    --------
    TRADESClassifier : TRADES alone (same loss as ``method="trades"``).
    AdversarialClassifier : PGD adversarial training alone.
    sklearn_robust.metrics.empirical_local_lipschitz : The smoothness measure.
    sklearn_robust.metrics.dataset_separation : The r-separation of a dataset.

    Notes
    -----
    Differences from the reference code (``lolip/models/torch_model.py``):

    - Losses are batch means (the code sums over the batch, with SGD at
      ``lr=1e-4``); with the default Adam at ``lr=1e-3`` this is the usual scale.
    - LLR follows Qin et al.'s definition: the code drops ``- l(x)`` from ``g``,
      replaces ``<d, grad l>`` by the mean of all ``B x B`` cross products
      between samples and perturbations, takes no absolute value in the ``mu``
      term, and detaches ``grad l`` (computed in eval mode); here the gap and the
      gradient term are per sample, the gradient is computed in train mode and
      differentiated through (double back-propagation).
    - LLR and GR draw the same dropout masks for ``l(x)`` and the perturbed
      loss (the code draws independent masks, so the difference also measures
      dropout noise).
    - GR: the code back-propagates the clean loss twice (once to get the input
      gradient, once in the total), i.e. trains ``2 l + penalty``; here the loss
      is ``l + penalty``.
    - AT and RST attack the network in eval mode (the code attacks it in train
      mode, dropout active).
    - ``criterion`` (default: cross-entropy) is the training loss ``l`` of
      ``"trades"`` and ``"at"``; ``"rst"``, ``"llr"`` and ``"gr"`` use the
      cross-entropy of the paper (``criterion`` only sets their validation loss).

    References
    ----------
    .. [1] Y.-Y. Yang, C. Rashtchian, H. Zhang, R. Salakhutdinov and K. Chaudhuri,
       "A Closer Look at Accuracy vs. Robustness", NeurIPS 2020, arXiv:2003.02460.
       https://github.com/yangarbiter/robust-local-lipschitz
    .. [2] H. Zhang, Y. Yu, J. Jiao, E. Xing, L. El Ghaoui and M. Jordan,
       "Theoretically Principled Trade-off between Robustness and Accuracy",
       ICML 2019, arXiv:1901.08573.
    .. [3] A. Madry, A. Makelov, L. Schmidt, D. Tsipras and A. Vladu, "Towards Deep
       Learning Models Resistant to Adversarial Attacks", ICLR 2018.
    .. [4] A. Raghunathan, S. M. Xie, F. Yang, J. Duchi and P. Liang,
       "Understanding and Mitigating the Tradeoff Between Robustness and
       Accuracy", ICML 2020, arXiv:2002.10716 (RST).
    .. [5] C. Qin, J. Martens, S. Gowal, D. Krishnan, K. Dvijotham, A. Fawzi,
       S. De, R. Stanforth and P. Kohli, "Adversarial Robustness through Local
       Linearization", NeurIPS 2019, arXiv:1907.02610.
    .. [6] C. Finlay and A. M. Oberman, "Scaleable Input Gradient Regularization
       for Adversarial Robustness", arXiv:1905.11468, 2019 (TULIP).
    .. [7] N. Srivastava, G. Hinton, A. Krizhevsky, I. Sutskever and
       R. Salakhutdinov, "Dropout: A Simple Way to Prevent Neural Networks from
       Overfitting", JMLR 15, 2014.

    Examples
    --------
    >>> from skorch.dataset import ValidSplit
    >>> from sklearn_robust import LipschitzDropoutClassifier
    >>> from sklearn_robust.datasets import load_digits_images
    >>> X, y = load_digits_images(flat=True)
    >>> clf = LipschitzDropoutClassifier(
    ...     method="trades", dropout=0.2, n_steps=3, max_epochs=1, random_state=0,
    ...     train_split=ValidSplit(4), lipschitz_eval_size=100).fit(X[:300], y[:300])
    >>> clf.module_.dropout
    0.2
    >>> gap = clf.history[-1, "generalization_gap"]
    >>> bool(gap == clf.history[-1, "train_acc"] - clf.history[-1, "valid_acc"])
    True
    >>> clf.local_lipschitz_ == clf.history[-1, "valid_local_lipschitz"]
    True
    """

    def __init__(self, module=None, *, method="trades", beta=6.0, rst_lambda=2.0,
                 llr_lambda=4.0, llr_mu=3.0, gr_lambda=1.0, gr_h=1.0, dropout=None,
                 lipschitz_eval_size=None, eps=0.1, n_steps=None, step_size=None,
                 **kwargs):
        super().__init__(module, eps=eps, n_steps=n_steps, step_size=step_size,
                         **kwargs)
        self.method = method
        self.beta = beta
        self.rst_lambda = rst_lambda
        self.llr_lambda = llr_lambda
        self.llr_mu = llr_mu
        self.gr_lambda = gr_lambda
        self.gr_h = gr_h
        self.dropout = dropout
        self.lipschitz_eval_size = lipschitz_eval_size

    # ------------------------------------------------------------------ params
    _parameter_constraints = {
        **BaseAdversarialClassifier._parameter_constraints,
        "n_steps": [POSITIVE_INT, None],  # None: the method's own default
        "method": [StrOptions(set(METHODS))],
        **{name: [NON_NEGATIVE_REAL]
           for name in ("beta", "rst_lambda", "llr_lambda", "llr_mu", "gr_lambda")},
        "gr_h": [POSITIVE_REAL],
        "dropout": [Interval(numbers.Real, 0, 1, closed="left"), None],
        "lipschitz_eval_size": [POSITIVE_INT, None],
    }

    def _check_params(self):
        super()._check_params()
        if self.lipschitz_eval_size is not None and self.eps == 0:
            raise ValueError(
                "lipschitz_eval_size needs eps > 0 (the Lipschitz radius is eps); "
                "to monitor a naturally trained net, pass "
                "callbacks=[LocalLipschitzMonitor(eps=...)] instead.")
        if self.method == "gr" and self.attack is not None:
            raise ValueError("method='gr' uses no attack; attack must be None.")

    def _n_steps(self):
        if self.n_steps is not None:
            return self.n_steps
        return 2 if self.method == "llr" else 10

    def _step_size(self):
        if self.step_size is not None:
            return float(self.step_size)
        if self.eps == 0:
            return None  # no attack is run
        per_step = 1.0 if self.method == "llr" else 2.0
        return per_step * float(self.eps) / self._n_steps()

    # ------------------------------------------------------------------ attack
    def default_attack(self):
        """The paper's inner maximisation for ``method`` (None for ``"gr"``)."""
        if self.method == "gr":
            return None
        steps = dict(n_steps=self._n_steps(), step_size=self._step_size())
        if self.method == "llr":
            return LocalLinearityAttack(eps=self.eps, norm=self.norm,
                                        clip_min=self.clip_min,
                                        clip_max=self.clip_max, **steps)
        if self.method == "trades":
            return self.pgd_attack(loss="kl", random_start="normal", **steps)
        return self.pgd_attack(**steps)

    def initialize_attack(self):
        """Build ``attack_`` (None for ``"gr"``, which needs no attack)."""
        if self.method == "gr":
            self.attack_ = None
            return self
        return super().initialize_attack()

    # ------------------------------------------------------------------ module
    def get_params_for(self, prefix):
        # ``dropout`` reaches the default network and module classes taking it as
        # if it were given as ``module__dropout``
        params = super().get_params_for(prefix)
        if (prefix == "module" and self.dropout is not None
                and "dropout" not in params and _takes_dropout(self.module)):
            params["dropout"] = self.dropout
        return params

    def initialize_module(self):
        """Build ``module_``, passing ``dropout`` to the network (see ``dropout``)."""
        if self.dropout is not None:
            given = super().get_params_for("module")
            if "dropout" in given:
                raise ValueError("Give the dropout rate either as dropout or as "
                                 "module__dropout, not both.")
            if not _takes_dropout(self.module):
                raise ValueError(
                    f"dropout={self.dropout!r} cannot be passed to module="
                    f"{self.module!r}: only the default network and module classes "
                    "whose __init__ takes 'dropout' accept it. Build the dropout into "
                    "your module (or use module__<param>) and set dropout=None.")
        return super().initialize_module()

    # --------------------------------------------------------------- callbacks
    def initialize(self):
        # a fresh fit forgets the Lipschitz value of the previous one
        self.__dict__.pop("local_lipschitz_", None)
        return super().initialize()

    def get_default_callbacks(self):
        callbacks = list(super().get_default_callbacks())
        if self.lipschitz_eval_size is not None:
            callbacks.append(("local_lipschitz", LocalLipschitzMonitor(
                eps=self.eps, max_samples=self.lipschitz_eval_size)))
        return callbacks

    # ---------------------------------------------------------------- training
    def robust_loss(self, X, y, sample_weight=None, **fit_params):
        """The loss of ``method`` on one batch (see the table in the docstring)."""
        weights = self.loss_weights(sample_weight)
        method = self.method
        if method == "trades":
            return trades_loss(self, X, self.perturb(X, y), y, beta=self.beta,
                               weights=weights, **fit_params)
        if method == "at":
            return adversarial_loss(self, self.perturb(X, y), y, weights=weights,
                                    **fit_params)

        def module(x):
            return self.infer(x, **fit_params)

        if method == "gr":
            return gr_objective(module, X, None, y, reg_lambda=self.gr_lambda,
                                h=self.gr_h, weights=weights)
        X_adv = self.perturb(X, y)
        if method == "rst":
            return rst_objective(module, X, X_adv, y, reg_lambda=self.rst_lambda,
                                 weights=weights)
        return llr_objective(module, X, X_adv, y, reg_lambda=self.llr_lambda,
                             mu=self.llr_mu, weights=weights)
