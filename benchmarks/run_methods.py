"""Train and evaluate robust-training methods; write JSON and Markdown results.

For each method and seed: fit time, time per epoch, clean test accuracy, robust
test accuracy under the library's strong default evaluation
(``robust_accuracy_score`` with ``attack=None``; ``--eval-attack`` picks another
preset) and under a single PGD-20, and the evaluation times. The attacks a
preset stands for are read from the library at run time and written to the
results.

Examples::

    python -m benchmarks.run_methods --data digits --epochs 30 --seeds 0
    python -m benchmarks.run_methods --data mnist --data-path data/mnist.npz \\
        --n-train 2000 --n-test 500 --epochs 5
    python -m benchmarks.run_methods --data mnist --data-path data/mnist.npz \\
        --device cuda --epochs 10 --seeds 0 1 2

A new method is one line in ``METHODS``: a name and a factory taking a
:class:`Setup` and returning an unfitted estimator.
"""

# SPDX-License-Identifier: BSD-3-Clause

import argparse

import numpy as np
import torch

from sklearn_robust.attacks import LogitScaledPGD
from sklearn_robust.metrics import empirical_local_lipschitz, robust_accuracy_score

from ._common import (
    Timer,
    add_data_arguments,
    add_runtime_arguments,
    describe_preset,
    load_data,
    markdown_table,
    setup_runtime,
    warm_up,
    write_results,
)
from ._methods import DEFAULT_ATTACK_STEPS, DEFAULT_EPOCHS, DEFAULT_EPS, METHODS, Setup


def evaluate(model, X_test, y_test, eps, device, seed, eval_attack="strong"):
    """Clean, ``eval_attack`` and PGD-20 robust accuracy with their times."""
    with Timer(device) as t_clean:
        clean = float(np.mean(model.predict(X_test) == y_test))
    with Timer(device) as t_eval:
        robust = robust_accuracy_score(
            model, X_test, y_test, eps=eps, random_state=seed,
            attack=None if eval_attack == "strong" else eval_attack)
    with Timer(device) as t_pgd:
        pgd20 = robust_accuracy_score(model, X_test, y_test, eps=eps, attack="pgd",
                                      random_state=seed)
    # logit-scaled PGD-20 (Hitaj et al. 2021): exposes loss-reweighting masking
    lsa = robust_accuracy_score(model, X_test, y_test, eps=eps,
                                attack=LogitScaledPGD(n_steps=20), random_state=seed)
    # empirical local Lipschitzness of the logits (Yang et al. 2020), test points
    lip = empirical_local_lipschitz(model, X_test[:500], eps=eps)
    return {"clean_acc": clean, f"robust_{eval_attack}": robust,
            "robust_pgd20": pgd20, "robust_logit_scaled": lsa, "local_lipschitz": lip,
            f"eval_{eval_attack}_s": t_eval.seconds, "eval_pgd20_s": t_pgd.seconds,
            "eval_s": t_clean.seconds + t_eval.seconds + t_pgd.seconds}


