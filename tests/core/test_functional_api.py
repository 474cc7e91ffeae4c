"""The functional API as JAX code uses it: a static config, trace-time argument checks,
schedules in every driver, a route to choose, and states that ``jax.export`` serialises."""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import pickle
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import gln_jax
from gln_jax import ensemble
from gln_jax.core import kernel
from gln_jax.core._transforms import make_transform
from gln_jax.core.scan import example_steps

TYPECHECK = os.environ.get("GLN_JAX_TYPECHECK", "") == "1"
CONFIG = gln_jax.make_config([8, 8, 1], 64)
MULTI = gln_jax.make_config([4, 4, 1], 64, num_classes=10)
RNG = np.random.default_rng(0)
XS = jnp.asarray(RNG.uniform(size=(64, 64)), jnp.float32)
LABELS = jnp.asarray(RNG.integers(0, 10, 64))
BITS = LABELS % 2


def state_of(config=CONFIG, seed=0):
    return gln_jax.init(jax.random.key(seed), config)


def assert_trees_equal(a, b):
    jax.tree.map(np.testing.assert_array_equal, a, b)


# --- the config is static ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "config",
    [
        CONFIG,
        gln_jax.make_gaussian_config([4, 1], 3),
        make_transform("standardize", base_gain=2.0),
    ],
    ids=["bernoulli", "gaussian", "transform"],
)
def test_tree_map_passes_a_config_by(config):
    assert jax.tree.leaves(config) == []
    assert jax.tree.map(lambda a: a * 2, config) == config
    doubled = jax.tree.map(lambda a: a * 2, {"config": config, "x": 1.0})
    assert doubled == {"config": config, "x": 2.0}


def test_plain_jit_takes_a_pytree_holding_a_config():
    traces = []

    @jax.jit
    def predict(module, x):
        traces.append(1)
        return gln_jax.apply(module["state"], x, x, config=module["config"])

    module = {"state": state_of(MULTI), "config": MULTI}
    p = predict(module, XS[0])
    predict({"state": state_of(MULTI, 1), "config": MULTI}, XS[1])
    assert p.shape == (10,) and len(traces) == 1  # the config is structure: one trace


@pytest.mark.parametrize(
    ("make", "kwargs"),
    [
        (gln_jax.make_config, {"layer_sizes": [8, 8, 1], "side_info_size": 64}),
        (gln_jax.make_gaussian_config, {"layer_sizes": [4, 1], "side_info_size": 3}),
    ],
)
def test_a_config_built_from_json_is_hashable_and_equal(make, kwargs):
    config = make(**kwargs)
    loaded = type(config)(**json.loads(json.dumps(dataclasses.asdict(config))))
    assert loaded == config and hash(loaded) == hash(config)
    assert isinstance(loaded.layer_sizes, tuple)
    assert type(config).from_json(config.to_json()) == config
    assert pickle.loads(pickle.dumps(config)) == config
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.layer_sizes = (1,)


def test_the_namedtuple_spellings_still_work():
    wide = CONFIG._replace(dtype="float64")
    assert wide.dtype == "float64" and CONFIG.dtype == "float32"
    assert CONFIG._asdict()["side_info_size"] == 64
    assert gln_jax.GLNConfig._fields[0] == "layer_sizes"


