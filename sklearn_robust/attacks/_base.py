"""The attack base class: one stateless ``perturb(model, X, y)`` contract."""

# SPDX-License-Identifier: BSD-3-Clause

import contextlib
import contextvars
import inspect
import warnings

import numpy as np
import torch
from sklearn.base import BaseEstimator

from ..exceptions import NotLogitsWarning
from ..utils._param_validation import THREAT_CONSTRAINTS, InstanceOf, validate_params
from ..utils._torch import eval_mode, make_generator
from ..utils._validation import (
    check_class_codes,
    check_clip_box,
    check_float_tensor,
    check_in_box,
)

__all__ = ["ATTACK_CONSTRAINT", "BaseAttack", "is_attack", "perturb_validated",
           "predict_labels"]


def is_attack(obj):
    """True if ``obj`` follows the attack contract (has ``perturb``)."""
    return callable(getattr(obj, "perturb", None))


def predict_labels(model, x, batch_size=1024, device=None):
    """Predicted class indices of ``model`` on ``x``, in batches, without gradients.

    ``model`` may return logits, a 1-D binary decision function or a NumPy array;
    batches are evaluated on ``device`` (default: that of ``x``) and the labels
    come back to the device of ``x``.
    """
    with torch.no_grad():
        out = [model(x[i:i + batch_size].to(device or x.device))
               for i in range(0, x.shape[0], batch_size)]
    out = [o if isinstance(o, torch.Tensor) else torch.as_tensor(np.asarray(o))
           for o in out]
    scores = torch.cat(out).to(x.device)
    if scores.ndim == 1:  # binary decision function
        return (scores > 0).long()
    return scores.argmax(dim=1)


#: False while an attack runs with ``check_input=False`` (None: not set): the
#: check that the model returns logits reads device values on the host, so
#: training loops ask for it on the first batch of a training call only
#: (``perturb_validated(..., check_logits=True)``)
_CHECK_LOGITS = contextvars.ContextVar("sklearn_robust_check_logits", default=None)


@contextlib.contextmanager
def checking_logits():
    """Within the block, attacks check that the model returns logits even with
    ``check_input=False`` (evaluation code that validated the data itself)."""
    token = _CHECK_LOGITS.set(True)
    try:
        yield
    finally:
        _CHECK_LOGITS.reset(token)


def _looks_like_probabilities(logits):
    """Whether every score of a 2-D batch is in [0, 1] and every row sums to 1.

    The range is read with one reduction (``aminmax``), and the row sums are
    only formed when it holds. Training loops ask for it on the first batch of
    a training call only (:func:`perturb_validated`): it reads device values.
    """
    if logits.ndim != 2 or logits.shape[0] == 0:
        return False
    with torch.no_grad():
        if logits.is_floating_point():
            low, high = torch.aminmax(logits)
            if not (float(low) >= 0 and float(high) <= 1):  # NaN fails too
                return False
        elif not bool(((logits >= 0) & (logits <= 1)).all()):
            return False
        return bool(((logits.sum(dim=1) - 1).abs() < 1e-4).all())


