"""The reference maths: hand-computed values, the gradient oracle, jit, classes, accumulation."""

import math
import os

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gln_jax
from gln_jax import GLNState, LayerState, make_config


def sigmoid(z):
    return 1.0 / (1.0 + math.exp(-z))


def logit(p):
    return math.log(p / (1.0 - p))


jit_update = jax.jit(gln_jax.update, static_argnames="config")
jit_batch_update = jax.jit(gln_jax.batch_update, static_argnames="config")


def tiny_state(weights, planes, offsets, step=0):
    """A one-model state from nested lists (per layer: [K, R, I], [K, m, N], [K, m])."""
    layers = tuple(
        LayerState(
            jnp.asarray([w], jnp.float32),
            jnp.asarray([v], jnp.float32),
            jnp.asarray([b], jnp.float32),
        )
        for w, v, b in zip(weights, planes, offsets, strict=True)
    )
    return GLNState(layers, jnp.asarray(step, jnp.int32))


# One neuron, two inputs, one hyperplane (x0 > 0.5), no bias input.
ONE = make_config([1], 2, context_map_size=1, bias=False, pred_clipping=1e-3)
ONE_STATE = tiny_state(
    weights=[[[[0.5, 0.5], [0.2, -0.4]]]],
    planes=[[[[1.0, 0.0]]]],
    offsets=[[[0.5]]],
)


def test_apply_one_neuron_by_hand():
    x = jnp.asarray([0.8, 0.3], jnp.float32)
    p = gln_jax.apply(ONE_STATE, x, x, config=ONE)  # 0.8 > 0.5: row 1
    expected = sigmoid(0.2 * logit(0.8) - 0.4 * logit(0.3))
    np.testing.assert_allclose(np.asarray(p), [expected], rtol=1e-6)
    x = jnp.asarray([0.4, 0.3], jnp.float32)  # row 0
    p = gln_jax.apply(ONE_STATE, x, x, config=ONE)
    np.testing.assert_allclose(np.asarray(p), [sigmoid(0.5 * logit(0.4) + 0.5 * logit(0.3))])


def test_update_one_neuron_by_hand():
    x = jnp.asarray([0.8, 0.3], jnp.float32)
    state, p = gln_jax.update(ONE_STATE, x, x, 1, 0.1, config=ONE)
    p_hand = sigmoid(0.2 * logit(0.8) - 0.4 * logit(0.3))
    np.testing.assert_allclose(np.asarray(p), [p_hand], rtol=1e-6)
    row = [0.2 - 0.1 * (p_hand - 1) * logit(0.8), -0.4 - 0.1 * (p_hand - 1) * logit(0.3)]
    weights = np.asarray(state.layers[0].weights)[0, 0]
    np.testing.assert_allclose(weights[1], row, rtol=1e-6)
    np.testing.assert_array_equal(weights[0], [0.5, 0.5])  # the inactive row never moves
    assert int(state.step) == 1


def test_update_clips_weights_and_probabilities():
    x = jnp.asarray([0.999999, 0.3], jnp.float32)  # input clipped to 1 - eps
    state, _ = gln_jax.update(ONE_STATE, x, x, 0, 1000.0, config=ONE)
    weights = np.asarray(state.layers[0].weights)[0, 0, 1]
    np.testing.assert_array_equal(weights, [-5.0, 5.0])  # both hit the weight clip
    p = gln_jax.apply(state, x, x, config=ONE)
    np.testing.assert_allclose(np.asarray(p), [1e-3], rtol=1e-5)  # clipped at eps


# Two layers: two neurons then one, a bias input, one hyperplane per neuron.
TWO = make_config([2, 1], 2, context_map_size=1, bias=True, pred_clipping=1e-3)
TWO_STATE = tiny_state(
    weights=[
        [[[0.3, 0.1, 0.2], [0.4, -0.2, 0.1]], [[-0.3, 0.5, 0.0], [0.1, 0.1, 0.1]]],
        [[[0.6, 0.3, -0.1], [0.2, 0.2, 0.2]]],
    ],
    planes=[[[[1.0, 0.0]], [[0.0, 1.0]]], [[[1.0, 1.0]]]],
    offsets=[[[0.5], [0.5]], [[0.9]]],
)


