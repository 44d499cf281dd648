"""Robust-dataset learners: does natural training on a learned set give robustness?

The protocol (one run measures everything side by side):

1. **learned sets**: the training split is given to each learner of ``LEARNERS``
   with its library defaults (``NTKRobustDistiller``, its support-set mode,
   ``TriLevelDatasetLearner`` and its fast configuration, Ilyas et al.'s D_R),
   with their learning time and peak memory;
2. **controls** beside every learned set ``L``: the original rows it started
   from, the same learner at ``eps=0`` (``L_eps0``), and random noise of the same
   size as the learned change, row by row: ``L+sign`` (each value moved by
   ``+-||delta_i||_inf``, the same L-inf size) and ``L+uniform`` (a uniform
   direction scaled to ``||delta_i||_2``, the same L2 size), clipped to the box;
3. **downstream networks trained naturally** on every set, architectures and
   seeds the learners never saw: an MLP with two 256-unit layers (the main row,
   enough capacity that the original data is not already robust), a 64-unit MLP
   and the TRADES SmallCNN, trained to convergence;
4. **ceilings**: PGD-AT and TRADES on the original data, same networks;
5. evaluation of every network on the real test split under the library's
   strong scorer (AutoAttack standard by default);
6. the **gain** of each learned set over its best control (per seed, then mean
   and spread), and the amortisation of "learn once, train k networks naturally"
   against "k PGD-AT trainings".

Examples::

    python -m benchmarks.robust_datasets --data digits --threads 1
    python -m benchmarks.robust_datasets --data mnist --data-path data/mnist.npz \\
        --n-train 10000 --n-test 500 --threads 1
    python -m benchmarks.robust_datasets --data digits --max-iter 3 --epochs 2 \\
        --seeds 1 --archs mlp --no-write                 # smoke run

A new learner is one line in ``LEARNERS``: a name and a factory taking a
:class:`LearnSetup` and returning an unfitted learner (``None``: no learning); a
learner ``L`` whose ``L_eps0`` is also registered gets that control.
"""

# SPDX-License-Identifier: BSD-3-Clause

import argparse
import dataclasses
import json
import math
import multiprocessing
import os
import time

import numpy as np
import torch
from torch import nn
from torch.func import functional_call

from sklearn_robust import AdversarialClassifier, TRADESClassifier
from sklearn_robust.dataset_learning import (
    NTKRobustDistiller,
    RobustFeatureDataset,
    TriLevelDatasetLearner,
)
from sklearn_robust.kernels import NTKClassifier
from sklearn_robust.metrics import robust_accuracy_score
from sklearn_robust.nn import MLP, SmallCNN, image_shape

from ._common import (
    Timer,
    _jsonable,
    _peak_rss_mib,
    _rss_mib,
    add_data_arguments,
    add_runtime_arguments,
    describe_preset,
    load_data,
    markdown_table,
    setup_runtime,
    warm_up,
    write_results,
)
from ._methods import Setup

# per data set: evaluation eps and the epochs that train each network to
# convergence (training accuracy ~1, see fit_acc in the results)
DEFAULT_EPS = {"digits": 0.1, "mnist": 0.1, "fashion_mnist": 0.1}
DEFAULT_EPOCHS = {"digits": 100, "mnist": 30, "fashion_mnist": 30}
DEFAULT_CNN_EPOCHS = {"digits": 30, "mnist": 10, "fashion_mnist": 10}


# ------------------------------------------------------------------------ learners


@dataclasses.dataclass
class LearnSetup:
    """What a learner factory needs: the learning eps, seed, device and overrides.

    ``options`` holds command-line overrides (``None``: the library's default).
    """

    eps: float
    seed: int
    device: str = "cpu"
    options: dict = dataclasses.field(default_factory=dict)

    def _given(self, prefix, **names):
        """The overrides given for ``prefix``: the named flags, then ``--param``."""
        given = {param: self.options[f"{prefix}_{key}"] for key, param in names.items()
                 if self.options.get(f"{prefix}_{key}") is not None}
        return dict(given, **self.options.get("params", {}).get(prefix, {}))

    def common(self, eps):
        return dict(eps=eps, device=self.device, random_state=self.seed,
                    **({"max_iter": self.options["max_iter"]}
                       if self.options.get("max_iter") is not None else {}))

    def ntk(self, eps, n_support=None, **fixed):
        """The distiller; ``fixed`` (e.g. ``kernel="conv"``) yields to overrides."""
        given = self._given("ntk", target_batch_size="target_batch_size", lr="lr",
                            attack_steps="n_steps", depth="depth")
        return NTKRobustDistiller(n_support=n_support, **self.common(eps),
                                  **dict(fixed, **given))

    def trilevel(self, eps, fast=False, init=None, cls=None, **fixed):
        """The tri-level learner (or the subclass ``cls``); ``fixed`` (e.g.
        ``module``, ``inner_steps``) are the learner's own settings and yield to
        the command-line overrides."""
        cls = cls or TriLevelDatasetLearner
        make = cls.fast if fast else cls
        given = self._given("tri", inner_steps="inner_steps", inner_lr="inner_lr",
                            lr="lr")
        return make(**self.common(eps), init=init, **dict(fixed, **given))

    def dr(self):
        return RobustFeatureDataset(device=self.device, random_state=self.seed,
                                    **self._given("dr", max_iter="max_iter"))


