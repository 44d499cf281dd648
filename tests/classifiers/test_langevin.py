"""LangevinSampler and LangevinAdvClassifier (DALE, Robey et al., 2021)."""

import math
import pickle

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV
from skorch.dataset import ValidSplit

from sklearn_robust import AdversarialClassifier, LangevinAdvClassifier
from sklearn_robust.attacks import PGD, LangevinSampler
from sklearn_robust.attacks._langevin import laplace_noise, log_one_minus_softmax
from sklearn_robust.attacks._losses import kl_loss
from sklearn_robust.classifiers._langevin import dual_update
from sklearn_robust.metrics import make_robust_scorer, robust_accuracy_score

FAST = dict(eps=0.1, n_steps=3, step_size=0.05, max_epochs=2, random_state=0)


# --------------------------------------------------------------------- sampler
def _problem(n=16, d=6, k=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(d, 8), torch.nn.Tanh(),
                                torch.nn.Linear(8, k))
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g))
    x = torch.rand(n, d, generator=g)
    x[:3] = 0.0  # on the box's edges, where clipping matters
    x[3:6] = 1.0
    y = torch.randint(0, k, (n,), generator=g)
    return model, x, y


def _grad_log_one_minus_p(model, xa, y):
    xa = xa.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(log_one_minus_softmax(model(xa), y).sum(), xa)
    return g


def _project(xa, x, eps):
    return torch.min(torch.max(xa, x - eps), x + eps).clamp(0, 1)


@pytest.mark.parametrize("noise", ["gaussian", "laplacian"])
@pytest.mark.parametrize("norm, eps", [("linf", 0.05), ("l2", 0.3)])
def test_sampler_stays_in_ball_and_box_under_large_noise(noise, norm, eps):
    model, x, y = _problem()
    x_adv = LangevinSampler(eps=eps, norm=norm, n_steps=5, step_size=eps,
                            noise=noise, noise_scale=1.0,
                            random_state=0).perturb(model, x, y)
    flat = (x_adv - x).reshape(len(x), -1)
    dist = flat.abs().amax(1) if norm == "linf" else flat.norm(dim=1)
    assert float(dist.max()) <= eps * (1 + 1e-5)
    assert float(x_adv.min()) >= 0.0 and float(x_adv.max()) <= 1.0


def _hand_loop(model, x, y, *, eps, eta, n_steps, noise=None, c=0.0, seed=0):
    """DALE's update written out: start, noisy sign steps, clip to ball and box."""
    g = torch.Generator().manual_seed(seed)
    xa = (x + 1e-3 * torch.randn(x.shape, generator=g)).clamp(0, 1)
    for _ in range(n_steps):
        grad = _grad_log_one_minus_p(model, xa, y)
        if noise == "gaussian":
            step = eta * grad.sign() + c * torch.randn(x.shape, generator=g)
        elif noise == "laplacian":
            step = eta * (grad + c * laplace_noise(grad, g)).sign()
        else:
            step = eta * grad.sign()
        xa = _project(xa + step, x, eps)
    return xa


@pytest.mark.parametrize("noise", ["gaussian", "laplacian"])
def test_noise_scale_zero_is_deterministic_sign_ascent(noise):
    model, x, y = _problem()
    out = LangevinSampler(eps=0.1, n_steps=4, step_size=0.03, noise=noise,
                          noise_scale=0.0, random_state=0).perturb(model, x, y)
    expected = _hand_loop(model, x, y, eps=0.1, eta=0.03, n_steps=4)
    torch.testing.assert_close(out, expected)


@pytest.mark.parametrize("noise", ["gaussian", "laplacian"])
def test_noisy_update_matches_documented_formula(noise):
    # gaussian: noise outside the sign; laplacian: noise inside the sign
    model, x, y = _problem()
    out = LangevinSampler(eps=0.1, n_steps=4, step_size=0.03, noise=noise,
                          noise_scale=0.02, random_state=5).perturb(model, x, y)
    expected = _hand_loop(model, x, y, eps=0.1, eta=0.03, n_steps=4, noise=noise,
                          c=0.02, seed=5)
    torch.testing.assert_close(out, expected)