def two_layer_by_hand(x, w0, w1):
    """Context rows of TWO_STATE for x, and the forward pass with python floats."""
    c0 = [int(x[0] > 0.5), int(x[1] > 0.5)]
    c1 = int(x[0] + x[1] > 0.9)
    x0 = [logit(x[0]), logit(x[1]), 1.0]
    h = [sigmoid(sum(a * b for a, b in zip(w0[k][c0[k]], x0, strict=True))) for k in range(2)]
    x1 = [logit(h[0]), logit(h[1]), 1.0]
    out = sigmoid(sum(a * b for a, b in zip(w1[0][c1], x1, strict=True)))
    return c0, c1, x0, h, x1, out


def test_two_layers_with_bias_by_hand():
    w0 = np.asarray(TWO_STATE.layers[0].weights)[0].tolist()
    w1 = np.asarray(TWO_STATE.layers[1].weights)[0].tolist()
    x = [0.7, 0.2]
    c0, c1, x0, h, x1, out = two_layer_by_hand(x, w0, w1)
    xj = jnp.asarray(x, jnp.float32)
    ctx = gln_jax.context_indices(TWO_STATE.layers, xj, config=TWO)
    assert np.asarray(ctx[0]).tolist() == [c0] and np.asarray(ctx[1]).tolist() == [[c1]]
    np.testing.assert_allclose(np.asarray(gln_jax.apply(TWO_STATE, xj, xj, config=TWO)), [out])

    state, p = gln_jax.update(TWO_STATE, xj, xj, 0, 0.5, config=TWO)
    np.testing.assert_allclose(np.asarray(p), [out], rtol=1e-6)
    new0 = np.asarray(state.layers[0].weights)[0]
    new1 = np.asarray(state.layers[1].weights)[0]
    for k in range(2):  # each neuron learns from its own prediction, not the output's
        expected = [w - 0.5 * (h[k] - 0) * xi for w, xi in zip(w0[k][c0[k]], x0, strict=True)]
        np.testing.assert_allclose(new0[k, c0[k]], expected, rtol=1e-5)
        np.testing.assert_array_equal(new0[k, 1 - c0[k]], w0[k][1 - c0[k]])
    expected = [w - 0.5 * out * xi for w, xi in zip(w1[0][c1], x1, strict=True)]
    np.testing.assert_allclose(new1[0, c1], expected, rtol=1e-5)


@pytest.mark.heavy
def test_batch_update_accumulates_on_shared_rows_by_hand():
    a, b = [0.8, 0.3], [0.9, 0.1]  # both in row 1
    xs = jnp.asarray([a, b], jnp.float32)
    state, p = gln_jax.batch_update(
        ONE_STATE, xs, xs, jnp.asarray([1, 0]), jnp.asarray([0.1, 0.2], jnp.float32), config=ONE
    )
    pa = sigmoid(0.2 * logit(a[0]) - 0.4 * logit(a[1]))
    pb = sigmoid(0.2 * logit(b[0]) - 0.4 * logit(b[1]))  # from the weights before the batch
    np.testing.assert_allclose(np.asarray(p)[:, 0], [pa, pb], rtol=1e-6)
    row = [
        w - 0.1 * (pa - 1) * logit(ai) - 0.2 * (pb - 0) * logit(bi)
        for w, ai, bi in zip([0.2, -0.4], a, b, strict=True)
    ]
    np.testing.assert_allclose(np.asarray(state.layers[0].weights)[0, 0, 1], row, rtol=1e-5)
    assert int(state.step) == 2


@pytest.mark.heavy
def test_batch_of_one_equals_update(small_state):
    config, state, xs, ys = small_state
    lr = jnp.asarray([0.05], jnp.float32)
    s1, p1 = gln_jax.batch_update(state, xs[:1], xs[:1], ys[:1], lr, config=config)
    s2, p2 = gln_jax.update(state, xs[0], xs[0], ys[0], lr[0], config=config)
    chex.assert_trees_all_equal(s1, s2)
    chex.assert_trees_all_equal(p1[0], p2)


