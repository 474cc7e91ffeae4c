"""``python benchmarks/scaling.py``: the sharding and ensemble targets, measured.

``classes``: a ``[16, 16, 1]`` model with 1,000 classes, trained and evaluated on a
class-sharded mesh of every device (drawn onto it by ``init_sharded``), then on one device in
the same process; prints the largest difference of outputs and states, the shard each device
holds, and the peak memory of the sharded run per stage (before anything of the one-device run
exists) and of the one-device run. Run it with forced host devices::

    XLA_FLAGS=--xla_force_host_platform_device_count=8 python benchmarks/scaling.py classes

``ensemble``: ``E = 16`` members of ``[4, 4, 1]`` with 10 classes trained in one compiled scan
(:func:`gln_jax.core._ensemble.fit_ensemble`) against 16 separate ``fit_stream`` runs, both
warmed up first and then timed alternately; prints the ratio. Synthetic uniform data of MNIST's
width (784) is used: the timing does not depend on the values. ``ensemble --sweep``: the same
for a learning-rate sweep (members from one key, so they share their gates).
"""

from __future__ import annotations

import argparse
import json
import time

import jax
import numpy as np

from gln_jax.core import _ensemble as ensemble
from gln_jax.core import _sharding as sharding
from gln_jax.core.network import batch_apply, init
from gln_jax.core.stream import fit_stream
from gln_jax.core.types import CHUNK_SIZE, make_config
from gln_jax.tools.memory import current_peak_rss_mib, reset_peak_rss, rss_mib


def _max_diff(a, b) -> float:
    return max(
        float(np.max(np.abs(np.asarray(x, np.float64) - np.asarray(y, np.float64)), initial=0.0))
        for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True)
    )


def classes(
    num_classes=1000, examples=2000, width=64, batch_size=1, dtype="float32", chunk_size=CHUNK_SIZE
) -> dict:
    """1,000 classes at ``[16, 16, 1]``: sharded over every device vs one device.

    ``sharded_stages`` holds, for ``init``, ``fit`` and ``predict`` of the sharded run, the
    resident memory before the stage and its peak during it (Linux ``VmHWM``, reset before each
    stage). The library caps the rows of each compiled call (``sharding.rows_per_call``), so the
    peak does not grow with ``chunk_size``.
    """
    config = make_config([16, 16, 1], width, num_classes=num_classes, dtype=dtype)
    rng = np.random.default_rng(0)
    X = rng.uniform(size=(examples, width)).astype(dtype)
    y = rng.integers(0, num_classes, examples)
    rates = np.full(examples, 0.01, dtype)
    stages = {}

    def stage(name, run):
        """``run()``, with the resident memory before it and the peak during it."""
        before = rss_mib()
        reset_peak_rss()
        result = jax.block_until_ready(run())
        stages[name] = {"rss_before_mib": before, "peak_mib": current_peak_rss_mib()}
        return result

    started = time.perf_counter()
    mesh = sharding.make_mesh()
    state, layout = stage("init", lambda: sharding.init_sharded(jax.random.key(0), config, mesh))
    trained, p_sharded = stage(
        "fit",
        lambda: sharding.fit_sharded(
            state, X, X, y, rates, layout=layout, batch_size=batch_size, chunk_size=chunk_size
        ),
    )
    q_sharded = sharding.to_host(
        stage("predict", lambda: sharding.predict_sharded(trained, X, X, layout=layout))
    )
    sharded_s = time.perf_counter() - started
    # The sharded run alone (nothing of the one-device run exists yet): the largest stage peak.
    sharded_peak = max(stage["peak_mib"] for stage in stages.values())
    single_before = rss_mib()
    reset_peak_rss()
    reference = init(jax.random.key(0), config)
    init_diff = _max_diff(sharding.unshard_state(state, layout), reference)
    started = time.perf_counter()
    single, p_single = fit_stream(
        reference, X, X, y, rates, config=config, batch_size=batch_size, chunk_size=chunk_size
    )
    q_single = np.asarray(batch_apply(single, X, X, config=config))
    single_s = time.perf_counter() - started
    weights = trained.layers[0].weights
    return {
        "devices": len(jax.devices()),
        "classes": num_classes,
        "padded_classes": layout.config.num_classes,
        "examples": examples,
        "dtype": dtype,
        "chunk_size": chunk_size,
        "state_mib": config.state_nbytes() / 2**20,
        "shard_of_layer0_weights": sorted(
            {s.data.shape[0] / weights.shape[0] for s in weights.addressable_shards}
        ),
        "train_outputs_max_diff": float(np.abs(p_sharded - p_single).max()),
        "predict_max_diff": float(np.abs(q_sharded - q_single).max()),
        "argmax_agreement": float((q_sharded.argmax(1) == q_single.argmax(1)).mean()),
        "state_max_diff": _max_diff(sharding.unshard_state(trained, layout), single),
        "sharded_seconds_with_compile": sharded_s,
        "single_seconds_with_compile": single_s,
        "init_sharded_vs_init_max_diff": init_diff,
        "sharded_stages": stages,
        "peak_rss_mib_sharded_run": sharded_peak,
        "rss_mib_before_single_run": single_before,
        "peak_rss_mib_single_run": current_peak_rss_mib(),
    }