def summarize(records, keys):
    """Mean and standard deviation over seeds, per method."""
    rows = []
    for method in dict.fromkeys(r["method"] for r in records):
        runs = [r for r in records if r["method"] == method]
        row = {"method": method, "n_seeds": len(runs)}
        for key in keys:
            values = np.array([r[key] for r in runs], dtype=float)
            row[f"{key}_mean"] = float(values.mean())
            row[f"{key}_std"] = float(values.std(ddof=1)) if len(values) > 1 else 0.0
        rows.append(row)
    return rows


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.strip().splitlines()[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    add_data_arguments(parser)
    parser.add_argument("--methods", nargs="+", default=list(METHODS),
                        choices=sorted(METHODS), metavar="METHOD",
                        help=f"methods to run, among {sorted(METHODS)}")
    parser.add_argument("--eps", type=float, default=None,
                        help="L-inf radius for training and evaluation "
                             f"(default: {DEFAULT_EPS})")
    parser.add_argument("--epochs", type=int, default=None,
                        help=f"training epochs (default: {DEFAULT_EPOCHS})")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    add_runtime_arguments(parser)
    parser.add_argument("--module", choices=("auto", "mlp", "smallcnn"),
                        default="auto",
                        help="auto: the library's default network (MLP(256, 256) for "
                             "digits, SmallCNN for 28x28 images)")
    parser.add_argument("--attack-steps", type=int, default=None,
                        help=f"PGD steps of the training attack "
                             f"(default: {DEFAULT_ATTACK_STEPS})")
    parser.add_argument("--step-size", type=float, default=None,
                        help="step of the training attack (default: 2.5 * eps / steps)")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate")
    parser.add_argument("--trades-beta", type=float, default=6.0)
    parser.add_argument("--eval-attack", default="strong",
                        help="scorer preset of the robust column: strong (the "
                             "library's default, attack=None) or another preset name "
                             "of sklearn_robust.metrics (e.g. fast)")
    parser.add_argument("--tag", default=None,
                        help="suffix of the result file names (default: the subset)")
    parser.add_argument("--no-write", action="store_true",
                        help="print the table only")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    device = setup_runtime(args)
    eps = DEFAULT_EPS[args.data] if args.eps is None else args.eps
    epochs = DEFAULT_EPOCHS[args.data] if args.epochs is None else args.epochs
    steps = (DEFAULT_ATTACK_STEPS[args.data] if args.attack_steps is None
             else args.attack_steps)

    robust_col = f"robust_{args.eval_attack}"
    records = []
    for seed in args.seeds:
        X_train, X_test, y_train, y_test, info = load_data(
            args.data, data_path=args.data_path, n_train=args.n_train,
            n_test=args.n_test, seed=seed)
        if args.module == "smallcnn" and args.data == "digits":
            raise SystemExit("SmallCNN needs images of at least 16x16 pixels; use "
                             "--module mlp (or auto) for the 8x8 digits.")
        if not records:
            warm_up(X_train, y_train, device)
        for method in args.methods:
            setup = Setup(eps=eps, seed=seed, epochs=epochs, device=device,
                          module=args.module, input_shape=tuple(X_train.shape[1:]),
                          attack_steps=steps, step_size=args.step_size,
                          batch_size=args.batch_size, lr=args.lr,
                          options={"trades_beta": args.trades_beta})
            model = METHODS[method](setup)
            with Timer(device) as t_fit:
                model.fit(X_train, y_train)
            durations = model.history[:, "dur"]
            row = {"method": method, "seed": seed,
                   "module": type(model.module_).__name__,
                   "fit_s": t_fit.seconds, "epochs_run": len(durations),
                   # skorch's epoch timer: the training epoch with its callbacks
                   "epoch_s": float(np.median(durations)),
                   "stopped_co": bool(getattr(model, "catastrophic_overfitting_",
                                              False))}
            row.update(evaluate(model, X_test, y_test, eps, device, seed,
                                args.eval_attack))
            row["train_acc"] = float(np.mean(model.predict(X_train) == y_train))
            row["gap"] = row["train_acc"] - row["clean_acc"]
            records.append(row)
            print(f"[{method} seed={seed}] fit {row['fit_s']:.1f}s  clean "
                  f"{row['clean_acc']:.3f}  {args.eval_attack} {row[robust_col]:.3f}  "
                  f"pgd20 {row['robust_pgd20']:.3f}  eval {row['eval_s']:.1f}s",
                  flush=True)

    step_size = args.step_size if args.step_size is not None else 2.5 * eps / steps
    settings = {
        "data": args.data, "source": info["source"], "n_train": info["n_train"],
        "n_test": info["n_test"], "input_shape": info["input_shape"],
        "module": args.module, "norm": "linf", "eps": eps, "epochs": epochs,
        "batch_size": args.batch_size, "optimizer": "Adam", "lr": args.lr,
        "train_attack": f"PGD-{steps} step {step_size:.4g}"
                        " (TRADES: KL sign-gradient, same steps; fast_at: one "
                        f"FGSM step of {1.25 * eps:.4g} = 1.25 eps from a uniform "
                        "start, PGD-5 catastrophic-overfitting check)",
        "trades_beta": args.trades_beta, "shuffle": True,
        f"eval_{args.eval_attack}": describe_preset(args.eval_attack),
        "eval_pgd20": describe_preset("pgd"),
        "seeds": list(args.seeds), "device": device,
        "torch_threads": torch.get_num_threads(),
    }
    columns = ["method", "seed", "module", "clean_acc", robust_col,
               "robust_pgd20", "robust_logit_scaled", "local_lipschitz", "train_acc",
               "gap", "fit_s", "epoch_s", "epochs_run", "stopped_co", "eval_s"]
    summary = None
    if len(args.seeds) > 1:
        summary = summarize(records, ["clean_acc", robust_col, "robust_pgd20",
                                      "fit_s", "epoch_s"])
    print()
    print(markdown_table(records, columns))
    if summary:
        print(markdown_table(summary))
    if not args.no_write:
        name = f"methods_{args.data}"
        if args.tag:
            name += f"_{args.tag}"
        elif args.data != "digits" and args.n_train is not None:
            name += f"_n{info['n_train']}"
        paths = write_results(
            name, records, settings, device=device, columns=columns,
            summary=summary,
            title=f"Methods on {args.data} (L-inf eps={eps})",
            notes=[f"{robust_col}: robust_accuracy_score with "
                   + ("attack=None, the library's default evaluation"
                      if args.eval_attack == "strong"
                      else f"attack={args.eval_attack!r}")
                   + f" ({settings[f'eval_{args.eval_attack}']}); robust_pgd20: "
                   "attack='pgd'. Accuracies are fractions of the test set.",
                   "fit_s and eval_s are wall-clock seconds; epoch_s is the "
                   "median of skorch's epoch timer (dur) over the epochs_run "
                   "epochs; stopped_co: the catastrophic-overfitting check "
                   "stopped the fit."])
        print("wrote", *paths)
    return records


if __name__ == "__main__":
    main()
