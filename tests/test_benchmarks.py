"""Smoke runs of the benchmarks on a few digits: every script still runs end to end
(``python -m benchmarks.NAME``), with results written to a temporary folder."""

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
    from benchmarks import throughput

    throughput.main(SMALL + ["--repeats", "1", "--steps", "2", "--no-write"])


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
