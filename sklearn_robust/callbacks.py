"""skorch callbacks recording the diagnostics of robust training.

:class:`GAIRMonitor` records the geometry values and instance weights of
GAIR training per epoch; :class:`LocalLipschitzMonitor` the empirical local
Lipschitz constant and the generalisation gap (Yang et al., 2020);
:class:`CatastrophicOverfittingCheck` the PGD accuracy of a training batch,
stopping and rolling back when it collapses (Wong et al., 2020).
"""

# SPDX-License-Identifier: BSD-3-Clause

import copy
import numbers
import warnings
from collections.abc import Mapping

import numpy as np
import torch
from skorch.callbacks import Callback
from skorch.dataset import unpack_data
from skorch.utils import data_from_dataset, to_tensor

from .attacks import PGD
from .metrics._lipschitz import empirical_local_lipschitz
from .utils._param_validation import (
    NON_NEGATIVE_REAL,
    POSITIVE_INT,
    POSITIVE_REAL,
    Interval,
    validate_params,
)
from .utils._torch import eval_mode, seed_from_random_state

__all__ = ["CatastrophicOverfittingCheck", "GAIRMonitor", "LocalLipschitzMonitor"]

# GAIRMonitor's noisier keys, left out of the printed log by default
# (``callbacks__print_log__keys_ignored`` overrides this)
_GAIR_KEYS_NOT_PRINTED = ("gair_reweighting", "gair_kappa_frac_zero",
                          "gair_kappa_frac_max", "gair_kappa_hist", "gair_weight_min",
                          "gair_weight_max", "gair_weight_std")


class GAIRMonitor(Callback):
    """skorch callback recording the per-epoch diagnostics of GAIR training.

    :class:`~sklearn_robust.GAIRATClassifier` and
    :class:`~sklearn_robust.GAIRTRADESClassifier` add it to their default
    callbacks (as ``"gair_monitor"``; ``callbacks__gair_monitor=None`` removes
    it). After every training batch it reads the net's ``gair_batch_`` (the
    batch's geometry values ``kappa``, unnormalised GAIR weights ``w`` and loss
    weights); at the end of each epoch it records in ``history``:

    - ``gair_lambda`` and ``gair_reweighting``: the net's ``current_lambda_``
      and ``reweighting_``;
    - ``gair_kappa_mean``, ``gair_kappa_frac_zero`` and ``gair_kappa_frac_max``
      (fractions with ``kappa = 0`` and ``kappa = K``) and ``gair_kappa_hist``
      (counts of ``kappa = 0..K``, ``K`` the net's ``kappa_max_``);
    - ``gair_weight_min``, ``gair_weight_max``, ``gair_weight_mean``,
      ``gair_weight_std`` of ``w`` (all 1 when not reweighting);
    - ``gair_ess``: the Kish effective sample size ``(sum v)^2 / (n sum v^2)``
      of the loss weights ``v`` of the epoch, as a fraction of its ``n``
      samples.

    The diagnostics cover the training batches only.

    Attributes
    ----------
    batches_ : list of tuple of tensors
        The current epoch's ``(kappa, w, loss weights)`` of every training batch,
        kept where the batches were computed and moved to the host once, at the
        end of the epoch.
    """

    def on_epoch_begin(self, net, **kwargs):
        self.batches_ = []

    def on_batch_end(self, net, training=False, **kwargs):
        # kept as they are (on the device, detached): no computation and no
        # synchronisation per batch; the statistics are taken at the epoch's end
        if training:
            b = net.gair_batch_
            self.batches_.append((b["kappa"].detach(), b["weights"].detach(),
                                  b["loss_weights"].detach()))

    def on_epoch_end(self, net, **kwargs):
        h, batches = net.history, self.batches_
        self.batches_ = []
        h.record("gair_lambda", float(net.current_lambda_))
        h.record("gair_reweighting", bool(net.reweighting_))
        if not batches:
            return

        def column(i, dtype):  # joined where computed, then one copy to the host
            return torch.cat([b[i] for b in batches]).to("cpu", dtype).numpy()

        kappa, w, e = (column(0, torch.int64), column(1, torch.float64),
                       column(2, torch.float64))
        n, k_max = len(kappa), int(net.kappa_max_)
        if not n:
            return
        if kappa.min() < 0 or kappa.max() > k_max:
            raise ValueError(f"The training attack returned kappa in [{kappa.min()}, "
                             f"{kappa.max()}], outside [0, n_steps={k_max}].")
        hist = np.bincount(kappa, minlength=k_max + 1)
        e_sq = float(e @ e)
        h.record("gair_kappa_mean", float(kappa.mean()))
        h.record("gair_kappa_frac_zero", float(hist[0] / n))
        h.record("gair_kappa_frac_max", float(hist[-1] / n))
        h.record("gair_kappa_hist", hist.tolist())
        h.record("gair_weight_min", float(w.min()))
        h.record("gair_weight_max", float(w.max()))
        h.record("gair_weight_mean", float(w.mean()))
        h.record("gair_weight_std", float(w.std()))
        h.record("gair_ess", float(e.sum() ** 2 / (n * e_sq)) if e_sq > 0 else 0.0)