class BaseAttack(BaseEstimator):
    """Base class of all attacks.

    An attack is a stateless, clonable estimator. Its single entry point is
    :meth:`perturb`, which takes the model as an argument, so that one attack object
    can serve training, scoring and dataset learning, across folds and devices.

    Subclasses set the threat-model parameters ``eps``, ``norm``, ``clip_min``,
    ``clip_max`` and ``random_state`` in ``__init__`` and implement
    ``_perturb(model, x, y, generator, return_info)``, which returns the adversarial
    batch and a dict of per-sample information.
    """

    #: Constraints of the parameters (scikit-learn's style); subclasses merge them
    #: (``{**Base._parameter_constraints, ...}``) and :meth:`_check_params` checks them.
    _parameter_constraints = dict(THREAT_CONSTRAINTS)

    def _check_params(self):
        """Validate the declared constraints, then the relations between parameters."""
        validate_params(self)
        check_clip_box(self.clip_min, self.clip_max)

    def _threat(self):
        """The threat model as keyword arguments (``eps``, ``norm``, clip box)."""
        return dict(eps=float(self.eps), norm=self.norm, clip_min=self.clip_min,
                    clip_max=self.clip_max)

    def perturb(self, model, X, y, *, return_info=False, check_input=True):
        """Return adversarial examples for ``(X, y)`` against ``model``.

        Parameters
        ----------
        model : callable
            Any torch callable mapping a batch of inputs to logits of shape
            ``(n_samples, n_classes)``: a :class:`torch.nn.Module`, a fitted skorch
            ``module_`` or a differentiable view of a pipeline. A module is put in
            eval mode during the attack and its mode is restored afterwards.
        X : tensor or ndarray of shape (n_samples, ...)
            Clean inputs, inside ``[clip_min, clip_max]``. A tensor keeps its dtype
            and device; a NumPy array is attacked as float32 and a NumPy array is
            returned.
        y : tensor or array-like of shape (n_samples,)
            Integer class indices in ``[0, n_classes)``.
        return_info : bool, default=False
            Also return a dict of per-sample tensors (e.g. ``"n_correct_steps"``,
            the number of iterations each point stayed correctly classified).
        check_input : bool, default=True
            Validate ``X`` and ``y`` (finite, in the clip box, matching lengths)
            and check that the model returns logits. Only for callers that
            already validated them, such as the training loops of this library's
            classifiers: ``False`` skips the checks (and their device
            synchronisations) and expects a floating tensor ``X`` and an integer
            tensor ``y`` on the same device.

        Returns
        -------
        X_adv : tensor or ndarray
            Adversarial inputs of the same shape, dtype and device as ``X``.
        info : dict
            Only when ``return_info=True``.
        """
        self._check_params()
        if not check_input:
            # no logits check, unless an enclosing perturb_validated asks for it
            token = _CHECK_LOGITS.set(_CHECK_LOGITS.get() is True)
            try:
                return self._attack_batch(model, X.detach(), y, return_info)
            finally:
                _CHECK_LOGITS.reset(token)
        x, y, from_numpy = check_attack_input(model, X, y, clip_min=self.clip_min,
                                              clip_max=self.clip_max)

        out = self._attack_batch(model, x.detach(), y, return_info)
        if from_numpy:
            if return_info:
                return out[0].cpu().numpy(), out[1]
            return out.cpu().numpy()
        return out

    def _attack_batch(self, model, x, y, return_info):
        if self.eps == 0 or x.shape[0] == 0:
            x_adv, info = x.clone(), self._trivial_info(model, x, y, return_info)
        else:
            generator = make_generator(self.random_state, x.device)
            with eval_mode(model), torch.enable_grad():
                x_adv, info = self._perturb(model, x, y, generator, return_info)
            x_adv = x_adv.detach().to(dtype=x.dtype)
        return (x_adv, info) if return_info else x_adv

    def _trivial_info(self, model, x, y, return_info):
        """Info for an attack that leaves ``x`` unchanged (``eps=0`` or no samples).

        Built by :meth:`_unchanged_info` from where the model classifies ``x``
        correctly.
        """
        if not return_info:
            return {}
        with eval_mode(model):
            correct = predict_labels(model, x) == y if x.shape[0] else y.bool()
        return self._unchanged_info(correct, x, y)

    def _unchanged_info(self, correct, x, y):
        """The info dict of an unchanged batch; ``correct``: clean correctness."""
        return {}

    @staticmethod
    def _warn_if_probabilities(logits):
        if _CHECK_LOGITS.get() is not False and _looks_like_probabilities(logits):
            warnings.warn(
                "The model's outputs look like probabilities (in [0, 1], rows summing "
                "to 1). Attacks need logits: probabilities saturate and hide "
                "gradients, so robustness would be overstated.", NotLogitsWarning,
                stacklevel=4)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.requires_fit = False
        return tags


def perturb_validated(attack, model, X, y, *, return_info=False, check_logits=False):
    """``attack.perturb(model, X, y, return_info=..., check_input=False)`` without
    validating the attack's parameters again.

    For loops that validate an attack once and then run it on many batches, such
    as the classifiers' training attacks (validated at the start of every
    training call): checking a dozen parameter constraints costs about as much
    as a small network's forward pass, once per batch. An attack whose class
    overrides ``perturb`` runs through its own ``perturb``. As with
    ``check_input=False``, the model's outputs are not checked to be logits
    (a host synchronisation) unless ``check_logits``.
    """
    token = _CHECK_LOGITS.set(bool(check_logits))
    try:
        if type(attack).perturb is not BaseAttack.perturb:
            return attack.perturb(model, X, y, return_info=return_info,
                                  check_input=False)
        return attack._attack_batch(model, X.detach(), y, return_info)
    finally:
        _CHECK_LOGITS.reset(token)


