"""Checks that need forced host devices or a fresh process; run by tests/core/test_sharding.py.

``python multidevice_worker.py GROUP [ARGS]`` with ``XLA_FLAGS`` set by the caller; prints one
line ``RESULT <json>`` of measured differences that the test asserts on. Nothing here asserts
(except on its own setup), so a failing check shows its numbers in the test's message.
"""

import json
import os
import sys
import threading
import time

import jax
import numpy as np

jax.config.update("jax_numpy_rank_promotion", "raise")
jax.config.update("jax_numpy_dtype_promotion", "strict")


def _max_diff(a, b) -> float:
    return max(
        float(np.max(np.abs(np.asarray(x, np.float64) - np.asarray(y, np.float64)), initial=0.0))
        for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True)
    )


def _fractions(array) -> list[float]:
    """The distinct fractions of ``array`` held by each addressable shard."""
    return sorted({shard.data.size / array.size for shard in array.addressable_shards})


def _member(states, e):
    return jax.tree.map(lambda a: np.asarray(a)[e], states)


def _data(count, width, classes, seed=0):
    rng = np.random.default_rng(seed)
    return rng.uniform(size=(count, width)), rng.integers(0, classes, count)


def sharding_checks(tmp):
    """Class-sharded equals unsharded (float64), shards, init, padding, checkpoints."""
    jax.config.update("jax_enable_x64", True)
    from gln_numpy.engine import NumpyEngine

    from gln_jax import apply, batch_apply, fit_stream, init, make_config, update
    from gln_jax.api.checkpoint import load_checkpoint, save_checkpoint
    from gln_jax.api.sharded_engine import ShardedJaxEngine
    from gln_jax.core import _sharding as sharding

    config = make_config([8, 4, 1], 16, num_classes=10, dtype="float64")
    mesh = sharding.make_mesh()
    key = jax.random.key(0)
    reference = init(key, config)
    engine = ShardedJaxEngine(config, mesh)
    state = engine.from_reference(reference)
    out = {"devices": len(jax.devices()), "padded_classes": engine.layout.config.num_classes}
    out["shard_fractions"] = sorted(
        {
            shard.data.size / leaf.size
            for layer in state.layers
            for leaf in layer
            for shard in leaf.addressable_shards
        }
    )
    out["shard_devices"] = len({s.device for s in state.layers[0].weights.addressable_shards})

    drawn, layout = sharding.init_sharded(key, config, mesh)
    out["init_sharded_vs_init"] = _max_diff(sharding.unshard_state(drawn, layout), reference)
    out["init_sharded_padding_max"] = max(
        float(np.abs(sharding.to_host(leaf)[config.num_classes :]).max())
        for layer in drawn.layers
        for leaf in layer
    )
    out["init_sharded_fractions"] = sorted(
        {
            s.data.size / drawn.layers[0].weights.size
            for s in drawn.layers[0].weights.addressable_shards
        }
    )

    X, y = _data(300, 16, 10)
    single = jax.jit(update, static_argnames="config")
    step_diffs, unsharded = [], reference
    for i in range(25):  # step by step: one example, then compare the whole state
        unsharded, p_ref = single(unsharded, X[i], X[i], y[i], 0.05, config=config)
        state, p = engine.train(state, X[i : i + 1], X[i : i + 1], y[i : i + 1], np.full(1, 0.05))
        step_diffs.append(
            max(_max_diff(engine.to_reference(state), unsharded), float(np.abs(p[0] - p_ref).max()))
        )
    out["step_by_step_max"] = max(step_diffs)
    out["step_after"] = engine.step(state)

    rates = np.full(300, 0.02)
    for batch_size in (1, 4):
        expected, p_expected = fit_stream(
            reference, X, X, y, rates, config=config, batch_size=batch_size, chunk_size=64
        )
        got, p_got = sharding.fit_sharded(
            engine.from_reference(reference),
            X,
            X,
            y,
            rates,
            layout=engine.layout,
            batch_size=batch_size,
            chunk_size=64,
        )
        out[f"stream_bs{batch_size}_state"] = _max_diff(engine.to_reference(got), expected)
        out[f"stream_bs{batch_size}_outputs"] = float(np.abs(p_got - p_expected).max())
        out[f"stream_bs{batch_size}_output_shape"] = list(p_got.shape)
        q_expected = batch_apply(expected, X, X, config=config)
        q_got = engine.predict(got, X, X)
        out[f"predict_bs{batch_size}"] = float(np.abs(q_got - np.asarray(q_expected)).max())
        out[f"predict_bs{batch_size}_shape"] = list(q_got.shape)
    # A tiny temporaries budget: every fit call holds one batch, every prediction one row.
    budget = sharding.TEMPORARY_BYTES
    sharding.TEMPORARY_BYTES = 1
    try:
        out["capped_rows"] = [
            sharding.rows_per_call(engine.layout, 4, weight_rows=False),
            sharding.rows_per_call(engine.layout, weight_rows=True),
        ]
        capped, p_capped = sharding.fit_sharded(
            engine.from_reference(reference), X, X, y, rates, layout=engine.layout, batch_size=4
        )
        q_capped = engine.predict(capped, X[:20], X[:20])
    finally:
        sharding.TEMPORARY_BYTES = budget
    out["capped_state"] = _max_diff(engine.to_reference(capped), expected)
    out["capped_outputs"] = float(np.abs(p_capped - p_expected).max())
    out["capped_predict"] = float(np.abs(q_capped - np.asarray(q_expected)[:20]).max())
    out["unsharded_apply_vs_sharded"] = float(
        np.abs(np.asarray(apply(expected, X[0], X[0], config=config)) - q_got[0]).max()
    )

    # Checkpoints: saved from the sharded model, loaded into unsharded, sharded and NumPy.
    path = os.path.join(tmp, "sharded.npz")
    save_checkpoint(path, config, engine.to_reference(got), learning_rate=0.02)
    loaded = load_checkpoint(path)
    out["checkpoint_class_axis"] = int(loaded.state.layers[0].weights.shape[0])
    out["checkpoint_vs_unsharded"] = _max_diff(loaded.state, expected)
    resharded = engine.from_reference(loaded.state)
    out["checkpoint_into_sharded"] = float(np.abs(engine.predict(resharded, X, X) - q_got).max())
    numpy_engine = NumpyEngine(config)
    numpy_state = numpy_engine.from_reference(loaded.state)
    out["checkpoint_into_numpy"] = float(
        np.abs(numpy_engine.predict(numpy_state, X, X) - q_got).max()
    )
    out.update(_facade_checks(tmp, X, y))
    return out


