"""Every promise of the facade holds under hostile input, on every backend.

Each test asserts the exception type, that the message names the problem, and that the model's
state is unchanged. Models are parametrised over the backend registry (``gln_jax.GLN(backend)``)
and, where their code paths differ, over the ports' own classes; shapes are shared so JAX and
TensorFlow compile little.
"""

from __future__ import annotations

import copy
import importlib
import json
import pickle
import sys
import threading
from fractions import Fraction

import jax
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gln_jax import GLN
from gln_jax.api import backends, memory
from gln_jax.core.types import make_config, max_logit, smallest_pred_clipping

N = 4
X = np.array([[0.0, 1.0, 0.5, 0.5]], np.float32)  # where the arithmetic breaks first
RNG = np.random.default_rng(9)
DATA = RNG.random((8, N), dtype=np.float32)
LABELS = RNG.integers(0, 2, 8)

BACKENDS = [
    pytest.param(
        b,
        marks=pytest.mark.skipif(not backends.is_available(b), reason=f"{b} not installed"),
    )
    for b in backends.canonical_names()
]
PORTS = [
    pytest.param(
        b.port,
        marks=pytest.mark.skipif(not backends.is_available(b.name), reason=f"{b} missing"),
    )
    for b in backends.BACKENDS
    if b.port is not None
]


def build(kind: str, *args, **kwargs):
    """``gln_jax.GLN(kind, ...)`` for a backend name, ``<port>.GLN(...)`` for a port package."""
    if kind.startswith("gln_"):
        return importlib.import_module(kind).GLN(*args, **kwargs)
    return GLN(kind, *args, **kwargs)


def numpy(value) -> np.ndarray:
    if hasattr(value, "detach"):
        return value.detach().cpu().numpy()
    if hasattr(value, "numpy") and not isinstance(value, np.ndarray):
        return value.numpy()
    return np.asarray(value)


def assert_same_state(before, after):
    assert int(before.step) == int(after.step)
    for a, b in zip(before.layers, after.layers, strict=True):
        for name in ("weights", "hyperplanes", "hyperplane_bias"):
            np.testing.assert_array_equal(getattr(a, name), getattr(b, name))


def assert_rejected(model, call, error, *words):
    """``call(model)`` raises ``error`` whose message holds every word; state unchanged."""
    before = model.reference_state()
    with pytest.raises(error) as info:
        call(model)
    for word in words:
        assert word in str(info.value), (word, str(info.value))
    assert_same_state(before, model.reference_state())


def trained(kind: str, **kwargs):
    model = build(kind, [2, 1], N, learning_rate=0.1, **kwargs)
    model.fit(DATA, LABELS)
    return model


def tamper(path, out, **changes):
    """A copy of a checkpoint whose config JSON has ``changes`` (the arrays untouched)."""
    with np.load(path) as stored:
        members = {name: stored[name] for name in stored.files}
    meta = json.loads(str(members["config"]))
    meta.update(changes)
    members["config"] = np.array(json.dumps(meta))
    np.savez(out, **members)
    return out


# ------------------------------------------------------------------- 1-3: dtype-aware numerics
@pytest.mark.parametrize("backend", BACKENDS)
def test_1_pred_clipping_the_dtype_cannot_hold_is_rejected(backend):
    smallest = smallest_pred_clipping("float32")
    with pytest.raises(ValueError, match="pred_clipping") as info:
        build(backend, [2, 1], N, pred_clipping=1e-10)
    assert f"{smallest:.6g}" in str(info.value) and "float32" in str(info.value)
    model = build(backend, [2, 1], N, pred_clipping=smallest, learning_rate=1.0)
    for _ in range(3):
        model.predict(X, target=[True])
    probs = numpy(model.predict(X, return_probs=True))
    assert np.isfinite(probs).all() and 0 < probs[0] < 1


