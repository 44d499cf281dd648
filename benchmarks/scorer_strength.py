"""The library's standard AutoAttack side by side with the reference AutoAttack.

Trains natural, PGD-AT, TRADES and GAIRAT models with the library
(``_methods.METHODS``) and evaluates each on the same test points with:

- ``ours``: ``robustness_report(model, X, y, eps=eps, norm=norm)``, the library's
  default evaluation (AutoAttack's standard version: APGD-CE, APGD-T (9 targets),
  FAB-T (9 targets), Square (5000 queries), as a worst-case cascade); robust
  accuracy, and the forward and backward passes per sample from the report;
- ``autoattack``: the authors' code (``pip install pyautoattack``),
  ``AutoAttack(net, norm=..., eps=eps, version="standard", seed=seed)`` and
  ``run_standard_evaluation`` on the library's torch view of the model
  (``sklearn_robust.utils.get_torch_view``, labels from ``view.encode(y)``),
  wrapped in a module that counts the samples of every forward pass and, through
  a hook on the output tensor, of every backward pass (as the library's own
  counter does), per member of the ensemble (read from the reference's log);
- ``torchattacks``: torchattacks' ``AutoAttack(version="standard")``, an
  independent implementation with its own defaults (``pip install
  torchattacks``); ``torchattacks_full`` (off by default): its APGD-CE, APGD-T and
  Square with the original iterations in a cascade.

Both packages are used by this benchmark only; the library does not depend on
them. The requirement: our robust accuracy <= the reference's + 0.5 point on
every model; the target: that at <= 0.5x the reference's wall time.

Timings on a shared machine are noisy, so each model is evaluated ``--repeats``
times by every implementation, rotating which one goes first, and the median
times are compared: load affects all alike. The 1-minute load average is
recorded before each model.

Examples::

    python -m benchmarks.scorer_strength --data digits --threads 1 --n-test 200
    python -m benchmarks.scorer_strength --data mnist --data-path data/mnist.npz \\
        --n-train 2000 --n-test 200 --epochs 5 --module mlp --eps 0.1 --threads 1
    # a 3-channel CNN on 3x32x32 inputs (MNIST resized and tiled), L-inf and L2
    python -m benchmarks.scorer_strength --data mnist --data-path data/mnist.npz \\
        --n-train 2000 --n-test 100 --epochs 10 --rgb32 --module strided_cnn \\
        --eps 0.1 --l2-eps 2.0 --methods natural pgd_at --threads 1
"""

# SPDX-License-Identifier: BSD-3-Clause

import argparse
import inspect
import logging
import math
import os
import re
import statistics
import time

import numpy as np
import torch

from sklearn_robust.metrics import robustness_report
from sklearn_robust.nn import image_shape
from sklearn_robust.utils import get_torch_view

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

IMPLEMENTATIONS = ("ours", "autoattack", "torchattacks", "torchattacks_full")
DEFAULT_IMPLEMENTATIONS = ("ours", "autoattack", "torchattacks")
REFERENCE_NORMS = {"linf": "Linf", "l2": "L2", "l1": "L1"}


# ------------------------------------------------------------------------- data


def to_rgb32(X, size=32):
    """Images resized to ``size x size`` (bilinear) and tiled to 3 channels.

    ``X`` holds flat rows (read as square one-channel images, 64 -> 8x8),
    ``(n, h, w)`` or ``(n, 1, h, w)`` images in [0, 1]; returns float32
    ``(n, 3, size, size)`` in [0, 1] (bilinear interpolation is a convex
    combination of pixels, so the box is kept).
    """
    x = torch.as_tensor(np.asarray(X), dtype=torch.float32)
    c, h, w = image_shape(tuple(x.shape[1:]))
    x = x.reshape(len(x), c, h, w)
    if (h, w) != (size, size):
        x = torch.nn.functional.interpolate(x, size=(size, size), mode="bilinear",
                                            align_corners=False)
    if c == 1:
        x = x.repeat(1, 3, 1, 1)
    return x.clamp(0.0, 1.0).numpy()


