"""Robust-dataset learners: does natural training on a learned set give robustness?

Learns training sets from the training split with the library's robust-dataset
learners (``NTKRobustDistiller``, ``TriLevelDatasetLearner``,
``RobustFeatureDataset`` when installed, and their ``eps=0`` controls), then
measures on the real test split:

1. kernel regression (``NTKClassifier``, the distiller's kernel) fitted on each
   set: clean accuracy and robust accuracy under a white-box attack on the
   kernel predictor;
2. networks trained *naturally* on each set (``AdversarialClassifier(eps=0)``),
   an MLP and SmallCNN, with seeds that differ from the learners' seed
   (initialisations no learner saw) and architectures no learner trained;
3. the baselines trained on the original data: natural training (the
   ``original`` set) and PGD adversarial training of the same networks;
4. the costs: learning time and peak memory of each learner, training times,
   and the amortisation of "learn once, train k networks naturally" against
   "k PGD-AT trainings".

Examples::

    python benchmarks/robust_datasets.py --data digits --threads 1
    python benchmarks/robust_datasets.py --data mnist --data-path data/mnist.npz \\
        --n-train 2000 --n-test 500 --threads 1
    python benchmarks/robust_datasets.py --data digits --threads 1 --max-iter 5 \\
        --dr-max-iter 5 --epochs 2 --no-write        # smoke run

A new learner is one line in ``LEARNERS``: a name and a factory taking a
:class:`LearnSetup` and returning an unfitted learner (``None``: no learning).
"""

# SPDX-License-Identifier: BSD-3-Clause

import argparse
import dataclasses
import functools
import json
import math
import multiprocessing
import os
import resource
import sys
import time

import numpy as np
import torch
from torch import nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _common import (  # noqa: E402
    Timer,
    add_data_arguments,
    add_runtime_arguments,
    load_data,
    markdown_table,
    setup_runtime,
    write_results,
)
from run_methods import Setup, describe_preset, warm_up  # noqa: E402

from sklearn_robust import AdversarialClassifier  # noqa: E402
from sklearn_robust.dataset_learning import (NTKRobustDistiller,  # noqa: E402
                                             TriLevelDatasetLearner)
from sklearn_robust.kernels import NTKClassifier  # noqa: E402
from sklearn_robust.metrics import robust_accuracy_score  # noqa: E402
from sklearn_robust.nn import MLP, SmallCNN, image_shape  # noqa: E402


def robust_feature_dataset_class():
    """``RobustFeatureDataset`` when the installed library has it, else ``None``."""
    try:
        from sklearn_robust.dataset_learning import RobustFeatureDataset
    except ImportError:
        return None
    return RobustFeatureDataset


# per data set: evaluation eps, network epochs and learner settings that worked
DEFAULT_EPS = {"digits": 0.1, "mnist": 0.1, "fashion_mnist": 0.1}
DEFAULT_EPOCHS = {"digits": 30, "mnist": 20, "fashion_mnist": 20}
DEFAULT_CNN_EPOCHS = {"digits": 20, "mnist": 5, "fashion_mnist": 5}
DEFAULT_TRI_INNER_LR = {"digits": 2.0, "mnist": 0.25, "fashion_mnist": 0.25}
DEFAULT_TRI_LR = {"digits": 0.03, "mnist": 0.01, "fashion_mnist": 0.01}


# ------------------------------------------------------------------------ learners


