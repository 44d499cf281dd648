"""FastAdversarialClassifier (FGSM-RS, Wong et al., 2020) and its
catastrophic-overfitting check."""

import copy
import pickle
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from sklearn_robust import AdversarialClassifier, FastAdversarialClassifier
from sklearn_robust.callbacks import CatastrophicOverfittingCheck
from sklearn_robust.metrics import robust_accuracy_score
from sklearn_robust.nn import MLP
from sklearn_robust.utils._torch import make_generator, seed_from_random_state

FAST = dict(eps=0.1, max_epochs=2, random_state=0)


def _fgsm_rs(module, x, y, eps, alpha, generator):
    """FGSM-RS written out: uniform start in the box, one sign step, projection."""
    delta = (2 * torch.rand(x.shape, generator=generator) - 1) * eps
    delta = (x + delta).clamp(0, 1) - x
    delta.requires_grad_(True)
    module.eval()
    loss = F.cross_entropy(module(x + delta), y)
    (grad,) = torch.autograd.grad(loss, delta)
    delta = (delta.detach() + alpha * grad.sign()).clamp(-eps, eps)
    return (x + delta).clamp(0, 1)


def _weights(clf):
    return [p.detach().clone() for p in clf.module_.parameters()]


def _same(a, b):
    return all(torch.equal(p, q) for p, q in zip(a, b))


# ------------------------------------------------------------------ the attack
def test_training_perturbation_is_fgsm_with_random_start(small_digits):
    X, _, y, _ = small_digits
    eps = 0.1
    clf = FastAdversarialClassifier(**{**FAST, "max_epochs": 1}).fit(X, y)
    attack = clf.attack_
    assert (attack.n_steps, attack.random_start, attack.n_restarts) == (1, True, 1)
    assert attack.step_size == pytest.approx(1.25 * eps)
    x, yc = torch.tensor(X[:64]), torch.tensor(clf.label_encoder_.transform(y[:64]))
    attack.set_params(random_state=7)
    x_adv = attack.perturb(clf.module_, x, yc)
    expected = _fgsm_rs(clf.module_, x, yc, eps, 1.25 * eps,
                        torch.Generator().manual_seed(7))
    torch.testing.assert_close(x_adv, expected)
    assert float((x_adv - x).abs().max()) <= eps + 1e-6
    assert float(x_adv.min()) >= 0 and float(x_adv.max()) <= 1
    # not the FGSM step from the clean point, nor a step of eps
    fgsm = (x + eps * torch.autograd.grad(
        F.cross_entropy(clf.module_(x.requires_grad_(True)), yc), x)[0].sign()
    ).clamp(0, 1)
    assert not torch.allclose(x_adv, fgsm.detach())


def test_training_equals_hand_written_fgsm_rs_loop(small_digits):
    X, _, y, _ = small_digits
    X, y = X[:64], y[:64]
    torch.manual_seed(0)
    module = MLP(input_shape=(64,), n_classes=10, hidden_layer_sizes=(32,))
    eps, lr, seed = 0.1, 0.1, 3
    # early_stop stays on: the check must not change training
    clf = FastAdversarialClassifier(module=copy.deepcopy(module), eps=eps,
                                    optimizer=torch.optim.SGD, lr=lr, batch_size=32,
                                    max_epochs=2, iterator_train__shuffle=False,
                                    random_state=seed).fit(X, y)
    assert len(clf.history) == 2 and "co_robust_acc" in clf.history[-1]

    # the attack's random stream: seeded with the training seed + 1
    stream = np.random.RandomState(seed + 1)
    opt = torch.optim.SGD(module.parameters(), lr=lr)
    Xt, yt = torch.tensor(X), torch.tensor(clf.label_encoder_.transform(y))
    for _ in range(2):
        for start in (0, 32):
            xb, yb = Xt[start:start + 32], yt[start:start + 32]
            xa = _fgsm_rs(module, xb, yb, eps, 1.25 * eps,
                          make_generator(stream, "cpu"))
            module.train()
            opt.zero_grad()
            F.cross_entropy(module(xa), yb).backward()
            opt.step()
    for p, q in zip(module.parameters(), clf.module_.parameters()):
        torch.testing.assert_close(p, q)


@pytest.mark.parametrize("norm, eps", [("l2", 0.5), ("l1", 2.0)])
def test_other_norms_take_one_step_of_the_attack(small_digits, norm, eps):
    X, _, y, _ = small_digits
    clf = FastAdversarialClassifier(norm=norm, **{**FAST, "eps": eps,
                                                  "max_epochs": 1}).fit(X, y)
    assert clf.attack_.norm == norm and clf.attack_.n_steps == 1
    assert clf.attack_.step_size == pytest.approx(1.25 * eps)
    x = torch.tensor(X[:32])
    x_adv = clf.attack_.perturb(clf.module_, x, torch.tensor(
        clf.label_encoder_.transform(y[:32])))
    p = 2 if norm == "l2" else 1
    assert float((x_adv - x).flatten(1).norm(p=p, dim=1).max()) <= eps * (1 + 1e-5)