def test_1_pred_clipping_limit_follows_the_dtype():
    assert smallest_pred_clipping("float32") == np.finfo(np.float32).epsneg
    assert 1 - np.float32(smallest_pred_clipping("float32")) < 1
    assert make_config([2, 1], N, pred_clipping=1e-10, dtype="float64").pred_clipping == 1e-10
    with pytest.raises(ValueError, match="smallest allowed value for float64"):
        make_config([2, 1], N, pred_clipping=1e-17, dtype="float64")


@pytest.mark.parametrize("backend", ["numpy"])
def test_1_to_3_the_same_checks_run_on_load(backend, tmp_path):
    model = trained(backend)
    path = tmp_path / "good.npz"
    model.save(path)
    for change, word in (
        ({"pred_clipping": 1e-10}, "pred_clipping"),
        ({"weight_clipping": 1e300}, "weight_clipping"),
        ({"learning_rate": 1e300}, "learning_rate"),
    ):
        bad = tamper(path, tmp_path / f"bad_{word}.npz", **change)
        with pytest.raises(ValueError, match=word):
            GLN.load(bad, backend)
    with pytest.raises(ValueError, match="learning_rate"):
        GLN.load(path, backend, learning_rate=1e300)


@pytest.mark.parametrize("backend", BACKENDS)
def test_2_learning_rate_whose_step_overflows_is_rejected(backend):
    with pytest.raises(ValueError, match=r"learning_rate=1e\+300 is not a positive finite"):
        build(backend, [2, 1], N, learning_rate=1e300)
    with pytest.raises(ValueError, match="learning_rate=1e-50 is not a positive finite float32"):
        build(backend, [2, 1], N, learning_rate=1e-50)
    # 1e37 keeps a one-example step finite, not a 64-example batch that adds 64 steps up.
    model = build(backend, [2, 1], N, learning_rate=1e37)
    batch = np.repeat(X, 64, 0)
    assert_rejected(
        model,
        lambda m: m.fit(batch, np.ones(64, int), batch_size=64),
        ValueError,
        "learning_rate",
        "64 examples",
    )
    model.predict(X, target=[True])
    assert np.isfinite(numpy(model.predict(X, return_probs=True))).all()


@pytest.mark.parametrize("backend", BACKENDS)
def test_2_schedules_get_the_same_step_check(backend):
    model = build(backend, [2, 1], N, learning_rate=lambda step: 1e37)
    assert_rejected(
        model,
        lambda m: m.predict(np.repeat(X, 64, 0), target=np.ones(64, int)),
        ValueError,
        "learning_rate",
        "float32",
    )


@pytest.mark.parametrize("backend", BACKENDS)
def test_3_weight_clipping_must_be_finite_in_the_dtype(backend):
    with pytest.raises(ValueError, match=r"weight_clipping=1e\+300 is too large for float32"):
        build(backend, [2, 1], N, weight_clipping=1e300)
    # The largest weighted sum (weight_clipping * inputs * max|logit|) must stay finite too.
    config = make_config([2, 1], N)
    largest = float(np.finfo(np.float32).max) / (N + 1) / max_logit(config)
    with pytest.raises(ValueError, match="weight_clipping"):
        build(backend, [2, 1], N, weight_clipping=largest * 1.01)
    model = build(backend, [2, 1], N, weight_clipping=largest * 0.5, learning_rate=1e30)
    model.predict(X, target=[True])
    assert np.isfinite(numpy(model.predict(X, return_probs=True))).all()


# ------------------------------------------------------------------- 4: targets, side information
@pytest.mark.parametrize("backend", BACKENDS)
def test_4_bool_targets_on_a_multiclass_model_are_rejected(backend):
    model = build(backend, [2, 1], N, num_classes=3)
    assert_rejected(model, lambda m: m.predict(X, target=[True]), TypeError, "bools", "3 classes")
    assert_rejected(model, lambda m: m.fit(DATA, LABELS > 0), TypeError, "bools")
    binary = build(backend, [2, 1], N)
    binary.predict(X, target=[True])
    assert int(binary.step) == 1


