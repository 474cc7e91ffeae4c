"""The one dense-versus-gather rule (``core.types.dense_scoring``): both branches agree.

A batch of one gathers its active rows, a larger batch scores every row densely (with few rows
per neuron); many rows per neuron always gather. Whatever the branch, the numbers are the
vmapped single-example maths (float64 to 1e-12), and the facade's one-transfer path (the gates
look at the inputs) equals passing the side information separately.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gln_jax
from gln_jax import make_config
from gln_jax.api import jax_engine
from gln_jax.core import types
from gln_jax.core.gating import batch_context_indices


def test_rule_picks_each_branch_by_rows_and_batch():
    most = types.DENSE_ROWS_MAX
    assert types.dense_scoring(most, types.DENSE_BATCH_MIN)
    assert types.dense_scoring(most)  # a batch of unknown size is scored densely
    assert not types.dense_scoring(2 * most, 1024)  # many rows: gather at any batch
    assert not types.dense_scoring(2, types.DENSE_BATCH_MIN - 1)  # one example: gather
    config = make_config([2, 1], 5, context_map_size=most.bit_length() - 1)
    assert config.num_contexts == most
    assert types.dense_rows(config, 8) and not types.dense_rows(config, 1)


_batch_apply = jax.jit(gln_jax.batch_apply, static_argnames="config")


def _trained(context_map_size, rng):
    config = make_config(
        [4, 1], 9, context_map_size=context_map_size, num_classes=3, dtype="float64"
    )
    state = gln_jax.init(jax.random.key(4), config)
    xs = jnp.asarray(rng.random((24, 9)))
    ys = jnp.asarray(rng.integers(0, 3, 24), jnp.int32)
    state, _ = jax.jit(gln_jax.scan_update, static_argnames="config")(
        state, xs, xs, ys, jnp.full(24, 0.3), config=config
    )
    return config, state


@pytest.mark.heavy
@pytest.mark.parametrize("context_map_size", [2, 7])  # dense for batches / always gathered
def test_batch_apply_equals_vmapped_apply_on_both_branches(x64, context_map_size):
    rng = np.random.default_rng(3)
    config, state = _trained(context_map_size, rng)
    xs = jnp.asarray(rng.random((4, 9)))
    mapped = jax.jit(jax.vmap(lambda x: gln_jax.apply(state, x, x, config=config)))(xs)
    batched = _batch_apply(state, xs, xs, config=config)  # dense when R <= 64
    single = [_batch_apply(state, xs[i : i + 1], xs[i : i + 1], config=config) for i in range(4)]
    assert types.dense_rows(config, 4) == (context_map_size == 2)
    assert not types.dense_rows(config, 1)  # a batch of one gathers
    np.testing.assert_allclose(np.asarray(batched), np.asarray(mapped), rtol=0, atol=1e-12)
    np.testing.assert_allclose(np.concatenate(single), np.asarray(mapped), rtol=0, atol=1e-12)
    assert len({np.asarray(row).tobytes() for row in single}) == 4  # rows differ: a real check


@pytest.mark.heavy
def test_gating_equals_the_halfspace_definition(x64):
    rng = np.random.default_rng(5)
    config, state = _trained(3, rng)
    side = rng.standard_normal((20, 9))
    got = batch_context_indices(state.layers, jnp.asarray(side), config=config)
    for layer, ctx in zip(state.layers, got, strict=True):
        planes = np.asarray(layer.hyperplanes)  # [C, K, m, N]
        above = np.einsum("ckmn,bn->bckm", planes, side) > np.asarray(layer.hyperplane_bias)
        expected = np.sum(above * 2 ** np.arange(config.context_map_size), axis=-1)
        np.testing.assert_array_equal(np.asarray(ctx), expected)


def test_engine_passes_shared_gates_once_with_the_same_result():
    config = make_config([4, 4, 1], 12, num_classes=4)
    engine = jax_engine.JaxEngine(config)
    state = gln_jax.init(jax.random.key(1), config)
    rng = np.random.default_rng(2)
    x = rng.random((3, 12), dtype=np.float32)
    targets, rates = np.array([0, 3, 1], np.int32), np.full(3, 0.05, np.float32)
    shared_p = engine.predict(state, x, x)
    np.testing.assert_array_equal(shared_p, engine.predict(state, x, x.copy()))
    copy = jax.tree.map(jnp.copy, state)
    s1, p1 = engine.train(state, x, x, targets, rates)  # donates state
    s2, p2 = engine.train(copy, x, x.copy(), targets, rates)
    np.testing.assert_array_equal(p1, p2)
    # predictions come before the update (the fused kernel predicts with another rounding)
    np.testing.assert_allclose(p1, shared_p, rtol=1e-6, atol=1e-7)
    for a, b in zip(jax.tree.leaves(s1), jax.tree.leaves(s2), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
