"""How the costs of the kernels and the dataset learners grow with their size.

Five parts (``--parts``, default all), each written to its own result files
``scaling_<part>_<data>[_<tag>]_<device>_<date>.{json,md,png}``:

``kernel``
    :class:`~sklearn_robust.kernels.FCKernel` (``--depths``, ``--dtypes``)
    forward ``K = k(X_t, X_s)`` with ``X_s`` requiring grad, then the backward of
    the scalar ``sum(K * W)`` (a fixed random cotangent ``W``), for each size
    ``n_s x n_t`` of ``--kernel-sizes`` (``cross``) and for the symmetric
    ``k(X_s)`` of each ``n_s`` (``sym``, the support kernel of the learners):
    medians over ``--repeats`` after a warm-up, the ratio backward / forward
    (target of issue 17: <= 1.5), the forward without a graph and the minor page
    faults of each pass (fresh large tensors that glibc's allocator maps in from
    the system: on CPU they, not the arithmetic, make the ratio vary).
``distiller``
    One outer step of :class:`~sklearn_robust.dataset_learning.NTKRobustDistiller`
    taken apart, for each block (support) size ``b`` and target batch ``t`` of
    ``--step-sizes`` (``b x t``): the dual coefficients for the attack (``k(X_b)``
    and the ridge solve without a graph), the attack (``--attack-steps`` PGD steps
    on the kernel predictor), the forward of the outer loss (``k(X_b)``, the solve,
    ``k(x_adv, X_b)``, the loss) and its backward to the support rows, which is
    also split into the backward of each piece alone (kernel ``b x b``, solve,
    kernel ``t x b``). Same code as the learner's ``_learn``.
``distiller_fit``
    The learner itself in same-size mode on every training row (all 60,000 with
    ``--data mnist``), ``--fit-steps`` outer steps, for each
    ``support_batch_size x target_batch_size`` of ``--fit-settings``: seconds per
    outer step (the median of the steps after the first), the peak resident set of
    a fresh 'spawn' child that loads the data itself (``VmHWM``: the interpreter,
    torch, the data and the fit; reset at the start of the fit for
    ``peak_rss_fit_mib``; ``--memory inprocess`` runs in this process), and the
    CPU user and system seconds and page faults of the fit.
``trilevel``
    :class:`~sklearn_robust.dataset_learning.TriLevelDatasetLearner` (library
    defaults otherwise) for each ``inner_steps`` of ``--inner-steps``:
    seconds per outer step (median after the first of ``--tri-steps``), peak RSS,
    and the least-squares line ``seconds = a + b * inner_steps``.
``empirical``
    The FC kernel against the empirical NTK of finite ReLU MLPs in the NTK
    parameterisation (the network of ``FCKernel``'s docstring, standard normal
    weights), width ``--widths``: per-sample Jacobians by ``torch.func.vmap``
    of ``jacrev`` with ``functional_call`` in float64 on ``--emp-n`` rows,
    ``Theta = sum_params J J^T``; the relative Frobenius error to our NTK (mean
    over ``--emp-seeds`` initialisations; Monte Carlo error ~ width^-1/2) and the
    times of both. With ``--nt-python PATH`` (an interpreter with jax and
    neural-tangents, e.g. a separate venv) ``benchmarks/_nt_reference.py`` computes
    neural-tangents' ``stax`` kernels of the same network on the same inputs
    (float64): largest relative difference (target 1e-5) and times.

Examples::

    python -m benchmarks.scaling --data digits --threads 1 \\
        --parts kernel distiller trilevel empirical
    python -m benchmarks.scaling --data mnist --data-path data/mnist.npz --threads 1 \\
        --parts kernel distiller distiller_fit empirical --nt-python /tmp/nt/bin/python

Timings on a shared machine are noisy: use ``--threads 1`` and read the load average
in the result header. No timing is asserted anywhere.
"""

# SPDX-License-Identifier: BSD-3-Clause

import argparse
import json
import math
import multiprocessing
import os
import resource
import statistics
import subprocess
import tempfile
import time
import warnings

import numpy as np

from ._common import (
    Timer,
    _peak_rss_mib,
    _rss_mib,
    add_data_arguments,
    add_runtime_arguments,
    device_description,
    load_data,
    setup_runtime,
    synchronize,
    write_results,
)

PARTS = ("kernel", "distiller", "distiller_fit", "trilevel", "empirical")
TARGET_RATIO = 1.5
TARGET_RSS_GIB = 16.0
NT_TOLERANCE = 1e-5


# ----------------------------------------------------------------------- helpers


def _size_pair(text):
    """``"500x1257"`` -> ``(500, 1257)``."""
    try:
        a, b = text.lower().split("x")
        return int(a), int(b)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected AxB (two integers), got {text!r}")


def _minor_faults():
    """Minor page faults of this process so far (pages the kernel mapped in)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def _reset_peak_rss():
    """Reset ``VmHWM`` to the current RSS (Linux >= 4.0); False where impossible."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="utf-8") as f:
            f.write("5")
        return True
    except OSError:
        return False


class _Usage:
    """Peak memory, CPU user / system seconds and page faults of a code block.

    ``peak_mib`` is this process's peak RSS during the block when ``VmHWM`` could be
    reset at its start (``peak_is_block``), else the peak since the process started.
    On CUDA, ``torch.cuda.max_memory_allocated`` during the block."""

    def __init__(self, device="cpu"):
        self.device = device

    def __enter__(self):
        import torch

        self.cuda = str(self.device).startswith("cuda")
        if self.cuda:
            torch.cuda.reset_peak_memory_stats(self.device)
        self.before_mib = _rss_mib()
        self.peak_is_block = _reset_peak_rss()
        self._ru = resource.getrusage(resource.RUSAGE_SELF)
        return self

    def __exit__(self, *exc):
        import torch

        ru = resource.getrusage(resource.RUSAGE_SELF)
        self.user_s = ru.ru_utime - self._ru.ru_utime
        self.sys_s = ru.ru_stime - self._ru.ru_stime
        self.minor_faults = ru.ru_minflt - self._ru.ru_minflt
        self.peak_mib = (torch.cuda.max_memory_allocated(self.device) / 2**20
                         if self.cuda else _peak_rss_mib())
        return False