def reference_shape(input_shape):
    """The image shape ``(c, h, w)`` the reference implementations attack.

    Their Square attack needs images: flat rows of a square size become
    one-channel square images (digits: 64 -> 1x8x8, Square's windows are then
    squares of pixels); other flat rows become ``(1, 1, d)`` signals.
    """
    shape = tuple(input_shape)
    if len(shape) == 3:
        return shape
    if len(shape) == 2:
        return (1,) + shape
    d = int(np.prod(shape))
    side = math.isqrt(d)
    return (1, side, side) if side * side == d else (1, 1, d)


# ---------------------------------------------------------------- pass counting


class CountingModel(torch.nn.Module):
    """The model's torch view on images, counting the samples of its passes.

    Reshapes the image batches of the reference implementations back to the
    estimator's input shape. A forward pass of a batch of ``n`` counts ``n``; a
    backward pass is counted by a hook on the output tensor when a gradient
    reaches it (``n`` per backward), as the library's own counter does.
    """

    def __init__(self, view, input_shape):
        super().__init__()
        self.view = view
        self.input_shape = tuple(input_shape)
        self.n_forward = 0
        self.n_backward = 0

    def forward(self, x):
        out = self.view(x.reshape((x.shape[0],) + self.input_shape))
        n = int(x.shape[0])
        self.n_forward += n
        if out.requires_grad:
            out.register_hook(lambda grad: self._count_backward(n))
        return out

    def _count_backward(self, n):
        self.n_backward += n


class ReferenceLog(logging.Handler):
    """Per-member counts and times of the reference, from its ``auto-attack`` log.

    The reference logs ``running <attack>`` before each member, ``<attack> -
    i/k - f out of m successfully perturbed`` after each batch (after one forward
    pass of the batch's ``m`` adversarial points, its cascade's check) and
    ``robust accuracy after <ATTACK>: p%``. Passes before the first member (the
    clean predictions and the reference's checks on the first batch) go to
    ``setup``.
    """

    _RUNNING = re.compile(r"^running (\S+)$")
    _BATCH = re.compile(r"^(\S+) - \d+/\d+ - (\d+) out of (\d+) successfully perturbed")
    _AFTER = re.compile(r"^robust accuracy after (\S+): ([0-9.]+)%")

    def __init__(self, net):
        super().__init__(level=logging.DEBUG)
        self.net = net
        self.members = []
        self.warnings = []
        self._mark = (0, 0, time.perf_counter())
        self.setup = None

    def _close(self):
        f0, b0, t0 = self._mark
        spent = dict(n_forward=self.net.n_forward - f0,
                     n_backward=self.net.n_backward - b0,
                     time_s=time.perf_counter() - t0)
        if self.members:
            self.members[-1].update(spent)
        else:
            self.setup = spent
        self._mark = (self.net.n_forward, self.net.n_backward, time.perf_counter())

    def emit(self, record):
        msg = record.getMessage()
        if record.levelno >= logging.WARNING:
            self.warnings.append(msg)
        if m := self._RUNNING.match(msg):
            self._close()
            self.members.append(dict(attack=m.group(1), n_attacked=0, n_fooled=0,
                                     robust_accuracy=None))
        elif (m := self._BATCH.match(msg)) and self.members:
            self.members[-1]["n_attacked"] += int(m.group(3))
            self.members[-1]["n_fooled"] += int(m.group(2))
        elif (m := self._AFTER.match(msg)) and self.members:
            self.members[-1]["robust_accuracy"] = float(m.group(2)) / 100

    def finish(self):
        self._close()
        for member in self.members:
            # the forward pass of the cascade's check after each batch: ours
            # does not count its own checks, so neither is the reference's
            member["n_forward_check"] = member["n_attacked"]
            member["n_forward"] -= member["n_attacked"]
        return self.members


# ------------------------------------------------------------- implementations


