import numpy as np
import pytest
import torch

from sklearn_robust.attacks import (
    APGD,
    FGSM,
    PGD,
    AutoAttack,
    Square,
    cw_loss,
    dlr_loss,
    kl_loss,
)
from sklearn_robust.attacks._projections import flat_norm, project, random_init


def _linear_problem():
    torch.manual_seed(0)
    model = torch.nn.Linear(5, 3)
    x = torch.rand(10, 5) * 0.5 + 0.25
    y = torch.randint(0, 3, (10,))
    return model, x, y


def test_fgsm_is_one_sign_step_of_eps():
    model, x, y = _linear_problem()
    x = x.requires_grad_(True)
    loss = torch.nn.functional.cross_entropy(model(x), y, reduction="sum")
    (grad,) = torch.autograd.grad(loss, x)
    expected = (x + 0.1 * grad.sign()).detach()
    assert torch.allclose(FGSM(eps=0.1).perturb(model, x.detach(), y), expected)


def test_pgd_without_random_start_equals_hand_iteration():
    model, x, y = _linear_problem()
    eps, alpha = 0.1, 0.03
    xa = x.clone()
    for _ in range(4):
        xa.requires_grad_(True)
        loss = torch.nn.functional.cross_entropy(model(xa), y, reduction="sum")
        (g,) = torch.autograd.grad(loss, xa)
        xa = torch.min(torch.max(xa.detach() + alpha * g.sign(), x - eps), x + eps)
        xa = xa.clamp(0, 1)
    out = PGD(eps=eps, n_steps=4, step_size=alpha,
              random_start=False).perturb(model, x, y)
    assert torch.allclose(out, xa, atol=1e-6)


def test_pgd_default_step_size_is_madry_rule():
    assert PGD(eps=0.3, n_steps=10)._step_size() == pytest.approx(0.075)


def test_pgd_counts_correct_steps_kappa():
    # a constant model: always predicts class 0, whatever the input
    class Const(torch.nn.Module):
        def forward(self, x):
            out = torch.zeros(len(x), 3) + x.sum() * 0
            out[:, 0] = 5.0
            return out

    x = torch.rand(4, 5)
    y = torch.tensor([0, 1, 0, 2])
    _, info = PGD(eps=0.1, n_steps=7).perturb(Const(), x, y, return_info=True)
    assert info["n_correct_steps"].tolist() == [7, 0, 7, 0]


def test_pgd_kappa_counts_until_flip():
    # 1-D problem: logit of class 1 grows with x; true class 0 flips at x > 0.5
    class Threshold(torch.nn.Module):
        def forward(self, x):
            z = x[:, :1] - 0.5
            return torch.cat([-z, z], dim=1) * 10

    x = torch.tensor([[0.1], [0.3], [0.45]])
    y = torch.zeros(3, dtype=torch.long)
    # step 0.1 up, no random start: points flip after 5, 3 and 1 updates
    _, info = PGD(eps=1.0, n_steps=8, step_size=0.1, random_start=False).perturb(
        Threshold(), x, y, return_info=True)
    assert info["n_correct_steps"].tolist() == [5, 3, 1]


def test_restarts_never_worse_than_single_run():
    torch.manual_seed(1)
    model = torch.nn.Sequential(torch.nn.Linear(8, 32), torch.nn.ReLU(),
                                torch.nn.Linear(32, 4))
    x, y = torch.rand(64, 8), torch.randint(0, 4, (64,))
    single = PGD(eps=0.05, n_steps=3, random_state=0).perturb(model, x, y)
    multi = PGD(eps=0.05, n_steps=3, n_restarts=4, random_state=0).perturb(model, x, y)
    with torch.no_grad():
        fooled_single = (model(single).argmax(1) != y).sum()
        fooled_multi = (model(multi).argmax(1) != y).sum()
    assert fooled_multi >= fooled_single


def test_random_state_stream_gives_fresh_starts():
    model, x, y = _linear_problem()
    attack = PGD(eps=0.1, n_steps=1, step_size=0.01,
                 random_state=np.random.RandomState(0))
    assert not torch.equal(attack.perturb(model, x, y), attack.perturb(model, x, y))


