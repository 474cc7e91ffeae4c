"""Differential tests of the Gaussian family: every port against the reference.

Float64 agrees to 1e-12 (the maths); float32 within the harness's tolerance widened by the
reference's own float32 rounding (its distance to the float64 run of the same data). Examples
keep a margin from every gating hyperplane, as in the Bernoulli parity tests.
"""

import functools
import importlib.util

import jax
import numpy as np
import pytest

from gln_jax.core import gaussian_network as reference
from gln_jax.core.gaussian_types import make_gaussian_config

from .port_harness import PORTS, assert_close, clean_examples, params

#: The ports that have a Gaussian family (a ``gaussian_network`` module).
GAUSSIAN_PORTS = [
    b for b in PORTS if b.available and importlib.util.find_spec(f"{b.package}.gaussian_network")
]
STREAM = 200
RATE = 0.01

jit = functools.partial(jax.jit, static_argnames="config")
REF_UPDATE = jit(reference.update)
REF_BATCH_UPDATE = jit(reference.batch_update)
REF_BATCH_APPLY = jit(reference.batch_apply)


def setup(dtype: str, num_outputs: int = 1):
    """A config, a reference state trained a little (float64 maths), data and targets."""
    config = make_gaussian_config([4, 3], 5, context_map_size=2, num_outputs=num_outputs)
    config64 = config._replace(dtype="float64")
    with jax.enable_x64(True):
        state = reference.init(jax.random.key(3), config64)
        rng = np.random.default_rng(5)
        x = clean_examples(jax.tree.map(np.asarray, state), rng, STREAM + 40, low=-2, high=2)
        x = x.astype(np.float64)
        y = np.stack([np.sin(x[:, 0]) + 0.5 * x[:, 1] * (c + 1) for c in range(num_outputs)], 1)
        state, _ = reference.fit_stream(
            state, x[:32], x[:32], y[:32], np.full(32, RATE), config=config64
        )
        state = jax.tree.map(np.asarray, state)
    cast = lambda a: np.asarray(a, dtype) if np.issubdtype(a.dtype, np.floating) else a  # noqa: E731
    return (
        config._replace(dtype=dtype),
        jax.tree.map(cast, state),
        x[32:].astype(dtype),
        y[32:].astype(dtype),
    )


def reference_run(fn, state, *args, config):
    """Runs a reference function in the config's precision; returns NumPy leaves."""
    with jax.enable_x64(config.dtype == "float64"):
        return jax.tree.map(np.asarray, fn(jax.tree.map(np.asarray, state), *args, config=config))


def wide(a):
    """Float arrays widened to float64; integers (``step``) kept."""
    a = np.asarray(a)
    return a.astype(np.float64) if np.issubdtype(a.dtype, np.floating) else a


def truth(fn, state, *args, config):
    """The same reference call in float64 on the widened data."""
    return reference_run(
        fn, jax.tree.map(wide, state), *map(wide, args), config=config._replace(dtype="float64")
    )


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("backend", params(GAUSSIAN_PORTS))
def test_one_update_and_batch_update(backend, dtype):
    config, state, x, y = setup(dtype, num_outputs=2)
    port = backend.module("gaussian_network")
    native = backend.from_reference(state)
    args = (x[0], x[0], y[0], RATE)
    expected = reference_run(REF_UPDATE, state, *args, config=config)
    wide = truth(REF_UPDATE, state, *args, config=config)
    got_state, got = port.update(
        native, *(backend.to_native(a) for a in args[:3]), RATE, config=config
    )
    assert_close(backend.to_numpy(got), expected[1], dtype, "update prediction", truth=wide[1])
    got_ref = backend.to_reference(got_state)
    for i, (a, e, w) in enumerate(
        zip(got_ref.layers, expected[0].layers, wide[0].layers, strict=True)
    ):
        assert_close(a.weights, e.weights, dtype, f"layer {i} weights", truth=w.weights)
    # A batch with a repeated example (shared rows accumulate).
    idx = np.array([0, 1, 1, 2, 3, 0])
    rates = np.full(len(idx), RATE, dtype)
    args = (x[idx], x[idx], y[idx], rates)
    expected = reference_run(REF_BATCH_UPDATE, state, *args, config=config)
    wide = truth(REF_BATCH_UPDATE, state, *args, config=config)
    got_state, got = port.batch_update(native, *(backend.to_native(a) for a in args), config=config)
    assert_close(backend.to_numpy(got), expected[1], dtype, "batch prediction", truth=wide[1])
    for i, (a, e, w) in enumerate(
        zip(backend.to_reference(got_state).layers, expected[0].layers, wide[0].layers, strict=True)
    ):
        assert_close(a.weights, e.weights, dtype, f"batch layer {i} weights", truth=w.weights)
    # The port did not write into the state it was given.
    for a, b in zip(backend.to_reference(native).layers, state.layers, strict=True):
        np.testing.assert_array_equal(a.weights, b.weights)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("backend", params(GAUSSIAN_PORTS))
def test_stream(backend, dtype):
    """``STREAM`` online steps, then batch predictions of the trained model."""
    config, state, x, y = setup(dtype)
    port = backend.module("gaussian_network")
    rates = np.full(STREAM, RATE, dtype)
    with jax.enable_x64(dtype == "float64"):
        expected_state, expected = reference.fit_stream(
            jax.tree.map(np.asarray, state),
            x[:STREAM],
            x[:STREAM],
            y[:STREAM, 0],
            rates,
            config=config,
        )
        expected_state = jax.tree.map(np.asarray, expected_state)
    with jax.enable_x64(True):
        _, truth_out = reference.fit_stream(
            jax.tree.map(wide, state),
            *(wide(a) for a in (x[:STREAM], x[:STREAM])),
            wide(y[:STREAM, 0]),
            wide(rates),
            config=config._replace(dtype="float64"),
        )
    got_state, got = port.fit_stream(
        backend.from_reference(state),
        *(backend.to_native(a) for a in (x[:STREAM], x[:STREAM], y[:STREAM, 0], rates)),
        config=config,
    )
    assert_close(backend.to_numpy(got), expected, dtype, "stream predictions", truth=truth_out)
    got_ref = backend.to_reference(got_state)
    assert int(got_ref.step) == int(expected_state.step)
    test = x[STREAM:]
    expected_apply = reference_run(REF_BATCH_APPLY, expected_state, test, test, config=config)
    got_apply = port.batch_apply(
        got_state, backend.to_native(test), backend.to_native(test), config=config
    )
    # The two trained models differ by the float rounding of the stream, not more.
    tol = {"float64": 1e-10, "float32": 2e-3}[dtype]
    np.testing.assert_allclose(backend.to_numpy(got_apply), expected_apply, rtol=tol, atol=tol)
    assert backend.to_numpy(got_apply).dtype == np.dtype(dtype)
