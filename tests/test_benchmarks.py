"""Smoke runs of the benchmarks on a few digits: every script still runs end to end
(``python -m benchmarks.NAME``), with results written to a temporary folder."""

from types import SimpleNamespace

import numpy as np
import pytest

from benchmarks import _common

SMALL = ["--data", "digits", "--n-train", "200", "--n-test", "40", "--threads", "1"]


@pytest.fixture(autouse=True)
def results_in_tmp(tmp_path, monkeypatch):
    monkeypatch.setattr(_common, "RESULTS_DIR", str(tmp_path))
    return tmp_path


def test_run_methods(results_in_tmp):
    from benchmarks import run_methods

    records = run_methods.main(SMALL + ["--epochs", "1", "--seeds", "0", "--methods",
                                        "natural", "gairat", "fast_at",
                                        "--eval-attack", "pgd"])
    assert {r["method"] for r in records} == {"natural", "gairat", "fast_at"}
    assert sorted(p.suffix for p in results_in_tmp.iterdir()) == [".json", ".md"]


def test_throughput(results_in_tmp):
    # every method's hand-written loop and the library's classifier run an epoch
    # and make the same forward and backward passes (a behaviour check: the times
    # are not asserted)
    from benchmarks import throughput

    summary = throughput.main(SMALL + ["--repeats", "1", "--steps", "2", "--no-art",
                                       "--no-profile"])
    assert [row["method"] for row in summary] == list(throughput.METHODS)
    for row in summary:
        assert row["same_work"], row
        assert (row["forward_passes"], row["backward_passes"]) == (
            row["hand_forward_passes"], row["hand_backward_passes"])
        assert row["ratio_median"] > 0
    assert sorted(p.suffix for p in results_in_tmp.iterdir()) == [".json", ".md"]


def test_throughput_epochs_per_call():
    # several epochs per timed call: the counts are per epoch and still equal
    from benchmarks import throughput

    summary = throughput.main(SMALL + ["--repeats", "1", "--steps", "2", "--no-art",
                                       "--no-profile", "--no-write", "--methods",
                                       "pgd_at", "fast_at", "--epochs-per-call", "2"])
    assert [row["method"] for row in summary] == ["pgd_at", "fast_at"]
    assert all(row["same_work"] for row in summary), summary


def test_throughput_art(results_in_tmp):
    # the Adversarial Robustness Toolbox is a benchmark-only package (not
    # installed in CI): the test skips without it
    pytest.importorskip("art")
    from benchmarks import throughput

    summary = throughput.main(SMALL + ["--repeats", "1", "--steps", "2", "--methods",
                                       "pgd_at", "trades", "--no-profile",
                                       "--no-write"])
    rows = {row["method"]: row for row in summary}
    assert set(rows) == {"pgd_at", "trades", "art_madry_pgd", "art_trades"}
    assert rows["pgd_at"]["same_work"] and rows["trades"]["same_work"]
    # ART's PGD predicts the adversarial and the clean batch after each attack
    assert rows["art_madry_pgd"]["passes_as_expected"]
    assert rows["art_trades"]["passes_as_expected"]
    assert rows["art_madry_pgd"]["ratio_median"] > 0


def test_robust_datasets(results_in_tmp):
    from benchmarks import robust_datasets

    records = robust_datasets.main(SMALL + [
        "--max-iter", "2", "--epochs", "1", "--seeds", "1", "--archs", "mlp",
        "--learners", "original", "ntk", "ntk_eps0", "trilevel_fast",
        "--ceilings", "pgd_at", "--eval-attack", "pgd", "--memory", "inprocess"])
    sets = {r["set"] for r in records}
    assert {"original", "ntk", "ntk+sign", "ntk+uniform", "ntk_eps0",
            "trilevel_fast"} <= sets
    assert sorted(p.suffix for p in results_in_tmp.iterdir()) == [".json", ".md"]


def test_scorer_strength(results_in_tmp):
    # the reference AutoAttack and torchattacks are benchmark-only packages (not
    # installed in CI): the test skips without them
    pytest.importorskip("pyautoattack")
    pytest.importorskip("torchattacks")
    from benchmarks import scorer_strength

    records = scorer_strength.main(SMALL + ["--epochs", "1", "--methods", "natural",
                                            "--repeats", "1"])
    (row,) = records
    for name in ("ours", "autoattack", "torchattacks"):
        assert 0.0 <= row[f"{name}_acc"] <= row["clean_acc"]
        assert row[f"{name}_max_pert"] <= 0.1 + 1e-6
    assert row["ours_fwd"] > 0 and row["autoattack_fwd"] > 0
    assert sorted(p.suffix for p in results_in_tmp.iterdir()) == [".json", ".md"]


