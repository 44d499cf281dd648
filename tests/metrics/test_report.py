"""robustness_report: per-sample and per-attack results with pass counts."""

import joblib
import numpy as np
import pytest
import torch
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression

from sklearn_robust.attacks import APGD, FGSM, PGD, AutoAttack, Square, cascade
from sklearn_robust.exceptions import BlackBoxAttackWarning
from sklearn_robust.metrics import (
    RobustnessReport,
    robust_accuracy_score,
    robust_correct,
    robustness_report,
)


@pytest.fixture(scope="module")
def linear():
    rng = np.random.RandomState(0)
    X = rng.uniform(size=(80, 6)).astype(np.float32)
    y = (X[:, 0] + X[:, 1] > 1.0).astype(int)
    return LogisticRegression().fit(X, y), X, y


def test_report_is_consistent_with_the_scores(linear):
    clf, X, y = linear
    attacks = [FGSM(), PGD(n_steps=10, random_start=False, loss="cw")]
    report = robustness_report(clf, X, y, eps=0.08, attack=attacks)
    assert isinstance(report, RobustnessReport)
    np.testing.assert_array_equal(
        report.robust, robust_correct(clf, X, y, eps=0.08, attack=attacks))
    assert report.robust_accuracy == robust_accuracy_score(clf, X, y, eps=0.08,
                                                           attack=attacks)
    np.testing.assert_array_equal(report.clean_correct, clf.predict(X) == y)
    assert report.clean_accuracy == clf.score(X, y)
    # every point lost between clean and robust is charged to exactly one attack
    names = [row["attack"] for row in report.attacks]
    assert names == ["fgsm", "pgd-10-cw"]
    lost = report.clean_correct & ~report.robust
    assert sum(row["n_fooled"] for row in report.attacks) == lost.sum() > 0
    np.testing.assert_array_equal(report.fooled_by != None, lost)  # noqa: E711
    for name, row in zip(names, report.attacks):
        assert (report.fooled_by == name).sum() == row["n_fooled"]
    # the fooling examples are inside the threat model and misclassified
    assert np.all(report.perturbation_norm <= 0.08 + 1e-5)
    np.testing.assert_allclose(report.perturbation_norm,
                               np.abs(report.X_adv - X).max(axis=1), atol=1e-6)
    assert np.all(clf.predict(report.X_adv[lost]) != y[lost])
    assert report.X_adv.min() >= 0 and report.X_adv.max() <= 1
    # robust accuracy after each attack goes down to the final one
    accs = [row["robust_accuracy"] for row in report.attacks]
    assert accs == sorted(accs, reverse=True)
    assert accs[-1] == report.robust_accuracy
    assert report.attacks[1]["n_attacked"] == \
        report.clean_correct.sum() - report.attacks[0]["n_fooled"]


def test_pass_counts_are_per_attacked_sample(linear):
    clf, X, y = linear
    report = robustness_report(clf, X, y, eps=0.05,
                               attack=PGD(n_steps=7, random_start=False))
    (row,) = report.attacks
    # PGD-k: k forward and k backward passes per attacked point, nothing else
    assert row["n_attacked"] == report.clean_correct.sum()
    assert row["n_forward"] == row["n_backward"] == 7 * row["n_attacked"]
    assert row["forward_per_sample"] == row["backward_per_sample"] == 7.0
    assert report.forward_per_sample == pytest.approx(7 * row["n_attacked"] / len(X))
    assert row["time_s"] > 0 and report.wall_time >= row["time_s"]


