"""``python -m gln_jax.benchmark``: speed, memory and accuracy of every backend, in one run.

Every case (backend x task x layer sizes) runs in its own subprocess, so that compile times are
cold and peak memory is that case's alone. Throughput is timed on a subset of canonical MNIST
(the median of several repeats after a warm-up); accuracy is measured once per configuration
on the full one-pass protocol (60,000 training examples online, then the 10,000 test examples).

Examples:
    python -m gln_jax.benchmark --quick
    python -m gln_jax.benchmark --json benchmarks/results.json
    python -m gln_jax.benchmark --render benchmarks/results.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from importlib import metadata

import numpy as np

from gln_jax import utils
from gln_jax.api import backends
from gln_jax.tools.memory import peak_rss_mib

#: Every registered backend, plus "jax-scan" (the functional ``fit_stream`` driver, no facade).
BACKENDS = ("jax", "jax-scan", *backends.canonical_names()[1:])
SIZES = {"4,4,1": [4, 4, 1], "16,16,1": [16, 16, 1]}
SWEEP = ([8, 8, 1], [32, 32, 1], [64, 64, 1], [128, 128, 1])
TASKS = ("10class", "digit3")
UNITS = {
    "train_b1": "samples/s",
    "train_b4": "samples/s",
    "train_b32": "samples/s",
    "infer": "samples/s",
    "predict_loop": "calls/s",
    "compile": "s",
    "peak_memory": "MiB",
    "accuracy": "%",
}


def _load(task: str, deskewed: bool = True):
    X_train, y_train, X_test, y_test = utils.get_mnist(deskewed=deskewed)
    rng = np.random.default_rng(0)
    train, test = rng.permutation(len(X_train)), rng.permutation(len(X_test))
    X_train, y_train, X_test, y_test = X_train[train], y_train[train], X_test[test], y_test[test]
    if task == "digit3":
        return X_train, y_train == 3, X_test, y_test == 3, 2
    return X_train, y_train, X_test, y_test, 10


def _timed(fn, repeats: int) -> list[float]:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def run_case(spec: dict) -> list[dict]:
    """Runs one case in this process and returns its records."""
    from gln_jax.api.facade import GLN

    backend, task, sizes = spec["backend"], spec["task"], spec["layer_sizes"]
    n, repeats, loop_calls = spec["subset"], spec["repeats"], spec["loop_calls"]
    X_train, y_train, X_test, y_test, classes = _load(task)
    X, y = X_train[:n], y_train[:n]
    facade = "jax" if backend == "jax-scan" else backend

    def model():
        return GLN(facade, sizes, 784, num_classes=classes, seed=spec["seed"])

    records = []

    def record(case, value, times=None, count=None):
        records.append(
            {
                "backend": backend,
                "task": task,
                "layer_sizes": sizes,
                "case": case,
                "value": float(value),
                "unit": UNITS[case],
                "count": count,
                "raw_seconds": times,
            }
        )

    start = time.perf_counter()
    m = model()
    m.predict(X_test[:1000])
    m.fit(X[:256], y[:256])
    record("compile", time.perf_counter() - start)

    if backend == "jax-scan":
        from gln_jax.core.stream import fit_stream

        rates = np.full(n, 1e-4, np.float32)

        def train():
            fit_stream(m.state, X, X, y, rates, config=m.config)

        train()
        times = _timed(train, repeats)
        record("train_b1", n / statistics.median(times), times, n)
    else:
        for batch in spec["batches"]:
            fresh = [model() for _ in range(repeats + 1)]  # each repeat starts from scratch
            fresh[0].fit(X, y, batch_size=batch)  # warm-up: compiles this shape
            times = []
            for twin in fresh[1:]:
                start = time.perf_counter()
                twin.fit(X, y, batch_size=batch)
                times.append(time.perf_counter() - start)
            record(f"train_b{batch}", n / statistics.median(times), times, n)

        m.predict(X[:1], target=y[:1])
        calls = min(loop_calls, n)

        def loop():
            for i in range(calls):
                m.predict(X[i], target=y[i : i + 1])

        times = _timed(loop, repeats)
        record("predict_loop", calls / statistics.median(times), times, calls)

    def infer():
        for s in range(0, n, 1000):
            m.predict(X[s : s + 1000])

    infer()
    times = _timed(infer, repeats)
    record("infer", n / statistics.median(times), times, n)

    if spec["accuracy"]:
        acc_model = model()
        acc_n = spec["accuracy_subset"] or len(X_train)
        acc_model.fit(X_train[:acc_n], y_train[:acc_n])
        preds = np.concatenate(
            [acc_model.predict(X_test[s : s + 1000]) for s in range(0, len(X_test), 1000)]
        )
        record("accuracy", 100.0 * np.mean(preds == y_test), count=acc_n)
    record("peak_memory", peak_rss_mib())
    return records


def _machine() -> dict:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    pages = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": round(pages / 2**30, 1),
        "platform": platform.platform(),
    }


def _versions() -> dict:
    out = {"python": platform.python_version()}
    for dist in ("gln-jax", "jax", "jaxlib", "numpy", "torch", "tensorflow-cpu", "tensorflow"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return out


def _available(backend: str) -> bool:
    return backends.is_available("jax" if backend == "jax-scan" else backend)


def plan(args) -> list[dict]:
    """The list of case specs for the options given."""
    quick = args.quick
    base = {
        "subset": 2000 if quick else 10000,
        "repeats": 1 if quick else 3,
        "loop_calls": 500 if quick else 2000,
        "batches": [1, 4, 32],
        "seed": 0,
        "accuracy_subset": 10000 if quick else None,
    }
    chosen = [b for b in args.backends if _available(b)]
    specs = []
    for sizes_name in args.sizes:
        for task in ("10class",) if quick else TASKS:
            for backend in chosen:
                specs.append(
                    dict(
                        base,
                        backend=backend,
                        task=task,
                        layer_sizes=SIZES[sizes_name],
                        accuracy=backend != "jax-scan",
                    )
                )
    if not quick and "jax" in chosen:
        for sizes in SWEEP:
            specs.append(
                dict(
                    base,
                    backend="jax",
                    task="10class",
                    layer_sizes=list(sizes),
                    accuracy=True,
                    batches=[1],
                )
            )
    return specs


def _child_env(device: str) -> dict:
    env = dict(os.environ)
    if device != "auto":
        env["JAX_PLATFORMS"] = device
    if device == "cpu":
        env["CUDA_VISIBLE_DEVICES"] = ""
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    return env


def render(data: dict) -> str:
    """Markdown table (and machine line) from a benchmark JSON."""
    rows: dict[tuple, dict] = {}
    for r in data["results"]:
        key = (r["task"], ",".join(map(str, r["layer_sizes"])), r["backend"])
        rows.setdefault(key, {})[r["case"]] = r["value"]
    m, v = data["machine"], data["versions"]
    lines = [
        f"Machine: {m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB; device "
        f"`{data['device']}`; {data['mode']} run of {data['date']}. Versions: "
        + ", ".join(f"{k} {val}" for k, val in v.items())
        + ".",
        "",
        "| task | layers | backend | train b1 (samples/s) | train b4 | train b32 | "
        "infer (samples/s) | predict loop (calls/s) | first call (s) | peak RSS (MiB) | "
        "accuracy (%) |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]

    def fmt(values, case, digits=0):
        if case not in values:
            return "–"
        return f"{values[case]:,.{digits}f}"

    for (task, sizes, backend), values in rows.items():
        lines.append(
            f"| {task} | [{sizes}] | {backend} | {fmt(values, 'train_b1')} | "
            f"{fmt(values, 'train_b4')} | {fmt(values, 'train_b32')} | {fmt(values, 'infer')} | "
            f"{fmt(values, 'predict_loop')} | {fmt(values, 'compile', 2)} | "
            f"{fmt(values, 'peak_memory')} | {fmt(values, 'accuracy', 2)} |"
        )
    for label in data.get("not_measured", []):
        lines.append(f"\n{label}: not measured.")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gln_jax.benchmark", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small subsets, under two minutes")
    parser.add_argument("--backends", nargs="+", default=list(BACKENDS), choices=BACKENDS)
    parser.add_argument("--sizes", nargs="+", default=None, choices=list(SIZES))
    parser.add_argument("--device", default="cpu", choices=["auto", "cpu", "gpu", "tpu"])
    parser.add_argument("--json", default=None, metavar="PATH", help="write the results here")
    parser.add_argument(
        "--render", nargs="+", default=None, metavar="JSON", help="print saved runs, merged"
    )
    parser.add_argument("--case", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.case is not None:  # child process: one case, JSON records on the last line
        print(json.dumps(run_case(json.loads(args.case))))
        return 0
    if args.render is not None:
        data = None
        for path in args.render:
            with open(path) as handle:
                part = json.load(handle)
            if data is None:
                data = part
            else:  # later runs add their cases (same machine: see the versions line)
                data["results"] += part["results"]
                data["failures"] += part["failures"]
        print(render(data))
        return 0
    if args.sizes is None:
        args.sizes = ["4,4,1"] if args.quick else list(SIZES)
    specs = plan(args)
    results, failures = [], []
    started = time.perf_counter()
    for i, spec in enumerate(specs, 1):
        label = f"{spec['backend']} {spec['task']} {spec['layer_sizes']}"
        print(f"[{i}/{len(specs)}] {label} ...", file=sys.stderr, flush=True)
        proc = subprocess.run(
            [sys.executable, "-m", "gln_jax.tools.benchmark", "--case", json.dumps(spec)],
            capture_output=True,
            text=True,
            env=_child_env(args.device),
            check=False,
        )
        if proc.returncode != 0:
            failures.append({"case": label, "error": proc.stderr.strip().splitlines()[-1:]})
            print(f"  failed: {proc.stderr.strip()[-500:]}", file=sys.stderr)
            continue
        results.extend(json.loads(proc.stdout.strip().splitlines()[-1]))
    data = {
        "date": time.strftime("%Y-%m-%d"),
        "mode": "quick" if args.quick else "full",
        "device": args.device,
        "machine": _machine(),
        "versions": _versions(),
        "settings": {k: specs[0][k] for k in ("subset", "repeats", "loop_calls")} if specs else {},
        "wall_seconds": round(time.perf_counter() - started, 1),
        "results": results,
        "failures": failures,
        "not_measured": [d for d in ("GPU", "TPU") if d.lower() != args.device],
    }
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(data, handle, indent=1)
    print(render(data))
    print(f"\n{len(results)} measurements in {data['wall_seconds']} s", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
