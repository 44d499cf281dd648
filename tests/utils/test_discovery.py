"""The discovery helpers: every public estimator and attack, nothing private."""

import importlib
import pkgutil

import pytest
from sklearn.base import BaseEstimator

import sklearn_robust
from sklearn_robust import attacks, classifiers, dataset_learning, kernels
from sklearn_robust.attacks import BaseAttack
from sklearn_robust.utils.discovery import all_attacks, all_estimators

CLASSIFIERS = {"AdversarialClassifier", "TRADESClassifier", "FastAdversarialClassifier",
               "GAIRATClassifier",
               "GAIRTRADESClassifier", "LangevinAdvClassifier",
               "LipschitzDropoutClassifier", "NTKClassifier"}
TRANSFORMERS = {"NTKRobustDistiller", "RobustFeatureDataset", "TriLevelDatasetLearner"}
SAMPLERS = {"RobustDatasetSampler"}
ATTACKS = {"FGSM", "PGD", "APGD", "APGDT", "FAB", "Square", "AutoAttack",
           "LangevinSampler", "LogitScaledPGD", "LocalLinearityAttack"}


def _names(pairs):
    return [name for name, _ in pairs]


def test_all_estimators_finds_every_kind():
    found = all_estimators()
    assert set(_names(found)) == CLASSIFIERS | TRANSFORMERS | SAMPLERS | ATTACKS
    assert _names(found) == sorted(_names(found)), "not sorted by name"
    assert len(found) == len({cls for _, cls in found}), "a class listed twice"
    for name, cls in found:
        assert name == cls.__name__ and issubclass(cls, BaseEstimator)


@pytest.mark.parametrize("kind, expected", [
    ("classifier", CLASSIFIERS), ("transformer", TRANSFORMERS),
    ("sampler", SAMPLERS), ("attack", ATTACKS),
    (["classifier", "sampler"], CLASSIFIERS | SAMPLERS),
    (("transformer",), TRANSFORMERS),
])
def test_type_filter(kind, expected):
    assert set(_names(all_estimators(type_filter=kind))) == expected


@pytest.mark.parametrize("kind", ["regressor", ["classifier", "clusterer"]])
def test_unknown_type_filter(kind):
    with pytest.raises(ValueError, match="type_filter"):
        all_estimators(type_filter=kind)


def test_all_attacks_are_the_exported_base_attack_subclasses():
    found = all_attacks()
    assert found == all_estimators(type_filter="attack")
    exported = {getattr(attacks, name) for name in attacks.__all__}
    expected = {cls for cls in exported if isinstance(cls, type)
                and issubclass(cls, BaseAttack) and cls is not BaseAttack}
    assert {cls for _, cls in found} == expected
    assert set(_names(found)) == ATTACKS


def test_abstract_and_private_classes_are_skipped():
    names = set(_names(all_estimators()))
    assert not {"BaseAttack", "BaseAdversarialClassifier", "BaseRobustDataset"} & names
    assert not any(name.startswith("_") for name in names)
    # re-exports of other libraries are not the library's estimators
    assert "NeuralNetClassifier" not in names and "BaseEstimator" not in names


def test_every_public_estimator_of_a_public_module_is_found():
    """Cross-check the walk: each public module's exported estimators are listed."""
    found = {cls for _, cls in all_estimators()}
    modules = [sklearn_robust, attacks, classifiers, dataset_learning, kernels]
    modules += [importlib.import_module(m.name) for m in
                pkgutil.walk_packages(sklearn_robust.__path__, "sklearn_robust.")
                if "._" not in m.name]
    for module in modules:
        for name in getattr(module, "__all__", []):
            obj = getattr(module, name)
            if (isinstance(obj, type) and issubclass(obj, BaseEstimator)
                    and not name.startswith("Base")):
                assert obj in found, f"{module.__name__}.{name} not discovered"
