"""The kernel's entries refuse inputs that do not fit, with a Python exception naming why."""

import functools
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gln_jax
from gln_jax import make_config
from gln_jax.core import kernel
from gln_jax.core.kernel import gates, library, online

WIDTH = 6


def _config(sizes=(3, 1), classes=3, dtype="float32"):
    return make_config(list(sizes), WIDTH, context_map_size=2, num_classes=classes, dtype=dtype)


def _arguments(config, steps=4):
    """Weights, x0, contexts, targets and rates of a call that the kernel accepts."""
    state = gln_jax.init(jax.random.key(0), config)
    weights = tuple(layer.weights for layer in state.layers)
    dtype = jnp.dtype(config.dtype)
    x0 = jnp.zeros((steps, WIDTH + 1), dtype)
    contexts = tuple(
        jnp.zeros((steps, config.num_models, k), jnp.int32) for k in config.layer_sizes
    )
    targets = jnp.zeros((steps, config.num_models), dtype)
    rates = jnp.full((steps,), 0.1, dtype)
    return weights, x0, contexts, targets, rates


def _refused(match, fn, *args, **kwargs):
    with pytest.raises(jax.errors.JaxRuntimeError, match=match):
        jax.block_until_ready(fn(*args, **kwargs))


def test_a_well_formed_call_runs(compiled):
    config = _config()
    weights, x0, contexts, targets, rates = _arguments(config)
    new, p = online.online_fit(weights, x0, contexts, targets, rates, config=config)
    assert p.shape == (4, 3) and len(new) == 2


def test_a_float64_config_with_a_float32_state_is_refused(compiled, x64):
    config32, config64 = _config(), _config(dtype="float64")
    state = gln_jax.init(jax.random.key(0), config32)
    x = np.random.default_rng(0).random((4, WIDTH))
    y, rates = np.array([0, 1, 2, 0]), np.full(4, 0.1)
    _refused(
        "layer 0: weights are float32 but x0 is float64",
        kernel.kernel_scan_update,
        state,
        x,
        x,
        y,
        rates,
        config=config64,
    )


def test_layer_counts_that_disagree_are_refused(compiled):
    config = _config((4, 3, 1))
    weights, x0, contexts, targets, rates = _arguments(config)
    with pytest.raises(ValueError, match="3 layers of weights but 2 of context indices"):
        online.online_fit(weights, x0, contexts[:2], targets, rates, config=config)
    other = _config((4, 1))  # weights of a [4, 3, 1] network under a [4, 1] config's gates
    state = gln_jax.init(jax.random.key(0), config)
    x = np.random.default_rng(0).random((4, WIDTH)).astype(np.float32)
    matrix = gates.gate_matrix(gln_jax.init(jax.random.key(0), other).layers)
    with pytest.raises(ValueError, match="3 layers of weights but 2 of context indices"):
        kernel.kernel_weights_update(
            tuple(layer.weights for layer in state.layers),
            state.step,
            matrix,
            x,
            x,
            np.zeros(4, np.int32),
            np.full(4, 0.1, np.float32),
            config=other,
        )
    # the foreign call checks the count itself, whatever its caller
    results = (jax.ShapeDtypeStruct((4, 3), jnp.float32),)
    _refused(
        r"num_layers = 3 layers \(6 buffers after rates\), got 5",
        lambda: jax.ffi.ffi_call(online.TARGET, results)(
            x0,
            targets,
            rates,
            *contexts[:2],
            *weights,
            num_layers=np.int64(3),
            num_threads=np.int64(1),
            pred_clipping=np.float64(config.pred_clipping),
            weight_clipping=np.float64(config.weight_clipping),
            bias=np.bool_(True),
            learn=np.bool_(False),
            batch_size=np.int64(1),
        ),
    )


