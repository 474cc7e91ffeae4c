"""``gln_jax.GLN`` on every backend, and each port's own ``GLN`` class, against the jax backend.

One seed gives one model in every backend; the same calls (online and batched ``fit``,
``predict`` with and without targets, schedules) give the same outputs, also with the gating
options and the inverse-time schedule; bad input raises and leaves the model as it was, and so
does a training call that fails half-way.
"""

from __future__ import annotations

import functools
import warnings
from pathlib import Path

import numpy as np
import pytest

import gln_jax
from gln_jax.api import schedules, validation
from gln_jax.core.schedules import inverse_time

from .port_harness import BACKENDS, BY_NAME, PORTS, clean_examples, params

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "initial_states.npz"
SETUPS = {
    "binary": dict(layer_sizes=[4, 3], input_size=6, context_map_size=3, num_classes=2),
    "classes": dict(
        layer_sizes=[3, 2],
        input_size=6,
        context_map_size=2,
        num_classes=4,
        base_predictor=lambda x: x[:, :3] * 0.5 + 0.25,
    ),
}


def schedule(step):
    """An optax-style schedule (works on a vector of steps), stepped once per example."""
    return 0.2 / (1.0 + 0.05 * np.asarray(step, np.float64))


#: Constructor arguments of each facade session besides the setup's: a constant rate, an
#: optax-style schedule, and the non-default gating options with the paper's schedule shape
#: (raw Gaussian normals, offsets of scale 0.5, ``min(2 / t, 0.1)``: 0.1 until the 20th
#: example, decaying after).
VARIANTS = {
    "constant": {"learning_rate": 0.05},
    "schedule": {"learning_rate": schedule},
    "options": {
        "learning_rate": inverse_time(2.0, 0.1),
        "hyperplane_normalize": False,
        "hyperplane_bias_scale": 0.5,
    },
}


def _as_numpy(value) -> np.ndarray:
    if hasattr(value, "detach"):
        return value.detach().cpu().numpy()
    if hasattr(value, "numpy") and not isinstance(value, np.ndarray):
        return value.numpy()
    return np.asarray(value)


@functools.lru_cache(maxsize=8)
def _data(setup: str, count: int = 150, variant: str = "constant"):
    """Examples in [0, 1] clear of every hyperplane of the seed-5 model, and labels."""
    spec = SETUPS[setup]
    state = gln_jax.GLN("numpy", **spec, **VARIANTS[variant], seed=5).reference_state()
    rng = np.random.default_rng(1)
    x = clean_examples(state, rng, count, low=0.0, high=1.0)
    return x, rng.integers(0, spec["num_classes"], count)


#: The calls of a session: (method, slice of the data, keyword arguments).
CALLS = (
    ("fit", slice(0, 60), {}),
    ("fit", slice(60, 100), {"batch_size": 6, "num_epochs": 2}),  # 40 = 6 * 6 + 4
    ("predict", slice(100, 110), {"target": True, "return_probs": True}),
    ("predict", 110, {"target": True, "return_probs": True}),  # one example, online
    ("predict", slice(111, 150), {"return_probs": True}),
    ("predict", slice(111, 150), {}),
)


def _session(model, setup: str, on_call=None, variant: str = "constant") -> list[np.ndarray]:
    """The same sequence of calls on any model; returns every output as NumPy.

    ``on_call(method, model, x, y, kwargs)`` is called before each call (the reference uses
    it to record its own per-step probabilities).
    """
    x, y = _data(setup, variant=variant)
    outputs = []
    for method, part, kwargs in CALLS:
        xs = x[part]
        ys = y[part] if isinstance(part, slice) else y[part : part + 1]
        kwargs = dict(kwargs)
        if on_call is not None:
            on_call(method, model, xs, ys, kwargs)
        if method == "fit":
            outputs.append(_as_numpy(model.fit(xs, ys, **kwargs)))
        else:
            if kwargs.pop("target", False):
                kwargs["target"] = ys
            outputs.append(_as_numpy(model.predict(xs, **kwargs)))
    return outputs