def _facade_checks(tmp, X, y):
    """``GLN(..., devices=8)`` against ``GLN(...)``: fit, online predict, save and load."""
    from gln_jax import GLN
    from gln_jax.api import build

    options = dict(num_classes=10, dtype="float64", learning_rate=0.02, seed=3)
    plain = GLN("jax", [8, 4, 1], 16, **options)
    drawn_whole = []
    reference_init = build.init
    build.init = lambda *a, **k: drawn_whole.append(1) or reference_init(*a, **k)
    try:  # a sharded model is drawn straight onto the mesh, never whole on one device
        sharded = GLN("jax", [8, 4, 1], 16, devices=8, **options)
    finally:
        build.init = reference_init
    out = {"facade_drawn_whole": len(drawn_whole)}
    out["facade_init_max"] = _max_diff(sharded.reference_state(), plain.reference_state())
    out["facade_fit_equal"] = bool((plain.fit(X, y, batch_size=2) == sharded.fit(X, y, 2)).all())
    online = [
        np.abs(
            plain.predict(X[i : i + 1], y[i : i + 1], return_probs=True)
            - sharded.predict(X[i : i + 1], y[i : i + 1], return_probs=True)
        ).max()
        for i in range(5)
    ]
    out["facade_online_max"] = float(max(online))
    expected = plain.predict(X, return_probs=True)
    out["facade_predict_max"] = float(
        np.abs(sharded.predict(X, return_probs=True) - expected).max()
    )
    out["facade_step"] = sharded.step
    path = os.path.join(tmp, "facade.npz")
    sharded.save(path)
    loads = {
        "unsharded": GLN.load(path),
        "sharded": GLN.load(path, devices=8),
        "numpy": GLN.load(path, backend="numpy"),
    }
    for name, model in loads.items():
        got = model.predict(X, return_probs=True)
        out[f"facade_load_{name}"] = float(np.abs(got - expected).max())
    return out