def test_shapes_that_disagree_name_the_buffer(compiled):
    config = _config()
    weights, x0, contexts, targets, rates = _arguments(config)
    call = functools.partial(online.online_fit, config=config)
    _refused(
        r"layer 1: weights must be \[C, K, R, I\] with C = 3, K = 1 .* I = 4, got float32 "
        r"\[3, 1, 4, 5\]",
        online.online_predict,
        (weights[0], jnp.zeros((3, 1, 4, 5), jnp.float32)),
        x0,
        contexts,
        config=config,
    )
    _refused(
        r"layer 0: weights must be .* I = 6, got float32 \[3, 3, 4, 7\]",
        online.online_predict,
        weights,
        x0[:, :WIDTH],
        contexts,
        config=config,
    )
    _refused(
        "layer 0: contexts must be int32",
        call,
        weights,
        x0,
        (contexts[0][:2], contexts[1]),
        targets,
        rates,
    )
    _refused(
        "the last layer must have one neuron",
        online.online_predict,
        weights[:1],
        x0,
        contexts[:1],
        config=config,
    )


def test_bad_attributes_are_refused(compiled):
    config = _config()
    weights, x0, contexts, targets, rates = _arguments(config)
    call = functools.partial(online.online_fit, weights, x0, contexts, targets, rates)
    _refused("num_threads is 0, must be at least 1", call, config=config, threads=0)
    _refused(
        r"pred_clipping is 0.0+, must lie in \(0, 0.5\)",
        call,
        config=config._replace(pred_clipping=0.0),
    )
    _refused(
        "weight_clipping is inf",
        call,
        config=config._replace(weight_clipping=float("inf")),
    )


def test_the_gating_call_names_its_mismatches(compiled, x64):
    config = _config()
    matrix = gates.gate_matrix(gln_jax.init(jax.random.key(0), config).layers)
    x = np.ones((2, WIDTH), np.float32)
    _refused(
        r"hyperplanes_t must be \[N, J\] with N = 5",
        gates.kernel_context_indices,
        matrix,
        x[:, :5],
        config=config,
    )
    _refused(
        "num_threads is 0",
        gates.kernel_context_indices,
        matrix,
        x,
        config=config,
        threads=0,
    )


def test_a_config_without_layers_is_refused_and_the_process_lives(compiled):
    """Once a segmentation fault: the call reads the first layer's shapes."""
    script = (
        "import jax, jax.numpy as jnp, gln_jax; from gln_jax import make_config; "
        "from gln_jax.core.kernel import online; "
        "config = make_config([1], 6, num_classes=2)._replace(layer_sizes=()); "
        "x0 = jnp.zeros((3, 7), jnp.float32); t = jnp.zeros((3, 2), jnp.float32); "
        "r = jnp.zeros((3,), jnp.float32)\n"
        "try:\n"
        "    jax.block_until_ready(online.online_fit((), x0, (), t, r, config=config))\n"
        "except jax.errors.JaxRuntimeError as err:\n"
        "    print('refused:', str(err).splitlines()[0])\n"
    )
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    env.pop(library.SWITCH, None)
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=600
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "refused:" in proc.stdout and "num_layers is 0" in proc.stdout


def test_the_weights_entry_equals_the_state_entry(compiled):
    config = _config((4, 3, 1))
    state = gln_jax.init(jax.random.key(3), config)
    rng = np.random.default_rng(3)
    x = rng.random((8, WIDTH)).astype(np.float32)
    y, rates = rng.integers(0, 3, 8), np.full(8, 0.05, np.float32)
    want_state, want_p = kernel.kernel_scan_update(state, x, x, y, rates, config=config)
    weights, step, p = kernel.kernel_weights_update(
        tuple(layer.weights for layer in state.layers),
        state.step,
        gates.gate_matrix(state.layers),
        x,
        x,
        y,
        rates,
        config=config,
    )
    np.testing.assert_array_equal(p, want_p)
    assert int(step) == int(want_state.step) == 8
    for got, want in zip(weights, want_state.layers, strict=True):
        np.testing.assert_array_equal(got, want.weights)
    with pytest.raises(ValueError, match="hyperplanes or their gates"):
        kernel.kernel_weights_update(weights, step, None, x, x, y, rates, config=config)
