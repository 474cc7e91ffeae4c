"""Saliency: the collapsed affine map against finite differences, jax.grad and the network."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import gln_jax
from gln_jax.core._saliency import Saliency, saliency

_scan_update = jax.jit(gln_jax.scan_update, static_argnames="config")
_saliency = jax.jit(saliency, static_argnames=("config", "local"))


def _logit(p):
    return jnp.log(p) - jnp.log1p(-p)


def _state(config, seed, weight_scale=None):
    """A state built in NumPy, laid out as :func:`gln_jax.init` lays it out.

    Unit-norm hyperplane normals and ``N(0, 1)`` offsets; weights ``1 / inputs`` as at
    initialisation, or uniform in ``[-weight_scale, weight_scale]``. (Building it in NumPy
    keeps the tests free of the compile time of ``jax.random`` samplers.)
    """
    rng = np.random.default_rng(seed)
    dtype = np.dtype(config.dtype)
    c, m, n = config.num_models, config.context_map_size, config.side_info_size
    layers = []
    for neurons, inputs in zip(config.layer_sizes, config.layer_input_sizes(), strict=True):
        planes = rng.normal(size=(c, neurons, m, n))
        planes /= np.linalg.norm(planes, axis=-1, keepdims=True)
        shape = (c, neurons, config.num_contexts, inputs)
        if weight_scale is None:
            weights = np.full(shape, 1.0 / inputs)
        else:
            weights = rng.uniform(-weight_scale, weight_scale, shape)
        offsets = rng.normal(size=(c, neurons, m))
        layers.append(
            gln_jax.LayerState(*(jnp.asarray(a, dtype) for a in (weights, planes, offsets)))
        )
    return gln_jax.GLNState(layers=tuple(layers), step=jnp.zeros((), jnp.int32))


def _data(num_classes, width, count, seed=0, dtype=np.float32):
    """Inputs a margin inside (eps, 1 - eps), so the base predictions are never clipped."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(0.05, 0.95, (count, width)).astype(dtype)
    if num_classes == 2:
        y = (x[:, 0] + x[:, 1] > 1.0).astype(np.int32)
    else:
        y = (np.argmax(x[:, :num_classes], axis=1)).astype(np.int32)
    return x, y


@functools.cache
def _trained(num_classes, *, bias=True, dtype="float32", width=12, steps=300, lr=0.02):
    """A model trained a little with a moderate rate: most examples stay unclipped."""
    config = gln_jax.make_config(
        [6, 3], width, num_classes=num_classes, bias=bias, dtype=dtype, context_map_size=3
    )
    state = _state(config, seed=1)
    x, y = _data(num_classes, width, steps, dtype=np.dtype(dtype))
    rates = jnp.full((steps,), lr, jnp.dtype(dtype))
    state, _ = _scan_update(state, x, x, y, rates, config=config)
    return config, state


@functools.partial(jax.jit, static_argnames=("config", "local"))
def _batch_saliency(state, x, *, config, local=False):
    """Saliency of every row of ``x [B, N]`` (inputs and side information alike)."""
    return jax.vmap(functools.partial(saliency, state, config=config, local=local))(x, x)


def _output_logit_fn(config, state, side_info):
    """Output logits ``[C]`` as a function of the base-prediction logits ``[K]``."""

    def fn(z):
        return _logit(gln_jax.apply(state, jax.nn.sigmoid(z), side_info, config=config))

    return fn


@functools.partial(jax.jit, static_argnames=("config",))
def _output_logits(state, x, *, config):
    """``[B, C]`` output logits of the network on the rows of ``x``."""
    return _logit(jax.vmap(functools.partial(gln_jax.apply, state, config=config))(x, x))


@functools.partial(jax.jit, static_argnames=("config",))
def _jacobians(state, x, *, config):
    """``[B, C, K]`` by ``jax.jacfwd`` of the output logits w.r.t. the input logits."""

    def one(row):
        return jax.jacfwd(_output_logit_fn(config, state, row))(_logit(row))

    return jax.vmap(one)(x)


@functools.partial(jax.jit, static_argnames=("config",))
def _finite_differences(state, x, step, *, config):
    """``[B, C, K]`` central differences of the output logits w.r.t. the input logits."""

    def one(row):
        fn = jax.vmap(_output_logit_fn(config, state, row))
        z = _logit(row)
        shift = step * jnp.eye(z.shape[0], dtype=z.dtype)  # one row per coordinate
        difference = fn(z[None, :] + shift) - fn(z[None, :] - shift)  # [K, C]
        return (difference / (2 * step)).T

    return jax.vmap(one)(x)