def _fit_probabilities(model, x, y, batch_size: int = 1, num_epochs: int = 1) -> np.ndarray:
    """The probabilities behind ``model.fit(x, y, ...)`` of a jax-backend model, from the
    reference's functional API (called before the fit)."""
    config = model.config
    side = x.astype(config.dtype)
    inputs = validation.base_predictions(model.base_predictor, side, config)
    n = len(x)
    step = model.step if callable(model.learning_rate) else 0
    rates = schedules.learning_rates(model.learning_rate, step, n * num_epochs, config.dtype)
    state, probs = model.reference_state(), []
    for epoch in range(num_epochs):
        state, p = gln_jax.fit_stream(
            state,
            inputs,
            side,
            y,
            rates[epoch * n : (epoch + 1) * n],
            config=config,
            batch_size=batch_size,
        )
        probs.append(p)
    return np.concatenate(probs)


@functools.lru_cache(maxsize=8)
def _jax_session(setup: str, variant: str):
    """The jax backend's outputs, final state, and the probabilities behind each output."""
    model = gln_jax.GLN("jax", **SETUPS[setup], **VARIANTS[variant], seed=5)
    behind = []

    def record(method, model, x, y, kwargs):
        behind.append(_fit_probabilities(model, x, y, **kwargs) if method == "fit" else None)

    outputs = _session(model, setup, record, variant)
    for i, (method, part, kwargs) in enumerate(CALLS):
        if method == "predict" and not kwargs:  # classes of the probabilities just before
            assert CALLS[i - 1] == (method, part, {"return_probs": True})
            behind[i] = outputs[i - 1]
    return outputs, model.reference_state(), behind, model.config


def _tied(probs: np.ndarray, num_classes: int, tolerance: float = 1e-5) -> np.ndarray:
    """``[B]`` whether the reference's decision is a (near) tie, settled by rounding alone."""
    if num_classes == 2:
        return np.abs(probs.reshape(len(probs), -1)[:, 0] - 0.5) < tolerance
    top = np.sort(probs, axis=-1)
    return top[:, -1] - top[:, -2] < tolerance


def _compare(outputs, state, expected, num_classes: int):
    expected_outputs, expected_state, behind = expected[:3]
    for i, (got, want) in enumerate(zip(outputs, expected_outputs, strict=True)):
        assert got.shape == want.shape, f"output {i}"
        if want.dtype.kind == "f":
            assert got.dtype == want.dtype, f"output {i}"
            np.testing.assert_allclose(got, want, rtol=2e-5, atol=2e-6, err_msg=f"output {i}")
            continue
        differ = got.astype(want.dtype) != want
        # Classes agree except where the reference's own probabilities tie (an untrained
        # one-vs-all model scores every class the same, and rounding then picks the class).
        assert not (differ & ~_tied(behind[i], num_classes)).any(), f"output {i}"
    assert int(state.step) == int(expected_state.step)
    for a, b in zip(state.layers, expected_state.layers, strict=True):
        np.testing.assert_allclose(a.weights, b.weights, rtol=2e-5, atol=2e-6)
        np.testing.assert_array_equal(a.hyperplanes, b.hyperplanes)


@pytest.mark.parametrize("setup", sorted(SETUPS))
@pytest.mark.parametrize("backend", params(BACKENDS))
def test_same_seed_same_initial_model_everywhere(backend, setup):
    """Every backend starts from the stored golden state (tests/golden/README.md)."""
    with np.load(GOLDEN, allow_pickle=False) as golden:
        expected = {key: golden[key] for key in golden.files if key.startswith(f"{setup}/")}
    models = [gln_jax.GLN(backend.name, **SETUPS[setup], seed=9)]
    if backend.name != "jax":
        models.append(backend.module().GLN(**SETUPS[setup], seed=9))
    for model in models:
        state = model.reference_state()
        assert int(state.step) == 0
        got = {
            f"{setup}/layers/{i}/{field}": np.asarray(getattr(layer, field))
            for i, layer in enumerate(state.layers)
            for field in gln_jax.LayerState._fields
        }
        assert sorted(got) == sorted(expected)
        for key, value in got.items():
            assert value.dtype == expected[key].dtype == np.float32, key
            np.testing.assert_array_equal(value, expected[key], err_msg=key)
    other = gln_jax.GLN(backend.name, **SETUPS[setup], seed=10).reference_state()
    golden_planes = expected[f"{setup}/layers/0/hyperplanes"]
    assert not np.array_equal(other.layers[0].hyperplanes, golden_planes)  # seeds matter