@pytest.mark.parametrize("backend", BACKENDS)
def test_4_side_information_that_overflows_the_gates_is_rejected(backend):
    model = build(backend, [2, 1], N)
    huge = np.array([[3e38, -3e38, 3e38, -3e38]], np.float32)
    assert_rejected(model, lambda m: m.predict(huge), ValueError, "input", "overflow")
    assert_rejected(model, lambda m: m.predict(huge, target=[True]), ValueError, "magnitude")
    limit = model._pipeline.side_info_limit(model.config, model.reference_state)
    state = model.reference_state()
    l1 = max(np.abs(layer.hyperplanes).astype(np.float64).sum(-1).max() for layer in state.layers)
    assert limit * l1 < float(np.finfo(np.float32).max)  # the bound of the docstring holds
    large = np.array([[0.9, -0.9, 0.5, -0.2]], np.float32) * np.float32(limit)
    with pytest.warns(UserWarning, match="outside \\[0, 1\\]"):  # the inputs are base predictions
        probs = numpy(model.predict(large, return_probs=True))
    with pytest.warns(UserWarning, match="outside \\[0, 1\\]"):
        expected = GLN("jax", [2, 1], N).predict(large, return_probs=True)
    np.testing.assert_allclose(probs, expected, rtol=1e-5)  # every backend agrees at the bound


# ------------------------------------------------------------------- 5-6: memory
@pytest.mark.parametrize("backend", BACKENDS)
def test_5_construction_needing_more_than_available_memory_fails_fast(backend, monkeypatch):
    config = make_config([2, 1], N)
    needed = memory.construction_bytes(config, backend)
    monkeypatch.setattr(memory, "available_memory_bytes", lambda: needed - 1)
    with pytest.raises(ValueError, match=f"backend '{backend}'") as info:
        build(backend, [2, 1], N)
    message = str(info.value)
    assert f"needs about {memory.format_bytes(needed)}" in message
    assert f"the {memory.format_bytes(needed - 1)} of memory available" in message
    monkeypatch.setattr(memory, "available_memory_bytes", lambda: needed)
    build(backend, [2, 1], N)


def test_5_load_checks_memory_for_the_target_backend(tmp_path, monkeypatch):
    path = tmp_path / "model.npz"
    trained("numpy").save(path)
    config = make_config([2, 1], N)
    jax_needs = memory.construction_bytes(config, "jax")
    assert (
        memory.construction_bytes(config, "tf")
        > memory.construction_bytes(config, "numpy")
        > jax_needs
    )  # the measured factors, written once in the registry
    monkeypatch.setattr(memory, "available_memory_bytes", lambda: jax_needs)
    GLN.load(path, "jax")
    with pytest.raises(ValueError, match="backend 'numpy'"):
        GLN.load(path, "numpy")


def test_5_available_memory_reads_psutil_or_proc_meminfo(monkeypatch):
    with_psutil = memory.available_memory_bytes()
    monkeypatch.setitem(sys.modules, "psutil", None)  # import psutil now raises ImportError
    from_proc = memory.available_memory_bytes()
    assert with_psutil > 0 and from_proc > 0
    assert abs(with_psutil - from_proc) < 0.5 * max(with_psutil, from_proc)


@pytest.mark.parametrize("backend", BACKENDS)
def test_6_batch_size_is_clamped_to_the_data(backend):
    big = build(backend, [2, 1], N, learning_rate=0.1)
    exact = build(backend, [2, 1], N, learning_rate=0.1)
    np.testing.assert_array_equal(
        numpy(big.fit(DATA, LABELS, batch_size=10**6)), numpy(exact.fit(DATA, LABELS, batch_size=8))
    )
    for a, b in zip(big.reference_state().layers, exact.reference_state().layers, strict=True):
        np.testing.assert_allclose(a.weights, b.weights, rtol=1e-6)


