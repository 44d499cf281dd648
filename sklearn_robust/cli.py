"""The command line: ``python -m sklearn_robust`` (or ``sklearn-robust``).

Commands
--------
demo           natural vs PGD-AT vs TRADES on digits, clean and robust accuracy
train          train a robust classifier by name and save it
evaluate       attack a saved model (or torch module): table, JSON, robustness curve
learn-dataset  learn a robust training set and save it as .npz

Run ``python -m sklearn_robust COMMAND --help`` for each command's options.
Exit codes: 0 success, 1 an error in the work (a bad value or file, reported in
one line), 2 a usage error (reported by argparse).
"""

# SPDX-License-Identifier: BSD-3-Clause

import argparse
import ast
import json
import os
import pickle
import sys
import time

import numpy as np

__all__ = ["main"]


def _classifiers():
    from . import classifiers as c

    return {"natural": (c.AdversarialClassifier, {"eps": 0.0}),
            "pgd-at": (c.AdversarialClassifier, {}),
            "trades": (c.TRADESClassifier, {}),
            "fast-at": (c.FastAdversarialClassifier, {}),
            "gairat": (c.GAIRATClassifier, {}),
            "gair-trades": (c.GAIRTRADESClassifier, {}),
            "dale": (c.LangevinAdvClassifier, {}),
            "lipschitz-dropout": (c.LipschitzDropoutClassifier, {})}


def _learners():
    from . import dataset_learning as d

    return {"ntk": d.NTKRobustDistiller, "trilevel": d.TriLevelDatasetLearner,
            "robust-features": d.RobustFeatureDataset}


class CLIError(Exception):
    """An error reported in one line with exit code 1."""


# ------------------------------------------------------------------ data
def _load_data(args, subset):
    """``(X, y)`` of ``subset`` ("train" or "test") of ``--data``.

    ``digits`` (scikit-learn's, a stratified 70/30 split seeded by ``--seed``)
    or the path of a local MNIST / Fashion-MNIST file (.npz or IDX folder).
    """
    from .datasets import load_digits_images, load_mnist

    n = args.n_train if subset == "train" else args.n_test
    if args.data == "digits":
        from sklearn.model_selection import train_test_split

        X, y = load_digits_images(flat=not args.images)
        parts = train_test_split(X, y, test_size=0.3, stratify=y,
                                 random_state=args.seed)
        X, y = (parts[0], parts[2]) if subset == "train" else (parts[1], parts[3])
        return (X[:n], y[:n]) if n else (X, y)
    if not os.path.exists(args.data):
        raise CLIError(f"--data: no file or folder {args.data!r} (give 'digits' or "
                       "the path of an MNIST / Fashion-MNIST .npz file).")
    return load_mnist(args.data, subset=subset, flat=not args.images, n_samples=n,
                      random_state=args.seed)


def _param(text):
    """``NAME=VALUE`` with a Python literal value (strings may stay bare)."""
    name, sep, value = text.partition("=")
    if not sep or not name.isidentifier():
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    try:
        return name, ast.literal_eval(value)
    except (ValueError, SyntaxError):
        return name, value


def _positive_int(text):
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be an int >= 1, got {text}")
    return value


def _non_negative_float(text):
    value = float(text)
    if not np.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, got {text}")
    return value


def _add_data_args(p, *, train=True):
    p.add_argument("--data", default="digits",
                   help="'digits' (default) or the path of a local MNIST / "
                        "Fashion-MNIST file (.npz, or a folder of IDX files)")
    p.add_argument("--images", action="store_true",
                   help="keep images (N, 1, H, W) for a convolutional network "
                        "instead of flat rows")
    if train:
        p.add_argument("--n-train", type=_positive_int, default=None,
                       help="use the first N training rows")
    p.add_argument("--n-test", type=_positive_int, default=None,
                   help="use the first N test rows")
    p.add_argument("--seed", type=int, default=0,
                   help="split and random_state seed (default 0)")


def _add_threat_args(p, eps=0.1):
    p.add_argument("--eps", type=_non_negative_float, default=eps,
                   help=f"radius of the threat model (default {eps})")
    p.add_argument("--norm", default="linf", choices=["linf", "l2", "l1"],
                   help="norm of the threat model (default linf)")