@dataclasses.dataclass
class LearnSetup:
    """What a learner factory needs: the learning eps, seed, device and knobs."""

    eps: float
    seed: int
    device: str = "cpu"
    options: dict = dataclasses.field(default_factory=dict)

    def ntk(self, eps):
        o = self.options
        return NTKRobustDistiller(
            eps=eps, kernel="fc", depth=o["ntk_depth"], get="ntk",
            ridge=o["ntk_ridge"], n_support=None, max_iter=o["ntk_max_iter"],
            lr=o["ntk_lr"], target_batch_size=o["ntk_target_batch_size"],
            support_batch_size=o["ntk_support_batch_size"],
            attack_steps=o["ntk_attack_steps"], device=self.device,
            random_state=self.seed)

    def trilevel(self, eps):
        o = self.options
        return TriLevelDatasetLearner(
            eps=eps, module=functools.partial(MLP, hidden_layer_sizes=o["tri_hidden"]),
            inner_steps=o["tri_inner_steps"], inner_lr=o["tri_inner_lr"],
            max_iter=o["tri_max_iter"], lr=o["tri_lr"], batch_size=o["tri_batch_size"],
            attack_steps=o["tri_attack_steps"], device=self.device,
            random_state=self.seed)

    def dr(self):
        o, cls = self.options, robust_feature_dataset_class()
        robust_eps = o["dr_robust_eps"]
        net = AdversarialClassifier(
            module=MLP, module__hidden_layer_sizes=o["dr_hidden"], norm="l2",
            eps=robust_eps, n_steps=7, step_size=2.5 * robust_eps / 7,
            max_epochs=o["dr_epochs"], batch_size=128, lr=1e-3, train_split=None,
            verbose=0, iterator_train__shuffle=True, device=self.device,
            random_state=self.seed)
        # robust_eps is read only for a default network; set for the record
        return cls(estimator=net, robust_eps=robust_eps, max_iter=o["dr_max_iter"],
                   step_size=o["dr_step_size"], device=self.device,
                   random_state=self.seed)


# name -> factory(setup) -> unfitted learner (None: the training split as it is)
LEARNERS = {
    "original": lambda s: None,
    "ntk": lambda s: s.ntk(s.eps),
    "ntk_eps0": lambda s: s.ntk(0.0),          # plain KIP: the control
    "trilevel": lambda s: s.trilevel(s.eps),
    "trilevel_eps0": lambda s: s.trilevel(0.0),  # no attack: the control
    "dr": lambda s: s.dr(),                    # Ilyas et al.'s D_R
}
# eps used by each learner: the learning eps, 0, or not applicable
LEARNER_EPS = {"original": None, "ntk": "eps", "ntk_eps0": 0.0, "trilevel": "eps",
               "trilevel_eps0": 0.0, "dr": None}


def _rss_mib():
    """Current resident set size of this process (MiB), from /proc."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def _peak_rss_mib():
    """Peak resident set size of this process so far (MiB): ru_maxrss."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024  # bytes / KiB


