"""Shared helpers of the benchmark scripts: environment record, data, result files.

Not part of the installed package; the scripts import it from ``benchmarks/``.
"""

# SPDX-License-Identifier: BSD-3-Clause

import datetime
import json
import math
import os
import platform
import re
import resource
import sys
import time

import numpy as np

RESULTS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")

DATASETS = ("digits", "mnist", "fashion_mnist")


# --------------------------------------------------------------------- environment


def cpu_model():
    """The CPU model name from /proc/cpuinfo, else ``platform.processor()``."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def add_runtime_arguments(parser):
    """The ``--device`` and ``--threads`` options."""
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads (default: torch's choice); use 1 on a "
                             "shared or busy machine, where OpenMP threads that wait "
                             "on each other slow small layers down a hundredfold")


def setup_runtime(args):
    """Apply ``--threads`` and check ``--device``; return the device."""
    import torch

    if args.threads is not None:
        if args.threads < 1:
            raise SystemExit(f"--threads must be >= 1, got {args.threads}.")
        torch.set_num_threads(args.threads)
    return resolve_device(args.device)


def resolve_device(device):
    """Check ``device`` ("cpu", "cuda" or "cuda:N") and return it."""
    import torch

    if device.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit(f"--device {device} asked for, but torch sees no CUDA device "
                         f"(torch {torch.__version__}).")
    if device != "cpu" and not device.startswith("cuda"):
        raise SystemExit(f"--device must be cpu, cuda or cuda:N, got {device!r}.")
    return device


def device_description(device):
    """A hostname-free description of the compute device."""
    import torch

    if str(device).startswith("cuda"):
        name = torch.cuda.get_device_name(torch.device(device))
        return f"{name} (CUDA {torch.version.cuda}); host CPU: {cpu_model()}"
    return f"{cpu_model()}, {torch.get_num_threads()} torch threads"


def device_tag(device):
    """A short file-name tag: ``cpu`` or ``cuda-<gpu model>``."""
    import torch

    if str(device).startswith("cuda"):
        name = torch.cuda.get_device_name(torch.device(device))
        name = re.sub(r"^nvidia\s+", "", name.strip(), flags=re.IGNORECASE)
        slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:32]
        return f"cuda-{slug}" if slug else "cuda"
    return "cpu"


def _version(module_name):
    try:
        module = __import__(module_name)
    except ImportError:
        return None
    return getattr(module, "__version__", "unknown")


def git_revision():
    """``<commit>`` of the checkout, ``+dirty`` when tracked files are modified."""
    import subprocess

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    try:
        commit = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=root,
                                capture_output=True, text=True, timeout=10,
                                check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=root, capture_output=True, text=True, timeout=10,
                               check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return commit + ("+dirty" if dirty else "")


def environment(device="cpu"):
    """Everything needed to compare two result files, without the host name."""
    import torch

    now = datetime.datetime.now(datetime.timezone.utc)
    env = {
        "date_utc": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "device": str(device),
        "device_description": device_description(device),
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "platform": f"{platform.system()} {platform.machine()}",
        "versions": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "sklearn": _version("sklearn"),
            "skorch": _version("skorch"),
            "numpy": np.__version__,
            "sklearn_robust": _version("sklearn_robust"),
        },
        "sklearn_robust_git": git_revision(),
    }
    try:  # other processes competing for the CPU distort every timing
        env["load_average_1_5_15min"] = [round(v, 2) for v in os.getloadavg()]
    except (AttributeError, OSError):
        pass
    if str(device).startswith("cuda"):
        env["cuda"] = torch.version.cuda
        env["cudnn"] = torch.backends.cudnn.version()
        env["gpu"] = torch.cuda.get_device_name(torch.device(device))
    return env


def synchronize(device):
    """Wait for queued GPU work (a no-op on CPU), so timings are complete."""
    if str(device).startswith("cuda"):
        import torch

        torch.cuda.synchronize(torch.device(device))


class Timer:
    """``with Timer(device) as t: ...`` then ``t.seconds`` (GPU work included)."""

    def __init__(self, device="cpu"):
        self.device = device
        self.seconds = None

    def __enter__(self):
        synchronize(self.device)
        self._start = time.perf_counter()
        return self

    def __exit__(self, *exc):
        synchronize(self.device)
        self.seconds = time.perf_counter() - self._start
        return False


# ---------------------------------------------------------------------------- data


def add_data_arguments(parser, *, n_train=None, n_test=None):
    """The ``--data``, ``--data-path``, ``--n-train`` and ``--n-test`` options."""
    group = parser.add_argument_group("data")
    group.add_argument("--data", choices=DATASETS, default="digits",
                       help="digits: scikit-learn's embedded 8x8 digits (stratified "
                            "70/30 split with the seed); mnist / fashion_mnist: read "
                            "from --data-path (official train and test splits)")
    group.add_argument("--data-path", default=None,
                       help="an .npz with x_train, y_train, x_test, y_test (uint8), "
                            "or a directory with it or with the IDX files; required "
                            "for mnist and fashion_mnist")
    group.add_argument("--n-train", type=int, default=n_train,
                       help="training samples (stratified random subset; default: all)")
    group.add_argument("--n-test", type=int, default=n_test,
                       help="test samples (stratified random subset; default: all)")
    return group


def _subset(X, y, n, seed, what):
    if n is None or n >= len(y):
        return X, y
    if n < 1:
        raise SystemExit(f"--n-{what} must be >= 1, got {n}.")
    from sklearn.model_selection import train_test_split

    idx, _ = train_test_split(np.arange(len(y)), train_size=n, stratify=y,
                              random_state=seed)
    return X[idx], y[idx]


def load_data(data, *, data_path=None, n_train=None, n_test=None, seed=0):
    """Return ``X_train, X_test, y_train, y_test, info``, pixels in [0, 1].

    ``digits`` gives flat (n, 64) rows split 70/30 (stratified, with ``seed``);
    ``mnist`` and ``fashion_mnist`` give (n, 1, 28, 28) images of the official
    splits, subsampled (stratified, with ``seed``) to ``n_train`` / ``n_test``.
    """
    from sklearn.model_selection import train_test_split

    from sklearn_robust import datasets

    if data == "digits":
        X, y = datasets.load_digits_images(flat=True)
        X_train, X_test, y_train, y_test = train_test_split(
            X, y, test_size=0.3, stratify=y, random_state=seed)
        X_train, y_train = _subset(X_train, y_train, n_train, seed, "train")
        X_test, y_test = _subset(X_test, y_test, n_test, seed, "test")
        source = "sklearn.datasets.load_digits (embedded), /16, 70/30 stratified split"
    elif data in ("mnist", "fashion_mnist"):
        if data_path is None:
            raise SystemExit(f"--data {data} needs --data-path (an .npz file or a "
                             "directory with the IDX files); nothing is downloaded.")
        loader = datasets.load_mnist if data == "mnist" else datasets.load_fashion_mnist
        X_train, y_train = loader(data_path, subset="train", n_samples=n_train,
                                  random_state=seed)
        X_test, y_test = loader(data_path, subset="test", n_samples=n_test,
                                random_state=seed)
        base = os.path.basename(os.path.normpath(data_path))
        source = (f"{loader.__module__}.{loader.__name__}({base!r}) official "
                  "train/test splits, /255")
    else:
        raise SystemExit(f"unknown --data {data!r}; choose one of {DATASETS}.")
    info = {"data": data, "source": source, "n_train": int(len(y_train)),
            "n_test": int(len(y_test)), "input_shape": list(X_train.shape[1:]),
            "n_classes": int(len(np.unique(y_train)))}
    return X_train, X_test, y_train, y_test, info


# ------------------------------------------------------------------------- results


def _fmt(value):
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if value != value:  # NaN
            return "n/a"
        if abs(value) >= 100:
            return f"{value:.1f}"
        return f"{value:.3f}" if abs(value) >= 1e-3 or value == 0 else f"{value:.2e}"
    if value is None:
        return ""
    return str(value)


def markdown_table(records, columns=None):
    """A GitHub Markdown table of ``records`` (a list of dicts)."""
    if not records:
        return "(no records)\n"
    if columns is None:
        columns = []
        for rec in records:
            columns += [k for k in rec if k not in columns]
    lines = ["| " + " | ".join(columns) + " |",
             "|" + "|".join("---" for _ in columns) + "|"]
    for rec in records:
        lines.append("| " + " | ".join(_fmt(rec.get(c)) for c in columns) + " |")
    return "\n".join(lines) + "\n"


def _jsonable(obj):
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, (str, int, float, bool)) or obj is None:
        return obj
    return repr(obj)


def result_stem(name, device, env=None):
    env = env or environment(device)
    return f"{name}_{device_tag(device)}_{env['date_utc'][:10]}"


def write_results(name, records, settings, *, device="cpu", columns=None,
                  summary=None, summary_columns=None, title=None, notes=(),
                  tables=(), out_dir=None):
    """Write ``<name>_<device-tag>_<YYYY-MM-DD>.json`` and ``.md`` to ``out_dir``.

    Parameters
    ----------
    name : str
        Benchmark name, e.g. ``"methods_digits"``.
    records : list of dict
        One row per measurement.
    settings : dict
        The run's options (seeds included); written to both files.
    device : str
        The torch device the benchmark ran on (described in the header).
    columns, summary_columns : list of str, optional
        Columns of the Markdown tables (default: all keys, in order).
    summary : list of dict, optional
        Aggregated rows (e.g. mean and std over seeds), a second table.
    title : str, optional
        Heading of the Markdown file.
    notes : sequence of str
        Extra lines under the tables.
    tables : sequence of (heading, records, columns)
        Further Markdown tables after the main one (and before the notes), each
        under a ``## heading``; their records go to the JSON file under
        ``"tables"``.

    Returns
    -------
    json_path, md_path : str
    """
    env = environment(device)
    out_dir = RESULTS_DIR if out_dir is None else out_dir
    os.makedirs(out_dir, exist_ok=True)
    stem = os.path.join(out_dir, result_stem(name, device, env))
    payload = {"benchmark": name, "environment": env, "settings": settings,
               "command": " ".join([os.path.basename(sys.argv[0])] + sys.argv[1:]),
               "records": records}
    if summary is not None:
        payload["summary"] = summary
    if tables:
        payload["tables"] = {heading: rows for heading, rows, _ in tables}
    if notes:
        payload["notes"] = list(notes)
    payload = _jsonable(payload)
    with open(stem + ".json", "w", encoding="utf-8") as f:
        json.dump(payload, f, indent=2)
        f.write("\n")

    versions = ", ".join(f"{k} {v}" for k, v in env["versions"].items())
    if env.get("sklearn_robust_git"):
        versions += f" (git {env['sklearn_robust_git']})"
    seeds = settings.get("seeds", settings.get("seed"))
    shown = {k: v for k, v in settings.items() if k not in ("seeds", "seed")}
    lines = [f"# {title or name}", "",
             f"- Device: {env['device']} — {env['device_description']}",
             f"- Date (UTC): {env['date_utc']}",
             f"- Load average (1, 5, 15 min) at the end: "
             f"{env.get('load_average_1_5_15min', 'n/a')} on {env['cpu_count']} CPUs",
             f"- Versions: {versions}",
             f"- Seed(s): {seeds}",
             "- Settings: " + ", ".join(f"{k}={v}" for k, v in shown.items()),
             f"- Command: `{payload['command']}`", ""]
    if summary is not None:
        lines += ["## Summary", "", markdown_table(summary, summary_columns),
                  "## Runs", ""]
    lines.append(markdown_table(records, columns))
    for heading, rows, cols in tables:
        lines += ["", f"## {heading}", "", markdown_table(rows, cols)]
    if notes:
        lines += [""] + [f"- {n}" for n in notes]
    with open(stem + ".md", "w", encoding="utf-8") as f:
        f.write("\n".join(lines).rstrip("\n") + "\n")
    return stem + ".json", stem + ".md"


# ------------------------------------------------------------------ shared steps


def describe_preset(name):
    """The attacks behind a scorer preset of the installed library, as text."""
    try:
        import torch

        from sklearn_robust.metrics import ATTACK_PRESETS

        parts = []
        for attack in ATTACK_PRESETS[name]():
            text = repr(attack)
            if hasattr(attack, "members"):  # an ensemble, shown for 10 classes
                members = attack.members(torch.nn.Linear(1, 10), torch.zeros(1, 1))
                text += " = [" + ", ".join(repr(m) for m in members) + "]"
            parts.append(text)
        return (" then ".join(parts) + " (parameters not shown are the library's "
                "defaults; eps, norm and clip box come from the scorer)")
    except Exception as exc:  # a renamed private helper must not stop a run
        return f"preset {name!r} ({type(exc).__name__}: {exc})"


def warm_up(X, y, device):
    """One short untimed fit, so that the first timed fit pays no start-up costs."""
    from sklearn_robust import AdversarialClassifier

    n = min(len(y), 256)
    AdversarialClassifier(eps=0.01, n_steps=1, max_epochs=1, train_split=None,
                          verbose=0, device=device, random_state=0).fit(X[:n], y[:n])


# ------------------------------------------------------------------------ memory


def _proc_status_mib(field):
    """A ``Vm*`` line of /proc/self/status in MiB (nan where there is none)."""
    try:
        with open("/proc/self/status", encoding="utf-8") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def _rss_mib():
    """Current resident set size (MiB)."""
    return _proc_status_mib("VmRSS")


def _peak_rss_mib():
    """Peak resident set size of this process (MiB): ``VmHWM``, the high-water mark
    of its own address space (``ru_maxrss`` where there is no /proc).

    Not ``ru_maxrss`` on Linux: a child started by fork + exec (multiprocessing's
    'spawn') inherits in it the parent's peak at the time of the fork, so a child of
    a 3 GB parent reports at least 3 GB whatever it does."""
    peak = _proc_status_mib("VmHWM")
    if math.isnan(peak):
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        peak = peak / 2**20 if sys.platform == "darwin" else peak / 1024
    return peak