# --------------------------------------------------------------- commands
def _make_classifier(method, args, **defaults):
    """The classifier ``method`` with the command's threat model and ``--param``s
    (the method's published defaults otherwise)."""
    cls, fixed = _classifiers()[method]
    params = {"eps": args.eps, "norm": args.norm, "max_epochs": args.epochs,
              "random_state": args.seed, "verbose": max(args.verbose - 1, 0),
              **defaults, **dict(args.param or []), **fixed}
    try:
        return cls(**params)
    except TypeError as exc:
        raise CLIError(f"--param: {exc}") from exc


def _report(model, X, y, args):
    from .metrics import robustness_report

    return robustness_report(model, X, y, eps=args.eps, norm=args.norm,
                             attack=args.attack, random_state=args.seed,
                             verbose=args.verbose)


def cmd_demo(args):
    """The README's main job: natural, PGD-AT and TRADES on digits."""
    args.data, args.images, args.n_train = "digits", False, None
    X, y = _load_data(args, "train")
    X_test, y_test = _load_data(args, "test")
    if args.n_test:
        X_test, y_test = X_test[:args.n_test], y_test[:args.n_test]
    print(f"digits: {len(X)} train / {len(X_test)} test rows, {args.norm} "
          f"eps={args.eps}, attack={args.attack}")
    # the gallery demo's settings: PGD-10 with Madry et al.'s 2.5 eps / steps
    demo = dict(n_steps=10, step_size=max(2.5 * args.eps / 10, 1e-3))
    rows = []
    for method in ("natural", "pgd-at", "trades"):
        start = time.perf_counter()
        extra = {"beta": 6.0} if method == "trades" else {}
        model = _make_classifier(method, args, **demo, **extra).fit(X, y)
        fit_s = time.perf_counter() - start
        report = _report(model, X_test, y_test, args)
        rows.append((method, report.clean_accuracy, report.robust_accuracy, fit_s,
                     report.wall_time))
    print(f"{'model':<10}{'clean acc':>11}{'robust acc':>12}{'fit (s)':>9}"
          f"{'attack (s)':>12}")
    for name, clean, robust, fit_s, attack_s in rows:
        print(f"{name:<10}{clean:>11.3f}{robust:>12.3f}{fit_s:>9.1f}{attack_s:>12.1f}")
    return 0


def cmd_train(args):
    X, y = _load_data(args, "train")
    model = _make_classifier(args.method, args)
    start = time.perf_counter()
    model.fit(X, y)
    print(f"{args.method}: trained on {len(X)} rows in "
          f"{time.perf_counter() - start:.1f} s")
    if args.n_test is not None or args.data == "digits":
        X_test, y_test = _load_data(args, "test")
        print(f"clean accuracy on {len(X_test)} test rows: "
              f"{model.score(X_test, y_test):.4f}")
    with open(args.out, "wb") as f:
        pickle.dump(model, f)
    print(f"saved {args.out}")
    return 0


def _load_model(path):
    if not os.path.isfile(path):
        raise CLIError(f"no model file {path!r}")
    if path.endswith((".pt", ".pth")):
        import torch

        model = torch.load(path, map_location="cpu", weights_only=False)
        if not isinstance(model, torch.nn.Module):
            raise CLIError(f"{path!r} holds a {type(model).__name__}, not a "
                           "torch.nn.Module (save the whole module with "
                           "torch.save(module, path), not its state_dict)")
        return model.eval()
    with open(path, "rb") as f:
        try:
            return pickle.load(f)
        except (pickle.UnpicklingError, EOFError, AttributeError,
                ModuleNotFoundError) as exc:
            raise CLIError(f"{path!r} is not a pickled estimator: {exc}") from exc


def cmd_evaluate(args):
    model = _load_model(args.model)
    X, y = _load_data(args, "test")
    report = _report(model, X, y, args)
    print(report)
    if args.json:
        summary = {"model": args.model, "data": args.data, "eps": args.eps,
                   "norm": args.norm, "attack": args.attack,
                   "n_samples": report.n_samples,
                   "clean_accuracy": report.clean_accuracy,
                   "robust_accuracy": report.robust_accuracy,
                   "wall_time_s": report.wall_time, "black_box": report.black_box,
                   "attacks": report.attacks,
                   "robust": report.robust.tolist(),
                   "fooled_by": report.fooled_by.tolist()}
        with open(args.json, "w") as f:
            json.dump(summary, f, indent=1)
        print(f"wrote {args.json}")
    if args.curve:
        from .metrics import RobustnessCurveDisplay

        try:
            import matplotlib

            matplotlib.use("Agg")
        except ImportError as exc:
            raise CLIError("--curve needs matplotlib: pip install matplotlib") from exc
        radii = args.curve_eps or [args.eps * f for f in (0, 0.5, 1, 1.5, 2)]
        disp = RobustnessCurveDisplay.from_estimator(
            model, X, y, eps=radii, norm=args.norm, attack=args.attack,
            name=os.path.basename(args.model), random_state=args.seed)
        disp.figure_.savefig(args.curve, dpi=120, bbox_inches="tight")
        print(f"wrote {args.curve}")
    return 0