@pytest.fixture
def small_state():
    config = make_config([5, 3, 1], 6, context_map_size=2, num_classes=3)
    state = gln_jax.init(jax.random.key(1), config)
    rng = np.random.default_rng(0)
    xs = jnp.asarray(rng.random((40, 6)), jnp.float32)
    ys = jnp.asarray(rng.integers(0, 3, 40), jnp.int32)
    return config, state, xs, ys


def test_closed_form_update_is_the_gradient_of_each_neurons_log_loss(small_state):
    """jax.grad of each neuron's own log-loss on its active row is ``(p - y) * x``."""
    config, state, xs, ys = small_state
    state, _ = gln_jax.scan_update(state, xs, xs, ys, jnp.full(40, 0.01), config=config)
    x, label, lr = xs[0], ys[0], 0.01
    contexts = gln_jax.context_indices(state.layers, x, config=config)
    new_state, _ = gln_jax.update(state, x, x, label, lr, config=config)
    targets = np.asarray(gln_jax.class_targets(label, config), np.float32)
    layer_input = jnp.broadcast_to(
        jnp.concatenate([jax.scipy.special.logit(jnp.clip(x, 1e-3, 1 - 1e-3)), jnp.ones(1)]),
        (config.num_models, 7),
    )
    for layer, new_layer, ctx in zip(state.layers, new_state.layers, contexts, strict=True):
        outputs = []
        for c in range(config.num_models):
            for k in range(layer.weights.shape[1]):
                row = layer.weights[c, k, ctx[c, k]]

                def loss(w, xin=layer_input[c], y=targets[c]):
                    p = jax.nn.sigmoid(jnp.dot(w, xin))
                    return -(y * jnp.log(p) + (1 - y) * jnp.log1p(-p))

                p = float(jax.nn.sigmoid(jnp.dot(row, layer_input[c])))
                assert 1e-3 < p < 1 - 1e-3  # away from the clip, where the two agree
                oracle = row - lr * jax.grad(loss)(row)
                assert np.abs(np.asarray(oracle)).max() < config.weight_clipping
                np.testing.assert_allclose(
                    np.asarray(new_layer.weights[c, k, ctx[c, k]]), oracle, rtol=2e-5, atol=1e-7
                )
                outputs.append(p)
        h = jnp.asarray(outputs, jnp.float32).reshape(config.num_models, -1)
        layer_input = jnp.concatenate(
            [jax.scipy.special.logit(h), jnp.ones((config.num_models, 1))], axis=1
        )


@pytest.mark.heavy
def test_jit_equals_no_jit(small_state):
    config, state, xs, ys = small_state
    lrs = jnp.full(8, 0.02, jnp.float32)
    for fn, args in (
        (gln_jax.apply, (state, xs[0], xs[0])),
        (gln_jax.update, (state, xs[0], xs[0], ys[0], lrs[0])),
        (gln_jax.batch_update, (state, xs[:8], xs[:8], ys[:8], lrs)),
    ):
        eager = fn(*args, config=config)
        jitted = jax.jit(fn, static_argnames="config")(*args, config=config)
        chex.assert_trees_all_close(eager, jitted, rtol=1e-6)


