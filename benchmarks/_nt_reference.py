"""neural-tangents' FC kernels on given inputs, for ``scaling.py --nt-python``.

Runs in an interpreter with jax and neural-tangents (not torch, not this library):
``python _nt_reference.py IN.npz OUT.npz``. ``IN`` holds ``X1``, ``X2`` (float64),
``depths``, ``W_std``, ``b_std`` and ``repeats``; ``OUT`` gets, per depth,
``nngp_<depth>`` and ``ntk_<depth>`` of ``stax.serial(*[Dense(512, W_std, b_std),
Relu()] * depth, Dense(1, W_std, b_std))`` (NTK parameterisation, float64), the
median time of the jitted kernel function after compilation (``time_<depth>``), the
first call with compilation (``compile_<depth>``) and a JSON ``meta`` with versions.
"""

# SPDX-License-Identifier: BSD-3-Clause

import json
import statistics
import sys
import time

import numpy as np


def main(inp, out):
    import jax

    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp
    import neural_tangents as nt
    from neural_tangents import stax

    data = np.load(inp)
    X1, X2 = jnp.asarray(data["X1"]), jnp.asarray(data["X2"])
    W_std, b_std = float(data["W_std"]), float(data["b_std"])
    repeats = int(data["repeats"])
    result = {}
    for depth in [int(d) for d in data["depths"]]:
        layers = []
        for _ in range(depth):
            layers += [stax.Dense(512, W_std=W_std, b_std=b_std), stax.Relu()]
        layers.append(stax.Dense(1, W_std=W_std, b_std=b_std))
        _, _, kernel_fn = stax.serial(*layers)
        fn = jax.jit(kernel_fn, static_argnames="get")
        start = time.perf_counter()
        k = fn(X1, X2, get=("nngp", "ntk"))
        jax.block_until_ready(k)
        result[f"compile_{depth}"] = time.perf_counter() - start
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            jax.block_until_ready(fn(X1, X2, get=("nngp", "ntk")))
            times.append(time.perf_counter() - start)
        result[f"time_{depth}"] = statistics.median(times)
        result[f"nngp_{depth}"] = np.asarray(k.nngp, dtype=np.float64)
        result[f"ntk_{depth}"] = np.asarray(k.ntk, dtype=np.float64)
        assert result[f"ntk_{depth}"].dtype == np.float64
    meta = {"versions": {"jax": jax.__version__,
                         "neural_tangents": getattr(nt, "__version__", "unknown"),
                         "python": sys.version.split()[0]},
            "devices": [str(d) for d in jax.devices()],
            "x64": bool(jax.config.jax_enable_x64)}
    np.savez(out, meta=json.dumps(meta), **result)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