def _member_rows(rows):
    """Per member: robust accuracy after it, points attacked, passes, time."""
    out = []
    for r in rows:
        n = max(r["n_attacked"], 1)
        out.append(dict(attack=r["attack"], robust_accuracy=r["robust_accuracy"],
                        n_attacked=r["n_attacked"], n_fooled=r.get("n_fooled"),
                        forward_per_attacked=r["n_forward"] / n,
                        backward_per_attacked=r["n_backward"] / n,
                        n_forward=r["n_forward"], n_backward=r["n_backward"],
                        time_s=r["time_s"]))
    return out


def run_ours(model, X, y, *, eps, norm, seed, device, batch_size):
    """The library's default evaluation: ``robustness_report`` (AutoAttack standard)."""
    report = robustness_report(model, X, y, eps=eps, norm=norm,
                               batch_size=batch_size, random_state=seed)
    return dict(robust_acc=float(report.robust_accuracy),
                forward_per_sample=float(report.forward_per_sample),
                backward_per_sample=float(report.backward_per_sample),
                max_perturbation=float(report.perturbation_norm.max()),
                members=_member_rows(report.attacks), warnings=[])


def _reference_autoattack_class():
    try:  # the authors' code on PyPI (pyautoattack)
        from pyautoattack import AutoAttack
    except ImportError:  # the authors' repository, installed from git
        from autoattack import AutoAttack
    return AutoAttack


def reference_version():
    for name in ("pyautoattack", "autoattack"):
        try:
            module = __import__(name)
        except ImportError:
            continue
        return f"{name} {getattr(module, '__version__', 'unknown')}"
    return None


def _image_inputs(model, X, y, device):
    """The counting model on images, the image batch and the encoded labels."""
    view = get_torch_view(model).eval()
    view.resolve_classes(X)
    net = CountingModel(view, X.shape[1:]).eval()
    shape = reference_shape(X.shape[1:])
    x = torch.as_tensor(np.asarray(X, dtype=np.float32)).reshape((len(X),) + shape)
    t = torch.as_tensor(view.encode(y))
    return net, x.to(device), t.to(device), len(view.classes)


def _max_perturbation(x_adv, x, norm):
    d = (x_adv - x).detach().reshape(len(x), -1)
    order = {"linf": float("inf"), "l2": 2, "l1": 1}[norm]
    return float(torch.linalg.vector_norm(d, ord=order, dim=1).max()) if len(x) else 0.0


def run_autoattack(model, X, y, *, eps, norm, seed, device, batch_size):
    """The authors' AutoAttack, standard version, on the library's torch view."""
    AutoAttack = _reference_autoattack_class()
    net, x, t, _ = _image_inputs(model, X, y, device)
    attack = AutoAttack(net, norm=REFERENCE_NORMS[norm], eps=eps, version="standard",
                        seed=seed, device=device)
    log = ReferenceLog(net)
    logger = logging.getLogger("auto-attack")
    level, propagate = logger.level, logger.propagate
    logger.addHandler(log)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    try:
        params = inspect.signature(attack.run_standard_evaluation).parameters
        size = {"bs": batch_size} if "bs" in params else {"batch_size": batch_size}
        x_adv, *rest = attack.run_standard_evaluation(x, t, **size)
    finally:
        logger.removeHandler(log)
        logger.setLevel(level)
        logger.propagate = propagate
    members = log.finish()
    with torch.no_grad():
        pred = net(x_adv).argmax(1)
    n = len(X)
    n_forward = sum(m["n_forward"] for m in members)
    n_backward = sum(m["n_backward"] for m in members)
    return dict(robust_acc=int((pred == t).sum()) / n,
                forward_per_sample=n_forward / n, backward_per_sample=n_backward / n,
                max_perturbation=_max_perturbation(x_adv, x, norm),
                members=_member_rows(members), setup=log.setup,
                warnings=log.warnings)


