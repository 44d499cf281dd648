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
    pytest.importorskip("torchattacks")
    from benchmarks import scorer_strength

    scorer_strength.main(SMALL + ["--epochs", "1", "--methods", "natural",
                                  "--repeats", "1"])


def test_precision(results_in_tmp):
    from benchmarks import precision

    records = precision.main(SMALL + ["--epochs", "2", "--steps", "2", "--attack",
                                      "pgd", "--train-precisions", "fp32", "bf16",
                                      "--eval-precisions", "fp32", "bf16"])
    assert [(r["stage"], r["precision"]) for r in records] == [
        ("train", "fp32"), ("train", "bf16"), ("evaluate", "fp32"),
        ("evaluate", "bf16")]
    assert all("time_vs_fp32" in r for r in records)
