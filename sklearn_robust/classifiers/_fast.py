"""Fast adversarial training: FGSM with a random start (Wong et al., 2020)."""

# SPDX-License-Identifier: BSD-3-Clause

import numbers

from ..callbacks import CatastrophicOverfittingCheck
from ..utils._docstring import FRAGMENTS, Substitution
from ..utils._param_validation import POSITIVE_INT, Interval, Options
from ._adversarial import adversarial_loss
from ._base import BaseAdversarialClassifier, _PrintLog

__all__ = ["FastAdversarialClassifier"]

#: The FGSM step of FGSM-RS as a multiple of eps (Wong et al.'s alpha = 1.25 eps).
ALPHA_OVER_EPS = 1.25


class _EarlyStopFromNet(CatastrophicOverfittingCheck):
    """The check of :class:`FastAdversarialClassifier`, set by its ``early_stop*``
    parameters at every training call (so ``set_params`` takes effect at once)."""

    def _settings(self, net):
        return net.early_stop_pgd_steps, None, net.early_stop_threshold

    def _active(self, net):
        return bool(net.early_stop)


@Substitution(**FRAGMENTS)
class FastAdversarialClassifier(BaseAdversarialClassifier):
    """Neural network classifier trained with fast adversarial training (FGSM-RS).

    "Fast is better than free" (Wong et al., 2020): each batch is replaced by a
    single FGSM step from a random start, and the network minimises the
    cross-entropy on it. Per sample, ``delta ~ Uniform(-eps, eps)`` (clipped so
    that ``x + delta`` stays in the pixel box), then one step
    ``delta <- delta + alpha * sign(grad_delta CE(f(x + delta), y))`` with
    ``alpha = 1.25 * eps``, projected back onto the ``eps``-ball and the box;
    the network is trained on ``x + delta``. This is
    :class:`~sklearn_robust.attacks.PGD` with ``n_steps=1``,
    ``step_size=alpha`` and ``random_start=True`` (module in eval mode during
    the attack). An epoch costs two forward-backward passes per batch, one for
    the attack and one for the update, against ``K + 1`` for PGD-K training.

    FGSM training can suffer *catastrophic overfitting*: within an epoch the
    network becomes robust to FGSM alone and its PGD accuracy collapses to
    about zero. With ``early_stop=True`` (the default) the authors' check runs
    at the end of every epoch (the callback
    :class:`~sklearn_robust.callbacks.CatastrophicOverfittingCheck`): PGD-5
    (step ``eps / 4``, one random start) on the epoch's first training batch;
    if its robust accuracy falls by more
    than ``early_stop_threshold`` below the previous epoch's, the weights of
    the previous epoch are restored, training stops, ``catastrophic_overfitting_``
    is set and a warning is issued.

    Parameters
    ----------
    module : torch.nn.Module class or instance, default=None
        The network; it must return logits. ``None`` picks one from the input
        shape (see :class:`AdversarialClassifier`).
    eps : float, default=0.3
        Radius of the threat model (0.3 is the MNIST setting of the paper).
    %(norm)s
    step_size : float or None, default=None
        The FGSM step, the paper's ``alpha``; ``None`` uses ``1.25 * eps``, the
        paper's choice (MNIST: 0.375 for ``eps = 0.3``; CIFAR-10: 10/255 for
        8/255). The paper finds catastrophic overfitting for steps much above
        it (e.g. ``2 * eps``). For ``norm="l2"`` or ``"l1"`` the step is the
        attack's normalised-gradient (L2) or sparse (L1) step of that length.
    random_start : bool, default=True
        Start from a uniform point of the ball (FGSM-RS). ``False`` is FGSM from
        the clean point ("zero init" in the paper), which overfits
        catastrophically more readily.
    n_steps : int, default=1
        Steps of the training attack; FGSM-RS takes exactly one (other values
        are rejected: PGD-K training is :class:`AdversarialClassifier`). It is
        a parameter for the common signature of the classifiers.
    early_stop : bool, default=True
        Run the catastrophic-overfitting check at the end of each epoch (see
        above). The authors' CIFAR-10 script makes it opt-in (``--early-stop``,
        used for their results with long schedules) and their MNIST script has
        none; here it is on by default since it costs one PGD on one batch per
        epoch and it leaves training unchanged until it fires.
    early_stop_pgd_steps : int, default=5
        PGD steps of the check (the authors': 5, step ``eps / 4``, one restart).
    early_stop_threshold : float, default=0.2
        The drop of the check's robust accuracy from one epoch to the next
        that counts as catastrophic overfitting (the authors': more than 0.2).
    %(clip_box)s
    %(preprocessor)s
    %(precision)s
    %(channels_last)s
    attack : attack instance or None, default=None
        Replaces the FGSM-RS training attack; it takes ``eps``, ``norm`` and the
        clip box from the classifier.
    random_state : int, RandomState instance or None, default=None
        Seeds weight initialisation, shuffling, the random starts of the
        training attack and of the check inside a forked RNG: the global torch
        RNG is left as it was.
    optimizer : torch optimizer class, default=torch.optim.Adam
        Optimizer; ``optimizer__*`` parameters are passed to it.
    lr : float, default=1e-3
        Learning rate (constant unless a scheduler callback is given; see Notes).
    max_epochs : int, default=10
        Number of epochs (the paper's MNIST setting: 10).
    batch_size : int, default=128
        Mini-batch size (the paper's: 100 on MNIST, 128 on CIFAR-10); the check
        attacks one such batch.
    **kwargs
        All other parameters are those of :class:`AdversarialClassifier` and
        :class:`skorch.NeuralNetClassifier` (``criterion``, ``train_split``,
        ``callbacks``, ``device``, ``verbose``, ``module__*``, ...).

    Attributes
    ----------
    %(net_attributes)s
    %(data_attributes)s
    catastrophic_overfitting_ : bool
        Whether the check stopped the last ``fit`` or ``partial_fit`` call (the
        model then holds the weights of the epoch before the one that fired).
    history_ : skorch.History
        skorch's training history (also ``history``). With ``early_stop`` each
        epoch records ``"co_robust_acc"``, the check's PGD accuracy, and
        ``"catastrophic_overfitting"``, True at the epoch that fired.

    See Also
    --------
    AdversarialClassifier : PGD adversarial training (``K + 1`` passes a batch).
    sklearn_robust.callbacks.CatastrophicOverfittingCheck : The check, for any
        classifier of the library.
    sklearn_robust.attacks.FGSM : The single-step attack from the clean point.

    Notes
    -----
    Threat model: untargeted white-box perturbations with ``||delta|| <= eps`` in
    ``norm`` and the pixel box. The paper is about L-inf; L2 and L1 follow from
    the library's PGD (uniform start in the ball, one steepest-ascent step,
    exact projection). Evaluate with a strong attack (the default of
    :func:`~sklearn_robust.metrics.robust_accuracy_score`): FGSM-trained models
    are exactly those whose robustness an FGSM or weak PGD overstates.

    Differences from the authors' code (``locuslab/fast_adversarial``): the
    attack and the check run with the module in eval mode (the authors keep
    train mode, so batch-norm uses and updates batch statistics there); the
    attack's backward pass computes the input gradient only (theirs also fills
    the weight gradients, then zeroes them); the random start is clipped into
    the box before the gradient, as in their CIFAR-10 script (their MNIST
    script clips only after the step); the check also restores the optimizer's
    state.

    Schedule and precision: the paper's other ingredients are a cyclic
    learning rate and mixed precision, both choices of the optimisation
    rather than of the method. The CIFAR-10 schedule (SGD, momentum 0.9,
    weight decay 5e-4, learning rate 0 -> 0.2 -> 0 over 15 epochs, stepped per
    batch) is skorch's ``LRScheduler`` with ``CyclicLR``::

        from skorch.callbacks import LRScheduler
        n_batches = -(-len(X) // 128)
        clf = FastAdversarialClassifier(
            eps=8 / 255, max_epochs=15, batch_size=128,
            optimizer=torch.optim.SGD, lr=0.2, optimizer__momentum=0.9,
            optimizer__weight_decay=5e-4,
            callbacks=[LRScheduler(
                policy=torch.optim.lr_scheduler.CyclicLR, base_lr=0.0,
                max_lr=0.2, step_size_up=15 * n_batches // 2,
                step_size_down=15 * n_batches // 2, step_every="batch")])

    and the MNIST one (Adam, ``lr`` 0 -> 5e-3 at 2/5 of the epochs -> 0,
    linear, per batch) a ``LambdaLR`` of ``np.interp``::

        from torch.optim.lr_scheduler import LambdaLR
        T = 10 * -(-len(X) // 100)             # batches of training
        clf = FastAdversarialClassifier(
            eps=0.3, max_epochs=10, batch_size=100, lr=5e-3,
            callbacks=[LRScheduler(
                policy=LambdaLR, step_every="batch",
                lr_lambda=functools.partial(   # picklable, unlike a lambda
                    np.interp, xp=[-1, 0.4 * T - 1, T - 1], fp=[0, 1, 0]))])

    (shifted by one batch: the authors' batch ``s`` takes the schedule's value
    at ``s + 1``). Mixed precision is
    ``device=None`` with an :class:`AccelerateMixin` subclass and
    ``accelerator=Accelerator(mixed_precision="fp16")`` (or ``"bf16"``). On
    several processes each one checks its own shard of the first batch and
    could stop alone: pass ``early_stop=False`` there.

    References
    ----------
    .. [1] E. Wong, L. Rice and J. Z. Kolter, "Fast is better than free:
       Revisiting adversarial training", ICLR 2020, arXiv:2001.03994.
    .. [2] I. Goodfellow, J. Shlens and C. Szegedy, "Explaining and Harnessing
       Adversarial Examples", ICLR 2015, arXiv:1412.6572.

    Examples
    --------
    >>> from sklearn_robust import FastAdversarialClassifier
    >>> from sklearn_robust.datasets import load_digits_images
    >>> X, y = load_digits_images(flat=True)
    >>> clf = FastAdversarialClassifier(eps=0.1, max_epochs=2,
    ...                                 random_state=0).fit(X[:300], y[:300])
    >>> clf.attack_.n_steps, round(clf.attack_.step_size, 3)
    (1, 0.125)
    >>> clf.catastrophic_overfitting_
    False
    """

    def __init__(self, module=None, *, eps=0.3, step_size=None, n_steps=1,
                 early_stop=True, early_stop_pgd_steps=5, early_stop_threshold=0.2,
                 **kwargs):
        super().__init__(module, eps=eps, step_size=step_size, n_steps=n_steps,
                         **kwargs)
        self.early_stop = early_stop
        self.early_stop_pgd_steps = early_stop_pgd_steps
        self.early_stop_threshold = early_stop_threshold

    _parameter_constraints = {
        **BaseAdversarialClassifier._parameter_constraints,
        "n_steps": [Options(numbers.Integral, {1})],
        "early_stop": ["boolean"],
        "early_stop_pgd_steps": [POSITIVE_INT],
        "early_stop_threshold": [Interval(numbers.Real, 0, 1, closed="both")],
    }

    def _alpha(self):
        """The FGSM step: ``step_size``, or ``1.25 * eps``."""
        if self.step_size is None:
            return ALPHA_OVER_EPS * float(self.eps)
        return float(self.step_size)

    def default_attack(self):
        """One FGSM step of ``alpha`` from a uniform start: PGD with one step."""
        alpha = self._alpha()
        if alpha == 0:  # eps = 0: natural training (PGD rejects a step of 0)
            alpha = None
        return self.pgd_attack(n_steps=1, step_size=alpha,
                               warn_reach=not self.random_start)

    @property
    def _default_callbacks(self):
        callbacks = []
        for name, cb in super()._default_callbacks:
            if name == "print_log":
                callbacks.append(("catastrophic_overfitting", _EarlyStopFromNet()))
                # True only at the epoch that fires, which is not printed
                cb = _PrintLog(keys_ignored=["catastrophic_overfitting"])
            callbacks.append((name, cb))
        return callbacks

    def on_train_begin(self, net, X=None, y=None, **kwargs):
        super().on_train_begin(net, X=X, y=y, **kwargs)
        self.catastrophic_overfitting_ = False

    def robust_loss(self, X, y, sample_weight=None, **fit_params):
        """Cross-entropy on the FGSM-RS examples of the batch."""
        X_adv = self.perturb(X, y)
        weights = self.loss_weights(sample_weight)
        return adversarial_loss(self, X_adv, y, weights=weights, **fit_params)
