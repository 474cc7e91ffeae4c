"""``python benchmarks/accelerator.py``: one prepared run of the speed and scale-out cases.

Made for a borrowed GPU or TPU machine with a few minutes of time and no network: it needs
neither MNIST nor a second run. Every case runs on JAX's default device (and the sharding case
on every local device), on synthetic data of MNIST's shape (784 features in [0, 1], 10 classes;
the timings do not depend on the values), in this order, most important first:

1. ``fit``: exact online ``fit_stream`` (batch 1), 10 classes, ``[4, 4, 1]``, ``[16, 16, 1]``
   and ``[128, 128, 1]``; then batch 32 at ``[4, 4, 1]`` (samples/s, median of the repeats
   after one warm-up that compiles);
2. ``infer``: ``batch_apply`` in blocks of 1,000 (samples/s);
3. ``predict_loop``: the facade's per-call ``predict(x, target)`` (calls/s);
4. ``ensemble``: ``E = 16`` members in one scan against 16 separate fits
   (``ensembles`` of ``benchmarks/scaling.py``), then ``sweep``: the same for a learning-rate
   sweep (members from one key, sharing their gates);
5. ``sharding``: 1,000 classes at ``[16, 16, 1]`` sharded over every local device against one
   device (``classes`` of ``benchmarks/scaling.py``; on one device the mesh has one device).

A case starts only while the elapsed time is below ``--budget-s`` (default 420 s, so the whole
run stays under 8 minutes with the last case); a case not started is recorded as skipped. The
result is one JSON object on stdout (and in ``--json``): the devices, versions, and per case its
figures or its error. ``--smoke`` runs every case at toy sizes (the test suite's CPU check).

Example:
    python benchmarks/accelerator.py --json accelerator.json
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
import traceback

import numpy as np

from gln_jax.core.types import make_config

DEFAULT_BUDGET_S = 420.0

#: Sizes of the full run and of ``--smoke``.
FULL = {
    "examples": 10_000,
    "repeats": 3,
    "loop_calls": 1000,
    "fit_layers": ([4, 4, 1], [16, 16, 1], [128, 128, 1]),
    "ensemble": {"members": 16, "examples": 2000},
    "sharding": {"num_classes": 1000, "examples": 1000, "width": 64},
}
SMOKE = {
    "examples": 64,
    "repeats": 1,
    "loop_calls": 8,
    "fit_layers": ([4, 4, 1],),
    "ensemble": {"members": 2, "examples": 32, "width": 16},
    "sharding": {"num_classes": 12, "examples": 32, "width": 8, "chunk_size": 16},
}


def _data(examples: int, width: int = 784, classes: int = 10):
    rng = np.random.default_rng(0)
    X = rng.uniform(size=(examples, width)).astype(np.float32)
    y = rng.integers(0, classes, examples).astype(np.int32)
    return X, y


def _median_rate(fn, count: int, repeats: int) -> dict:
    fn()  # warm-up: compiles
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return {"per_s": count / statistics.median(times), "seconds": times}


def fit_case(sizes: dict) -> dict:
    """Exact online and batch-32 ``fit_stream`` throughput."""
    import jax

    from gln_jax.core.network import init
    from gln_jax.core.stream import fit_stream

    X, y = _data(sizes["examples"])
    rates = np.full(len(y), 1e-3, np.float32)
    out = {}
    runs = [(layers, 1) for layers in sizes["fit_layers"]] + [(sizes["fit_layers"][0], 32)]
    for layers, batch in runs:
        config = make_config(layers, 784, num_classes=10)
        state = init(jax.random.key(0), config)

        def run(config=config, state=state, batch=batch):
            trained, _ = fit_stream(state, X, X, y, rates, config=config, batch_size=batch)
            jax.block_until_ready(trained)

        name = f"{','.join(map(str, layers))} b{batch}"
        out[name] = _median_rate(run, len(y), sizes["repeats"])
    return out


def infer_case(sizes: dict) -> dict:
    """Batched inference throughput at ``[4, 4, 1]``."""
    import jax

    from gln_jax.core.network import batch_apply, init

    X, _ = _data(sizes["examples"])
    config = make_config([4, 4, 1], 784, num_classes=10)
    state = init(jax.random.key(0), config)
    predict = jax.jit(lambda s, x: batch_apply(s, x, x, config=config))
    block = min(1000, len(X))

    def run():
        for start in range(0, len(X) - block + 1, block):
            jax.block_until_ready(predict(state, X[start : start + block]))

    return _median_rate(run, (len(X) // block) * block, sizes["repeats"])


def predict_loop_case(sizes: dict) -> dict:
    """The facade's per-call ``predict(x, target)`` at ``[4, 4, 1]``."""
    from gln_jax.api.facade import GLN

    X, y = _data(sizes["loop_calls"])
    model = GLN("jax", [4, 4, 1], 784, num_classes=10)

    def run():
        for i in range(len(y)):
            model.predict(X[i], target=y[i : i + 1])

    return _median_rate(run, len(y), sizes["repeats"])