def test_laplacian_steps_are_multiples_of_step_size():
    # the sign of a noisy gradient: every coordinate moves by exactly +-eta
    model, x, y = _problem()
    x = x * 0.5 + 0.25
    start = _hand_loop(model, x, y, eps=1.0, eta=0.1, n_steps=0)
    out = LangevinSampler(eps=1.0, n_steps=1, step_size=0.1, noise="laplacian",
                          noise_scale=5.0, random_state=0).perturb(model, x, y)
    torch.testing.assert_close((out - start).abs(), torch.full_like(x, 0.1))
    gauss = LangevinSampler(eps=1.0, n_steps=1, step_size=0.1, noise="gaussian",
                            noise_scale=0.05, random_state=0).perturb(model, x, y)
    assert not torch.allclose((gauss - start).abs(), torch.full_like(x, 0.1))


def test_seeded_determinism_and_fresh_streams():
    model, x, y = _problem()
    for noise in ("gaussian", "laplacian"):
        a = LangevinSampler(eps=0.1, noise=noise, noise_scale=0.1, random_state=3)
        assert torch.equal(a.perturb(model, x, y), a.perturb(model, x, y))
        b = clone(a).set_params(random_state=4)
        assert not torch.equal(a.perturb(model, x, y), b.perturb(model, x, y))
        stream = clone(a).set_params(random_state=np.random.RandomState(0))
        assert not torch.equal(stream.perturb(model, x, y), stream.perturb(model, x, y))


def test_temperature_sets_noise_scale():
    s = LangevinSampler(step_size=0.1, temperature=0.5, noise_scale=123.0)
    assert s._noise_scale() == pytest.approx(math.sqrt(2 * 0.1 * 0.5))
    assert LangevinSampler(step_size=0.1)._noise_scale() == 1e-3
    # step_size=None: the temperature uses the resolved step 2.5 * eps / n_steps
    s = LangevinSampler(eps=0.2, n_steps=5, step_size=None, temperature=2.0)
    assert s._noise_scale() == pytest.approx(math.sqrt(2 * 0.1 * 2.0))
    model, x, y = _problem()
    for noise in ("gaussian", "laplacian"):
        by_t = LangevinSampler(eps=0.1, step_size=0.02, temperature=0.01, noise=noise,
                               random_state=0).perturb(model, x, y)
        by_c = LangevinSampler(eps=0.1, step_size=0.02, noise_scale=math.sqrt(4e-4),
                               noise=noise, random_state=0).perturb(model, x, y)
        torch.testing.assert_close(by_t, by_c)


def test_log_one_minus_softmax_is_stable():
    logits = torch.tensor([[1.0, 2.0, 0.5], [0.0, -1.0, 3.0]])
    y = torch.tensor([1, 2])
    naive = torch.log(1 - torch.softmax(logits, 1)[torch.arange(2), y])
    torch.testing.assert_close(log_one_minus_softmax(logits, y), naive)
    # a confident model: the naive form is -inf, ours is log(2) - 100 with a gradient
    big = torch.tensor([[100.0, 0.0, 0.0]], requires_grad=True)
    value = log_one_minus_softmax(big, torch.tensor([0]))
    assert value.item() == pytest.approx(math.log(2) - 100, abs=1e-4)
    (grad,) = torch.autograd.grad(value.sum(), big)
    assert torch.isfinite(grad).all() and grad.abs().sum() > 0
    with torch.no_grad():
        assert torch.isinf(torch.log(1 - torch.softmax(big, 1)[0, 0]))
    with pytest.raises(ValueError, match="n_classes >= 2"):
        log_one_minus_softmax(torch.zeros(3, 1), torch.zeros(3, dtype=torch.long))


def test_laplace_noise_is_standard_laplace():
    g = torch.Generator().manual_seed(0)
    xi = laplace_noise(torch.empty(200_000, dtype=torch.float64), g)
    assert xi.dtype == torch.float64
    assert abs(float(xi.mean())) < 0.02
    assert float(xi.abs().mean()) == pytest.approx(1.0, abs=0.02)   # E|xi| = b
    assert float(xi.var()) == pytest.approx(2.0, abs=0.05)          # Var = 2 b^2


