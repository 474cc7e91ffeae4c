"""Speed of the ports on MNIST-shaped random data (measured, never asserted in tests).

10 classes, layer sizes [4, 4, 1], 784 inputs, examples uniform in [0, 1]. Training is the
facade's ``fit`` at batch size 1 (exact online learning through the engine's ``fit``); inference
is ``predict`` on batches of 100 and 1,000. Each figure is the best of ``--repeats`` timings
after a warm-up (the machine is shared, so the best run is the least disturbed one).

Run::

    python benchmarks/bench_ports.py                      # every installed backend
    python benchmarks/bench_ports.py --threads 1          # one BLAS/OpenMP/TF thread
    python benchmarks/bench_ports.py --profile pytorch    # where the time goes
"""

from __future__ import annotations

import argparse
import os
import sys
import time


def _threads(count: int | None) -> None:
    """Pins every framework's thread pools (before they are imported)."""
    if count is None:
        return
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[name] = str(count)
    os.environ["TF_NUM_INTRAOP_THREADS"] = str(count)
    os.environ["TF_NUM_INTEROP_THREADS"] = str(count)


def _best(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def measure(backend: str, train: int, infer: int, repeats: int) -> dict[str, float]:
    """Samples per second of ``fit`` (batch 1) and ``predict`` (batches of 100 and 1,000)."""
    import numpy as np

    import gln_jax

    rng = np.random.default_rng(0)
    x = rng.random((max(train, infer), 784), dtype=np.float32)
    y = rng.integers(0, 10, len(x))
    model = gln_jax.GLN(backend, [4, 4, 1], 784, num_classes=10, learning_rate=1e-3)
    model.fit(x[:256], y[:256])  # warm-up: compiles / traces
    model.predict(x[:100])
    model.predict(x[:1000])
    out = {"train_b1": train / _best(lambda: model.fit(x[:train], y[:train]), repeats)}
    for batch in (100, 1000):

        def predict(batch=batch):
            for start in range(0, infer, batch):
                model.predict(x[start : start + batch])

        out[f"infer_b{batch}"] = infer / _best(predict, repeats)
    return out


def profile(backend: str, train: int) -> None:
    """Prints where ``fit`` (batch 1) and ``predict`` (batch 100) spend their time."""
    import cProfile
    import pstats

    import numpy as np

    import gln_jax

    rng = np.random.default_rng(0)
    x = rng.random((train, 784), dtype=np.float32)
    y = rng.integers(0, 10, train)
    model = gln_jax.GLN(backend, [4, 4, 1], 784, num_classes=10, learning_rate=1e-3)
    model.fit(x[:256], y[:256])
    model.predict(x[:100])
    if backend == "pytorch":
        from torch.profiler import ProfilerActivity
        from torch.profiler import profile as torch_profile

        for name, fn in (
            ("fit b1", lambda: model.fit(x, y)),
            ("predict b100", lambda: [model.predict(x[i : i + 100]) for i in range(0, train, 100)]),
        ):
            with torch_profile(activities=[ProfilerActivity.CPU]) as prof:
                start = time.perf_counter()
                fn()
                wall = time.perf_counter() - start
            print(f"--- {backend} {name}: {wall:.3f} s wall")
            print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=12))
        return
    for name, code in (
        ("fit b1", "model.fit(x, y)"),
        ("predict b100", "[model.predict(x[i : i + 100]) for i in range(0, len(x), 100)]"),
    ):
        profiler = cProfile.Profile()
        namespace = {"model": model, "x": x, "y": y}
        profiler.runctx(code, namespace, namespace)
        print(f"--- {backend} {name}")
        pstats.Stats(profiler).sort_stats("tottime").print_stats(12)


def main(argv=None) -> int:
    from gln_jax.api import backends  # imports JAX but starts no thread pool

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("backends", nargs="*", default=[*backends.canonical_names()[1:], "jax"])
    parser.add_argument("--train", type=int, default=3000, help="examples learned per timing")
    parser.add_argument("--infer", type=int, default=5000, help="examples predicted per timing")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="pin every thread pool")
    parser.add_argument("--profile", action="store_true", help="print where the time goes")
    args = parser.parse_args(argv)
    _threads(args.threads)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    for backend in args.backends:
        if args.profile:
            profile(backend, args.train)
            continue
        rates = measure(backend, args.train, args.infer, args.repeats)
        figures = ", ".join(f"{case} {value:,.0f}/s" for case, value in rates.items())
        print(f"{backend:8s} {figures}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