def _subset(X, y, max_samples, random_state):
    X, y = np.asarray(X), np.asarray(y)
    if len(X) <= max_samples:
        return X, y
    idx = np.sort(np.random.RandomState(random_state).choice(
        len(X), max_samples, replace=False))
    return X[idx], y[idx]


class LocalLipschitzMonitor(Callback):
    """skorch callback recording local Lipschitzness and the generalisation gap.

    At the end of each epoch it records in the net's ``history``:

    - ``"train_acc"``: clean accuracy (eval mode, no dropout) on at most
      ``max_samples`` training points (the train accuracy skorch could cache is
      that of dropout-perturbed, possibly adversarial batches);
    - ``"valid_acc"``: skorch's validation accuracy when it is already recorded,
      else computed here (only with a validation split);
    - ``"generalization_gap"``: ``train_acc - valid_acc`` (only with a validation
      split);
    - ``"valid_local_lipschitz"`` (with a validation split) or
      ``"train_local_lipschitz"`` (without one):
      :func:`~sklearn_robust.metrics.empirical_local_lipschitz` at radius
      ``eps`` on at most ``max_samples`` points;

    and sets the net's ``local_lipschitz_`` to the last Lipschitz value. It reads
    the pixel box from the net's ``clip_min``/``clip_max`` (default ``[0, 1]``).
    It uses its own random generators, so adding it does not change training.

    Parameters
    ----------
    eps : float
        Radius of the linf-ball (Yang et al. use the attack radius, e.g. 0.1 on
        MNIST); must be > 0.
    max_samples : int, default=500
        At most this many points (a fixed random subset) of each set are used.
    n_steps : int, default=10
        Ascent steps of the Lipschitz estimate.
    step_size : float, default=0.003
        Their length.
    random_state : int, default=0
        Seeds the subsets and the estimate's random start.

    Attributes
    ----------
    local_lipschitz_ : float
        The last value recorded.

    Examples
    --------
    >>> from skorch.dataset import ValidSplit
    >>> from sklearn_robust import AdversarialClassifier
    >>> from sklearn_robust.callbacks import LocalLipschitzMonitor
    >>> from sklearn_robust.datasets import load_digits_images
    >>> X, y = load_digits_images(flat=True)
    >>> natural = AdversarialClassifier(
    ...     eps=0.0, max_epochs=1, random_state=0, train_split=ValidSplit(4),
    ...     callbacks=[LocalLipschitzMonitor(eps=0.1, max_samples=100)])
    >>> row = natural.fit(X[:300], y[:300]).history[-1]
    >>> bool(row["generalization_gap"] == row["train_acc"] - row["valid_acc"])
    True
    >>> natural.local_lipschitz_ == row["valid_local_lipschitz"]
    True
    """

    def __init__(self, eps, *, max_samples=500, n_steps=10, step_size=0.003,
                 random_state=0):
        self.eps = eps
        self.max_samples = max_samples
        self.n_steps = n_steps
        self.step_size = step_size
        self.random_state = random_state

    _parameter_constraints = {"eps": [NON_NEGATIVE_REAL], "max_samples": [POSITIVE_INT]}

    def initialize(self):
        validate_params(self)
        if self.eps == 0:
            raise ValueError("LocalLipschitzMonitor needs eps > 0.")
        self.local_lipschitz_ = None
        return self

    def _lipschitz(self, net, X):
        return empirical_local_lipschitz(
            net, X, eps=self.eps, n_steps=self.n_steps, step_size=self.step_size,
            clip_min=getattr(net, "clip_min", 0.0),
            clip_max=getattr(net, "clip_max", 1.0), random_state=self.random_state)

    def on_epoch_end(self, net, dataset_train=None, dataset_valid=None, **kwargs):
        # skorch's DataLoader draws a seed from the global torch RNG at each
        # prediction: fork it so that monitoring leaves training unchanged
        device = torch.device(net.device)
        devices = ([device.index if device.index is not None
                    else torch.cuda.current_device()]
                   if device.type == "cuda" and torch.cuda.is_available() else [])
        with torch.random.fork_rng(devices=devices):
            self._record(net, dataset_train, dataset_valid)

    def _record(self, net, dataset_train, dataset_valid):
        row = net.history[-1]
        X_train, y_train = _subset(*data_from_dataset(dataset_train),
                                   self.max_samples, self.random_state)
        train_acc = float(np.mean(net.predict(X_train) == y_train))
        net.history.record("train_acc", train_acc)
        if dataset_valid is None:
            X_lip, key = X_train, "train_local_lipschitz"
        else:
            X_valid, y_valid = data_from_dataset(dataset_valid)
            if "valid_acc" in row:
                valid_acc = float(row["valid_acc"])
            else:
                valid_acc = float(np.mean(net.predict(X_valid) == np.asarray(y_valid)))
                net.history.record("valid_acc", valid_acc)
            net.history.record("generalization_gap", train_acc - valid_acc)
            X_lip, _ = _subset(X_valid, y_valid, self.max_samples, self.random_state)
            key = "valid_local_lipschitz"
        value = self._lipschitz(net, X_lip)
        net.history.record(key, value)
        self.local_lipschitz_ = value
        net.local_lipschitz_ = value


