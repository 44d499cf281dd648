"""What BaseAdversarialClassifier does for every method: validation, seeding and
sample weights."""

import warnings

import numpy as np
import pytest
import torch
from sklearn.base import clone

import sklearn_robust.classifiers._base as base
from sklearn_robust import (
    AdversarialClassifier,
    GAIRATClassifier,
    GAIRTRADESClassifier,
    LangevinAdvClassifier,
    LipschitzDropoutClassifier,
    TRADESClassifier,
)
from sklearn_robust.attacks import PGD
from sklearn_robust.datasets import load_digits_images

TINY = dict(eps=0.1, n_steps=2, step_size=0.05, max_epochs=2, batch_size=32,
            random_state=0)
CLASSIFIERS = [
    AdversarialClassifier(**TINY),
    TRADESClassifier(**TINY),
    GAIRATClassifier(burn_in_epochs=0, **TINY),
    GAIRTRADESClassifier(burn_in_epochs=0, **TINY),
    LangevinAdvClassifier(**TINY),
    LangevinAdvClassifier(robust_criterion="kl", **TINY),
    *[LipschitzDropoutClassifier(method=m, **TINY)
      for m in ("trades", "at", "rst", "llr", "gr")],
]


def _id(clf):
    extra = getattr(clf, "method", getattr(clf, "robust_criterion", ""))
    return f"{type(clf).__name__}-{extra}" if extra else type(clf).__name__


@pytest.fixture(scope="module")
def data():
    X, y = load_digits_images(flat=True)
    return X[:96], y[:96]


def _params(clf):
    return [p.detach().clone() for p in clf.module_.parameters()]


def _assert_params_equal(a, b, **tol):
    for p, q in zip(a, b):
        if tol:
            torch.testing.assert_close(p, q, **tol)
        else:
            assert torch.equal(p, q)


# --------------------------------------------------------------- sample weight
@pytest.mark.parametrize("clf", CLASSIFIERS, ids=_id)
def test_every_classifier_accepts_sample_weight(clf, data):
    X, y = data
    sw = np.random.RandomState(0).uniform(0.1, 3.0, len(y))
    weighted = clone(clf).fit(X, y, sample_weight=sw)
    assert weighted.predict_proba(X[:5]).shape == (5, 10)
    assert np.isfinite(weighted.history[:, "train_loss"]).all()
    # the weights reach the loss: same seed, different parameters
    plain = clone(clf).fit(X, y)
    assert not all(torch.equal(p, q) for p, q in zip(_params(weighted),
                                                      _params(plain)))
    weighted.partial_fit(X, y, sample_weight=sw)
    assert len(weighted.history) == 2 * TINY["max_epochs"]


@pytest.mark.parametrize("clf", CLASSIFIERS, ids=_id)
def test_zero_weights_drop_the_rows_from_the_loss(clf, data):
    # one deterministic SGD step on one batch: rows of weight 0 contribute
    # nothing, so the step is that of training without them
    X, y = data
    keep = np.arange(len(y)) % 3 != 0
    params = dict(max_epochs=1, batch_size=1000, optimizer=torch.optim.SGD, lr=0.5,
                  iterator_train__shuffle=False)
    if not (isinstance(clf, LipschitzDropoutClassifier) and clf.method == "gr"):
        # per-sample deterministic attack (no random start, no noise)
        params["attack"] = PGD(random_start=False, n_steps=2, step_size=0.05)
    weighted = clone(clf).set_params(**params).fit(X, y, sample_weight=keep * 1.0)
    dropped = clone(clf).set_params(**params).fit(X[keep], y[keep])
    _assert_params_equal(_params(weighted), _params(dropped), atol=1e-5, rtol=1e-4)
    # while the rows do change the step when they count
    full = clone(clf).set_params(**params).fit(X, y)
    assert not all(torch.allclose(p, q, atol=1e-3)
                   for p, q in zip(_params(full), _params(dropped)))


@pytest.mark.parametrize("make_sw", [
    lambda n: -np.ones(n),
    lambda n: np.ones(n + 1),
    lambda n: np.where(np.arange(n) == 3, np.nan, 1.0),
    lambda n: np.ones((n, 2)),
], ids=["negative", "wrong-length", "nan", "2d"])
@pytest.mark.parametrize("clf", [CLASSIFIERS[0], CLASSIFIERS[4], CLASSIFIERS[-1]],
                         ids=_id)
def test_bad_sample_weight_raises(clf, data, make_sw):
    X, y = data
    with pytest.raises(ValueError, match="(?i)sample.weight"):
        clone(clf).fit(X, y, sample_weight=make_sw(len(y)))
    fitted = clone(clf).set_params(max_epochs=1).fit(X, y)
    with pytest.raises(ValueError, match="(?i)sample.weight"):
        fitted.partial_fit(X, y, sample_weight=make_sw(len(y)))


# ------------------------------------------------------------------ validation
def test_fit_and_partial_fit_validate_once(data, monkeypatch):
    X, y = data
    calls = []
    validate = base.validate_data

    def counting(estimator, *args, reset=True, **kwargs):
        calls.append(reset)
        return validate(estimator, *args, reset=reset, **kwargs)

    monkeypatch.setattr(base, "validate_data", counting)
    clf = AdversarialClassifier(**TINY)
    clf.fit(X, y)
    assert calls == [True]
    clf.partial_fit(X, y)
    assert calls == [True, False]
    fresh = AdversarialClassifier(**TINY)
    fresh.partial_fit(X, y)     # the first call behaves like fit
    assert calls == [True, False, True]


