"""The fused CPU kernel equals the sequential ``scan_update`` step by step, and falls back."""

import functools
import logging
import os
from pathlib import Path

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gln_jax
from gln_jax import make_config
from gln_jax.core import kernel, stream
from gln_jax.core.gaussian_types import make_gaussian_config
from gln_jax.core.kernel import build, library, online

WIDTH, STEPS, REAL = 12, 48, 43  # the last 5 examples are masked out (padding)


@pytest.fixture(autouse=True)
def kernel_on(monkeypatch):
    """Every test starts with the kernel switched on (whatever the caller's environment)."""
    monkeypatch.delenv(kernel.online.SWITCH, raising=False)


def _config(sizes, classes, *, dtype="float64", bias=True, context_bias=True, m=1):
    return make_config(
        sizes,
        WIDTH,
        context_map_size=m,
        num_classes=classes,
        bias=bias,
        context_bias=context_bias,
        dtype=dtype,
    )


def _stream(config, rate, seed=0, *, width=WIDTH, steps=STEPS, pool=16):
    """A stream drawn from ``pool`` examples (rows are shared), rates varying per step, the
    last ``STEPS - REAL`` masked."""
    rng = np.random.default_rng(seed)
    examples = rng.random((pool, width))
    pick = rng.integers(0, pool, steps)
    x = examples[pick].astype(config.dtype)
    y = rng.integers(0, config.num_classes, steps)
    rates = (rate * rng.uniform(0.2, 1.0, steps)).astype(config.dtype)
    return x, y, rates, np.arange(steps) < steps - (STEPS - REAL)


_SCAN = jax.jit(gln_jax.scan_update, static_argnames="config")
_KERNEL = jax.jit(kernel.kernel_scan_update, static_argnames=("config", "threads"))


def _both(config, rate, threads=2, seed=0):
    state = gln_jax.init(jax.random.key(seed), config)
    x, y, rates, mask = _stream(config, rate, seed)
    want = _SCAN(state, x, x, y, rates, config=config, mask=mask)
    got = _KERNEL(state, x, x, y, rates, config=config, mask=mask, threads=threads)
    return got, want


def _weights(state):
    return [np.asarray(layer.weights) for layer in state.layers]


CASES = {
    "10 classes, 3 layers, shared rows": (([4, 3, 1], 10), {}, 0.2),
    "binary, 1 layer, no bias, no context bias": (
        ([1], 2),
        dict(bias=False, context_bias=False, m=2),
        0.3,
    ),
    "binary, 3 layers, no bias": (([3, 2, 1], 2), dict(bias=False), 0.2),
    "10 classes, 1 layer, no context bias": (([1], 10), dict(context_bias=False, m=2), 0.3),
    "3 classes, weight clip fires": (([4, 3, 1], 3), {}, 30.0),
}


@pytest.mark.parametrize("name", list(CASES))
def test_kernel_equals_scan_update_in_float64(compiled, x64, name):
    (sizes, classes), options, rate = CASES[name]
    config = _config(sizes, classes, **options)
    (state, p), (want_state, want_p) = _both(config, rate)
    assert p.dtype == jnp.float64 and p.shape == (STEPS, config.num_models)
    # the prediction before every update, so every intermediate state, agrees
    np.testing.assert_allclose(np.asarray(p)[:REAL], np.asarray(want_p)[:REAL], rtol=0, atol=1e-12)
    for got, want in zip(_weights(state), _weights(want_state), strict=True):
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)
    assert int(state.step) == int(want_state.step) == REAL
    first = _weights(want_state)[0]
    clipped = np.max(np.abs(first)) == config.weight_clipping
    assert clipped == (rate > 1), "the clipping case must clip, the others must not"
    start = _weights(gln_jax.init(jax.random.key(0), config))[0]
    assert np.sum(first != start) > 0


def _widened(state):
    """A float32 state in float64 (the same values): the start of a float64 truth."""
    return jax.tree.map(lambda a: a.astype(jnp.float64) if a.dtype == jnp.float32 else a, state)


def _assert_float32_rule(got_want_truth):
    """The port harness's float32 rule on ``(got, want, truth)`` triples: 2e-5 relative, 2e-6
    absolute, plus four times the reference's own rounding error against the float64 truth."""
    for got, want, truth in got_want_truth:
        got, want, truth = (np.asarray(a, np.float64) for a in (got, want, truth))
        allowed = 2e-6 + 2e-5 * np.abs(want) + 4 * np.abs(want - truth)
        assert np.all(np.abs(got - want) <= allowed), np.max(np.abs(got - want))


_SCAN_BATCHES = jax.jit(stream.scan_batch_update, static_argnames="config")
_KERNEL_BATCHES = jax.jit(
    kernel.kernel_scan_update, static_argnames=("config", "threads", "batch_size")
)


def _batches(config, rate, batch, threads=2):
    """A stream cut into whole batches (the last one part padding), by both routes."""
    state = gln_jax.init(jax.random.key(0), config)
    x, y, rates, mask = _stream(config, rate)
    steps = STEPS - STEPS % batch
    x, y, rates, mask = x[:steps], y[:steps], rates[:steps], mask[:steps]
    assert not mask[-1], "the last batch must hold padding"

    def cut(a):
        return a.reshape(-1, batch, *a.shape[1:])

    want = _SCAN_BATCHES(state, cut(x), cut(x), cut(y), cut(rates), config=config, mask=cut(mask))
    got = _KERNEL_BATCHES(
        state, x, x, y, rates, config=config, mask=mask, threads=threads, batch_size=batch
    )
    contexts = gln_jax.core.gating.batch_context_indices(state.layers, x, config=config)
    return got, want, mask, [np.asarray(cut(c)) for c in contexts]