def test_6_jax_chunks_follow_the_data_not_the_batch_size(monkeypatch):
    from gln_jax.core import stream

    shapes = []
    original = stream._fit_chunk

    def spy(state, inputs, *args, **kwargs):
        shapes.append((inputs.shape[0], kwargs["batch_size"]))
        return original(state, inputs, *args, **kwargs)

    monkeypatch.setattr(stream, "_fit_chunk", spy)
    GLN("jax", [2, 1], N).fit(DATA, LABELS, batch_size=10**6)
    assert shapes == [(8, 8)]


@pytest.mark.parametrize("backend", BACKENDS)
def test_6_huge_num_epochs_is_rejected_before_allocating(backend):
    model = build(backend, [2, 1], N)
    assert_rejected(
        model,
        lambda m: m.fit(DATA, LABELS, num_epochs=10**12),
        ValueError,
        "num_epochs=1000000000000",
        "GiB",
    )


# ------------------------------------------------------------------- 7-9: types and messages
@pytest.mark.parametrize("kind", [*BACKENDS, *PORTS])
@pytest.mark.parametrize("classes", [2, 3])
def test_7_an_empty_batch_gives_an_empty_result_everywhere(kind, classes):
    model = build(kind, [2, 1], N, num_classes=classes)
    before = model.reference_state()
    full_probs = model.predict(X, return_probs=True)
    full_classes = model.predict(X)
    empty = np.zeros((0, N))
    for kwargs, like in (({"return_probs": True}, full_probs), ({}, full_classes)):
        for target in (None, np.zeros(0, int)):
            out = model.predict(empty, target=target, **kwargs)
            assert type(out) is type(like)
            assert tuple(out.shape) == (0, *tuple(like.shape)[1:])
            assert numpy(out).dtype == numpy(like).dtype
    out = model.fit(empty, np.zeros(0, int), num_epochs=3)
    assert tuple(out.shape) == (0,) and numpy(out).dtype == numpy(full_classes).dtype
    assert_same_state(before, model.reference_state())


@pytest.mark.parametrize("backend", BACKENDS)
def test_8_seed_and_meta_tensors_raise_value_errors_naming_the_argument(backend):
    torch = pytest.importorskip("torch")
    with pytest.raises(ValueError, match="seed"):
        build(backend, [2, 1], N, seed=2**64)
    with pytest.raises(TypeError, match="seed"):
        build(backend, [2, 1], N, seed=1.5)
    model = build(backend, [2, 1], N)
    meta = torch.zeros((1, N), device="meta")
    assert_rejected(model, lambda m: m.predict(meta), ValueError, "input", "meta")
    target = torch.zeros(1, dtype=torch.bool, device="meta")
    assert_rejected(model, lambda m: m.predict(X, target=target), ValueError, "target", "meta")


@pytest.mark.parametrize("backend", BACKENDS)
def test_9_fraction_learning_rate_is_a_real_number(backend):
    model = build(backend, [2, 1], N, learning_rate=Fraction(1, 1000))
    assert model.learning_rate == 0.001 and type(model.learning_rate) is float
    same = build(backend, [2, 1], N, learning_rate=0.001)
    np.testing.assert_array_equal(
        numpy(model.fit(DATA, LABELS, num_epochs=2)), numpy(same.fit(DATA, LABELS, num_epochs=2))
    )
    assert_same_state(model.reference_state(), same.reference_state())
    with pytest.raises(TypeError, match="learning_rate must be a positive real number"):
        build(backend, [2, 1], N, learning_rate="0.1")
    with pytest.raises(TypeError, match="learning_rate"):
        model.learning_rate = "0.1"  # a later assignment is checked as well
    assert model.learning_rate == 0.001


