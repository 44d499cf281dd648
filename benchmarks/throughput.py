"""Epoch time of the library's PGD adversarial training against a hand-written loop.

Both sides train the same network class (same initial weights) on the same data
with the same batch size, optimizer and K-step L-inf PGD, so each batch costs
K + 1 forward/backward passes: K attack steps with the module in eval mode
(gradient with respect to the perturbation only), then one training step on the
adversarial batch in train mode. The hand-written loop is the cost floor: data
already on the device as tensors, indexed by a random permutation, no checks and
no bookkeeping. The library side is ``AdversarialClassifier.partial_fit`` with
``max_epochs=1``, ``train_split=None``, ``verbose=0`` and skorch's default
callbacks (epoch timer and train-loss record, no extra forward pass).

After one untimed warm-up epoch each, the two alternate for ``--repeats`` epochs;
the ratio of the median epoch times (library / hand-written) is compared with the
target 1.10. A forward/backward count on one further epoch checks that both did
the same work. With ``--profile`` (or when the target is missed) one library epoch
runs under cProfile and the top functions are written next to the results.

Examples::

    python -m benchmarks.throughput --data digits
    python -m benchmarks.throughput --data mnist --data-path data/mnist.npz \\
        --n-train 2048 --steps 10
    python -m benchmarks.throughput --data mnist --data-path data/mnist.npz \\
        --device cuda
"""

# SPDX-License-Identifier: BSD-3-Clause

import argparse
import cProfile
import io
import os
import pstats
import statistics
import warnings

import numpy as np
import torch
import torch.nn.functional as F

from sklearn_robust import AdversarialClassifier
from sklearn_robust.nn import MLP, SmallCNN, default_module

from ._common import (
    RESULTS_DIR,
    Timer,
    add_data_arguments,
    add_runtime_arguments,
    load_data,
    markdown_table,
    result_stem,
    setup_runtime,
    synchronize,
    write_results,
)

TARGET = 1.10
DEFAULT_EPS = {"digits": 0.1, "mnist": 0.3, "fashion_mnist": 0.1}
DEFAULT_N_TRAIN = {"digits": None, "mnist": 2048, "fashion_mnist": 2048}


# --------------------------------------------------------------- hand-written loop


def hand_written_epoch(model, optimizer, X, y, *, eps, alpha, steps, batch_size,
                       clip_min=0.0, clip_max=1.0):
    """One epoch of PGD adversarial training in plain PyTorch (the cost floor)."""
    n = X.shape[0]
    perm = torch.randperm(n, device=X.device)
    for start in range(0, n, batch_size):
        idx = perm[start:start + batch_size]
        x, t = X[idx], y[idx]
        # inner maximisation: K sign-gradient steps, module in eval mode
        model.eval()
        delta = (torch.rand_like(x) * 2 - 1) * eps
        delta = (x + delta).clamp(clip_min, clip_max) - x
        for _ in range(steps):
            delta.requires_grad_(True)
            loss = F.cross_entropy(model(x + delta), t)
            (grad,) = torch.autograd.grad(loss, delta)
            with torch.no_grad():
                delta = (delta + alpha * grad.sign()).clamp(-eps, eps)
                delta = (x + delta).clamp(clip_min, clip_max) - x
        # outer minimisation: one step on the adversarial batch, train mode
        model.train()
        optimizer.zero_grad()
        loss = F.cross_entropy(model(x + delta), t)
        loss.backward()
        optimizer.step()


# ----------------------------------------------------------------------- counting


class PassCounter:
    """Count forward and backward passes (and samples) through a module."""

    def __init__(self, module):
        self.forward = self.backward = self.samples = 0
        # the update step's input needs no gradient: torch warns that the hook
        # then fires on the output gradients, which is what is counted here
        warnings.filterwarnings("ignore", message="Full backward hook is firing")
        self._handles = [
            module.register_forward_pre_hook(self._on_forward),
            module.register_full_backward_pre_hook(self._on_backward),
        ]

    def _on_forward(self, module, args):
        self.forward += 1
        self.samples += int(args[0].shape[0])

    def _on_backward(self, module, grad_output):
        self.backward += 1

    def remove(self):
        for h in self._handles:
            h.remove()


# -------------------------------------------------------------------------- setup