def test_sampler_info_counts_correct_steps():
    model, x, y = _problem()
    _, info = LangevinSampler(eps=0.1, n_steps=4, random_state=0).perturb(
        model, x, y, return_info=True)
    kappa = info["n_correct_steps"]
    assert kappa.shape == (len(x),) and int(kappa.min()) >= 0 and int(kappa.max()) <= 4
    _, info0 = LangevinSampler(eps=0.0, n_steps=4).perturb(model, x, y,
                                                           return_info=True)
    correct = (model(x).argmax(1) == y).long() * 4
    assert torch.equal(info0["n_correct_steps"], correct)


@pytest.mark.parametrize("params, match", [
    ({"noise": "uniform"}, "noise must be one of"),
    ({"noise_scale": -1.0}, "noise_scale"),
    ({"noise_scale": None}, "noise_scale"),
    ({"temperature": -0.1}, "temperature"),
    ({"n_steps": 0}, "n_steps"),
    ({"step_size": 0.0}, "step_size"),
    ({"eps": -1.0}, "eps"),
    ({"norm": "l3"}, "norm"),
])
def test_sampler_bad_parameters(params, match):
    model, x, y = _problem()
    with pytest.raises(ValueError, match=match):
        LangevinSampler(**params).perturb(model, x, y)


# ------------------------------------------------------------------------ dual
def test_dual_update_rises_above_margin_and_falls_to_zero_below():
    losses = [2.0, 1.5, 0.9, 0.6, 0.3, 0.05] + [0.0] * 20
    nu, path = 1.0, []
    for loss in losses:
        nu = dual_update(nu, loss, margin=0.5, dual_step_size=0.2)
        path.append(nu)
    above = [i for i, v in enumerate(losses) if v > 0.5]
    below = [i for i, v in enumerate(losses) if v < 0.5]
    assert all(path[i] > (path[i - 1] if i else 1.0) for i in above)
    assert path[above[-1]] == pytest.approx(1.0 + 0.2 * (1.5 + 1.0 + 0.4 + 0.1))
    assert all(path[i] <= path[i - 1] for i in below)
    # projected onto nu >= 0: reaches exactly 0 and stays there
    first_zero = path.index(0.0)
    assert first_zero < len(path) - 1 and set(path[first_zero:]) == {0.0}
    assert dual_update(0.3, 5.0, margin=0.1, dual_step_size=0.0) == 0.3  # fixed nu


def _replay(nu0, losses, margin, step):
    out = []
    for loss in losses:
        nu0 = dual_update(nu0, loss, margin=margin, dual_step_size=step)
        out.append(nu0)
    return out


def _train_batches(clf, epoch=None):
    epochs = clf.history if epoch is None else [clf.history[epoch]]
    return [b for e in epochs for b in e["batches"] if "nominal_loss" in b]


def test_history_records_dual_trajectory(small_digits):
    X, _, y, _ = small_digits
    clf = LangevinAdvClassifier(margin=0.8, dual_step_size=0.5, batch_size=64, lr=0.01,
                                train_split=ValidSplit(5), callbacks__valid_acc=None,
                                **{**FAST, "max_epochs": 8})
    clf.fit(X, y)
    nus = clf.history[:, "dual_variable"]
    assert len(nus) == 8 and clf.dual_variable_ == nus[-1]
    batches = _train_batches(clf)
    # only the training batches (240 samples, 4 per epoch) update nu, once each
    assert len(batches) == 8 * 4
    expected = _replay(1.0, [b["nominal_loss"] for b in batches], 0.8, 0.5)
    np.testing.assert_allclose([b["dual_variable"] for b in batches], expected)
    for epoch in range(8):
        last = _train_batches(clf, epoch)
        assert clf.history[epoch, "dual_variable"] == last[-1]["dual_variable"]
        sizes = np.array([b["train_batch_size"] for b in last])
        mean = np.sum(sizes * [b["nominal_loss"] for b in last]) / sizes.sum()
        assert clf.history[epoch, "nominal_loss"] == pytest.approx(mean)
    # the constraint at work: nu rises while the clean loss is above the margin,
    # then decays (down to the projection at 0) once it is met
    assert nus[0] > 1.0 and clf.history[0, "nominal_loss"] > 0.8
    assert clf.history[-1, "nominal_loss"] < 0.8 and nus[-1] < 0.5 * max(nus)
    assert min(b["dual_variable"] for b in batches) == 0.0