def ensemble_case(sizes: dict) -> dict:
    import scaling  # benchmarks/scaling.py, this script's sibling

    return scaling.ensembles(repeats=1, **sizes["ensemble"])


def sweep_case(sizes: dict) -> dict:
    import scaling  # benchmarks/scaling.py, this script's sibling

    return scaling.ensembles(repeats=1, sweep=True, **sizes["ensemble"])


def sharding_case(sizes: dict) -> dict:
    import scaling  # benchmarks/scaling.py, this script's sibling

    return scaling.classes(**sizes["sharding"])


CASES = (
    ("fit", fit_case),
    ("infer", infer_case),
    ("predict_loop", predict_loop_case),
    ("ensemble", ensemble_case),
    ("sweep", sweep_case),
    ("sharding", sharding_case),
)


def _environment() -> dict:
    import jax

    devices = jax.devices()
    return {
        "backend": jax.default_backend(),
        "devices": [str(d) for d in devices],
        "device_kind": devices[0].device_kind,
        "local_device_count": jax.local_device_count(),
        "jax": jax.__version__,
        "python": platform.python_version(),
    }


def run(budget_s: float = DEFAULT_BUDGET_S, smoke: bool = False, log=sys.stderr) -> dict:
    """Runs the cases in order within the budget; returns the result object."""
    sizes = SMOKE if smoke else FULL
    started = time.perf_counter()
    result = {"environment": _environment(), "smoke": smoke, "budget_s": budget_s, "cases": {}}
    for name, case in CASES:
        elapsed = time.perf_counter() - started
        if elapsed >= budget_s:
            result["cases"][name] = {"skipped": f"budget of {budget_s:.0f} s spent"}
            continue
        case_start = time.perf_counter()
        try:
            figures = case(sizes)
        except Exception as err:  # one failing case must not lose the others' figures
            figures = {"error": f"{type(err).__name__}: {err}", "trace": traceback.format_exc()}
        figures["case_seconds"] = time.perf_counter() - case_start
        result["cases"][name] = figures
        print(f"{name}: {figures['case_seconds']:.1f} s", file=log, flush=True)
    result["total_seconds"] = time.perf_counter() - started
    return result


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget-s", type=float, default=DEFAULT_BUDGET_S)
    parser.add_argument("--smoke", action="store_true", help="toy sizes (a CPU check)")
    parser.add_argument("--json", help="also write the result to this file")
    args = parser.parse_args(argv)
    result = run(args.budget_s, args.smoke)
    text = json.dumps(result, indent=1)
    if args.json:
        with open(args.json, "w") as handle:
            handle.write(text)
    print(text)
    return 1 if any("error" in c for c in result["cases"].values()) else 0


if __name__ == "__main__":
    raise SystemExit(main())
