"""The shared base of the adversarially trained skorch classifiers."""

# SPDX-License-Identifier: BSD-3-Clause

import inspect
import numbers

import numpy as np
import torch
from sklearn.base import clone
from sklearn.preprocessing import LabelEncoder
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data
from skorch import NeuralNetClassifier
from skorch.callbacks import EpochScoring
from skorch.dataset import Dataset, unpack_data
from torch.utils.data import DataLoader
from skorch.utils import is_dataset, multi_indexing, to_tensor

from ..attacks import PGD
from ..attacks._base import BaseAttack
from ..nn import default_module
from ..utils._torch import fork_rng, seed_from_random_state
from ..utils._validation import check_clip_box, check_eps, check_in_box, check_norm

__all__ = ["BaseAdversarialClassifier"]


class _EncodedDataset(Dataset):
    """A skorch dataset that feeds integer class codes to the network.

    ``y`` keeps the user's labels, which is what skorch's scoring callbacks read
    back (so ``valid_acc`` and robust scorers compare ``predict`` with real labels),
    while ``__getitem__`` returns the codes used by the loss.
    """

    def __init__(self, X, y, y_codes):
        super().__init__(X, y_codes)
        self.y_codes = self.y
        self.y = y

    def __getitem__(self, i):
        Xi = multi_indexing(self.X, i, self.X_indexing)
        yi = multi_indexing(self.y_codes, i, self.y_indexing)
        return self.transform(Xi, yi)


class _ArrayBatches:
    """Mini-batches sliced from in-memory arrays, in a DataLoader's order.

    Shuffling draws a permutation from torch's global RNG, as ``DataLoader``
    does (``fit`` forks and seeds it when ``random_state`` is set).
    """

    def __init__(self, X, y, batch_size, shuffle=False, drop_last=False):
        self.X, self.y = X, y
        self.batch_size, self.shuffle, self.drop_last = batch_size, shuffle, drop_last

    def __len__(self):
        n, b = len(self.X), self.batch_size
        return n // b if self.drop_last else -(-n // b)

    def __iter__(self):
        n = len(self.X)
        order = torch.randperm(n).numpy() if self.shuffle else np.arange(n)
        for start in range(0, len(self) * self.batch_size, self.batch_size):
            idx = order[start:start + self.batch_size]
            if self.shuffle:
                yield torch.from_numpy(self.X[idx]), torch.from_numpy(self.y[idx])
            else:  # contiguous slices: no copy
                yield (torch.from_numpy(self.X[start:start + self.batch_size]),
                       torch.from_numpy(self.y[start:start + self.batch_size]))


def _check_int(value, name, low=1):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}.")


def _check_real(value, name, *, low=0.0, allow_none=False, strict=False):
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not (
            value > low if strict else value >= low) or not np.isfinite(value):
        op = ">" if strict else ">="
        raise ValueError(f"{name} must be a finite number {op} {low}"
                         f"{' or None' if allow_none else ''}, got {value!r}.")