def test_pass_counter_counts_what_the_model_sees(linear):
    """The counts equal the model's own record of its gradient passes."""
    torch.manual_seed(0)
    seen = {"forward": 0, "backward": 0}

    class Recording(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = torch.nn.Linear(6, 3)

        def forward(self, x):
            if torch.is_grad_enabled() and x.requires_grad:
                seen["forward"] += len(x)
                x.register_hook(lambda g: seen.__setitem__(
                    "backward", seen["backward"] + len(g)))
            return self.lin(x)

    model = Recording()
    x = torch.rand(30, 6)
    y = model(x).argmax(1).detach()
    seen.update(forward=0, backward=0)
    _, _, info = cascade([APGD(eps=0.1, n_iter=12, random_state=0)], model, x, y,
                         return_info=True)
    (step,) = info["steps"]
    assert step["n_backward"] == seen["backward"] > 0
    assert step["n_forward"] >= seen["forward"] > 0


def test_ensemble_members_and_repeated_names(linear):
    clf, X, y = linear
    report = robustness_report(clf, X, y, eps=0.05, attack=AutoAttack(
        version="fast"))
    assert [row["attack"] for row in report.attacks] == ["apgd-ce", "apgd-t", "square"]
    assert report.attacks[2]["n_backward"] == 0  # Square only queries scores
    twice = robustness_report(clf, X, y, eps=0.05,
                              attack=[PGD(n_steps=3), PGD(n_steps=3)])
    assert [row["attack"] for row in twice.attacks] == ["pgd-3", "pgd-3#2"]


def test_attacks_left_with_no_point_are_rows_of_zeros(linear):
    clf, X, y = linear
    report = robustness_report(clf, X, y, eps=1.0,
                               attack=[PGD(n_steps=20), FGSM()])
    assert report.robust_accuracy == 0.0
    assert report.attacks[1] == dict(attack="fgsm", robust_accuracy=0.0,
                                     n_attacked=0, n_fooled=0, time_s=0.0,
                                     n_forward=0, n_backward=0,
                                     forward_per_sample=0.0, backward_per_sample=0.0)


def test_black_box_report(linear):
    _, X, y = linear
    forest = RandomForestClassifier(n_estimators=5, random_state=0).fit(X, y)
    with pytest.warns(BlackBoxAttackWarning):
        report = robustness_report(forest, X[:20], y[:20], eps=0.1, attack="pgd")
    assert report.black_box
    assert [row["attack"] for row in report.attacks] == ["square"]
    assert report.attacks[0]["n_backward"] == 0
    assert "black-box" in str(report)


def test_plain_torch_module_report():
    torch.manual_seed(0)
    module = torch.nn.Sequential(torch.nn.Linear(5, 4))
    X = torch.rand(25, 5).numpy()
    y = module(torch.as_tensor(X)).argmax(1).numpy()
    report = robustness_report(module, X, y, eps=0.2, attack=PGD(n_steps=5))
    assert report.clean_accuracy == 1.0
    assert report.robust_accuracy < 1.0


def test_printing_frames_and_verbose(linear, capsys):
    clf, X, y = linear
    report = robustness_report(clf, X, y, eps=0.05, attack=PGD(n_steps=4),
                               verbose=1)
    out = capsys.readouterr().out
    assert "clean accuracy: " in out and "robust accuracy after pgd-4: " in out
    text = str(report)
    assert text.splitlines()[0].startswith("Robustness report: eps=0.05 (linf)")
    assert "clean" in text and "pgd-4" in text and "fwd/sample" in text
    assert "robust_accuracy=" in repr(report)
    pd = pytest.importorskip("pandas")
    frame = report.to_frame()
    assert isinstance(frame, pd.DataFrame)
    assert list(frame["attack"]) == ["pgd-4"]
    samples = report.to_frame("samples")
    assert len(samples) == len(X)
    np.testing.assert_array_equal(samples["robust"].to_numpy(), report.robust)
    with pytest.raises(ValueError, match="kind"):
        report.to_frame("rows")
    # silence by default
    robustness_report(clf, X, y, eps=0.05, attack=PGD(n_steps=2))
    assert capsys.readouterr().out == ""


def test_report_validates_like_the_score(linear):
    clf, X, y = linear
    with pytest.raises(ValueError, match="verbose"):
        robustness_report(clf, X, y, eps=0.1, verbose=-1)
    with pytest.raises(ValueError, match="eps"):
        robustness_report(clf, X, y, eps=-0.1)
    with pytest.raises(ValueError, match="clip range"):
        robustness_report(clf, X + 2, y, eps=0.1)
    with pytest.raises(TypeError):
        robustness_report(clf, X, y, eps=0.1, attack=3)
    # the user's arrays are left alone
    X0 = X.copy()
    robustness_report(clf, X, y, eps=0.1, attack=Square(n_queries=10))
    np.testing.assert_array_equal(X, X0)


def test_autoattack_verbose_logs_each_member(linear, capsys):
    clf, X, y = linear
    attack = AutoAttack(eps=0.05, version="fast", random_state=0, verbose=1)
    # alone ...
    from sklearn_robust.utils import get_torch_view
    view = get_torch_view(clf)
    attack.perturb(view, torch.as_tensor(X), torch.as_tensor(y))
    out = capsys.readouterr().out
    for name in ("apgd-ce", "apgd-t", "square"):
        assert f"robust accuracy after {name}: " in out
    # ... and as the scorer's attack, where its members are cascade steps
    robust_accuracy_score(clf, X, y, eps=0.05, attack=attack)
    assert "robust accuracy after square: " in capsys.readouterr().out
    with pytest.raises(ValueError, match="verbose"):
        AutoAttack(verbose=-2).perturb(view, torch.as_tensor(X), torch.as_tensor(y))


@pytest.mark.parametrize("backend", ["threading", "loky"])
def test_sharded_report_equals_serial(linear, backend):
    clf, X, y = linear
    attacks = [FGSM(), PGD(n_steps=4, random_start=False, loss="cw")]
    serial = robustness_report(clf, X, y, eps=0.1, attack=attacks)
    with joblib.parallel_config(backend):
        sharded = robustness_report(clf, X, y, eps=0.1, attack=attacks, n_jobs=3)
        inside = robustness_report(clf, X, y, eps=0.1, attack=attacks)
    for report in (sharded, inside):
        np.testing.assert_array_equal(report.robust, serial.robust)
        np.testing.assert_array_equal(report.fooled_by, serial.fooled_by)
        assert [(r["n_fooled"], r["n_forward"]) for r in report.attacks] == \
            [(r["n_fooled"], r["n_forward"]) for r in serial.attacks]
        assert report.robust_accuracy == serial.robust_accuracy


def test_concatenate_checks_the_attacks(linear):
    clf, X, y = linear
    a = robustness_report(clf, X, y, eps=0.1, attack=FGSM())
    b = robustness_report(clf, X, y, eps=0.1, attack=PGD(n_steps=2))
    with pytest.raises(ValueError, match="different attacks"):
        RobustnessReport.concatenate([a, b])
    assert RobustnessReport.concatenate([a]) is a


def test_standardised_inputs_are_named_in_the_box_error(linear):
    from sklearn.preprocessing import StandardScaler

    clf, X, y = linear
    with pytest.raises(ValueError, match=r"look standardised.*Normalize"):
        robust_accuracy_score(clf, StandardScaler().fit_transform(X), y, eps=0.1)
    with pytest.raises(ValueError, match="clip range") as exc:
        robust_accuracy_score(clf, X + 1.5, y, eps=0.1)
    assert "standardised" not in str(exc.value)