def module_spec(name, input_shape, n_classes):
    """The module class and its keyword arguments (``auto``: the library default)."""
    if name == "auto":
        name = type(default_module(input_shape, n_classes)).__name__.lower()
    if name == "mlp":
        return MLP, {"hidden_layer_sizes": (256, 256)}
    if name == "smallcnn":
        return SmallCNN, {}
    raise SystemExit(f"unknown --module {name!r}")


def make_optimizer(name, params, lr):
    if name == "adam":
        return torch.optim.Adam(params, lr=lr)
    return torch.optim.SGD(params, lr=lr, momentum=0.9)


def profile_library_epoch(clf, X, y, device, top=25):
    """cProfile one library epoch; return the report text."""
    profiler = cProfile.Profile()
    synchronize(device)
    profiler.enable()
    clf.partial_fit(X, y)
    synchronize(device)
    profiler.disable()
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    stats.sort_stats("tottime").print_stats(top)
    stats.sort_stats("cumulative").print_stats(top)
    return out.getvalue()


def loader_epoch_seconds(clf, X, y, device):
    """Time to draw one epoch of batches from the library's skorch iterator."""
    from skorch.dataset import unpack_data
    from skorch.utils import to_tensor

    with Timer(device) as t:
        dataset = clf.get_dataset(X, y)
        for batch in clf.get_iterator(dataset, training=True):
            Xi, yi = unpack_data(batch)
            to_tensor(Xi, device=device), to_tensor(yi, device=device)
    return t.seconds