def _flat_rows(X, n, seed, dtype, device):
    """``n`` rows of ``X`` flattened, as a torch tensor; drawn without replacement
    while there are enough rows, with replacement (plus noise of 1e-3, clipped to
    [0, 1], so that no two rows are equal) beyond."""
    import torch

    rng = np.random.RandomState(seed)
    X = X.reshape(len(X), -1)
    if n <= len(X):
        rows = X[rng.choice(len(X), n, replace=False)]
    else:
        rows = X[rng.choice(len(X), n, replace=True)]
        rows = np.clip(rows + 1e-3 * rng.rand(*rows.shape), 0, 1)
    return torch.as_tensor(np.ascontiguousarray(rows), dtype=dtype, device=device)


def _median_times(fn, repeats, device):
    """Medians of the phase times ``fn()`` returns (a dict), after one warm-up."""
    runs = []
    for r in range(repeats + 1):
        times = fn()
        if r:
            runs.append(times)
    return {k: statistics.median(t[k] for t in runs) for k in runs[0]}


class _StepClock:
    """Stands in for a learner's ``_progress``: a time stamp at every outer step."""

    def __init__(self, device):
        self.device = device
        self.stamps = []

    def __call__(self, iterable):
        def steps():
            for item in iterable:
                synchronize(self.device)
                self.stamps.append(time.perf_counter())
                yield item
            synchronize(self.device)
            self.stamps.append(time.perf_counter())
        return steps()

    def step_seconds(self):
        return np.diff(self.stamps).tolist()


def _in_child(fn, kwargs, isolate):
    """``fn(**kwargs)`` in a fresh 'spawn' child (its own ru_maxrss) or here."""
    if not isolate:
        return fn(**kwargs)
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(1) as pool:
        return pool.apply(fn, (), kwargs)


def _plot_path(json_path):
    return os.path.splitext(json_path)[0] + ".png"


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _dtype(name):
    import torch

    return {"float32": torch.float32, "float64": torch.float64}[name]


# ------------------------------------------------------------ part 1: FC kernel


def bench_kernel(X, sizes, depths, dtypes, repeats, device, seed=0):
    """Forward and backward of ``FCKernel`` for every size, depth and dtype."""
    import torch

    from sklearn_robust.kernels import FCKernel

    cases = [("cross", n_s, n_t) for n_s, n_t in sizes]
    cases += [("sym", n_s, n_s) for n_s in sorted({n_s for n_s, _ in sizes})]
    records = []
    for dtype_name in dtypes:
        dtype = _dtype(dtype_name)
        for depth in depths:
            kernel = FCKernel(depth)
            for kind, n_s, n_t in cases:
                X_s = _flat_rows(X, n_s, seed + 1, dtype, device)
                X_t = _flat_rows(X, n_t, seed + 2, dtype, device)
                g = torch.Generator().manual_seed(seed)
                W = torch.randn(n_t, n_s, generator=g, dtype=dtype).to(device)

                def once():
                    xs = X_s.clone().requires_grad_(True)
                    faults0 = _minor_faults()
                    with Timer(device) as fwd:
                        K = kernel(xs) if kind == "sym" else kernel(X_t, xs)
                        loss = (K * W).sum()
                    faults1 = _minor_faults()
                    with Timer(device) as bwd:
                        (grad,) = torch.autograd.grad(loss, xs)
                    faults2 = _minor_faults()
                    del K, loss, grad
                    with torch.no_grad(), Timer(device) as plain:
                        _ = kernel(X_s) if kind == "sym" else kernel(X_t, X_s)
                    return {"forward_s": fwd.seconds, "backward_s": bwd.seconds,
                            "forward_nograd_s": plain.seconds,
                            "forward_faults": faults1 - faults0,
                            "backward_faults": faults2 - faults1}

                t = _median_times(once, repeats, device)
                ratio = t["backward_s"] / t["forward_s"]
                records.append(dict(
                    kind=kind, depth=depth, dtype=dtype_name, n_s=n_s, n_t=n_t,
                    d=X_s.shape[1], entries=n_s * n_t, **t,
                    backward_over_forward=ratio,
                    target_met=bool(ratio <= TARGET_RATIO)))
                print(_short(records[-1]), flush=True)
    return records