@pytest.mark.parametrize("batch", [2, 5, 16])
@pytest.mark.parametrize("name", list(CASES))
def test_kernel_batches_equal_scan_batch_update_in_float64(compiled, x64, name, batch):
    """Batch semantics in one kernel call: every example of a batch predicted with the weights
    from before the batch, the deltas of rows that several examples of a batch hit added up,
    the touched rows clipped once; the last batch's masked examples add nothing."""
    (sizes, classes), options, rate = CASES[name]
    config = _config(sizes, classes, **options)
    (state, p), (want_state, want_p), mask, contexts = _batches(config, rate, batch)
    real = int(mask.sum())
    want_p = np.asarray(want_p).reshape(-1, config.num_models)
    np.testing.assert_allclose(np.asarray(p)[:real], want_p[:real], rtol=0, atol=1e-12)
    for got, want in zip(_weights(state), _weights(want_state), strict=True):
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)
    assert int(state.step) == int(want_state.step) == real
    # a row hit twice within one batch (its deltas add up before the clip)
    first = contexts[0]  # [S, B, C, K]
    shared = [
        len(np.unique(first[s, :, c, k])) < batch
        for s in range(first.shape[0])
        for c in range(first.shape[2])
        for k in range(first.shape[3])
    ]
    assert any(shared)
    clipped = np.max(np.abs(_weights(want_state)[0])) == config.weight_clipping
    assert clipped == (rate > 1), "the clipping case must clip, the others must not"


def test_kernel_batches_in_float32_and_on_any_thread_count(compiled, x64):
    """float32 within the port harness's rule against XLA's batches (relative to a float64
    truth), and the same bits whatever the thread count."""
    config = _config([4, 3, 1], 10, dtype="float32")
    (state, p), (want_state, want_p), mask, _ = _batches(config, 0.2, 8, threads=1)
    # the float64 truth from the same float32 stream and start
    x, y, rates, _ = _stream(config, 0.2)
    steps = mask.shape[0]

    def wide(a):
        return np.asarray(a, np.float64)[:steps].reshape(-1, 8, *np.shape(a)[1:])

    truth_state, truth_p = _SCAN_BATCHES(
        _widened(gln_jax.init(jax.random.key(0), config)),
        wide(x),
        wide(x),
        y[:steps].reshape(-1, 8),
        wide(rates),
        config=config._replace(dtype="float64"),
        mask=mask.reshape(-1, 8),
    )
    truth_p = np.asarray(truth_p).reshape(-1, config.num_models)
    real = int(mask.sum())
    width = config.num_models
    _assert_float32_rule(
        [(np.asarray(p)[:real], np.asarray(want_p).reshape(-1, width)[:real], truth_p[:real])]
        + list(zip(_weights(state), _weights(want_state), _weights(truth_state), strict=True))
    )
    for threads in (2, 3):  # the classes split otherwise: the same bits
        (other, other_p), _, _, _ = _batches(config, 0.2, 8, threads=threads)
        np.testing.assert_array_equal(np.asarray(other_p), np.asarray(p))
        for got, want in zip(_weights(other), _weights(state), strict=True):
            np.testing.assert_array_equal(got, want)


def test_a_batch_of_one_is_the_online_step(compiled, x64):
    config = _config([4, 3, 1], 10)
    state = gln_jax.init(jax.random.key(0), config)
    x, y, rates, mask = _stream(config, 0.2)
    online = _KERNEL(state, x, x, y, rates, config=config, mask=mask, threads=2)
    batches = _KERNEL_BATCHES(
        state, x, x, y, rates, config=config, mask=mask, threads=2, batch_size=1
    )
    chex.assert_trees_all_equal(online, batches)


def test_batch_sizes_that_do_not_divide_the_chunk_are_refused(compiled):
    config = _config([2, 1], 3, dtype="float32")
    state = gln_jax.init(jax.random.key(0), config)
    x, y, rates, _ = _stream(config, 0.1)
    with pytest.raises(Exception, match="batch_size 5 does not divide the 48 steps"):
        jax.block_until_ready(
            _KERNEL_BATCHES(state, x, x, y, rates, config=config, threads=1, batch_size=5)
        )


def test_float32_within_the_parity_tolerance(compiled, x64):
    config = _config([4, 3, 1], 10, dtype="float32")
    (state, p), (want_state, want_p) = _both(config, 0.2)
    truth_config = config._replace(dtype="float64")
    x, y, rates, mask = _stream(config, 0.2)
    truth_state, truth_p = _SCAN(
        _widened(gln_jax.init(jax.random.key(0), config)),
        x.astype(np.float64),
        x.astype(np.float64),
        y,
        rates.astype(np.float64),
        config=truth_config,
        mask=mask,
    )
    assert p.dtype == jnp.float32
    _assert_float32_rule(
        [(p, want_p, truth_p)]
        + list(zip(_weights(state), _weights(want_state), _weights(truth_state), strict=True))
    )


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_results_do_not_depend_on_the_thread_count(compiled, x64, dtype):
    config = _config([4, 3, 1], 10, dtype=dtype)
    runs = [_both(config, 0.2, threads=n)[0] for n in (1, 3, 16)]
    for state, p in runs[1:]:
        np.testing.assert_array_equal(np.asarray(p), np.asarray(runs[0][1]))
        for got, want in zip(_weights(state), _weights(runs[0][0]), strict=True):
            np.testing.assert_array_equal(got, want)


# A first layer of 101 inputs and a hidden one of 41: both wider than 32 and not whole vectors,
# so a call of at least 16 steps per row (LONG against 4 rows) runs on the kernel's aligned,
# padded working copies of the tables and tracks row bounds (updates that skip a clip that
# cannot fire); a call of a few steps does neither.
WIDE, LONG = 100, 160


