"""Common checks over every public estimator and attack of the library.

The classes come from :mod:`sklearn_robust.utils.discovery`, which walks the
package, so a new public class is picked up without editing this file:

- scikit-learn's common checks (``parametrize_with_checks``) run over every
  discovered estimator that has ``fit`` (classifiers and dataset learners);
- the estimators with ``fit_resample`` only (imbalanced-learn's samplers) get
  the checks of scikit-learn that need no ``fit`` and a ``fit_resample`` check;
- the library's ``attack_checks`` run over every discovered attack.

Every discovered class needs an entry in ``INIT_PARAMS``: a list of one or more
constructor configurations (``[{}]`` means the defaults). A class without one is
not tested and makes ``test_init_params_cover_every_public_class`` fail: the
defaults are deliberately not assumed, since they are sized for real training
(epochs, the ``[0, 1]`` clip box) and would be slow or wrong on the unscaled
data of scikit-learn's checks, so a new class comes with a deliberately small,
fast configuration. ``EXPECTED_FAILED_CHECKS`` is the one table of checks that
fail by design, with their reasons; it is looked up along the class's MRO and
run as strict xfails, so a check that starts passing is noticed.
"""

import functools

import numpy as np
import pytest
import sklearn.utils.estimator_checks as sk_checks
from sklearn.base import clone
from sklearn.utils.estimator_checks import parametrize_with_checks

from sklearn_robust.attacks import (
    APGD,
    APGDT,
    FAB,
    FGSM,
    PGD,
    AutoAttack,
    LangevinSampler,
    LocalLinearityAttack,
    LogitScaledPGD,
    Square,
)
from sklearn_robust.classifiers import (
    AdversarialClassifier,
    BaseAdversarialClassifier,
    FastAdversarialClassifier,
    GAIRATClassifier,
    GAIRTRADESClassifier,
    LangevinAdvClassifier,
    LipschitzDropoutClassifier,
    TRADESClassifier,
)
from sklearn_robust.dataset_learning import (
    BaseRobustDataset,
    NTKRobustDistiller,
    RobustDatasetSampler,
    RobustFeatureDataset,
    TriLevelDatasetLearner,
)
from sklearn_robust.kernels import NTKClassifier
from sklearn_robust.nn import MLP
from sklearn_robust.utils.discovery import all_attacks, all_estimators
from sklearn_robust.utils.estimator_checks import attack_checks

# ------------------------------------------------------------ configurations

# the checks of scikit-learn use unscaled data, so the clip box is opened
OPEN_BOX = dict(clip_min=None, clip_max=None)
FAST_CLASSIFIER = [dict(**OPEN_BOX, max_epochs=2, n_steps=2, eps=0.1, step_size=0.05,
                        random_state=0)]
# lr=0.1 makes the learned rows move by more than the checks' tolerance
# (atol=0.01), so that the expected transformer failures are real and not hidden
# by a tiny update
FAST_TRILEVEL = dict(eps=0.1, module=functools.partial(MLP, hidden_layer_sizes=()),
                     max_iter=2, inner_steps=1, n_steps=1, lr=0.1, batch_size=16,
                     **OPEN_BOX, random_state=0)

