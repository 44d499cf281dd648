"""scikit-learn's common checks over every estimator of the library."""

from sklearn.utils.estimator_checks import parametrize_with_checks

from sklearn_robust import (
    AdversarialClassifier,
    GAIRATClassifier,
    GAIRTRADESClassifier,
    LangevinAdvClassifier,
    LipschitzDropoutClassifier,
    TRADESClassifier,
)

# small, fast configurations; the checks use unscaled data, so the box is opened
FAST = dict(clip_min=None, clip_max=None, max_epochs=2, n_steps=2, eps=0.1,
            step_size=0.05, random_state=0)
CLASSIFIERS = [AdversarialClassifier(**FAST), TRADESClassifier(**FAST),
               GAIRATClassifier(**FAST), GAIRTRADESClassifier(**FAST),
               LangevinAdvClassifier(**FAST), LipschitzDropoutClassifier(**FAST)]

SKORCH_INTRINSIC = {
    "check_no_attributes_set_in_init": (
        "skorch's NeuralNet.__init__ sets history_, initialized_ and "
        "virtual_params_"),
    "check_set_params": (
        "skorch keeps its internal _params_to_validate set in get_params(), so "
        "setting it to an arbitrary value breaks set_params"),
}
RANDOM_ATTACK_WEIGHTS = {
    "check_sample_weight_equivalence_on_dense_data": (
        "sample_weight is supported, but the attack's random starts (or noise) "
        "drawn for a repeated row differ from those of one weighted row, and so do "
        "the shuffled batches, so the fits differ (as for scikit-learn's "
        "SGDClassifier); tested with a deterministic attack in one batch instead"),
}


def _expected_failed_checks(estimator):
    # every classifier accepts sample_weight (the base class handles it)
    return {**SKORCH_INTRINSIC, **RANDOM_ATTACK_WEIGHTS}


@parametrize_with_checks(CLASSIFIERS, expected_failed_checks=_expected_failed_checks)
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)