def test_step_size_and_parameters(small_digits):
    X, _, y, _ = small_digits
    clf = FastAdversarialClassifier(step_size=0.05, **FAST).fit(X, y)
    assert clf.attack_.step_size == 0.05
    with pytest.raises(ValueError, match="n_steps"):
        FastAdversarialClassifier(n_steps=2, **FAST).fit(X, y)
    for bad in (dict(early_stop_threshold=1.5), dict(early_stop_pgd_steps=0),
                dict(early_stop="yes")):
        with pytest.raises(ValueError, match=next(iter(bad))):
            FastAdversarialClassifier(**bad, **FAST).fit(X, y)
    # a random start makes a short step a choice, not a weak attack: no warning
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        FastAdversarialClassifier(step_size=0.05, **FAST).fit(X, y)
    # FGSM from the clean point with a step below eps cannot reach the edge
    with pytest.warns(UserWarning, match="cannot reach the edge"):
        FastAdversarialClassifier(step_size=0.05, random_start=False,
                                  **FAST).fit(X, y)
    # eps=0: natural training
    natural = FastAdversarialClassifier(**{**FAST, "eps": 0.0}).fit(X, y)
    x = torch.tensor(X[:8])
    assert torch.equal(natural.attack_.perturb(natural.module_, x,
                                               torch.zeros(8, dtype=torch.long)), x)


# ------------------------------------------------------------------ the cost
class _PassCounter:
    """Forward and backward passes through a module, and the samples forwarded."""

    def __init__(self, module):
        self.forward = self.backward = self.samples = 0
        warnings.filterwarnings("ignore", message="Full backward hook is firing")
        self.handles = [module.register_forward_pre_hook(self._on_forward),
                        module.register_full_backward_pre_hook(self._on_backward)]

    def _on_forward(self, module, args):
        self.forward += 1
        self.samples += args[0].shape[0]

    def _on_backward(self, module, grad_output):
        self.backward += 1

    def remove(self):
        for handle in self.handles:
            handle.remove()


@pytest.mark.parametrize("early_stop", [False, True])
def test_an_epoch_costs_two_passes_a_batch_plus_the_check(small_digits, early_stop):
    X, _, y, _ = small_digits          # 300 rows: 3 batches of 100
    k = 5
    clf = FastAdversarialClassifier(early_stop=early_stop, early_stop_pgd_steps=k,
                                    batch_size=100, **FAST).fit(X, y)
    counter = _PassCounter(clf.module_)
    clf.set_params(max_epochs=1).partial_fit(X, y)
    counter.remove()
    n_batches = 3
    # FGSM-RS: one forward-backward for the attack, one for the update
    forward, backward, samples = 2 * n_batches, 2 * n_batches, 2 * len(X)
    if early_stop:  # PGD-k on the first batch, then one prediction
        forward, backward, samples = forward + k + 1, backward + k, samples + 100 * (
            k + 1)
    assert (counter.forward, counter.backward, counter.samples) == (
        forward, backward, samples)


# ------------------------------------------------------------- the robustness
def test_fast_at_beats_natural_training_under_pgd(digits_split):
    X_train, X_test, y_train, y_test = digits_split
    common = dict(max_epochs=20, random_state=0)
    natural = AdversarialClassifier(eps=0.0, **common).fit(X_train, y_train)
    fast = FastAdversarialClassifier(eps=0.1, **common).fit(X_train, y_train)
    assert not fast.catastrophic_overfitting_
    nat = robust_accuracy_score(natural, X_test, y_test, eps=0.1, attack="pgd",
                                random_state=0)
    adv = robust_accuracy_score(fast, X_test, y_test, eps=0.1, attack="pgd",
                                random_state=0)
    assert fast.score(X_test, y_test) > 0.9
    assert adv > nat + 0.2, (nat, adv)


# ------------------------------------------------- the catastrophic overfitting
def _scripted(monkeypatch, values):
    """Make the check measure ``values``, one per epoch."""
    values = iter(values)
    monkeypatch.setattr(CatastrophicOverfittingCheck, "robust_accuracy",
                        lambda self, net, X, y: next(values))


def test_check_restores_the_previous_epoch_and_stops(small_digits, monkeypatch):
    X, _, y, _ = small_digits
    two = FastAdversarialClassifier(**{**FAST, "early_stop": False}).fit(X, y)
    three = FastAdversarialClassifier(**{**FAST, "max_epochs": 3,
                                         "early_stop": False}).fit(X, y)
    assert not _same(_weights(two), _weights(three))

    # a fall of 0.1 is not catastrophic; one of 0.3 is
    _scripted(monkeypatch, [0.8, 0.7, 0.4, 0.9, 0.9])
    clf = FastAdversarialClassifier(**{**FAST, "max_epochs": 5})
    with pytest.warns(UserWarning, match="catastrophic overfitting at epoch 3"):
        clf.fit(X, y)
    assert clf.catastrophic_overfitting_
    assert len(clf.history) == 3
    assert clf.history[:, "co_robust_acc"] == [0.8, 0.7, 0.4]
    assert clf.history[:, "catastrophic_overfitting"] == [False, False, True]
    # the weights and the optimizer's state of epoch 2, not those of epoch 3
    assert _same(_weights(clf), _weights(two))
    state, ref = clf.optimizer_.state_dict()["state"], two.optimizer_.state_dict()[
        "state"]
    assert all(torch.equal(state[i]["exp_avg"], ref[i]["exp_avg"]) for i in ref)
    check = dict(clf.callbacks_)["catastrophic_overfitting"]
    assert check.reference_acc_ == 0.7
    assert check._saved_state is None  # no copy of the weights in a fitted model
    pickle.loads(pickle.dumps(clf)).predict(X[:3])


