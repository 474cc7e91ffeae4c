"""The stateful GLN facade: interface, schedules, compilation, properties, bad input."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from frameworks import require
from hypothesis import given
from hypothesis import strategies as st

import gln_jax
from gln_jax import GLN
from gln_jax.api.jax_engine import kernel_train, predict_batch, train_batch
from gln_jax.core.stream import _fit_chunk


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    return rng.random((64, 12), dtype=np.float32), rng.integers(0, 4, 64)


def snapshot(model):
    return jax.tree.map(np.array, model.reference_state())


def test_classic_interface_binary(data):
    X, y = data
    model = GLN("jax", [4, 4, 1], 12)
    out = model.predict(X[:5], target=y[:5] > 1)
    assert out.dtype == bool and out.shape == (5,)
    probs = model.predict(X[:5], return_probs=True)
    assert probs.shape == (5,) and probs.dtype == np.float32
    single = model.predict(X[0])  # one example comes back as a batch of one
    assert single.shape == (1,)
    assert np.vstack([model.predict(x) for x in X[:3]]).shape == (3, 1)
    assert model.step == 5


@pytest.mark.heavy
def test_classic_interface_multiclass(data):
    X, y = data
    model = GLN("jax", [4, 1], 12, num_classes=4)
    classes = model.predict(X[:6], target=y[:6])
    assert classes.shape == (6,) and np.issubdtype(classes.dtype, np.integer)
    probs = model.predict(X[:6], return_probs=True)
    assert probs.shape == (6, 4)
    np.testing.assert_array_equal(model.predict(X[:6]), probs.argmax(1))
    assert isinstance(model.config, gln_jax.GLNConfig)
    assert isinstance(model.state, gln_jax.GLNState)


def test_predict_accepts_jax_arrays_and_returns_numpy(data):
    X, y = data
    model = GLN("jax", [2, 1], 12, num_classes=4)
    out = model.predict(jnp.asarray(X[:3]), target=jnp.asarray(y[:3]), return_probs=True)
    assert isinstance(out, np.ndarray)


@pytest.mark.heavy
def test_fit_equals_predict_loop(data):
    X, y = data
    for batch_size in (1, 5):
        a = GLN("jax", [4, 4, 1], 12, num_classes=4, learning_rate=0.05)
        b = GLN("jax", [4, 4, 1], 12, num_classes=4, learning_rate=0.05)
        preds = a.fit(X, y, batch_size=batch_size, num_epochs=2)
        looped = [
            b.predict(X[i : i + batch_size], target=y[i : i + batch_size])
            for _ in range(2)
            for i in range(0, 64, batch_size)
        ]
        np.testing.assert_array_equal(preds, np.concatenate(looped))
        chex.assert_trees_all_close(snapshot(a), snapshot(b), rtol=1e-5, atol=1e-7)
        assert a.step == b.step == 128


@pytest.mark.heavy
def test_schedule_steps_once_per_example(data):
    X, y = data
    schedule = optax.linear_schedule(0.1, 0.001, transition_steps=64)
    model = GLN("jax", [3, 3, 1], 12, num_classes=4, learning_rate=schedule)
    model.fit(X[:40], y[:40])
    model.predict(X[40:48], target=y[40:48])
    assert model.step == 48  # examples, not layers x examples
    config = model.config
    state = gln_jax.init(jax.random.key(0), config)
    rates = np.asarray(schedule(np.arange(48)), np.float32)
    state, _ = gln_jax.scan_update(state, X[:40], X[:40], y[:40], rates[:40], config=config)
    state, _ = gln_jax.batch_update(state, X[40:48], X[40:48], y[40:48], rates[40:], config=config)
    # float32: the fused kernel of fit sums a neuron's dot product in another order than XLA
    chex.assert_trees_all_close(
        snapshot(model), jax.tree.map(np.asarray, state), rtol=1e-5, atol=1e-6
    )


def test_scalar_only_schedule_is_evaluated_per_step(data):
    X, y = data
    calls = []

    def schedule(step):
        calls.append(step)
        return 0.1 if step < 3 else 0.01

    model = GLN("jax", [2, 1], 12, learning_rate=schedule)
    model.predict(X[:5], target=y[:5] > 1)
    assert calls[-5:] == [0, 1, 2, 3, 4]


def test_same_seed_same_model_different_seed_different(data):
    X, y = data
    a, b = GLN("jax", [4, 1], 12, seed=3), GLN("jax", [4, 1], 12, seed=3)
    c = GLN("jax", [4, 1], 12, seed=4)
    chex.assert_trees_all_equal(snapshot(a), snapshot(b))
    assert not np.array_equal(a.state.layers[0].hyperplanes, c.state.layers[0].hyperplanes)
    for model in (a, b, c):  # untrained weights are uniform: gating shows only after learning
        model.fit(X, y > 1)
    chex.assert_trees_all_equal(snapshot(a), snapshot(b))
    assert not np.array_equal(a.predict(X, return_probs=True), c.predict(X, return_probs=True))


def test_no_recompilation_over_repeated_calls(data):
    X, y = data
    model = GLN("jax", [4, 4, 1], 12, num_classes=4)
    model.predict(X[:1], target=y[:1])
    model.predict(X[:8])
    model.fit(X[:30], y[:30])
    model.predict(X[:4], target=y[:4])

    def sizes():
        jitted = (train_batch, kernel_train, predict_batch, _fit_chunk)
        return [f._cache_size() for f in jitted]

    before = sizes()
    for i in range(1, 40):
        model.predict(X[i], target=y[i : i + 1])
        model.predict(X[i : i + 8])
        model.predict(X[i : i + 4], target=y[i : i + 4])
    model.fit(X[30:60], y[30:60])  # the same padded chunk shape
    assert sizes() == before


@pytest.mark.heavy
def test_float64_facade(x64, data):
    X, y = data
    model = GLN("jax", [3, 1], 12, num_classes=4, dtype="float64")
    model.fit(X, y)
    assert model.predict(X[:2], return_probs=True).dtype == np.float64


@pytest.mark.heavy
def test_base_predictor(data):
    X, y = data

    def base(x):
        return np.concatenate([x, 1 - x, np.full((len(x), 1), 0.5)], axis=1)

    model = GLN("jax", [4, 1], 12, base_predictor=base, num_classes=4)
    assert model.config.base_prediction_size == 25
    assert model.state.layers[0].weights.shape[-1] == 26
    model.predict(X[:4], target=y[:4])
    state = gln_jax.init(jax.random.key(0), model.config)
    _, p = gln_jax.batch_update(
        state, base(X[:4]), X[:4], y[:4], np.full(4, 1e-4, np.float32), config=model.config
    )
    model2 = GLN("jax", [4, 1], 12, base_predictor=base, num_classes=4)
    np.testing.assert_allclose(model2.predict(X[:4], return_probs=True), np.asarray(p))


configs = st.fixed_dictionaries(
    {
        "layer_sizes": st.lists(st.integers(1, 5), min_size=1, max_size=3),
        "context_map_size": st.integers(0, 4),
        "num_classes": st.integers(2, 4),
        "bias": st.booleans(),
        "context_bias": st.booleans(),
        "pred_clipping": st.sampled_from([1e-3, 0.01, 0.2]),
        "weight_clipping": st.sampled_from([0.1, 1.0, 5.0]),
        "learning_rate": st.sampled_from([1e-4, 0.1, 10.0]),
    }
)


@pytest.mark.heavy
@given(config=configs, batch_size=st.integers(1, 6), seed=st.integers(0, 2**16))
def test_properties_probabilities_and_weights_stay_clipped(config, batch_size, seed):
    rng = np.random.default_rng(seed)
    X = rng.random((24, 7), dtype=np.float32)
    y = rng.integers(0, config["num_classes"], 24)
    model = GLN("jax", input_size=7, seed=seed, **config)
    model.fit(X, y, batch_size=batch_size)
    eps, wc = config["pred_clipping"], config["weight_clipping"]
    probs = model.predict(X, return_probs=True)
    assert np.all(probs >= np.float32(eps)) and np.all(probs <= np.float32(1 - eps))
    for layer in model.reference_state().layers:
        assert np.all(np.abs(layer.weights) <= wc)
    assert model.step == 24


BAD_CONSTRUCTORS = [
    ({"backend": "cuda"}, ValueError, "unknown backend"),
    ({"backend": 3}, TypeError, "backend"),
    ({"layer_sizes": []}, ValueError, "layer_sizes"),
    ({"layer_sizes": [4, 0]}, ValueError, "layer_sizes"),
    ({"layer_sizes": [4.5]}, TypeError, "layer_sizes"),
    ({"input_size": 0}, ValueError, "input_size"),
    ({"context_map_size": -1}, ValueError, "context_map_size"),
    ({"num_classes": 1}, ValueError, "num_classes"),
    ({"pred_clipping": 0.5}, ValueError, "pred_clipping"),
    ({"pred_clipping": 0.0}, ValueError, "pred_clipping"),
    ({"learning_rate": 0.0}, ValueError, "learning_rate"),
    ({"learning_rate": -1e-3}, ValueError, "learning_rate"),
    ({"learning_rate": "fast"}, TypeError, "learning_rate"),
    ({"weight_clipping": 0.0}, ValueError, "weight_clipping"),
    ({"dtype": "float16"}, ValueError, "dtype"),
    ({"base_predictor": lambda x: x[0]}, ValueError, "base_predictor"),
    ({"context_map_size": 30, "layer_sizes": [64, 64]}, ValueError, "GiB"),
]


@pytest.mark.parametrize(("kwargs", "error", "match"), BAD_CONSTRUCTORS)
def test_bad_constructor_arguments(kwargs, error, match):
    args = {"backend": "jax", "layer_sizes": [4, 1], "input_size": 12, **kwargs}
    with pytest.raises(error, match=match):
        GLN(**args)


def test_unknown_backend_lists_valid_names():
    with pytest.raises(ValueError, match="numpy") as info:
        GLN("mxnet", [4, 1], 12)
    assert "jax" in str(info.value) and "tf" in str(info.value)


def nan_input(X):
    bad = X[:4].copy()
    bad[1, 3] = np.nan
    return bad


BAD_CALLS = [
    (lambda X, y: (X[:4, :11], y[:4]), ValueError, "12 features"),
    (lambda X, y: (X[:4].reshape(4, 3, 4), y[:4]), ValueError, "shape"),
    (lambda X, y: (np.array([["a"] * 12]), y[:1]), TypeError, "numbers"),
    (lambda X, y: (nan_input(X), y[:4]), ValueError, "NaN"),
    (lambda X, y: (np.where(X[:4] > 0.5, np.inf, X[:4]), y[:4]), ValueError, "inf"),
    (lambda X, y: (X[:4], np.array([0, 1, 4, 2])), ValueError, r"\[0, 4\)"),
    (lambda X, y: (X[:4], np.array([0, -1, 2, 2])), ValueError, r"\[0, 4\)"),
    (lambda X, y: (X[:4], np.array([0.0, 1.5, 2.0, 2.0])), ValueError, "integral"),
    (lambda X, y: (X[:4], y[:3]), ValueError, "3 labels"),
    (lambda X, y: (X[:4], np.array(["a", "b", "c", "d"])), TypeError, "labels"),
]


@pytest.mark.parametrize(("make", "error", "match"), BAD_CALLS)
def test_bad_calls_raise_and_change_nothing(data, make, error, match):
    X, y = data
    model = GLN("jax", [4, 4, 1], 12, num_classes=4)
    model.fit(X[:10], y[:10])
    before = snapshot(model)
    bad_x, bad_y = make(X, y)
    with pytest.raises(error, match=match):
        model.predict(bad_x, target=bad_y)
    with pytest.raises(error, match=match):
        model.fit(bad_x, bad_y)
    chex.assert_trees_all_equal(snapshot(model), before)
    assert model.step == 10
    model.predict(X[10:12], target=y[10:12])  # still usable


def test_bad_fit_arguments_and_bad_base_predictor_change_nothing(data):
    X, y = data
    outputs = {"value": None}

    def base(x):
        return outputs["value"] if outputs["value"] is not None else x

    model = GLN("jax", [4, 1], 12, num_classes=4, base_predictor=base)
    before = snapshot(model)
    with pytest.raises(ValueError, match="batch_size"):
        model.fit(X, y, batch_size=0)
    with pytest.raises(ValueError, match="num_epochs"):
        model.fit(X, y, num_epochs=-1)
    outputs["value"] = np.full((4, 12), np.nan, np.float32)
    with pytest.raises(ValueError, match="base_predictor returned NaN"):
        model.predict(X[:4], target=y[:4])
    outputs["value"] = np.zeros((4, 3), np.float32)
    with pytest.raises(ValueError, match="base_predictor must return shape"):
        model.predict(X[:4], target=y[:4])
    chex.assert_trees_all_equal(snapshot(model), before)


def test_bad_schedule_changes_nothing(data):
    X, y = data
    model = GLN("jax", [4, 1], 12, learning_rate=lambda step: -1.0)
    before = snapshot(model)
    with pytest.raises(ValueError, match="non-negative"):
        model.predict(X[:4], target=y[:4] > 1)
    chex.assert_trees_all_equal(snapshot(model), before)
    assert model.step == 0


@pytest.mark.heavy
def test_repr_names_the_model():
    assert "num_classes=10" in repr(GLN("jax", [4, 1], 12, num_classes=10))


@pytest.mark.heavy
@pytest.mark.parametrize("backend", ["jax", "numpy", "torch", "tf"])
def test_normalized_probabilities_sum_to_one(backend, data):
    require(backend)
    X, y = data
    model = GLN(backend, [4, 1], 12, num_classes=4, learning_rate=0.05)
    model.fit(X, y)
    raw = model.predict(X, return_probs=True)
    sums = raw.sum(axis=1)
    assert np.abs(sums - 1).max() > 1e-3  # independent sigmoids: not a distribution
    normalized = model.predict(X, return_probs=True, normalize=True)
    np.testing.assert_allclose(normalized, raw / sums[:, None], rtol=1e-6)
    np.testing.assert_allclose(normalized.sum(axis=1), 1.0, rtol=1e-6)
    np.testing.assert_array_equal(normalized.argmax(axis=1), model.predict(X))
    before = snapshot(model)
    with pytest.raises(ValueError, match="return_probs=True"):
        model.predict(X, y, normalize=True)
    with pytest.raises(TypeError, match="normalize must be a bool"):
        model.predict(X, return_probs=True, normalize="yes")
    chex.assert_trees_all_equal(snapshot(model), before)  # a refused call learned nothing
    binary = GLN(backend, [4, 1], 12)
    np.testing.assert_array_equal(
        binary.predict(X, return_probs=True, normalize=True), binary.predict(X, return_probs=True)
    )


@pytest.mark.parametrize("port", ["gln_torch", "gln_tf"])
def test_port_classes_normalize_in_their_own_tensors(port, data):
    require(port)
    module = pytest.importorskip(port)
    X, y = data
    model = module.GLN([4, 1], 12, num_classes=4, learning_rate=0.05)
    model.fit(X, y)
    normalized = np.asarray(model.predict(X, return_probs=True, normalize=True))
    np.testing.assert_allclose(normalized.sum(axis=1), 1.0, rtol=1e-6)
