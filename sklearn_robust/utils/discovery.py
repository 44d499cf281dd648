"""Discover the public estimators and attacks of sklearn_robust.

Like :mod:`sklearn.utils.discovery` and imbalanced-learn's helper of the same
name, the functions walk the package, so that the common tests cover a new class
without being edited.
"""

# SPDX-License-Identifier: BSD-3-Clause

import inspect
import pkgutil
from importlib import import_module
from operator import itemgetter
from pathlib import Path

__all__ = ["all_estimators", "all_attacks"]

_ROOT = "sklearn_robust"


def _public_names(module):
    """The public names of ``module``: its ``__all__``, else no leading underscore."""
    names = getattr(module, "__all__", None)
    if names is None:
        names = [name for name in vars(module) if not name.startswith("_")]
    return names


def _public_classes():
    """Every public class found in the public modules of the package.

    A module is public when no part of its dotted name starts with an
    underscore; a class is public when a public module exports it under a
    public name. Classes are returned once, under the name they are defined as.
    """
    root = str(Path(__file__).parent.parent)
    modules = [import_module(_ROOT)]
    for _, name, _ in pkgutil.walk_packages(path=[root], prefix=f"{_ROOT}."):
        if any(part.startswith("_") for part in name.split(".")):
            continue
        modules.append(import_module(name))
    classes = set()
    for module in modules:
        for name in _public_names(module):
            obj = getattr(module, name, None)
            if (inspect.isclass(obj) and not name.startswith("_")
                    and obj.__module__.startswith(_ROOT)):
                classes.add((obj.__name__, obj))
    return classes


def _is_abstract(cls):
    """True for an abstract class or one of the library's ``Base*`` templates.

    The library's base classes (:class:`~sklearn_robust.attacks.BaseAttack`,
    ``BaseAdversarialClassifier``, ``BaseRobustDataset``) are template-method
    bases whose subclasses fill in the steps; they are not usable on their own,
    although they define no abstract methods.
    """
    return bool(getattr(cls, "__abstractmethods__", None)) or \
        cls.__name__.startswith("Base")


def _is_attack(cls):
    """True for a subclass of :class:`sklearn_robust.attacks.BaseAttack`.

    Found by name in the MRO, so that utils import nothing above them (a
    ``perturb`` method is no test: the classifiers have one too).
    """
    return any(klass.__name__ == "BaseAttack"
               and klass.__module__.startswith(f"{_ROOT}.attacks")
               for klass in cls.__mro__)


def _type_filters():
    from sklearn.base import ClassifierMixin, TransformerMixin

    return {
        "classifier": lambda cls: issubclass(cls, ClassifierMixin),
        "transformer": lambda cls: issubclass(cls, TransformerMixin),
        "sampler": lambda cls: callable(getattr(cls, "fit_resample", None)),
        "attack": _is_attack,
    }


def all_estimators(type_filter=None):
    """Get the public estimators of sklearn_robust.

    The package is walked (its public modules, see Notes) and every public
    class that inherits from scikit-learn's ``BaseEstimator`` is returned,
    except the abstract bases. The library's attacks are estimators too
    (clonable, with ``get_params``): ``type_filter="attack"`` selects them.

    Parameters
    ----------
    type_filter : {"classifier", "transformer", "sampler", "attack"} or list of \
            such str, default=None
        Which kind of estimators to return; ``None`` returns them all. A list
        returns the estimators of at least one of the kinds. ``"classifier"``
        and ``"transformer"`` select subclasses of scikit-learn's
        ``ClassifierMixin`` and ``TransformerMixin``, ``"sampler"`` the
        estimators with a ``fit_resample`` method (imbalanced-learn's
        samplers), ``"attack"`` the subclasses of
        :class:`~sklearn_robust.attacks.BaseAttack`.

    Returns
    -------
    estimators : list of tuple
        ``(name, class)`` pairs sorted by name, each class once.

    Raises
    ------
    ValueError
        If ``type_filter`` holds an unknown kind.

    See Also
    --------
    all_attacks : The attacks alone.

    Notes
    -----
    A module is public when no part of its dotted name starts with an
    underscore; the names it exports are its ``__all__`` (else its names without
    a leading underscore). Classes defined outside sklearn_robust (re-exports of
    torch or scikit-learn) are left out. Abstract classes and the library's
    template bases, whose names start with ``Base``, are skipped.

    Examples
    --------
    >>> from sklearn_robust.utils.discovery import all_estimators
    >>> names = [name for name, _ in all_estimators(type_filter="classifier")]
    >>> "AdversarialClassifier" in names and "NTKClassifier" in names
    True
    >>> "BaseAdversarialClassifier" in names
    False
    """
    from sklearn.base import BaseEstimator

    estimators = [(name, cls) for name, cls in _public_classes()
                  if issubclass(cls, BaseEstimator) and not _is_abstract(cls)]
    if type_filter is not None:
        kinds = [type_filter] if isinstance(type_filter, str) else list(type_filter)
        filters = _type_filters()
        unknown = [kind for kind in kinds if kind not in filters]
        if unknown:
            raise ValueError(
                "type_filter must be None, one of "
                f"{sorted(filters)} or a list of them, got {type_filter!r}.")
        estimators = [(name, cls) for name, cls in estimators
                      if any(filters[kind](cls) for kind in kinds)]
    return sorted(set(estimators), key=itemgetter(0))


def all_attacks():
    """Get the public attacks of sklearn_robust.

    Every public, concrete subclass of
    :class:`~sklearn_robust.attacks.BaseAttack` found by walking the package
    (the same as ``all_estimators(type_filter="attack")``).

    Returns
    -------
    attacks : list of tuple
        ``(name, class)`` pairs sorted by name.

    See Also
    --------
    all_estimators : Every estimator, with a filter by kind.

    Examples
    --------
    >>> from sklearn_robust.utils.discovery import all_attacks
    >>> names = [name for name, _ in all_attacks()]
    >>> "PGD" in names and "AutoAttack" in names and "BaseAttack" not in names
    True
    """
    return all_estimators(type_filter="attack")