def test_check_works_across_partial_fit_calls(small_digits, monkeypatch):
    X, _, y, _ = small_digits
    two = FastAdversarialClassifier(**{**FAST, "early_stop": False}).fit(X, y)
    _scripted(monkeypatch, [0.8, 0.8, 0.3])
    clf = FastAdversarialClassifier(**FAST).fit(X, y)
    assert not clf.catastrophic_overfitting_
    with pytest.warns(UserWarning, match="catastrophic overfitting"):
        clf.set_params(max_epochs=3).partial_fit(X, y)
    # the first epoch of the call fired: back to the weights it started from
    assert clf.catastrophic_overfitting_ and len(clf.history) == 3
    assert _same(_weights(clf), _weights(two))
    # a new fit starts a new reference
    _scripted(monkeypatch, [0.2, 0.3])
    clf.set_params(max_epochs=2).fit(X, y)
    assert not clf.catastrophic_overfitting_ and len(clf.history) == 2


def test_check_off_and_unchanged_training(small_digits, monkeypatch):
    X, _, y, _ = small_digits
    off = FastAdversarialClassifier(**{**FAST, "early_stop": False}).fit(X, y)
    assert "co_robust_acc" not in off.history[-1]
    assert not off.catastrophic_overfitting_
    on = FastAdversarialClassifier(**FAST).fit(X, y)
    assert _same(_weights(on), _weights(off))
    # set_params takes effect at the next call, partial_fit included
    _scripted(monkeypatch, [0.9, 0.1, 0.0])
    on.set_params(early_stop=False, max_epochs=3).partial_fit(X, y)
    assert len(on.history) == 5 and not on.catastrophic_overfitting_


# with steps of eps, the final iterate of 3 of these 128 points is classified
# correctly again after an iterate that was not (the authors' count differs
# from the final iterate's)
@pytest.mark.parametrize("step_size", [None, 0.1])
def test_check_accuracy_is_the_authors_pgd(small_digits, step_size):
    """The check's accuracy is that of the authors' ``attack_pgd`` (steps of
    ``eps / 4`` that stop moving a sample once it is misclassified)."""
    X, _, y, _ = small_digits
    clf = FastAdversarialClassifier(**FAST).fit(X, y)
    x, yc = torch.tensor(X[:128]), torch.tensor(clf.label_encoder_.transform(y[:128]))
    check = CatastrophicOverfittingCheck(n_steps=5, step_size=step_size,
                                         random_state=11).initialize()
    check.on_train_begin(clf)
    acc = check.robust_accuracy(clf, x, yc)

    eps, model = 0.1, clf.module_.eval()
    alpha = eps / 4 if step_size is None else step_size
    seed = seed_from_random_state(np.random.RandomState(11))  # the check's stream
    delta = (2 * torch.rand(x.shape, generator=torch.Generator().manual_seed(seed))
             - 1) * eps
    delta = torch.max(torch.min(delta, 1 - x), -x)
    for _ in range(5):
        delta.requires_grad_(True)
        out = model(x + delta)
        index = out.argmax(1) == yc
        if not index.any():
            break
        (grad,) = torch.autograd.grad(F.cross_entropy(out, yc), delta)
        d = (delta.detach() + alpha * grad.sign()).clamp(-eps, eps)
        d = torch.max(torch.min(d, 1 - x), -x)
        delta = torch.where(index[:, None], d, delta.detach())
    with torch.no_grad():
        expected = float((model(x + delta).argmax(1) == yc).float().mean())
    assert acc == expected
    assert 0 < acc < float((model(x).argmax(1) == yc).float().mean())


def test_check_callback_with_other_classifiers_and_sample_weight(small_digits):
    X, _, y, _ = small_digits
    clf = AdversarialClassifier(n_steps=2, step_size=0.05, callbacks=[
        CatastrophicOverfittingCheck(n_steps=2, random_state=0)], **FAST)
    clf.fit(X, y, sample_weight=np.linspace(0.5, 1.5, len(X)))
    assert len(clf.history[:, "co_robust_acc"]) == 2
    assert not clf.catastrophic_overfitting_
    with pytest.raises(ValueError, match="threshold"):
        AdversarialClassifier(callbacks=[CatastrophicOverfittingCheck(
            threshold=-0.1)], **FAST).fit(X, y)
