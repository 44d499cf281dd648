"""Contract checks for attacks, usable on user-written attacks too.

Each ``check_attack_*`` function takes an attack instance and raises an
``AssertionError`` when the attack breaks the contract of
:class:`sklearn_robust.attacks.BaseAttack`. :func:`attack_checks` yields them all.
"""

# SPDX-License-Identifier: BSD-3-Clause

import warnings

import numpy as np
import torch
from sklearn.base import clone

from ..exceptions import NotLogitsWarning
from ._torch import flat_norm

__all__ = ["attack_checks"]


def _toy_problem(n=24, n_features=12, n_classes=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(n_features, 16), torch.nn.ReLU(),
                                torch.nn.Dropout(0.2), torch.nn.Linear(16, n_classes))
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g))
    x = 0.2 + 0.6 * torch.rand(n, n_features, generator=g)
    y = torch.randint(0, n_classes, (n,), generator=g)
    return model, x, y


def _with(attack, **params):
    attack = clone(attack)
    names = attack.get_params()
    return attack.set_params(**{k: v for k, v in params.items() if k in names})


def check_attack_in_ball_and_box(attack):
    model, x, y = _toy_problem()
    # data close to the box edges so clipping matters
    x = torch.cat([x, torch.zeros(4, x.shape[1]), torch.ones(4, x.shape[1])])
    y = torch.cat([y, y[:8]])
    x_adv = attack.perturb(model, x, y)
    dist = flat_norm(x_adv - x, attack.norm)
    assert float(dist.max()) <= attack.eps * (1 + 1e-5) + 1e-6, "left the eps-ball"
    if attack.clip_min is not None:
        assert float(x_adv.min()) >= attack.clip_min - 1e-6, "left the clip box"
    if attack.clip_max is not None:
        assert float(x_adv.max()) <= attack.clip_max + 1e-6, "left the clip box"


def check_attack_eps_zero(attack):
    model, x, y = _toy_problem()
    x_adv = _with(attack, eps=0.0).perturb(model, x, y)
    assert torch.equal(x_adv, x), "eps=0 must return X unchanged"


def check_attack_preserves_dtype_shape_device(attack):
    model, x, y = _toy_problem()
    for dtype in (torch.float32, torch.float64):
        x_adv = attack.perturb(model.to(dtype), x.to(dtype), y)
        assert x_adv.dtype == dtype and x_adv.shape == x.shape
        assert x_adv.device == x.device
    model = model.float()
    image_model = torch.nn.Sequential(torch.nn.Flatten(), model)
    xi = x.reshape(len(x), 3, 2, 2)
    assert attack.perturb(image_model, xi, y).shape == xi.shape
    x_np = attack.perturb(model, x.numpy(), y.numpy())
    assert isinstance(x_np, np.ndarray) and x_np.dtype == np.float32


def check_attack_deterministic_and_rng_untouched(attack):
    model, x, y = _toy_problem()
    seeded = _with(attack, random_state=7)
    state = torch.get_rng_state()
    first = seeded.perturb(model, x, y)
    assert torch.equal(torch.get_rng_state(), state), "global torch RNG was touched"
    assert torch.equal(first, seeded.perturb(model, x, y)), "not reproducible"


def check_attack_restores_mode(attack):
    model, x, y = _toy_problem()
    model.train()
    model[2].eval()  # a mixed state must come back exactly
    attack.perturb(model, x, y)
    assert model.training and model[0].training and not model[2].training

    class Boom(torch.nn.Module):
        def forward(self, z):
            raise RuntimeError("boom")

    failing = torch.nn.Sequential(Boom())
    failing.train()
    try:
        attack.perturb(failing, x, y)
    except (RuntimeError, ValueError):   # the model's error, or the attack's report
        pass
    assert failing.training, "train mode not restored after an exception"


def check_attack_leaves_no_param_grad(attack):
    model, x, y = _toy_problem()
    attack.perturb(model, x, y)
    assert all(p.grad is None for p in model.parameters())


def check_attack_under_no_grad(attack):
    model, x, y = _toy_problem()
    with torch.no_grad():
        x_adv = attack.perturb(model, x, y)
    assert float((x_adv - x).abs().max()) > 0, "no perturbation under torch.no_grad()"


def check_attack_increases_loss(attack):
    model, x, y = _toy_problem()
    x_adv = _with(attack, random_start=False).perturb(model, x, y)
    with torch.no_grad():
        clean = torch.nn.functional.cross_entropy(model.eval()(x), y)
        adv = torch.nn.functional.cross_entropy(model(x_adv), y)
    assert float(adv) >= float(clean) - 1e-6, "the attacked loss is lower than clean"


def check_attack_rejects_bad_input(attack):
    model, x, y = _toy_problem()
    cases = [
        (x.long(), y, TypeError, "floating"),
        (x.clone().fill_(float("nan")), y, ValueError, "NaN"),
        (x[:5], y, ValueError, "rows"),
        (x + 2.0, y, ValueError, "clip range"),
    ]
    for bad_x, bad_y, error, words in cases:
        try:
            attack.perturb(model, bad_x, bad_y)
        except error as exc:
            assert words in str(exc), f"unclear message: {exc}"
        else:
            raise AssertionError(f"no {error.__name__} for bad input ({words})")
    for params, words in (({"eps": -0.1}, "eps"), ({"norm": "l3"}, "norm")):
        try:
            _with(attack, **params).perturb(model, x, y)
        except ValueError as exc:
            assert words in str(exc)
        else:
            raise AssertionError(f"no ValueError for {params}")


def check_attack_warns_on_probabilities(attack):
    model, x, y = _toy_problem()
    probs = torch.nn.Sequential(model, torch.nn.Softmax(dim=1))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        attack.perturb(probs, x, y)
    assert any(issubclass(w.category, NotLogitsWarning) for w in caught)


def attack_checks(attack):
    """Yield ``(name, check)`` for every contract check applicable to ``attack``."""
    checks = [check_attack_in_ball_and_box, check_attack_eps_zero,
              check_attack_preserves_dtype_shape_device,
              check_attack_deterministic_and_rng_untouched,
              check_attack_restores_mode, check_attack_leaves_no_param_grad,
              check_attack_under_no_grad, check_attack_increases_loss,
              check_attack_rejects_bad_input, check_attack_warns_on_probabilities]
    for check in checks:
        yield check.__name__, check