@pytest.mark.parametrize("batch", [1, 4])
@pytest.mark.parametrize("rate", [0.05, 30.0], ids=["clip rarely fires", "clip fires"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_long_calls_give_the_bits_of_short_calls(compiled, x64, dtype, rate, batch):
    """One call over the stream equals one call per batch bit for bit: the working copies and
    the skipped clips change no bit, in float32 and float64, online and in batches."""
    config = make_config([40, 3, 1], WIDE, context_map_size=2, num_classes=3, dtype=dtype)
    state = gln_jax.init(jax.random.key(3), config)
    x, y, rates, _ = _stream(config, rate, seed=3, width=WIDE, steps=LONG, pool=24)
    long_state, long_p = _KERNEL_BATCHES(
        state, x, x, y, rates, config=config, threads=2, batch_size=batch
    )
    short, ps = state, []
    for t in range(0, LONG, batch):
        part = slice(t, t + batch)
        short, p = _KERNEL_BATCHES(
            short,
            x[part],
            x[part],
            y[part],
            rates[part],
            config=config,
            threads=2,
            batch_size=batch,
        )
        ps.append(np.asarray(p))
    chex.assert_trees_all_equal(long_state, short)
    np.testing.assert_array_equal(np.asarray(long_p), np.concatenate(ps))
    fired = [np.max(np.abs(w)) == config.weight_clipping for w in _weights(long_state)[:2]]
    assert fired == ([True, True] if rate > 1 else [False, False])


def test_long_calls_equal_scan_update_in_float64(compiled, x64):
    """The working copies and the row bounds (first and hidden layer), against the reference:
    within 1e-12 at every step, a low clip firing (high rates make float64 streams this wide drift
    apart by more than 1e-12 in either route)."""
    config = make_config(
        [40, 3, 1], WIDE, context_map_size=2, num_classes=3, dtype="float64", weight_clipping=0.3
    )
    state = gln_jax.init(jax.random.key(3), config)
    x, y, rates, _ = _stream(config, 0.1, seed=3, width=WIDE, steps=LONG, pool=24)
    got_state, got_p = _KERNEL(state, x, x, y, rates, config=config, threads=2)
    want_state, want_p = _SCAN(state, x, x, y, rates, config=config)
    np.testing.assert_allclose(np.asarray(got_p), np.asarray(want_p), rtol=0, atol=1e-12)
    for got, want in zip(_weights(got_state), _weights(want_state), strict=True):
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)
    assert np.max(np.abs(_weights(want_state)[0])) == config.weight_clipping


def _count_kernel_chunks(monkeypatch):
    """Records every chunk ``fit_stream`` runs in the kernel (``kernel_threads > 0``)."""
    calls = []
    original = stream._fit_chunk

    def counted(*args, **kwargs):
        if kwargs["kernel_threads"]:
            calls.append(kwargs["kernel_threads"])
        return original(*args, **kwargs)

    monkeypatch.setattr(stream, "_fit_chunk", counted)
    return calls


def test_fit_stream_runs_in_the_kernel_chunk_by_chunk(compiled, x64, monkeypatch):
    config = _config([4, 3, 1], 10)
    state = gln_jax.init(jax.random.key(0), config)
    x, y, rates, _ = _stream(config, 0.2)
    calls = _count_kernel_chunks(monkeypatch)
    # chunks of 16: 43 examples end in a padded chunk
    got_state, got_p = gln_jax.fit_stream(
        state, x[:REAL], x[:REAL], y[:REAL], rates[:REAL], config=config, chunk_size=16
    )
    assert len(calls) == 3
    want_state, want_p = _SCAN(state, x[:REAL], x[:REAL], y[:REAL], rates[:REAL], config=config)
    np.testing.assert_allclose(got_p, np.asarray(want_p), rtol=0, atol=1e-12)
    for got, want in zip(_weights(got_state), _weights(want_state), strict=True):
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)
    assert int(got_state.step) == REAL
    # the caller's state is intact (the chunks donate a copy)
    np.testing.assert_array_equal(
        _weights(state)[0], _weights(gln_jax.init(jax.random.key(0), config))[0]
    )


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_an_ensemble_runs_in_one_call_and_equals_its_members_alone(compiled, x64, dtype):
    """Members flattened into the class axis, each with its own rates (a sweep): every member
    equals its own kernel run bit for bit, and in float64 ``scan_update`` within 1e-10 (one
    member's rates reach 40 and clip, which amplifies the kernel's other summation order)."""
    from gln_jax.core import _ensemble as ensemble

    config = _config([4, 3, 1], 3, dtype=dtype)
    x, y, _, _ = _stream(config, 0.2)
    x, y = x[:REAL], y[:REAL]
    keys = jax.random.split(jax.random.key(1), 4)
    rng = np.random.default_rng(5)
    rates = (rng.uniform(0.05, 0.4, (4, REAL)) * [[1], [2], [0.5], [100]]).astype(dtype)  # clips
    chunks = []
    original = ensemble._chunk_fn

    def recorded(config, batch_size, layout, kernel_threads=0, shared_gates=False):
        chunks.append((kernel_threads, shared_gates))
        return original(config, batch_size, layout, kernel_threads, shared_gates)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(ensemble, "_chunk_fn", recorded)
        states = ensemble.init_ensemble(keys, config)
        trained, p = ensemble.fit_ensemble(states, x, x, y, rates, config=config, chunk_size=16)
    assert chunks and all(threads for threads, _ in chunks), (
        "the ensemble did not run in the kernel"
    )
    assert not any(shared for _, shared in chunks), "members of four keys do not share gates"
    assert p.shape == (4, REAL, 3) and [int(s) for s in trained.step] == [REAL] * 4
    for e, key in enumerate(keys):
        state = gln_jax.init(key, config)
        member = jax.tree.map(lambda a, e=e: a[e], trained)
        # bit for bit the member's own kernel run (what its own fit_stream runs)
        want_state, want_p = _KERNEL(state, x, x, y, rates[e], config=config, threads=1)
        np.testing.assert_array_equal(p[e], np.asarray(want_p))
        for got, want in zip(_weights(member), _weights(want_state), strict=True):
            np.testing.assert_array_equal(got, want)
        if dtype == "float64":  # and the reference's scan_update
            want_state, want_p = _SCAN(state, x, x, y, rates[e], config=config)
            np.testing.assert_allclose(p[e], np.asarray(want_p), rtol=0, atol=1e-10)
            for got, want in zip(_weights(member), _weights(want_state), strict=True):
                np.testing.assert_allclose(got, want, rtol=0, atol=1e-10)
    clipped_member = jax.tree.map(lambda a: a[3], trained)
    assert np.max(np.abs(_weights(clipped_member)[0])) == config.weight_clipping