def test_fixed_dual_variable_mode(small_digits):
    X, _, y, _ = small_digits
    clf = LangevinAdvClassifier(dual_init=0.1, dual_step_size=0.0, **FAST).fit(X, y)
    assert clf.history[:, "dual_variable"] == [0.1, 0.1]
    assert clf.dual_variable_ == 0.1


def test_fit_resets_dual_and_partial_fit_continues(small_digits):
    X, _, y, _ = small_digits
    clf = LangevinAdvClassifier(dual_step_size=0.5, margin=0.1, **FAST).fit(X, y)
    nu = clf.dual_variable_
    assert nu != 1.0
    clf.partial_fit(X, y)
    batches = _train_batches(clf)
    n_first = len(batches) // 2
    first_new = batches[n_first]
    assert first_new["dual_variable"] == pytest.approx(
        dual_update(nu, first_new["nominal_loss"], margin=0.1, dual_step_size=0.5))
    assert len(clf.history) == 4
    clf.fit(X, y)
    batches = _train_batches(clf)
    assert len(clf.history) == 2
    assert batches[0]["dual_variable"] == pytest.approx(
        dual_update(1.0, batches[0]["nominal_loss"], margin=0.1, dual_step_size=0.5))


def test_lbfgs_updates_dual_once_per_batch(small_digits):
    X, _, y, _ = small_digits
    clf = LangevinAdvClassifier(optimizer=torch.optim.LBFGS, optimizer__max_iter=3,
                                lr=0.1, dual_step_size=0.5, batch_size=100,
                                **{**FAST, "max_epochs": 1, "n_steps": 1})
    clf.fit(X[:200], y[:200])
    batches = _train_batches(clf)
    assert len(batches) == 2
    expected = _replay(1.0, [b["nominal_loss"] for b in batches], 0.1, 0.5)
    assert clf.dual_variable_ == pytest.approx(expected[-1])


@pytest.mark.parametrize("robust_criterion", ["ce", "kl"])
def test_loss_matches_documented_formula(small_digits, robust_criterion):
    X, _, y, _ = small_digits
    clf = LangevinAdvClassifier(robust_criterion=robust_criterion,
                                **{**FAST, "max_epochs": 1}).fit(X, y)
    clf.dual_variable_ = 0.7
    Xb, yb = torch.tensor(X[:16]), torch.tensor(y[:16])
    clf.attack_.set_params(random_state=3)
    loss, logits = clf.robust_loss(Xb, yb)
    clf.attack_.set_params(random_state=3)
    X_adv = clf.attack_.perturb(clf.module_, Xb, yb)
    clean, adv = clf.module_(Xb), clf.module_(X_adv)
    nominal = F.cross_entropy(clean, yb)
    if robust_criterion == "ce":
        assert isinstance(clf.attack_, LangevinSampler)
        expected = F.cross_entropy(adv, yb) + 0.7 * nominal
    else:
        assert isinstance(clf.attack_, PGD) and clf.attack_.loss == "kl"
        assert clf.attack_.random_start == "normal"
        p, log_p, log_q = F.softmax(clean, 1), F.log_softmax(clean, 1), \
            F.log_softmax(adv, 1)
        expected = (p * (log_p - log_q)).sum() / len(yb) + 0.7 * nominal
        torch.testing.assert_close(
            expected, kl_loss(adv, yb, clean).mean() + 0.7 * nominal)
    torch.testing.assert_close(loss, expected)
    torch.testing.assert_close(logits, clean)
    assert float((X_adv - Xb).abs().max()) <= 0.1 + 1e-6


