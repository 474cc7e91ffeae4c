"""Gram chunks of exact online learning and dense batch updates equal the sequential maths."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gln_jax
from gln_jax import make_config
from gln_jax.core import bernoulli, chunked, multiclass, types
from gln_jax.core.gating import batch_context_indices

# Two rows per neuron and 3 classes: consecutive examples share rows all the time.
SIZES, WIDTH, CLASSES, STEPS = [4, 3, 1], 12, 3, 50


def _stream(seed=0, steps=STEPS):
    rng = np.random.default_rng(seed)
    x = rng.random((steps, WIDTH))
    return x, rng.integers(0, CLASSES, steps)


def _config(dtype="float64", context_map_size=1):
    return make_config(
        SIZES, WIDTH, context_map_size=context_map_size, num_classes=CLASSES, dtype=dtype
    )


def _sequential(state, x, y, rates, config, mask=None):
    fn = jax.jit(gln_jax.scan_update, static_argnames="config")
    return fn(state, x, x, y, rates, config=config, mask=mask)


def _chunked(state, x, y, rates, config, chunk, mask=None):
    fn = jax.jit(chunked.chunked_scan_update, static_argnames=("config", "chunk"))
    return fn(state, x, x, y, rates, config=config, chunk=chunk, mask=mask)


def _assert_states_close(a, b, tol):
    for la, lb in zip(a.layers, b.layers, strict=True):
        np.testing.assert_allclose(np.asarray(la.weights), np.asarray(lb.weights), atol=tol)
    assert int(a.step) == int(b.step)


@pytest.mark.heavy
@pytest.mark.parametrize(
    ("rate", "replayed"),
    [(0.05, False), (30.0, True)],  # a high rate makes the weight clip fire
)
def test_chunks_equal_the_sequential_scan_step_by_step(x64, rate, replayed):
    config = _config()
    state = gln_jax.init(jax.random.key(1), config)
    x, y = _stream()
    rates = np.full(STEPS, rate)
    seq_state, seq_p = _sequential(state, x, y, rates, config)
    # chunks of 16: three full chunks and a padded one
    chunk_state, chunk_p, replays = _chunked(state, x, y, rates, config, chunk=16)
    np.testing.assert_allclose(np.asarray(chunk_p), np.asarray(seq_p), atol=1e-12)
    _assert_states_close(chunk_state, seq_state, 1e-12)
    assert (int(replays) > 0) == replayed
    if replayed:  # the sequential weights did reach the clip
        first = np.asarray(seq_state.layers[0].weights)
        assert np.max(np.abs(first)) == config.weight_clipping
    # every prefix ends on the same state (step by step, not only at the end)
    for stop in (7, 33):
        a, _ = _sequential(state, x[:stop], y[:stop], rates[:stop], config)
        b, _, _ = _chunked(state, x[:stop], y[:stop], rates[:stop], config, chunk=16)
        _assert_states_close(b, a, 1e-12)


@pytest.mark.heavy
def test_only_chunks_where_a_clip_may_fire_are_replayed(x64):
    config = _config()
    state = gln_jax.init(jax.random.key(2), config)
    x, y = _stream(seed=3, steps=64)
    rates = np.where(np.arange(64) < 32, 1e-3, 30.0)  # two calm chunks, then two wild ones
    seq_state, seq_p = _sequential(state, x, y, rates, config)
    chunk_state, chunk_p, replays = _chunked(state, x, y, rates, config, chunk=16)
    assert 1 <= int(replays) <= 2
    np.testing.assert_allclose(np.asarray(chunk_p), np.asarray(seq_p), atol=1e-12)
    _assert_states_close(chunk_state, seq_state, 1e-12)


@pytest.mark.heavy
def test_masked_examples_change_nothing_in_chunks(x64):
    config = _config()
    state = gln_jax.init(jax.random.key(4), config)
    x, y = _stream(seed=5)
    rates = np.full(STEPS, 0.1)
    mask = np.arange(STEPS) % 3 != 0
    seq_state, seq_p = _sequential(state, x, y, rates, config, mask=mask)
    chunk_state, chunk_p, _ = _chunked(state, x, y, rates, config, chunk=16, mask=mask)
    np.testing.assert_allclose(np.asarray(chunk_p), np.asarray(seq_p), atol=1e-12)
    _assert_states_close(chunk_state, seq_state, 1e-12)
    assert int(chunk_state.step) == int(mask.sum())


def test_fit_stream_takes_the_chunked_route_and_stays_exact(x64):
    config = make_config([1], WIDTH, context_map_size=2, num_classes=CLASSES, dtype="float64")
    assert chunked.use_chunked(config) and not chunked.use_chunked(_config())
    state = gln_jax.init(jax.random.key(6), config)
    x, y = _stream(seed=7)
    rates = np.full(STEPS, 0.2)
    fit_state, fit_p = gln_jax.fit_stream(state, x, x, y, rates, config=config)
    seq_state, seq_p = _sequential(state, x, y, rates, config)
    np.testing.assert_allclose(fit_p, np.asarray(seq_p), atol=1e-12)
    _assert_states_close(fit_state, seq_state, 1e-12)


@pytest.mark.heavy
def test_chunks_in_float32_stay_close():
    config = _config("float32")
    state = gln_jax.init(jax.random.key(8), config)
    x, y = _stream(seed=9)
    rates = np.full(STEPS, 0.05, np.float32)
    seq_state, seq_p = _sequential(state, x, y, rates, config)
    chunk_state, chunk_p, _ = _chunked(state, x, y, rates, config, chunk=16)
    np.testing.assert_allclose(np.asarray(chunk_p), np.asarray(seq_p), atol=1e-5)
    _assert_states_close(chunk_state, seq_state, 1e-5)


def test_switch_rules_depend_on_rows_per_neuron():
    rows = types.CHUNKED_ROWS_MAX.bit_length() - 1
    small = make_config([1], WIDTH, context_map_size=rows, num_classes=CLASSES)
    large = make_config([1], WIDTH, context_map_size=rows + 1, num_classes=CLASSES)
    assert small.num_contexts == types.CHUNKED_ROWS_MAX
    assert chunked.use_chunked(small) and not chunked.use_chunked(large)
    dense = _config("float32", context_map_size=types.DENSE_ROWS_MAX.bit_length() - 1)
    gather = _config("float32", context_map_size=types.DENSE_ROWS_MAX.bit_length())
    assert types.dense_rows(dense) and not types.dense_rows(gather)


@pytest.mark.heavy
@pytest.mark.parametrize("rate", [0.05, 30.0])
def test_dense_batch_update_equals_the_scatter_one(x64, rate):
    config = _config()
    state = gln_jax.init(jax.random.key(10), config)
    x, y = _stream(seed=11, steps=32)
    contexts = tuple(
        jnp.moveaxis(c, 1, 0) for c in batch_context_indices(state.layers, x, config=config)
    )
    x0 = bernoulli.input_logits(x, config)
    targets = jax.vmap(lambda t: multiclass.class_targets(t, config))(jnp.asarray(y))
    targets = targets.T.astype(config.dtype)  # [C, B]
    weights = tuple(layer.weights for layer in state.layers)
    rates = jnp.full(32, rate)
    axes = (0, None, 0, 0, None)
    dense = jax.jit(functools.partial(bernoulli.dense_batch_update, config=config))
    gather = jax.jit(multiclass.over_classes(bernoulli.batch_update, axes, config=config))
    (w_dense, p_dense), (w_gather, p_gather) = (
        dense(weights, x0, contexts, targets, rates),
        gather(weights, x0, contexts, targets, rates),
    )
    np.testing.assert_allclose(np.asarray(p_dense), np.asarray(p_gather), atol=1e-12)
    for a, b in zip(w_dense, w_gather, strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-12)
    moved = np.asarray(w_gather[0]) != np.asarray(weights[0])
    assert moved.any()
    if rate > 1:  # the clip fired on the scatter side, and the dense side agrees
        assert np.max(np.abs(np.asarray(w_gather[0]))) == config.weight_clipping