def ensemble_checks(tmp):
    """Ensembles and sweeps equal separate models; a member-sharded ensemble too."""
    jax.config.update("jax_enable_x64", True)
    from gln_jax import fit_stream, init, make_config
    from gln_jax.core import _ensemble as ensemble
    from gln_jax.core import _sharding as sharding

    config = make_config([8, 4, 1], 16, num_classes=10, dtype="float64")
    X, y = _data(200, 16, 10, seed=1)
    keys = jax.random.split(jax.random.key(1), 3)
    rates = np.stack([np.full(200, r) for r in (0.001, 0.01, 0.1)])
    out = {}
    states = ensemble.init_ensemble(keys, config)
    trained, p = ensemble.fit_ensemble(states, X, X, y, rates, config=config, chunk_size=64)
    mesh = sharding.make_mesh(axis="members")
    placed, layout = ensemble.shard_ensemble(states, mesh)
    out["member_shard_fractions"] = sorted(
        {
            s.data.size / placed.layers[0].weights.size
            for s in placed.layers[0].weights.addressable_shards
        }
    )
    trained_sharded, p_sharded = ensemble.fit_ensemble(
        placed, X, X, y, rates, config=config, chunk_size=64, layout=layout
    )
    back = ensemble.unshard_ensemble(trained_sharded, layout)
    sweep = ensemble.init_sweep(keys[0], config, 3)
    swept, p_sweep = ensemble.fit_ensemble(sweep, X, X, y, rates, config=config, chunk_size=64)
    diffs = {"ensemble": [], "sharded": [], "sweep": []}
    for e in range(3):
        alone, p_alone = fit_stream(
            init(keys[e], config), X, X, y, rates[e], config=config, chunk_size=64
        )
        member = _member(trained, e)
        diffs["ensemble"].append(max(_max_diff(member, alone), float(np.abs(p[e] - p_alone).max())))
        member = _member(back, e)
        diffs["sharded"].append(
            max(_max_diff(member, alone), float(np.abs(p_sharded[e] - p_alone).max()))
        )
        swept_alone, p_swept_alone = fit_stream(
            init(keys[0], config), X, X, y, rates[e], config=config, chunk_size=64
        )
        member = _member(swept, e)
        diffs["sweep"].append(
            max(_max_diff(member, swept_alone), float(np.abs(p_sweep[e] - p_swept_alone).max()))
        )
    out.update({k: max(v) for k, v in diffs.items()})
    out["sweep_members_differ"] = _max_diff(
        jax.tree.map(lambda a: np.asarray(a)[0], swept),
        jax.tree.map(lambda a: np.asarray(a)[2], swept),
    )
    by_member, mean = ensemble.predict_ensemble(trained, X, X, config=config)
    by_member_sharded, mean_sharded = ensemble.predict_ensemble(
        trained_sharded, X, X, config=config, layout=layout
    )
    out["predict_member_shape"] = list(by_member_sharded.shape)
    out["predict_sharded_vs_unsharded"] = float(
        np.abs(np.asarray(mean) - np.asarray(mean_sharded)).max()
    )
    logits = np.log(np.asarray(by_member)) - np.log1p(-np.asarray(by_member))
    manual = 1 / (1 + np.exp(-logits.mean(axis=0)))
    out["mean_logit_vs_numpy"] = float(np.abs(np.asarray(mean) - manual).max())
    return out


def _rss_anon() -> int:
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith("RssAnon:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no RssAnon in /proc/self/status")