def test_l2_projection_and_init_against_numpy():
    rng = np.random.RandomState(0)
    d = rng.randn(6, 4).astype(np.float32) * 3
    out = project(torch.tensor(d), 1.5, "l2").numpy()
    norms = np.linalg.norm(d, axis=1, keepdims=True)
    expected = d * np.minimum(1.0, 1.5 / norms)
    np.testing.assert_allclose(out, expected, rtol=1e-5)
    x = torch.zeros(200, 10)
    init = random_init(x, 0.7, "l2", torch.Generator().manual_seed(0))
    assert float(flat_norm(init, "l2").max()) <= 0.7 + 1e-6


def test_losses_against_hand_values():
    logits = torch.tensor([[2.0, 1.0, 0.0, -1.0]])
    y = torch.tensor([1])
    assert cw_loss(logits, y).item() == pytest.approx(1.0)        # 2 - 1
    assert dlr_loss(logits, y).item() == pytest.approx(1.0 / 2.0)  # -(1-2)/(2-0)
    p = torch.softmax(logits, 1)
    q = torch.softmax(logits.flip(1), 1)
    expected = (p * (p.log() - q.log())).sum()
    assert kl_loss(logits.flip(1), y, logits).item() == pytest.approx(expected.item())
    with pytest.raises(ValueError, match="3 classes"):
        dlr_loss(torch.zeros(2, 2), torch.tensor([0, 1]))


@pytest.mark.parametrize("params, error, match", [
    ({"n_steps": 0}, ValueError, "n_steps"),
    ({"step_size": -1.0}, ValueError, "step_size"),
    ({"random_start": "gauss"}, ValueError, "random_start"),
    ({"loss": "hinge"}, ValueError, "loss"),
    ({"clip_min": 1.0, "clip_max": 0.0}, ValueError, "clip_min"),
])
def test_pgd_bad_parameters(params, error, match):
    model, x, y = _linear_problem()
    with pytest.raises(error, match=match):
        PGD(**params).perturb(model, x, y)


def test_perturb_does_not_modify_inputs():
    model, x, y = _linear_problem()
    x_np = x.numpy().copy()
    before = x_np.copy()
    PGD(eps=0.1, n_steps=2).perturb(model, x_np, y.numpy())
    np.testing.assert_array_equal(x_np, before)
    xt = x.clone()
    PGD(eps=0.1, n_steps=2).perturb(model, xt, y)
    assert torch.equal(xt, x)


def test_unbounded_box():
    model, x, y = _linear_problem()
    x = x * 10 - 5
    x_adv = PGD(eps=0.1, clip_min=None, clip_max=None, n_steps=2).perturb(model, x, y)
    assert float((x_adv - x).abs().max()) <= 0.1 + 1e-6


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no cuda device")
def test_pgd_on_cuda_keeps_device():
    model, x, y = _linear_problem()
    model, x, y = model.cuda(), x.cuda(), y.cuda()
    x_adv = PGD(eps=0.1, random_state=0).perturb(model, x, y)
    assert x_adv.is_cuda
    cpu = PGD(eps=0.1, random_state=0).perturb(model.cpu(), x.cpu(), y.cpu())
    assert float((x_adv.cpu() - x.cpu()).abs().max()) <= 0.1 + 1e-6
    assert cpu.shape == x_adv.shape


@pytest.mark.parametrize("make", [
    lambda: PGD(eps=0.1, n_steps=2), lambda: APGD(eps=0.1, n_iter=2),
    lambda: Square(eps=0.1, n_queries=5), lambda: AutoAttack(eps=0.1, version="fast")],
    ids=["PGD", "APGD", "Square", "AutoAttack"])
def test_labels_and_model_outputs_are_checked_before_attacking(make):
    torch.manual_seed(0)
    model = torch.nn.Linear(6, 3)
    x = torch.rand(4, 6)
    attack = make()
    for bad in ([0, 1, 2, 3], [0, -1, 1, 2]):     # 3 logits: labels in [0, 2]
        with pytest.raises(ValueError, match=r"class indices in \[0, 2\]"):
            attack.perturb(model, x, torch.tensor(bad))
    with pytest.raises(ValueError, match=r"failed on an input of shape \(1, 5\)"):
        attack.perturb(model, torch.rand(4, 5), torch.tensor([0, 1, 2, 0]))

    class ThreeD(torch.nn.Module):
        def forward(self, z):
            return model(z)[:, :, None]

    with pytest.raises(ValueError, match="floating scores of shape"):
        attack.perturb(ThreeD(), x, torch.tensor([0, 1, 2, 0]))