def test_scorer_strength_rgb32_l2(results_in_tmp):
    pytest.importorskip("pyautoattack")
    from benchmarks import scorer_strength

    records = scorer_strength.main([
        "--data", "digits", "--n-train", "100", "--n-test", "10", "--threads", "1",
        "--epochs", "1", "--methods", "natural", "--repeats", "1", "--rgb32",
        "--module", "strided_cnn", "--l2-eps", "0.5", "--implementations", "ours",
        "autoattack", "--no-write"])
    assert [(r["norm"], r["module"]) for r in records] == [
        ("linf", "StridedCNN"), ("l2", "StridedCNN")]
    assert records[1]["autoattack_max_pert"] <= 0.5 + 1e-5
    assert records[1]["ours_max_pert"] <= 0.5 + 1e-5


def test_to_rgb32():
    import numpy as np

    from benchmarks.scorer_strength import reference_shape, to_rgb32

    x = np.random.RandomState(0).uniform(size=(3, 64)).astype(np.float32)
    out = to_rgb32(x)
    assert out.shape == (3, 3, 32, 32) and out.dtype == np.float32
    assert out.min() >= 0.0 and out.max() <= 1.0
    assert np.array_equal(out[:, 0], out[:, 2])
    assert reference_shape((64,)) == (1, 8, 8)
    assert reference_shape((10,)) == (1, 1, 10)
    assert reference_shape((3, 32, 32)) == (3, 32, 32)


def test_precision(results_in_tmp):
    from benchmarks import precision

    records = precision.main(SMALL + ["--epochs", "2", "--steps", "2", "--attack",
                                      "pgd", "--train-precisions", "fp32", "bf16",
                                      "--eval-precisions", "fp32", "bf16"])
    assert [(r["stage"], r["precision"]) for r in records] == [
        ("train", "fp32"), ("train", "bf16"), ("evaluate", "fp32"),
        ("evaluate", "bf16")]
    assert all("time_vs_fp32" in r for r in records)
    assert precision.parse_option("bf16+compile") == ("bf16", {"compile": True})
    assert precision.parse_option("fp32") == ("fp32", {})
    args = SimpleNamespace(eps=0.1, steps=2, batch_size=8, lr=1e-3, device="cpu",
                           seed=0)
    step_only = precision._classifier(args, "fp32+compile_step", np.zeros((4, 64)))
    assert step_only.default_attack().compile and not step_only.compile
    with pytest.raises(SystemExit, match="unknown training option"):
        precision.parse_option("fp32+fast")


def test_scaling(results_in_tmp):
    from benchmarks import scaling

    out = scaling.main(SMALL + [
        "--repeats", "1", "--memory", "inprocess",
        "--kernel-sizes", "20x30", "--depths", "1", "2", "--dtypes", "float64",
        "--step-sizes", "40x20", "--attack-steps", "2",
        "--fit-settings", "50x20", "--fit-steps", "2",
        "--inner-steps", "1", "3", "--tri-steps", "2",
        "--widths", "32", "64", "--emp-depths", "1", "--emp-n", "4",
        "--emp-seeds", "2"])
    assert set(out) == set(scaling.PARTS)
    assert {(r["kind"], r["depth"]) for r in out["kernel"]} == {
        ("cross", 1), ("sym", 1), ("cross", 2), ("sym", 2)}
    assert all(r["forward_s"] > 0 and r["backward_s"] > 0 for r in out["kernel"])
    step = out["distiller"][0]
    assert step["forward_s"] == pytest.approx(
        step["fwd_kernel_bb_s"] + step["fwd_solve_s"] + step["fwd_kernel_tb_s"]
        + step["fwd_loss_s"])
    fit = out["distiller_fit"][0]
    assert fit["n_rows"] == 200 and len(fit["step_s_all"]) == 2
    assert [r["inner_steps"] for r in out["trilevel"]] == [1, 3]
    assert all(0 < r["rel_error_mean"] < 1 for r in out["empirical"])
    names = [p.name for p in results_in_tmp.iterdir()]
    for part in scaling.PARTS:
        suffixes = sorted(n.rsplit(".", 1)[1] for n in names
                          if n.startswith(f"scaling_{part}_digits_cpu_"))
        assert suffixes == ["json", "md", "png"], (part, names)