def memmap_checks(tmp, count="100000"):
    """A memmap stream far larger than the chunk budget trains in bounded anonymous memory."""
    from gln_jax import init, make_config
    from gln_jax.api._streaming import array_chunks, fit_chunks
    from gln_jax.api.jax_engine import JaxEngine

    count, width, chunk = int(count), 64, 4096
    config = make_config([4, 4, 1], width)
    rng = np.random.default_rng(3)
    x_path, y_path = os.path.join(tmp, "x.f32"), os.path.join(tmp, "y.i32")
    X = np.memmap(x_path, np.float32, "w+", shape=(count, width))
    y = np.memmap(y_path, np.int32, "w+", shape=(count,))
    for start in range(0, count, 65536):  # written a block at a time too
        stop = min(start + 65536, count)
        block = rng.uniform(size=(stop - start, width)).astype(np.float32)
        X[start:stop] = block
        y[start:stop] = block[:, 0] > 0.5
    X.flush()
    y.flush()
    del X, y
    X = np.memmap(x_path, np.float32, "r", shape=(count, width))
    y = np.memmap(y_path, np.int32, "r", shape=(count,))
    engine = JaxEngine(config)
    state = init(jax.random.key(0), config)
    # Warm-up on a prefix with the same piece shapes (full pieces, then the last one's length).
    tail = count % chunk
    warm = chunk + tail
    fit_chunks(
        engine, state, array_chunks(X[:warm], y[:warm], chunk), learning_rate=1e-2, chunk_size=chunk
    )
    baseline, peak, done = _rss_anon(), [0], threading.Event()

    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], _rss_anon())
            time.sleep(0.002)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    started = time.perf_counter()
    trained = fit_chunks(
        engine, state, array_chunks(X, y, chunk), learning_rate=1e-2, chunk_size=chunk
    )
    seconds = time.perf_counter() - started
    done.set()
    sampler.join()
    peak[0] = max(peak[0], _rss_anon())
    return {
        "stream_bytes": count * width * 4,
        "chunk_bytes": chunk * width * 4,
        "peak_growth_bytes": peak[0] - baseline,
        "baseline_anon_bytes": baseline,
        "step": int(trained.step),
        "seconds": seconds,
    }


def multihost_checks(tmp, process_id, port, reference_path):
    """One of two processes (four devices each) training one class-sharded model."""
    jax.distributed.initialize(
        f"127.0.0.1:{port}",
        num_processes=2,
        process_id=int(process_id),
        initialization_timeout=60,
    )
    jax.config.update("jax_enable_x64", True)
    from gln_jax import init, make_config
    from gln_jax.core import _sharding as sharding

    config = make_config([8, 4, 1], 16, num_classes=10, dtype="float64")
    mesh = sharding.make_mesh()  # all 8 devices of both processes
    X, y = _data(200, 16, 10, seed=4)
    layout = sharding.class_sharding(config, mesh)
    # Every process draws the same reference state and places only its own devices' classes.
    state = sharding.shard_state(init(jax.random.key(0), config), layout)
    local_classes = sorted({s.index[0].start for s in state.layers[0].weights.addressable_shards})
    trained, p_train = sharding.fit_sharded(
        state, X, X, y, np.full(200, 0.02), layout=layout, batch_size=2, chunk_size=64
    )
    predictions = sharding.to_host(sharding.predict_sharded(trained, X, X, layout=layout))
    reference = np.load(reference_path)
    out = {
        "process": jax.process_index(),
        "processes": jax.process_count(),
        "global_devices": len(jax.devices()),
        "local_devices": len(jax.local_devices()),
        "local_shard_starts": local_classes,
        "train_outputs_vs_single": float(np.abs(p_train - reference["train"]).max()),
        "predict_vs_single": float(np.abs(predictions - reference["predict"]).max()),
        "step": int(sharding.to_host(trained.step)),
    }
    jax.distributed.shutdown()
    return out


def multihost_reference(tmp, path):
    """The single-process (one device) run the two processes must reproduce."""
    jax.config.update("jax_enable_x64", True)
    from gln_jax import batch_apply, fit_stream, init, make_config

    config = make_config([8, 4, 1], 16, num_classes=10, dtype="float64")
    X, y = _data(200, 16, 10, seed=4)
    state = init(jax.random.key(0), config)
    trained, p = fit_stream(
        state, X, X, y, np.full(200, 0.02), config=config, batch_size=2, chunk_size=64
    )
    np.savez(path, train=p, predict=np.asarray(batch_apply(trained, X, X, config=config)))
    return {"saved": path}


GROUPS = {
    "sharding": sharding_checks,
    "ensemble": ensemble_checks,
    "memmap": memmap_checks,
    "multihost": multihost_checks,
    "multihost_reference": multihost_reference,
}

if __name__ == "__main__":
    group, tmp, *args = sys.argv[1:]
    result = GROUPS[group](tmp, *args)
    print("RESULT " + json.dumps(result), flush=True)