def fit_learner(name, setup, X, y, threads=None):
    """Fit one learner and measure it; runs in a child process on CPU.

    An untimed warm-up fit (``max_iter=1`` on at most 200 rows) runs first, so
    that lazy imports and first-call costs are not counted. Then the memory
    baseline is taken (current RSS, or CUDA allocation), the learner is fitted
    and timed, and the peak is read: ``ru_maxrss`` of this process on CPU,
    ``torch.cuda.max_memory_allocated`` on CUDA.
    """
    if threads is not None:
        torch.set_num_threads(threads)
    learner = LEARNERS[name](setup)
    if learner is None:
        return {"X": X, "y": y, "learn_s": 0.0}
    from sklearn.base import clone

    n_warm = min(len(y), 200)
    with Timer(setup.device) as t_warm:
        clone(learner).set_params(max_iter=1).fit(X[:n_warm], y[:n_warm])
    cuda = str(setup.device).startswith("cuda")
    if cuda:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(setup.device)
        base = torch.cuda.memory_allocated(setup.device) / 2**20
    else:
        base = _rss_mib()
    with Timer(setup.device) as t_fit:
        learner.fit(X, y)
    peak = (torch.cuda.max_memory_allocated(setup.device) / 2**20 if cuda
            else _peak_rss_mib())
    history = getattr(learner, "loss_history_", None)
    return {
        "X": learner.X_robust_, "y": learner.y_robust_, "learn_s": t_fit.seconds,
        "warmup_s": t_warm.seconds,
        "memory": "cuda max_memory_allocated" if cuda else "child ru_maxrss",
        "mem_base_mib": base, "mem_peak_mib": peak, "mem_fit_mib": peak - base,
        "loss_first": None if history is None else float(history[0]),
        "loss_last": None if history is None else float(history[-1]),
        # single steps are noisy (fresh batches, networks): means of the first
        # and last tenth of the steps, and the whole trajectory for the JSON
        "loss_start10": None if history is None else float(
            np.mean(history[:max(1, len(history) // 10)])),
        "loss_end10": None if history is None else float(
            np.mean(history[-max(1, len(history) // 10):])),
        "loss_history": None if history is None else [float(v) for v in history],
        "n_iter": getattr(learner, "n_iter_", None),
        "params": {k: (v if isinstance(v, (int, float, str, bool, type(None), tuple))
                       else repr(v))
                   for k, v in learner.get_params(deep=False).items()},
    }


def learn(name, setup, X, y, threads, isolate):
    """``fit_learner`` in a fresh 'spawn' child (CPU) or in this process."""
    if not isolate or LEARNERS[name](setup) is None:
        return fit_learner(name, setup, X, y, threads)
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(1) as pool:
        return pool.apply(fit_learner, (name, setup, X, y, threads))


def _cache_key(data_info, learn_eps, seed, options):
    return {"data": data_info["data"], "source": data_info["source"],
            "n_train": data_info["n_train"], "learn_eps": learn_eps, "seed": seed,
            "options": {k: list(v) if isinstance(v, tuple) else v
                        for k, v in options.items()}}


def load_sets(path, key, names):
    """Learned sets saved by :func:`save_sets`, checked against ``key``."""
    with np.load(path, allow_pickle=False) as f:
        meta = json.loads(str(f["meta"]))
        if meta["key"] != key:
            raise SystemExit(f"--sets-cache {path} was written with other settings:\n"
                             f"  {meta['key']}\nnow:\n  {key}")
        missing = [n for n in names if n not in meta["sets"]]
        if missing:
            raise SystemExit(f"--sets-cache {path} lacks the sets {missing}.")
        learned = {}
        for n in names:
            learned[n] = dict(meta["sets"][n], X=f[f"X_{n}"], y=f[f"y_{n}"])
    return learned, meta["written_utc"]


def save_sets(path, key, learned):
    """Save the learned sets and their measurements (one ``.npz``)."""
    import datetime

    arrays = {}
    sets = {}
    for n, r in learned.items():
        arrays[f"X_{n}"], arrays[f"y_{n}"] = np.asarray(r["X"]), np.asarray(r["y"])
        sets[n] = {k: v for k, v in r.items() if k not in ("X", "y")}
    from _common import _jsonable
    meta = {"key": key, "sets": _jsonable(sets),
            "written_utc": datetime.datetime.now(datetime.timezone.utc)
            .strftime("%Y-%m-%dT%H:%M:%SZ")}
    np.savez(path, meta=np.array(json.dumps(meta)), **arrays)


# ------------------------------------------------------------------------ networks


class UpsampledSmallCNN(nn.Module):
    """SmallCNN on images upsampled by ``scale`` (nearest neighbour) inside the net.

    SmallCNN needs images of at least 16x16 pixels; the 8x8 digits are doubled to
    16x16 *inside* the network, so the inputs, the threat model and the attacks
    stay those of the 8x8 images.
    """

    def __init__(self, input_shape, n_classes, scale=2):
        super().__init__()
        self.image_shape = image_shape(tuple(input_shape))
        c, h, w = self.image_shape
        self.up = nn.Upsample(scale_factor=scale, mode="nearest")
        self.cnn = SmallCNN(input_shape=(c, h * scale, w * scale), n_classes=n_classes)

    def forward(self, x):
        return self.cnn(self.up(x.reshape(len(x), *self.image_shape)))


def arch_kwargs(arch, input_shape, mlp_hidden):
    """Module keyword arguments and a display name of a downstream network."""
    if arch == "mlp":
        return ({"module": MLP, "module__hidden_layer_sizes": tuple(mlp_hidden)},
                f"MLP{tuple(mlp_hidden)}")
    if arch == "smallcnn":
        _, h, w = image_shape(tuple(input_shape))
        if min(h, w) >= 16:
            return {"module": SmallCNN}, "SmallCNN"
        return {"module": UpsampledSmallCNN}, f"SmallCNN(x2 upsampled {h}x{w})"
    raise ValueError(f"unknown architecture {arch!r}")


def evaluate(model, X_test, y_test, eps, seed, attack, pgd20, device):
    """Clean accuracy, robust accuracy under ``attack`` and PGD-20, with times."""
    with Timer(device) as t_clean:
        clean = float(np.mean(model.predict(X_test) == y_test))
    with Timer(device) as t_rob:
        robust = robust_accuracy_score(model, X_test, y_test, eps=eps,
                                       attack=None if attack == "strong" else attack,
                                       random_state=seed)
    row = {"clean_acc": clean, "robust_acc": robust, "robust_attack": attack}
    eval_s = t_clean.seconds + t_rob.seconds
    if pgd20:
        with Timer(device) as t_pgd:
            row["robust_pgd20"] = robust_accuracy_score(
                model, X_test, y_test, eps=eps, attack="pgd", random_state=seed)
        eval_s += t_pgd.seconds
    row["eval_s"] = eval_s
    return row


# ------------------------------------------------------------------------ summaries


def _mean_std(values):
    values = np.asarray([v for v in values if v is not None], dtype=float)
    if values.size == 0:
        return float("nan"), float("nan")
    return (float(values.mean()),
            float(values.std(ddof=1)) if values.size > 1 else 0.0)


def summarize(records):
    """Mean and standard deviation over seeds per learned set x training x model."""
    rows = []
    keys = dict.fromkeys((r["set"], r["training"], r["model"]) for r in records)
    for key in keys:
        runs = [r for r in records if (r["set"], r["training"], r["model"]) == key]
        row = {"set": key[0], "training": key[1], "model": key[2],
               "n_seeds": len(runs),
               "robust_attack": "/".join(dict.fromkeys(r["robust_attack"]
                                                        for r in runs))}
        for col in ("clean_acc", "robust_acc", "robust_pgd20", "train_s"):
            mean, std = _mean_std(r.get(col) for r in runs)
            row[f"{col}_mean"], row[f"{col}_std"] = mean, std
            if col != "train_s":
                row[col] = ("n/a" if mean != mean else
                            f"{mean:.3f} ± {std:.3f}" if len(runs) > 1
                            else f"{mean:.3f}")
        rows.append(row)
    return rows


def amortisation(summary, learned):
    """Learning + k natural trainings against k PGD-AT trainings, per set x net."""
    pgd = {r["model"]: r for r in summary if r["training"] == "pgd_at"}
    rows = []
    for r in summary:
        if r["training"] != "natural" or r["model"] not in pgd:
            continue
        learn_s = learned[r["set"]]["learn_s"]
        t_nat, t_pgd = r["train_s_mean"], pgd[r["model"]]["train_s_mean"]
        saving = t_pgd - t_nat
        if learn_s == 0:
            k = 1
        elif saving > 0:
            k = math.ceil(learn_s / saving)
        else:
            k = None
        rows.append({
            "set": r["set"], "model": r["model"], "learn_s": learn_s,
            "natural_train_s": t_nat, "pgd_at_train_s": t_pgd,
            "learn_plus_1_train_s": learn_s + t_nat, "pgd_at_1_s": t_pgd,
            "break_even_k": k if k is not None else "never",
            "robust_acc": r["robust_acc"],
            "pgd_at_robust_acc": pgd[r["model"]]["robust_acc"]})
    return rows


# ------------------------------------------------------------------------ main


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.strip().splitlines()[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    add_data_arguments(parser)
    add_runtime_arguments(parser)
    parser.add_argument("--learners", nargs="+", default=list(LEARNERS),
                        choices=list(LEARNERS), metavar="SET",
                        help=f"learned sets, among {list(LEARNERS)} (dr is skipped "
                             "when RobustFeatureDataset is not installed)")
    parser.add_argument("--eps", type=float, default=None,
                        help=f"L-inf evaluation radius (default: {DEFAULT_EPS})")
    parser.add_argument("--learn-eps", type=float, default=None,
                        help="radius of the learners' attack (default: --eps)")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of the data split and of every learner")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2],
                        help="seeds of the downstream networks (initialisation, "
                             "batches); keep them different from --seed")
    parser.add_argument("--max-iter", type=int, default=None,
                        help="override the outer steps of every learner (smoke runs)")
    g = parser.add_argument_group("NTKRobustDistiller (ntk, ntk_eps0)")
    g.add_argument("--ntk-max-iter", type=int, default=300)
    g.add_argument("--ntk-lr", type=float, default=0.04,
                   help="0.04 (KIP's value) transferred better than 0.01 on digits "
                        "(see the README)")
    g.add_argument("--ntk-target-batch-size", type=int, default=500)
    g.add_argument("--ntk-support-batch-size", type=int, default=2000)
    g.add_argument("--ntk-attack-steps", type=int, default=10)
    g.add_argument("--ntk-depth", type=int, default=1)
    g.add_argument("--ntk-ridge", type=float, default=1e-6)
    g = parser.add_argument_group("TriLevelDatasetLearner (trilevel, trilevel_eps0)")
    g.add_argument("--tri-max-iter", type=int, default=300)
    g.add_argument("--tri-inner-steps", type=int, default=10)
    g.add_argument("--tri-inner-lr", type=float, default=None,
                   help=f"(default: {DEFAULT_TRI_INNER_LR})")
    g.add_argument("--tri-lr", type=float, default=None,
                   help=f"(default: {DEFAULT_TRI_LR})")
    g.add_argument("--tri-batch-size", type=int, default=128)
    g.add_argument("--tri-attack-steps", type=int, default=5)
    g.add_argument("--tri-hidden", type=int, nargs="*", default=[],
                   help="hidden layers of the inner network (none: linear)")
    g = parser.add_argument_group("RobustFeatureDataset (dr)")
    g.add_argument("--dr-max-iter", type=int, default=1000)
    g.add_argument("--dr-step-size", type=float, default=0.1)
    g.add_argument("--dr-robust-eps", type=float, default=0.5,
                   help="L2 radius of the PGD training of D_R's source network")
    g.add_argument("--dr-epochs", type=int, default=20)
    g.add_argument("--dr-hidden", type=int, nargs="+", default=[256, 256],
                   help="hidden layers of D_R's source MLP")
    g = parser.add_argument_group("downstream models and evaluation")
    g.add_argument("--archs", nargs="+", default=["mlp", "smallcnn"],
                   choices=["mlp", "smallcnn"])
    g.add_argument("--mlp-hidden", type=int, nargs="+", default=[64])
    g.add_argument("--epochs", type=int, default=None,
                   help=f"MLP epochs (default: {DEFAULT_EPOCHS})")
    g.add_argument("--cnn-epochs", type=int, default=None,
                   help=f"SmallCNN epochs (default: {DEFAULT_CNN_EPOCHS})")
    g.add_argument("--batch-size", type=int, default=128)
    g.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate")
    g.add_argument("--attack-steps", type=int, default=10,
                   help="PGD steps of the PGD-AT baseline (step 2.5 eps / steps)")
    g.add_argument("--no-pgd-at", action="store_true", help="skip the PGD-AT baseline")
    g.add_argument("--no-kernel", action="store_true",
                   help="skip the kernel regression rows")
    g.add_argument("--kernel-dtype", choices=["float64", "float32"], default="float32",
                   help="precision of NTKClassifier (float32: same robust accuracy "
                        "as float64 on digits at a third of the attack time; a "
                        "failed float32 fit falls back to float64)")
    g.add_argument("--eval-attack", default="strong",
                   help="scorer preset of robust_acc: strong (the library's default, "
                        "attack=None), fast or pgd")
    g.add_argument("--cnn-eval-attack", default=None,
                   help="preset for SmallCNN rows (default: --eval-attack)")
    g.add_argument("--kernel-eval-attack", default=None,
                   help="preset for kernel rows (default: --eval-attack)")
    g.add_argument("--no-pgd20", action="store_true", help="skip the PGD-20 column")
    parser.add_argument("--memory", choices=["child", "inprocess"], default="child",
                        help="child: fit each learner in a 'spawn' child process and "
                             "report its peak RSS (CPU); inprocess: in this process "
                             "(CUDA peaks are always measured in process)")
    parser.add_argument("--sets-cache", default=None, metavar="PATH.npz",
                        help="learned sets and their measurements: loaded from PATH "
                             "when it exists (settings must match), else learned and "
                             "saved there; lets the networks be split over runs")
    parser.add_argument("--tag", default=None,
                        help="suffix of the result file names (default: the subset)")
    parser.add_argument("--no-write", action="store_true", help="print the tables only")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    device = setup_runtime(args)
    data = args.data
    eps = DEFAULT_EPS[data] if args.eps is None else args.eps
    learn_eps = eps if args.learn_eps is None else args.learn_eps
    pick = lambda value, default: default if value is None else value  # noqa: E731
    epochs = pick(args.epochs, DEFAULT_EPOCHS[data])
    cnn_epochs = pick(args.cnn_epochs, DEFAULT_CNN_EPOCHS[data])
    options = {
        "ntk_max_iter": pick(args.max_iter, args.ntk_max_iter), "ntk_lr": args.ntk_lr,
        "ntk_target_batch_size": args.ntk_target_batch_size,
        "ntk_support_batch_size": args.ntk_support_batch_size,
        "ntk_attack_steps": args.ntk_attack_steps, "ntk_depth": args.ntk_depth,
        "ntk_ridge": args.ntk_ridge,
        "tri_max_iter": pick(args.max_iter, args.tri_max_iter),
        "tri_inner_steps": args.tri_inner_steps,
        "tri_inner_lr": pick(args.tri_inner_lr, DEFAULT_TRI_INNER_LR[data]),
        "tri_lr": pick(args.tri_lr, DEFAULT_TRI_LR[data]),
        "tri_batch_size": args.tri_batch_size,
        "tri_attack_steps": args.tri_attack_steps, "tri_hidden": tuple(args.tri_hidden),
        "dr_max_iter": pick(args.max_iter, args.dr_max_iter),
        "dr_step_size": args.dr_step_size, "dr_robust_eps": args.dr_robust_eps,
        "dr_epochs": args.dr_epochs, "dr_hidden": tuple(args.dr_hidden),
    }
    attack_for = {"kernel": args.kernel_eval_attack or args.eval_attack,
                  "mlp": args.eval_attack,
                  "smallcnn": args.cnn_eval_attack or args.eval_attack}
    names = list(args.learners)
    skipped = []
    if "dr" in names and robust_feature_dataset_class() is None:
        names.remove("dr")
        skipped.append("dr (sklearn_robust.dataset_learning.RobustFeatureDataset "
                       "is not installed)")
        print("skipping dr: RobustFeatureDataset is not installed", flush=True)
    if args.seed in args.seeds:
        print(f"warning: network seed {args.seed} is also the learners' seed",
              flush=True)

    X_train, X_test, y_train, y_test, info = load_data(
        data, data_path=args.data_path, n_train=args.n_train, n_test=args.n_test,
        seed=args.seed)
    input_shape = tuple(X_train.shape[1:])
    isolate = args.memory == "child" and not str(device).startswith("cuda")
    t_start = time.perf_counter()

    # 1. learn the sets (each learner in its own child process on CPU)
    setup = LearnSetup(eps=learn_eps, seed=args.seed, device=device, options=options)
    learned, cache_note = {}, None
    key = _cache_key(info, learn_eps, args.seed, options)
    if args.sets_cache and os.path.exists(args.sets_cache):
        learned, written = load_sets(args.sets_cache, key, names)
        cache_note = (f"learned sets and learner measurements loaded from "
                      f"{os.path.basename(args.sets_cache)}, written {written} by an "
                      "earlier run with the same learner settings")
        print(cache_note, flush=True)
    for name in names:
        if name in learned:
            continue
        res = learn(name, setup, X_train, y_train, args.threads, isolate)
        res["eps"] = (learn_eps if LEARNER_EPS[name] == "eps" else LEARNER_EPS[name])
        res["linf_change_mean"] = float(np.mean(np.abs(
            np.asarray(res["X"], np.float32) - X_train).reshape(len(y_train), -1)
            .max(axis=1))) if len(res["X"]) == len(X_train) else None
        learned[name] = res
        mem = res.get("mem_fit_mib")
        print(f"[learn {name}] {res['learn_s']:.1f}s"
              + (f"  peak +{mem:.0f} MiB" if mem is not None else "")
              + (f"  loss {res['loss_first']:.4f} -> {res['loss_last']:.4f}"
                 if res.get("loss_first") is not None else ""), flush=True)

    if args.sets_cache and cache_note is None:
        save_sets(args.sets_cache, key, learned)
    warm_up(X_train, y_train, device)
    records = []

    def net_setup(seed, arch_epochs):
        return Setup(eps=eps, seed=seed, epochs=arch_epochs, device=device,
                     attack_steps=args.attack_steps, batch_size=args.batch_size,
                     lr=args.lr)

    def train_and_eval(set_name, X_fit, y_fit, arch, seed, training):
        kwargs, model_name = arch_kwargs(arch, input_shape, args.mlp_hidden)
        s = net_setup(seed, cnn_epochs if arch == "smallcnn" else epochs)
        model = AdversarialClassifier(
            **s.common(**kwargs, **({"eps": 0.0} if training == "natural" else {})))
        with Timer(device) as t_fit:
            model.fit(X_fit, y_fit)
        row = {"set": set_name, "training": training, "model": model_name,
               "seed": seed, "train_s": t_fit.seconds,
               "fit_acc": float(np.mean(model.predict(X_fit) == y_fit))}
        row.update(evaluate(model, X_test, y_test, eps, seed, attack_for[arch],
                            not args.no_pgd20, device))
        records.append(row)
        print(f"[{set_name} {training} {model_name} seed={seed}] train "
              f"{row['train_s']:.1f}s  clean {row['clean_acc']:.3f}  "
              f"{row['robust_attack']} {row['robust_acc']:.3f}  "
              f"eval {row['eval_s']:.1f}s", flush=True)

    # 2. kernel regression and 3. naturally trained networks on every set
    for name in names:
        X_fit, y_fit = learned[name]["X"], learned[name]["y"]
        if not args.no_kernel:
            kernel = NTKClassifier(kernel="fc", depth=args.ntk_depth, get="ntk",
                                   ridge=args.ntk_ridge, device=device,
                                   dtype=args.kernel_dtype)
            try:
                with Timer(device) as t_fit:
                    kernel.fit(X_fit, y_fit)
            except (RuntimeError, ValueError) as exc:   # float32 Cholesky failure
                if args.kernel_dtype == "float64":
                    raise
                print(f"[{name} kernel] float32 fit failed ({exc}); float64",
                      flush=True)
                kernel.set_params(dtype="float64")
                with Timer(device) as t_fit:
                    kernel.fit(X_fit, y_fit)
            row = {"set": name, "training": "kernel regression",
                   "model": f"NTK(fc, depth {args.ntk_depth}, {kernel.dtype})",
                   "seed": None,
                   "train_s": t_fit.seconds,
                   "fit_acc": float(np.mean(kernel.predict(X_fit) == y_fit))}
            row.update(evaluate(kernel, X_test, y_test, eps, args.seed,
                                attack_for["kernel"], not args.no_pgd20, device))
            records.append(row)
            print(f"[{name} kernel] clean {row['clean_acc']:.3f}  "
                  f"{row['robust_attack']} {row['robust_acc']:.3f}  "
                  f"eval {row['eval_s']:.1f}s", flush=True)
        for arch in args.archs:
            for seed in args.seeds:
                train_and_eval(name, X_fit, y_fit, arch, seed, "natural")

    # 4. PGD-AT on the original data, same networks and epochs
    if not args.no_pgd_at:
        for arch in args.archs:
            for seed in args.seeds:
                train_and_eval("original", X_train, y_train, arch, seed, "pgd_at")
    total_s = time.perf_counter() - t_start

    # 5. summaries
    summary = summarize(records)
    costs = amortisation(summary, learned)
    learner_rows = [{
        "set": n, "eps": r["eps"], "learn_s": r["learn_s"],
        "warmup_s": r.get("warmup_s"), "memory": r.get("memory"),
        "mem_base_mib": r.get("mem_base_mib"), "mem_peak_mib": r.get("mem_peak_mib"),
        "mem_fit_mib": r.get("mem_fit_mib"), "n_iter": r.get("n_iter"),
        "loss_first": r.get("loss_first"), "loss_last": r.get("loss_last"),
        "loss_start10": r.get("loss_start10"), "loss_end10": r.get("loss_end10"),
        "linf_change_mean": r["linf_change_mean"]} for n, r in learned.items()]
    step_size = 2.5 * eps / args.attack_steps
    settings = {
        "data": data, "source": info["source"], "n_train": info["n_train"],
        "n_test": info["n_test"], "input_shape": info["input_shape"], "norm": "linf",
        "eps": eps, "learn_eps": learn_eps, "learners": names,
        "skipped": skipped, "learner_options": options,
        "learner_params": {n: r.get("params") for n, r in learned.items()},
        "archs": [arch_kwargs(a, input_shape, args.mlp_hidden)[1] for a in args.archs],
        "epochs_mlp": epochs, "epochs_smallcnn": cnn_epochs,
        "batch_size": args.batch_size, "optimizer": "Adam", "lr": args.lr,
        "shuffle": True, "pgd_at_attack": f"PGD-{args.attack_steps} step "
                                          f"{step_size:.4g}",
        "kernel": f"NTKClassifier(kernel='fc', depth={args.ntk_depth}, get='ntk', "
                  f"ridge={args.ntk_ridge}, dtype={args.kernel_dtype!r})",
        "eval_attack": attack_for,
        "eval_presets": {p: describe_preset(p)
                         for p in dict.fromkeys(list(attack_for.values()) + ["pgd"])},
        "memory_measure": ("CUDA: torch.cuda.max_memory_allocated minus the "
                           "allocation before fit" if str(device).startswith("cuda")
                           else "spawned child per learner: ru_maxrss at the end "
                                "minus VmRSS after imports, data and warm-up fit"
                           if isolate else "in process: ru_maxrss minus VmRSS before "
                                           "fit (a lower bound when an earlier peak "
                                           "was higher)"),
        "learner_seed": args.seed, "seeds": list(args.seeds), "device": device,
        "torch_threads": torch.get_num_threads(),
        "total_wall_s": round(total_s, 1),
    }
    if cache_note:
        settings["sets_cache"] = cache_note
    columns = ["set", "training", "model", "seed", "clean_acc", "robust_acc",
               "robust_attack", "robust_pgd20", "fit_acc", "train_s", "eval_s"]
    summary_columns = ["set", "training", "model", "n_seeds", "clean_acc",
                       "robust_acc", "robust_attack", "robust_pgd20", "train_s_mean"]
    learner_columns = ["set", "eps", "learn_s", "mem_fit_mib", "mem_peak_mib",
                       "n_iter", "loss_start10", "loss_end10", "linf_change_mean"]
    print()
    print(markdown_table(learner_rows, learner_columns))
    print(markdown_table(summary, summary_columns))
    print(markdown_table(costs))
    print(f"total {total_s:.0f}s", flush=True)
    if args.no_write:
        return records
    name = f"robust_datasets_{data}"
    if args.tag:
        name += f"_{args.tag}"
    elif data != "digits" and args.n_train is not None:
        name += f"_n{info['n_train']}"
    json_path, md_path = write_results(
        name, records, settings, device=device, columns=columns, summary=summary,
        summary_columns=summary_columns,
        title=f"Robust-dataset learners on {data} (L-inf eps={eps})",
        notes=["robust_acc: robust_accuracy_score on the real test split with the "
               "preset in robust_attack (strong = attack=None, the library's default "
               "AutoAttack standard ensemble); robust_pgd20: attack='pgd'. Kernel "
               "rows attack the kernel predictor white-box through its torch view.",
               "natural: AdversarialClassifier(eps=0) trained on the learned set; "
               "pgd_at: PGD adversarial training on the original training split. "
               f"Network seeds {list(args.seeds)} differ from the learners' seed "
               f"{args.seed}.",
               "fit_acc: accuracy on the set the model was trained on; train_s, "
               "eval_s: wall-clock seconds."])
    # learner costs and amortisation: extra tables in the same files
    with open(json_path, encoding="utf-8") as f:
        payload = json.load(f)
    payload["learners"] = [dict(row, loss_history=learned[row["set"]].get(
        "loss_history")) for row in learner_rows]
    payload["amortisation"] = costs
    from _common import _jsonable
    with open(json_path, "w", encoding="utf-8") as f:
        json.dump(_jsonable(payload), f, indent=2)
        f.write("\n")
    with open(md_path, "a", encoding="utf-8") as f:
        f.write("\n## Learners\n\n" + markdown_table(learner_rows, learner_columns)
                + "\n- learn_s: wall-clock seconds of fit (after an untimed warm-up "
                  "fit with max_iter=1 on 200 rows); mem_fit_mib: "
                  + settings["memory_measure"] + " (MiB); mem_peak_mib: the peak "
                  "itself; linf_change_mean: mean over rows of the L-inf distance "
                  "between a learned row and its original; loss_start10, "
                  "loss_end10: mean outer loss of the first and last tenth of the "
                  "steps (whole trajectories in the JSON).\n"
                + "\n## Amortisation\n\n" + markdown_table(costs)
                + "\n- learn_plus_1_train_s: learning + one natural training on the "
                  "learned set; pgd_at_1_s: one PGD-AT training; break_even_k: the "
                  "smallest k with learn_s + k * natural_train_s <= k * "
                  "pgd_at_train_s (never: natural training on the set is not "
                  "cheaper). Compare robust_acc before reading it as a saving.\n"
                + f"\n- total wall time of the run: {total_s:.0f} s\n")
    print("wrote", json_path, md_path)
    return records


if __name__ == "__main__":
    main()