@pytest.mark.parametrize("variant", sorted(VARIANTS))
@pytest.mark.parametrize("setup", sorted(SETUPS))
@pytest.mark.parametrize("backend", params(PORTS))
def test_facade_calls_equal_the_jax_backend(backend, setup, variant):
    model = gln_jax.GLN(backend.name, **SETUPS[setup], **VARIANTS[variant], seed=5)
    outputs = _session(model, setup, variant=variant)
    _compare(
        outputs,
        model.reference_state(),
        _jax_session(setup, variant),
        SETUPS[setup]["num_classes"],
    )


@pytest.mark.parametrize("variant", ["constant", "options"])
@pytest.mark.parametrize("setup", sorted(SETUPS))
@pytest.mark.parametrize("backend", params(PORTS))
def test_port_model_equals_the_jax_backend_in_native_arrays(backend, setup, variant):
    model = backend.module().GLN(**SETUPS[setup], **VARIANTS[variant], seed=5)
    assert model.config == _jax_session(setup, variant)[3]
    x, _ = _data(setup, variant=variant)
    native = type(backend.to_native(np.zeros(1, np.float32)))
    single = model.predict(backend.to_native(x[0]), return_probs=True)
    assert isinstance(single, native)
    assert _as_numpy(single).shape == ((1,) if SETUPS[setup]["num_classes"] == 2 else (1, 4))
    outputs = _session(model, setup, variant=variant)
    _compare(
        outputs,
        model.reference_state(),
        _jax_session(setup, variant),
        SETUPS[setup]["num_classes"],
    )
    classes = model.predict(x[:5])
    assert isinstance(classes, native)
    if SETUPS[setup]["num_classes"] == 2:
        assert _as_numpy(classes).dtype == bool


@pytest.mark.parametrize("backend", params(BACKENDS))
def test_inputs_outside_the_unit_interval_warn_once_per_model(backend):
    """Raw uint8 pixels as base predictions warn once per model; side information never."""
    spec = SETUPS["binary"]
    x, y = _data("binary")
    pixels = np.round(x[:8] * 255).astype(np.uint8)
    pixels[0, :2] = 0, 255
    makers = [lambda **kw: gln_jax.GLN(backend.name, **spec, seed=5, **kw)]
    if backend.name != "jax":
        makers.append(lambda **kw: backend.module().GLN(**spec, seed=5, **kw))
    for make in makers:
        model = make()
        with pytest.warns(UserWarning) as record:
            model.predict(pixels)
            model.predict(pixels, target=y[:8])
            model.fit(pixels, y[:8])
        assert len(record) == 1, [str(w.message) for w in record]
        message = str(record[0].message)
        assert message.startswith("inputs range from 0 to 255, outside [0, 1]")
        assert "clipped into [0.001, 0.999]" in message and "pixels / 255" in message
        with pytest.warns(UserWarning, match="inputs range from 0 to 255"):
            make().predict(pixels)  # once per model: a new model warns again
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            make().predict(x[:8], target=y[:8])  # inputs in [0, 1]
            scaled = make(base_predictor=lambda z: np.clip(z / 255.0, 0.0, 1.0))
            scaled.predict(pixels, target=y[:8])  # pixels are only side information here


@pytest.mark.parametrize("alias", ["torch", "tensorflow"])
def test_backend_aliases(alias):
    backend = BY_NAME[{"torch": "pytorch", "tensorflow": "tf"}[alias]]
    if not backend.available:
        pytest.skip(backend.skip_reason)
    assert gln_jax.GLN(alias, [2], 3).backend == backend.name


BAD_CALLS = {
    "wrong width": (lambda m, x, y: m.predict(x[:, :5], target=y), ValueError),
    "nan": (lambda m, x, y: m.predict(np.where(x > 0.5, np.nan, x), target=y), ValueError),
    "label out of range": (lambda m, x, y: m.fit(x, y + 10), ValueError),
    "fractional label": (lambda m, x, y: m.fit(x, y + 0.5), ValueError),
    "label count": (lambda m, x, y: m.predict(x, target=y[:-1]), ValueError),
    "strings": (lambda m, x, y: m.predict(np.full((2, 6), "a")), TypeError),
    "batch size": (lambda m, x, y: m.fit(x, y, batch_size=0), ValueError),
    "epochs": (lambda m, x, y: m.fit(x, y, num_epochs=1.5), ValueError),
    "schedule": (lambda m, x, y: m.fit(x, y), ValueError),  # the schedule returns NaN
}