INIT_PARAMS = {
    # scikit-learn's common checks
    AdversarialClassifier: FAST_CLASSIFIER,
    TRADESClassifier: FAST_CLASSIFIER,
    # one FGSM step (n_steps must be 1); the catastrophic-overfitting check on
    FastAdversarialClassifier: [dict(**OPEN_BOX, max_epochs=2, eps=0.1,
                                     random_state=0)],
    GAIRATClassifier: FAST_CLASSIFIER,
    GAIRTRADESClassifier: FAST_CLASSIFIER,
    LangevinAdvClassifier: FAST_CLASSIFIER,
    LipschitzDropoutClassifier: FAST_CLASSIFIER,
    NTKClassifier: [{}],
    NTKRobustDistiller: [dict(eps=0.1, max_iter=2, target_batch_size=16, n_steps=1,
                              lr=0.1, **OPEN_BOX, random_state=0)],
    TriLevelDatasetLearner: [FAST_TRILEVEL],
    RobustFeatureDataset: [dict(
        estimator=AdversarialClassifier(
            module=MLP, module__hidden_layer_sizes=(4,), norm="l2", eps=0.5,
            n_steps=1, step_size=0.5, max_epochs=1, **OPEN_BOX, random_state=0),
        max_iter=2, lr=0.5, **OPEN_BOX, random_state=0)],
    # the sampler checks
    RobustDatasetSampler: [dict(learner=TriLevelDatasetLearner(**FAST_TRILEVEL))],
    # the attack checks
    PGD: [dict(eps=0.1, n_steps=5),
          dict(eps=0.5, norm="l2", n_steps=5),
          dict(eps=0.1, n_steps=3, loss="kl", random_start="normal"),
          dict(eps=0.1, n_steps=3, loss="cw", n_restarts=2),
          dict(eps=0.1, n_steps=3, loss="dlr"),
          dict(eps=2.0, norm="l1", n_steps=5)],
    FGSM: [dict(eps=0.1), dict(eps=0.5, norm="l2"), dict(eps=2.0, norm="l1")],
    LocalLinearityAttack: [dict(eps=0.1, n_steps=2, random_state=0),
                           dict(eps=0.5, norm="l2", n_steps=2, random_state=0),
                           dict(eps=2.0, norm="l1", n_steps=2, random_state=0)],
    LangevinSampler: [
        dict(eps=0.1, n_steps=3, step_size=0.03),
        dict(eps=0.1, n_steps=3, step_size=0.03, noise="laplacian", noise_scale=0.05),
        dict(eps=0.5, norm="l2", n_steps=3, step_size=0.2, noise_scale=0.01),
        dict(eps=0.5, norm="l2", n_steps=3, step_size=0.2, noise="laplacian",
             noise_scale=0.05),
        dict(eps=2.0, norm="l1", n_steps=3, step_size=0.5, noise="laplacian",
             noise_scale=0.05)],
    FAB: [dict(eps=0.3, n_iter=10),
          dict(eps=1.0, norm="l2", n_iter=10),
          dict(eps=0.3, n_iter=5, targeted=True, n_target_classes=2, n_restarts=2),
          dict(eps=1.0, norm="l2", n_iter=5, targeted=True, n_target_classes=2),
          dict(eps=2.0, norm="l1", n_iter=5, n_restarts=2)],
    APGD: [dict(eps=0.1, n_iter=10),
           dict(eps=0.5, norm="l2", n_iter=10),
           dict(eps=0.1, n_iter=10, loss="dlr", n_restarts=2),
           dict(eps=0.5, norm="l2", n_iter=10, loss="dlr"),
           dict(eps=2.0, norm="l1", n_iter=10),
           dict(eps=2.0, norm="l1", n_iter=10, use_largereps=True, n_restarts=2)],
    APGDT: [dict(eps=0.1, n_iter=8, n_target_classes=2),
            dict(eps=0.5, norm="l2", n_iter=8, n_target_classes=2),
            dict(eps=2.0, norm="l1", n_iter=8, n_target_classes=2,
                 use_largereps=True)],
    # seeded: Square lowers the margin, not the cross-entropy that
    # check_attack_increases_loss measures, which rose for about 92% of the seeds
    Square: [dict(eps=0.1, n_queries=30, random_state=0),
             dict(eps=0.5, norm="l2", n_queries=30, random_state=0),
             dict(eps=2.0, norm="l1", n_queries=30, random_state=0)],
    LogitScaledPGD: [dict(eps=0.1, n_steps=5), dict(eps=2.0, norm="l1", n_steps=5)],
    AutoAttack: [
        dict(eps=0.1, attacks=[APGD(n_iter=5), APGDT(n_iter=5, n_target_classes=2),
                               Square(n_queries=20)]),
        dict(eps=0.5, norm="l2", attacks=["apgd-ce", Square(n_queries=20)]),
        dict(eps=2.0, norm="l1", attacks=[APGD(n_iter=5, use_largereps=True),
                                          Square(n_queries=20)])],
}

# ------------------------------------------------------- expected failures

_TRANSFORM_IS_IDENTITY = (
    "by design fit_transform returns the learned rows while transform is the "
    "identity on new data (like TargetEncoder); the check compares "
    "fit_transform(X) with fit(X).transform(X)")

# {class: {check name: reason}}, looked up along the MRO of the tested class
EXPECTED_FAILED_CHECKS = {
    BaseAdversarialClassifier: {
        "check_no_attributes_set_in_init": (
            "skorch's NeuralNet.__init__ sets history_, initialized_ and "
            "virtual_params_"),
        "check_set_params": (
            "skorch keeps its internal _params_to_validate set in get_params(), so "
            "setting it to an arbitrary value breaks set_params"),
        "check_sample_weight_equivalence_on_dense_data": (
            "sample_weight is supported, but the attack's random starts (or noise) "
            "drawn for a repeated row differ from those of one weighted row, and so "
            "do the shuffled batches, so the fits differ (as for scikit-learn's "
            "SGDClassifier); tested with a deterministic attack in one batch "
            "instead"),
    },
    BaseRobustDataset: {
        "check_transformer_general": _TRANSFORM_IS_IDENTITY,
        "check_transformer_data_not_an_array": _TRANSFORM_IS_IDENTITY,
    },
}


