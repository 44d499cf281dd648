"""TRADES (Zhang et al., 2019)."""

# SPDX-License-Identifier: BSD-3-Clause

from ..attacks._losses import _kl_loss as kl_loss
from ..utils._docstring import FRAGMENTS, Substitution
from ..utils._param_validation import NON_NEGATIVE_REAL
from ._base import BaseAdversarialClassifier

__all__ = ["TRADESClassifier", "trades_loss"]


def trades_loss(net, X, X_adv, y, *, beta, weights=None, **fit_params):
    """The TRADES objective ``criterion(f(x), y) + beta * KL(f(x) || f(x_adv))``.

    The KL term is :func:`sklearn_robust.attacks.kl_loss` averaged over
    the batch; both forward passes (in the module's current mode, train mode
    during fit) carry gradients, ``X_adv`` is a constant.

    Parameters
    ----------
    net : BaseAdversarialClassifier
        The classifier being trained: its ``infer`` gives the logits and its
        criterion (:meth:`~BaseAdversarialClassifier.criterion_loss`) the
        natural term.
    X, X_adv : torch.Tensor
        Clean batch and its adversarial version.
    y : torch.Tensor
        Integer class codes.
    beta : float
        Weight of the KL term.
    weights : torch.Tensor or None, default=None
        Per-sample loss weights of both terms
        (:meth:`~BaseAdversarialClassifier.loss_weights`).
    **fit_params : dict
        Passed to the module's ``forward``.

    Returns
    -------
    loss : torch.Tensor
        Scalar loss.
    logits : torch.Tensor
        Clean logits ``f(x)``.
    """
    logits = net.infer(X, **fit_params)
    logits_adv = net.infer(X_adv.detach(), **fit_params)
    natural = net.criterion_loss(logits, y, weights, X=X)
    robust = net.batch_mean(kl_loss(logits_adv, y, logits), weights)
    return natural + beta * robust, logits


@Substitution(**FRAGMENTS)
class TRADESClassifier(BaseAdversarialClassifier):
    """Neural network classifier trained with TRADES.

    Minimises ``CE(f(x), y) + beta * KL(f(x) || f(x_adv))`` where ``x_adv``
    maximises the KL term by sign-gradient ascent from ``x + 0.001 * N(0, I)``
    inside the ``eps``-ball (module in eval mode, as in the reference code); the
    clean and adversarial forward passes of the loss run in train mode and the
    gradient flows through both.

    Parameters
    ----------
    module : torch.nn.Module class or instance, default=None
        The network; it must return logits. ``None`` picks one from the input
        shape (see :class:`AdversarialClassifier`).
    beta : float, default=1.0
        Weight of the robust KL term: 1.0 is the paper's MNIST setting, 6.0 its
        CIFAR-10 setting; larger values trade clean accuracy for robustness.
    eps : float, default=0.3
        Radius of the threat model (MNIST setting of the paper).
    %(norm)s
    n_steps : int, default=40
        Steps of the KL attack (MNIST setting).
    step_size : float or None, default=0.01
        Step length of the KL attack (MNIST setting); ``None`` uses
        ``2.5 * eps / n_steps``.
    %(clip_box)s
    %(preprocessor)s
    %(precision)s
    %(channels_last)s
    attack : attack instance or None, default=None
        Replaces the KL attack; it takes ``eps``, ``norm`` and the clip box from
        the classifier.
    random_state : int, RandomState instance or None, default=None
        Seeds initialisation, shuffling and the attack's random starts without
        touching the global torch RNG.
    **kwargs
        All other parameters are those of :class:`AdversarialClassifier` and
        :class:`skorch.NeuralNetClassifier`.

    Attributes
    ----------
    %(net_attributes)s
    %(data_attributes)s

    See Also
    --------
    AdversarialClassifier : PGD adversarial training.

    Notes
    -----
    Threat model: untargeted white-box perturbations with ``||delta|| <= eps`` in
    ``norm`` and the pixel box. ``random_start`` is accepted for a uniform form of
    the signature but the TRADES attack always starts from ``x + 0.001 * N(0, I)``.

    References
    ----------
    .. [1] H. Zhang, Y. Yu, J. Jiao, E. Xing, L. El Ghaoui and M. Jordan,
       "Theoretically Principled Trade-off between Robustness and Accuracy",
       ICML 2019, arXiv:1901.08573.

    Examples
    --------
    >>> from sklearn_robust import TRADESClassifier
    >>> from sklearn_robust.datasets import load_digits_images
    >>> X, y = load_digits_images(flat=True)
    >>> clf = TRADESClassifier(eps=0.1, n_steps=3, step_size=0.05, max_epochs=1,
    ...                        random_state=0).fit(X[:200], y[:200])
    >>> clf.predict_proba(X[:2]).shape
    (2, 10)
    """

    def __init__(self, module=None, *, beta=1.0, **kwargs):
        super().__init__(module, **kwargs)
        self.beta = beta

    _parameter_constraints = {**BaseAdversarialClassifier._parameter_constraints,
                              "beta": [NON_NEGATIVE_REAL]}

    def default_attack(self):
        """Sign-gradient ascent on KL(f(x) || f(x')) from ``x + 0.001 N(0, I)``."""
        return self.pgd_attack(loss="kl", random_start="normal")

    def robust_loss(self, X, y, sample_weight=None, **fit_params):
        """``CE(f(x), y) + beta * KL(f(x) || f(x_adv))``, KL averaged over the batch."""
        X_adv = self.perturb(X, y)
        return trades_loss(self, X, X_adv, y, beta=self.beta,
                           weights=self.loss_weights(sample_weight), **fit_params)
