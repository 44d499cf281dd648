"""The declarative parameter validation and the one door to scikit-learn's
private API."""

import ast
import math
import numbers
import re
from pathlib import Path

import numpy as np
import pytest

import sklearn_robust
from sklearn_robust import AdversarialClassifier, LipschitzDropoutClassifier
from sklearn_robust.attacks import PGD
from sklearn_robust.nn import MLP
from sklearn_robust.utils._param_validation import (
    POSITIVE_INT,
    Interval,
    InvalidParameterError,
    StrOptions,
    validate_parameter_constraints,
)

PACKAGE = Path(sklearn_robust.__file__).parent
DOOR = PACKAGE / "utils" / "_sklearn_private.py"


def _private_sklearn_imports(path):
    """``(line, text)`` of each use of scikit-learn's private API in ``path``."""
    source = path.read_text(encoding="utf8")
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.module and (
                node.module == "sklearn" or node.module.startswith("sklearn.")):
            private_module = any(p.startswith("_") for p in node.module.split("."))
            private_name = any(a.name.startswith("_") for a in node.names)
            if private_module or private_name:
                found.append((node.lineno, ast.get_source_segment(source, node)))
        elif isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] == "sklearn" and any(p.startswith("_") for p in parts):
                    found.append((node.lineno, alias.name))
    # attribute access such as sklearn.utils._param_validation.Interval
    for lineno, line in enumerate(source.splitlines(), 1):
        if re.search(r"\bsklearn(\.\w+)*\._\w", line):
            found.append((lineno, line.strip()))
    return found


def test_only_one_module_imports_private_sklearn():
    offenders = {str(path.relative_to(PACKAGE)): found
                 for path in sorted(PACKAGE.rglob("*.py")) if path != DOOR
                 for found in [_private_sklearn_imports(path)] if found}
    assert offenders == {}, (
        "scikit-learn's private API is imported outside "
        "sklearn_robust/utils/_sklearn_private.py; import it there and re-export it")
    assert _private_sklearn_imports(DOOR)  # the scan does see the door's imports


@pytest.mark.parametrize("value", [True, np.bool_(True), 0, 1.5, "3", None])
def test_integer_constraint_rejects_bools_and_non_integers(value):
    with pytest.raises(InvalidParameterError,
                       match=r"f: n must be an integer >= 1, got"):
        validate_parameter_constraints({"n": [POSITIVE_INT]}, {"n": value}, "f")


@pytest.mark.parametrize("value", [math.inf, -math.inf, math.nan, True])
def test_real_constraint_is_finite_by_default(value):
    constraint = Interval(numbers.Real, 0, None, closed="left")
    assert not constraint.is_satisfied_by(value)
    # finite=False: [0, inf] admits inf (and still no nan, -inf or bool)
    assert Interval(numbers.Real, 0, None, closed="both",
                    finite=False).is_satisfied_by(value) is (value is math.inf)


def test_messages_name_class_parameter_and_value():
    with pytest.raises(InvalidParameterError) as info:
        PGD(n_steps=0).perturb(lambda x: x, np.zeros((1, 2)), [0])
    assert str(info.value) == "PGD: n_steps must be an integer >= 1, got 0."
    assert isinstance(info.value, ValueError) and isinstance(info.value, TypeError)
    with pytest.raises(InvalidParameterError,
                       match=r"PGD: norm must be one of \('l1', 'l2', 'linf'\), "
                             r"got 'l3'\."):
        PGD(norm="l3").perturb(lambda x: x, np.zeros((1, 2)), [0])
    assert str(StrOptions({"b", "a"})) == "one of ('a', 'b')"
    assert str(Interval(numbers.Real, 0, 1, closed="right")) == "a number in (0, 1]"


def test_constraints_are_merged_from_the_base_class():
    base = AdversarialClassifier._parameter_constraints
    sub = LipschitzDropoutClassifier._parameter_constraints
    assert set(base) <= set(sub)
    assert None in sub["n_steps"] and None not in base["n_steps"]
    assert sub["eps"] is base["eps"]


def test_lipschitz_dropout_check_params_extends_the_base(small_digits):
    X, _, y, _ = small_digits
    # a base constraint (attack), a subclass constraint (method) and a relation
    for params, match in [({"attack": "pgd"}, "attack must be None or an attack"),
                          ({"method": "fgsm"}, "method must be one of"),
                          ({"clip_min": 1.0, "clip_max": 0.0}, "clip_min must be"),
                          ({"method": "gr", "attack": PGD()}, "method='gr'")]:
        with pytest.raises(ValueError, match=match):
            LipschitzDropoutClassifier(max_epochs=1, **params).fit(X, y)


def test_skorch_parameters_are_left_to_skorch(small_digits):
    X, _, y, _ = small_digits
    clf = AdversarialClassifier(MLP, max_epochs=1, n_steps=1, eps=0.1,
                                module__hidden_layer_sizes=(8,),
                                optimizer__weight_decay=1e-4)
    clf.fit(X[:64], y[:64])  # module__*/optimizer__* are not declared: no error
    assert clf.module_ is not None