def test_scan_driver_equals_python_loop(small_state):
    config, state, xs, ys = small_state
    lrs = jnp.linspace(0.05, 0.01, 40, dtype=jnp.float32)
    scanned, p_scan = jax.jit(gln_jax.scan_update, static_argnames="config")(
        state, xs, xs, ys, lrs, config=config
    )
    looped, ps = state, []
    for i in range(40):
        looped, p = jit_update(looped, xs[i], xs[i], ys[i], lrs[i], config=config)
        ps.append(p)
    chex.assert_trees_all_close(scanned, looped, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(np.asarray(p_scan), np.asarray(jnp.stack(ps)), rtol=1e-5)
    assert int(scanned.step) == 40


@pytest.mark.heavy
def test_scan_batch_driver_equals_loop_of_batch_update(small_state):
    config, state, xs, ys = small_state
    lrs = jnp.full((10, 4), 0.03, jnp.float32)
    scanned, p = gln_jax.scan_batch_update(
        state, xs.reshape(10, 4, 6), xs.reshape(10, 4, 6), ys.reshape(10, 4), lrs, config=config
    )
    looped = state
    for i in range(10):
        sl = slice(4 * i, 4 * i + 4)
        looped, pi = jit_batch_update(looped, xs[sl], xs[sl], ys[sl], lrs[i], config=config)
        np.testing.assert_allclose(np.asarray(p[i]), np.asarray(pi), rtol=1e-5)
    chex.assert_trees_all_close(scanned, looped, rtol=1e-5, atol=1e-7)


@pytest.mark.heavy
def test_fit_stream_chunks_and_padding_change_nothing(small_state):
    config, state, xs, ys = small_state
    lrs = np.full(37, 0.03, np.float32)
    x = np.asarray(xs[:37])
    whole, p_whole = gln_jax.fit_stream(state, x, x, ys[:37], lrs, config=config)
    chunked, p_chunked = gln_jax.fit_stream(state, x, x, ys[:37], lrs, config=config, chunk_size=8)
    chex.assert_trees_all_close(whole, chunked, rtol=1e-6)
    np.testing.assert_allclose(p_whole, p_chunked, rtol=1e-6)
    assert int(whole.step) == 37
    looped = state
    for i in range(37):
        looped, _ = jit_update(looped, x[i], x[i], ys[i], lrs[i], config=config)
    chex.assert_trees_all_close(whole, looped, rtol=1e-5, atol=1e-7)
    # batches: a last partial batch is a smaller batch
    batched, _ = gln_jax.fit_stream(state, x, x, ys[:37], lrs, config=config, batch_size=5)
    looped = state
    for start in range(0, 37, 5):
        sl = slice(start, min(start + 5, 37))
        looped, _ = jit_batch_update(looped, x[sl], x[sl], ys[sl], lrs[sl], config=config)
    chex.assert_trees_all_close(batched, looped, rtol=1e-5, atol=1e-7)
    assert int(batched.step) == 37


def test_fit_stream_leaves_callers_state_intact(small_state):
    config, state, xs, ys = small_state
    before = jax.tree.map(np.asarray, state)
    gln_jax.fit_stream(state, xs, xs, ys, np.full(40, 0.1, np.float32), config=config)
    chex.assert_trees_all_equal(jax.tree.map(np.asarray, state), before)


def test_fit_stream_broadcasts_a_scalar_rate(small_state):
    config, state, xs, ys = small_state
    rates = np.full(40, 0.1, np.float32)
    full, p_full = gln_jax.fit_stream(state, xs, xs, ys, rates, config=config)
    scalar, p_scalar = gln_jax.fit_stream(state, xs, xs, ys, 0.1, config=config)
    chex.assert_trees_all_equal(jax.tree.map(np.asarray, full), jax.tree.map(np.asarray, scalar))
    np.testing.assert_array_equal(p_full, p_scalar)


@pytest.mark.skipif(
    os.environ.get("GLN_JAX_TYPECHECK", "") == "1",
    reason="GLN_JAX_TYPECHECK=1: the annotations' checker refuses these arguments first",
)
@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"rates": np.full(32, 0.1, np.float32)},
            r"learning_rates must be a scalar or have "
            r"shape \[T\] = \(40,\) \(one rate per example of the stream\), got shape \(32,\)",
        ),
        ({"rates": np.full((40, 1), 0.1)}, r"learning_rates .* got shape \(40, 1\)"),
        ({"rates": np.full(40, np.nan)}, "learning_rates must be finite"),
        ({"ys": np.full(40, 12)}, r"targets must be class labels in \[0, 3\), got values from 12"),
        ({"ys": np.full(40, -1)}, r"targets must be class labels in \[0, 3\)"),
        ({"ys": np.full(40, 0.5)}, "targets must hold integral class labels"),
        ({"ys": np.zeros(39, np.int32)}, r"inputs must have shape \[T, 6\] = \(39, 6\)"),
        ({"side": np.zeros((40, 5), np.float32)}, r"side_info must have shape \[T, 6\]"),
        ({"batch_size": 0}, "batch_size must be a positive int"),
    ],
)
def test_fit_stream_checks_its_arguments_on_the_host(small_state, change, message):
    config, state, xs, ys = small_state
    before = jax.tree.map(np.asarray, state)
    args = {"ys": ys, "rates": np.full(40, 0.1, np.float32), "side": xs, "batch_size": 1}
    args.update(change)
    with pytest.raises(ValueError, match=message):
        gln_jax.fit_stream(
            state,
            xs,
            args["side"],
            args["ys"],
            args["rates"],
            config=config,
            batch_size=args["batch_size"],
        )
    chex.assert_trees_all_equal(jax.tree.map(np.asarray, state), before)


