"""Accelerate: data-parallel training that keeps the robust loss."""

import json
import os
import pickle
import socket
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from sklearn_robust import (
    AdversarialClassifier,
    GAIRATClassifier,
    LangevinAdvClassifier,
    LipschitzDropoutClassifier,
    TRADESClassifier,
)
from sklearn_robust.classifiers import AccelerateMixin, GAIRTRADESClassifier
from sklearn_robust.metrics import robust_accuracy_score

accelerate = pytest.importorskip("accelerate")
hf = pytest.importorskip("skorch.hf")

KW = dict(eps=0.1, n_steps=2, step_size=0.05, max_epochs=2, random_state=0,
          module__hidden_layer_sizes=(16,))
CLASSES = [AdversarialClassifier, TRADESClassifier, GAIRATClassifier,
           GAIRTRADESClassifier, LangevinAdvClassifier, LipschitzDropoutClassifier]


@pytest.fixture(scope="module")
def data(digits_split):
    X, _, y, _ = digits_split
    return X[:160], y[:160]


def _accelerated(base):
    calls = {"rows": 0}

    def robust_loss(self, X, y, sample_weight=None, **fit_params):
        calls["rows"] += len(X)
        return base.robust_loss(self, X, y, sample_weight=sample_weight, **fit_params)

    cls = type(f"Accelerated{base.__name__}", (AccelerateMixin, base),
               {"robust_loss": robust_loss})
    return cls, calls


@pytest.mark.parametrize("base", CLASSES, ids=lambda c: c.__name__)
def test_accelerated_training_is_the_robust_training(base, data):
    X, y = data
    cls, calls = _accelerated(base)
    acc = cls(accelerator=accelerate.Accelerator(cpu=True), device=None,
              **KW).fit(X, y)
    # the method's robust loss is what is optimised, on every training row
    assert calls["rows"] == KW["max_epochs"] * len(X)
    # one process on the CPU: the weights of the plain classifier (Accelerate
    # takes the batches from a DataLoader, which num_workers=0 asks of it too)
    plain = base(**KW, iterator_train__num_workers=0).fit(X, y)
    for p, q in zip(acc.module_.parameters(), plain.module_.parameters()):
        assert torch.equal(p, q)
    assert not isinstance(acc.module_, torch.nn.parallel.DistributedDataParallel)
    np.testing.assert_array_equal(acc.predict(X), plain.predict(X))


def test_fitted_accelerated_classifier_behaves_like_a_plain_one(data, capsys):
    X, y = data
    cls, _ = _accelerated(AdversarialClassifier)
    clf = cls(accelerator=accelerate.Accelerator(cpu=True), device=None,
              **KW).fit(X, y)
    assert capsys.readouterr().out == ""  # verbose=0 is silent, as without it
    assert 0 <= robust_accuracy_score(clf, X, y, eps=0.1, attack="pgd") <= 1
    restored = pickle.loads(pickle.dumps(clf.module_))
    with torch.no_grad():
        torch.testing.assert_close(restored(torch.as_tensor(X)),
                                   clf.module_(torch.as_tensor(X)))
    cls(accelerator=accelerate.Accelerator(cpu=True), device=None, verbose=1,
        **KW).fit(X, y)
    assert "train_loss" in capsys.readouterr().out


def test_skorch_mixin_that_drops_the_robust_loss_is_refused(data):
    X, y = data
    cls = type("Naive", (hf.AccelerateMixin, AdversarialClassifier), {})
    with pytest.raises(TypeError, match=r"plain loss.*sklearn_robust\.classifiers"):
        cls(accelerator=accelerate.Accelerator(cpu=True), device=None,
            **KW).fit(X, y)


SCRIPT = textwrap.dedent('''
    import json, sys
    import torch
    from accelerate import Accelerator
    from sklearn_robust import TRADESClassifier
    from sklearn_robust.classifiers import AccelerateMixin
    from sklearn_robust.datasets import load_digits_images

    class Net(AccelerateMixin, TRADESClassifier):
        rows = 0
        def robust_loss(self, X, y, sample_weight=None, **fit_params):
            type(self).rows += len(X)
            return super().robust_loss(X, y, sample_weight=sample_weight,
                                       **fit_params)

    X, y = load_digits_images(flat=True)
    X, y = X[:256], y[:256]
    accelerator = Accelerator(cpu=True)
    clf = Net(accelerator=accelerator, device=None, eps=0.1, n_steps=2,
              step_size=0.05, max_epochs=2, batch_size=64, random_state=0,
              module__hidden_layer_sizes=(16,)).fit(X, y)
    with torch.no_grad():
        total = float(sum(p.double().sum() for p in clf.module_.parameters()))
    out = dict(world=accelerator.num_processes, rows=Net.rows, weights=total)
    with open(f"{sys.argv[1]}/rank{accelerator.process_index}.json", "w") as f:
        json.dump(out, f)
''')


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_processes_share_the_batches(tmp_path):
    """Data parallel on the CPU (gloo): each process attacks its shard, and the
    synchronised gradients leave both with the same network."""
    script = tmp_path / "train.py"
    script.write_text(SCRIPT)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
           "--master_addr", "127.0.0.1", "--master_port", str(_free_port()),
           str(script), str(tmp_path)]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=300,
                         env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert run.returncode == 0, run.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert all(r["world"] == 2 for r in ranks)
    # 2 epochs of 256 rows, split between the two processes
    assert [r["rows"] for r in ranks] == [256, 256]
    assert ranks[0]["weights"] == ranks[1]["weights"]


def test_precision_belongs_to_the_accelerator(data):
    X, y = data
    cls, _ = _accelerated(AdversarialClassifier)
    with pytest.raises(ValueError, match="mixed_precision='bf16'"):
        cls(accelerator=accelerate.Accelerator(cpu=True), device=None,
            precision="bf16", **KW).fit(X, y)