def cmd_learn_dataset(args):
    from .dataset_learning import save_dataset

    X, y = _load_data(args, "train")
    params = {"eps": args.eps, "norm": args.norm, "random_state": args.seed,
              "verbose": args.verbose, **dict(args.param or [])}
    try:
        learner = _learners()[args.learner](**params)
    except TypeError as exc:
        raise CLIError(f"--param: {exc}") from exc
    start = time.perf_counter()
    learner.fit(X, y)
    print(f"{args.learner}: learned {len(learner.X_robust_)} rows from {len(X)} in "
          f"{time.perf_counter() - start:.1f} s")
    path = save_dataset(args.out, learner, metadata={"data": args.data})
    print(f"saved {path}")
    return 0


# ----------------------------------------------------------------- parser
def _parser():
    parser = argparse.ArgumentParser(
        prog="python -m sklearn_robust",
        description="Adversarially robust classification with scikit-learn and "
                    "PyTorch: train, evaluate and learn robust datasets.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def attack_arg(p, default):
        p.add_argument("--attack", default=default,
                       help="scorer preset: strong (AutoAttack standard), fast, "
                            f"pgd (default {default})")

    def common(p):
        p.add_argument("-v", "--verbose", action="count", default=0,
                       help="progress and per-attack lines")

    p = sub.add_parser("demo", help="natural vs PGD-AT vs TRADES on digits",
                       description=cmd_demo.__doc__)
    _add_threat_args(p)
    p.add_argument("--epochs", type=_positive_int, default=30)
    p.add_argument("--n-test", type=_positive_int, default=None,
                   help="score the first N test rows")
    p.add_argument("--seed", type=int, default=0)
    attack_arg(p, "strong")
    common(p)
    p.set_defaults(func=cmd_demo, param=None)

    p = sub.add_parser("train", help="train a robust classifier and save it",
                       description="Train a classifier of the library by name and "
                                   "pickle the fitted estimator.")
    p.add_argument("method", choices=list(_classifiers()))
    _add_data_args(p)
    _add_threat_args(p)
    p.add_argument("--epochs", type=_positive_int, default=30)
    p.add_argument("--param", type=_param, action="append", metavar="NAME=VALUE",
                   help="any other parameter of the classifier (repeatable), e.g. "
                        "--param beta=6 --param module__hidden_layer_sizes='(128,)'")
    p.add_argument("--out", default="model.pkl", help="file to write (model.pkl)")
    common(p)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("evaluate", help="attack a saved model",
                       description="Attack a pickled estimator (train's output) or "
                                   "a torch module saved with torch.save (.pt), "
                                   "print the per-attack table, and optionally "
                                   "write JSON and a robustness-curve PNG.")
    p.add_argument("model", help="a .pkl of train, or a .pt torch module")
    _add_data_args(p, train=False)
    _add_threat_args(p)
    attack_arg(p, "strong")
    p.add_argument("--json", help="write the report as JSON here")
    p.add_argument("--curve", help="write a robustness-curve PNG here")
    p.add_argument("--curve-eps", type=_non_negative_float, nargs="+",
                   help="radii of the curve (default 0, 0.5, 1, 1.5, 2 x eps)")
    common(p)
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("learn-dataset", help="learn a robust training set",
                       description="Learn a robust training set with a learner of "
                                   "sklearn_robust.dataset_learning and save it "
                                   "(.npz with its metadata).")
    p.add_argument("learner", choices=list(_learners()))
    _add_data_args(p)
    _add_threat_args(p)
    p.add_argument("--param", type=_param, action="append", metavar="NAME=VALUE",
                   help="any other parameter of the learner (repeatable)")
    p.add_argument("--out", default="robust_dataset.npz")
    common(p)
    p.set_defaults(func=cmd_learn_dataset)
    return parser


def main(argv=None):
    """Run the command line; returns the exit code."""
    args = _parser().parse_args(argv)
    try:
        return args.func(args)
    except (CLIError, ValueError, TypeError, FileNotFoundError, OSError) as exc:
        print(f"sklearn_robust {args.command}: error: {exc}", file=sys.stderr)
        return 1