def plot_kernel(records, path, title):
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    groups = sorted({(r["kind"], r["depth"], r["dtype"]) for r in records})
    markers = {"float32": "o", "float64": "s"}
    colors = {key: f"C{i}" for i, key in enumerate(sorted(
        {(r["depth"], r["dtype"]) for r in records}))}
    for kind, depth, dtype in groups:
        rows = sorted((r for r in records if (r["kind"], r["depth"], r["dtype"])
                       == (kind, depth, dtype)), key=lambda r: r["entries"])
        x = [r["entries"] for r in rows]
        style = dict(marker=markers[dtype], color=colors[depth, dtype],
                     ls="-" if kind == "cross" else ":",
                     mfc="none" if kind == "sym" else None)
        label = f"{kind} depth {depth} {dtype}"
        axes[0].plot(x, [r["backward_over_forward"] for r in rows], label=label,
                     **style)
        if kind == "cross":
            axes[1].plot(x, [r["forward_s"] for r in rows], label=label + " fwd",
                         **style)
            axes[1].plot(x, [r["backward_s"] for r in rows], color=colors[depth, dtype],
                         marker=markers[dtype], ls="--", label=label + " bwd")
    axes[0].axhline(TARGET_RATIO, color="k", lw=1, ls="--", label="target 1.5")
    axes[0].set(xscale="log", xlabel="kernel entries n_s x n_t",
                ylabel="backward / forward",
                title="backward / forward (solid: k(X_t, X_s); dotted: k(X_s))")
    axes[0].set_ylim(0, max(2.0, 1.1 * max(r["backward_over_forward"]
                                           for r in records)))
    axes[1].set(xscale="log", yscale="log", xlabel="kernel entries n_s x n_t",
                ylabel="seconds (median)", title="cross kernel: forward and backward")
    axes[0].legend(fontsize=6, ncol=2)
    axes[1].legend(fontsize=6, ncol=2)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# ------------------------------------------------- part 2: one distiller step


def bench_distiller_step(X, y, sizes, *, depth, dtype, eps, attack_steps, repeats,
                         device, seed=0):
    """One outer step of ``NTKRobustDistiller._learn``, phase by phase."""
    import torch

    from sklearn_robust.dataset_learning import NTKRobustDistiller
    from sklearn_robust.dataset_learning._ntk_distiller import (
        _KRRModule,
        _per_sample_mse,
        krr_mse,
    )
    from sklearn_robust.kernels import FCKernel
    from sklearn_robust.kernels._classifier import (
        _centered_one_hot,
        _solve_kernel_ridge,
    )

    dt = _dtype(dtype)
    kernel = FCKernel(depth)
    ridge = 1e-6
    learner = NTKRobustDistiller(eps=eps, depth=depth, n_steps=attack_steps,
                                 dtype=dtype, device=device, random_state=seed)
    learner._check_params()
    attack = learner._make_attack(_per_sample_mse, np.random.RandomState(seed))
    codes = np.unique(y, return_inverse=True)[1]
    n_classes = int(codes.max()) + 1
    records = []
    for b, t in sizes:
        if b > len(X):     # repeated rows would make k(X_b) singular
            print(f"skip block {b}: more than the {len(X)} rows", flush=True)
            continue
        rng = np.random.RandomState(seed)
        X_b = _flat_rows(X, b, seed + 1, dt, device)
        y_b = torch.as_tensor(codes[rng.randint(len(codes), size=b)], device=device)
        Y_b = _centered_one_hot(y_b, n_classes, dt)
        x_t = _flat_rows(X, t, seed + 2, dt, device)
        y_t = torch.as_tensor(codes[rng.randint(len(codes), size=t)], device=device)
        Y_t = _centered_one_hot(y_t, n_classes, dt)

        def step():
            xb = X_b.clone().requires_grad_(True)
            with torch.no_grad(), Timer(device) as t_alpha:
                alpha = _solve_kernel_ridge(kernel(xb).double(), Y_b.double(),
                                            ridge).to(dt)
            with Timer(device) as t_attack:
                model = _KRRModule(kernel, xb.detach(), alpha, "ntk")
                x_adv = attack.perturb(model, x_t, y_t, check_input=False)
            with Timer(device) as t_kss:     # krr_predict, piece by piece
                K_ss = kernel(xb)
            with Timer(device) as t_solve:
                alpha = _solve_kernel_ridge(K_ss.double(), Y_b.double(), ridge)
            with Timer(device) as t_kts:
                K_ts = kernel(x_adv, xb)
            with Timer(device) as t_loss:
                loss = krr_mse(K_ts @ alpha.to(dt), Y_t)
            with Timer(device) as t_back:
                torch.autograd.grad(loss, xb)
            forward = t_kss.seconds + t_solve.seconds + t_kts.seconds + t_loss.seconds
            return {"alpha_for_attack_s": t_alpha.seconds,
                    "attack_s": t_attack.seconds, "fwd_kernel_bb_s": t_kss.seconds,
                    "fwd_solve_s": t_solve.seconds, "fwd_kernel_tb_s": t_kts.seconds,
                    "fwd_loss_s": t_loss.seconds, "forward_s": forward,
                    "backward_s": t_back.seconds,
                    "step_s": (t_alpha.seconds + t_attack.seconds + forward
                               + t_back.seconds)}

        def pieces():
            """The backward of each piece of the forward alone."""
            xb = X_b.clone().requires_grad_(True)
            K_ss = kernel(xb)
            G = torch.randn_like(K_ss)
            with Timer(device) as t1:
                torch.autograd.grad((K_ss * G).sum(), xb)
            A = K_ss.detach().double().requires_grad_(True)
            alpha = _solve_kernel_ridge(A, Y_b.double(), ridge)
            with Timer(device) as t2:
                torch.autograd.grad((alpha * torch.randn_like(alpha)).sum(), A)
            K_ts = kernel(x_t, xb)
            G = torch.randn_like(K_ts)
            with Timer(device) as t3:
                torch.autograd.grad((K_ts * G).sum(), xb)
            return {"bwd_kernel_bb_alone_s": t1.seconds,
                    "bwd_solve_alone_s": t2.seconds,
                    "bwd_kernel_tb_alone_s": t3.seconds}

        times = _median_times(step, repeats, device)
        times.update(_median_times(pieces, repeats, device))
        ratio = times["backward_s"] / times["forward_s"]
        records.append(dict(block=b, target=t, d=X_b.shape[1], depth=depth,
                            dtype=dtype, attack_steps=attack_steps, **times,
                            backward_over_forward=ratio,
                            target_met=bool(ratio <= TARGET_RATIO)))
        print(_short(records[-1]), flush=True)
    return records