def test_attack_follows_parameters(small_digits):
    X, _, y, _ = small_digits
    clf = LangevinAdvClassifier(noise="laplacian", noise_scale=0.2, temperature=None,
                                **{**FAST, "max_epochs": 1}).fit(X, y)
    a = clf.attack_
    assert (a.eps, a.n_steps, a.step_size, a.noise, a.noise_scale) == (
        0.1, 3, 0.05, "laplacian", 0.2)
    clf.set_params(temperature=0.5, noise="gaussian").fit(X, y)
    assert clf.attack_.temperature == 0.5 and clf.attack_.noise == "gaussian"


# ----------------------------------------------------------------- integration
def test_robust_accuracy_above_natural_training(digits_split):
    X_train, X_test, y_train, y_test = digits_split
    natural = AdversarialClassifier(eps=0.0, max_epochs=10, random_state=0)
    natural.fit(X_train, y_train)
    dale = LangevinAdvClassifier(eps=0.1, n_steps=3, step_size=0.05, max_epochs=10,
                                 random_state=0).fit(X_train, y_train)
    nat = robust_accuracy_score(natural, X_test, y_test, eps=0.1)
    rob = robust_accuracy_score(dale, X_test, y_test, eps=0.1)
    assert dale.score(X_test, y_test) > 0.9
    assert rob > nat + 0.1, (nat, rob)


def test_grid_search_over_margin(small_digits, check_grid_search):
    X, _, y, _ = small_digits
    scorer = make_robust_scorer(eps=0.1, attack="pgd")
    search = GridSearchCV(LangevinAdvClassifier(dual_step_size=0.1, **FAST),
                          {"margin": [0.1, 1.0]}, scoring=scorer, cv=2)
    search.fit(X, y)
    check_grid_search(search, X, y)
    assert np.all(np.isfinite(search.cv_results_["mean_test_score"]))
    assert search.best_estimator_.margin == search.best_params_["margin"]
    assert np.isfinite(search.best_estimator_.dual_variable_)
    again = pickle.loads(pickle.dumps(search.best_estimator_))
    assert again.dual_variable_ == search.best_estimator_.dual_variable_
    assert not hasattr(clone(search.best_estimator_), "dual_variable_")


@pytest.mark.parametrize("params, match", [
    ({"noise": "cauchy"}, "noise must be one of"),
    ({"noise_scale": -1e-3}, "noise_scale"),
    ({"temperature": -1.0}, "temperature"),
    ({"margin": -0.1}, "margin"),
    ({"dual_step_size": -1.0}, "dual_step_size"),
    ({"dual_init": float("nan")}, "dual_init"),
    ({"robust_criterion": "mse"}, "robust_criterion"),
    ({"n_steps": 0}, "n_steps"),
])
def test_bad_parameters(small_digits, params, match):
    X, _, y, _ = small_digits
    with pytest.raises(ValueError, match=match):
        LangevinAdvClassifier(**{**FAST, **params}).fit(X, y)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no cuda device")
@pytest.mark.parametrize("robust_criterion", ["ce", "kl"])
def test_cuda_fit(small_digits, robust_criterion):
    X, X_test, y, y_test = small_digits
    clf = LangevinAdvClassifier(device="cuda", robust_criterion=robust_criterion,
                                noise="laplacian", **FAST).fit(X, y)
    assert next(clf.module_.parameters()).is_cuda
    assert isinstance(clf.dual_variable_, float)
    assert len(clf.history[:, "dual_variable"]) == FAST["max_epochs"]
    model, x, yt = _problem()
    x_adv = LangevinSampler(eps=0.1, random_state=0).perturb(model.cuda(), x.cuda(),
                                                             yt.cuda())
    assert x_adv.is_cuda and float((x_adv.cpu() - x).abs().max()) <= 0.1 + 1e-6
    robust_accuracy_score(clf, X_test, y_test, eps=0.1, attack="pgd")
