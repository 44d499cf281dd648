"""The command line: each command end to end on tiny settings, errors, exit codes."""

import json
import pickle
import subprocess
import sys

import numpy as np
import pytest
import torch

from sklearn_robust import AdversarialClassifier
from sklearn_robust.cli import main
from sklearn_robust.dataset_learning import load_dataset

TINY = ["--epochs", "2", "--param", "n_steps=2", "--param", "step_size=0.05",
        "--param", "module__hidden_layer_sizes=(16,)"]


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("cli") / "m.pkl"
    assert main(["train", "pgd-at", "--n-train", "300", *TINY, "--out",
                 str(path)]) == 0
    return path


def test_train_saves_a_fitted_classifier(model_file, capsys):
    with open(model_file, "rb") as f:
        model = pickle.load(f)
    assert isinstance(model, AdversarialClassifier)
    assert model.eps == 0.1 and model.n_steps == 2 and model.max_epochs == 2
    assert model.module_.hidden_layer_sizes == (16,)
    assert model.n_features_in_ == 64


def test_train_fast_at(tmp_path, capsys):
    path = tmp_path / "fast.pkl"
    assert main(["train", "fast-at", "--n-train", "300", "--epochs", "2",
                 "--param", "module__hidden_layer_sizes=(16,)", "--out",
                 str(path)]) == 0
    with open(path, "rb") as f:
        model = pickle.load(f)
    assert model.attack_.n_steps == 1 and len(model.history) == 2


def test_evaluate_prints_the_table_and_writes_json_and_curve(model_file, tmp_path,
                                                             capsys):
    out_json, out_png = tmp_path / "r.json", tmp_path / "c.png"
    assert main(["evaluate", str(model_file), "--attack", "pgd", "--n-test", "60",
                 "--json", str(out_json), "--curve", str(out_png),
                 "--curve-eps", "0", "0.1"]) == 0
    text = capsys.readouterr().out
    assert "Robustness report: eps=0.1 (linf)" in text and "pgd-20" in text
    report = json.loads(out_json.read_text())
    assert report["n_samples"] == 60 and len(report["robust"]) == 60
    assert 0 <= report["robust_accuracy"] <= report["clean_accuracy"] <= 1
    assert [row["attack"] for row in report["attacks"]] == ["pgd-20"]
    assert out_png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_evaluate_a_saved_torch_module(tmp_path, capsys):
    torch.manual_seed(0)
    module = torch.nn.Sequential(torch.nn.Linear(64, 10))
    path = tmp_path / "net.pt"
    torch.save(module, path)
    assert main(["evaluate", str(path), "--attack", "pgd", "--n-test", "30"]) == 0
    assert "30 samples" in capsys.readouterr().out
    torch.save(module.state_dict(), tmp_path / "weights.pt")
    assert main(["evaluate", str(tmp_path / "weights.pt")]) == 1
    assert "not a torch.nn.Module" in capsys.readouterr().err


def test_learn_dataset_saves_the_set(tmp_path):
    out = tmp_path / "set.npz"
    assert main(["learn-dataset", "trilevel", "--n-train", "80", "--param",
                 "max_iter=2", "--param", "inner_steps=2", "--out", str(out)]) == 0
    data = load_dataset(out)
    assert data.X.shape == (80, 64) and data.metadata["learner"] == \
        "TriLevelDatasetLearner"
    assert data.metadata["data"] == "digits" and data.metadata["eps"] == 0.1


def test_local_mnist_file(tmp_path, model_file):
    rng = np.random.RandomState(0)
    fake = tmp_path / "mnist.npz"
    np.savez(fake, x_train=rng.randint(0, 256, (40, 28, 28), dtype=np.uint8),
             y_train=np.arange(40) % 10,
             x_test=rng.randint(0, 256, (20, 28, 28), dtype=np.uint8),
             y_test=np.arange(20) % 10)
    out = tmp_path / "cnn.pkl"
    assert main(["train", "natural", "--data", str(fake), "--images", "--epochs",
                 "1", "--out", str(out)]) == 0
    with open(out, "rb") as f:
        assert pickle.load(f).input_shape_ == (1, 28, 28)
    assert main(["evaluate", str(out), "--data", str(fake), "--images",
                 "--attack", "pgd"]) == 0


@pytest.mark.parametrize("argv, code, message", [
    (["evaluate", "missing.pkl"], 1, "no model file"),
    (["train", "pgd-at", "--data", "/no/such/file.npz"], 1, "--data: no file"),
    (["train", "pgd-at", "--epochs", "1", "--param", "beta=-1"], 1, "beta"),
    (["train", "trades", "--epochs", "1", "--param", "beta=-1"], 1, "beta"),
    (["learn-dataset", "ntk", "--param", "max_iter=0"], 1, "max_iter"),
])
def test_errors_are_one_line_with_exit_code_1(argv, code, message, capsys):
    assert main(argv) == code
    err = capsys.readouterr().err
    assert err.startswith("sklearn_robust ") and message in err
    assert "Traceback" not in err


@pytest.mark.parametrize("argv", [["train", "nonsense"], ["train", "pgd-at",
                                  "--eps", "-1"], ["evaluate"], []])
def test_usage_errors_exit_2(argv):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2


def test_module_entry_point_and_help():
    run = subprocess.run([sys.executable, "-m", "sklearn_robust", "--help"],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0
    for command in ("demo", "train", "evaluate", "learn-dataset"):
        assert command in run.stdout


def test_demo_table(capsys):
    assert main(["demo", "--epochs", "1", "--attack", "pgd", "--n-test", "40"]) == 0
    out = capsys.readouterr().out
    for name in ("natural", "pgd-at", "trades", "clean acc", "robust acc"):
        assert name in out