def ensembles(members=16, examples=2000, width=784, repeats=5, sweep=False) -> dict:
    """E members in one scan vs E separate fits, alternated in one process.

    Args:
        members: ``E``.
        examples: stream length.
        width: features per example.
        repeats: timed runs of each (alternated); best and median are reported.
        sweep: members from one key (:func:`gln_jax.core._ensemble.init_sweep`, shared gates)
            with log-spaced rates from 1e-3 to 1e-1, each separate fit with its member's rate;
            else members from ``E`` keys (:func:`gln_jax.core._ensemble.init_ensemble`) with
            rate 0.01.
    """
    config = make_config([4, 4, 1], width, num_classes=10)
    rng = np.random.default_rng(0)
    X = rng.uniform(size=(examples, width)).astype(np.float32)
    y = rng.integers(0, 10, examples)
    if sweep:
        member_rates = np.geomspace(1e-3, 1e-1, members).astype(np.float32)
        states = ensemble.init_sweep(jax.random.key(0), config, members)
        singles = [init(jax.random.key(0), config) for _ in range(members)]
    else:
        member_rates = np.full(members, 0.01, np.float32)
        keys = jax.random.split(jax.random.key(0), members)
        states = ensemble.init_ensemble(keys, config)
        singles = [init(k, config) for k in keys]
    rates = np.repeat(member_rates[:, None], examples, axis=1)  # [E, T]

    def together():
        trained, _ = ensemble.fit_ensemble(states, X, X, y, rates, config=config)
        jax.block_until_ready(trained)
        return trained

    def separately():
        out = []
        for state, rate in zip(singles, rates, strict=True):
            trained, _ = fit_stream(state, X, X, y, rate, config=config)
            out.append(jax.block_until_ready(trained))
        return out

    one, each = together(), separately()  # compile both; the results must agree
    diff = max(
        _max_diff(jax.tree.map(lambda a, e=e: a[e], one), single) for e, single in enumerate(each)
    )
    timings = {"one_scan": [], "separate": []}
    for _ in range(repeats):
        for name, run in (("one_scan", together), ("separate", separately)):
            started = time.perf_counter()
            run()
            timings[name].append(time.perf_counter() - started)
    best = {name: min(values) for name, values in timings.items()}
    median = {name: float(np.median(values)) for name, values in timings.items()}
    return {
        "members": members,
        "examples": examples,
        "kind": "sweep (one key, shared gates)" if sweep else "ensemble (one key per member)",
        "shared_gates": ensemble.shares_gates(states),
        "max_diff_one_scan_vs_separate": diff,
        "timings_s": timings,
        "speedup_separate_over_one_scan": best["separate"] / best["one_scan"],
        "speedup_on_medians": median["separate"] / median["one_scan"],
    }


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("case", choices=("classes", "ensemble"))
    parser.add_argument("--examples", type=int, default=2000)
    parser.add_argument("--dtype", default="float32", choices=("float32", "float64"))
    parser.add_argument("--chunk-size", type=int, default=CHUNK_SIZE)
    parser.add_argument(
        "--sweep", action="store_true", help="ensemble: members from one key with 16 rates"
    )
    args = parser.parse_args(argv)
    if args.case == "classes":
        if args.dtype == "float64":
            jax.config.update("jax_enable_x64", True)
        result = classes(examples=args.examples, dtype=args.dtype, chunk_size=args.chunk_size)
    else:
        result = ensembles(examples=args.examples, sweep=args.sweep)
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