@pytest.mark.parametrize("backend", params(BACKENDS))
def test_bad_input_raises_and_leaves_the_model_unchanged(backend):
    x, y = _data("classes")
    x, y = x[:12], y[:12]
    makers = [lambda **kw: gln_jax.GLN(backend.name, **SETUPS["classes"], seed=5, **kw)]
    if backend.name != "jax":
        makers.append(lambda **kw: backend.module().GLN(**SETUPS["classes"], seed=5, **kw))
    for make in makers:
        for what, (call, error) in BAD_CALLS.items():
            rate = (lambda s: np.full(np.shape(s), np.nan)) if what == "schedule" else 0.05
            model = make(learning_rate=rate)
            if what != "schedule":
                model.fit(x, y)
            before = model.reference_state()
            with pytest.raises(error):
                call(model, x, y)
            after = model.reference_state()
            assert int(after.step) == int(before.step), what
            for a, b in zip(after.layers, before.layers, strict=True):
                np.testing.assert_array_equal(a.weights, b.weights, err_msg=what)


def _fail_half_way(backend, monkeypatch):
    """Makes training raise after it has already written part of its work."""
    calls = {"n": 0}

    def failing(real):
        def wrapper(*args, **kwargs):
            calls["n"] += 1
            if calls["n"] == 3:
                raise RuntimeError("injected failure")
            return real(*args, **kwargs)

        return wrapper

    if backend.name == "tf":
        from gln_tf import module

        real = module.Compiled.__init__

        def init(self, config):
            real(self, config)
            self.online = failing(self.online)

        module.compiled.cache_clear()
        monkeypatch.setattr(module.Compiled, "__init__", init)
        monkeypatch.setattr(module, "CHUNK_SIZE", 8)  # several compiled calls per fit
        return lambda: module.compiled.cache_clear()
    scan = backend.module("scan")
    monkeypatch.setattr(scan, "online_step", failing(scan.online_step))
    if backend.name in ("numpy", "pytorch"):  # streams of 16+ learn in Gram chunks, by layer
        from gln_common import chunked

        monkeypatch.setattr(chunked, "layer_chunk", failing(chunked.layer_chunk))
    return lambda: None


@pytest.mark.parametrize("backend", params(PORTS))
def test_failed_training_leaves_the_model_unchanged(backend, monkeypatch):
    x, y = _data("binary")
    model = gln_jax.GLN(backend.name, **SETUPS["binary"], seed=5, learning_rate=0.3)
    model.fit(x[:10], y[:10])
    before = model.reference_state()
    cleanup = _fail_half_way(backend, monkeypatch)
    try:
        with pytest.raises(RuntimeError, match="injected"):
            model.fit(x[10:60], y[10:60])
    finally:
        monkeypatch.undo()
        cleanup()
    after = model.reference_state()
    assert int(after.step) == int(before.step) == 10
    for a, b in zip(after.layers, before.layers, strict=True):
        np.testing.assert_array_equal(a.weights, b.weights)
    np.testing.assert_array_equal(
        _as_numpy(model.fit(x[10:60], y[10:60])),
        _as_numpy(
            gln_jax.GLN("jax", **SETUPS["binary"], seed=5, learning_rate=0.3).fit(x[:60], y[:60])[
                10:
            ]
        ),
    )


@pytest.mark.parametrize("backend", params(PORTS))
def test_port_float64_model_without_global_x64(backend, x64):
    """A port builds a float64 model with 64-bit JAX off globally (scoped), equal to the
    reference's float64 init."""
    import jax

    expected = gln_jax.GLN("jax", [2, 1], 4, seed=3, dtype="float64").reference_state()
    jax.config.update("jax_enable_x64", False)  # the x64 fixture restores it afterwards
    model = backend.module().GLN([2, 1], 4, seed=3, dtype="float64")
    assert not jax.config.jax_enable_x64
    state = model.reference_state()
    for a, b in zip(state.layers, expected.layers, strict=True):
        assert a.hyperplanes.dtype == np.float64
        np.testing.assert_array_equal(a.hyperplanes, b.hyperplanes)
        np.testing.assert_array_equal(a.hyperplane_bias, b.hyperplane_bias)
    probs = _as_numpy(model.predict(np.full((2, 4), 0.3), return_probs=True))
    assert probs.dtype == np.float64
