"""Declarative parameter validation in scikit-learn's ``_parameter_constraints`` style.

An estimator (or attack) declares ``_parameter_constraints``, a dict mapping each of
its own parameter names to a list of constraints, any one of which the value must
satisfy; a subclass merges the dict of its base
(``{**Base._parameter_constraints, "beta": [...]}``). :func:`validate_params` checks
them all in one call at the start of ``fit``/``perturb``; relations between
parameters (the clip box, ``eps`` against another option) stay small explicit
checks after it.

The constraints are scikit-learn's (``HasMethods``, ``None``, ``"boolean"``,
``callable``, a type, ...), reached through
:mod:`sklearn_robust.utils._sklearn_private`, with :class:`Interval` (which, unlike
scikit-learn's, rejects booleans and by default non-finite reals), :class:`Options`
and :class:`StrOptions` described in the library's words (``"an integer >= 1"``,
``"one of ('l2', 'linf')"``), and :class:`InstanceOf` and :class:`TorchDevice`. A
violation raises scikit-learn's ``InvalidParameterError`` (a ``ValueError`` and a
``TypeError``) with the message ``"<Class>: <name> must be <constraints>, got
<value>."``.
"""

# SPDX-License-Identifier: BSD-3-Clause

import math
import numbers

import numpy as np
import torch

from ._sklearn_private import (
    Constraint,
    HasMethods,
    Hidden,
    InvalidParameterError,
    RealNotInt,
    make_constraint,
)
from ._sklearn_private import Interval as _SklearnInterval
from ._sklearn_private import Options as _SklearnOptions
from ._sklearn_private import StrOptions as _SklearnStrOptions
from ._validation import FLOAT32_MAX, NORMS

__all__ = ["FINITE_REAL", "HasMethods", "Hidden", "InstanceOf", "Interval",
           "InvalidParameterError",
           "NON_NEGATIVE_INT", "NON_NEGATIVE_REAL", "Options", "POSITIVE_INT",
           "POSITIVE_REAL", "RealNotInt", "StrOptions", "THREAT_CONSTRAINTS",
           "TorchDevice", "validate_function_params", "validate_params",
           "validate_parameter_constraints"]


class Interval(_SklearnInterval):
    """scikit-learn's ``Interval`` rejecting booleans and, by default, nan and inf.

    ``Interval(numbers.Integral, 1, None, closed="left")`` is an int >= 1 (not
    ``True``); ``Interval(numbers.Real, 0, None, closed="left")`` a finite real
    >= 0. ``finite=False`` admits infinite reals (the bounds still apply). Finite
    reals beyond float32's range (``|x| > 3.4e38``) are rejected either way: the
    models compute in float32, where they overflow.
    """

    def __init__(self, type, left, right, *, closed, finite=True):
        super().__init__(type, left, right, closed=closed)
        self.finite = finite

    def is_satisfied_by(self, val):
        if isinstance(val, (bool, np.bool_)):
            return False
        if isinstance(val, numbers.Real) and not isinstance(val, numbers.Integral):
            if not math.isfinite(val) and (self.finite or math.isnan(val)):
                return False
            if math.isfinite(val) and abs(val) > FLOAT32_MAX:
                return False
        return super().is_satisfied_by(val)

    def __str__(self):
        if self.type is numbers.Integral:
            kind = "an integer"
        elif self.type is RealNotInt:
            kind = "a float"
        else:
            bounded = self.left is not None and self.right is not None
            kind = "a finite number" if self.finite and not bounded else "a number"
        low = ">=" if self.closed in ("left", "both") else ">"
        high = "<=" if self.closed in ("right", "both") else "<"
        if self.left is None and self.right is None:
            return kind
        if self.right is None:
            return f"{kind} {low} {self.left}"
        if self.left is None:
            return f"{kind} {high} {self.right}"
        return (f"{kind} in {'[' if low == '>=' else '('}{self.left}, {self.right}"
                f"{']' if high == '<=' else ')'}")


def _describe_options(options):
    options = sorted(options, key=str)
    return repr(options[0]) if len(options) == 1 else f"one of {tuple(options)}"


class Options(_SklearnOptions):
    """scikit-learn's ``Options``, described as ``"one of (...)"``."""

    def __str__(self):
        return _describe_options(self.options)


class StrOptions(_SklearnStrOptions):
    """scikit-learn's ``StrOptions``, described as ``"one of (...)"``."""

    def __str__(self):
        return _describe_options(self.options)


