"""The Gaussian family: by-hand values, the jax.grad oracle, drivers, outputs, dtypes, config."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gln_jax.core import gaussian, gaussian_network
from gln_jax.core.gating import context_indices
from gln_jax.core.gaussian_types import GaussianConfig, make_gaussian_config

jit_update = jax.jit(gaussian_network.update, static_argnames="config")
jit_batch_update = jax.jit(gaussian_network.batch_update, static_argnames="config")


def oracle_neuron(row, mu_in, sigma_sq_in, config):
    """An independent transliteration of the paper's neuron: project the row, then multiply."""
    a = 1.0 / sigma_sq_in
    s = jnp.dot(row, a)
    target = jnp.clip(s, 1.0 / config.max_sigma_sq, 1.0 / config.min_sigma_sq)
    projected = row - a * (s - target) / jnp.dot(a, a)
    sigma_sq = 1.0 / jnp.dot(projected, a)
    return sigma_sq * jnp.dot(projected, a * mu_in), sigma_sq


def oracle_loss(row, mu_in, sigma_sq_in, y, config):
    mu, sigma_sq = oracle_neuron(row, mu_in, sigma_sq_in, config)
    return 0.5 * jnp.log(2 * jnp.pi * sigma_sq) + 0.5 * (y - mu) ** 2 / sigma_sq


def data(count, width, seed=0, dtype=np.float32):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((count, width)).astype(dtype)
    y = (np.sin(x[:, 0]) + 0.5 * x[:, 1] + 0.1 * rng.standard_normal(count)).astype(dtype)
    return x, y


CONFIG = make_gaussian_config([4, 3], 5, context_map_size=2)


@pytest.fixture(scope="module")
def trained():
    """A small float32 model after 64 online steps, and fresh examples."""
    x, y = data(80, 5)
    state = gaussian_network.init(jax.random.key(1), CONFIG)
    state, _ = gaussian_network.scan_update(
        state, x[:64], x[:64], y[:64], jnp.full(64, 0.01), config=CONFIG
    )
    return state, x[64:], y[64:]


def test_one_neuron_by_hand():
    """Two inputs, weights (1, 1): the product of N(1, 1) and N(3, 1) is N(2, 1/2)."""
    config = make_gaussian_config([1], 2, context_map_size=0, bias_len=0, min_sigma_sq=0.01)
    mu, sigma_sq, inside = gaussian.neurons(
        jnp.ones((1, 2)), jnp.asarray([1.0, 3.0]), jnp.asarray([1.0, 1.0]), config
    )
    np.testing.assert_allclose([mu[0], sigma_sq[0]], [2.0, 0.5], rtol=1e-6)
    assert bool(inside[0])
    # Weights (2, 2) would give variance 1/4 < min 0.3: the row is projected to (5/3, 5/3).
    config = config._replace(min_sigma_sq=0.3)
    mu, sigma_sq, inside = gaussian.neurons(
        jnp.full((1, 2), 2.0), jnp.asarray([1.0, 3.0]), jnp.asarray([1.0, 1.0]), config
    )
    np.testing.assert_allclose([mu[0], sigma_sq[0]], [2.0, 0.3], rtol=1e-6)
    assert not bool(inside[0])


def test_bias_gaussians_are_appended_after_the_inputs():
    mu, sigma_sq = gaussian.input_gaussians(jnp.asarray([0.5, -2.0]), CONFIG)
    np.testing.assert_allclose(mu, [0.5, -2.0, -1.0, 0.0, 1.0])
    np.testing.assert_allclose(sigma_sq, [1.0, 1.0, 1.0, 1.0, 1.0])


@pytest.mark.heavy
@pytest.mark.parametrize("min_sigma_sq", [0.01, 0.9], ids=["inside", "projected"])
def test_closed_form_gradient_is_jax_grad_of_the_log_likelihood(x64, min_sigma_sq):
    """Inside the variance range and where the projection is active."""
    config = make_gaussian_config([3], 4, min_sigma_sq=min_sigma_sq, dtype="float64")
    rng = np.random.default_rng(0)
    mu_in = jnp.asarray(rng.standard_normal(7))
    sigma_sq_in = jnp.asarray(rng.uniform(0.5, 2.0, 7))
    rows = jnp.asarray(rng.uniform(0.05, 0.4, (3, 7)))
    y = 0.7
    mu, sigma_sq, inside = gaussian.neurons(rows, mu_in, sigma_sq_in, config)
    assert bool(jnp.all(inside)) == (min_sigma_sq == 0.01)
    assert not bool(jnp.any(inside)) == (min_sigma_sq == 0.9)
    for k in range(3):
        expected = oracle_neuron(rows[k], mu_in, sigma_sq_in, config)
        np.testing.assert_allclose([mu[k], sigma_sq[k]], expected, rtol=1e-12)
    closed = gaussian.gradient(mu_in, sigma_sq_in, mu, sigma_sq, inside, y)
    oracle = jax.vmap(jax.grad(oracle_loss), in_axes=(0, None, None, None, None))(
        rows, mu_in, sigma_sq_in, y, config
    )
    np.testing.assert_allclose(closed, oracle, rtol=1e-10, atol=1e-12)