def _torchattacks_attack(net, *, eps, norm, seed, n_classes, full):
    import torchattacks

    ta_norm = REFERENCE_NORMS[norm]
    if not full:
        return torchattacks.AutoAttack(net, norm=ta_norm, eps=eps, version="standard",
                                       n_classes=n_classes, seed=seed)
    return torchattacks.MultiAttack([
        torchattacks.APGD(net, norm=ta_norm, eps=eps, steps=100, loss="ce", seed=seed),
        torchattacks.APGDT(net, norm=ta_norm, eps=eps, steps=100, n_classes=n_classes,
                           seed=seed),
        torchattacks.Square(net, norm=ta_norm, eps=eps, n_queries=5000,
                            resc_schedule=False, seed=seed)])


def run_torchattacks(model, X, y, *, eps, norm, seed, device, batch_size, full=False):
    """torchattacks' standard AutoAttack (``full``: its members, original iterations).

    Pass counts are totals, its own checks of the predictions included.
    """
    net, x, t, n_classes = _image_inputs(model, X, y, device)
    attack = _torchattacks_attack(net, eps=eps, norm=norm, seed=seed,
                                  n_classes=n_classes, full=full)
    correct, worst = 0, 0.0
    for start in range(0, len(X), batch_size):
        xb, tb = x[start:start + batch_size], t[start:start + batch_size]
        x_adv = attack(xb, tb)
        worst = max(worst, _max_perturbation(x_adv, xb, norm))
        with torch.no_grad():
            correct += int((net.view(x_adv.reshape((len(xb),) + net.input_shape))
                            .argmax(1) == tb).sum())
    n = len(X)
    return dict(robust_acc=correct / n, forward_per_sample=net.n_forward / n,
                backward_per_sample=net.n_backward / n, max_perturbation=worst,
                members=[], warnings=[])


def run_torchattacks_full(model, X, y, **kwargs):
    return run_torchattacks(model, X, y, full=True, **kwargs)


RUNNERS = {"ours": run_ours, "autoattack": run_autoattack,
           "torchattacks": run_torchattacks, "torchattacks_full": run_torchattacks_full}


def compare(model, X, y, *, eps, norm, seed, device, batch_size, repeats,
            implementations):
    """Results and times of every implementation, rotating their order."""
    results = {name: [] for name in implementations}
    for rep in range(repeats):
        order = list(implementations)
        order = order[rep % len(order):] + order[:rep % len(order)]
        for name in order:
            with Timer(device) as t:
                res = RUNNERS[name](model, X, y, eps=eps, norm=norm, seed=seed,
                                    device=device, batch_size=batch_size)
            res["seconds"] = t.seconds
            results[name].append(res)
            print(f"  rep {rep} {name} ({norm}, eps {eps}): robust acc "
                  f"{res['robust_acc']:.4f} in {t.seconds:.2f}s, "
                  f"{res['forward_per_sample']:.0f} fwd / "
                  f"{res['backward_per_sample']:.0f} bwd per sample", flush=True)
    return results


def load_1min():
    try:
        return round(os.getloadavg()[0], 2)
    except (AttributeError, OSError):
        return None


def torchattacks_members():
    """What torchattacks' standard AutoAttack runs, read from its objects."""
    import torchattacks

    attack = torchattacks.AutoAttack(torch.nn.Linear(1, 10), norm="Linf", eps=0.1,
                                     version="standard", n_classes=10, seed=0)
    parts = []
    for member in attack._autoattack.attacks:
        name = type(member).__name__
        if hasattr(member, "n_queries"):
            parts.append(f"{name}(n_queries={member.n_queries}, "
                         f"p_init={member.p_init}, "
                         f"resc_schedule={member.rescale_schedule})")
        else:
            targets = getattr(member, "n_target_classes", None)
            extra = "" if targets is None or name == "APGD" else \
                f", n_target_classes={targets}"
            parts.append(f"{name}(steps={member.steps}{extra})")
    return "[" + ", ".join(parts) + "]"


# ----------------------------------------------------------------------- tables