def _unclipped_examples(config, state, count=8):
    """``[count, N]`` fresh examples at which no neuron of any class is at its clip."""
    x, _ = _data(config.num_classes, config.side_info_size, 200, seed=7, dtype=config.dtype)
    clipped = np.asarray(_batch_saliency(state, x, config=config).num_clipped)  # [B, C]
    found = x[clipped.max(axis=1) == 0]
    assert len(found) >= count, "the fixture model clips too often for this test"
    return found[:count]


@pytest.mark.heavy
@pytest.mark.usefixtures("x64")
@pytest.mark.parametrize("num_classes", [2, 4])
@pytest.mark.parametrize("bias", [True, False])
def test_matches_finite_differences_where_unclipped(num_classes, bias):
    config, state = _trained(num_classes, bias=bias, dtype="float64")
    x = _unclipped_examples(config, state, count=4)
    weights = _batch_saliency(state, x, config=config).weights  # [B, C, K]
    finite = _finite_differences(state, x, 1e-5, config=config)
    np.testing.assert_allclose(weights, finite, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(weights, _jacobians(state, x, config=config), rtol=1e-10, atol=1e-12)
    assert np.abs(np.asarray(finite)).max() > 1e-2  # the map is not trivially zero


@pytest.mark.heavy
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("num_classes", [2, 5])
def test_affine_map_reproduces_output_logit(num_classes, dtype, request):
    if dtype == "float64":
        request.getfixturevalue("x64")
    config, state = _trained(num_classes, dtype=dtype)
    tol = 1e-5 if dtype == "float32" else 1e-12
    x = _unclipped_examples(config, state)
    s = _batch_saliency(state, x, config=config)
    z = _logit(jnp.asarray(x))
    reproduced = jnp.sum(s.weights * z[:, None, :], axis=-1) + s.bias  # [B, C]
    np.testing.assert_allclose(
        reproduced, _output_logits(state, x, config=config), rtol=tol, atol=tol
    )
    local = _batch_saliency(state, x, config=config, local=True)
    np.testing.assert_array_equal(local.weights, s.weights)
    np.testing.assert_array_equal(local.bias, s.bias)


def test_product_of_active_weight_matrices():
    """Written out by hand in NumPy for two layers: ``w2[:, :2] @ w1[:, :3]`` and the biases."""
    config = gln_jax.make_config([2, 1], 3, context_map_size=1)
    state = _state(config, seed=3, weight_scale=2.0)
    layers = state.layers
    x = np.array([0.3, 0.6, 0.8], np.float32)
    ctx = gln_jax.context_indices(state.layers, x, config=config)
    w1 = np.asarray(layers[0].weights)[0, np.arange(2), np.asarray(ctx[0])[0]]  # [2, 4]
    w2 = np.asarray(layers[1].weights)[0, 0, np.asarray(ctx[1])[0, 0]]  # [3]
    expected_weights = w2[0] * w1[0, :3] + w2[1] * w1[1, :3]
    expected_bias = w2[0] * w1[0, 3] + w2[1] * w1[1, 3] + w2[2]
    s = _saliency(state, x, x, config=config)
    np.testing.assert_allclose(s.weights, expected_weights[None], rtol=1e-6)
    np.testing.assert_allclose(s.bias, [expected_bias], rtol=1e-6)


@pytest.mark.heavy
@pytest.mark.parametrize(
    ("num_classes", "classes"),
    [(2, 1), (3, 3), (10, 10)],
)
def test_shapes_and_dtypes(num_classes, classes):
    config = gln_jax.make_config([4, 4], 20, num_classes=num_classes, base_prediction_size=7)
    state = _state(config, seed=0)
    inputs = jnp.full((7,), 0.4, jnp.float32)
    side_info = jnp.linspace(0.0, 1.0, 20, dtype=jnp.float32)

    @jax.jit
    def single_and_batch(state, inputs, side_info):
        single = saliency(state, inputs, side_info, config=config)
        batch = jax.vmap(functools.partial(saliency, state, config=config))(
            jnp.tile(inputs[None], (5, 1)), jnp.tile(side_info[None], (5, 1))
        )
        out = _logit(gln_jax.apply(state, inputs, side_info, config=config))
        return single, batch, out

    s, batch, out = single_and_batch(state, inputs, side_info)
    assert isinstance(s, Saliency)
    assert s.weights.shape == (classes, 7) and s.weights.dtype == jnp.float32
    assert s.bias.shape == (classes,) and s.bias.dtype == jnp.float32
    assert s.num_clipped.shape == (classes,) and s.num_clipped.dtype == jnp.int32
    assert batch.weights.shape == (5, classes, 7)
    np.testing.assert_array_equal(batch.weights[3], s.weights)
    # base predictions narrower than the side information: the map is over the former
    np.testing.assert_array_equal(s.num_clipped, np.zeros(classes, np.int32))
    reproduced = jnp.sum(s.weights * _logit(inputs)[None, :], axis=-1) + s.bias
    np.testing.assert_allclose(reproduced, out, rtol=1e-5, atol=1e-5)


@pytest.mark.heavy
def test_bias_free_model_has_zero_constant():
    config, state = _trained(2, bias=False)
    bias = _batch_saliency(state, _unclipped_examples(config, state), config=config).bias
    np.testing.assert_array_equal(bias, np.zeros_like(bias))


@pytest.mark.heavy
@pytest.mark.usefixtures("x64")
def test_local_map_is_exact_where_neurons_are_clipped():
    config = gln_jax.make_config([5, 4], 10, num_classes=3, dtype="float64")
    state = _state(config, seed=0, weight_scale=3.0)
    x, _ = _data(3, 10, 50, seed=2, dtype=np.float64)
    gated = _batch_saliency(state, x, config=config)
    local = _batch_saliency(state, x, config=config, local=True)
    np.testing.assert_array_equal(local.num_clipped, gated.num_clipped)
    clipped = np.asarray(gated.num_clipped).max(axis=1) > 0
    assert clipped.sum() >= 10
    x, gated, local = x[clipped], gated.weights[clipped], jax.tree.map(lambda a: a[clipped], local)
    z = _logit(jnp.asarray(x))
    reproduced = jnp.sum(local.weights * z[:, None, :], axis=-1) + local.bias
    np.testing.assert_allclose(
        reproduced, _output_logits(state, x, config=config), rtol=1e-12, atol=1e-12
    )
    np.testing.assert_allclose(
        local.weights, _jacobians(state, x, config=config), rtol=1e-10, atol=1e-12
    )
    assert not np.allclose(local.weights, gated)  # the frozen neurons changed the map


_CONFIGS = (  # a few fixed shapes, so hypothesis draws weights and data, not recompiles
    dict(layer_sizes=[3, 2], num_classes=2, context_map_size=2, bias=True),
    dict(layer_sizes=[5], num_classes=3, context_map_size=0, bias=True),
    dict(layer_sizes=[4, 4, 2], num_classes=3, context_map_size=3, bias=False),
    dict(layer_sizes=[1, 1], num_classes=2, context_map_size=1, bias=False),
)


@functools.partial(jax.jit, static_argnames=("config",))
def _reproduction(state, x, *, config):
    """Per mode (gated, local): the map applied to the input logits, and ``num_clipped``."""
    out = []
    for local in (False, True):
        s = _batch_saliency(state, x, config=config, local=local)
        out.append((jnp.sum(s.weights * _logit(x)[:, None, :], axis=-1) + s.bias, s.num_clipped))
    return out, _output_logits(state, x, config=config)


@pytest.mark.heavy
@pytest.mark.usefixtures("x64")
@given(
    index=st.integers(0, len(_CONFIGS) - 1),
    scale=st.sampled_from([0.3, 1.0, 3.0]),
    seed=st.integers(0, 2**16),
)
def test_map_reproduces_any_network(index, scale, seed):
    config = gln_jax.make_config(side_info_size=6, dtype="float64", **_CONFIGS[index])
    x, _ = _data(config.num_classes, 6, 16, seed=seed, dtype=np.float64)
    state = _state(config, seed, weight_scale=scale)
    modes, out = _reproduction(state, x, config=config)
    out = np.asarray(out)
    (gated, num_clipped), (local, local_clipped) = jax.tree.map(np.asarray, modes)
    unclipped = num_clipped == 0
    np.testing.assert_allclose(gated[unclipped], out[unclipped], rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(local, out, rtol=1e-10, atol=1e-10)
    np.testing.assert_array_equal(local_clipped, num_clipped)


def test_jit_traces_once_per_config():
    config, state = _trained(5)
    traces = []

    def counted(state, inputs, side_info):
        traces.append(None)
        return saliency(state, inputs, side_info, config=config)

    fn = jax.jit(counted)
    x, _ = _data(5, config.side_info_size, 3, seed=5)
    results = [fn(state, row, row) for row in x]
    assert len(traces) == 1
    batch = _batch_saliency(state, x, config=config)
    np.testing.assert_allclose(results[2].weights, batch.weights[2], rtol=1e-6, atol=1e-7)