@pytest.mark.heavy
def test_multiclass_equals_separate_binary_models(small_state):
    config, state, xs, ys = small_state
    lrs = jnp.full(40, 0.05, jnp.float32)
    multi, p_multi = gln_jax.scan_update(state, xs, xs, ys, lrs, config=config)
    binary = config._replace(num_classes=2)
    for c in range(3):
        one = jax.tree.map(lambda a, c=c: a[c : c + 1] if a.ndim else a, state)
        one, p_one = gln_jax.scan_update(one, xs, xs, ys == c, lrs, config=binary)
        np.testing.assert_array_equal(np.asarray(p_one)[:, 0], np.asarray(p_multi)[:, c])
        for a, b in zip(one.layers, multi.layers, strict=True):
            np.testing.assert_array_equal(np.asarray(a.weights)[0], np.asarray(b.weights)[c])


@pytest.mark.heavy
def test_batch_of_identical_examples_doubles_the_step(small_state):
    config, state, xs, ys = small_state
    x = jnp.stack([xs[0], xs[0]])
    y = jnp.stack([ys[0], ys[0]])
    twice, _ = gln_jax.batch_update(state, x, x, y, jnp.full(2, 0.01), config=config)
    once, _ = gln_jax.update(state, xs[0], xs[0], ys[0], 0.02, config=config)
    chex.assert_trees_all_close(twice, once._replace(step=once.step + 1), rtol=1e-5, atol=1e-7)


def test_init_layout_seeds_and_bias():
    config = make_config([3, 2], 5, context_map_size=3, num_classes=4)
    assert config.layer_sizes == (3, 2, 1)  # one output neuron appended
    state = gln_jax.init(jax.random.key(0), config)
    shapes = [(4, 3, 8, 6), (4, 2, 8, 4), (4, 1, 8, 3)]  # the bias input comes on top
    for layer, shape in zip(state.layers, shapes, strict=True):
        assert layer.weights.shape == shape
        np.testing.assert_allclose(np.asarray(layer.weights), 1.0 / shape[-1])
        assert layer.hyperplanes.shape == (4, shape[1], 3, 5)
        np.testing.assert_allclose(np.linalg.norm(layer.hyperplanes, axis=-1), 1.0, rtol=1e-5)
        assert np.all(np.asarray(layer.hyperplane_bias) != 0)
    same = gln_jax.init(jax.random.key(0), config)
    other = gln_jax.init(jax.random.key(1), config)
    chex.assert_trees_all_equal(state, same)
    assert not np.array_equal(state.layers[0].hyperplanes, other.layers[0].hyperplanes)
    plain = gln_jax.init(jax.random.key(0), config._replace(context_bias=False, bias=False))
    assert np.all(np.asarray(plain.layers[0].hyperplane_bias) == 0)
    assert plain.layers[0].weights.shape[-1] == 5
    np.testing.assert_allclose(np.asarray(plain.layers[0].weights), 0.2)