def test_attack_seeds_are_scikit_learns_range():
    from sklearn_robust.attacks import PGD, AutoAttack

    model, x, y = torch.nn.Linear(4, 3), torch.rand(6, 4), torch.arange(6) % 3
    PGD(eps=0.1, n_steps=1, random_state=2**32 - 1).perturb(model, x, y)
    for bad in (2**32, -1):
        with pytest.raises(ValueError, match="random_state"):
            PGD(eps=0.1, n_steps=1, random_state=bad).perturb(model, x, y)
    # the ensemble seeds its members in the same range
    members = AutoAttack(eps=0.1, random_state=0).members(model, x)
    seeds = [m.random_state for m in members if "random_state" in m.get_params()]
    assert seeds and all(0 <= s < 2**32 for s in seeds)


def test_logits_check_is_skipped_with_check_input_false():
    import warnings

    from sklearn_robust.attacks._base import perturb_validated
    from sklearn_robust.exceptions import NotLogitsWarning

    model, x, y = _linear_problem()
    softmax = torch.nn.Sequential(model, torch.nn.Softmax(dim=1))
    attack = PGD(eps=0.1, n_steps=2)
    with pytest.warns(NotLogitsWarning):
        attack.perturb(softmax, x, y)
    with warnings.catch_warnings():
        warnings.simplefilter("error", NotLogitsWarning)
        attack.perturb(softmax, x, y, check_input=False)
        perturb_validated(attack, softmax, x, y)
        perturb_validated(attack, model, x, y, check_logits=True)
    with pytest.warns(NotLogitsWarning):
        perturb_validated(attack, softmax, x, y, check_logits=True)
    # the flag does not leak out of the call
    with pytest.warns(NotLogitsWarning):
        PGD(eps=0.1, n_steps=2).perturb(softmax, x, y)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no cuda device")
@pytest.mark.parametrize("norm", ["linf", "l2", "l1"])
@pytest.mark.parametrize("n_restarts", [1, 3])
@pytest.mark.parametrize("compile", [False, True], ids=["eager", "compiled"])
def test_training_attack_never_synchronises_with_the_host(norm, n_restarts, compile):
    # the attack loop of training (check_input=False) must not read device
    # values on the host: torch raises on any synchronising call in this mode
    model, x, y = _linear_problem()
    model, x, y = model.cuda(), x.cuda(), y.cuda()
    eps = {"linf": 0.1, "l2": 0.5, "l1": 2.0}[norm]
    attack = PGD(eps=eps, norm=norm, n_steps=3, n_restarts=n_restarts, random_state=0,
                 compile=compile)
    attack.perturb(model, x, y, check_input=False)     # warm-up (lazy init)
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        x_adv, info = attack.perturb(model, x, y, return_info=True, check_input=False)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert x_adv.is_cuda and info["n_correct_steps"].is_cuda


@pytest.mark.parametrize("device", [
    "cpu", pytest.param("cuda", marks=[pytest.mark.cuda, pytest.mark.skipif(
        not torch.cuda.is_available(), reason="no cuda device")])])
def test_compiled_pgd_step_gives_the_eager_attack(device):
    # PGD(compile=True) runs the step after each gradient through torch.compile:
    # the same iterates as the eager step (bitwise for L-inf: the same elementwise
    # operations in the same order; the fused L2 norm may round differently)
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.ReLU(),
                                torch.nn.Linear(32, 4)).to(device)
    x = torch.rand(24, 16, device=device)
    y = torch.randint(0, 4, (24,), device=device)
    for norm, eps in [("linf", 0.1), ("l2", 0.5)]:
        kw = dict(eps=eps, norm=norm, n_steps=5, random_state=0)
        eager = PGD(**kw).perturb(model, x, y)
        compiled = PGD(**kw, compile=True).perturb(model, x, y)
        if norm == "linf":
            assert torch.equal(compiled, eager)
        else:
            assert torch.allclose(compiled, eager, atol=1e-5)
        assert not torch.equal(eager, x)
