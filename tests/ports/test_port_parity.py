"""Differential tests: every port against the reference, on random configurations.

In order: context indices (exactly equal), one ``apply``/``update``/``batch_update``, then
streams of a few hundred steps (online, and batches whose examples share rows) in float32 with
tight tolerances and in float64 to 1e-12. Every backend meets the same examples in a session
(``hypothesis.seed``), so each reference result is computed once and cached.
"""

from __future__ import annotations

import functools

import jax
import numpy as np
import pytest
from hypothesis import HealthCheck, given, seed, settings

import gln_jax
from gln_jax import GLNState, LayerState, make_config

from .port_harness import (
    PORTS,
    REF_APPLY,
    REF_BATCH_APPLY,
    REF_BATCH_CONTEXT,
    REF_BATCH_UPDATE,
    REF_CONTEXT,
    REF_SCAN_BATCH_UPDATE,
    REF_SCAN_UPDATE,
    REF_UPDATE,
    SESSION_SEED,
    Case,
    assert_close,
    assert_states_close,
    base_inputs,
    cases,
    clean_examples,
    make_stream,
    params,
    reference_state,
    widened,
)

same_examples = seed(SESSION_SEED)
#: Streams cost a compilation per configuration: fewer examples than the cheap checks.
STREAM_EXAMPLES = max(1, settings.default.max_examples * 2 // 5)
stream_settings = settings(
    max_examples=STREAM_EXAMPLES,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
STREAM_LENGTH = 240


def _numpy_tree(tree):
    return jax.tree.map(np.asarray, tree)


# --------------------------------------------------------------------------- contexts


@functools.lru_cache(maxsize=128)
def _reference_contexts(case: Case):
    state = reference_state(case)
    side = clean_examples(state, np.random.default_rng(case.seed), 12, dtype=case.config.dtype)
    batched = REF_BATCH_CONTEXT(state.layers, side, config=case.config)
    single = REF_CONTEXT(state.layers, side[0], config=case.config)
    return side, _numpy_tree(batched), _numpy_tree(single)


@pytest.mark.parametrize("backend", params(PORTS))
@same_examples
@given(case=cases())
def test_context_indices_equal_exactly(backend, case):
    _check_contexts(backend, case)


@pytest.mark.parametrize("backend", params(PORTS))
@same_examples
@given(case=cases(hyperplane_options=True))
def test_hyperplane_options_give_equal_contexts_and_steps(backend, case):
    """States drawn with ``hyperplane_normalize`` and ``hyperplane_bias_scale`` of every kind
    (raw or unit normals; offsets of scale 0, 1/4, 1, 3 or none): contexts equal exactly, and
    ``apply`` and one ``update`` equal the reference."""
    _check_contexts(backend, case)
    _check_one_step(backend, case)


def _check_contexts(backend, case: Case):
    config = case.config
    side, expected, expected_single = _reference_contexts(case)
    state = backend.from_reference(reference_state(case))
    context = backend.module("gating")
    got = context.batch_context_indices(state.layers, backend.to_native(side), config=config)
    single = context.context_indices(state.layers, backend.to_native(side[0]), config=config)
    assert len(got) == len(expected) == len(config.layer_sizes)
    for layer, (g, e) in enumerate(zip(got, expected, strict=True)):
        g = backend.to_numpy(g)
        assert g.dtype == np.int32, f"layer {layer}: {g.dtype}"
        np.testing.assert_array_equal(g, e, err_msg=f"layer {layer}")
    for layer, (g, e) in enumerate(zip(single, expected_single, strict=True)):
        np.testing.assert_array_equal(backend.to_numpy(g), e, err_msg=f"layer {layer}")


def _one_plane_state(offset: float) -> GLNState:
    """One neuron, one hyperplane ``z_0 > offset`` over two features."""
    layer = LayerState(
        weights=np.zeros((1, 1, 2, 2), np.float32),
        hyperplanes=np.array([[[[1.0, 0.0]]]], np.float32),
        hyperplane_bias=np.array([[[offset]]], np.float32),
    )
    return GLNState(layers=(layer,), step=np.zeros((), np.int32))


@pytest.mark.parametrize("backend", params(PORTS))
def test_gates_are_strict_on_the_hyperplane(backend):
    """``v . z == b`` exactly (in every summation order) gives bit 0: the test is ``>``."""
    config = make_config([1], 2, context_map_size=1, bias=False)
    state = backend.from_reference(_one_plane_state(0.5))
    side = np.array([[0.5, 0.25], [0.75, 0.25], [0.25, 0.5]], np.float32)
    expected = REF_BATCH_CONTEXT(_one_plane_state(0.5).layers, side, config=config)
    got = backend.module("gating").batch_context_indices(
        state.layers, backend.to_native(side), config=config
    )
    np.testing.assert_array_equal(backend.to_numpy(got[0]).ravel(), [0, 1, 0])
    np.testing.assert_array_equal(np.asarray(expected[0]).ravel(), [0, 1, 0])


# --------------------------------------------------------------------------- one step


def _one_example(case: Case, state: GLNState):
    rng = np.random.default_rng([case.seed, 1])
    config = case.config
    side = clean_examples(state, rng, 1, dtype=config.dtype)[0]
    inputs = base_inputs(rng, 1, config.base_prediction_size, config.dtype)[0]
    label = int(rng.integers(0, config.num_classes))
    rate = float(rng.choice([1e-3, 0.1, 3.0]))  # 3.0 drives rows into the weight clip
    return inputs, side, label, rate


def _one_batch(case: Case, state: GLNState, size: int = 6):
    """A batch drawn from two distinct examples, so its examples share rows."""
    rng = np.random.default_rng([case.seed, 2])
    config = case.config
    side = clean_examples(state, rng, 2, dtype=config.dtype)
    inputs = base_inputs(rng, 2, config.base_prediction_size, config.dtype)
    pick = rng.integers(0, 2, size)
    rates = rng.choice(np.array([0.0, 0.05, 0.8], config.dtype), size)
    labels = rng.integers(0, config.num_classes, size).astype(np.int32)
    return inputs[pick], side[pick], labels, rates


@functools.lru_cache(maxsize=128)
def _reference_steps(case: Case):
    config = case.config
    state = reference_state(case)
    inputs, side, label, rate = _one_example(case, state)
    applied = REF_APPLY(state, inputs, side, config=config)
    updated = REF_UPDATE(state, inputs, side, label, rate, config=config)
    batch = _one_batch(case, state)
    batched = REF_BATCH_UPDATE(state, *batch, config=config)
    batch_applied = REF_BATCH_APPLY(state, batch[0], batch[1], config=config)
    return (
        _numpy_tree(applied),
        _numpy_tree(updated),
        _numpy_tree(batched),
        _numpy_tree(batch_applied),
    )


def _assert_unchanged(backend, native_state, original: GLNState):
    """The port did not write into the state it was given."""
    after = backend.to_reference(native_state)
    for a, o in zip(after.layers, original.layers, strict=True):
        for field in LayerState._fields:
            np.testing.assert_array_equal(getattr(a, field), getattr(o, field), err_msg=field)
    assert int(after.step) == int(original.step)


@pytest.mark.parametrize("backend", params(PORTS))
@same_examples
@given(case=cases())
def test_apply_and_one_update_equal_the_reference(backend, case):
    _check_one_step(backend, case)


def _check_one_step(backend, case: Case):
    config = case.config
    original = reference_state(case)
    inputs, side, label, rate = _one_example(case, original)
    applied, (ref_state, ref_p), _, _ = _reference_steps(case)
    state = backend.from_reference(original)
    network = backend.module("network")

    p = network.apply(state, backend.to_native(inputs), backend.to_native(side), config=config)
    assert_close(backend.to_numpy(p), applied, config.dtype, "apply", loose=True)

    new_state, p = network.update(
        state, backend.to_native(inputs), backend.to_native(side), label, rate, config=config
    )
    assert_close(backend.to_numpy(p), ref_p, config.dtype, "update p", loose=True)
    assert_states_close(backend.to_reference(new_state), ref_state, config.dtype, loose=True)
    _assert_unchanged(backend, state, original)


@pytest.mark.parametrize("backend", params(PORTS))
@same_examples
@given(case=cases())
def test_one_batch_update_with_shared_rows_equals_the_reference(backend, case):
    config = case.config
    original = reference_state(case)
    batch = _one_batch(case, original)
    _, _, (ref_state, ref_p), batch_applied = _reference_steps(case)
    state = backend.from_reference(original)
    network = backend.module("network")
    p = network.batch_apply(
        state, backend.to_native(batch[0]), backend.to_native(batch[1]), config=config
    )
    assert_close(backend.to_numpy(p), batch_applied, config.dtype, "batch_apply", loose=True)
    new_state, p = network.batch_update(
        state, *(backend.to_native(a) for a in batch), config=config
    )
    assert_close(backend.to_numpy(p), ref_p, config.dtype, "batch_update p", loose=True)
    assert_states_close(backend.to_reference(new_state), ref_state, config.dtype, loose=True)
    _assert_unchanged(backend, state, original)


# --------------------------------------------------------------------------- streams


def _with_truth(run, case: Case):
    """``run(state, stream_arrays, config)`` on the reference, and for float32 cases also in
    float64 on the same data widened exactly (64-bit JAX for that call only): the truth that
    measures how ill-conditioned each step is."""
    state = reference_state(case)
    result = _numpy_tree(run(state, case))
    if case.config.dtype != "float32":
        return result, None
    with jax.enable_x64(True):
        wide = Case(case.config._replace(dtype="float64"), case.seed)
        truth = _numpy_tree(run(widened(state), wide, narrow=case))
    return result, truth


def _fit_run(batch_size: int):
    def run(state, case: Case, narrow: Case | None = None):
        stream = (
            widened(_stream(narrow or case, batch_size)) if narrow else _stream(case, batch_size)
        )
        return gln_jax.fit_stream(
            state,
            stream.inputs,
            stream.side_info,
            stream.targets,
            stream.rates,
            config=case.config,
            batch_size=batch_size,
        )

    return run


def _stream(case: Case, batch_size: int):
    state = reference_state(case)
    return make_stream(case, state, STREAM_LENGTH, pool=12, batch_size=batch_size)


@functools.lru_cache(maxsize=128)
def _reference_fit(case: Case, batch_size: int):
    return _with_truth(_fit_run(batch_size), case)


def _check_fit_stream(backend, case: Case, batch_size: int):
    """``fit_stream`` of the port equals the reference at every step and at the end."""
    config = case.config
    original = reference_state(case)
    stream = _stream(case, batch_size)
    (ref_state, ref_p), truth = _reference_fit(case, batch_size)
    truth_state, truth_p = truth if truth is not None else (None, None)
    state = backend.from_reference(original)
    new_state, p = backend.module("stream").fit_stream(
        state,
        backend.to_native(stream.inputs),
        backend.to_native(stream.side_info),
        backend.to_native(stream.targets),
        backend.to_native(stream.rates),
        config=config,
        batch_size=batch_size,
    )
    assert_close(backend.to_numpy(p), ref_p, config.dtype, "p at every step", truth=truth_p)
    assert_states_close(backend.to_reference(new_state), ref_state, config.dtype, truth=truth_state)
    _assert_unchanged(backend, state, original)


# Online (exact), and batches of 7 drawn from a pool of 12 distinct examples: examples of a
# batch share rows, and 240 = 34 * 7 + 2 ends in a smaller batch.
@pytest.mark.parametrize("batch_size", [1, 7])
@pytest.mark.parametrize("backend", params(PORTS))
@same_examples
@stream_settings
@given(case=cases())
def test_stream_float32_matches_at_every_step(backend, batch_size, case):
    _check_fit_stream(backend, case, batch_size)


@pytest.mark.parametrize("batch_size", [1, 7])
@pytest.mark.parametrize("backend", params(PORTS))
@same_examples
@stream_settings
@given(case=cases("float64"))
def test_stream_float64_matches_to_1e12(x64, backend, batch_size, case):
    _check_fit_stream(backend, case, batch_size)


SCAN_SHAPE = (6, 6)


def _scan_stream(case: Case):
    return make_stream(case, reference_state(case), 36, pool=6, batch_size=SCAN_SHAPE[1])


def _online_run(state, case: Case, narrow: Case | None = None):
    stream = widened(_scan_stream(narrow)) if narrow else _scan_stream(case)
    return REF_SCAN_UPDATE(
        state,
        stream.inputs,
        stream.side_info,
        stream.targets,
        stream.rates,
        config=case.config,
        mask=stream.mask,
    )


def _batched_run(state, case: Case, narrow: Case | None = None):
    stream = widened(_scan_stream(narrow)) if narrow else _scan_stream(case)
    shape = SCAN_SHAPE
    return REF_SCAN_BATCH_UPDATE(
        state,
        stream.inputs.reshape(*shape, -1),
        stream.side_info.reshape(*shape, -1),
        stream.targets.reshape(shape),
        stream.rates.reshape(shape),
        config=case.config,
        mask=stream.mask.reshape(shape),
    )


@functools.lru_cache(maxsize=128)
def _reference_scans(case: Case):
    return _with_truth(_online_run, case), _with_truth(_batched_run, case)


def _check_against(backend, got, reference, dtype: str, what: str):
    (ref_state, ref_p), truth = reference
    truth_state, truth_p = truth if truth is not None else (None, None)
    new_state, p = got
    assert_close(backend.to_numpy(p), ref_p, dtype, f"{what} p", truth=truth_p)
    assert_states_close(backend.to_reference(new_state), ref_state, dtype, truth=truth_state)


@pytest.mark.parametrize("backend", params(PORTS))
@same_examples
@stream_settings
@given(case=cases())
def test_masked_scans_equal_the_reference(backend, case):
    """``scan_update`` / ``scan_batch_update`` with masked-out (padding) examples."""
    config = case.config
    original = reference_state(case)
    stream = _scan_stream(case)
    online, batched = _reference_scans(case)
    native = backend.to_native
    scans = backend.module("scan")
    state = backend.from_reference(original)
    got = scans.scan_update(
        state,
        native(stream.inputs),
        native(stream.side_info),
        native(stream.targets),
        native(stream.rates),
        config=config,
        mask=native(stream.mask),
    )
    _check_against(backend, got, online, config.dtype, "scan_update")
    shape = SCAN_SHAPE
    got = scans.scan_batch_update(
        state,
        native(stream.inputs.reshape(*shape, -1)),
        native(stream.side_info.reshape(*shape, -1)),
        native(stream.targets.reshape(shape)),
        native(stream.rates.reshape(shape)),
        config=config,
        mask=native(stream.mask.reshape(shape)),
    )
    _check_against(backend, got, batched, config.dtype, "scan_batch_update")
    _assert_unchanged(backend, state, original)
