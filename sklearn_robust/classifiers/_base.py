"""The shared base of the adversarially trained skorch classifiers."""

# SPDX-License-Identifier: BSD-3-Clause

import inspect
import json
import math
import numbers
import os
import warnings
from collections.abc import Mapping

import numpy as np
import torch
from sklearn.base import clone
from sklearn.preprocessing import LabelEncoder
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_array, check_is_fitted, validate_data
from skorch import NeuralNet, NeuralNetClassifier
from skorch.callbacks import EpochScoring, PrintLog
from skorch.dataset import Dataset, unpack_data
from skorch.utils import is_dataset, multi_indexing, to_numpy, to_tensor
from torch.utils.data import DataLoader

from ..attacks import PGD
from ..attacks._base import (
    ATTACK_CONSTRAINT,
    perturb_validated,
    set_threat_model,
    warn_if_unused_with_attack,
)
from ..exceptions import ThreatModelWarning
from ..nn import default_module
from ..utils._param_validation import (
    NON_NEGATIVE_INT,
    POSITIVE_INT,
    POSITIVE_REAL,
    THREAT_CONSTRAINTS,
    HasMethods,
    Options,
    StrOptions,
    TorchDevice,
    validate_parameter_constraints,
    validate_params,
)
from ..utils._sklearn_private import check_sample_weight
from ..utils._torch import (
    MAX_SEED,
    PRECISIONS,
    autocast,
    derive_seed,
    fork_rng,
    seed_from_random_state,
)
from ..utils._validation import (
    as_contiguous,
    check_clip_box,
    check_in_box,
    looks_standardised,
)
from ..utils._views import transformer_view

__all__ = ["BaseAdversarialClassifier"]

# skorch >= 1.4 tells its fit loop which entry point (fit or partial_fit) to route
_FIT_LOOP_ROUTES = "_routing_method" in inspect.signature(NeuralNet.fit_loop).parameters


class _Preprocessed(torch.nn.Module):
    """A network behind the fixed torch equivalent of a fitted preprocessor."""

    def __init__(self, preprocessing, network):
        super().__init__()
        self.preprocessing = preprocessing
        self.network = network

    def forward(self, x, **kwargs):
        return self.network(self.preprocessing(x).to(x.dtype), **kwargs)


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


class _WeightedDataset(_EncodedDataset):
    """Encoded dataset whose target also carries the user's sample weight.

    Batches come out as ``(X, {"y": codes, "sample_weight": weights})``; skorch
    moves the dict to the device and ``train_step_single`` unpacks it.
    """

    def __init__(self, X, y, y_codes, sample_weight):
        super().__init__(X, y, y_codes)
        self.sample_weight = sample_weight

    def __getitem__(self, i):
        Xi, yi = super().__getitem__(i)
        return Xi, {"y": yi, "sample_weight": self.sample_weight[i]}


_FITTED_FORMAT = "sklearn_robust.classifier-data-attributes/1"


def _write_text(f, text):
    """Write ``text`` to a path or to a text or binary file object."""
    if isinstance(f, str | os.PathLike):
        with open(f, "w", encoding="utf-8") as fh:
            fh.write(text)
        return
    try:
        f.write(text)
    except TypeError:
        f.write(text.encode("utf-8"))


def _read_fitted(f, caller_name):
    """The state written by ``save_params(f_fitted=...)``, checked."""
    if isinstance(f, str | os.PathLike):
        with open(f, encoding="utf-8") as fh:
            text = fh.read()
    else:
        text = f.read()
    if isinstance(text, bytes):
        text = text.decode("utf-8")
    try:
        state = json.loads(text)
    except ValueError as exc:
        raise ValueError(f"{caller_name}.load_params: f_fitted is not a file written "
                         f"by save_params(f_fitted=...): {exc}.") from exc
    if not isinstance(state, dict) or state.get("format") != _FITTED_FORMAT:
        raise ValueError(f"{caller_name}.load_params: f_fitted is not a file written "
                         "by save_params(f_fitted=...) (unknown format).")
    return state


def _unpack_target(y):
    """``(codes, sample_weight)`` of a batch target (``sample_weight`` may be None)."""
    if isinstance(y, Mapping):
        return y["y"], y["sample_weight"]
    return y, None


def _batch_codes(y):
    """Class codes of a batch target (EpochScoring's ``target_extractor``)."""
    return to_numpy(_unpack_target(y)[0])


def _normalised(log_w, n):
    """``n * softmax(log_w)``: weights summing to ``n`` (zeros if all are -inf)."""
    if not log_w.numel():
        return log_w
    # branch-free, so that no value is read on the host: all -inf gives w = 0
    top = log_w.max()
    w = torch.exp(log_w - torch.where(torch.isfinite(top), top, 0.0))
    total = w.sum()
    return w * torch.where(total > 0, n / total, 0.0)


class _PrintLog(PrintLog):
    """skorch's :class:`~skorch.callbacks.PrintLog`, formatting a row only when it
    is shown.

    skorch formats the epoch's table row (``tabulate``) even with ``verbose=0``,
    where it is not printed: about a millisecond per epoch. Here an epoch that
    prints nothing (``verbose=0`` and the default sink, ``print``) formats
    nothing; the header is then printed with the first row that is shown. With
    another sink every row is formatted and sent, as in skorch.
    """

    def on_epoch_end(self, net, **kwargs):
        if self.sink is print and not net.verbose:
            return
        super().on_epoch_end(net, **kwargs)