def test_an_ensemble_learns_in_batches_in_the_kernel(compiled, x64):
    """fit_ensemble(batch_size=4) runs in the kernel; each member equals the reference's
    batches (scan_batch_update) with its own rates within 1e-12 in float64."""
    from gln_jax.core import _ensemble as ensemble

    config = _config([4, 3, 1], 3)
    x, y, _, _ = _stream(config, 0.2)
    x, y = x[:REAL], y[:REAL]  # 43 examples: the last batch has three
    keys = jax.random.split(jax.random.key(2), 3)
    rates = np.array([[0.05], [0.2], [0.5]]) * np.ones(REAL)
    chunks = []
    original = ensemble._chunk_fn

    def recorded(config, batch_size, layout, kernel_threads=0, shared_gates=False):
        chunks.append(kernel_threads)
        return original(config, batch_size, layout, kernel_threads, shared_gates)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(ensemble, "_chunk_fn", recorded)
        states = ensemble.init_ensemble(keys, config)
        trained, p = ensemble.fit_ensemble(states, x, x, y, rates, config=config, batch_size=4)
    assert chunks and all(chunks), "the ensemble's batches did not run in the kernel"
    pad = -REAL % 4
    mask = (np.arange(REAL + pad) < REAL).reshape(-1, 4)

    def cut(a, fill):
        a = np.concatenate([a, np.full((pad, *a.shape[1:]), fill, a.dtype)])
        return a.reshape(-1, 4, *a.shape[1:])

    for e, key in enumerate(keys):
        want_state, want_p = _SCAN_BATCHES(
            gln_jax.init(key, config),
            cut(x, 0.5),
            cut(x, 0.0),
            cut(y, 0),
            cut(rates[e], 0.0),
            config=config,
            mask=mask,
        )
        want_p = np.asarray(want_p).reshape(-1, 3)[:REAL]
        np.testing.assert_allclose(p[e], want_p, rtol=0, atol=1e-12)
        member = jax.tree.map(lambda a, e=e: a[e], trained)
        for got, want in zip(_weights(member), _weights(want_state), strict=True):
            np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)
        assert int(member.step) == REAL


def _thresholds_at_projections(states, x):
    """``states`` with every threshold set to its hyperplane's projection of ``x`` (rounded to
    the dtype from float64): each gate of that example is decided by the last bits of a sum,
    so any other summation order than a member's own fit picks other rows somewhere."""
    layers = []
    for layer in states.layers:
        planes = np.asarray(layer.hyperplanes, np.float64)
        exact = planes @ np.asarray(x, np.float64)
        layers.append(layer._replace(hyperplane_bias=exact.astype(layer.hyperplane_bias.dtype)))
    return states._replace(layers=tuple(layers))


@pytest.mark.parametrize("sweep", [False, True], ids=["keys", "sweep"])
def test_ensemble_members_equal_their_own_fits_bit_for_bit_in_float32(compiled, sweep):
    """An ensemble's gates are each member's own product (a sweep's: member 0's, shared), so in
    float32, with thresholds on the edge of rounding, every member equals its own
    ``fit_stream`` bit for bit (a vmapped, batched product picked other rows here)."""
    from gln_jax.core import _ensemble as ensemble

    width, members, steps = 784, 8, 64
    config = make_config([4, 1], width, context_map_size=4, num_classes=5, dtype="float32")
    rng = np.random.default_rng(3)
    x = rng.random((steps, width)).astype(np.float32)
    x[1::2] = x[0]  # every other example sits on the thresholds
    y = rng.integers(0, 5, steps)
    rates = np.geomspace(1e-3, 1e-1, members).astype(np.float32)[:, None].repeat(steps, axis=1)
    if sweep:
        states = ensemble.init_sweep(jax.random.key(2), config, members)
    else:
        states = ensemble.init_ensemble(jax.random.split(jax.random.key(2), members), config)
    states = _thresholds_at_projections(states, x[0])
    assert ensemble.shares_gates(states) == sweep
    trained, p = ensemble.fit_ensemble(states, x, x, y, rates, config=config)
    for e in range(members):
        alone = jax.tree.map(lambda a, e=e: a[e], states)
        want_state, want_p = gln_jax.fit_stream(alone, x, x, y, rates[e], config=config)
        np.testing.assert_array_equal(p[e], np.asarray(want_p))
        member = jax.tree.map(lambda a, e=e: a[e], trained)
        for got, want in zip(_weights(member), _weights(want_state), strict=True):
            np.testing.assert_array_equal(got, want)