# ---------------------------------------------------------------------- seeding
@pytest.mark.parametrize("clf", CLASSIFIERS, ids=_id)
def test_seeded_fits_are_identical(clf, data):
    X, y = data
    _assert_params_equal(_params(clone(clf).fit(X, y)), _params(clone(clf).fit(X, y)))
    # partial_fit is seeded too: from scratch and when continuing
    a, b = clone(clf).partial_fit(X, y), clone(clf).partial_fit(X, y)
    _assert_params_equal(_params(a), _params(b))
    _assert_params_equal(_params(a.partial_fit(X, y)), _params(b.partial_fit(X, y)))


@pytest.mark.parametrize("clf", CLASSIFIERS, ids=_id)
def test_fit_and_partial_fit_leave_the_global_rng_alone(clf, data):
    X, y = data
    torch.manual_seed(123)
    np.random.seed(123)
    torch_state, np_state = torch.get_rng_state(), np.random.get_state()
    fitted = clone(clf).fit(X, y)
    fitted.partial_fit(X, y)
    clone(clf).partial_fit(X, y)
    assert torch.equal(torch.get_rng_state(), torch_state)
    after = np.random.get_state()
    assert after[0] == np_state[0] and np.array_equal(after[1], np_state[1])
    assert after[2:] == np_state[2:]


def test_warns_when_a_given_attack_makes_settings_unused(small_digits):
    from sklearn_robust import GAIRATClassifier
    from sklearn_robust.attacks import FGSM

    X, _, y, _ = small_digits
    X, y = X[:40], y[:40]
    kw = dict(eps=0.1, max_epochs=1, batch_size=20, random_state=0)
    with pytest.warns(UserWarning, match="n_steps, step_size of AdversarialClassifier "
                                         "are ignored when attack is given"):
        AdversarialClassifier(**kw, n_steps=3, step_size=0.02,
                              attack=FGSM()).fit(X, y)
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*ignored when attack")
        AdversarialClassifier(**kw, attack=FGSM()).fit(X, y)          # defaults
        AdversarialClassifier(**kw, n_steps=3).fit(X, y)              # no attack
    with pytest.warns(UserWarning, match="random_start of GAIRATClassifier is ignored"):
        gairat = GAIRATClassifier(**kw, random_start=False,
                                  attack=PGD(n_steps=4)).fit(X, y)
    assert gairat.kappa_max_ == 4            # K is the given attack's n_steps


class _SoftmaxMLP(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.net = torch.nn.Sequential(torch.nn.Linear(64, 10), torch.nn.Softmax(dim=1))

    def forward(self, x):
        return self.net(x)


def test_probability_outputs_warn_once_per_training_call():
    from sklearn_robust.exceptions import NotLogitsWarning

    X, y = load_digits_images(flat=True)
    X, y = X[:96], y[:96]
    clf = AdversarialClassifier(module=_SoftmaxMLP, eps=0.1, n_steps=2, max_epochs=2,
                                batch_size=32, random_state=0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        clf.fit(X, y)                  # 6 batches, one check
        clf.partial_fit(X, y)          # a new training call, one more
    assert sum(issubclass(w.category, NotLogitsWarning) for w in caught) == 2
    with warnings.catch_warnings():
        warnings.simplefilter("error", NotLogitsWarning)
        AdversarialClassifier(eps=0.1, n_steps=2, max_epochs=1, batch_size=32,
                              random_state=0).fit(X, y)


def test_channels_last_keeps_values_and_layout():
    import pickle

    from sklearn_robust.nn import SmallCNN

    rng = np.random.RandomState(0)
    X = rng.rand(40, 1, 16, 16).astype(np.float32)
    y = np.arange(40) % 3
    kw = dict(module=SmallCNN, eps=0.1, n_steps=2, step_size=None, max_epochs=1,
              batch_size=20, random_state=0)
    plain = AdversarialClassifier(**kw).fit(X, y)
    nhwc = AdversarialClassifier(**kw, channels_last=True).fit(X, y)
    convs = [p for p in nhwc.module_.parameters() if p.ndim == 4]
    assert convs and all(p.is_contiguous(memory_format=torch.channels_last)
                         for p in convs)
    seen = []
    handle = nhwc.module_.register_forward_pre_hook(
        lambda m, args: seen.append(args[0].is_contiguous(
            memory_format=torch.channels_last)))
    nhwc.module_.load_state_dict(plain.module_.state_dict())   # same weights
    np.testing.assert_allclose(nhwc.predict_proba(X), plain.predict_proba(X),
                               atol=1e-5)
    handle.remove()
    assert seen and all(seen)       # the inputs reach the network as NHWC
    again = pickle.loads(pickle.dumps(nhwc))
    np.testing.assert_array_equal(again.predict(X), nhwc.predict(X))
    with pytest.raises(ValueError, match="channels_last"):
        AdversarialClassifier(**kw, channels_last="yes").fit(X, y)


@pytest.mark.parametrize("clf", [AdversarialClassifier(), TRADESClassifier(),
                                 GAIRTRADESClassifier(),
                                 LipschitzDropoutClassifier(method="pgd")],
                         ids=lambda c: type(c).__name__)
def test_compile_also_compiles_the_pgd_training_attacks_step(clf):
    # skorch's compile=True compiles the network; the PGD training attacks of
    # the classifier compile their step too, a given attack keeps its own choice
    assert not clf.default_attack().compile
    compiled = clone(clf).set_params(compile=True)
    assert compiled.default_attack().compile
    assert compiled.pgd_attack(loss="cw").compile
    given = compiled.set_params(attack=PGD(n_steps=2))
    given.initialize_attack()
    assert not given.attack_.compile