@pytest.mark.heavy
def test_network_update_is_each_neurons_gradient_step(x64):
    """Every neuron of every layer moves by ``-lr * grad`` of its own loss, inputs held fixed."""
    config = make_gaussian_config([4, 3], 5, context_map_size=2, dtype="float64")
    x, y = data(40, 5, dtype=np.float64)
    state = gaussian_network.init(jax.random.key(2), config)
    state, _ = gaussian_network.scan_update(
        state, x[:32], x[:32], y[:32], jnp.full(32, 0.01), config=config
    )
    lr = 0.01
    new_state, out = gaussian_network.update(state, x[32], x[32], y[32], lr, config=config)
    contexts = context_indices(state.layers, x[32], config=config)
    mu_in, sigma_sq_in = gaussian.input_gaussians(x[32], config)
    grad = jax.grad(oracle_loss)
    for layer, new_layer, ctx in zip(state.layers, new_state.layers, contexts, strict=True):
        outs = []
        for k in range(layer.weights.shape[1]):
            row = layer.weights[0, k, ctx[0, k]]
            expected = row - lr * grad(row, mu_in, sigma_sq_in, y[32], config)
            np.testing.assert_allclose(new_layer.weights[0, k, ctx[0, k]], expected, rtol=1e-12)
            outs.append(oracle_neuron(row, mu_in, sigma_sq_in, config))
        mu_in, sigma_sq_in = gaussian.append_bias(
            jnp.asarray([o[0] for o in outs]), jnp.asarray([o[1] for o in outs]), config
        )
    np.testing.assert_allclose(out[0], [outs[0][0], outs[0][1]], rtol=1e-12)
    untouched = np.ones(new_state.layers[0].weights.shape, bool)
    untouched[0, np.arange(4), np.asarray(contexts[0][0])] = False
    np.testing.assert_array_equal(
        np.asarray(new_state.layers[0].weights)[untouched],
        np.asarray(state.layers[0].weights)[untouched],
    )
    assert int(new_state.step) == 33


@pytest.mark.heavy
def test_variances_stay_in_range_and_weights_clip(trained):
    state, x, y = trained
    config = CONFIG._replace(weight_clipping=0.3)
    big = 1e3 * np.ones_like(y)
    new_state, _ = jit_batch_update(state, x, x, big, jnp.full(len(y), 1.0), config=config)
    for layer in new_state.layers:
        assert float(jnp.abs(layer.weights).max()) <= np.float32(0.3)
    out = jax.vmap(functools.partial(gaussian_network.apply, new_state, config=config))(x, x)
    assert float(out[..., 1].min()) >= config.min_sigma_sq * (1 - 1e-6)
    assert float(out[..., 1].max()) <= config.max_sigma_sq * (1 + 1e-6)


@pytest.mark.heavy
def test_batch_of_one_equals_update_and_shared_rows_accumulate(trained):
    state, x, y = trained
    one, out_one = jit_update(state, x[0], x[0], y[0], 0.01, config=CONFIG)
    batch, out_batch = jit_batch_update(
        state, x[:1], x[:1], y[:1], jnp.full(1, 0.01), config=CONFIG
    )
    np.testing.assert_allclose(out_batch[0], out_one, rtol=1e-6)
    for a, b in zip(jax.tree.leaves(one), jax.tree.leaves(batch), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    twice, _ = jit_batch_update(
        state, x[[0, 0]], x[[0, 0]], y[[0, 0]], jnp.full(2, 0.01), config=CONFIG
    )
    for old, new1, new2 in zip(state.layers, one.layers, twice.layers, strict=True):
        np.testing.assert_allclose(
            new2.weights - old.weights, 2 * (new1.weights - old.weights), rtol=1e-4, atol=1e-7
        )
    assert int(twice.step) == int(state.step) + 2


@pytest.mark.heavy
def test_scan_and_fit_stream_equal_a_python_loop(trained):
    state, x, y = trained
    lrs = np.full(16, 0.01, np.float32)
    loop, outs = state, []
    for t in range(16):
        loop, out = jit_update(loop, x[t], x[t], y[t], lrs[t], config=CONFIG)
        outs.append(out)
    scanned, out_scan = jax.jit(gaussian_network.scan_update, static_argnames="config")(
        state, x, x, y, lrs, config=CONFIG
    )
    streamed, out_stream = gaussian_network.fit_stream(
        state, x, x, y, lrs, config=CONFIG, chunk_size=8
    )
    np.testing.assert_allclose(out_scan, np.stack(outs), rtol=1e-5)
    np.testing.assert_allclose(out_stream, np.stack(outs), rtol=1e-5)
    for a, b, c in zip(*map(jax.tree.leaves, (loop, scanned, streamed)), strict=True):
        np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(c, a, rtol=1e-5, atol=1e-7)
    # A padded last chunk (13 = 8 + 5) changes nothing, and the caller's state is intact.
    before = jax.tree.map(np.array, state)
    padded, out_padded = gaussian_network.fit_stream(
        state, x[:13], x[:13], y[:13], lrs[:13], config=CONFIG, chunk_size=8
    )
    np.testing.assert_allclose(out_padded, np.stack(outs[:13]), rtol=1e-5)
    assert int(padded.step) == int(state.step) + 13
    for a, b in zip(jax.tree.leaves(before), jax.tree.leaves(state), strict=True):
        np.testing.assert_array_equal(a, b)
    batched, out_batched = gaussian_network.fit_stream(
        state, x, x, y, lrs, config=CONFIG, batch_size=4
    )
    by_hand = state
    for start in range(0, 16, 4):
        sl = slice(start, start + 4)
        by_hand, _ = jit_batch_update(by_hand, x[sl], x[sl], y[sl], lrs[sl], config=CONFIG)
    for a, b in zip(jax.tree.leaves(by_hand), jax.tree.leaves(batched), strict=True):
        np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-7)