class BaseAdversarialClassifier(NeuralNetClassifier):
    """Base class of the robust classifiers: skorch nets trained on attacked batches.

    It adds to :class:`skorch.NeuralNetClassifier` what every robust-training method
    shares: scikit-learn input validation and label encoding (labels of any type),
    the threat model as top-level parameters, a default network chosen from the
    input shape, a training attack ``attack_`` rebuilt at the start of each fit, and
    ``random_state`` honoured without touching the global RNG. A method only
    implements :meth:`robust_loss`; skorch's ``train_step`` keeps the optimizer
    closure, ``on_grad_computed`` and the step, so gradient clipping, LBFGS and
    callbacks keep working.

    Subclasses override :meth:`robust_loss` (and :meth:`default_attack` when their
    inner maximisation differs from cross-entropy PGD); they never copy the loop.
    """

    def __init__(self, module=None, *, criterion=torch.nn.CrossEntropyLoss,
                 optimizer=torch.optim.Adam, lr=1e-3, max_epochs=10, batch_size=128,
                 train_split=None, verbose=0, eps=0.3, norm="linf", n_steps=40,
                 step_size=0.01, random_start=True, clip_min=0.0, clip_max=1.0,
                 attack=None, random_state=None, **kwargs):
        # shuffle the training batches unless told otherwise (skorch does not)
        kwargs.setdefault("iterator_train__shuffle", True)
        super().__init__(module, criterion=criterion, optimizer=optimizer, lr=lr,
                         max_epochs=max_epochs, batch_size=batch_size,
                         train_split=train_split, verbose=verbose, **kwargs)
        self.eps = eps
        self.norm = norm
        self.n_steps = n_steps
        self.step_size = step_size
        self.random_start = random_start
        self.clip_min = clip_min
        self.clip_max = clip_max
        self.attack = attack
        self.random_state = random_state

    # ------------------------------------------------------------------ params
    def _check_params(self):
        """Validate the method's parameters (extended by subclasses)."""
        check_eps(self.eps)
        check_norm(self.norm)
        check_clip_box(self.clip_min, self.clip_max)
        _check_int(self.n_steps, "n_steps")
        _check_real(self.step_size, "step_size", allow_none=True, strict=True)
        if self.attack is not None and not isinstance(self.attack, BaseAttack):
            raise TypeError("attack must be None or an attack of "
                            f"sklearn_robust.attacks, got {self.attack!r}.")

    # ------------------------------------------------------------------ attack
    def default_attack(self):
        """The training attack built from the top-level parameters.

        Cross-entropy PGD; methods whose inner maximisation differs override this.
        """
        return self.pgd_attack()

    def pgd_attack(self, *, loss="ce", random_start=None, **overrides):
        """A :class:`~sklearn_robust.attacks.PGD` with the classifier's threat model.

        ``eps``, ``norm``, ``n_steps``, ``step_size``, ``random_start`` and the
        clip box come from the classifier; ``random_start`` and ``overrides``
        (e.g. ``n_steps``) replace them. ``loss="kl", random_start="normal"`` is
        the TRADES attack.
        """
        params = dict(eps=self.eps, norm=self.norm, n_steps=self.n_steps,
                      step_size=self.step_size,
                      random_start=(self.random_start if random_start is None
                                    else random_start),
                      loss=loss, clip_min=self.clip_min, clip_max=self.clip_max)
        params.update(overrides)
        return PGD(**params)

    def initialize_attack(self):
        """Build ``attack_``: ``attack`` (cloned) or :meth:`default_attack`.

        A user attack keeps its own procedure (steps, loss, restarts) but takes the
        classifier's threat model (``eps``, ``norm``, ``clip_min``, ``clip_max``).
        Its random stream is drawn from ``random_state`` so that every batch gets
        fresh, reproducible random starts.
        """
        if self.attack is None:
            attack = self.default_attack()
        else:
            attack = clone(self.attack)
            threat = dict(eps=self.eps, norm=self.norm, clip_min=self.clip_min,
                          clip_max=self.clip_max)
            names = attack.get_params()
            attack.set_params(**{k: v for k, v in threat.items() if k in names})
        if "random_state" in attack.get_params():
            seed = (None if self.random_state is None
                    else seed_from_random_state(self.random_state) + 1)
            attack.set_params(random_state=np.random.RandomState(seed))
        self.attack_ = attack
        return self

    def on_train_begin(self, net, X=None, y=None, **kwargs):
        # the net is notified before its callbacks: parameters changed with
        # set_params (eps, n_steps, ...) take effect at the next fit
        self.initialize_attack()

    @property
    def _default_callbacks(self):
        # skorch's cached valid_acc compares predictions (the user's labels) with
        # the cached batch targets (integer codes): score from fresh predictions
        # against the dataset's labels instead
        return [(name, EpochScoring("accuracy", name="valid_acc",
                                    lower_is_better=False, use_caching=False)
                 if name == "valid_acc" else cb)
                for name, cb in super()._default_callbacks]

    # ---------------------------------------------------------------- training
    def robust_loss(self, X, y, **fit_params):
        """Return ``(loss, y_pred)`` for one batch; the hook each method implements.

        Parameters
        ----------
        X : torch.Tensor
            The clean batch, on ``self.device``.
        y : torch.Tensor
            Integer class codes of the batch.
        **fit_params : dict
            Passed on to the module's ``forward``.

        Returns
        -------
        loss : torch.Tensor
            Scalar loss to back-propagate.
        y_pred : torch.Tensor
            The logits recorded by skorch for the batch.
        """
        raise NotImplementedError

    def train_step_single(self, batch, **fit_params):
        """One batch: the method's :meth:`robust_loss`, then ``backward``."""
        self._set_training(True)
        Xi, yi = unpack_data(batch)
        Xi = to_tensor(Xi, device=self.device)
        yi = to_tensor(yi, device=self.device)
        loss, y_pred = self.robust_loss(Xi, yi, **fit_params)
        loss.backward()
        return {"loss": loss, "y_pred": y_pred}

    def perturb(self, X, y):
        """Attack a clean batch with the training attack (module in eval mode)."""
        return self.attack_.perturb(self.module_, X, y, check_input=False)

    # ------------------------------------------------------------------ module
    def initialize_module(self):
        """Build ``module_``; without a ``module`` a default is chosen from the data.

        A module class whose ``__init__`` takes ``input_shape`` and/or ``n_classes``
        receives them from the training data unless given as ``module__*``.
        """
        kwargs = self.get_params_for("module")
        module = self.module
        needs = set()
        if module is None:
            needs = {"input_shape", "n_classes"}
        elif isinstance(module, type):
            names = inspect.signature(module.__init__).parameters
            needs = {n for n in ("input_shape", "n_classes") if n in names} - set(kwargs)
        if needs and not hasattr(self, "input_shape_"):
            raise ValueError(
                f"{type(self).__name__} needs the training data to build its module "
                "(input shape and number of classes): call fit(X, y) instead of "
                "initialize(), or pass a module instance.")
        fill = {"input_shape": getattr(self, "input_shape_", None),
                "n_classes": len(getattr(self, "classes_inferred_", ()))}
        kwargs = {**{n: fill[n] for n in needs}, **kwargs}
        if module is None:
            self.module_ = default_module(**kwargs)
        else:
            self.module_ = self.initialized_instance(module, kwargs)
        return self

    # -------------------------------------------------------------------- data
    def _check_input_shape(self, X, reset):
        if reset:
            self.input_shape_ = tuple(X.shape[1:])
        elif tuple(X.shape[1:]) != self.input_shape_:
            raise ValueError(f"X has samples of shape {tuple(X.shape[1:])}, but "
                             f"{type(self).__name__} was fitted on {self.input_shape_}.")

    def _check_X(self, X, reset):
        X = validate_data(self, X, reset=reset, dtype=np.float32, allow_nd=True)
        self._check_input_shape(X, reset)
        return X

    def _check_fit_data(self, X, y, reset):
        self._check_params()
        if y is None:
            raise ValueError(f"{type(self).__name__} requires y to be passed, "
                             "but the target y is None.")
        X, y = validate_data(self, X, y, reset=reset, dtype=np.float32, allow_nd=True)
        check_classification_targets(y)
        check_in_box(X, self.clip_min, self.clip_max)
        self._check_input_shape(X, reset)
        if reset:
            classes = np.unique(y)
            if len(classes) < 2:
                raise ValueError(
                    f"y has only one class ({classes[0]!r}); a classifier needs "
                    "samples of at least 2 classes.")
            self.label_encoder_ = LabelEncoder().fit(y)
            self.classes_inferred_ = self.label_encoder_.classes_
        else:
            unseen = np.setdiff1d(np.unique(y), self.label_encoder_.classes_)
            if len(unseen):
                raise ValueError(f"y contains labels not seen in the first fit: "
                                 f"{unseen.tolist()}.")
        return X, y

    def get_iterator(self, dataset, training=False):
        """Batches of the training set by slicing, when skorch's default allows it.

        For in-memory arrays and the default ``DataLoader`` (with at most
        ``batch_size``, ``shuffle`` and ``drop_last`` set) whole batches are sliced
        from the arrays instead of collated sample by sample, which yields the
        same batches at a fraction of the cost; anything else goes to skorch.
        """
        kwargs = self.get_params_for("iterator_train")
        if (training and type(dataset) is _EncodedDataset  # subclasses add fields
                and isinstance(dataset.X, np.ndarray)
                and self.iterator_train is DataLoader
                and set(kwargs) <= {"batch_size", "shuffle", "drop_last"}):
            batch_size = kwargs.get("batch_size", self.batch_size)
            if batch_size == -1:
                batch_size = len(dataset)
            return _ArrayBatches(dataset.X, dataset.y_codes, batch_size,
                                 shuffle=kwargs.get("shuffle", False),
                                 drop_last=kwargs.get("drop_last", False))
        return super().get_iterator(dataset, training=training)

    def get_dataset(self, X, y=None):
        if y is None or is_dataset(X) or not hasattr(self, "label_encoder_"):
            return super().get_dataset(X, y)
        codes = self.label_encoder_.transform(np.asarray(y)).astype(np.int64)
        return _EncodedDataset(X, y, codes)

    # ------------------------------------------------------------- public API
    def fit(self, X, y, **fit_params):
        """Train the network on adversarial batches of ``(X, y)`` from scratch.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or (n_samples, C, H, W)
            Training inputs, inside ``[clip_min, clip_max]``.
        y : array-like of shape (n_samples,)
            Class labels of any type.
        **fit_params : dict
            Passed to the module's ``forward`` (skorch convention).

        Returns
        -------
        self : object
            The fitted classifier.
        """
        X, y = self._check_fit_data(X, y, reset=True)
        seed = None if self.random_state is None else seed_from_random_state(
            self.random_state)
        with fork_rng(seed, self.device):
            super().fit(X, y, **fit_params)
        return self

    def partial_fit(self, X, y=None, classes=None, **fit_params):
        """Continue training on ``(X, y)`` (the first call behaves like ``fit``)."""
        first = not hasattr(self, "label_encoder_")
        X, y = self._check_fit_data(X, y, reset=first)
        return super().partial_fit(X, y, classes=classes, **fit_params)

    @property
    def classes_(self):
        try:
            return self.label_encoder_.classes_
        except AttributeError:
            raise AttributeError(f"{type(self).__name__} has no attribute 'classes_' "
                                 "before fit.") from None

    def predict_proba(self, X):
        """Class probabilities (softmax of the logits) for ``X``."""
        check_is_fitted(self, ["label_encoder_", "module_"])
        if not is_dataset(X):  # skorch's own callbacks pass validation datasets
            X = self._check_X(X, reset=False)
        return super().predict_proba(X)

    def predict(self, X):
        """Predicted class labels for ``X``."""
        proba = self.predict_proba(X)
        return self.classes_[np.asarray(proba).argmax(axis=1)]

    def decision_function(self, X):
        """The network's logits for ``X``.

        Returns
        -------
        scores : ndarray of shape (n_samples, n_classes) or (n_samples,)
            Logits; for two classes, scikit-learn's convention of one score per
            sample, the logit of ``classes_[1]`` minus that of ``classes_[0]``.
        """
        check_is_fitted(self, ["label_encoder_", "module_"])
        X = self._check_X(X, reset=False)
        with torch.no_grad():
            logits = [to_tensor(out, device="cpu") for out in self.forward_iter(X)]
        logits = torch.cat(logits).numpy()
        return logits[:, 1] - logits[:, 0] if logits.shape[1] == 2 else logits

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = False
        return tags