class _ArrayBatches:
    """Mini-batches sliced from in-memory arrays, in a DataLoader's order.

    Shuffling draws a permutation from torch's global RNG, as ``DataLoader``
    does (training forks and seeds it).
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


#: skorch's batch_size: an int >= 1, or -1 for one batch of all the data
_BATCH_SIZE = [POSITIVE_INT, Options(numbers.Integral, {-1})]
_ITERATOR_BATCH_SIZES = ("iterator_train__batch_size", "iterator_valid__batch_size")


def _check_device_available(device, caller_name):
    """A ValueError when ``device`` (a valid torch device) is not usable here."""
    if device is None:
        return
    dev = torch.device(device)
    backend = {"cuda": torch.cuda, "mps": getattr(torch.backends, "mps", None),
               "xpu": getattr(torch, "xpu", None)}.get(dev.type)
    if backend is None:
        return
    if not backend.is_available():
        raise ValueError(
            f"{caller_name}: device={device!r} is not available: this torch "
            f"({torch.__version__}) has no usable {dev.type} device "
            f"(torch.{'backends.' if dev.type == 'mps' else ''}{dev.type}"
            ".is_available() is False); use device='cpu'.")
    count = getattr(backend, "device_count", None)
    if dev.index is not None and count is not None and dev.index >= count():
        raise ValueError(
            f"{caller_name}: device={device!r} does not exist: {count()} "
            f"{dev.type} device(s) visible, numbered from 0.")


def _validate_attack(attack):
    """Validate a training attack's parameters (as its ``perturb`` would)."""
    check = getattr(attack, "_check_params", None)
    if check is not None:
        check()


def _check_module_param(module, caller_name):
    """A TypeError unless ``module`` is None, a torch module or a factory of one."""
    if module is None or isinstance(module, torch.nn.Module):
        return
    if isinstance(module, type):
        if issubclass(module, torch.nn.Module):
            return
    elif callable(module) and not isinstance(module, str):
        return  # a factory (function, functools.partial): its result is checked
    raise TypeError(
        f"{caller_name}: module must be None (a default network chosen from the "
        "data), a torch.nn.Module subclass, a torch.nn.Module instance or a "
        f"callable returning one, got {module!r}"
        + (" (a string: pass the class, e.g. sklearn_robust.nn.MLP)"
           if isinstance(module, str) else "") + ".")


def _channels_last_input(module, args):
    """Forward pre-hook: 4-D inputs in the channels-last memory layout."""
    if args and isinstance(args[0], torch.Tensor) and args[0].ndim == 4:
        return (args[0].contiguous(memory_format=torch.channels_last), *args[1:])
    return None


def to_channels_last(module):
    """``module`` with its 4-D parameters and its 4-D inputs in the channels-last
    (NHWC) memory layout; values and shapes are unchanged, convolutions may run
    faster (tensor cores on GPUs, oneDNN on CPUs)."""
    module = module.to(memory_format=torch.channels_last)
    module.register_forward_pre_hook(_channels_last_input)
    return module