STEP_PHASES = [("alpha_for_attack_s", "k(X_b) + solve for the attack"),
               ("attack_s", "attack (PGD)"), ("fwd_kernel_bb_s", "fwd k(X_b)"),
               ("fwd_solve_s", "fwd solve"), ("fwd_kernel_tb_s", "fwd k(x_adv, X_b)"),
               ("fwd_loss_s", "fwd loss"), ("backward_s", "backward")]


def plot_distiller_step(records, path, title):
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    labels = [f"{r['block']}x{r['target']}" for r in records]
    bottom = np.zeros(len(records))
    for key, label in STEP_PHASES:
        values = np.array([r[key] for r in records])
        axes[0].bar(labels, values, bottom=bottom, label=label)
        bottom += values
    axes[0].set(xlabel="block b x target batch t", ylabel="seconds (median)",
                title="one outer step, by phase")
    axes[0].legend(fontsize=7)
    x = np.arange(len(records))
    w = 0.2
    bars = [("forward_s", "forward (all pieces)"),
            ("bwd_kernel_bb_alone_s", "bwd k(X_b) alone"),
            ("bwd_solve_alone_s", "bwd solve alone"),
            ("bwd_kernel_tb_alone_s", "bwd k(x, X_b) alone")]
    for i, (key, label) in enumerate(bars):
        axes[1].bar(x + (i - 1.5) * w, [r[key] for r in records], w, label=label)
    axes[1].plot(x, [r["backward_s"] for r in records], "k*", ms=10,
                 label="backward (whole)")
    axes[1].set_xticks(x, labels)
    axes[1].set(xlabel="block b x target batch t", ylabel="seconds (median)",
                yscale="log", title="where the backward goes")
    axes[1].legend(fontsize=7)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# ---------------------------------------------- part 2b: the learner on all rows


def _load_for_child(data_kwargs):
    X, _, y, _, info = load_data(**data_kwargs)
    return X, y, info


def fit_distiller(data_kwargs, params, steps, threads, device):
    """Fit ``NTKRobustDistiller(**params, max_iter=steps)`` on every training row;
    seconds per outer step and peak RSS. Runs in a child process (CPU)."""
    import torch

    from sklearn_robust.dataset_learning import NTKRobustDistiller

    if threads is not None:
        torch.set_num_threads(threads)
    X, y, info = _load_for_child(data_kwargs)
    with warnings.catch_warnings():        # untimed warm-up: first-call costs
        warnings.simplefilter("ignore")
        NTKRobustDistiller(**{**params, "support_batch_size": 64,
                              "target_batch_size": 32}, max_iter=1,
                           device=device).fit(X[:200], y[:200])
    peak_before = _peak_rss_mib()    # the data loading (and the warm-up)
    learner = NTKRobustDistiller(**params, max_iter=steps, device=device)
    clock = _StepClock(device)
    learner._progress = clock
    with Timer(device) as t_fit, _Usage(device) as usage, \
            warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        start = time.perf_counter()
        learner.fit(X, y)
    step_s = clock.step_seconds()
    return {"n_rows": int(len(y)), "input_shape": list(X.shape[1:]),
            "data_mib": X.nbytes / 2**20, "fit_s": t_fit.seconds,
            "setup_s": clock.stamps[0] - start, "step_s_all": step_s,
            "step_s": statistics.median(step_s[1:] or step_s),
            "first_step_s": step_s[0], **_usage_record(usage, peak_before),
            "loss_history": [float(v) for v in learner.loss_history_],
            "warnings": [str(w.message) for w in caught]}


def _usage_record(usage, peak_before):
    return {"rss_before_fit_mib": usage.before_mib, "peak_rss_fit_mib": usage.peak_mib,
            "peak_is_fit": usage.peak_is_block,
            "peak_rss_before_fit_mib": peak_before,
            "cpu_user_s": usage.user_s, "cpu_sys_s": usage.sys_s,
            "minor_faults": usage.minor_faults}


def _distiller_matrix_mib(n, d, b, t):
    """Sizes (MiB) of what one same-size step holds: rows and Adam state (float32,
    4 arrays of n x d: X, the learned rows, m, v), the b x b support kernel (float32)
    with its float64 copy, regularised matrix and Cholesky factor, and the t x b
    target kernel."""
    return {"rows_and_adam_mib": 4 * n * d * 4 / 2**20,
            "kernel_bb_mib": b * b * (4 + 3 * 8) / 2**20,
            "kernel_tb_mib": t * b * 4 / 2**20}


def bench_distiller_fit(data_kwargs, settings, *, steps, threads, device, isolate,
                        params):
    records = []
    for b, t in settings:
        full = dict(params, support_batch_size=b, target_batch_size=t)
        res = _in_child(fit_distiller, dict(data_kwargs=data_kwargs, params=full,
                                            steps=steps, threads=threads,
                                            device=device), isolate)
        n, d = res["n_rows"], int(np.prod(res["input_shape"]))
        rec = dict(support_batch_size=b, target_batch_size=t, n_rows=n, d=d,
                   outer_steps=steps, step_s=res["step_s"],
                   first_step_s=res["first_step_s"],
                   steps_per_pass=math.ceil(n / min(b, n)),
                   pass_s=res["step_s"] * math.ceil(n / min(b, n)),
                   fit_s=res["fit_s"], setup_s=res["setup_s"],
                   data_mib=res["data_mib"],
                   peak_rss_mib=max(res["peak_rss_fit_mib"],
                                    res["peak_rss_before_fit_mib"]),
                   rss_before_fit_mib=res["rss_before_fit_mib"],
                   peak_rss_fit_mib=res["peak_rss_fit_mib"],
                   fit_growth_mib=res["peak_rss_fit_mib"] - res["rss_before_fit_mib"],
                   cpu_user_s=res["cpu_user_s"], cpu_sys_s=res["cpu_sys_s"],
                   minor_faults=res["minor_faults"],
                   **_distiller_matrix_mib(n, d, min(b, n), t),
                   fits_16gb=bool(max(res["peak_rss_fit_mib"],
                                      res["peak_rss_before_fit_mib"])
                                  <= TARGET_RSS_GIB * 1024),
                   step_s_all=res["step_s_all"], loss_history=res["loss_history"],
                   warnings=res["warnings"])
        records.append(rec)
        print(_short(rec), flush=True)
    return records