def test_rates_of_the_wrong_length_are_refused(compiled):
    config = _config([1], 3, dtype="float32")
    weights = tuple(layer.weights for layer in gln_jax.init(jax.random.key(0), config).layers)
    contexts = [jnp.zeros((2, 3, 1), jnp.int32)]
    x0 = jnp.zeros((2, WIDTH + 1), jnp.float32)
    targets = jnp.zeros((2, 3), jnp.float32)
    call = functools.partial(online.online_fit, weights, x0, contexts, targets, config=config)
    for good in (jnp.zeros((2,), jnp.float32), jnp.zeros((2, 3), jnp.float32)):
        jax.block_until_ready(call(good))
    with pytest.raises(jax.errors.JaxRuntimeError, match="rates must be"):
        jax.block_until_ready(call(jnp.zeros((2, 2), jnp.float32)))


_APPLY = jax.jit(gln_jax.batch_apply, static_argnames="config")
_KERNEL_APPLY = jax.jit(kernel.kernel_batch_apply, static_argnames=("config", "threads"))


@pytest.mark.parametrize("name", list(CASES))
def test_kernel_inference_equals_batch_apply_in_float64(compiled, x64, name):
    """Forward only, on a trained state (rows differ), with outputs clipped at both ends."""
    (sizes, classes), options, rate = CASES[name]
    config = _config(sizes, classes, **options)
    (trained, _), _ = _both(config, rate)
    rng = np.random.default_rng(9)
    x = rng.random((37, WIDTH))
    x[:3] = np.eye(3, WIDTH) * 40.0 - 20.0  # saturated inputs: outputs at the clip
    # the trained state, and one with every weight pushed to the clip (saturated neurons:
    # the clipped branch of every layer)
    loud = trained._replace(
        layers=tuple(
            layer._replace(
                weights=jnp.clip(
                    layer.weights * 50.0, -config.weight_clipping, config.weight_clipping
                )
            )
            for layer in trained.layers
        )
    )
    eps = config.pred_clipping
    for state in (trained, loud):
        want = np.asarray(_APPLY(state, x, x, config=config))
        for threads in (1, 3):
            got = np.asarray(_KERNEL_APPLY(state, x, x, config=config, threads=threads))
            assert got.shape == want.shape == (37, config.num_models)
            np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)
    assert np.any(np.isclose(want, eps) | np.isclose(want, 1 - eps)), "no output was clipped"


def test_kernel_inference_in_float32_within_rounding(compiled):
    config = _config([4, 3, 1], 10, dtype="float32")
    (trained, _), _ = _both(config, 0.2)
    x = np.random.default_rng(4).random((50, WIDTH), dtype=np.float32)
    before = [w.copy() for w in _weights(trained)]  # copies: the kernel reads in place
    want = np.asarray(_APPLY(trained, x, x, config=config))
    got = np.asarray(_KERNEL_APPLY(trained, x, x, config=config, threads=2))
    np.testing.assert_allclose(got, want, rtol=2e-5, atol=2e-6)
    for old, now in zip(before, _weights(trained), strict=True):  # predicting writes nothing
        np.testing.assert_array_equal(now, old)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_kernel_inference_at_the_edges_of_the_clip(compiled, x64, dtype):
    """Predicting only, a hidden neuron far inside the clip passes z on without computing p;
    near either bound p is computed and compared. Hidden z here sweep both bounds densely
    (within and around that margin), so a wrong decision would move the output far beyond
    rounding."""
    config = make_config([3, 1], 1, context_map_size=0, num_classes=2, dtype=dtype)
    eps = config.pred_clipping
    bounds = [np.log(eps) - np.log1p(-eps), np.log1p(-eps) - np.log(eps)]
    z = np.concatenate([b + np.linspace(-0.03, 0.03, 601) for b in bounds])
    x = (1 / (1 + np.exp(-z)))[:, None].astype(dtype)  # input logits near both bounds
    state = gln_jax.init(jax.random.key(0), config)
    first = np.zeros((1, 3, 1, 2), dtype)
    first[0, :, 0, 0] = [0.995, 1.0, 1.005]  # below, on and above each bound
    last = np.array([0.7, -0.4, 0.3, 0.1], dtype).reshape(1, 1, 1, 4)
    state = state._replace(
        layers=(
            state.layers[0]._replace(weights=jnp.asarray(first)),
            state.layers[1]._replace(weights=jnp.asarray(last)),
        )
    )
    want = np.asarray(_APPLY(state, x, x, config=config))
    got = np.asarray(_KERNEL_APPLY(state, x, x, config=config, threads=1))
    if dtype == "float64":
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)
    else:
        np.testing.assert_allclose(got, want, rtol=2e-5, atol=2e-6)


def test_facade_loop_and_inference_same_with_and_without_the_kernel(monkeypatch, compiled):
    """The per-call step (one example), per-call batch updates and batched inference in the
    kernel, against XLA."""
    rng = np.random.default_rng(6)
    X, y = rng.random((60, WIDTH)).astype(np.float32), rng.integers(0, 3, 60)
    results = {}
    for switch in ("0", "1"):
        monkeypatch.setenv(kernel.online.SWITCH, switch)
        model = gln_jax.GLN(
            "jax", [4, 3, 1], WIDTH, context_map_size=2, num_classes=3, seed=0, learning_rate=0.1
        )
        loop = [model.predict(X[i], target=y[i : i + 1], return_probs=True) for i in range(40)]
        # batch updates: 5 examples (one thread), then 16 (the threaded kernel call)
        loop += [
            model.predict(X[s : s + n], target=y[s : s + n], return_probs=True)
            for s, n in ((40, 5), (44, 16))
        ]
        batch = model.predict(X, return_probs=True)  # 60 examples: the threaded kernel call
        results[switch] = (np.concatenate(loop), batch, _weights(model.state), model.step)
        assert model._runner.engine._kernel == (switch == "1")
    (l0, b0, w0, s0), (l1, b1, w1, s1) = results["0"], results["1"]
    np.testing.assert_allclose(l1, l0, rtol=2e-5, atol=2e-6)
    np.testing.assert_allclose(b1, b0, rtol=2e-5, atol=2e-6)
    for got, want in zip(w1, w0, strict=True):
        np.testing.assert_allclose(got, want, rtol=2e-5, atol=2e-6)
    assert s1 == s0 == 61