# ---------------------------------------------------------------------------- main


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.strip().splitlines()[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    add_data_arguments(parser)
    add_runtime_arguments(parser)
    parser.add_argument("--module", choices=("auto", "mlp", "smallcnn"),
                        default="auto",
                        help="auto: MLP(256, 256) for digits, SmallCNN for 28x28")
    parser.add_argument("--steps", type=int, default=10, help="PGD steps K")
    parser.add_argument("--eps", type=float, default=None,
                        help=f"L-inf radius (default: {DEFAULT_EPS})")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=5,
                        help="timed epochs per side (median taken)")
    parser.add_argument("--optimizer", choices=("adam", "sgd"), default="adam")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--profile", action="store_true",
                        help="profile a library epoch even when the target is met")
    parser.add_argument("--no-write", action="store_true")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    device = setup_runtime(args)
    eps = DEFAULT_EPS[args.data] if args.eps is None else args.eps
    n_train = DEFAULT_N_TRAIN[args.data] if args.n_train is None else args.n_train
    alpha = 2.5 * eps / args.steps
    # only the training split is used (a token test subset is drawn)
    X_np, _, y_np, _, info = load_data(args.data, data_path=args.data_path,
                                       n_train=n_train, n_test=20, seed=args.seed)
    n_classes = int(len(np.unique(y_np)))
    module_cls, module_kw = module_spec(args.module, tuple(X_np.shape[1:]), n_classes)

    # library side: fit() builds everything and is the warm-up epoch
    clf = AdversarialClassifier(
        module=module_cls, **{f"module__{k}": v for k, v in module_kw.items()},
        eps=eps, n_steps=args.steps, step_size=alpha, random_start=True,
        batch_size=args.batch_size, max_epochs=1, lr=args.lr,
        optimizer=torch.optim.Adam if args.optimizer == "adam" else torch.optim.SGD,
        **({} if args.optimizer == "adam" else {"optimizer__momentum": 0.9}),
        train_split=None, verbose=0, device=device, random_state=args.seed,
        iterator_train__shuffle=True)
    torch.manual_seed(args.seed)
    model = module_cls(input_shape=tuple(X_np.shape[1:]), n_classes=n_classes,
                       **module_kw).to(device)
    clf.fit(X_np, y_np)
    model.load_state_dict(clf.module_.state_dict())
    optimizer = make_optimizer(args.optimizer, model.parameters(), args.lr)
    X = torch.as_tensor(X_np, device=device)
    y = torch.as_tensor(y_np, device=device)
    hand = dict(eps=eps, alpha=alpha, steps=args.steps, batch_size=args.batch_size)
    hand_written_epoch(model, optimizer, X, y, **hand)  # warm-up

    n_batches = -(-len(y_np) // args.batch_size)
    callbacks = [name for name, _ in clf.callbacks_]

    # the same work: count passes through the module on one epoch each
    counter = PassCounter(model)
    hand_written_epoch(model, optimizer, X, y, **hand)
    counter.remove()
    hand_count = (counter.forward, counter.backward, counter.samples)
    counter = PassCounter(clf.module_)
    clf.partial_fit(X_np, y_np)
    counter.remove()
    lib_count = (counter.forward, counter.backward, counter.samples)
    expected = (n_batches * (args.steps + 1), n_batches * (args.steps + 1),
                len(y_np) * (args.steps + 1))

    hand_s, lib_s, lib_dur = [], [], []
    for r in range(args.repeats):
        order = ("hand", "lib") if r % 2 == 0 else ("lib", "hand")
        for side in order:
            if side == "hand":
                with Timer(device) as t:
                    hand_written_epoch(model, optimizer, X, y, **hand)
                hand_s.append(t.seconds)
            else:
                with Timer(device) as t:
                    clf.partial_fit(X_np, y_np)
                lib_s.append(t.seconds)
                lib_dur.append(clf.history[-1, "dur"])
        print(f"repeat {r + 1}/{args.repeats}: hand {hand_s[-1]:.3f}s  "
              f"library {lib_s[-1]:.3f}s", flush=True)
    loader_s = statistics.median(loader_epoch_seconds(clf, X_np, y_np, device)
                                 for _ in range(3))

    hand_med, lib_med = statistics.median(hand_s), statistics.median(lib_s)
    ratio = lib_med / hand_med
    paired = statistics.median(a / b for a, b in zip(lib_s, hand_s))
    ratio_dur = statistics.median(lib_dur) / hand_med
    passed = ratio <= TARGET

    def row(side, times, count):
        med = statistics.median(times)
        return {"side": side, "median_s": med, "min_s": min(times),
                "max_s": max(times), "ms_per_batch": 1e3 * med / n_batches,
                "samples_per_s": len(y_np) / med, "forward_passes": count[0],
                "backward_passes": count[1], "samples_forwarded": count[2]}

    records = [row("hand-written PyTorch", hand_s, hand_count),
               row("AdversarialClassifier.partial_fit", lib_s, lib_count),
               row("library, skorch 'dur' (epoch only)", lib_dur, lib_count)]
    summary = [{"ratio_median": ratio, "ratio_paired_median": paired,
                "ratio_skorch_dur": ratio_dur, "target": TARGET, "pass": passed,
                "loader_epoch_s": loader_s,
                "loader_share_of_library": loader_s / lib_med,
                "same_work": hand_count == lib_count == expected}]
    settings = {
        "data": args.data, "n_train": info["n_train"],
        "input_shape": info["input_shape"],
        "module": module_cls.__name__, "module_kwargs": module_kw, "norm": "linf",
        "eps": eps, "steps": args.steps, "step_size": alpha,
        "batch_size": args.batch_size, "n_batches": n_batches,
        "optimizer": args.optimizer, "lr": args.lr, "repeats": args.repeats,
        "warm_up_epochs": 1, "seed": args.seed, "device": device,
        "torch_threads": torch.get_num_threads(),
        "library_callbacks": callbacks,
        "expected_passes_per_epoch": expected[0],
    }
    notes = [
        f"ratio = median library epoch / median hand-written epoch = {ratio:.3f} "
        f"(target <= {TARGET}: {'met' if passed else 'MISSED'}).",
        "Library epoch = partial_fit(X, y) wall time: input validation, the "
        "library's training iterator (array slicing), the attack, skorch's "
        "callbacks and bookkeeping. 'dur' is skorch's own epoch timer.",
        f"loader_epoch_s: one epoch of the library's iterator alone "
        f"(batches drawn and moved to {device}, no compute).",
        f"Passes per epoch (forward, backward, samples): hand {hand_count}, library "
        f"{lib_count}, expected {expected}.",
    ]
    print()
    print(markdown_table(records))
    print(markdown_table(summary))
    for n in notes:
        print("-", n)

    name = f"throughput_{args.data}_{module_cls.__name__.lower()}"
    if not args.no_write:
        paths = write_results(name, records, settings, device=device, summary=summary,
                              title=f"Throughput: PGD-{args.steps} adversarial "
                                    f"training epoch on {args.data}",
                              notes=notes)
        print("wrote", *paths)
    if args.profile or not passed:
        report = profile_library_epoch(clf, X_np, y_np, device)
        print(report[:6000])
        if not args.no_write:
            path = os.path.join(RESULTS_DIR,
                                result_stem(name, device) + "_profile.txt")
            with open(path, "w", encoding="utf-8") as f:
                f.write(report)
            print("wrote", path)
    return summary[0]


if __name__ == "__main__":
    main()