@pytest.mark.heavy
def test_multi_output_equals_separate_models(trained):
    state, x, y = trained
    config = CONFIG._replace(num_outputs=2)
    two = gaussian_network.init(jax.random.key(7), config)
    targets = np.stack([y, -2 * y], axis=1)
    new, out = jit_batch_update(two, x, x, targets, jnp.full(len(y), 0.01), config=config)
    assert out.shape == (len(y), 2, 2)
    for c in range(2):
        single = jax.tree.map(lambda a, c=c: a[c : c + 1] if a.ndim else a, two)
        alone, out_alone = jit_batch_update(
            single, x, x, targets[:, c], jnp.full(len(y), 0.01), config=CONFIG
        )
        np.testing.assert_allclose(out[:, c], out_alone[:, 0], rtol=1e-6)
        for a, b in zip(new.layers, alone.layers, strict=True):
            np.testing.assert_allclose(a.weights[c : c + 1], b.weights, rtol=1e-6, atol=1e-7)


@pytest.mark.heavy
def test_batch_apply_equals_apply_and_default_dtype(trained):
    state, x, _ = trained
    out = jax.jit(gaussian_network.batch_apply, static_argnames="config")(
        state, x, x, config=CONFIG
    )
    assert out.dtype == jnp.float32 and out.shape == (len(x), 1, 2)
    np.testing.assert_allclose(out[3], gaussian_network.apply(state, x[3], x[3], config=CONFIG))


def test_no_recompile_for_new_rates_or_targets(trained):
    state, x, y = trained
    fn = jax.jit(gaussian_network.update, static_argnames="config")
    fn(state, x[0], x[0], y[0], 0.01, config=CONFIG)
    before = fn._cache_size()
    fn(state, x[1], x[1], y[1], 0.02, config=CONFIG)
    assert fn._cache_size() == before


@pytest.mark.heavy
def test_float64_learns_and_stays_float64(x64):
    config = make_gaussian_config([4], 5, dtype="float64")
    x, y = data(200, 5, dtype=np.float64)
    state = gaussian_network.init(jax.random.key(0), config)
    state, out = gaussian_network.fit_stream(state, x, x, y, np.full(200, 0.01), config=config)
    assert out.dtype == np.float64 and state.layers[0].weights.dtype == jnp.float64
    early = np.mean((out[:50, 0, 0] - y[:50]) ** 2)
    late = np.mean((out[-50:, 0, 0] - y[-50:]) ** 2)
    assert late < 0.5 * early


def test_config_is_hashable_and_checked():
    assert hash(CONFIG) == hash(make_gaussian_config([4, 3], 5, context_map_size=2))
    assert isinstance(CONFIG, GaussianConfig) and CONFIG.family == "gaussian"
    assert CONFIG.layer_input_sizes() == (8, 7, 6)
    for kwargs, error in (
        ({"min_sigma_sq": 2.0, "max_sigma_sq": 1.0}, "below max_sigma_sq"),
        ({"min_sigma_sq": 0.0}, "min_sigma_sq"),
        ({"input_sigma_sq": float("nan")}, "input_sigma_sq"),
        ({"num_outputs": 0}, "num_outputs"),
        ({"bias_len": -1}, "bias_len"),
        ({"context_map_size": -1}, "context_map_size"),
    ):
        with pytest.raises(ValueError, match=error):
            make_gaussian_config([4], 5, **kwargs)
    with pytest.raises(TypeError, match="num_outputs"):
        make_gaussian_config([4], 5, num_outputs=1.5)