def test_bias_input_never_overwrites_a_real_input():
    """Changing the last real input changes the prediction even with a bias input."""
    config = make_config([1], 3, context_map_size=0)
    state = gln_jax.init(jax.random.key(0), config)
    a = jnp.asarray([0.2, 0.5, 0.5], jnp.float32)
    b = jnp.asarray([0.2, 0.5, 0.9], jnp.float32)
    assert float(gln_jax.apply(state, a, a, config=config)[0]) != float(
        gln_jax.apply(state, b, b, config=config)[0]
    )


def test_context_index_bit_order():
    config = make_config([1], 2, context_map_size=2, bias=False)
    planes = [[[[1.0, 0.0], [0.0, 1.0]]]]
    state = tiny_state([[[[0.5, 0.5]] * 4]], planes, [[[0.0, 0.0]]])
    for x, expected in (([1.0, -1.0], 1), ([-1.0, 1.0], 2), ([1.0, 1.0], 3), ([0.0, 0.0], 0)):
        ctx = gln_jax.context_indices(state.layers, jnp.asarray(x, jnp.float32), config=config)
        assert int(ctx[0][0, 0]) == expected  # ties (v.z == b) are "not above"


@pytest.mark.heavy
def test_float64(x64):
    config = make_config([4, 1], 6, num_classes=3, dtype="float64")
    state = gln_jax.init(jax.random.key(0), config)
    assert all(layer.weights.dtype == jnp.float64 for layer in state.layers)
    x = jnp.asarray(np.random.default_rng(0).random((20, 6)))
    labels, rates = jnp.arange(20) % 3, jnp.full(20, 0.1)
    state, p = gln_jax.scan_update(state, x, x, labels, rates, config=config)
    assert p.dtype == jnp.float64 and state.layers[0].weights.dtype == jnp.float64


def test_float64_without_x64_is_a_clear_error():
    assert not jax.config.jax_enable_x64
    with pytest.raises(ValueError, match="jax_enable_x64"):
        gln_jax.init(jax.random.key(0), make_config([1], 2, dtype="float64"))


@pytest.mark.heavy
@pytest.mark.parametrize("context_map_size", [2, 7])  # dense scoring and gathered rows
def test_batch_apply_equals_vmapped_apply(context_map_size):
    config = make_config([6, 3, 1], 10, context_map_size=context_map_size, num_classes=3)
    state = gln_jax.init(jax.random.key(2), config)
    rng = np.random.default_rng(1)
    xs = jnp.asarray(rng.random((64, 10)), jnp.float32)
    ys = jnp.asarray(rng.integers(0, 3, 64), jnp.int32)
    state, _ = gln_jax.scan_update(state, xs, xs, ys, jnp.full(64, 0.2), config=config)
    batched = gln_jax.batch_apply(state, xs, xs, config=config)
    mapped = jax.vmap(lambda x: gln_jax.apply(state, x, x, config=config))(xs)
    assert batched.shape == (64, 3)
    np.testing.assert_allclose(np.asarray(batched), np.asarray(mapped), rtol=1e-5, atol=1e-6)


@pytest.mark.heavy
@pytest.mark.parametrize("first, count", [(0, 20), (7, 9), (15, 8)])
def test_init_class_range_equals_a_slice_of_init(first, count):
    """Each device's own classes, drawn alone (blocks of the flat draw crossed), equal init's;
    classes past the real ones are zero."""
    from gln_jax.core.network import init, init_class_range

    config = make_config([16, 1], 300, context_map_size=4, num_classes=20)  # 408k plane numbers
    reference = init(jax.random.key(5), config)
    drawn = jax.jit(init_class_range, static_argnames=("config", "count"))(
        jax.random.key(5), config, jnp.int32(first), count
    )
    real = max(0, min(count, 20 - first))
    leaves = zip(jax.tree.leaves(drawn.layers), jax.tree.leaves(reference.layers), strict=True)
    for got, want in leaves:
        assert got.shape[0] == count
        np.testing.assert_allclose(got[:real], want[first : first + real], rtol=1e-6, atol=1e-7)
        assert not np.any(np.asarray(got[real:]))