BOUND = 0.005  # the requirement: ours <= reference + 0.5 point
TARGET_RATIO = 0.5  # the target: at most half the reference's wall time


def summarize(method, module, norm, eps, clean, results, load):
    """One row of the main table from the runs of every implementation."""
    row = {"method": method, "module": module, "norm": norm, "eps": eps,
           "clean_acc": clean, "load_1min_before": load}
    for name, runs in results.items():
        accs = [r["robust_acc"] for r in runs]
        times = [r["seconds"] for r in runs]
        row[f"{name}_acc"] = accs[0]
        row[f"{name}_acc_stable"] = len(set(accs)) == 1
        row[f"{name}_s"] = statistics.median(times)
        row[f"{name}_fwd"] = runs[0]["forward_per_sample"]
        row[f"{name}_bwd"] = runs[0]["backward_per_sample"]
        row[f"{name}_max_pert"] = max(r["max_perturbation"] for r in runs)
        row[f"{name}_s_runs"] = [round(v, 3) for v in times]
        row[f"{name}_acc_runs"] = accs
        warnings = sorted({w for r in runs for w in r.get("warnings", [])})
        if warnings:
            row[f"{name}_warnings"] = warnings
    ours = row["ours_acc"]
    if "autoattack" in results:
        ref = row["autoattack_acc"]
        row["gap_points"] = 100 * (ours - ref)
        row["time_ratio"] = row["ours_s"] / row["autoattack_s"]
        row["bound_ok"] = ours <= ref + BOUND + 1e-9
        row["target_ok"] = bool(row["bound_ok"] and row["time_ratio"] <= TARGET_RATIO)
        row["ours_faster_runs"] = sum(
            a["seconds"] < b["seconds"]
            for a, b in zip(results["ours"], results["autoattack"]))
    for name in ("torchattacks", "torchattacks_full"):
        if name in results:
            row[f"{name}_bound_ok"] = ours <= row[f"{name}_acc"] + BOUND + 1e-9
            row[f"{name}_time_ratio"] = row["ours_s"] / row[f"{name}_s"]
    return row