@pytest.mark.heavy
def test_an_exported_update_is_serialised_and_runs(tmp_path):
    state = state_of(MULTI)
    update = jax.jit(functools.partial(gln_jax.update, config=MULTI))
    args = (state, XS[0], XS[0], LABELS[0], jnp.float32(1e-3))
    blob = jax.export.export(update)(*args).serialize()
    new_state, p = jax.export.deserialize(blob).call(*args)
    expected_state, expected_p = update(*args)
    assert isinstance(new_state, gln_jax.GLNState)
    assert_trees_equal(new_state, expected_state)
    np.testing.assert_array_equal(p, expected_p)
    # in a fresh process, with nothing but the library imported
    path = tmp_path / "update.bin"
    path.write_bytes(bytes(blob))
    np.savez(tmp_path / "x.npz", x=np.asarray(XS[0]))
    code = (
        "import jax, jax.numpy as jnp, numpy as np, gln_jax\n"
        f"config = gln_jax.make_config([4, 4, 1], 64, num_classes=10)\n"
        "state = gln_jax.init(jax.random.key(0), config)\n"
        f"x = jnp.asarray(np.load({str(tmp_path / 'x.npz')!r})['x'])\n"
        f"exported = jax.export.deserialize(bytearray(open({str(path)!r}, 'rb').read()))\n"
        f"new, p = exported.call(state, x, x, jnp.asarray({int(LABELS[0])}), jnp.float32(1e-3))\n"
        "print(type(new).__name__, p.shape)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=False
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["GLNState", "(10,)"]


# --- errors that name the argument, at trace time -----------------------------------------------


@pytest.mark.heavy
def test_scan_update_broadcasts_a_scalar_rate():
    state, p = gln_jax.scan_update(state_of(), XS, XS, BITS, 1e-3, config=CONFIG)
    full, q = gln_jax.scan_update(state_of(), XS, XS, BITS, jnp.full(64, 1e-3), config=CONFIG)
    assert_trees_equal(state, full)
    np.testing.assert_array_equal(p, q)
    batched, _ = gln_jax.batch_update(state_of(), XS[:8], XS[:8], BITS[:8], 1e-3, config=CONFIG)
    assert int(batched.step) == 8
    sliced = (XS.reshape(8, 8, 64), XS.reshape(8, 8, 64), BITS.reshape(8, 8), 1e-3)
    out, _ = gln_jax.scan_batch_update(state_of(), *sliced, config=CONFIG)
    assert int(out.step) == 64


@pytest.mark.parametrize(
    ("call", "error", "words"),
    [
        (
            lambda: gln_jax.update(state_of(), XS[:8], XS[:8], True, 1e-3, config=CONFIG),
            ValueError,
            ["update: inputs must have shape [P] = (64,)", "got shape (8, 64)", "batch_update"],
        ),
        (
            lambda: gln_jax.apply(state_of(MULTI), XS[0], XS[0], config=CONFIG),
            ValueError,
            ["apply: state.layers[0].weights holds 10 one-vs-all models", "num_classes=2"],
        ),
        (
            lambda: gln_jax.update(
                jax.tree.map(
                    lambda a: a.astype(jnp.bfloat16) if a.dtype == jnp.float32 else a, state_of()
                ),
                XS[0],
                XS[0],
                True,
                1e-3,
                config=CONFIG,
            ),
            TypeError,
            ["update: state.layers[0].weights has dtype bfloat16", "config's dtype is float32"],
        ),
        (
            lambda: gln_jax.scan_update(state_of(), XS, XS, BITS[:10], 1e-3, config=CONFIG),
            ValueError,
            ["scan_update: targets must have shape [T] = (64,)", "got shape (10,)"],
        ),
        (
            lambda: gln_jax.scan_update(state_of(), XS, XS, BITS, jnp.ones(3), config=CONFIG),
            ValueError,
            ["scan_update: learning_rates must be a scalar or shape [T] = (64,)"],
        ),
        (
            lambda: gln_jax.scan_update(state_of(), XS, XS[:, :10], BITS, 1e-3, config=CONFIG),
            ValueError,
            ["scan_update: side_info must have shape [T, N] = (*, 64)", "got shape (64, 10)"],
        ),
        (
            lambda: gln_jax.batch_update(state_of(), XS, XS[:9], BITS, 1e-3, config=CONFIG),
            ValueError,
            ["batch_update: the leading axes disagree: inputs 64, side_info 9"],
        ),
        (
            lambda: gln_jax.update(state_of(), XS[0], XS[0], BITS[:2], 1e-3, config=CONFIG),
            ValueError,
            ["update: target must have shape [] = ()", "got shape (2,)"],
        ),
        (
            lambda: gln_jax.apply(state_of(), XS[0], XS[0], config=gln_jax.make_config([8, 1], 64)),
            ValueError,
            ["apply: state has 3 layers, the config 2"],
        ),
        (
            lambda: gln_jax.apply(state_of()._asdict(), XS[0], XS[0], config=CONFIG),
            TypeError,
            ["apply: state must be a GLNState"],
        ),
        (
            lambda: gln_jax.apply(state_of(), XS[0], XS[0], config=CONFIG._asdict()),
            TypeError,
            ["apply: config must be a GLNConfig"],
        ),
        (
            lambda: gln_jax.scan_update(
                state_of(), XS, XS, BITS, 1e-3, config=CONFIG, mask=jnp.ones(3, bool)
            ),
            ValueError,
            ["scan_update: mask must have shape [T] = (64,)"],
        ),
        (
            lambda: gln_jax.batch_update(
                state_of(), XS[:8], XS[:8], BITS[:8], lambda s: 1e-3, config=CONFIG
            ),
            ValueError,
            ["batch_update: the schedule given as learning_rates must return one rate per step"],
        ),
        (
            lambda: ensemble.fit_ensemble(
                ensemble.init_ensemble(jax.random.split(jax.random.key(0), 2), MULTI),
                XS,
                XS,
                LABELS,
                1e-3,
                config=CONFIG,
            ),
            ValueError,
            ["fit_ensemble: a member of states.layers[0].weights holds 10 one-vs-all models"],
        ),
        (
            lambda: gln_jax.fit_stream(state_of(MULTI), XS, XS, LABELS, 1e-3, config=CONFIG),
            ValueError,
            ["fit_stream: state.layers[0].weights holds 10 one-vs-all models"],
        ),
    ],
    ids=[
        "batch-to-update",
        "10-class-state-binary-config",
        "bfloat16-state",
        "targets-length",
        "rates-shape",
        "side-info-width",
        "batch-lengths",
        "target-rank",
        "layer-count",
        "not-a-state",
        "not-a-config",
        "mask-shape",
        "schedule-shape",
        "ensemble-members",
        "fit-stream-state",
    ],
)
def test_bad_arguments_are_named(call, error, words):
    if TYPECHECK:  # the annotations' checker may refuse the call first: either error will do
        from jaxtyping import TypeCheckError

        error = (error, TypeCheckError)
    with pytest.raises(error) as raised:
        call()
    if type(raised.value).__name__ == "TypeCheckError":
        return
    for word in words:
        assert word in str(raised.value)


def test_checks_run_while_tracing_only():
    traces = []

    def update(state, x, target, rate):
        traces.append(1)
        return gln_jax.update(state, x, x, target, rate, config=CONFIG)

    jitted = jax.jit(update)
    state = state_of()
    for i in range(5):
        state, _ = jitted(state, XS[i], BITS[i], jnp.float32(1e-3 * (i + 1)))
    assert len(traces) == 1
    if not TYPECHECK:  # there, the annotations' checker refuses the call first
        with pytest.raises(ValueError, match="inputs must have shape"):  # a new shape: a trace
            jitted(state, XS[:2], BITS[0], jnp.float32(1e-3))


# --- schedules in the functional drivers ------------------------------------------------------

SCHEDULE = optax.exponential_decay(1e-2, transition_steps=16, decay_rate=0.5)


def piecewise(step):
    """A schedule whose arithmetic is exact: the same bits traced or on the host."""
    return jnp.where(step < 20, 1e-2, 1e-3)


def test_fit_stream_takes_a_schedule_and_matches_the_facade():
    model = gln_jax.GLN("jax", [4, 4, 1], 64, num_classes=10, learning_rate=SCHEDULE)
    first = model.fit(np.asarray(XS[:40]), np.asarray(LABELS[:40]))
    second = model.fit(np.asarray(XS[40:]), np.asarray(LABELS[40:]))
    state, p = gln_jax.fit_stream(
        state_of(MULTI), XS[:40], XS[:40], LABELS[:40], SCHEDULE, config=MULTI
    )
    state, q = gln_jax.fit_stream(state, XS[40:], XS[40:], LABELS[40:], SCHEDULE, config=MULTI)
    assert_trees_equal(state, model.state)  # bit for bit: both evaluate it on the host
    np.testing.assert_array_equal(
        np.concatenate([first, second]), np.argmax(np.concatenate([p, q]), 1)
    )


@pytest.mark.heavy
@pytest.mark.parametrize("schedule", [piecewise, SCHEDULE], ids=["exact", "optax"])
def test_traced_drivers_take_a_schedule_at_the_states_step(schedule):
    start, _ = gln_jax.scan_update(state_of(), XS[:5], XS[:5], BITS[:5], 1e-3, config=CONFIG)
    host = np.asarray(schedule(np.arange(5, 69)), np.float32)  # the facade's rates
    # the rates traced inside jit equal the host's, to XLA's rounding of the schedule
    traced = jax.jit(lambda s: schedule(s))(example_steps(start.step, jnp.ones(64, bool)))
    np.testing.assert_allclose(traced, host, rtol=2e-7)
    exact = schedule is piecewise
    check = (
        assert_trees_equal
        if exact
        else functools.partial(
            jax.tree.map, functools.partial(np.testing.assert_allclose, rtol=1e-5, atol=1e-6)
        )
    )
    scanned, _ = gln_jax.scan_update(start, XS, XS, BITS, schedule, config=CONFIG)
    expected, _ = gln_jax.scan_update(start, XS, XS, BITS, host, config=CONFIG)
    check(scanned, expected)
    one, _ = gln_jax.update(start, XS[0], XS[0], BITS[0], schedule, config=CONFIG)
    one_expected, _ = gln_jax.update(start, XS[0], XS[0], BITS[0], host[0], config=CONFIG)
    check(one, one_expected)
    batch, _ = gln_jax.batch_update(start, XS[:8], XS[:8], BITS[:8], schedule, config=CONFIG)
    batch_expected, _ = gln_jax.batch_update(
        start, XS[:8], XS[:8], BITS[:8], host[:8], config=CONFIG
    )
    check(batch, batch_expected)
    shaped = (XS.reshape(8, 8, 64), XS.reshape(8, 8, 64), BITS.reshape(8, 8))
    batches, _ = gln_jax.scan_batch_update(start, *shaped, schedule, config=CONFIG)
    batches_expected, _ = gln_jax.scan_batch_update(
        start, *shaped, host.reshape(8, 8), config=CONFIG
    )
    check(batches, batches_expected)


@pytest.mark.heavy
def test_a_masked_example_does_not_advance_the_schedule():
    mask = jnp.asarray([True, False] * 32)
    steps = example_steps(jnp.int32(3), mask)
    np.testing.assert_array_equal(steps[:6], [3, 4, 4, 5, 5, 6])
    near_the_end = example_steps(jnp.int32(2**31 - 3), jnp.ones(5, bool))
    np.testing.assert_array_equal(near_the_end, [2**31 - 3, 2**31 - 2] + [2**31 - 1] * 3)
    masked, _ = gln_jax.scan_update(state_of(), XS, XS, BITS, piecewise, config=CONFIG, mask=mask)
    real = np.asarray(mask)
    plain, _ = gln_jax.scan_update(
        state_of(), XS[real], XS[real], BITS[real], piecewise, config=CONFIG
    )
    jax.tree.map(functools.partial(np.testing.assert_allclose, rtol=1e-6, atol=1e-7), masked, plain)


def test_fit_ensemble_takes_a_schedule_per_member_step():
    members = ensemble.init_ensemble(jax.random.split(jax.random.key(0), 2), MULTI)
    states, p = ensemble.fit_ensemble(members, XS, XS, LABELS, SCHEDULE, config=MULTI)
    host = np.asarray(SCHEDULE(np.arange(64)), np.float32)
    expected, q = ensemble.fit_ensemble(members, XS, XS, LABELS, host, config=MULTI)
    assert_trees_equal(states, expected)
    np.testing.assert_array_equal(p, q)
    scalar, _ = ensemble.fit_ensemble(members, XS, XS, LABELS, 1e-3, config=MULTI)
    full, _ = ensemble.fit_ensemble(members, XS, XS, LABELS, np.full(64, 1e-3), config=MULTI)
    assert_trees_equal(scalar, full)


# --- the route -----------------------------------------------------------------------------------


def test_route_xla_is_the_pure_jax_path(monkeypatch):
    xla, p = gln_jax.fit_stream(state_of(MULTI), XS, XS, LABELS, 1e-3, config=MULTI, route="xla")
    monkeypatch.setenv("GLN_JAX_KERNEL", "0")  # the switch that turns the kernel off
    off, q = gln_jax.fit_stream(state_of(MULTI), XS, XS, LABELS, 1e-3, config=MULTI)
    assert_trees_equal(xla, off)
    np.testing.assert_array_equal(p, q)
    with pytest.raises(RuntimeError, match="route='kernel': the fused CPU kernel cannot train"):
        gln_jax.fit_stream(state_of(MULTI), XS, XS, LABELS, 1e-3, config=MULTI, route="kernel")
    with pytest.raises(ValueError, match=r"route must be one of \('auto', 'kernel', 'xla'\)"):
        gln_jax.fit_stream(state_of(MULTI), XS, XS, LABELS, 1e-3, config=MULTI, route="gpu")


def test_route_kernel_agrees_with_xla_at_a_low_rate():
    if not kernel.use_kernel(MULTI, state_of(MULTI)):
        pytest.skip(f"the fused kernel is not available here: {kernel.status()}")
    fused, p = gln_jax.fit_stream(
        state_of(MULTI), XS, XS, LABELS, 1e-4, config=MULTI, route="kernel"
    )
    xla, q = gln_jax.fit_stream(state_of(MULTI), XS, XS, LABELS, 1e-4, config=MULTI, route="xla")
    # two orders of float operations: equal to rounding at this rate over this stream
    np.testing.assert_allclose(p, q, rtol=0, atol=1e-6)


def test_the_facade_takes_a_route():
    model = gln_jax.GLN("jax", [4, 4, 1], 64, num_classes=10, learning_rate=1e-3)
    alone = gln_jax.GLN("jax", [4, 4, 1], 64, num_classes=10, learning_rate=1e-3)
    model.fit(np.asarray(XS), np.asarray(LABELS), route="xla")
    expected, _ = gln_jax.fit_stream(
        alone.state, XS, XS, LABELS, 1e-3, config=alone.config, route="xla"
    )
    assert_trees_equal(model.state, expected)
    with pytest.raises(ValueError, match="route must be one of"):
        model.fit(np.asarray(XS), np.asarray(LABELS), route="fast")
    before = jax.tree.map(np.asarray, model.state)
    ported = gln_jax.GLN("numpy", [4, 4, 1], 64, num_classes=10)
    with pytest.raises(ValueError, match="not available on the numpy backend, which takes 'auto'"):
        ported.fit(np.asarray(XS), np.asarray(LABELS), route="xla")
    assert_trees_equal(model.state, before)


# --- the annotations are checked ---------------------------------------------------------------


@pytest.mark.heavy
def test_the_annotations_are_checked_under_the_import_hook():
    """Under jaxtyping's hook (as in ``GLN_JAX_TYPECHECK=1`` runs) a call whose arguments break
    the annotated shapes fails in the checker, before the function's own checks."""
    code = (
        "import jax, jax.numpy as jnp\n"
        "from jaxtyping import TypeCheckError, install_import_hook\n"
        "from gln_jax.core.shapes import CHECKED_MODULES\n"
        "install_import_hook(CHECKED_MODULES, 'beartype.beartype')\n"
        "from gln_jax.core import network\n"
        "config = network.GLNConfig((4, 1), 6)._replace(base_prediction_size=6)\n"
        "state = network.init(jax.random.key(0), config)\n"
        "x = jnp.full(6, 0.5)\n"
        "print(network.apply(state, x, x, config=config).shape)\n"
        "try:\n"
        "    network.batch_update(state, x[None], x[None], jnp.zeros(2), 1e-3, config=config)\n"
        "except TypeCheckError as err:\n"
        "    print('checked', 'B' in str(err))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=False
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["(1,)", "checked", "True"]


def test_a_state_assigned_to_the_facade_stays_the_callers():
    """Training donates the facade's buffers; an assigned state is copied first, so the caller's
    arrays stay alive and unchanged."""
    state = state_of(MULTI)
    model = gln_jax.GLN("jax", [4, 4, 1], 64, num_classes=10, learning_rate=1e-3)
    model.state = state
    model.predict(np.asarray(XS[:2]), np.asarray(LABELS[:2]))  # learns: a donating update
    assert not state.layers[0].weights.is_deleted()
    assert_trees_equal(state, state_of(MULTI))