class TinyCNN(nn.Module):
    """A cheap convolutional network for small images (8x8 digits): inner level.

    ``conv3x3(c1) - ReLU - maxpool2 - conv3x3(c2) - ReLU - maxpool2 - linear``,
    'same' padding, PyTorch's default initialisation. Flat inputs are reshaped
    to images by :func:`~sklearn_robust.nn.image_shape` (64 features ->
    ``(1, 8, 8)``), so it takes the flat rows the tri-level learner passes.
    """

    def __init__(self, input_shape, n_classes, channels=(16, 32)):
        super().__init__()
        self.image_shape = image_shape(tuple(input_shape))
        c, h, w = self.image_shape
        c1, c2 = channels
        self.conv1 = nn.Conv2d(c, c1, kernel_size=3, padding=1)
        self.conv2 = nn.Conv2d(c1, c2, kernel_size=3, padding=1)
        self.pool = nn.MaxPool2d(2)
        self.fc = nn.Linear(c2 * (h // 2 // 2) * (w // 2 // 2), n_classes)

    def forward(self, x):
        h = self.pool(torch.relu(self.conv1(x.reshape(len(x), *self.image_shape))))
        h = self.pool(torch.relu(self.conv2(h)))
        return self.fc(torch.flatten(h, 1))


# inner settings of the convolutional tri-level learners: on the digits
# validation rows, 100 plain SGD steps at 0.3 from scratch train TinyCNN to a
# clean cross-entropy of about 0.2 (ln 10 = 2.30) at ~0.74 s per outer step on
# one CPU thread (MLP(128), 200 steps: ~0.2 s); the MLP of the pool gets the
# same 100 steps
CNN_INNER = {"module": TinyCNN, "inner_steps": 100, "inner_lr": 0.3}
POOL_INNER = dict(CNN_INNER, module=[None, TinyCNN])   # None: the MLP(128) default


class CurvatureDatasetLearner(TriLevelDatasetLearner):
    """A comparison row: GUARD's curvature penalty in place of the adversary.

    GUARD (Xue et al., 2024) makes distilled data robust through a teacher
    trained with a curvature penalty, ``lam * |CE(x + z) - CE(x)|`` with ``z``
    the loss gradient at ``x`` rescaled to L2 length ``h`` (the simplified
    CURE term of the authors' pre-training code), and soft labels of that
    teacher. A hard-label learned set cannot take the soft labels, so this row
    keeps the idea only: the tri-level learner's outer objective becomes the
    trained inner network's clean cross-entropy on the real batch plus that
    penalty, differentiated through the unrolled training (``z`` held constant);
    no attack. ``h = eps * sqrt(d)``, the L2 length of a corner of the L-inf
    ball; ``lam`` is the class attribute ``curvature_weight``.
    """

    curvature_weight = 10.0

    def _outer_loss(self, module, trained, x, y, attack):
        frozen = {k: v.detach() for k, v in trained.items()}
        x_ = x.detach().requires_grad_(True)
        (g,) = torch.autograd.grad(
            nn.functional.cross_entropy(functional_call(module, frozen, (x_,)), y), x_)
        flat = g.reshape(len(g), -1)
        h = self.eps * flat.shape[1] ** 0.5
        z = (h * flat / (flat.norm(dim=1, keepdim=True) + 1e-12)).reshape(x.shape)
        clean = nn.functional.cross_entropy(functional_call(module, trained, (x,)), y)
        logits = functional_call(module, trained, (x + z,))
        shifted = nn.functional.cross_entropy(logits, y)
        return clean + self.curvature_weight * (shifted - clean).abs(), logits


class CurvatureDatasetLearnerW1(CurvatureDatasetLearner):
    """The GUARD row with the curvature weight 1 (module level, so it pickles)."""

    curvature_weight = 1.0


class CurvatureDatasetLearnerW01(CurvatureDatasetLearner):
    """The GUARD row with the curvature weight 0.1."""

    curvature_weight = 0.1


# name -> factory(setup) -> unfitted learner (None: the training split as it is)
LEARNERS = {
    "original": lambda s: None,
    "ntk": lambda s: s.ntk(s.eps),
    "ntk_eps0": lambda s: s.ntk(0.0),
    "ntk_support": lambda s: s.ntk(s.eps, s.options["n_support"]),
    "ntk_support_eps0": lambda s: s.ntk(0.0, s.options["n_support"]),  # plain KIP
    "trilevel": lambda s: s.trilevel(s.eps),
    "trilevel_eps0": lambda s: s.trilevel(0.0),
    "trilevel_fast": lambda s: s.trilevel(s.eps, fast=True),
    "trilevel_fast_eps0": lambda s: s.trilevel(0.0, fast=True),
    "dr": lambda s: s.dr(),                    # Ilyas et al.'s D_R
    # the combination: the tri-level learner started from the distilled set
    "ntk_trilevel": lambda s: s.trilevel(s.eps, init=s.ntk(s.eps)),
    "ntk_trilevel_eps0": lambda s: s.trilevel(0.0, init=s.ntk(0.0)),
    # convolutional inner level (TinyCNN), and a pool of MLP(128) and TinyCNN
    "trilevel_cnn": lambda s: s.trilevel(s.eps, **CNN_INNER),
    "trilevel_cnn_eps0": lambda s: s.trilevel(0.0, **CNN_INNER),
    "trilevel_pool": lambda s: s.trilevel(s.eps, **POOL_INNER),
    "trilevel_pool_eps0": lambda s: s.trilevel(0.0, **POOL_INNER),
    # (the inner batches translated by up to 1 pixel, measured on 2026-12-04,
    # gave 0.10 robust / 0.68 clean on MLP(256, 256) and 0.22 / 0.65 on SmallCNN:
    # removed; validation_trilevel-ablations, validation_trilevel-shift-cnn)
    # GUARD's curvature penalty instead of the adversary (a comparison row)
    "trilevel_guard": lambda s: s.trilevel(s.eps, cls=CurvatureDatasetLearner),
    "trilevel_guard_w1": lambda s: s.trilevel(s.eps, cls=CurvatureDatasetLearnerW1),
    "trilevel_guard_w0.1": lambda s: s.trilevel(s.eps, cls=CurvatureDatasetLearnerW01),
    # an ensemble of FC kernels (one depth drawn per step); the support
    # augmentation by 1-pixel shifts measured beside it on 2026-12-04 (0.307
    # robust against 0.583 without, validation_ntk-ablations) was removed
    "ntk_ens": lambda s: s.ntk(s.eps, depth=[1, 2, 3]),
    "ntk_ens_eps0": lambda s: s.ntk(0.0, depth=[1, 2, 3]),
    # label learning (support-set mode); the downstream networks train on the
    # hard labels, the argmax of the learned ones (y_robust_)
    "ntk_labels": lambda s: s.ntk(s.eps, s.options["n_support"], learn_labels=True),
    "ntk_labels_eps0": lambda s: s.ntk(0.0, s.options["n_support"],
                                       learn_labels=True),
    # the convolutional NTK (CNTK-GAP): ~150 s per outer step on 200 digits rows
    # on one CPU thread (2026-12-03), far from affordable on the whole split
    "ntk_conv": lambda s: s.ntk(s.eps, kernel="conv"),
    "ntk_conv_eps0": lambda s: s.ntk(0.0, kernel="conv"),
    # the CNTK in support-set mode, affordable at --n-support 100 and
    # --ntk-target-batch-size 64 (about 21 s per outer step on one CPU thread)
    "ntk_conv_support": lambda s: s.ntk(s.eps, s.options["n_support"], kernel="conv"),
    "ntk_conv_support_eps0": lambda s: s.ntk(0.0, s.options["n_support"],
                                             kernel="conv"),
}
DEFAULT_LEARNERS = ["original", "ntk", "ntk_eps0", "ntk_support", "ntk_support_eps0",
                    "trilevel", "trilevel_eps0", "trilevel_fast", "trilevel_fast_eps0"]
NOISE = ("sign", "uniform")


def fit_learner(name, setup, X, y, threads=None):
    """Fit one learner and measure it; runs in a child process on CPU.

    An untimed warm-up fit (``max_iter=1`` on at most 200 rows) runs first, so
    that lazy imports and first-call costs are not counted. Then the memory
    baseline is taken (current RSS, or CUDA allocation), the learner is fitted
    and timed, and the peak is read: ``VmHWM`` of this process on CPU,
    ``torch.cuda.max_memory_allocated`` on CUDA.
    """
    import warnings

    from sklearn.base import clone

    if threads is not None:
        torch.set_num_threads(threads)
    learner = LEARNERS[name](setup)
    if learner is None:
        return {"X": X, "y": y, "learn_s": 0.0, "base_idx": None}
    n_warm = min(len(y), 200)
    with Timer(setup.device) as t_warm, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        warm = clone(learner).set_params(max_iter=1)
        if getattr(warm, "n_support", None):
            warm.set_params(n_support=min(warm.n_support, n_warm // 2))
        warm.fit(X[:n_warm], y[:n_warm])
    cuda = str(setup.device).startswith("cuda")
    if cuda:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(setup.device)
        base = torch.cuda.memory_allocated(setup.device) / 2**20
    else:
        base = _rss_mib()
    with Timer(setup.device) as t_fit, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        learner.fit(X, y)
    peak = (torch.cuda.max_memory_allocated(setup.device) / 2**20 if cuda
            else _peak_rss_mib())
    history = getattr(learner, "loss_history_", None)
    accuracy = getattr(learner, "accuracy_history_", None)
    # tri-level: the inner network's clean loss on real batches (ln(n_classes)
    # when it does not learn)
    clean_loss = getattr(learner, "clean_loss_history_", None)

    def tenth(values, last):
        if values is None:
            return None
        k = max(1, len(values) // 10)
        return float(np.mean(values[-k:] if last else values[:k]))

    return {
        "X": learner.X_robust_, "y": learner.y_robust_, "learn_s": t_fit.seconds,
        "base_idx": getattr(learner, "support_indices_", None) if len(
            learner.y_robust_) != len(y) else None,
        "warmup_s": t_warm.seconds,
        "memory": "cuda max_memory_allocated" if cuda else "child VmHWM",
        "mem_base_mib": base, "mem_peak_mib": peak, "mem_fit_mib": peak - base,
        # single steps are noisy (fresh batches, networks): means of the first
        # and last tenth of the steps, and the whole trajectories for the JSON
        "loss_start10": tenth(history, False), "loss_end10": tenth(history, True),
        "acc_start10": tenth(accuracy, False), "acc_end10": tenth(accuracy, True),
        "clean_loss_start10": tenth(clean_loss, False),
        "clean_loss_end10": tenth(clean_loss, True),
        "loss_history": None if history is None else [float(v) for v in history],
        "clean_loss_history": None if clean_loss is None else [
            float(v) for v in clean_loss],
        "accuracy_history": None if accuracy is None else [float(v) for v in accuracy],
        "warnings": [str(w.message) for w in caught],
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


def load_sets(path, key):
    """Learned sets saved by :func:`save_sets`, checked against ``key``."""
    with np.load(path, allow_pickle=False) as f:
        meta = json.loads(str(f["meta"]))
        if meta["key"] != key:
            raise SystemExit(f"--sets-cache {path} was written with other settings:\n"
                             f"  {meta['key']}\nnow:\n  {key}")
        learned = {n: dict(r, X=f[f"X_{n}"], y=f[f"y_{n}"],
                           base_idx=f[f"idx_{n}"] if f"idx_{n}" in f else None)
                   for n, r in meta["sets"].items()}
    return learned, meta["written_utc"]


def save_sets(path, key, learned):
    """Save the learned sets and their measurements (one ``.npz``)."""
    import datetime

    arrays, sets = {}, {}
    for n, r in learned.items():
        arrays[f"X_{n}"], arrays[f"y_{n}"] = np.asarray(r["X"]), np.asarray(r["y"])
        if r.get("base_idx") is not None:
            arrays[f"idx_{n}"] = np.asarray(r["base_idx"])
        sets[n] = {k: v for k, v in r.items() if k not in ("X", "y", "base_idx")}
    meta = {"key": key, "sets": _jsonable(sets),
            "written_utc": datetime.datetime.now(datetime.timezone.utc)
            .strftime("%Y-%m-%dT%H:%M:%SZ")}
    np.savez(path, meta=np.array(json.dumps(meta)), **arrays)


def _learn_all(names, setup, X, y, args, isolate):
    """Yield ``(name, result)`` for each learner of ``names``, in order.

    With ``--learn-jobs N > 1`` (CPU, child processes) up to ``N`` learners fit
    at once, each in its own 'spawn' child with ``--threads`` torch threads; their
    times then include the contention of the others (the load is in the header).
    """
    jobs = getattr(args, "learn_jobs", 1) or 1
    if jobs <= 1 or not isolate:
        for name in names:
            yield name, learn(name, setup, X, y, args.threads, isolate)
        return
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(jobs, maxtasksperchild=1) as pool:
        pending = [(n, pool.apply_async(fit_learner, (n, setup, X, y, args.threads)))
                   for n in names]
        for name, result in pending:
            yield name, result.get()


def learn_sets(names, setup, X, y, args, isolate, key):
    """Every learned set of ``names`` (from the cache where it holds them)."""
    learned, note = {}, None
    if args.sets_cache and os.path.exists(args.sets_cache):
        learned, written = load_sets(args.sets_cache, key)
        note = (f"learned sets and learner measurements loaded from "
                f"{os.path.basename(args.sets_cache)}, written {written} by an earlier "
                "run with the same learner settings")
        print(note, flush=True)
    todo = [n for n in names if n not in learned]
    for name, res in _learn_all(todo, setup, X, y, args, isolate):
        res["eps"] = None if name in ("original", "dr") else (
            0.0 if name.endswith("_eps0") else setup.eps)
        learned[name] = res
        mem = res.get("mem_fit_mib")
        print(f"[learn {name}] {res['learn_s']:.1f}s"
              + (f"  peak +{mem:.0f} MiB" if mem is not None else "")
              + (f"  loss {res['loss_start10']:.4f} -> {res['loss_end10']:.4f}"
                 if res.get("loss_start10") is not None else "")
              + (f"  inner clean CE {res['clean_loss_start10']:.4f} -> "
                 f"{res['clean_loss_end10']:.4f}"
                 if res.get("clean_loss_start10") is not None else "")
              + "".join(f"\n  warning: {w}" for w in res.get("warnings", [])),
              flush=True)
        if args.sets_cache:     # after every set: an interrupted run keeps them
            save_sets(args.sets_cache, key, learned)
    return {n: learned[n] for n in names}, note


# ------------------------------------------------------------------------ controls


def base_rows(record, X, y):
    """The original rows a learned set started from (all, or its support)."""
    idx = record.get("base_idx")
    return (X, y) if idx is None else (X[np.asarray(idx)], y[np.asarray(idx)])


def change_sizes(X_base, X_learned):
    """Per-row L-inf and L2 norms of the learned change."""
    delta = (np.asarray(X_learned, np.float64) - X_base).reshape(len(X_base), -1)
    return np.abs(delta).max(axis=1), np.linalg.norm(delta, axis=1)


def noise_like(X_base, X_learned, kind, rng, clip_min=0.0, clip_max=1.0):
    """Random noise of the size of the learned change, row by row, on ``X_base``.

    ``"sign"``: every value moved by ``+-||delta_i||_inf`` (random signs), the
    same L-inf size as the learned change of row ``i``; ``"uniform"``: a
    direction drawn uniformly in the cube, scaled to ``||delta_i||_2``, the same
    L2 size. The result is clipped to the box (which can only shrink it).
    """
    linf, l2 = change_sizes(X_base, X_learned)
    shape = (len(X_base), int(np.prod(X_base.shape[1:])))
    if kind == "sign":
        noise = rng.choice([-1.0, 1.0], size=shape) * linf[:, None]
    elif kind == "uniform":
        noise = rng.uniform(-1.0, 1.0, size=shape)
        noise *= (l2 / np.maximum(np.linalg.norm(noise, axis=1), 1e-12))[:, None]
    else:
        raise ValueError(f"unknown noise {kind!r}")
    return np.clip(X_base + noise.reshape(X_base.shape), clip_min,
                   clip_max).astype(np.float32)


def training_sets(learned, X, y, seed):
    """The learned sets with their controls: ``name -> (X, y, role, of)``.

    ``role`` is ``original``, ``learned``, ``eps0`` or a noise kind; ``of`` is
    the learned set a control belongs to.
    """
    sets = {}
    for name, rec in learned.items():
        if name == "original":
            sets[name] = (X, y, "original", None)
            continue
        if name.endswith("_eps0"):
            sets[name] = (rec["X"], rec["y"], "eps0", name[:-len("_eps0")])
            continue
        sets[name] = (rec["X"], rec["y"], "learned", name)
        X_base, y_base = base_rows(rec, X, y)
        if rec.get("base_idx") is not None:
            sets[f"{name}:initial"] = (X_base, y_base, "original", name)
        if len(rec["y"]) != len(y_base):
            continue                  # learned rows replace no original rows
        for i, kind in enumerate(NOISE):
            rng = np.random.RandomState([seed, i, len(sets)])
            sets[f"{name}+{kind}"] = (noise_like(X_base, rec["X"], kind, rng),
                                      y_base, kind, name)
    return sets


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


# tinycnn: the convolutional tri-level learners' own inner architecture (a
# network of the kind they saw, not an unseen one), trained like the MLPs
ARCHS = {"mlp": (256, 256), "mlp64": (64,), "smallcnn": None, "tinycnn": None}


def arch_kwargs(arch, input_shape):
    """Module keyword arguments and a display name of a downstream network."""
    if arch == "smallcnn":
        _, h, w = image_shape(tuple(input_shape))
        if min(h, w) >= 16:
            return {"module": SmallCNN}, "SmallCNN"
        return {"module": UpsampledSmallCNN}, f"SmallCNN(x2 upsampled {h}x{w})"
    if arch == "tinycnn":
        return {"module": TinyCNN}, "TinyCNN(16, 32)"
    hidden = ARCHS[arch]
    return {"module": MLP, "module__hidden_layer_sizes": hidden}, f"MLP{hidden}"


TRAININGS = {
    "natural": lambda kw: AdversarialClassifier(**dict(kw, eps=0.0)),
    "pgd_at": lambda kw: AdversarialClassifier(**kw),
    "trades": lambda kw: TRADESClassifier(beta=6.0, **kw),
}


def evaluate(model, X_test, y_test, eps, seed, attack, device):
    """Clean accuracy and robust accuracy under the scorer preset ``attack``."""
    with Timer(device) as t_eval:
        clean = float(np.mean(model.predict(X_test) == y_test))
        robust = robust_accuracy_score(model, X_test, y_test, eps=eps,
                                       attack=None if attack == "strong" else attack,
                                       random_state=seed)
    return {"clean_acc": clean, "robust_acc": robust, "robust_attack": attack,
            "eval_s": t_eval.seconds}


def train_and_evaluate(set_name, X_fit, y_fit, arch, seed, training, ctx):
    """Train one network on one set and evaluate it on the real test split."""
    kwargs, model_name = arch_kwargs(arch, ctx["input_shape"])
    epochs = ctx["cnn_epochs"] if arch == "smallcnn" else ctx["epochs"]
    setup = Setup(eps=ctx["eps"], seed=seed, epochs=epochs, device=ctx["device"],
                  attack_steps=ctx["attack_steps"], batch_size=ctx["batch_size"],
                  lr=ctx["lr"])
    model = TRAININGS[training](setup.common(**kwargs))
    with Timer(ctx["device"]) as t_fit:
        model.fit(X_fit, y_fit)
    row = {"set": set_name, "training": training, "model": model_name, "seed": seed,
           "train_s": t_fit.seconds,
           "fit_acc": float(np.mean(model.predict(X_fit) == y_fit))}
    row.update(evaluate(model, ctx["X_test"], ctx["y_test"], ctx["eps"], seed,
                        ctx["attack_for"][arch], ctx["device"]))
    print(f"[{set_name} {training} {model_name} seed={seed}] train "
          f"{row['train_s']:.1f}s fit {row['fit_acc']:.3f}  clean "
          f"{row['clean_acc']:.3f}  {row['robust_attack']} {row['robust_acc']:.3f}  "
          f"eval {row['eval_s']:.1f}s",
          flush=True)
    return row


def kernel_row(name, X_fit, y_fit, ctx):
    """Kernel regression with the distiller's kernel (FC NTK, depth 1) on a set."""
    kernel = NTKClassifier(kernel="fc", depth=1, get="ntk", device=ctx["device"],
                           dtype="float64")
    with Timer(ctx["device"]) as t_fit:
        kernel.fit(X_fit, y_fit)
    row = {"set": name, "training": "kernel regression", "model": "NTK(fc, depth 1)",
           "seed": None, "train_s": t_fit.seconds,
           "fit_acc": float(np.mean(kernel.predict(X_fit) == y_fit))}
    row.update(evaluate(kernel, ctx["X_test"], ctx["y_test"], ctx["eps"], 0,
                        ctx["attack_for"]["kernel"], ctx["device"]))
    print(f"[{name} kernel] clean {row['clean_acc']:.3f}  {row['robust_attack']} "
          f"{row['robust_acc']:.3f}", flush=True)
    return row


# ------------------------------------------------------------------------ summaries


def _mean_std(values):
    values = np.asarray([v for v in values if v is not None], dtype=float)
    if values.size == 0:
        return float("nan"), float("nan")
    return (float(values.mean()),
            float(values.std(ddof=1)) if values.size > 1 else 0.0)


def _pm(mean, std, n):
    return "n/a" if mean != mean else (f"{mean:.3f} ± {std:.3f}" if n > 1
                                       else f"{mean:.3f}")


def summarize(records, sets):
    """Mean and standard deviation over seeds per set x training x model."""
    rows = []
    keys = dict.fromkeys((r["set"], r["training"], r["model"]) for r in records)
    for key in keys:
        runs = [r for r in records if (r["set"], r["training"], r["model"]) == key]
        role, of = sets.get(key[0], (None, None, "original", None))[2:]
        row = {"set": key[0], "role": role, "of": of, "training": key[1],
               "model": key[2], "n_seeds": len(runs)}
        for col in ("clean_acc", "robust_acc", "fit_acc", "train_s"):
            mean, std = _mean_std(r.get(col) for r in runs)
            row[f"{col}_mean"], row[f"{col}_std"] = mean, std
            if col in ("clean_acc", "robust_acc"):
                row[col] = _pm(mean, std, len(runs))
        rows.append(row)
    return rows


def gains(records, sets):
    """Each learned set against each of its controls, per network, over seeds.

    The gain over a control is computed seed by seed (same network seed, same
    initialisation) and then averaged; ``best_control`` is the control with the
    highest mean robust accuracy, and ``gain`` the learned set's margin over it.
    """
    by = {(r["set"], r["model"], r["seed"]): r for r in records
          if r["training"] in ("natural", "kernel regression")}
    models = dict.fromkeys(r["model"] for r in records if r["training"] == "natural")
    rows = []
    for name, (_, _, role, _) in sets.items():
        if role != "learned":
            continue
        controls = [c for c, v in sets.items() if v[3] == name and c != name]
        if "original" in sets and f"{name}:initial" not in sets:
            controls.insert(0, "original")
        for model in models:
            seeds = [s for (n, m, s) in by if n == name and m == model]
            if not seeds:
                continue
            row = {"set": name, "model": model, "n_seeds": len(seeds)}
            learned_rob = [by[(name, model, s)]["robust_acc"] for s in seeds]
            row["robust"] = _pm(*_mean_std(learned_rob), len(seeds))
            row["clean"] = _pm(*_mean_std(by[(name, model, s)]["clean_acc"]
                                          for s in seeds), len(seeds))
            best, best_mean, diffs_best = None, -1.0, None
            for c in controls:
                if not all((c, model, s) in by for s in seeds):
                    continue
                diffs = [by[(name, model, s)]["robust_acc"]
                         - by[(c, model, s)]["robust_acc"] for s in seeds]
                mean_c = float(np.mean([by[(c, model, s)]["robust_acc"]
                                        for s in seeds]))
                short = c.replace(name, "").lstrip("_+:") or c
                row[f"vs {short}"] = _pm(*_mean_std(diffs), len(seeds))
                if mean_c > best_mean:
                    best, best_mean, diffs_best = c, mean_c, diffs
            if best is not None:
                row["best_control"] = best
                row["best_control_robust"] = round(best_mean, 3)
                row["gain"] = _pm(*_mean_std(diffs_best), len(seeds))
                row["gain_mean"] = float(np.mean(diffs_best))
            rows.append(row)
    return rows


def amortisation(summary, learned):
    """Learning + k natural trainings against k PGD-AT trainings, per set x net."""
    pgd = {r["model"]: r for r in summary if r["training"] == "pgd_at"}
    rows = []
    for r in summary:
        if (r["training"] != "natural" or r["model"] not in pgd
                or r["role"] != "learned"):
            continue
        learn_s = learned[r["set"]]["learn_s"]
        t_nat, t_pgd = r["train_s_mean"], pgd[r["model"]]["train_s_mean"]
        saving = t_pgd - t_nat
        k = math.ceil(learn_s / saving) if saving > 0 else None
        rows.append({
            "set": r["set"], "model": r["model"], "learn_s": learn_s,
            "natural_train_s": t_nat, "pgd_at_train_s": t_pgd,
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
    parser.add_argument("--learners", nargs="+", default=DEFAULT_LEARNERS,
                        choices=list(LEARNERS), metavar="SET",
                        help=f"learned sets, among {list(LEARNERS)}")
    parser.add_argument("--eps", type=float, default=None,
                        help=f"L-inf evaluation radius (default: {DEFAULT_EPS})")
    parser.add_argument("--learn-eps", type=float, default=None,
                        help="radius of the learners' attack (default: --eps)")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of the data split and of every learner")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3],
                        help="seeds of the downstream networks (initialisation, "
                             "batches); keep them different from --seed")
    parser.add_argument("--validation", type=float, default=None, metavar="FRACTION",
                        help="choose settings without the test split: learn on the "
                             "training split less FRACTION of it (stratified, --seed) "
                             "and evaluate on that FRACTION instead of the test split")
    g = parser.add_argument_group(
        "learner overrides (default: each learner's library defaults)")
    g.add_argument("--max-iter", type=int, default=None,
                   help="outer steps of every learner (smoke runs)")
    g.add_argument("--n-support", type=int, default=300,
                   help="size of the ntk_support sets")
    for prefix, names in (("ntk", ("target-batch-size", "lr", "attack-steps",
                                   "depth")),
                          ("tri", ("inner-steps", "inner-lr", "lr"))):
        for n in names:
            kind = float if "lr" in n else int
            g.add_argument(f"--{prefix}-{n}", type=kind, default=None)
    g.add_argument("--dr-max-iter", type=int, default=None)
    g.add_argument("--param", nargs="+", default=[], metavar="LEARNER.NAME=VALUE",
                   help="any other learner parameter, LEARNER one of ntk, tri, dr and "
                        "VALUE a Python literal, e.g. ntk.max_change=0.2 "
                        "tri.max_iter=800")
    g = parser.add_argument_group("downstream networks and evaluation")
    g.add_argument("--archs", nargs="+", default=["mlp", "mlp64", "smallcnn"],
                   choices=list(ARCHS))
    g.add_argument("--epochs", type=int, default=None,
                   help=f"MLP epochs (default: {DEFAULT_EPOCHS})")
    g.add_argument("--cnn-epochs", type=int, default=None,
                   help=f"SmallCNN epochs (default: {DEFAULT_CNN_EPOCHS})")
    g.add_argument("--batch-size", type=int, default=128)
    g.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate")
    g.add_argument("--attack-steps", type=int, default=10,
                   help="PGD steps of the PGD-AT and TRADES ceilings")
    g.add_argument("--ceilings", nargs="*", default=["pgd_at", "trades"],
                   choices=["pgd_at", "trades"])
    g.add_argument("--kernel", action="store_true",
                   help="also fit NTK kernel regression on every set")
    g.add_argument("--eval-attack", default="strong",
                   help="scorer preset: strong (the library's default, attack=None), "
                        "fast or pgd")
    g.add_argument("--cnn-eval-attack", default=None,
                   help="preset for SmallCNN rows (default: --eval-attack)")
    parser.add_argument("--memory", choices=["child", "inprocess"], default="child",
                        help="child: fit each learner in a 'spawn' child process and "
                             "report its peak RSS (CPU); inprocess: in this process")
    parser.add_argument("--learn-jobs", type=int, default=1, metavar="N",
                        help="fit up to N learners at once, each in its own child "
                             "process (CPU, --memory child); default 1")
    parser.add_argument("--sets-cache", default=None, metavar="PATH.npz",
                        help="learned sets: loaded from PATH when it exists (settings "
                             "must match), else learned and saved there")
    parser.add_argument("--tag", default=None,
                        help="suffix of the result file names (default: the subset)")
    parser.add_argument("--no-write", action="store_true", help="print the tables only")
    return parser.parse_args(argv)


def _parse_params(items):
    """``["ntk.max_change=0.2", ...]`` -> ``{"ntk": {"max_change": 0.2}, ...}``."""
    import ast

    params = {}
    for item in items:
        name, sep, value = item.partition("=")
        prefix, dot, param = name.partition(".")
        if not sep or not dot or prefix not in ("ntk", "tri", "dr") or not param:
            raise SystemExit(f"--param {item!r}: expected LEARNER.NAME=VALUE with "
                             "LEARNER one of ntk, tri, dr")
        try:
            params.setdefault(prefix, {})[param] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            raise SystemExit(f"--param {item!r}: {value!r} is not a Python literal")
    return params


def _options(args):
    keys = ["max_iter", "n_support", "ntk_target_batch_size", "ntk_lr",
            "ntk_attack_steps", "ntk_depth", "tri_inner_steps", "tri_inner_lr",
            "tri_lr", "dr_max_iter"]
    options = {k: getattr(args, k) for k in keys}
    params = _parse_params(args.param)
    if params:
        options["params"] = params
    return options


def validation_split(X_train, y_train, info, fraction, seed):
    """Split the training split into a fitting part and a validation part."""
    from sklearn.model_selection import train_test_split

    X_fit, X_val, y_fit, y_val = train_test_split(
        X_train, y_train, test_size=fraction, stratify=y_train, random_state=seed)
    info = dict(info, n_train=int(len(y_fit)), n_test=int(len(y_val)),
                source=f"{info['source']}; training split cut {1 - fraction:g}/"
                       f"{fraction:g} (stratified, seed {seed}): learn on the first "
                       "part, evaluate on the second (validation, not the test split)")
    return X_fit, X_val, y_fit, y_val, info


def write(args, info, ctx, learned, records, sets, note, total_s):
    """Tables to stdout and to ``benchmarks/results/`` (unless ``--no-write``)."""
    summary = summarize(records, sets)
    gain_rows = gains(records, sets)
    costs = amortisation(summary, learned)
    learner_rows = []
    for n, r in learned.items():
        if n == "original":
            continue
        X_base, _ = base_rows(r, ctx["X_train"], ctx["y_train"])
        linf = l2 = None
        if len(X_base) == len(r["X"]):
            linf, l2 = (float(v.mean()) for v in change_sizes(X_base, r["X"]))
        learner_rows.append({
            "set": n, "eps": r["eps"], "rows": len(r["y"]), "learn_s": r["learn_s"],
            "mem_fit_mib": r.get("mem_fit_mib"), "mem_peak_mib": r.get("mem_peak_mib"),
            "n_iter": r.get("n_iter"), "loss_start10": r.get("loss_start10"),
            "loss_end10": r.get("loss_end10"), "acc_start10": r.get("acc_start10"),
            "acc_end10": r.get("acc_end10"),
            "clean_loss_start10": r.get("clean_loss_start10"),
            "clean_loss_end10": r.get("clean_loss_end10"),
            "linf_change": linf, "l2_change": l2,
            "warnings": len(r.get("warnings", []))})
    gain_cols = list(dict.fromkeys(k for row in gain_rows for k in row
                                   if k != "gain_mean"))
    summary_cols = ["set", "role", "training", "model", "n_seeds", "clean_acc",
                    "robust_acc", "fit_acc_mean", "train_s_mean"]
    learner_cols = list(learner_rows[0]) if learner_rows else []
    print()
    for table, cols in ((learner_rows, learner_cols), (summary, summary_cols),
                        (gain_rows, gain_cols), (costs, None)):
        print(markdown_table(table, cols))
    print(f"total {total_s:.0f}s", flush=True)
    if args.no_write:
        return
    settings = {
        "data": args.data, "source": info["source"], "n_train": info["n_train"],
        "n_test": info["n_test"], "input_shape": info["input_shape"], "norm": "linf",
        "eps": ctx["eps"], "learn_eps": ctx["learn_eps"], "learners": list(learned),
        "learner_overrides": {k: v for k, v in _options(args).items()
                              if v is not None},
        "split": ("test" if args.validation is None
                  else f"validation ({args.validation:g} of the training split)"),
        "learner_params": {n: r.get("params") for n, r in learned.items()},
        "archs": [arch_kwargs(a, ctx["input_shape"])[1] for a in args.archs],
        "epochs_mlp": ctx["epochs"], "epochs_smallcnn": ctx["cnn_epochs"],
        "batch_size": args.batch_size, "optimizer": "Adam", "lr": args.lr,
        "ceilings": f"{args.ceilings} with PGD-{args.attack_steps}, step "
                    f"2.5 eps / steps; TRADES beta 6",
        "eval_attack": ctx["attack_for"],
        "eval_presets": {p: describe_preset(p)
                         for p in dict.fromkeys(ctx["attack_for"].values())},
        "learner_seed": args.seed, "seeds": list(args.seeds), "device": ctx["device"],
        "torch_threads": torch.get_num_threads(), "total_wall_s": round(total_s, 1),
    }
    if note:
        settings["sets_cache"] = note
    name = f"robust_datasets_{args.data}"
    if args.validation is not None:
        name += "_validation"
    if args.tag:
        name += f"_{args.tag}"
    elif args.data != "digits" and args.n_train is not None:
        name += f"_n{info['n_train']}"
    json_path, md_path = write_results(
        name, records, settings, device=ctx["device"],
        columns=["set", "training", "model", "seed", "clean_acc", "robust_acc",
                 "robust_attack", "fit_acc", "train_s", "eval_s"],
        summary=summary, summary_columns=summary_cols,
        title=f"Robust-dataset learners on {args.data} (L-inf eps={ctx['eps']})",
        notes=["robust_acc: robust_accuracy_score on the real "
               + ("test split" if args.validation is None else "validation rows")
               + " with the "
               "preset in robust_attack (strong = attack=None, the library's default "
               "AutoAttack standard ensemble).",
               "natural: AdversarialClassifier(eps=0) trained on the set; pgd_at, "
               "trades: trained on the original training split (the ceilings). "
               f"Network seeds {list(args.seeds)}; learners' seed {args.seed}.",
               "Controls of a learned set L: original (or L:initial, the support's "
               "starting rows), L_eps0 (the same learner without attack), L+sign "
               "and L+uniform (random noise of the learned change's per-row L-inf "
               "and L2 size)."])
    with open(json_path, encoding="utf-8") as f:
        payload = json.load(f)
    payload["learners"] = [dict(row, loss_history=learned[row["set"]].get(
        "loss_history"), accuracy_history=learned[row["set"]].get("accuracy_history"),
        clean_loss_history=learned[row["set"]].get("clean_loss_history"),
        warning_texts=learned[row["set"]].get("warnings")) for row in learner_rows]
    payload["gains"], payload["amortisation"] = gain_rows, costs
    with open(json_path, "w", encoding="utf-8") as f:
        json.dump(_jsonable(payload), f, indent=2)
        f.write("\n")
    with open(md_path, "a", encoding="utf-8") as f:
        f.write("\n## Gains over the controls\n\n"
                + markdown_table(gain_rows, gain_cols)
                + "\n- vs C: robust accuracy of the learned set minus that of control "
                  "C, seed by seed, mean ± std; gain: over the best control (highest "
                  "mean robust accuracy).\n"
                + "\n## Learners\n\n" + markdown_table(learner_rows, learner_cols)
                + "\n- learn_s: wall-clock seconds of fit after an untimed warm-up; "
                  "mem_fit_mib: peak RSS of the learner's child process minus its RSS "
                  "before fit (CUDA: max_memory_allocated); loss/acc_start10, _end10: "
                  "mean outer loss and clean accuracy of the learner's own model on "
                  "real batches, first and last tenth of the steps; clean_loss_*: "
                  "the tri-level inner network's clean cross-entropy on the real "
                  "batches (ln(n_classes) at chance); linf_change, "
                  "l2_change: mean per-row size of the learned change.\n"
                + "\n## Amortisation\n\n" + markdown_table(costs)
                + "\n- break_even_k: the smallest k with learn_s + k * natural_train_s "
                  "<= k * pgd_at_train_s. Compare robust_acc before reading it as a "
                  "saving.\n"
                + f"\n- total wall time of the run: {total_s:.0f} s\n")
    print("wrote", json_path, md_path)


def main(argv=None):
    args = parse_args(argv)
    device = setup_runtime(args)
    eps = DEFAULT_EPS[args.data] if args.eps is None else args.eps
    learn_eps = eps if args.learn_eps is None else args.learn_eps
    if args.seed in args.seeds:
        print(f"warning: network seed {args.seed} is also the learners' seed",
              flush=True)
    X_train, X_test, y_train, y_test, info = load_data(
        args.data, data_path=args.data_path, n_train=args.n_train, n_test=args.n_test,
        seed=args.seed)
    if args.validation is not None:
        X_train, X_test, y_train, y_test, info = validation_split(
            X_train, y_train, info, args.validation, args.seed)
    ctx = {"X_train": X_train, "y_train": y_train, "X_test": X_test, "y_test": y_test,
           "input_shape": tuple(X_train.shape[1:]), "eps": eps, "learn_eps": learn_eps,
           "device": device, "attack_steps": args.attack_steps,
           "batch_size": args.batch_size, "lr": args.lr,
           "epochs": args.epochs or DEFAULT_EPOCHS[args.data],
           "cnn_epochs": args.cnn_epochs or DEFAULT_CNN_EPOCHS[args.data],
           "attack_for": {"kernel": args.eval_attack, "mlp": args.eval_attack,
                          "mlp64": args.eval_attack,
                          "smallcnn": args.cnn_eval_attack or args.eval_attack,
                          "tinycnn": args.cnn_eval_attack or args.eval_attack}}
    t_start = time.perf_counter()
    options = _options(args)
    setup = LearnSetup(eps=learn_eps, seed=args.seed, device=device, options=options)
    isolate = args.memory == "child" and not str(device).startswith("cuda")
    learned, note = learn_sets(args.learners, setup, X_train, y_train, args, isolate,
                               _cache_key(info, learn_eps, args.seed, options))
    sets = training_sets(learned, X_train, y_train, args.seed)
    warm_up(X_train, y_train, device)
    records = []
    for name, (X_fit, y_fit, _, _) in sets.items():
        if args.kernel:
            records.append(kernel_row(name, X_fit, y_fit, ctx))
        for arch in args.archs:
            for seed in args.seeds:
                records.append(train_and_evaluate(name, X_fit, y_fit, arch, seed,
                                                  "natural", ctx))
    for training in args.ceilings:
        for arch in args.archs:
            for seed in args.seeds:
                records.append(train_and_evaluate("original", X_train, y_train, arch,
                                                  seed, training, ctx))
    write(args, info, ctx, learned, records, sets, note, time.perf_counter() - t_start)
    return records


if __name__ == "__main__":
    main()