@pytest.mark.parametrize("batch_size", [1, 4])
def test_facade_fit_same_with_and_without_the_kernel(compiled, monkeypatch, batch_size):
    rng = np.random.default_rng(3)
    X, y = rng.random((STEPS, WIDTH)).astype(np.float32), rng.integers(0, 3, STEPS)
    calls = _count_kernel_chunks(monkeypatch)
    results = {}
    for switch in ("0", "1"):
        monkeypatch.setenv(kernel.online.SWITCH, switch)
        model = gln_jax.GLN(
            "jax", [4, 3, 1], WIDTH, context_map_size=1, num_classes=3, seed=0, learning_rate=0.05
        )
        classes = model.fit(X, y, batch_size=batch_size)
        probs = model.predict(X, return_probs=True)
        results[switch] = (classes, probs, _weights(model.state), model.step)
        assert len(calls) == int(switch)
    (c0, p0, w0, s0), (c1, p1, w1, s1) = results["0"], results["1"]
    np.testing.assert_array_equal(c1, c0)
    np.testing.assert_allclose(p1, p0, rtol=2e-5, atol=2e-6)
    for got, want in zip(w1, w0, strict=True):
        np.testing.assert_allclose(got, want, rtol=2e-5, atol=2e-6)
    assert s1 == s0 == STEPS


def test_switch_rule(compiled, monkeypatch):
    config = _config([4, 3, 1], 10, dtype="float32")
    state = gln_jax.init(jax.random.key(0), config)
    assert kernel.available()
    assert kernel.use_kernel(config, state)
    assert kernel.use_kernel(config, jax.tree.map(np.asarray, state))
    assert kernel.use_kernel(config, state, batch_size=32)  # batch updates run there too
    assert not kernel.use_kernel(config, state, batch_size=0)
    gaussian = make_gaussian_config([4, 1], WIDTH)
    assert not kernel.use_kernel(gaussian, None)  # the kernel is the Bernoulli family's
    monkeypatch.setenv(kernel.online.SWITCH, "0")
    assert not kernel.available()
    assert not kernel.use_kernel(config, state)
    assert 1 <= kernel.threads(config) <= config.num_models