def _copy_state(state):
    """A deep copy of a ``state_dict``: tensors cloned (detached), containers
    rebuilt, other values deep-copied.

    The same as :func:`copy.deepcopy` for the state of modules and optimizers
    (an ``OrderedDict`` keeps its ``_metadata``), at a fraction of its cost: the
    check copies the weights and the optimizer's state at every epoch.
    """
    if isinstance(state, torch.Tensor):
        return state.detach().clone()
    if isinstance(state, dict):
        out = type(state)((k, _copy_state(v)) for k, v in state.items())
        if hasattr(state, "_metadata"):
            out._metadata = copy.deepcopy(state._metadata)
        return out
    if isinstance(state, list | tuple) and type(state) in (list, tuple):
        return type(state)(_copy_state(v) for v in state)
    return copy.deepcopy(state)


class CatastrophicOverfittingCheck(Callback):
    """skorch callback that stops training when its PGD accuracy collapses.

    The catastrophic-overfitting check of fast adversarial training (Wong et
    al., 2020, and the authors' ``CIFAR10/train_fgsm.py --early-stop``). At
    the end of each epoch it attacks the first training mini-batch of that
    epoch with PGD (``n_steps`` steps of ``step_size`` from a uniform random
    start in the classifier's threat model, one restart, module in eval mode)
    and measures the batch's robust accuracy. If it is below the previous
    epoch's by more than ``threshold`` (the authors' 0.2), it restores the
    weights (and optimizer state) saved at the end of the previous epoch, sets
    the net's ``catastrophic_overfitting_`` to True, warns and stops training
    as skorch's ``EarlyStopping`` does (so callbacks after it, among them the
    printed log, skip that epoch). The first checked epoch sets the reference
    and never fires (the authors' reference starts at 0).

    :class:`~sklearn_robust.FastAdversarialClassifier` adds it to its default
    callbacks (as ``"catastrophic_overfitting"``, set up by its ``early_stop*``
    parameters); it works with any classifier of the library, e.g.
    ``AdversarialClassifier(callbacks=[CatastrophicOverfittingCheck()])``.
    Each epoch it records in ``history``:

    - ``"co_robust_acc"``: the batch's PGD accuracy;
    - ``"catastrophic_overfitting"``: whether the check fired at this epoch
      (then the row is that of the discarded epoch: the returned weights are
      those of the row before).

    A sample counts as robust when every PGD iterate, the random start
    included, is classified correctly: the authors' PGD stops updating a
    sample once it is misclassified and scores the point where it stopped,
    which is the same count. The check draws its random starts from its own
    generator and runs without gradients on the weights, so training is the
    same with or without it until it fires. The reference accuracy carries
    over ``partial_fit`` calls (the weights a call starts from are those it
    restores if its first epoch fires) and is reset when the net is
    initialised (each ``fit``). The saved weights are dropped at the end of
    each call, so a fitted model does not carry a copy of them.

    Parameters
    ----------
    n_steps : int, default=5
        PGD steps (the authors': 5).
    step_size : float or None, default=None
        PGD step; ``None`` uses ``eps / 4`` (the authors' 2/255 for
        ``eps = 8/255``).
    threshold : float, default=0.2
        The largest drop of the batch's robust accuracy from one epoch to the
        next that is not catastrophic overfitting (the authors': 0.2).
    random_state : int, RandomState instance or None, default=None
        Seeds the random starts. ``None`` uses a stream of the classifier's
        training seed (its ``training_random_state(3)``), so each fit is
        reproducible from the classifier's ``random_state``.

    Attributes
    ----------
    reference_acc_ : float or None
        The robust accuracy of the last epoch that passed the check.

    See Also
    --------
    sklearn_robust.FastAdversarialClassifier : FGSM training with a random
        start, which uses this check.

    References
    ----------
    .. [1] E. Wong, L. Rice and J. Z. Kolter, "Fast is better than free:
       Revisiting adversarial training", ICLR 2020, arXiv:2001.03994.

    Examples
    --------
    >>> from sklearn_robust import AdversarialClassifier
    >>> from sklearn_robust.callbacks import CatastrophicOverfittingCheck
    >>> from sklearn_robust.datasets import load_digits_images
    >>> X, y = load_digits_images(flat=True)
    >>> clf = AdversarialClassifier(
    ...     eps=0.1, n_steps=3, step_size=0.05, max_epochs=2, random_state=0,
    ...     callbacks=[CatastrophicOverfittingCheck()]).fit(X[:300], y[:300])
    >>> 0 <= clf.history[-1, "co_robust_acc"] <= 1
    True
    >>> clf.catastrophic_overfitting_
    False
    """

    def __init__(self, *, n_steps=5, step_size=None, threshold=0.2,
                 random_state=None):
        self.n_steps = n_steps
        self.step_size = step_size
        self.threshold = threshold
        self.random_state = random_state

    _parameter_constraints = {
        "n_steps": [POSITIVE_INT],
        "step_size": [POSITIVE_REAL, None],
        "threshold": [Interval(numbers.Real, 0, 1, closed="both")],
    }

    #: the offset of the check's stream among the classifier's random streams
    _RANDOM_OFFSET = 3

    def initialize(self):
        validate_params(self)
        self.reference_acc_ = None
        self._saved_state = None
        self._batch = None
        return self

    def _settings(self, net):
        """``(n_steps, step_size, threshold)`` of this training call."""
        return self.n_steps, self.step_size, self.threshold

    def _active(self, net):
        return True

    def on_train_begin(self, net, **kwargs):
        net.catastrophic_overfitting_ = False
        if not self._active(net):
            return
        if self.random_state is None and hasattr(net, "training_random_state"):
            self._rng = net.training_random_state(self._RANDOM_OFFSET)
        else:
            self._rng = np.random.RandomState(seed_from_random_state(
                self.random_state, name=f"{type(self).__name__}: random_state"))
        # the weights a first firing epoch of this call goes back to
        if self.reference_acc_ is not None:
            self._save(net)

    def on_train_end(self, net, **kwargs):
        self._saved_state = None
        self._batch = None

    def on_epoch_begin(self, net, **kwargs):
        self._batch = None

    def on_batch_begin(self, net, batch=None, training=False, **kwargs):
        if not training or self._batch is not None or not self._active(net):
            return
        X, y = unpack_data(batch)
        if isinstance(y, Mapping):  # a sample-weighted batch: {"y": ..., ...}
            y = y["y"]
        self._batch = (to_tensor(X, device=net.device).detach().clone(),
                       to_tensor(y, device=net.device).detach().clone())

    def attack(self, net):
        """The PGD of the check, in the net's threat model."""
        n_steps, step_size, _ = self._settings(net)
        eps = float(net.eps)
        if step_size is None and eps > 0:  # (eps = 0: the clean accuracy)
            step_size = eps / 4
        return PGD(eps=eps, norm=net.norm, n_steps=n_steps, step_size=step_size,
                   random_start=True, n_restarts=1, loss="ce",
                   clip_min=net.clip_min, clip_max=net.clip_max,
                   random_state=self._rng)

    def robust_accuracy(self, net, X, y):
        """The fraction of ``(X, y)`` (class codes) that every PGD iterate leaves
        correctly classified."""
        module = getattr(net, "attacked_module_", net.module_)
        attack = self.attack(net)
        X_adv, info = attack.perturb(module, X, y, return_info=True,
                                     check_input=False)
        with torch.no_grad(), eval_mode(module):
            correct = module(X_adv).argmax(dim=1) == y
        robust = correct & (info["n_correct_steps"] == attack.n_steps)
        return float(robust.float().mean())

    def _modules_and_optimizers(self, net):
        names = [*getattr(net, "_modules", ["module"]),
                 *getattr(net, "_criteria", []), *getattr(net, "_optimizers", [])]
        return {name: getattr(net, name + "_") for name in dict.fromkeys(names)
                if hasattr(getattr(net, name + "_", None), "state_dict")}

    def _save(self, net):
        self._saved_state = {name: _copy_state(part.state_dict()) for name, part
                             in self._modules_and_optimizers(net).items()}

    def on_epoch_end(self, net, **kwargs):
        if self._batch is None or not self._active(net):
            return
        acc = self.robust_accuracy(net, *self._batch)
        self._batch = None
        _, _, threshold = self._settings(net)
        fired = (self.reference_acc_ is not None
                 and acc - self.reference_acc_ < -threshold)
        net.history.record("co_robust_acc", acc)
        net.history.record("catastrophic_overfitting", bool(fired))
        if not fired:
            self.reference_acc_ = acc
            self._save(net)
            return
        for name, part in self._modules_and_optimizers(net).items():
            if name in self._saved_state:
                part.load_state_dict(self._saved_state[name])
        net.catastrophic_overfitting_ = True
        epoch = len(net.history)
        warnings.warn(
            f"{type(net).__name__}: catastrophic overfitting at epoch {epoch}: the "
            f"PGD accuracy of a training batch fell from {self.reference_acc_:.3f} "
            f"to {acc:.3f} (by more than {threshold:g}); the weights of epoch "
            f"{epoch - 1} are restored and training stops. A smaller step_size "
            "(alpha) or learning rate usually avoids it.", UserWarning,
            stacklevel=2)
        raise KeyboardInterrupt