def member_rows(method, norm, results):
    """Per member of ours and of the reference (their first run)."""
    rows = []
    for name in ("ours", "autoattack"):
        if name not in results:
            continue
        for m in results[name][0]["members"]:
            rows.append({"method": method, "norm": norm, "implementation": name, **m})
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    add_data_arguments(parser)
    add_runtime_arguments(parser)
    parser.add_argument("--methods", nargs="+",
                        default=["natural", "pgd_at", "trades", "gairat"],
                        choices=sorted(METHODS), metavar="METHOD",
                        help="methods of _methods.METHODS (default: natural pgd_at "
                             "trades gairat)")
    parser.add_argument("--implementations", nargs="+",
                        default=list(DEFAULT_IMPLEMENTATIONS),
                        choices=IMPLEMENTATIONS, metavar="IMPL",
                        help=f"what to run next to ours (ours always runs), among "
                             f"{', '.join(IMPLEMENTATIONS)} (default: "
                             f"{' '.join(DEFAULT_IMPLEMENTATIONS)})")
    parser.add_argument("--eps", type=float, default=None,
                        help=f"L-inf radius for training and evaluation "
                             f"(default: {DEFAULT_EPS})")
    parser.add_argument("--l2-eps", type=float, default=None,
                        help="also evaluate every model at this L2 radius")
    parser.add_argument("--epochs", type=int, default=None,
                        help=f"training epochs (default: {DEFAULT_EPOCHS})")
    parser.add_argument("--module", choices=("auto", "mlp", "smallcnn", "strided_cnn"),
                        default="auto",
                        help="auto: the library's default network (MLP(256, 256) for "
                             "digits, SmallCNN for 28x28 images); strided_cnn: the "
                             "benchmark's cheap two-convolution network")
    parser.add_argument("--rgb32", action="store_true",
                        help="resize every image to 32x32 (bilinear) and tile it to "
                             "3 channels: inputs of shape (3, 32, 32)")
    parser.add_argument("--attack-steps", type=int, default=None,
                        help=f"PGD steps of the training attack "
                             f"(default: {DEFAULT_ATTACK_STEPS})")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch-size", type=int, default=256,
                        help="evaluation batch size, the same for all")
    parser.add_argument("--repeats", type=int, default=3,
                        help="evaluations per model and implementation, in "
                             "rotating order; median times are compared")
    parser.add_argument("--tag", default=None,
                        help="suffix of the result file names (default: the subset)")
    parser.add_argument("--no-write", action="store_true",
                        help="print the tables without writing result files")
    args = parser.parse_args(argv)
    if args.repeats < 1:
        raise SystemExit(f"--repeats must be >= 1, got {args.repeats}.")
    implementations = ["ours"] + [i for i in dict.fromkeys(args.implementations)
                                  if i != "ours"]
    if "autoattack" in implementations and reference_version() is None:
        raise SystemExit("the reference AutoAttack is not installed: pip install "
                         "pyautoattack (or leave autoattack out of --implementations)")
    if any(i.startswith("torchattacks") for i in implementations):
        try:
            import torchattacks  # noqa: F401
        except ImportError:
            raise SystemExit("torchattacks is not installed: pip install torchattacks "
                             "(or leave it out of --implementations)") from None
    device = setup_runtime(args)
    eps = DEFAULT_EPS[args.data] if args.eps is None else args.eps
    epochs = DEFAULT_EPOCHS[args.data] if args.epochs is None else args.epochs
    steps = (DEFAULT_ATTACK_STEPS[args.data] if args.attack_steps is None
             else args.attack_steps)
    X_train, X_test, y_train, y_test, info = load_data(
        args.data, data_path=args.data_path, n_train=args.n_train,
        n_test=args.n_test, seed=args.seed)
    if args.rgb32:
        X_train, X_test = to_rgb32(X_train), to_rgb32(X_test)
        info = {**info, "input_shape": list(X_train.shape[1:]),
                "transform": "bilinear resize to 32x32 "
                             "(torch.nn.functional.interpolate), tiled to 3 channels"}
    threats = [("linf", eps)] + ([("l2", args.l2_eps)] if args.l2_eps else [])
    warm_up(X_train, y_train, device)
    records, members = [], []
    for method in args.methods:
        setup = Setup(eps=eps, seed=args.seed, epochs=epochs, device=device,
                      module=args.module, input_shape=tuple(X_train.shape[1:]),
                      attack_steps=steps)
        with Timer(device) as t_fit:
            model = METHODS[method](setup).fit(X_train, y_train)
        clean = float(np.mean(model.predict(X_test) == y_test))
        for norm, radius in threats:
            load = load_1min()
            print(f"[{method}] clean acc {clean:.4f}, fit {t_fit.seconds:.1f}s, "
                  f"{norm} eps {radius}, load {load}", flush=True)
            results = compare(model, X_test, y_test, eps=radius, norm=norm,
                              seed=args.seed, device=device,
                              batch_size=args.batch_size, repeats=args.repeats,
                              implementations=implementations)
            row = summarize(method, type(model.module_).__name__, norm, radius, clean,
                            results, load)
            row["fit_s"] = t_fit.seconds
            records.append(row)
            members += member_rows(method, norm, results)
            print({k: v for k, v in row.items() if not k.endswith("_runs")}, flush=True)

    versions = {"reference": reference_version()}
    if any(i.startswith("torchattacks") for i in implementations):
        import torchattacks

        versions["torchattacks"] = f"torchattacks {torchattacks.__version__}"
    settings = {**info, "module": args.module, "train_eps_linf": eps,
                "threats": [f"{n} {r}" for n, r in threats], "epochs": epochs,
                "train_attack_steps": steps, "seed": args.seed,
                "eval_batch_size": args.batch_size, "repeats": args.repeats,
                "implementations": implementations,
                "reference_input_shape": list(reference_shape(X_test.shape[1:])),
                "ours": "robustness_report default: " + describe_preset("strong"),
                "autoattack": f"{versions['reference']} AutoAttack(version="
                              "'standard', seed=seed).run_standard_evaluation",
                "torch_threads": torch.get_num_threads()}
    if "torchattacks" in implementations:
        settings["torchattacks"] = (f"{versions['torchattacks']} AutoAttack(version="
                                    f"'standard') = {torchattacks_members()}")
    if "torchattacks_full" in implementations:
        settings["torchattacks_full"] = (
            "torchattacks MultiAttack([APGD(steps=100, loss='ce'), APGDT(steps=100), "
            "Square(n_queries=5000, resc_schedule=False)])")
    columns = ["method", "module", "norm", "eps", "clean_acc"]
    columns += [f"{name}_acc" for name in implementations]
    if "autoattack" in implementations:
        columns += ["gap_points"]
    columns += [f"{name}_s" for name in implementations]
    if "autoattack" in implementations:
        columns += ["time_ratio", "ours_faster_runs"]
    for name in implementations:
        columns += [f"{name}_fwd", f"{name}_bwd"]
    if "autoattack" in implementations:
        columns += ["bound_ok", "target_ok"]
    columns += [f"{name}_bound_ok" for name in ("torchattacks", "torchattacks_full")
                if name in implementations]
    columns += ["load_1min_before"]
    member_columns = ["method", "norm", "implementation", "attack", "robust_accuracy",
                      "n_attacked", "n_fooled", "forward_per_attacked",
                      "backward_per_attacked", "time_s"]
    print()
    print(markdown_table(records, columns))
    print(markdown_table(members, member_columns))
    name = f"scorer_strength_{args.data}"
    if args.tag:
        name += f"_{args.tag}"
    elif args.data != "digits" and args.n_train is not None:
        name += f"_n{info['n_train']}"
    notes = [
        f"Each model was evaluated {args.repeats} times by each implementation, "
        "rotating which one ran first; <impl>_s are the median wall-clock seconds "
        "(all runs are in the JSON file), time_ratio = ours_s / autoattack_s, "
        "ours_faster_runs counts the runs in which ours took less time than the "
        "reference's run of the same round. <impl>_acc is the first run's robust "
        "accuracy (<impl>_acc_stable in the JSON: all runs gave the same).",
        "bound_ok (the requirement): ours_acc <= autoattack_acc + 0.005; target_ok: "
        "bound_ok and time_ratio <= 0.5; torchattacks_bound_ok: ours_acc <= "
        "torchattacks_acc + 0.005.",
        "<impl>_fwd, <impl>_bwd: samples through the model's forward and backward "
        "passes per test point. Ours and the reference count the attacks' passes "
        "only (neither the clean predictions nor the cascade's check of each "
        "batch's adversarial points, which the reference's count loses by "
        "subtracting one forward per attacked point; its set-up passes, the "
        "clean predictions and its checks on the first batch, are in the JSON "
        "as 'setup'); torchattacks' counts are totals, its checks included.",
        "The reference and torchattacks attack the inputs as images of shape "
        f"{reference_shape(X_test.shape[1:])} (the estimator's view is called "
        "on them reshaped back); ours attacks the estimator's inputs as they are "
        f"({tuple(X_test.shape[1:])}; flat rows are 1-D signals for Square).",
        "torchattacks' standard AutoAttack keeps its own defaults: 10 APGD and "
        "APGD-T iterations instead of 100, FAB multi-targeted and a Square schedule "
        "rescaled to the query budget.",
    ]
    if args.no_write:
        return records
    paths = write_results(
        name, records, settings, device=device, columns=columns,
        title="The library's standard AutoAttack vs the reference AutoAttack",
        tables=[("Per attack (first run)", members, member_columns)], notes=notes)
    print("wrote", *paths)
    return records


if __name__ == "__main__":
    main()
