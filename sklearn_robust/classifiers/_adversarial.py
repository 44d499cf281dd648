"""PGD adversarial training (Madry et al., 2018)."""

# SPDX-License-Identifier: BSD-3-Clause

from ..utils._docstring import FRAGMENTS, Substitution
from ._base import BaseAdversarialClassifier

__all__ = ["AdversarialClassifier", "adversarial_loss"]


def adversarial_loss(net, X_adv, y, *, weights=None, **fit_params):
    """PGD adversarial training's loss: the criterion on the adversarial examples.

    Parameters
    ----------
    net : BaseAdversarialClassifier
        The classifier being trained: its ``infer`` gives the logits and its
        criterion (:meth:`~BaseAdversarialClassifier.criterion_loss`) the loss.
    X_adv : torch.Tensor
        Adversarial batch (a constant).
    y : torch.Tensor
        Integer class codes.
    weights : torch.Tensor or None, default=None
        Per-sample loss weights (:meth:`~BaseAdversarialClassifier.loss_weights`).
    **fit_params : dict
        Passed to the module's ``forward``.

    Returns
    -------
    loss : torch.Tensor
        ``criterion(f(x_adv), y)``.
    logits_adv : torch.Tensor
        The adversarial logits ``f(x_adv)``.
    """
    logits_adv = net.infer(X_adv.detach(), **fit_params)
    return net.criterion_loss(logits_adv, y, weights, X=X_adv), logits_adv


@Substitution(**FRAGMENTS)
class AdversarialClassifier(BaseAdversarialClassifier):
    """Neural network classifier trained with PGD adversarial training.

    Each batch is replaced by its PGD adversarial examples (module in eval mode),
    and the network minimises the cross-entropy on them: the saddle-point
    formulation ``min_theta E max_{||delta|| <= eps} CE(f(x + delta), y)`` of Madry
    et al. (2018).

    Parameters
    ----------
    module : torch.nn.Module class or instance, default=None
        The network; it must return logits. ``None`` picks one from the input
        shape (:func:`sklearn_robust.nn.default_module`: the TRADES SmallCNN for
        images of at least 20x20 pixels, else an MLP). A module class that accepts
        ``input_shape`` and ``n_classes`` gets them from the training data.
    eps : float, default=0.3
        Radius of the threat model (0.3 is Madry et al.'s MNIST setting).
    %(norm)s
    n_steps : int, default=40
        PGD steps of the training attack (MNIST setting of Madry et al.).
    step_size : float or None, default=0.01
        PGD step length (MNIST setting); ``None`` uses ``2.5 * eps / n_steps``.
    random_start : bool, default=True
        Start PGD from a uniform point of the ball.
    %(clip_box)s
    %(preprocessor)s
    %(precision)s
    %(channels_last)s
    attack : attack instance or None, default=None
        Replaces the PGD training attack (e.g. ``PGD(loss="cw")``); it keeps its
        own procedure and takes ``eps``, ``norm`` and the clip box from the
        classifier.
    random_state : int, RandomState instance or None, default=None
        Seeds weight initialisation, shuffling and the attack's random starts
        inside a forked RNG: the global torch RNG is left as it was.
    criterion : torch criterion, default=torch.nn.CrossEntropyLoss
        Loss on logits.
    optimizer : torch optimizer class, default=torch.optim.Adam
        Optimizer; ``optimizer__*`` parameters are passed to it.
    lr : float, default=1e-3
        Learning rate.
    max_epochs : int, default=10
        Number of epochs.
    batch_size : int, default=128
        Mini-batch size.
    train_split : callable or None, default=None
        skorch's internal validation split (``None``: train on all the data).
    verbose : int, default=0
        skorch's epoch log when > 0.
    **kwargs
        All other parameters are those of :class:`skorch.NeuralNetClassifier`
        (``device``, ``callbacks``, ``module__*``, ``iterator_train__*``, ...).

    Attributes
    ----------
    %(net_attributes)s
    classes_ : ndarray of shape (n_classes,)
        Class labels.
    label_encoder_ : LabelEncoder
        Maps labels to the network's class indices.
    input_shape_ : tuple
        Shape of one training sample.
    n_features_in_ : int
        Size of the second dimension of ``X``.
    history_ : skorch.History
        skorch's training history (also ``history``).

    See Also
    --------
    TRADESClassifier : Trades clean accuracy against robustness with a KL term.
    sklearn_robust.metrics.robust_accuracy_score : Evaluate robust accuracy.

    Notes
    -----
    Threat model: untargeted white-box perturbations with ``||delta|| <= eps`` in
    ``norm`` and the pixel box. Evaluate with a strong attack (the default of
    :func:`~sklearn_robust.metrics.robust_accuracy_score`), never with the training
    attack alone.

    References
    ----------
    .. [1] A. Madry, A. Makelov, L. Schmidt, D. Tsipras and A. Vladu, "Towards Deep
       Learning Models Resistant to Adversarial Attacks", ICLR 2018,
       arXiv:1706.06083.

    Examples
    --------
    >>> from sklearn_robust import AdversarialClassifier
    >>> from sklearn_robust.datasets import load_digits_images
    >>> X, y = load_digits_images(flat=True)
    >>> clf = AdversarialClassifier(eps=0.1, n_steps=3, step_size=0.05,
    ...                             max_epochs=1, random_state=0).fit(X[:200], y[:200])
    >>> clf.predict(X[:3]).shape
    (3,)
    """

    def robust_loss(self, X, y, sample_weight=None, **fit_params):
        """Cross-entropy on the PGD adversarial examples of the batch."""
        X_adv = self.perturb(X, y)
        weights = self.loss_weights(sample_weight)
        return adversarial_loss(self, X_adv, y, weights=weights, **fit_params)
