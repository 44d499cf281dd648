"""Training and evaluation below float32, each with the robust accuracy it keeps.

For every training precision (``--train-precisions``, default fp32 and bf16) the
same PGD-AT classifier (same seed, data, network and schedule) is trained with
``AdversarialClassifier(precision=...)``; the median epoch time of ``--repeats``
timed epochs (after one warm-up epoch) is recorded beside its clean accuracy and
its robust accuracy under the library's scorer in float32. Then the float32
model is evaluated with ``robustness_report(..., precision=p)`` for every
evaluation precision: robust accuracy and wall time. The issue's rules: an
option that loses more than 1 point of robust accuracy under the strong scorer
is no speed-up; targets on a GPU: bf16 training <= 0.6 x the float32 epoch,
evaluation >= 2 x faster at the same robust accuracy +-0.5 point.

Examples::

    python -m benchmarks.precision --data digits --threads 1
    python -m benchmarks.precision --data mnist --data-path data/mnist.npz \\
        --n-train 10000 --n-test 500 --module smallcnn --device cuda \\
        --train-precisions fp32 bf16 fp16 --eval-precisions fp32 bf16 fp16
"""

# SPDX-License-Identifier: BSD-3-Clause

import argparse
import statistics
import time

import numpy as np

from sklearn_robust import AdversarialClassifier
from sklearn_robust.metrics import robustness_report
from sklearn_robust.nn import MLP, SmallCNN

from ._common import (
    Timer,
    add_data_arguments,
    add_runtime_arguments,
    describe_preset,
    load_data,
    setup_runtime,
    synchronize,
    write_results,
)

DEFAULT_EPS = {"digits": 0.1, "mnist": 0.3, "fashion_mnist": 0.1}


#: training options beyond the precision: ``"bf16+compile"`` is
#: ``precision="bf16", compile=True`` (skorch's ``torch.compile`` of the module,
#: which the training attack runs through too, and of the training attack's
#: step); ``"fp32+compile_step"`` compiles the attack's step only
OPTION_FLAGS = {"compile": {"compile": True},
                "compile_step": {"compile_step": True},
                "channels_last": {"channels_last": True}}


class StepCompiled(AdversarialClassifier):
    """PGD-AT whose training attack compiles its step (``PGD(compile=True)``)
    while the network runs eagerly."""

    def default_attack(self):
        return self.pgd_attack(compile=True)


def parse_option(option):
    """``"bf16+compile"`` -> ``("bf16", {"compile": True})``."""
    precision, *flags = option.split("+")
    extra = {}
    for flag in flags:
        if flag not in OPTION_FLAGS:
            raise SystemExit(f"unknown training option {flag!r} in {option!r}; "
                             f"known: {sorted(OPTION_FLAGS)}")
        extra.update(OPTION_FLAGS[flag])
    return precision, extra


def _classifier(args, option, X):
    module = SmallCNN if X.ndim == 4 else MLP
    precision, extra = parse_option(option)
    cls = StepCompiled if extra.pop("compile_step", False) else AdversarialClassifier
    return cls(
        module=module, eps=args.eps, n_steps=args.steps, step_size=None,
        max_epochs=1, batch_size=args.batch_size, lr=args.lr, device=args.device,
        random_state=args.seed, precision=precision, warm_start=True, **extra)


def _train(args, option, X, y):
    """Fit ``--epochs`` epochs; the median of the timed ones (the first is a
    warm-up, which also holds a ``torch.compile``)."""
    clf = _classifier(args, option, X)
    times = []
    for epoch in range(args.epochs):
        with Timer(args.device) as t:
            if epoch == 0:
                clf.fit(X, y)
            else:
                clf.partial_fit(X, y)
        times.append(t.seconds)
    timed = times[1:] or times
    return clf, statistics.median(timed)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_data_arguments(parser)
    add_runtime_arguments(parser)
    parser.add_argument("--eps", type=float, default=None)
    parser.add_argument("--steps", type=int, default=10, help="training PGD steps")
    parser.add_argument("--epochs", type=int, default=6,
                        help="training epochs (the first one is not timed)")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--attack", default="fast",
                        help="scorer preset of the evaluation (fast, strong, pgd)")
    parser.add_argument("--train-precisions", nargs="+", default=["fp32", "bf16"],
                        help="training options: a precision (fp32, bf16, fp16) "
                             "with optional +compile / +compile_step / "
                             "+channels_last, e.g. fp32+compile")
    parser.add_argument("--eval-precisions", nargs="+", default=["fp32", "bf16"])
    parser.add_argument("--repeats", type=int, default=1,
                        help="evaluations per precision (median time)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tag", default=None)
    args = parser.parse_args(argv)
    setup_runtime(args)
    if args.eps is None:
        args.eps = DEFAULT_EPS[args.data]
    X, X_test, y, y_test, info = load_data(args.data, data_path=args.data_path,
                                           n_train=args.n_train, n_test=args.n_test,
                                           seed=args.seed)
    records, models = [], {}
    for precision in args.train_precisions:
        clf, epoch_s = _train(args, precision, X, y)
        models[precision] = clf
        report = robustness_report(clf, X_test, y_test, eps=args.eps,
                                   attack=args.attack, random_state=args.seed)
        records.append(dict(stage="train", precision=precision, epoch_s=epoch_s,
                            clean_accuracy=report.clean_accuracy,
                            robust_accuracy=report.robust_accuracy))
    base = models.get("fp32") or next(iter(models.values()))
    for precision in args.eval_precisions:
        runs = []
        for _ in range(args.repeats):
            synchronize(args.device)
            start = time.perf_counter()
            report = robustness_report(base, X_test, y_test, eps=args.eps,
                                       attack=args.attack, random_state=args.seed,
                                       precision=precision)
            synchronize(args.device)
            runs.append((time.perf_counter() - start, report.robust_accuracy))
        records.append(dict(stage="evaluate", precision=precision,
                            eval_s=statistics.median(r[0] for r in runs),
                            robust_accuracy=runs[0][1]))
    train = {r["precision"]: r for r in records if r["stage"] == "train"}
    evals = {r["precision"]: r for r in records if r["stage"] == "evaluate"}
    for r in records:
        ref = (train if r["stage"] == "train" else evals).get("fp32")
        if ref is None:
            continue
        key = "epoch_s" if r["stage"] == "train" else "eval_s"
        r["time_vs_fp32"] = r[key] / ref[key]
        r["robust_change_points"] = 100 * (r["robust_accuracy"]
                                           - ref["robust_accuracy"])
        r["kept_accuracy"] = bool(r["robust_change_points"] >= -1.0)
    settings = dict(vars(args), attack_preset=describe_preset(args.attack),
                    data_info=info)
    name = f"precision_{args.data}" + (f"_{args.tag}" if args.tag else "")
    paths = write_results(
        name, records, settings, device=args.device,
        columns=["stage", "precision", "epoch_s", "eval_s", "time_vs_fp32",
                 "clean_accuracy", "robust_accuracy", "robust_change_points",
                 "kept_accuracy"],
        title="Training and evaluation below float32",
        notes=["An option whose robust accuracy drops by more than 1 point is not a "
               "speed-up (kept_accuracy False).",
               "GPU targets: bf16 epoch <= 0.6 x fp32; evaluation >= 2 x faster at "
               "+-0.5 point."])
    for r in records:
        print({k: (round(v, 4) if isinstance(v, float) else v) for k, v in r.items()})
    print("wrote", *paths)
    return records


if __name__ == "__main__":
    np.set_printoptions(precision=4)
    main()