def _expected_failed_checks(estimator):
    failures = {}
    for klass in reversed(type(estimator).__mro__):
        failures.update(EXPECTED_FAILED_CHECKS.get(klass, {}))
    return failures


def _instances(classes):
    """One instance per configuration of each class that has a table entry."""
    return [(cls, i, cls(**params)) for _, cls in classes if cls in INIT_PARAMS
            for i, params in enumerate(INIT_PARAMS[cls])]


def _has_fit(cls):
    return callable(getattr(cls, "fit", None))


_ATTACK_CLASSES = {cls for _, cls in all_attacks()}
ESTIMATORS = [est for cls, _, est in _instances(all_estimators())
              if _has_fit(cls) and cls not in _ATTACK_CLASSES]
SAMPLERS = [(cls, i, est) for cls, i, est in _instances(all_estimators("sampler"))
            if not _has_fit(cls)]
ATTACKS = _instances(all_attacks())


# ------------------------------------------------------------------ the table


def test_init_params_cover_every_public_class():
    discovered = {cls for _, cls in all_estimators()}
    missing = sorted(cls.__name__ for cls in discovered - set(INIT_PARAMS))
    assert not missing, (
        f"public estimators without an INIT_PARAMS entry in {__file__}: {missing}; "
        "add a small, fast configuration ([{}] for the defaults)")
    stale = sorted(cls.__name__ for cls in set(INIT_PARAMS) - discovered)
    assert not stale, f"INIT_PARAMS names classes that are not discovered: {stale}"
    assert all(INIT_PARAMS[cls] for cls in INIT_PARAMS), "an entry without a config"


def test_expected_failures_name_known_checks():
    names = {name for name in vars(sk_checks) if name.startswith("check_")}
    names |= {name for _, _, attack in ATTACKS for name, _ in attack_checks(attack)}
    for failures in EXPECTED_FAILED_CHECKS.values():
        assert set(failures) <= names, set(failures) - names


# ------------------------------------------------- scikit-learn's common checks


@parametrize_with_checks(ESTIMATORS, expected_failed_checks=_expected_failed_checks,
                         xfail_strict=True)
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)


# the checks of scikit-learn that need no fit, for fit_resample-only samplers
SAMPLER_CHECKS = [
    sk_checks.check_estimator_cloneable, sk_checks.check_estimator_repr,
    sk_checks.check_no_attributes_set_in_init, sk_checks.check_get_params_invariance,
    sk_checks.check_set_params,
    sk_checks.check_do_not_raise_errors_in_init_or_set_params,
    sk_checks.check_parameters_default_constructible, sk_checks.check_mixin_order,
    sk_checks.check_valid_tag_types, sk_checks.check_estimator_tags_renamed,
]


def check_sampler_fit_resample(name, sampler):
    """fit_resample fits a clone of the learner and returns its robust set."""
    rng = np.random.RandomState(0)
    X = rng.rand(40, 6).astype(np.float32)
    y = np.arange(40) % 2
    params = sampler.get_params(deep=False)
    first = clone(sampler)
    X_res, y_res = first.fit_resample(X, y)
    assert first.learner_ is not first.learner
    assert X_res is first.learner_.X_robust_ and y_res is first.learner_.y_robust_
    assert X_res.shape[1:] == X.shape[1:] and len(X_res) == len(y_res)
    assert not hasattr(first.learner, "X_robust_"), "the learner param was fitted"
    assert sampler.get_params(deep=False) == params
    X_again, y_again = clone(sampler).fit_resample(X, y)
    np.testing.assert_array_equal(X_res, X_again)
    np.testing.assert_array_equal(y_res, y_again)


SAMPLER_CASES = [(est, check) for _, _, est in SAMPLERS
                 for check in [*SAMPLER_CHECKS, check_sampler_fit_resample]]


@pytest.mark.parametrize("sampler, check", SAMPLER_CASES,
                         ids=[f"{type(s).__name__}-{c.__name__}"
                              for s, c in SAMPLER_CASES])
def test_sampler_checks(sampler, check):
    check(type(sampler).__name__, sampler)


# ------------------------------------------------------- the attack contract

ATTACK_CASES = [(attack, f"{cls.__name__}-{i}-{name}", name, check)
                for cls, i, attack in ATTACKS for name, check in attack_checks(attack)]


def _attack_param(attack, case_id, name, check):
    reason = _expected_failed_checks(attack).get(name)
    marks = [pytest.mark.xfail(reason=reason, strict=True)] if reason else []
    return pytest.param(attack, check, id=case_id, marks=marks)


@pytest.mark.parametrize("attack, check",
                         [_attack_param(*case) for case in ATTACK_CASES])
def test_attack_contract(attack, check):
    check(attack)