@pytest.mark.parametrize("backend", BACKENDS)
def test_9_bad_schedules_and_base_predictors_are_named(backend):
    shape = build(backend, [2, 1], N, learning_rate=lambda step: np.ones(3))
    assert_rejected(
        shape,
        lambda m: m.predict(X, target=[True]),
        ValueError,
        "learning_rate schedule",
        "shape (3,)",
        "step 0",
    )
    assert_rejected(shape, lambda m: m.fit(DATA, LABELS), ValueError, "one rate per step")
    text = build(backend, [2, 1], N, learning_rate=lambda step: "fast")
    assert_rejected(
        text, lambda m: m.predict(X, target=[True]), TypeError, "learning_rate schedule", "'fast'"
    )
    with pytest.raises(TypeError, match="base_predictor must return real numbers"):
        build(backend, [2, 1], N, base_predictor=lambda a: np.full(a.shape, "a"))
    flips = {"calls": 0}

    def late_strings(a):  # numbers when probed at construction, strings afterwards
        flips["calls"] += 1
        return a if flips["calls"] == 1 else np.full(a.shape, "a")

    model = build(backend, [2, 1], N, base_predictor=late_strings)
    assert_rejected(model, lambda m: m.predict(X, target=[True]), TypeError, "base_predictor")


@pytest.mark.heavy
@pytest.mark.parametrize("backend", BACKENDS)
def test_9_torch_bfloat16_input_is_widened_exactly(backend):
    torch = pytest.importorskip("torch")
    model = build(backend, [2, 1], N, learning_rate=0.1)
    x16 = torch.tensor(DATA).to(torch.bfloat16)
    exact = x16.float().numpy()
    twin = build(backend, [2, 1], N, learning_rate=0.1)
    np.testing.assert_array_equal(
        numpy(model.predict(x16, target=LABELS, return_probs=True)),
        numpy(twin.predict(exact, target=LABELS, return_probs=True)),
    )
    assert_same_state(model.reference_state(), twin.reference_state())
    jax_bf16 = jax.numpy.asarray(exact, jax.numpy.bfloat16)  # ml_dtypes arrays too
    np.testing.assert_array_equal(
        numpy(model.predict(jax_bf16, return_probs=True)),
        numpy(twin.predict(exact, return_probs=True)),
    )


# ------------------------------------------------------------------- 14: all-or-nothing fit
def _inject(kind: str, model, monkeypatch, fail_at: int):
    """Makes the ``fail_at``-th call of the backend's inner training loop raise
    ``KeyboardInterrupt`` (one call per epoch here: 8 examples, one chunk)."""
    calls = []

    def wrap(original):
        def failing(*args, **kwargs):
            calls.append(1)
            if len(calls) == fail_at:
                raise KeyboardInterrupt("injected")
            return original(*args, **kwargs)

        return failing

    backend = backends.get_backend(kind).name if not kind.startswith("gln_") else kind
    if backend == "jax":
        from gln_jax.core import stream

        monkeypatch.setattr(stream, "_fit_chunk", wrap(stream._fit_chunk))
    elif backend in ("numpy", "gln_numpy"):
        stream = importlib.import_module("gln_numpy.stream")
        monkeypatch.setattr(stream, "_online_loop", wrap(stream._online_loop))
    elif backend in ("pytorch", "gln_torch"):
        engine = importlib.import_module("gln_torch.engine")
        monkeypatch.setattr(engine, "fit_chunks", wrap(engine.fit_chunks))
    else:
        runner = model._runner  # gln_tf.GLN holds its module; GLN("tf")'s engine state is one
        compiled = (runner.module if hasattr(runner, "module") else runner.state).compiled
        monkeypatch.setattr(compiled, "online", wrap(compiled.online))
    return calls


