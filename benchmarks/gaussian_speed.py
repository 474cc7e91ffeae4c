"""Per-example cost of the Gaussian family's exact online fit against the Bernoulli family's.

``python benchmarks/gaussian_speed.py``: both families at the same widths and context size,
float32, ``fit_stream`` with batch size 1 on the same stream, compiled first, then timed
alternately (Bernoulli, Gaussian, Bernoulli, ...) in one process so that a shared machine's
load hits both alike; prints the median of each and their ratio.
"""

from __future__ import annotations

import argparse
import statistics
import time

import jax
import numpy as np

from gln_jax.core import gaussian_network, network, stream
from gln_jax.core.gaussian_types import make_gaussian_config
from gln_jax.core.types import make_config


def measure(layer_sizes=(32, 32), input_size=10, context_map_size=4, count=8192, repeats=5):
    """Returns ``(bernoulli_us, gaussian_us)`` medians of microseconds per example."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((count, input_size)).astype(np.float32)
    probs = (1 / (1 + np.exp(-x))).astype(np.float32)
    labels = (x[:, 0] > 0).astype(np.int32)
    targets = np.sin(x[:, 0]).astype(np.float32)
    rates = np.full(count, 1e-3, np.float32)
    b_config = make_config(list(layer_sizes), input_size, context_map_size=context_map_size)
    g_config = make_gaussian_config(
        list(layer_sizes), input_size, context_map_size=context_map_size
    )
    b_state = network.init(jax.random.key(0), b_config)
    g_state = gaussian_network.init(jax.random.key(0), g_config)

    def bernoulli():
        state, _ = stream.fit_stream(b_state, probs, x, labels, rates, config=b_config)
        jax.block_until_ready(state)

    def gaussian():
        state, _ = gaussian_network.fit_stream(g_state, x, x, targets, rates, config=g_config)
        jax.block_until_ready(state)

    bernoulli(), gaussian()  # compile
    times = {"bernoulli": [], "gaussian": []}
    for _ in range(repeats):
        for name, fn in (("bernoulli", bernoulli), ("gaussian", gaussian)):
            start = time.perf_counter()
            fn()
            times[name].append((time.perf_counter() - start) / count * 1e6)
    return statistics.median(times["bernoulli"]), statistics.median(times["gaussian"])


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layer-sizes", type=int, nargs="+", default=[32, 32])
    parser.add_argument("--input-size", type=int, default=10)
    parser.add_argument("--context-map-size", type=int, default=4)
    args = parser.parse_args(argv)
    b, g = measure(tuple(args.layer_sizes), args.input_size, args.context_map_size)
    print(
        f"layers {args.layer_sizes}, input {args.input_size}, context_map_size "
        f"{args.context_map_size}, float32, batch 1: Bernoulli {b:.2f} us/example, "
        f"Gaussian {g:.2f} us/example, ratio {g / b:.2f}"
    )


if __name__ == "__main__":
    main()