def check_attack_input(model, X, y, *, clip_min=None, clip_max=None):
    """Validate the data of an attack: ``(x, y, from_numpy)`` or a clear error.

    ``X`` must be a floating tensor or a real array of shape ``(n_samples, ...)``
    (arrays become float32), finite and inside the clip box; ``y`` one integer
    class index per row. One forward pass on ``X[:1]`` then checks that the model
    takes ``X`` and that ``y`` indexes its classes.
    """
    from_numpy = not isinstance(X, torch.Tensor)
    if not from_numpy and not X.is_floating_point():
        raise TypeError(
            f"X must be a floating point tensor, got {X.dtype}; cast it first.")
    x = check_float_tensor(X, "X", min_ndim=2, allow_empty=True,
                           dtype=torch.float32 if from_numpy else None)
    y = check_class_codes(y, n_samples=x.shape[0], device=x.device)
    check_in_box(x, clip_min, clip_max)
    if x.shape[0]:
        _check_model_and_labels(model, x, y)
    return x, y, from_numpy


def _check_model_and_labels(model, x, y):
    """One forward pass on ``x[:1]``: the model must accept the inputs and return
    floating scores of shape ``(n, n_classes)`` (or ``(n,)``, a binary decision
    function), and ``y`` must index those classes."""
    try:
        with torch.no_grad(), eval_mode(model):
            out = model(x[:1])
    except (RuntimeError, TypeError, ValueError, IndexError) as exc:
        raise ValueError(
            f"The model failed on an input of shape {tuple(x[:1].shape)} (dtype "
            f"{x.dtype}): {type(exc).__name__}: {exc}. Check that X has the shape and "
            "dtype the model expects.") from exc
    if isinstance(out, np.ndarray):      # black-box models (Square) may return numpy
        out = torch.as_tensor(out)
    if not isinstance(out, torch.Tensor):
        raise TypeError(f"The model must return a tensor (or an array) of scores, got "
                        f"{type(out).__name__}.")
    if out.ndim not in (1, 2) or out.shape[0] != 1 or not out.is_floating_point():
        raise ValueError(
            "The model must return floating scores of shape (n_samples, n_classes) "
            f"(or (n_samples,) for a binary decision function); for 1 sample it "
            f"returned shape {tuple(out.shape)}, dtype {out.dtype}.")
    n_classes = 2 if out.ndim == 1 or out.shape[1] == 1 else out.shape[1]
    low, high = int(y.min()), int(y.max())
    if low < 0 or high >= n_classes:
        raise ValueError(
            f"y holds labels in [{low}, {high}], but the model scores {n_classes} "
            f"classes: labels must be class indices in [0, {n_classes - 1}].")


def set_threat_model(attack, **threat):
    """Give ``attack`` the threat-model parameters it has (``eps``, ``norm``, the
    clip box, ...), in place; the others are left out. Returns ``attack``."""
    names = attack.get_params()
    return attack.set_params(**{k: v for k, v in threat.items() if k in names})


def _init_default(cls, name):
    """The default of ``name`` in the first ``__init__`` of ``cls``'s MRO that
    declares it (subclasses often pass their base's parameters as ``**kwargs``)."""
    for klass in cls.__mro__:
        param = inspect.signature(klass.__init__).parameters.get(name)
        if param is not None and param.kind is not param.VAR_KEYWORD:
            return param.default
    raise AttributeError(f"{cls.__name__}.__init__ takes no parameter {name!r}.")


def warn_if_unused_with_attack(estimator, names, stacklevel=2):
    """Warn when ``estimator`` has an ``attack`` and some of ``names`` (its own
    attack settings, e.g. ``n_steps``) differ from their defaults: the given
    attack keeps its own procedure, so they are not used."""
    if getattr(estimator, "attack", None) is None:
        return
    ignored = [name for name in names
               if getattr(estimator, name) != _init_default(type(estimator), name)]
    if ignored:
        warnings.warn(f"{', '.join(ignored)} of {type(estimator).__name__} "
                      f"{'is' if len(ignored) == 1 else 'are'} ignored when attack "
                      "is given: the attack keeps its own procedure.", UserWarning,
                      stacklevel=stacklevel + 1)


#: Constraint of the ``attack`` parameter of classifiers and learners.
ATTACK_CONSTRAINT = [None,
                     InstanceOf(BaseAttack, "an attack of sklearn_robust.attacks")]