@pytest.mark.parametrize("kind", [*BACKENDS, *PORTS])
def test_14_fit_interrupted_in_a_later_epoch_changes_nothing(kind, monkeypatch):
    model = trained(kind)
    before = model.reference_state()
    calls = _inject(kind, model, monkeypatch, fail_at=3)
    with pytest.raises(KeyboardInterrupt):
        model.fit(DATA, LABELS, num_epochs=3)
    assert len(calls) == 3  # the first two epochs had been learned when it struck
    assert_same_state(before, model.reference_state())
    monkeypatch.undo()
    model.fit(DATA, LABELS, num_epochs=3)  # and the model still trains afterwards
    assert int(model.reference_state().step) == int(before.step) + 24


@pytest.mark.parametrize("kind", [*BACKENDS, *PORTS])
def test_14_schedule_raising_at_step_k_changes_nothing(kind):
    def schedule(step):
        if step >= 19:
            raise RuntimeError("schedule broke at step 19")
        return 0.1

    model = build(kind, [2, 1], N, learning_rate=schedule)
    model.fit(DATA, LABELS)
    before = model.reference_state()
    with pytest.raises(RuntimeError, match="step 19"):
        model.fit(DATA, LABELS, num_epochs=3)
    assert_same_state(before, model.reference_state())


# ------------------------------------------------------------------- 15: threads
@pytest.mark.parametrize("kind", [*BACKENDS, *PORTS])
def test_15_one_model_shared_by_threads_loses_no_update(kind):
    shared = build(kind, [2, 1], N, learning_rate=0.01)
    alone = build(kind, [2, 1], N, learning_rate=0.01)
    errors = []

    def work():
        try:
            for _ in range(20):
                shared.predict(X, target=[True])
                shared.reference_state()
        except Exception as err:  # noqa: BLE001 - reported below
            errors.append(err)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    for _ in range(80):  # the same example every time: the order of the threads cannot matter
        alone.predict(X, target=[True])
    after, expected = shared.reference_state(), alone.reference_state()
    assert int(after.step) == int(expected.step) == 80
    for a, b in zip(after.layers, expected.layers, strict=True):
        np.testing.assert_array_equal(a.weights, b.weights)


@pytest.mark.parametrize("kind", [*BACKENDS, *PORTS])
def test_15_copies_get_their_own_lock(kind):
    model = trained(kind)
    lock = model._lock
    twin = copy.deepcopy(model)
    assert twin._lock is not lock and twin._lock is not None
    np.testing.assert_array_equal(numpy(twin.predict(DATA)), numpy(model.predict(DATA)))
    if kind in ("jax", "numpy", "gln_numpy", "pytorch", "gln_torch"):
        clone = pickle.loads(pickle.dumps(model))
        assert clone._lock is not lock
        np.testing.assert_array_equal(numpy(clone.predict(DATA)), numpy(model.predict(DATA)))


# ------------------------------------------------------------------- property: construct or train
@settings(
    max_examples=8,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    derandomize=True,
)
@given(
    pred_clipping=st.floats(1e-12, 0.49),
    weight_clipping=st.floats(1e-6, 1e40),
    learning_rate=st.floats(1e-40, 1e39),
    context_map_size=st.integers(0, 2),
    num_classes=st.sampled_from([2, 3]),
    context_bias=st.booleans(),
)
def test_random_hyperparameters_raise_at_construction_or_train_finitely(**hyper):
    kinds = [b for b in backends.canonical_names() if backends.is_available(b)]
    rng = np.random.default_rng(0)
    x = rng.random((200, N), dtype=np.float32)
    y = rng.integers(0, hyper["num_classes"], 200)
    outcomes = []
    for kind in kinds:
        try:
            model = build(kind, [2, 1], N, **hyper)
        except (ValueError, TypeError) as err:
            outcomes.append(type(err))
            continue
        outcomes.append(None)
        model.fit(x, y)
        probs = numpy(model.predict(x, return_probs=True))
        assert np.isfinite(probs).all() and (probs > 0).all() and (probs < 1).all(), kind
        assert np.isfinite(model.reference_state().layers[0].weights).all()
    assert len(set(outcomes)) == 1, dict(zip(kinds, outcomes, strict=True))  # one verdict