def test_fallback_without_a_compiler(monkeypatch, tmp_path, caplog, x64):
    config = _config([4, 3, 1], 10)
    state = gln_jax.init(jax.random.key(0), config)
    x, y, rates, _ = _stream(config, 0.2)
    monkeypatch.setenv(kernel.online.SWITCH, "0")
    want_state, want_p = gln_jax.fit_stream(state, x, x, y, rates, config=config)
    monkeypatch.delenv(kernel.online.SWITCH)
    monkeypatch.setenv("CXX", str(tmp_path / "no-such-compiler"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    for name, fresh in [("_status", None), ("_path", None), ("_failure", None)]:
        monkeypatch.setattr(library, name, fresh)  # as in a fresh process
    monkeypatch.setattr(library, "_warned", False)
    with caplog.at_level(logging.DEBUG, logger="gln_jax.kernel"):
        assert not kernel.available()  # a question: no warning
        with pytest.warns(kernel.KernelFallbackWarning, match="no C\\+\\+ compiler found"):
            assert not kernel.use_kernel(config, state)
        got_state, got_p = gln_jax.fit_stream(state, x, x, y, rates, config=config)  # once
    assert [r.getMessage() for r in caplog.records if "unavailable" in r.getMessage()]
    np.testing.assert_array_equal(got_p, want_p)
    for got, want in zip(_weights(got_state), _weights(want_state), strict=True):
        np.testing.assert_array_equal(got, want)
    assert not (tmp_path / "cache").exists() or not list((tmp_path / "cache").rglob("*.so"))


def test_a_failed_build_leaves_nothing_in_the_cache(monkeypatch, tmp_path):
    fake = tmp_path / "broken-c++"
    fake.write_text(
        '#!/bin/sh\nif [ "$1" = "--version" ]; then echo fake 1.0; exit 0; fi\n'
        'echo "error: broken" >&2\nexit 1\n'
    )
    fake.chmod(0o755)
    monkeypatch.setenv("CXX", str(fake))
    with pytest.raises(build.BuildError, match="broken"):
        build.build(tmp_path / "cache")
    assert not [p for p in (tmp_path / "cache").iterdir() if p.name != build.LOCK_NAME]


def test_a_cached_build_is_reused(compiled, monkeypatch):
    path, _ = build.build()
    stamp = os.stat(path).st_mtime_ns
    commands = []
    run = build.subprocess.run

    def recorded(command, *args, **kwargs):
        commands.append(command)
        return run(command, *args, **kwargs)

    monkeypatch.setattr(build.subprocess, "run", recorded)
    again, compiled_now = build.build()
    assert again == path and not compiled_now
    assert os.stat(path).st_mtime_ns == stamp
    assert all("--version" in command for command in commands)  # no compilation
    assert path.parent == build.cache_dir()
    monkeypatch.setenv("XDG_CACHE_HOME", "/somewhere/else")
    assert build.cache_dir() == Path("/somewhere/else/gln_jax/kernels")


def test_out_of_range_contexts_are_refused(compiled):
    config = _config([4, 3, 1], 3, dtype="float32")
    state = gln_jax.init(jax.random.key(0), config)
    weights = tuple(layer.weights for layer in state.layers)
    contexts = [jnp.zeros((2, 3, k), jnp.int32) for k in config.layer_sizes]
    contexts[1] = contexts[1].at[1, 0, 0].set(config.num_contexts)  # one past the last row
    call = functools.partial(online.online_fit, config=config)
    x0 = jnp.zeros((2, WIDTH + 1), jnp.float32)
    targets, rates = jnp.zeros((2, 3), jnp.float32), jnp.zeros((2,), jnp.float32)
    with pytest.raises(jax.errors.JaxRuntimeError, match="out of range"):
        jax.block_until_ready(call(weights, x0, contexts, targets, rates))


def test_vmap_and_grad_are_refused_not_run(compiled):
    config = _config([1], 2, dtype="float32")
    state = gln_jax.init(jax.random.key(0), config)
    x, y, rates, mask = _stream(config, 0.1)
    fn = functools.partial(kernel.kernel_scan_update, config=config)
    with pytest.raises(NotImplementedError, match="vmap"):
        jax.vmap(lambda r: fn(state, x, x, y, r)[1])(jnp.stack([jnp.asarray(rates)] * 2))
    with pytest.raises(ValueError, match="cannot be differentiated"):
        jax.grad(lambda r: fn(state, x, x, y, r)[1].sum())(jnp.asarray(rates))
    assert stream.scan_update is gln_jax.scan_update  # the pure path grad users call


@pytest.mark.slow
def test_concurrent_first_builds_compile_once(compiled, tmp_path):
    """Two processes building into one fresh cache: one compiles, the other reuses its file."""
    import subprocess
    import sys

    script = (
        "import sys; from pathlib import Path; from gln_jax.core.kernel import build; "
        "path, compiled = build.build(Path(sys.argv[1])); print(int(compiled), path)"
    )
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", script, str(tmp_path)],
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        for _ in range(2)
    ]
    outputs = [proc.communicate(timeout=600)[0].split() for proc in procs]
    assert all(proc.returncode == 0 for proc in procs)
    assert sorted(int(out[0]) for out in outputs) == [0, 1]
    assert outputs[0][1] == outputs[1][1]
    built = [p for p in tmp_path.iterdir() if p.suffix == ".so"]
    assert [p.name for p in built] == [Path(outputs[0][1]).name]
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_the_gating_call_loads_the_kernel_when_it_is_a_process_first_call(compiled):
    """A fresh process whose first kernel call is the gating one: it builds or loads the
    kernel itself (XLA once refused it: no FFI handler registered)."""
    import subprocess
    import sys

    script = (
        "import jax, numpy as np, gln_jax; from gln_jax import make_config; "
        "from gln_jax.core.kernel import online; "
        "config = make_config([2, 1], 6, num_classes=3); "
        "state = gln_jax.init(jax.random.key(0), config); "
        "x = np.random.default_rng(0).random((5, 6), np.float32); "
        "print([np.asarray(i).shape for i in online.kernel_contexts("
        "state.layers, x, config=config)])"
    )
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=600
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.split("\n")[-2] == "[(5, 3, 2), (5, 3, 1)]"


# -- the kernel's gating call (gln_jax/core/kernel/gates.py) -------------------------------

_XLA_GATES = jax.jit(gln_jax.core.gating.batch_context_indices, static_argnames="config")
_KERNEL_GATES = jax.jit(online.kernel_contexts, static_argnames=("config", "threads", "members"))

# sizes, classes, context map size: every column count (classes * neurons * m) off a multiple
# of the kernel's 64-column passes, so the padding is always exercised
GATE_CASES = {
    "m=1": ([3, 1], 2, 1),
    "m=3, 3 layers": ([5, 2, 1], 3, 3),
    "m=4, 10 classes": ([4, 4, 1], 10, 4),
    "m=7, binary": ([2, 1], 2, 7),
}


def _sparse_examples(rng, batch, width, dtype):
    """Mostly zeros (as images are), signed values, and an all-zero example."""
    x = rng.normal(size=(batch, width))
    x[rng.random((batch, width)) < 0.7] = 0.0
    x[1 % batch] = 0.0
    return x.astype(dtype)


def _bits(indices, m):
    return np.stack([(np.asarray(indices) >> t) & 1 for t in range(m)], axis=-1)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name", list(GATE_CASES))
def test_kernel_gates_equal_xla_gates(compiled, x64, name, dtype):
    """Every batch size around the blocks of four, one and two threads; in float32 every gate
    whose projection is not within rounding of its offset (float64: every gate)."""
    sizes, classes, m = GATE_CASES[name]
    width = 40
    config = make_config(sizes, width, context_map_size=m, num_classes=classes, dtype=dtype)
    state = gln_jax.init(jax.random.key(1), config)
    rng = np.random.default_rng(0)
    for batch in (1, 3, 4, 5, 37):
        x = _sparse_examples(rng, batch, width, dtype)
        want = _XLA_GATES(state.layers, x, config=config)
        for threads in (1, 2):
            got = _KERNEL_GATES(state.layers, x, config=config, threads=threads)
            for layer, g, w in zip(state.layers, got, want, strict=True):
                assert g.shape == w.shape == (batch, config.num_models, layer.weights.shape[1])
                assert g.dtype == jnp.int32
                planes = np.asarray(layer.hyperplanes, np.float64)
                margin = np.abs(
                    np.einsum("ckmn,bn->bckm", planes, x.astype(np.float64))
                    - np.asarray(layer.hyperplane_bias, np.float64)
                )
                clear = margin > (1e-4 if dtype == "float32" else 0.0)
                np.testing.assert_array_equal(_bits(g, m)[clear], _bits(w, m)[clear])
                assert clear.mean() > 0.99


def test_kernel_gates_of_an_example_never_depend_on_its_batch(compiled):
    """Thresholds exactly on one example's projections (its every gate decided by the last
    bits of a sum): its indices are the same alone, at every place of a block of four, among
    other examples and on any thread count (the sums are its own, whatever shares the call)."""
    width = 784
    config = make_config([4, 4, 1], width, context_map_size=4, num_classes=10, dtype="float32")
    rng = np.random.default_rng(5)
    x = rng.random((23, width)).astype(np.float32)
    x[rng.random(x.shape) < 0.8] = 0.0  # image-like sparsity: unions differ between blocks
    state = _thresholds_at_projections(gln_jax.init(jax.random.key(4), config), x[0])
    alone = _KERNEL_GATES(state.layers, x[:1], config=config, threads=1)
    for place in range(6):  # places 0-3 of the first block, then of the second
        batch = np.concatenate([x[1 : 1 + place], x[:1], x[1 + place :]])
        for threads in (1, 2, 3):
            got = _KERNEL_GATES(state.layers, batch, config=config, threads=threads)
            for a, g in zip(alone, got, strict=True):
                np.testing.assert_array_equal(np.asarray(g)[place], np.asarray(a)[0])


def test_kernel_gates_of_an_ensemble_are_each_members_own(compiled):
    from gln_jax.core import _ensemble as ensemble

    config = make_config([3, 1], WIDTH, context_map_size=3, num_classes=4, dtype="float32")
    members = 5
    states = ensemble.init_ensemble(jax.random.split(jax.random.key(7), members), config)
    x = _sparse_examples(np.random.default_rng(2), 9, WIDTH, np.float32)
    got = _KERNEL_GATES(states.layers, x, config=config, threads=2, members=members)
    for e in range(members):
        layers = jax.tree.map(lambda a, e=e: a[e], states.layers)
        own = _KERNEL_GATES(layers, x, config=config, threads=1)
        for g, o in zip(got, own, strict=True):
            assert g.shape == (9, members * 4, o.shape[-1])
            np.testing.assert_array_equal(np.asarray(g)[:, e * 4 : (e + 1) * 4], o)


def test_kernel_gates_of_nan_and_inf_side_information_match_xla(compiled):
    config = make_config([3, 1], WIDTH, context_map_size=2, num_classes=3, dtype="float32")
    state = gln_jax.init(jax.random.key(0), config)
    x = _sparse_examples(np.random.default_rng(1), 6, WIDTH, np.float32)
    x[0, 3], x[2, 0], x[3, 5], x[3, 7] = np.nan, np.inf, np.inf, -np.inf
    want = _XLA_GATES(state.layers, x, config=config)
    got = _KERNEL_GATES(state.layers, x, config=config, threads=1)
    for g, w in zip(got, want, strict=True):
        np.testing.assert_array_equal(g, w)


def test_malformed_gate_matrices_are_refused(compiled):
    from gln_jax.core.kernel import gates

    config = make_config([3, 1], WIDTH, context_map_size=2, num_classes=3, dtype="float32")
    matrix = gates.gate_matrix(gln_jax.init(jax.random.key(0), config).layers)
    assert matrix.hyperplanes_t.shape == (WIDTH, 64)  # 3 classes * 4 neurons * 2 planes, padded
    x = np.ones((2, WIDTH), np.float32)
    jax.block_until_ready(gates.kernel_context_indices(matrix, x, config=config))
    unpadded = matrix._replace(
        hyperplanes_t=matrix.hyperplanes_t[:, :24], hyperplane_bias=matrix.hyperplane_bias[:24]
    )
    with pytest.raises(jax.errors.JaxRuntimeError, match="multiple of 64"):
        jax.block_until_ready(gates.kernel_context_indices(unpadded, x, config=config))
    with pytest.raises(jax.errors.JaxRuntimeError, match="C \\* K \\* H columns"):
        jax.block_until_ready(gates.kernel_context_indices(matrix, x, config=config, members=3))


def test_the_engine_keeps_one_gate_matrix_per_set_of_hyperplanes(compiled, monkeypatch):
    from gln_jax.api import jax_engine

    made = []
    real = jax_engine._gate_matrix
    monkeypatch.setattr(jax_engine, "_gate_matrix", lambda layers: made.append(1) or real(layers))
    rng = np.random.default_rng(8)
    X, y = rng.random((40, WIDTH)).astype(np.float32), rng.integers(0, 3, 40)
    model = gln_jax.GLN("jax", [4, 3, 1], WIDTH, context_map_size=2, num_classes=3, seed=0)
    for i in range(6):  # per-call training keeps the hyperplanes, so the matrix is kept too
        model.predict(X[i], target=y[i : i + 1])
    model.predict(X)
    assert len(made) == 1
    other = gln_jax.GLN("jax", [4, 3, 1], WIDTH, context_map_size=2, num_classes=3, seed=1)
    model.state = other.state  # other gates: a new matrix, and predictions follow them
    np.testing.assert_array_equal(
        model.predict(X, return_probs=True), other.predict(X, return_probs=True)
    )
    assert len(made) == 3  # one for the model's new state, one for the other model's
    monkeypatch.setattr(jax_engine, "GATE_CACHE_MAX_BYTES", 0)  # too large to keep: per call
    fresh = gln_jax.GLN("jax", [4, 3, 1], WIDTH, context_map_size=2, num_classes=3, seed=0)
    for i in range(3):
        fresh.predict(X[i], target=y[i : i + 1])
    assert fresh._runner.engine._gates is None and len(made) == 6