def plot_distiller_fit(records, path, title):
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    labels = [f"{r['support_batch_size']}x{r['target_batch_size']}" for r in records]
    axes[0].bar(labels, [r["step_s"] for r in records])
    axes[0].set(xlabel="support_batch_size x target_batch_size",
                ylabel="seconds per outer step (median)",
                title=f"{records[0]['n_rows']} rows, same-size mode")
    axes[1].bar(labels, [r["peak_rss_mib"] / 1024 for r in records], label="peak RSS")
    axes[1].bar(labels, [r["rss_before_fit_mib"] / 1024 for r in records],
                label="RSS before fit (data, torch)")
    axes[1].axhline(TARGET_RSS_GIB, color="k", ls="--", lw=1, label="16 GiB")
    axes[1].set(xlabel="support_batch_size x target_batch_size", ylabel="GiB",
                title="peak resident memory")
    axes[1].legend(fontsize=7)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# -------------------------------------------------- part 3: tri-level learner


def fit_trilevel(data_kwargs, params, steps, threads, device):
    """Fit ``TriLevelDatasetLearner(**params, max_iter=steps)``: seconds per outer
    step and peak RSS (in a child process on CPU)."""
    import torch

    from sklearn_robust.dataset_learning import TriLevelDatasetLearner

    if threads is not None:
        torch.set_num_threads(threads)
    X, y, _ = _load_for_child(data_kwargs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        TriLevelDatasetLearner(**{**params, "inner_steps": 1}, max_iter=1,
                               device=device).fit(X[:200], y[:200])
    peak_before = _peak_rss_mib()
    learner = TriLevelDatasetLearner(**params, max_iter=steps, device=device)
    clock = _StepClock(device)
    learner._progress = clock
    with Timer(device) as t_fit, _Usage(device) as usage, warnings.catch_warnings():
        warnings.simplefilter("ignore")    # too few outer steps for the checks
        learner.fit(X, y)
    step_s = clock.step_seconds()
    return {"n_rows": int(len(y)), "fit_s": t_fit.seconds, "step_s_all": step_s,
            "step_s": statistics.median(step_s[1:] or step_s),
            **_usage_record(usage, peak_before),
            "clean_loss_last": float(learner.clean_loss_history_[-1])}


def bench_trilevel(data_kwargs, inner_steps, *, steps, threads, device, isolate,
                   params):
    records = []
    for T in inner_steps:
        res = _in_child(fit_trilevel, dict(data_kwargs=data_kwargs,
                                           params=dict(params, inner_steps=T),
                                           steps=steps, threads=threads,
                                           device=device), isolate)
        rec = dict(inner_steps=T, outer_steps=steps, n_rows=res["n_rows"],
                   step_s=res["step_s"], step_s_per_inner=res["step_s"] / T,
                   fit_s=res["fit_s"], rss_before_fit_mib=res["rss_before_fit_mib"],
                   peak_rss_fit_mib=res["peak_rss_fit_mib"],
                   peak_growth_mib=res["peak_rss_fit_mib"] - res["rss_before_fit_mib"],
                   cpu_user_s=res["cpu_user_s"], cpu_sys_s=res["cpu_sys_s"],
                   clean_loss_last=res["clean_loss_last"],
                   step_s_all=res["step_s_all"])
        records.append(rec)
        print(_short(rec), flush=True)
    return records


def linear_fit(x, y):
    """Least squares ``y = a + b x``: ``(a, b)`` (``(nan, nan)`` for < 2 points)."""
    if len(x) < 2:
        return float("nan"), float("nan")
    b, a = np.polyfit(np.asarray(x, float), np.asarray(y, float), 1)
    return float(a), float(b)


def plot_trilevel(records, path, title):
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    T = [r["inner_steps"] for r in records]
    s = [r["step_s"] for r in records]
    a, b = linear_fit(T, s)
    axes[0].plot(T, s, "o-", label="measured (median)")
    if math.isfinite(b):
        grid = np.linspace(0, max(T), 50)
        axes[0].plot(grid, a + b * grid, "k--", lw=1,
                     label=f"fit {a:.3f} s + {1e3 * b:.2f} ms x T")
    axes[0].set(xlabel="inner_steps T", ylabel="seconds per outer step",
                title="cost per outer step")
    axes[0].legend(fontsize=8)
    axes[1].plot(T, [r["peak_growth_mib"] for r in records], "o-")
    axes[1].set(xlabel="inner_steps T", ylabel="MiB",
                title="peak RSS growth during fit")
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# ------------------------------------------- part 4: against an empirical NTK


class NTKParamMLP:
    """Factory of the finite network of ``FCKernel``: ``depth`` hidden
    ``Dense(width) -> ReLU`` layers and a ``Dense(1)`` readout in the NTK
    parameterisation, ``h = W_std / sqrt(fan_in) * W x + b_std * b``."""

    def __new__(cls, d, width, depth, W_std=2 ** 0.5, b_std=0.1):
        import torch

        class Net(torch.nn.Module):
            def __init__(self):
                super().__init__()
                fans = [d] + [width] * depth
                outs = [width] * depth + [1]
                self.weights = torch.nn.ParameterList(
                    torch.nn.Parameter(torch.zeros(o, f, dtype=torch.float64))
                    for f, o in zip(fans, outs))
                self.biases = torch.nn.ParameterList(
                    torch.nn.Parameter(torch.zeros(o, dtype=torch.float64))
                    for o in outs)

            def forward(self, x):
                for i, (W, b) in enumerate(zip(self.weights, self.biases)):
                    x = W_std / math.sqrt(W.shape[1]) * x @ W.T + b_std * b
                    if i < depth:
                        x = torch.relu(x)
                return x[..., 0]

        return Net()


def empirical_ntk(net, params, X):
    """``sum_p J_p J_p^T`` from per-sample Jacobians (vmap of jacrev)."""
    from torch.func import functional_call, jacrev, vmap

    def f(p, x):
        return functional_call(net, p, (x[None],))[0]

    jac = vmap(jacrev(f), in_dims=(None, 0))(params, X)
    n = X.shape[0]
    return sum(j.reshape(n, -1) @ j.reshape(n, -1).T for j in jac.values())


def bench_empirical(X, widths, depths, n, seeds, repeats, max_jacobian_gib, device,
                    seed=0):
    import torch

    from sklearn_robust.kernels import FCKernel

    Xn = _flat_rows(X, n, seed + 3, torch.float64, device)
    d = Xn.shape[1]
    records = []
    for depth in depths:
        kernel = FCKernel(depth)
        ours = kernel(Xn)

        def time_ours():
            with Timer(device) as t:
                kernel(Xn)
            return {"ours_s": t.seconds}

        ours_s = _median_times(time_ours, repeats, device)["ours_s"]
        for width in widths:
            n_params = (d * width + width * width * (depth - 1) + width * depth
                        + width + 1)
            jac_gib = n * n_params * 8 / 2**30
            if jac_gib > max_jacobian_gib:
                print(f"skip depth {depth} width {width}: Jacobian {jac_gib:.1f} GiB "
                      f"> --emp-max-gib {max_jacobian_gib}", flush=True)
                continue
            net = NTKParamMLP(d, width, depth).to(device)
            empirical_ntk(net, dict(net.named_parameters()), Xn[:2])   # warm-up
            errors, times = [], []
            for s in range(seeds):
                g = torch.Generator().manual_seed(1000 * depth + s)
                params = {k: torch.randn(v.shape, generator=g, dtype=torch.float64)
                          .to(device) for k, v in net.named_parameters()}
                with Timer(device) as t:
                    emp = empirical_ntk(net, params, Xn)
                times.append(t.seconds)
                errors.append(float((emp - ours).norm() / ours.norm()))
                del emp
            rec = dict(depth=depth, width=width, n=n, d=d, n_params=n_params,
                       seeds=seeds, rel_error_mean=float(np.mean(errors)),
                       rel_error_std=float(np.std(errors)),
                       empirical_s=statistics.median(times), ours_s=ours_s,
                       empirical_over_ours=statistics.median(times) / ours_s,
                       rel_errors=errors)
            records.append(rec)
            print(_short(rec), flush=True)
    return records


def error_slope(records, depth):
    """Slope of log(relative error) against log(width) (Monte Carlo: -0.5)."""
    rows = [r for r in records if r["depth"] == depth]
    if len(rows) < 2:
        return float("nan")
    return float(np.polyfit(np.log([r["width"] for r in rows]),
                            np.log([r["rel_error_mean"] for r in rows]), 1)[0])


def plot_empirical(records, path, title):
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for depth in sorted({r["depth"] for r in records}):
        rows = [r for r in records if r["depth"] == depth]
        w = [r["width"] for r in rows]
        slope = error_slope(records, depth)
        axes[0].errorbar(w, [r["rel_error_mean"] for r in rows],
                         yerr=[r["rel_error_std"] for r in rows], marker="o",
                         capsize=3, label=f"depth {depth} (slope {slope:.2f})")
        ref = rows[0]["rel_error_mean"] * np.sqrt(w[0] / np.asarray(w, float))
        axes[0].plot(w, ref, "k:", lw=1)
        axes[1].plot(w, [r["empirical_s"] for r in rows], "o-",
                     label=f"empirical, depth {depth}")
        axes[1].axhline(rows[0]["ours_s"], ls="--", lw=1, color="C%d" % (depth - 1),
                        label=f"FCKernel, depth {depth}")
    widths = sorted({r["width"] for r in records})
    for ax in axes:
        ax.set_xscale("log", base=2)
        ax.set_xticks(widths, [str(w) for w in widths])
        ax.minorticks_off()
    axes[0].set(yscale="log", xlabel="width",
                ylabel="||Theta_emp - Theta|| / ||Theta||",
                title="empirical NTK -> FCKernel (dotted: width^-1/2)")
    axes[0].legend(fontsize=8)
    axes[1].set(yscale="log", xlabel="width", ylabel="seconds",
                title=f"time for {records[0]['n']} x {records[0]['n']} kernel")
    axes[1].legend(fontsize=8)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def compare_neural_tangents(python, X, n1, n2, depths, repeats, device, seed=0):
    """Our FC kernels against neural-tangents' (run by ``python``), float64."""
    import torch

    from sklearn_robust.kernels import FCKernel

    X1 = _flat_rows(X, n1, seed + 4, torch.float64, device)
    X2 = _flat_rows(X, n2, seed + 5, torch.float64, device)
    here = os.path.dirname(os.path.abspath(__file__))
    with tempfile.TemporaryDirectory() as tmp:
        inp, out = os.path.join(tmp, "in.npz"), os.path.join(tmp, "out.npz")
        np.savez(inp, X1=X1.cpu().numpy(), X2=X2.cpu().numpy(),
                 depths=np.asarray(depths), W_std=2 ** 0.5, b_std=0.1,
                 repeats=repeats)
        proc = subprocess.run([python, os.path.join(here, "_nt_reference.py"), inp,
                               out], capture_output=True, text=True, timeout=1800)
        if proc.returncode != 0:
            return [], {"error": (proc.stderr or proc.stdout)[-3000:]}
        ref = dict(np.load(out, allow_pickle=False))
    meta = json.loads(str(ref.pop("meta")))
    records = []
    for depth in depths:
        kernel = FCKernel(depth)
        nngp, ntk = kernel(X1, X2, get=("nngp", "ntk"))

        def time_ours():
            with Timer(device) as t:
                kernel(X1, X2, get=("nngp", "ntk"))
            return {"s": t.seconds}

        ours_s = _median_times(time_ours, repeats, device)["s"]
        for name, mine in (("nngp", nngp), ("ntk", ntk)):
            theirs = ref[f"{name}_{depth}"]
            mine = mine.cpu().numpy()
            rel = float(np.max(np.abs(mine - theirs) / np.abs(theirs)))
            records.append(dict(depth=depth, kernel=name, n1=n1, n2=n2,
                                d=X1.shape[1], max_rel_diff=rel,
                                equal_1e5=bool(rel <= NT_TOLERANCE),
                                ours_s=ours_s, nt_s=float(ref[f"time_{depth}"]),
                                nt_jit_compile_s=float(ref[f"compile_{depth}"])))
            print(_short(records[-1]), flush=True)
    return records, meta


# -------------------------------------------------------------------------- main


def _short(rec):
    return {k: (float(f"{v:.4g}") if isinstance(v, float) else v)
            for k, v in rec.items() if not isinstance(v, list)}


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_data_arguments(parser)
    add_runtime_arguments(parser)
    parser.add_argument("--parts", nargs="+", choices=PARTS, default=list(PARTS))
    parser.add_argument("--repeats", type=int, default=5,
                        help="timed repetitions (medians; one warm-up before)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tag", default=None, help="suffix of the result names")
    parser.add_argument("--memory", choices=["child", "inprocess"], default="child",
                        help="child: run each learner fit in a fresh 'spawn' child "
                             "process and report its peak RSS; inprocess: here")
    parser.add_argument("--no-write", action="store_true")
    g = parser.add_argument_group("kernel")
    g.add_argument("--kernel-sizes", nargs="+", type=_size_pair,
                   default=[(100, 256), (250, 500), (500, 1257), (1000, 2000),
                            (2000, 4000)], metavar="NSxNT")
    g.add_argument("--depths", nargs="+", type=int, default=[1, 2, 3])
    g.add_argument("--dtypes", nargs="+", choices=["float32", "float64"],
                   default=["float32", "float64"])
    g = parser.add_argument_group("distiller")
    g.add_argument("--step-sizes", nargs="+", type=_size_pair,
                   default=[(500, 256), (1000, 256), (2000, 256), (1000, 500),
                            (4000, 256)], metavar="BxT",
                   help="support block b x target batch t of the step breakdown")
    g.add_argument("--fit-settings", nargs="+", type=_size_pair,
                   default=[(2000, 256), (1000, 500), (4000, 256)], metavar="BxT",
                   help="support_batch_size x target_batch_size of the full fits")
    g.add_argument("--fit-steps", type=int, default=3, help="outer steps of a fit")
    g.add_argument("--ntk-depth", type=int, default=1)
    g.add_argument("--ntk-dtype", choices=["float32", "float64"], default="float32")
    g.add_argument("--attack-steps", type=int, default=10)
    g.add_argument("--eps", type=float, default=0.1)
    g = parser.add_argument_group("trilevel")
    g.add_argument("--inner-steps", nargs="+", type=int,
                   default=[1, 5, 10, 20, 50, 100, 200])
    g.add_argument("--tri-steps", type=int, default=5, help="outer steps of a fit")
    g = parser.add_argument_group("empirical")
    g.add_argument("--widths", nargs="+", type=int,
                   default=[256, 512, 1024, 2048, 4096, 8192])
    g.add_argument("--emp-depths", nargs="+", type=int, default=[1, 2])
    g.add_argument("--emp-n", type=int, default=16)
    g.add_argument("--emp-seeds", type=int, default=3)
    g.add_argument("--emp-max-gib", type=float, default=2.0,
                   help="skip widths whose float64 Jacobian exceeds this")
    g.add_argument("--nt-python", default=None,
                   help="an interpreter with jax and neural-tangents (compare values)")
    g.add_argument("--nt-sizes", type=_size_pair, default=(256, 500), metavar="N1xN2")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    device = setup_runtime(args)
    data_kwargs = dict(data=args.data, data_path=args.data_path, n_train=args.n_train,
                       n_test=args.n_test, seed=args.seed)
    X, _, y, _, info = load_data(**data_kwargs)
    suffix = f"_{args.data}" + (f"_{args.tag}" if args.tag else "")
    isolate = args.memory == "child" and not str(device).startswith("cuda")
    # glibc's allocator returns large blocks to the system and page-faults them in
    # again at every allocation; MALLOC_MMAP_MAX_=0 (with a large
    # MALLOC_TRIM_THRESHOLD_) keeps them: recorded, since it changes every timing
    base = dict(vars(args), data_info=info, malloc_env={
        k: v for k, v in os.environ.items() if k.startswith("MALLOC_")})
    out = {}

    def write(part, records, settings, title, notes, plot):
        out[part] = records
        if args.no_write or not records:
            return
        json_path, md_path = write_results(
            f"scaling_{part}{suffix}", records, settings, device=device,
            title=title, notes=notes,
            columns=[k for k in records[0] if not isinstance(records[0][k], list)])
        if plot is not None:
            plot(records, _plot_path(json_path), f"{title} — {info['data']}, "
                 f"{device_description(device)}")
        print("wrote", json_path, md_path, "" if plot is None else
              _plot_path(json_path))

    if "kernel" in args.parts:
        records = bench_kernel(X, args.kernel_sizes, args.depths, args.dtypes,
                               args.repeats, device, args.seed)
        worst = max(records, key=lambda r: r["backward_over_forward"])
        write("kernel", records, base, "FCKernel: forward and backward",
              [f"Target: backward <= {TARGET_RATIO} x forward; met in "
               f"{sum(r['target_met'] for r in records)} of {len(records)} cases; "
               f"largest ratio {worst['backward_over_forward']:.2f} ({worst['kind']} "
               f"{worst['n_s']}x{worst['n_t']}, depth {worst['depth']}, "
               f"{worst['dtype']}).",
               "forward_s includes building the autograd graph (X_s requires grad) "
               "and the loss sum(K * W); forward_nograd_s is the same kernel "
               "without a graph; *_faults: minor page faults during the pass "
               "(median).",
               "Allocator environment: " + (json.dumps(base["malloc_env"])
                                            if base["malloc_env"] else
                                            "glibc defaults")], plot_kernel)

    if "distiller" in args.parts:
        records = bench_distiller_step(
            X, y, args.step_sizes, depth=args.ntk_depth, dtype=args.ntk_dtype,
            eps=args.eps, attack_steps=args.attack_steps, repeats=args.repeats,
            device=device, seed=args.seed)
        write("distiller", records, base, "NTKRobustDistiller: one outer step",
              ["forward_s = fwd_kernel_bb_s + fwd_solve_s + fwd_kernel_tb_s + "
               "fwd_loss_s (krr_predict and the loss with the graph); backward_s "
               "its backward to the support rows; the bwd_*_alone_s columns time the "
               "backward of each piece by itself (random cotangents).",
               f"Target: backward <= {TARGET_RATIO} x forward."],
              plot_distiller_step)

    if "distiller_fit" in args.parts:
        params = dict(eps=args.eps, depth=args.ntk_depth, dtype=args.ntk_dtype,
                      n_steps=args.attack_steps, random_state=args.seed)
        records = bench_distiller_fit(data_kwargs, args.fit_settings,
                                      steps=args.fit_steps, threads=args.threads,
                                      device=device, isolate=isolate, params=params)
        memory = ("peak RSS of a fresh 'spawn' child (interpreter, torch, the data "
                  "and the fit)" if isolate else "peak RSS of this process so far")
        write("distiller_fit", records, dict(base, learner_params=params),
              "NTKRobustDistiller, same-size mode on every training row",
              [f"Memory: {memory}. Target: <= {TARGET_RSS_GIB:.0f} GiB with a "
               "reported time per outer step.",
               "step_s: median of the outer steps after the first; pass_s: the "
               "steps of one pass over all rows (steps_per_pass blocks) at that rate.",
               "kernel_bb_mib: the b x b support kernel in float32 plus its float64 "
               "copy, regularised matrix and Cholesky factor (what grows as b^2)."],
              plot_distiller_fit)

    if "trilevel" in args.parts:
        records = bench_trilevel(data_kwargs, args.inner_steps, steps=args.tri_steps,
                                 threads=args.threads, device=device,
                                 isolate=isolate, params=dict(eps=args.eps,
                                                              random_state=args.seed))
        a, b = linear_fit([r["inner_steps"] for r in records],
                          [r["step_s"] for r in records])
        write("trilevel", records, base,
              "TriLevelDatasetLearner: cost per outer step against inner_steps",
              [f"Least squares: step_s = {a:.4f} s + {b * 1e3:.3f} ms x inner_steps.",
               "Library defaults otherwise (MLP(128), batch 128, PGD-10); peak RSS "
               "of a fresh child when --memory child."], plot_trilevel)

    if "empirical" in args.parts:
        records = bench_empirical(X, args.widths, args.emp_depths, args.emp_n,
                                  args.emp_seeds, args.repeats, args.emp_max_gib,
                                  device, args.seed)
        notes = [f"Slope of log error against log width, depth {d}: "
                 f"{error_slope(records, d):.3f} (Monte Carlo: -0.5)."
                 for d in args.emp_depths]
        settings = dict(base)
        nt_records = []
        if args.nt_python:
            n1, n2 = args.nt_sizes
            nt_records, meta = compare_neural_tangents(
                args.nt_python, X, n1, n2, args.depths, args.repeats, device,
                args.seed)
            settings["neural_tangents"] = meta
            if nt_records:
                notes.append("neural-tangents " + json.dumps(meta.get("versions")) +
                             ": largest relative difference "
                             f"{max(r['max_rel_diff'] for r in nt_records):.2e} "
                             f"(target {NT_TOLERANCE:g}).")
            else:
                notes.append("neural-tangents failed: " + meta["error"][-500:])
        write("empirical", records, settings,
              "FCKernel against the empirical NTK of wide MLPs", notes,
              plot_empirical)
        if nt_records:
            write("neural_tangents", nt_records, settings,
                  "FCKernel against neural-tangents (float64)", notes[-1:], None)
    return out


if __name__ == "__main__":
    main()