class BaseAdversarialClassifier(NeuralNetClassifier):
    """Base class of the robust classifiers: skorch nets trained on attacked batches.

    It adds to :class:`skorch.NeuralNetClassifier` what every robust-training method
    shares: scikit-learn input validation and label encoding (labels of any type),
    the threat model as top-level parameters, a default network chosen from the
    input shape, a training attack ``attack_`` rebuilt at the start of each fit,
    scikit-learn-style ``sample_weight`` and ``random_state`` honoured without
    touching the global RNG. ``fit`` and ``partial_fit`` validate their input once,
    then train inside a forked RNG seeded from ``random_state``. A method only
    implements :meth:`robust_loss`; skorch's ``train_step`` keeps the optimizer
    closure, ``on_grad_computed`` and the step, so gradient clipping, LBFGS and
    callbacks keep working.

    Subclasses override :meth:`robust_loss` (and :meth:`default_attack` when their
    inner maximisation differs from cross-entropy PGD); they never copy the loop.

    Notes
    -----
    Parameters: ``fit`` and ``partial_fit`` also check the skorch parameters that
    skorch leaves unchecked: ``batch_size`` (an int >= 1, NumPy ints included,
    or -1 for a single batch; the same for ``iterator_train__batch_size`` and
    ``iterator_valid__batch_size``), ``max_epochs`` (an int >= 0), ``device`` (a
    torch device that exists on this machine, or None) and ``module`` (None, a
    :class:`torch.nn.Module` subclass or instance, or a callable returning one).

    Random numbers: ``random_state`` is an int in ``[0, 2**32 - 1]``, a
    :class:`numpy.random.RandomState` instance or None, as in scikit-learn;
    negative ints are rejected with a ValueError (by the attacks and the dataset
    learners too). Every ``fit``/``partial_fit`` call draws one seed: an int
    ``random_state`` is the seed of ``fit`` and of the first ``partial_fit``,
    and ``partial_fit`` call ``k`` (counted from 0 since the first one) uses a
    seed derived from ``(random_state, k)``, so a sequence of ``partial_fit``
    calls is reproducible across fresh estimators and no two calls replay the
    same shuffling, dropout masks or attack random starts (``fit`` starts the
    sequence again, as scikit-learn's estimators do). A RandomState instance,
    or None (NumPy's global RNG, so ``np.random.seed`` makes it reproducible),
    gives a new seed at every call. Training runs with torch's global CPU
    generator (and the CUDA generator of ``device``) forked and seeded with
    that seed and restored afterwards; the attacks get their own
    :class:`numpy.random.RandomState` streams from it. Hence ``fit`` and
    ``partial_fit`` never consume nor depend on the global torch RNG state, and
    ``predict``, ``predict_proba``, ``decision_function`` and ``score`` do not
    draw from it at all.

    Threads: torch's generators are process-global (network initialisation
    and dropout draw from them), so the forked training section holds a
    process-wide re-entrant lock: fits of separate estimators from several
    threads run one at a time and give exactly the weights of sequential fits
    with the same seeds (threads do not train in parallel; processes, e.g.
    joblib's default backend, do). Code outside the library that draws from
    torch's global RNG while a fit runs in another thread is not serialised.
    The module is left in eval mode after training and prediction never
    switches it back, so several threads may predict with or score one fitted
    classifier at the same time; fitting a classifier while another thread
    uses it is not supported.

    Persistence: pickling keeps everything. skorch's ``save_params`` /
    ``load_params`` store only the network, the optimizer and the history; pass
    ``f_fitted=`` to both to keep the classes and the input shape too, which a
    new instance needs to build its network and predict labels::

        clf.save_params(f_params="net.pt", f_fitted="fitted.json")
        new = type(clf)(**clf.get_params())
        new.load_params(f_params="net.pt", f_fitted="fitted.json")
    """

    def __init__(self, module=None, *, criterion=torch.nn.CrossEntropyLoss,
                 optimizer=torch.optim.Adam, lr=1e-3, max_epochs=10, batch_size=128,
                 train_split=None, verbose=0, eps=0.3, norm="linf", n_steps=40,
                 step_size=0.01, random_start=True, clip_min=0.0, clip_max=1.0,
                 attack=None, random_state=None, preprocessor=None, precision="fp32",
                 channels_last=False, **kwargs):
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
        self.preprocessor = preprocessor
        self.precision = precision
        self.channels_last = channels_last

    #: Slice training batches from in-memory arrays (see :meth:`get_iterator`);
    #: False where a ``DataLoader`` is needed (Accelerate shards it per process).
    _slice_batches = True

    def __repr__(self):
        """``Name(param=value, ...)`` of the parameters that differ from their
        defaults, as scikit-learn's repr (so the threat model shows), then the
        network once it is built."""
        defaults = {}
        for cls in reversed(type(self).__mro__):
            if "__init__" in vars(cls):
                defaults.update(
                    (name, p.default) for name, p in
                    inspect.signature(cls.__init__).parameters.items()
                    if p.default is not inspect.Parameter.empty)
        shown = []
        for name, value in self.get_params(deep=False).items():
            if name.startswith("_") or name == "iterator_train__shuffle" and value:
                continue
            if name in defaults:
                try:
                    if value is defaults[name] or bool(value == defaults[name]):
                        continue
                except (TypeError, ValueError):  # arrays and other objects
                    pass
            elif "__" not in name:
                continue
            shown.append(f"{name}={value!r}")
        text = f"{type(self).__name__}({', '.join(shown)})"
        if getattr(self, "initialized_", False):
            text += f" with module_={self.module_!r}"
        return text

    # ------------------------------------------------------------------ params
    #: Constraints of the library's own parameters (scikit-learn's style; skorch
    #: checks its own); subclasses merge them: ``{**Base._parameter_constraints, ...}``.
    _parameter_constraints = {
        **THREAT_CONSTRAINTS,
        "n_steps": [POSITIVE_INT],
        "step_size": [POSITIVE_REAL, None],
        "attack": ATTACK_CONSTRAINT,
        "preprocessor": [HasMethods(["fit", "transform"]), None],
        "precision": [StrOptions(set(PRECISIONS))],
        "channels_last": ["boolean"],
        # skorch's own parameters, which skorch does not check
        "batch_size": _BATCH_SIZE,
        "max_epochs": [NON_NEGATIVE_INT],
        "device": [TorchDevice(), None],
    }

    def _check_params(self):
        """Validate the declared constraints, then the relations between parameters.

        Subclasses with relations of their own extend it (calling ``super()``).
        """
        validate_params(self)
        name = type(self).__name__
        validate_parameter_constraints(
            {key: _BATCH_SIZE for key in _ITERATOR_BATCH_SIZES},
            {key: getattr(self, key) for key in _ITERATOR_BATCH_SIZES
             if hasattr(self, key)}, caller_name=name)
        _check_device_available(self.device, name)
        _check_module_param(self.module, name)
        check_clip_box(self.clip_min, self.clip_max)
        # they only build the default attack
        warn_if_unused_with_attack(self, ("n_steps", "step_size", "random_start"),
                                   stacklevel=4)

    # ------------------------------------------------------------------ attack
    def default_attack(self):
        """The training attack built from the top-level parameters.

        Cross-entropy PGD; methods whose inner maximisation differs override this.
        """
        return self.pgd_attack()

    def pgd_attack(self, *, loss="ce", random_start=None, warn_reach=True,
                   **overrides):
        """A :class:`~sklearn_robust.attacks.PGD` with the classifier's threat model.

        ``eps``, ``norm``, ``n_steps``, ``step_size``, ``random_start`` and the
        clip box come from the classifier, and with skorch's ``compile=True``
        the attack's step is compiled as the network is (``PGD(compile=True)``);
        ``random_start`` and ``overrides`` (e.g. ``n_steps``) replace them.
        ``loss="kl", random_start="normal"`` is the TRADES attack. Unless
        ``warn_reach`` is False, a UserWarning says when ``n_steps * step_size <
        eps`` (the steps cannot reach the edge of the ball from ``x``);
        single-step methods from a random start, where the step length is a
        choice of the method, turn it off.
        """
        params = dict(eps=self.eps, norm=self.norm, n_steps=self.n_steps,
                      step_size=self.step_size,
                      random_start=(self.random_start if random_start is None
                                    else random_start),
                      loss=loss, clip_min=self.clip_min, clip_max=self.clip_max,
                      compile=bool(getattr(self, "compile", False)))
        params.update(overrides)
        steps, size = params["n_steps"], params["step_size"]
        if (warn_reach and size is not None and params["eps"]
                and isinstance(steps, numbers.Integral)
                and isinstance(size, numbers.Real) and steps * size < params["eps"]):
            warnings.warn(
                f"{type(self).__name__}: the training attack's {steps} steps of "
                f"{size:g} travel at most {steps * size:g}, less than eps="
                f"{params['eps']:g}, so it cannot reach the edge of the threat "
                "model and trains against weaker attacks than eps says. Set "
                "step_size=None (2.5 * eps / n_steps, as Madry et al.) or a larger "
                "step_size.", UserWarning, stacklevel=4)
        return PGD(**params)

    def initialize_attack(self):
        """Build ``attack_``: ``attack`` (cloned) or :meth:`default_attack`.

        A user attack keeps its own procedure (steps, loss, restarts) but takes the
        classifier's threat model (``eps``, ``norm``, ``clip_min``, ``clip_max``).
        Its random stream, a :class:`numpy.random.RandomState` seeded from the
        training call's seed (see :meth:`training_random_state`), gives every batch
        fresh, reproducible random starts, and every ``partial_fit`` call new ones.
        """
        if self.attack is None:
            attack = self.default_attack()
        else:
            attack = set_threat_model(clone(self.attack), eps=self.eps, norm=self.norm,
                                      clip_min=self.clip_min, clip_max=self.clip_max)
        if "random_state" in attack.get_params():
            attack.set_params(random_state=self.training_random_state(1))
        _validate_attack(attack)
        self.attack_ = attack
        return self

    def training_random_state(self, offset):
        """A :class:`numpy.random.RandomState` for one random component of training.

        Seeded with ``(seed + offset) mod 2**32``, where ``seed`` is the torch seed
        of the current ``fit``/``partial_fit`` call; ``offset`` tells the
        components apart (1: the training attack; subclasses use 2, 3, ...).
        Outside a training call ``seed`` comes from ``random_state``.
        """
        seed = getattr(self, "_train_seed", None)
        if seed is None:
            seed = seed_from_random_state(self.random_state)
        return np.random.RandomState((seed + offset) % (MAX_SEED + 1))

    def on_train_begin(self, net, X=None, y=None, **kwargs):
        # the net is notified before its callbacks: parameters changed with
        # set_params (eps, n_steps, ...) take effect at the next fit
        self.initialize_attack()

    @property
    def _default_callbacks(self):
        # skorch's cached valid_acc compares predictions (the user's labels) with
        # the cached batch targets (integer codes): score from fresh predictions
        # against the dataset's labels instead (batch targets of a sample-weighted
        # fit are dicts: the extractor takes their codes)
        # the epoch log is formatted only when it is shown (see _PrintLog)
        callbacks = []
        for name, cb in super()._default_callbacks:
            if name == "valid_acc":
                cb = EpochScoring("accuracy", name="valid_acc", lower_is_better=False,
                                  use_caching=False, target_extractor=_batch_codes)
            elif name == "print_log" and type(cb) is PrintLog:
                cb = _PrintLog()
            callbacks.append((name, cb))
        return callbacks

    # ---------------------------------------------------------------- training
    def robust_loss(self, X, y, sample_weight=None, **fit_params):
        """Return ``(loss, y_pred)`` for one batch; the hook each method implements.

        Parameters
        ----------
        X : torch.Tensor
            The clean batch, on ``self.device``.
        y : torch.Tensor
            Integer class codes of the batch.
        sample_weight : torch.Tensor or None, default=None
            The user's weights of the batch's samples (``fit(...,
            sample_weight=...)``); :meth:`loss_weights` turns them into the
            weights of the per-sample loss terms.
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
        yi, sample_weight = _unpack_target(to_tensor(yi, device=self.device))
        with autocast(self.precision, Xi.device):
            loss, y_pred = self.robust_loss(Xi, yi, sample_weight=sample_weight,
                                            **fit_params)
        self.backward(loss)
        # read after the backward pass is queued, so that a GPU is not idle while
        # it is launched, and before the optimizer's step, which a non-finite
        # loss never reaches; skorch reads the loss for the history anyway
        if not math.isfinite(loss.item()):
            # as scikit-learn's SGD estimators: a diverged fit is an error, not a
            # model of NaN weights
            raise ValueError(
                f"{type(self).__name__}: the training loss is {float(loss)} at epoch "
                f"{len(self.history)}; the optimisation diverged. Lower the learning "
                "rate (lr) or the weights of the loss terms (e.g. beta), or check "
                "the scale of X.")
        return {"loss": loss, "y_pred": y_pred}

    def backward(self, loss):
        """Back-propagate a batch's loss (``loss.backward()``, scaled by the
        gradient scaler with ``precision="fp16"``; Accelerate's own ``backward``
        under :class:`AccelerateMixin`)."""
        scaler = getattr(self, "grad_scaler_", None)
        (loss if scaler is None else scaler.scale(loss)).backward()

    def _step_optimizer(self, step_fn):
        """skorch's optimizer step; with ``precision="fp16"`` the gradient scaler's
        (unscale, skip the step on inf/NaN gradients, update the scale)."""
        scaler = getattr(self, "grad_scaler_", None)
        if scaler is None:
            return super()._step_optimizer(step_fn)
        step_fn()
        for name in self._optimizers:
            scaler.step(getattr(self, name + "_"))
        scaler.update()
        return None

    def initialize_optimizer(self, *args, **kwargs):
        """skorch's optimizer, and ``grad_scaler_`` for ``precision="fp16"``."""
        super().initialize_optimizer(*args, **kwargs)
        if self.precision == "fp16":
            device = torch.device(self.device or "cpu").type
            self.grad_scaler_ = torch.amp.GradScaler(device)
        elif hasattr(self, "grad_scaler_"):
            del self.grad_scaler_
        return self

    # ---------------------------------------------------------- sample weights
    @staticmethod
    def loss_weights(sample_weight, log_weights=None):
        """Per-sample loss weights of a batch, normalised to sum to its size.

        The product of the user's ``sample_weight`` and ``exp(log_weights)`` (a
        method's own per-sample weights, e.g. GAIR's), either of which may be
        None, divided by its mean. Computed in log space in float64, so a batch
        whose weights all underflow is still normalised; a batch of zero weights
        gets zeros.

        Returns
        -------
        weights : torch.Tensor of float64 or None
            None when both arguments are None (the unweighted loss).
        """
        if sample_weight is None and log_weights is None:
            return None
        log_w = 0.0 if log_weights is None else log_weights
        if sample_weight is not None:
            log_w = log_w + torch.log(sample_weight.to(torch.float64))
        return _normalised(log_w, len(log_w))

    def per_sample_loss(self, y_pred, y, X=None):
        """Per-sample criterion values and the criterion's own reduction.

        The criterion instance is switched to ``reduction="none"`` for the call.
        """
        crit = self.criterion_
        reduction = getattr(crit, "reduction", None)
        if reduction not in ("mean", "sum"):
            raise TypeError(
                f"{type(self).__name__} reweights per-sample losses: the criterion "
                "must have a 'reduction' attribute set to 'mean' or 'sum' (as the "
                f"torch losses do), got {type(crit).__name__} with reduction "
                f"{reduction!r}.")
        crit.reduction = "none"
        try:
            losses = self.get_loss(y_pred, y, X=X, training=True)
        finally:
            crit.reduction = reduction
        if losses.shape != (y_pred.shape[0],):
            raise ValueError(
                "The criterion with reduction='none' must return one loss per "
                f"sample, got shape {tuple(losses.shape)}.")
        return losses, reduction

    def weighted_loss(self, y_pred, y, weights, X=None):
        """Criterion values weighted per sample, reduced like the criterion."""
        losses, reduction = self.per_sample_loss(y_pred, y, X=X)
        weighted = losses * weights.to(losses.dtype)
        return weighted.mean() if reduction == "mean" else weighted.sum()

    def criterion_loss(self, y_pred, y, weights=None, X=None):
        """The training criterion on a batch, weighted per sample unless ``weights``
        is None (then exactly skorch's ``get_loss``)."""
        if weights is None:
            return self.get_loss(y_pred, y, X=X, training=True)
        return self.weighted_loss(y_pred, y, weights, X=X)

    @staticmethod
    def batch_mean(values, weights=None):
        """Mean of per-sample ``values`` over the batch, weighted by ``weights``."""
        if weights is None:
            return values.mean()
        return (values * weights.to(values.device, values.dtype)).mean()

    def get_loss(self, y_pred, y_true, X=None, training=False):
        # validation batches of a sample-weighted fit carry the weights too
        if isinstance(y_true, Mapping):
            y, sample_weight = _unpack_target(to_tensor(y_true, device=self.device))
            return self.weighted_loss(y_pred, y, self.loss_weights(sample_weight),
                                      X=X)
        return super().get_loss(y_pred, y_true, X=X, training=training)

    def perturb(self, X, y):
        """Attack a clean batch of class codes with the training attack (module in
        eval mode)."""
        return self._run_attack(self.attack_, X, y)

    def _run_attack(self, attack, X, y, *, return_info=False):
        """``attack.perturb`` of a batch on :attr:`attacked_module_`, input unchecked.

        During a training call the training attacks' parameters were validated
        when the attacks were built at its start (:meth:`initialize_attack`), so
        they are not validated again at every batch; outside training ``perturb``
        validates them as usual.
        """
        module = self.attacked_module_
        if getattr(self, "_train_seed", None) is None:
            return attack.perturb(module, X, y, return_info=return_info,
                                  check_input=False)
        # the model's outputs are checked to be logits on the first batch of a
        # training call only: the check reads device values on the host
        first, self._logits_checked = not self._logits_checked, True
        return perturb_validated(attack, module, X, y, return_info=return_info,
                                 check_logits=first)

    @property
    def attacked_module_(self):
        """The network the training attacks run on: ``module_``, unwrapped from a
        data-parallel wrapper (see :class:`AccelerateMixin`), so that an attack's
        input gradients never trigger a gradient synchronisation."""
        return self.module_

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
            needs = ({n for n in ("input_shape", "n_classes") if n in names}
                     - set(kwargs))
        if needs and not hasattr(self, "input_shape_"):
            raise ValueError(
                f"{type(self).__name__} needs the training data to build its module "
                "(input shape and number of classes): call fit(X, y) instead of "
                "initialize(), pass a module instance, or restore them with "
                "load_params(f_fitted=...) from a file of save_params(f_fitted=...).")
        prep = self._preprocessing_module()
        shape = getattr(self, "input_shape_", None)
        if prep is not None and shape is not None:
            with torch.no_grad():  # the shape the network sees after preprocessing
                shape = tuple(prep(torch.zeros((1, *shape))).shape[1:])
        fill = {"input_shape": shape,
                "n_classes": len(getattr(self, "classes_inferred_", ()))}
        kwargs = {**{n: fill[n] for n in needs}, **kwargs}
        if module is None:
            self.module_ = default_module(**kwargs)
        else:
            self.module_ = self.initialized_instance(module, kwargs)
        if not isinstance(self.module_, torch.nn.Module):
            raise TypeError(f"{type(self).__name__}: module {module!r} returned "
                            f"{type(self.module_).__name__}, not a torch.nn.Module.")
        if prep is not None:
            self.module_ = _Preprocessed(prep, self.module_)
        if self.channels_last:
            self.module_ = to_channels_last(self.module_)
        return self

    def _preprocessing_module(self):
        """The torch equivalent of the fitted ``preprocessor_`` (None without one)."""
        if self.preprocessor is None:
            return None
        if not hasattr(self, "preprocessor_"):
            raise ValueError(
                f"{type(self).__name__} with a preprocessor needs the training data "
                "to fit it: call fit(X, y) (save_params/load_params do not store "
                "the preprocessor; pickle the fitted classifier instead).")
        return transformer_view(self.preprocessor_)

    def _fit_preprocessor(self, X, y):
        """Fit ``preprocessor_`` on the flat training inputs (see ``preprocessor``)."""
        if self.preprocessor is None:
            if hasattr(self, "preprocessor_"):
                del self.preprocessor_
            return
        prep = clone(self.preprocessor).fit(X.reshape(len(X), -1), y)
        if transformer_view(prep) is None:
            raise ValueError(
                f"preprocessor {type(prep).__name__} has no exact torch equivalent, "
                "so it cannot run inside the model; supported are StandardScaler, "
                "MinMaxScaler (without clip), MaxAbsScaler, PCA, FunctionTransformer "
                "without a function, and pipelines, FeatureUnion or "
                "ColumnTransformer of them.")
        self.preprocessor_ = prep

    # -------------------------------------------------------------------- data
    def _check_input_shape(self, X, reset):
        if reset:
            self.input_shape_ = tuple(X.shape[1:])
        elif tuple(X.shape[1:]) != self.input_shape_:
            raise ValueError(f"X has samples of shape {tuple(X.shape[1:])}, but "
                             f"{type(self).__name__} was fitted on "
                             f"{self.input_shape_}.")

    def _warn_if_standardised(self, X):
        """Warn when ``X`` looks standardised and the clip box is open (see
        :class:`~sklearn_robust.exceptions.ThreatModelWarning`)."""
        if (self.preprocessor is not None or self.clip_min is not None
                or self.clip_max is not None or not self.eps):
            return
        if looks_standardised(X):
            warnings.warn(
                f"{type(self).__name__} is trained on inputs that look standardised "
                f"(zero mean, unit variance per feature) with an open clip box, so "
                f"eps={self.eps} is measured in standard deviations of each "
                "feature. If a scaler precedes it in a Pipeline, the scorers attack "
                "the pipeline's raw inputs, with eps in raw units: pass the scaler "
                "as preprocessor= instead (it then runs inside the model) and keep "
                "the raw inputs' clip box.", ThreatModelWarning, stacklevel=4)

    def _check_X(self, X, reset):
        if not reset and getattr(self, "_train_seed", None) is not None:
            # during training: arrays that skorch's callbacks slice from the
            # validated training data, whose feature names were dropped
            X = check_array(X, dtype=np.float32, allow_nd=True)
        else:
            X = validate_data(self, X, reset=reset, dtype=np.float32, allow_nd=True)
        self._check_input_shape(X, reset)
        return as_contiguous(X)

    def _check_fit_data(self, X, y, sample_weight, reset, classes=None):
        """Validate parameters and training data once per ``fit``/``partial_fit``.

        ``classes`` (``partial_fit``'s, else skorch's constructor parameter
        ``classes``) fixes the classes at the first call and must repeat them at
        later ones. Returns ``X``, ``y`` and
        ``sample_weight`` (None, or float32 weights).
        """
        self._check_params()
        if y is None:
            raise ValueError(f"{type(self).__name__} requires y to be passed, "
                             "but the target y is None.")
        X, y = validate_data(self, X, y, reset=reset, dtype=np.float32, allow_nd=True)
        X = as_contiguous(X)
        check_classification_targets(y)
        check_in_box(X, self.clip_min, self.clip_max)
        self._check_input_shape(X, reset)
        if reset:
            self._fit_preprocessor(X, y)
            self._warn_if_standardised(X)
        if sample_weight is not None:
            sample_weight = check_sample_weight(sample_weight, X, dtype=np.float32,
                                                ensure_non_negative=True)
        if classes is None and getattr(self, "classes", None) is not None:
            classes = self.classes  # skorch's constructor parameter, as partial_fit's
        if classes is not None:
            classes = self._check_classes(classes, reset)
            outside = np.setdiff1d(np.unique(y), classes)
            if len(outside):
                raise ValueError(f"y contains labels that are not in classes: "
                                 f"{outside.tolist()} (classes={classes.tolist()}).")
            if reset:
                self.label_encoder_ = LabelEncoder().fit(classes)
                self.classes_inferred_ = self.label_encoder_.classes_
        elif reset:
            classes = np.unique(y)
            if len(classes) < 2:
                raise ValueError(
                    f"y has only one class ({classes[0]!r}); a classifier needs "
                    "samples of at least 2 classes.")
            if sample_weight is not None and len(np.unique(y[sample_weight > 0])) < 2:
                raise ValueError(
                    "sample_weight leaves only one class with a positive weight; "
                    "a classifier needs samples of at least 2 classes with "
                    "positive weights.")
            self.label_encoder_ = LabelEncoder().fit(y)
            self.classes_inferred_ = self.label_encoder_.classes_
        else:
            unseen = np.setdiff1d(np.unique(y), self.label_encoder_.classes_)
            if len(unseen):
                raise ValueError(f"y contains labels not seen in the first fit: "
                                 f"{unseen.tolist()} (the classes are "
                                 f"{self.classes_.tolist()}; pass every label "
                                 "as classes= to the first partial_fit).")
        return X, y, sample_weight

    def _check_classes(self, classes, reset):
        """``partial_fit``'s ``classes`` as a sorted array of unique labels."""
        try:
            values = np.asarray(classes)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"classes must be a 1-D array-like of labels, got "
                             f"{classes!r}.") from exc
        if values.ndim != 1:
            raise ValueError(f"classes must be a 1-D array-like of labels, got an "
                             f"array of shape {values.shape}.")
        check_classification_targets(values)
        values = np.unique(values)
        if reset and len(values) < 2:
            raise ValueError(f"classes must hold at least 2 labels, got "
                             f"{values.tolist()}.")
        if not reset and not np.array_equal(values, self.classes_):
            raise ValueError(f"classes={values.tolist()} is not the same as the "
                             f"classes of the first partial_fit call, "
                             f"{self.classes_.tolist()}.")
        return values

    def get_iterator(self, dataset, training=False):
        """The batches of ``dataset``: skorch's iterator, with three differences.

        For the training set of in-memory arrays and the default ``DataLoader``
        (with at most ``batch_size``, ``shuffle`` and ``drop_last`` set) whole
        batches are sliced from the arrays instead of collated sample by sample,
        which yields the same batches at a fraction of the cost. The batch size
        is passed on as a Python int (NumPy integers are accepted). The default
        ``DataLoader`` of prediction and validation draws its base seed from a
        private generator, so predicting never advances torch's global RNG.
        """
        prefix = "iterator_train" if training else "iterator_valid"
        kwargs, iterator = self.get_params_for(prefix), getattr(self, prefix)
        batch_size = kwargs.pop("batch_size", self.batch_size)
        batch_size = len(dataset) if batch_size == -1 else int(batch_size)
        if (training and self._slice_batches
                and type(dataset) is _EncodedDataset  # subclasses add fields
                and isinstance(dataset.X, np.ndarray)
                and iterator is DataLoader
                and set(kwargs) <= {"shuffle", "drop_last"}):
            return _ArrayBatches(dataset.X, dataset.y_codes, batch_size,
                                 shuffle=kwargs.get("shuffle", False),
                                 drop_last=kwargs.get("drop_last", False))
        if not training and iterator is DataLoader and "generator" not in kwargs:
            kwargs["generator"] = torch.Generator()
        return iterator(dataset, batch_size=batch_size, **kwargs)

    def get_dataset(self, X, y=None, sample_weight=None):
        """skorch's dataset of ``(X, y)``; with labels, one that feeds class codes.

        With ``sample_weight`` each batch target is ``{"y": codes,
        "sample_weight": weights}``.
        """
        if y is None or is_dataset(X) or not hasattr(self, "label_encoder_"):
            return super().get_dataset(X, y)
        codes = self.label_encoder_.transform(np.asarray(y)).astype(np.int64)
        if sample_weight is None:
            return _EncodedDataset(X, y, codes)
        return _WeightedDataset(X, y, codes, sample_weight)

    # ------------------------------------------------------------- public API
    def fit(self, X, y, sample_weight=None, **fit_params):
        """Train the network on adversarial batches of ``(X, y)`` from scratch.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or (n_samples, C, H, W)
            Training inputs, inside ``[clip_min, clip_max]``.
        y : array-like of shape (n_samples,)
            Class labels of any type.
        sample_weight : array-like of shape (n_samples,), default=None
            Non-negative weights of the samples. They multiply the per-sample
            training loss; the weights of each batch are normalised to sum to its
            size, so a batch's loss is the weighted mean (for the default
            ``reduction="mean"``). The internal validation loss (``train_split``)
            is weighted too. The criterion must accept ``reduction="none"``.
        **fit_params : dict
            Passed to the module's ``forward`` (skorch convention).

        Returns
        -------
        self : object
            The fitted classifier.
        """
        X, y, sample_weight = self._check_fit_data(X, y, sample_weight, reset=True)
        fresh = not self.warm_start or not self.initialized_
        return self._train(X, y, sample_weight, fit_params, initialize=fresh,
                           routing="fit", restart=True)

    def partial_fit(self, X, y=None, classes=None, sample_weight=None, **fit_params):
        """Continue training on ``(X, y)`` (the first call behaves like ``fit``).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or (n_samples, C, H, W)
            Training inputs, inside ``[clip_min, clip_max]``.
        y : array-like of shape (n_samples,)
            Class labels; at later calls a subset of the classes.
        classes : array-like of shape (n_classes,), default=None
            Every label of the task, as in scikit-learn's ``partial_fit``. At the
            first call it fixes ``classes_`` (``y`` may then hold only some of
            them, even one); at later calls it may be omitted or repeated (a
            different set is a ValueError). Without it the first call takes the
            classes of its ``y``. A label of ``y`` outside the classes is a
            ValueError.
        sample_weight : array-like of shape (n_samples,), default=None
            As in :meth:`fit`.
        **fit_params : dict
            Passed to the module's ``forward``.

        Returns
        -------
        self : object
            The classifier.
        """
        first = not hasattr(self, "label_encoder_")
        X, y, sample_weight = self._check_fit_data(X, y, sample_weight, reset=first,
                                                   classes=classes)
        return self._train(X, y, sample_weight, fit_params,
                           initialize=not self.initialized_, routing="partial_fit",
                           restart=first)

    def _next_train_seed(self, restart):
        """The torch seed of this training call (see the class's Notes).

        An int ``random_state`` seeds the first call (``fit``, or the first
        ``partial_fit``) with itself and the ``k``-th later ``partial_fit`` with
        ``derive_seed(random_state, k)``; a RandomState instance or None gives a
        new seed drawn from it (from NumPy's global RNG) at every call.
        """
        calls = 0 if restart else getattr(self, "_n_train_calls", 0)
        seed = seed_from_random_state(self.random_state,
                                      name=f"{type(self).__name__}: random_state")
        self._n_train_calls = calls + 1
        if isinstance(self.random_state, numbers.Integral) and calls:
            seed = derive_seed(seed, calls)
        return seed

    def _train(self, X, y, sample_weight, fit_params, *, initialize, routing,
               restart):
        """skorch's training on validated data, in a forked, seeded RNG.

        This is skorch's ``partial_fit`` (callbacks see the arrays ``X`` and
        ``y``), with the training set built once, sample weights included. The
        module is left in eval mode.
        """
        dataset = self.get_dataset(X, y, sample_weight=sample_weight)
        if _FIT_LOOP_ROUTES:
            fit_params = {**fit_params, "_routing_method": routing}
        seed = self._next_train_seed(restart)
        with fork_rng(seed, self.device):
            self._train_seed = seed
            self._logits_checked = False
            try:
                self._check_training_step()
                if initialize:
                    self.initialize()
                self._check_callbacks_have_validation_data()
                self.notify("on_train_begin", X=X, y=y)
                try:
                    self.fit_loop(dataset, y, **fit_params)
                except KeyboardInterrupt:
                    pass
                self.notify("on_train_end", X=X, y=y)
            finally:
                self._train_seed = None
                if self.initialized_:
                    # predictions and attacks run in eval mode: a fitted module
                    # in eval mode is never switched by concurrent predictions
                    self._set_training(False)
        return self

    def _check_training_step(self):
        """Refuse a mixin that replaces the training step of the robust methods.

        skorch's ``train_step_single`` computes the plain loss: a mixin from
        outside the library that overrides it (skorch's own ``AccelerateMixin``)
        would train a non-robust network without a word. Subclasses of the
        library's classifiers may override it.
        """
        for cls in type(self).__mro__:
            if "train_step_single" in vars(cls):
                break
        if issubclass(cls, BaseAdversarialClassifier) or cls.__module__.startswith(
                "sklearn_robust."):
            return
        fix = (" Use sklearn_robust.classifiers.AccelerateMixin instead, which "
               "keeps the robust loss." if cls.__name__ == "AccelerateMixin" else "")
        raise TypeError(
            f"{type(self).__name__} takes its training step from "
            f"{cls.__module__}.{cls.__name__}, which computes skorch's plain loss "
            f"and would train a non-robust network.{fix}")

    def _check_callbacks_have_validation_data(self):
        """A callback monitoring a ``valid_*`` key needs a validation split.

        skorch would fail at the end of the first epoch with a ``KeyError`` on the
        history; this names the fix before training starts.
        """
        if self.train_split is not None:
            return
        for name, callback in getattr(self, "callbacks_", []):
            monitor = getattr(callback, "monitor", None)
            if isinstance(monitor, str) and monitor.startswith("valid_"):
                raise ValueError(
                    f"Callback {name!r} monitors {monitor!r}, which needs a "
                    f"validation split, but {type(self).__name__} trains on all the "
                    "data by default (train_split=None). Pass e.g. "
                    "train_split=skorch.dataset.ValidSplit(0.2), or monitor a "
                    "training key (e.g. monitor='train_loss').")

    # ------------------------------------------------------------ persistence
    def save_params(self, f_params=None, f_optimizer=None, f_criterion=None,
                    f_history=None, use_safetensors=False, *, f_fitted=None,
                    **kwargs):
        """Save the network's parameters, optimizer, criterion, history and data
        attributes (skorch's ``save_params`` with ``f_fitted``).

        Parameters
        ----------
        f_params, f_optimizer, f_criterion, f_history : str, path or file, \
default=None
            As in :meth:`skorch.NeuralNet.save_params` (``None``: not saved).
        use_safetensors : bool, default=False
            As in skorch (for the ``state_dict`` files).
        f_fitted : str, path or file, default=None
            Where to write, as JSON, what the classifier learned from the data
            besides the network: ``classes_``, ``input_shape_``,
            ``n_features_in_`` and ``feature_names_in_``. :meth:`load_params`
            needs it to build the default network and to predict labels.
        **kwargs : dict
            skorch's ``f_<name>`` for further modules, optimizers or criteria.
        """
        if f_fitted is not None:
            check_is_fitted(self, ["label_encoder_", "input_shape_"])
            if self.preprocessor is not None:
                raise ValueError(
                    "save_params(f_fitted=...) does not store the fitted "
                    "preprocessor; pickle the fitted classifier instead (pickle or "
                    "joblib.dump).")
            state = {"format": _FITTED_FORMAT, "estimator": type(self).__name__,
                     "classes": self.classes_.tolist(),
                     "classes_dtype": self.classes_.dtype.str,
                     "input_shape": list(self.input_shape_),
                     "n_features_in": int(getattr(self, "n_features_in_",
                                                  np.prod(self.input_shape_))),
                     "feature_names_in": (self.feature_names_in_.tolist()
                                          if hasattr(self, "feature_names_in_")
                                          else None)}
            try:
                text = json.dumps(state)
            except TypeError as exc:
                raise TypeError(
                    f"The classes of {type(self).__name__} cannot be written as "
                    f"JSON ({exc}); pickle the whole estimator instead.") from exc
            _write_text(f_fitted, text)
        if any(f is not None for f in (f_params, f_optimizer, f_criterion,
                                       f_history, *kwargs.values())):
            super().save_params(f_params=f_params, f_optimizer=f_optimizer,
                                f_criterion=f_criterion, f_history=f_history,
                                use_safetensors=use_safetensors, **kwargs)

    def load_params(self, f_params=None, f_optimizer=None, f_criterion=None,
                    f_history=None, checkpoint=None, use_safetensors=False, *,
                    f_fitted=None, **kwargs):
        """Load what :meth:`save_params` saved, into a fitted or a new classifier.

        With ``f_fitted`` the data attributes are restored first and the network
        is built from them (in a forked RNG seeded from ``random_state``) unless
        an initialised one of the same input shape and classes is there, so a
        new instance constructed with the same parameters predicts like the
        saved one after ``load_params(f_params=..., f_fitted=...)``::

            clf.save_params(f_params="net.pt", f_fitted="fitted.json")
            new = AdversarialClassifier(**params)          # not fitted
            new.load_params(f_params="net.pt", f_fitted="fitted.json")

        The module is left in eval mode. Other arguments are those of
        :meth:`skorch.NeuralNet.load_params`; the optimizer state and the history
        (``f_optimizer``, ``f_history``) let :meth:`partial_fit` continue.
        """
        if f_fitted is not None:
            state = _read_fitted(f_fitted, type(self).__name__)
            before = (getattr(self, "input_shape_", None),
                      getattr(self, "label_encoder_", None)
                      and self.label_encoder_.classes_.tolist())
            self._restore_fitted(state)
            after = (self.input_shape_, self.classes_.tolist())
            if not self.initialized_ or before != after:
                self._check_params()
                with fork_rng(seed_from_random_state(self.random_state),
                              self.device):
                    self.initialize()
        super().load_params(f_params=f_params, f_optimizer=f_optimizer,
                            f_criterion=f_criterion, f_history=f_history,
                            checkpoint=checkpoint, use_safetensors=use_safetensors,
                            **kwargs)
        if self.initialized_:
            self._set_training(False)

    def _restore_fitted(self, state):
        """Set the data attributes written by ``save_params(f_fitted=...)``."""
        classes = np.asarray(state["classes"], dtype=np.dtype(state["classes_dtype"]))
        self.label_encoder_ = LabelEncoder().fit(classes)
        self.classes_inferred_ = self.label_encoder_.classes_
        self.input_shape_ = tuple(int(d) for d in state["input_shape"])
        self.n_features_in_ = int(state["n_features_in"])
        if state.get("feature_names_in") is not None:
            self.feature_names_in_ = np.asarray(state["feature_names_in"],
                                                dtype=object)
        elif hasattr(self, "feature_names_in_"):
            del self.feature_names_in_
        self._n_train_calls = 1   # a later partial_fit continues, with new seeds

    @property
    def classes_(self):
        try:
            return self.label_encoder_.classes_
        except AttributeError:
            raise AttributeError(f"{type(self).__name__} has no attribute 'classes_' "
                                 "before fit.") from None

    def predict_proba(self, X):
        """Class probabilities (softmax of the logits) for ``X``."""
        self._check_is_fitted()
        if not is_dataset(X):  # skorch's own callbacks pass validation datasets
            X = self._check_X(X, reset=False)
        return super().predict_proba(X)

    def _check_is_fitted(self):
        check_is_fitted(
            self, ["label_encoder_", "module_"],
            msg=(f"This {type(self).__name__} instance is not fitted yet: call fit "
                 "or partial_fit first, or load_params(f_params=..., "
                 "f_fitted=...) with the files of save_params (f_fitted holds "
                 "the classes)."))

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
        self._check_is_fitted()
        X = self._check_X(X, reset=False)
        with torch.no_grad():
            logits = [to_tensor(out, device="cpu") for out in self.forward_iter(X)]
        logits = torch.cat(logits).numpy()
        return logits[:, 1] - logits[:, 0] if logits.shape[1] == 2 else logits

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = False
        return tags