class _Booleans(Constraint):
    def is_satisfied_by(self, val):
        return isinstance(val, (bool, np.bool_))

    def __str__(self):
        return "a bool"


class InstanceOf(Constraint):
    """Instances of ``types``, described to the user as ``description``."""

    def __init__(self, types, description):
        super().__init__()
        self.types = types
        self.description = description

    def is_satisfied_by(self, val):
        return isinstance(val, self.types)

    def __str__(self):
        return self.description


class TorchDevice(Constraint):
    """Anything :class:`torch.device` accepts (``"cpu"``, ``"cuda:0"``, a device)."""

    def is_satisfied_by(self, val):
        try:
            torch.device(val)
        except (RuntimeError, TypeError, ValueError):
            return False
        return True

    def __str__(self):
        return "a torch device (e.g. 'cpu' or 'cuda:0')"


def validate_parameter_constraints(parameter_constraints, params, caller_name):
    """Check ``params`` against ``parameter_constraints`` (a dict of lists).

    As scikit-learn's function of the same name (a parameter is valid if it
    satisfies one of its constraints; ``"no_validation"`` skips it), with the
    message ``"<caller_name>: <name> must be <constraints>, got <value>."``.
    """
    for name, value in params.items():
        constraints = parameter_constraints.get(name, "no_validation")
        if constraints == "no_validation":
            continue
        constraints = [_Booleans() if isinstance(c, str) and c == "boolean"
                       else c if isinstance(c, Constraint) else make_constraint(c)
                       for c in constraints]
        if any(c.is_satisfied_by(value) for c in constraints):
            continue
        shown = [str(c) for c in constraints if not c.hidden]
        text = (shown[0] if len(shown) == 1
                else f"{', '.join(shown[:-1])} or {shown[-1]}")
        hint = ""
        if (isinstance(value, numbers.Real) and math.isfinite(value)
                and abs(value) > FLOAT32_MAX):
            hint = f" (beyond float32's range, +-{FLOAT32_MAX:.3g}, where it overflows)"
        raise InvalidParameterError(f"{caller_name}: {name} must be {text}, "
                                    f"got {value!r}{hint}.")


def validate_function_params(parameter_constraints):
    """Decorator validating a public function's arguments, as scikit-learn's
    ``validate_params`` (the message names the function and the argument)."""
    import functools
    import inspect

    def decorate(func):
        signature = inspect.signature(func)

        @functools.wraps(func)
        def wrapper(*args, **kwargs):
            bound = signature.bind(*args, **kwargs)
            bound.apply_defaults()
            validate_parameter_constraints(
                parameter_constraints,
                {k: v for k, v in bound.arguments.items()
                 if k in parameter_constraints},
                caller_name=func.__name__)
            return func(*args, **kwargs)

        return wrapper

    return decorate


def validate_params(estimator):
    """Validate the parameters ``estimator`` declares in ``_parameter_constraints``.

    Only the declared names are read (a skorch net's ``module__*`` or
    ``optimizer__*`` parameters are skorch's to check).
    """
    constraints = type(estimator)._parameter_constraints
    validate_parameter_constraints(
        constraints, {name: getattr(estimator, name) for name in constraints},
        caller_name=type(estimator).__name__)


#: An int >= 1 (iterations, restarts, sizes).
POSITIVE_INT = Interval(numbers.Integral, 1, None, closed="left")
#: An int >= 0 (e.g. ``verbose``).
NON_NEGATIVE_INT = Interval(numbers.Integral, 0, None, closed="left")
#: A finite real > 0 (step sizes, learning rates).
POSITIVE_REAL = Interval(numbers.Real, 0, None, closed="neither")
#: A finite real >= 0 (weights of loss terms, radii).
NON_NEGATIVE_REAL = Interval(numbers.Real, 0, None, closed="left")
#: Any finite real.
FINITE_REAL = Interval(numbers.Real, None, None, closed="neither")

#: The threat model's parameters, shared by attacks, classifiers and learners
#: (the clip box's order, ``clip_min < clip_max``, is checked by ``check_clip_box``).
THREAT_CONSTRAINTS = {
    "eps": [NON_NEGATIVE_REAL],
    "norm": [StrOptions(set(NORMS))],
    "clip_min": [Interval(numbers.Real, None, None, closed="both", finite=False), None],
    "clip_max": [Interval(numbers.Real, None, None, closed="both", finite=False), None],
}
