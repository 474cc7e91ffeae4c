"""The options that express the paper's configuration: how the gating hyperplanes are drawn
(``hyperplane_normalize``, ``hyperplane_bias_scale``) and the inverse-time schedule
``min(scale / t, max_rate)``; their defaults, validation, checkpoints and compilation."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gln_jax
from gln_jax.api import schedules
from gln_jax.api.checkpoint import CheckpointError, load_checkpoint
from gln_jax.core.network import init_class_range
from gln_jax.core.schedules import InverseTime, inverse_time
from gln_jax.core.types import GLNConfig

GOLDEN = Path(__file__).resolve().parents[1] / "golden"
KEY = jax.random.key(3)


def _config(**options) -> GLNConfig:
    return gln_jax.make_config([5, 3, 1], 7, context_map_size=3, num_classes=3, **options)


def _norms(state) -> np.ndarray:
    return np.concatenate(
        [
            np.linalg.norm(np.asarray(layer.hyperplanes, np.float64), axis=-1).ravel()
            for layer in state.layers
        ]
    )


# --------------------------------------------------------------------------- the gating options


@pytest.mark.parametrize("context_bias", [True, False])
def test_defaults_keep_the_coupling_of_earlier_releases(context_bias):
    """``hyperplane_normalize=None`` is ``context_bias``; the defaults draw the same state."""
    default = _config(context_bias=context_bias)
    explicit = _config(
        context_bias=context_bias,
        hyperplane_normalize=context_bias,
        hyperplane_bias_scale=1.0,
    )
    assert default.hyperplane_normalize is context_bias
    assert default.hyperplane_bias_scale == 1.0
    assert default == explicit and hash(default) == hash(explicit)
    direct = GLNConfig((5, 3, 1), 7, 3, 3, context_bias=context_bias)  # no make_config
    assert direct.hyperplane_normalize is context_bias
    for a, b in zip(
        jax.tree.leaves(gln_jax.init(KEY, default)),
        jax.tree.leaves(gln_jax.init(KEY, explicit)),
        strict=True,
    ):
        np.testing.assert_array_equal(a, b)


@pytest.mark.heavy
@pytest.mark.parametrize("context_bias", [True, False])
def test_normalize_divides_the_same_draws_by_their_norm(context_bias):
    raw = gln_jax.init(KEY, _config(context_bias=context_bias, hyperplane_normalize=False))
    unit = gln_jax.init(KEY, _config(context_bias=context_bias, hyperplane_normalize=True))
    np.testing.assert_allclose(_norms(unit), 1.0, rtol=1e-6)
    assert np.abs(_norms(raw) - 1.0).max() > 0.1  # standard Gaussian vectors in 7 dimensions
    for r, u in zip(raw.layers, unit.layers, strict=True):
        planes = np.asarray(r.hyperplanes, np.float64)
        expected = planes / np.linalg.norm(planes, axis=-1, keepdims=True)
        np.testing.assert_allclose(u.hyperplanes, expected, rtol=1e-6, atol=1e-7)
        np.testing.assert_array_equal(r.hyperplane_bias, u.hyperplane_bias)
        np.testing.assert_array_equal(r.weights, u.weights)


def test_bias_scale_multiplies_the_offsets_and_nothing_else():
    one = gln_jax.init(KEY, _config())
    quarter = gln_jax.init(KEY, _config(hyperplane_bias_scale=0.25))
    zero = gln_jax.init(KEY, _config(hyperplane_bias_scale=0.0))
    none = gln_jax.init(KEY, _config(context_bias=False, hyperplane_normalize=True))
    for a, q, z, n in zip(one.layers, quarter.layers, zero.layers, none.layers, strict=True):
        assert np.abs(np.asarray(a.hyperplane_bias)).max() > 0.5
        np.testing.assert_array_equal(q.hyperplane_bias, 0.25 * np.asarray(a.hyperplane_bias))
        np.testing.assert_array_equal(z.hyperplane_bias, np.zeros_like(a.hyperplane_bias))
        np.testing.assert_array_equal(n.hyperplane_bias, np.zeros_like(a.hyperplane_bias))
        for other in (q, z, n):
            np.testing.assert_array_equal(other.hyperplanes, a.hyperplanes)
            np.testing.assert_array_equal(other.weights, a.weights)


def test_weights_start_at_one_over_the_inputs():
    """The paper's ``1/K`` (``K`` counts the bias input when there is one)."""
    for bias in (True, False):
        config = _config(bias=bias)
        state = gln_jax.init(KEY, config)
        for layer, inputs in zip(state.layers, config.layer_input_sizes(), strict=True):
            assert layer.weights.shape[-1] == inputs
            np.testing.assert_array_equal(layer.weights, np.float32(1.0 / inputs))


@pytest.mark.heavy
def test_a_device_range_draws_what_init_draws():
    """The sharded initialisation (a range of classes) applies the options the same way."""
    config = _config(hyperplane_normalize=False, hyperplane_bias_scale=0.5)
    whole = gln_jax.init(KEY, config)
    part = init_class_range(KEY, config, 1, 2)  # classes 1 and 2 of 3
    for w, p in zip(whole.layers, part.layers, strict=True):
        for field in gln_jax.LayerState._fields:
            np.testing.assert_allclose(getattr(p, field), getattr(w, field)[1:], rtol=1e-6)


BAD_OPTIONS = [
    ({"hyperplane_normalize": "yes"}, TypeError, "hyperplane_normalize"),
    ({"hyperplane_normalize": 1}, TypeError, "hyperplane_normalize"),
    ({"hyperplane_bias_scale": "1"}, TypeError, "hyperplane_bias_scale"),
    ({"hyperplane_bias_scale": True}, TypeError, "hyperplane_bias_scale"),
    ({"hyperplane_bias_scale": -0.5}, ValueError, "hyperplane_bias_scale"),
    ({"hyperplane_bias_scale": float("nan")}, ValueError, "hyperplane_bias_scale"),
    ({"hyperplane_bias_scale": float("inf")}, ValueError, "hyperplane_bias_scale"),
    ({"hyperplane_bias_scale": 1e38}, ValueError, "too large for float32"),
    ({"hyperplane_bias_scale": 10**400}, ValueError, "hyperplane_bias_scale"),
    ({"hyperplane_bias_scale": 2.0, "context_bias": False}, ValueError, "context_bias=False"),
]


@pytest.mark.parametrize(("options", "error", "match"), BAD_OPTIONS)
def test_bad_options_are_refused_by_name(options, error, match):
    with pytest.raises(error, match=match):
        _config(**options)
    with pytest.raises(error, match=match):
        gln_jax.GLN("jax", [3, 1], 7, **options)


def test_the_port_facades_refuse_them_too():
    import gln_numpy

    with pytest.raises(ValueError, match="hyperplane_bias_scale"):
        gln_numpy.GLN([3, 1], 7, hyperplane_bias_scale=-1.0)


def test_the_config_round_trips_through_json():
    config = _config(hyperplane_normalize=False, hyperplane_bias_scale=0.5)
    assert GLNConfig.from_json(config.to_json()) == config
    old = json.loads(_config(context_bias=False).to_json())
    for key in ("hyperplane_normalize", "hyperplane_bias_scale"):
        del old[key]  # a config written before the options existed
    assert GLNConfig(**old).hyperplane_normalize is False


# --------------------------------------------------------------------------- checkpoints


def test_checkpoints_keep_the_options(tmp_path):
    options = {"hyperplane_normalize": False, "hyperplane_bias_scale": 0.5}
    model = gln_jax.GLN("jax", [4, 1], 6, context_map_size=2, num_classes=3, **options, seed=1)
    x = np.random.default_rng(0).uniform(0, 1, (20, 6)).astype(np.float32)
    model.fit(x, np.arange(20) % 3)
    model.save(tmp_path / "model.npz")
    with zipfile.ZipFile(tmp_path / "model.npz") as archive, archive.open("config.npy") as f:
        meta = json.loads(str(np.load(f)))
    assert meta["hyperplane_normalize"] is False and meta["hyperplane_bias_scale"] == 0.5
    for backend in ("jax", "numpy"):
        loaded = gln_jax.GLN.load(tmp_path / "model.npz", backend)
        assert loaded.config == model.config
        np.testing.assert_allclose(
            loaded.predict(x, return_probs=True), model.predict(x, return_probs=True), rtol=1e-6
        )


def test_files_without_the_options_load_with_the_old_defaults():
    """Golden version-2 files predate the options: their configs get the defaults."""
    checkpoint = load_checkpoint(GOLDEN / "checkpoint_v2_bernoulli.npz")
    config = checkpoint.config
    assert config.hyperplane_normalize is config.context_bias
    assert config.hyperplane_bias_scale == 1.0
    planes = np.asarray(checkpoint.state.layers[0].hyperplanes, np.float64)
    if config.context_bias:
        np.testing.assert_allclose(np.linalg.norm(planes, axis=-1), 1.0, rtol=1e-6)


def _rewritten(tmp_path, source: Path, **changes) -> Path:
    """A copy of a checkpoint whose config JSON has ``changes`` applied."""
    target = tmp_path / "changed.npz"
    with zipfile.ZipFile(source) as old, zipfile.ZipFile(target, "w") as new:
        for item in old.infolist():
            data = old.read(item)
            if item.filename == "config.npy":
                with old.open(item) as f:
                    meta = json.loads(str(np.load(f)))
                meta.update(changes)
                path = tmp_path / "config.npy"
                np.save(path, np.array(json.dumps(meta)))
                data = path.read_bytes()
            new.writestr(item, data)
    return target


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"hyperplane_bias_scale": -1.0}, "hyperplane_bias_scale"),
        ({"hyperplane_bias_scale": "big"}, "hyperplane_bias_scale"),
        ({"hyperplane_normalize": "no"}, "hyperplane_normalize"),
        ({"hyperplane_bias_shift": 0.0}, "hyperplane_bias_shift"),  # an unknown key
    ],
)
def test_bad_or_unknown_option_keys_are_refused(tmp_path, changes, match):
    source = _rewritten(tmp_path, GOLDEN / "checkpoint_v2_bernoulli.npz")  # unchanged copy
    load_checkpoint(source)
    with pytest.raises(CheckpointError, match=match):
        load_checkpoint(_rewritten(tmp_path, GOLDEN / "checkpoint_v2_bernoulli.npz", **changes))


# --------------------------------------------------------------------------- the schedule


def test_inverse_time_is_the_papers_schedule_of_the_example_count():
    """``t = step + 1``: the first example (step 0) has ``t = 1``; 0.01 up to ``t = 10^4``."""
    paper = inverse_time()
    assert paper == InverseTime(100.0, 0.01)
    steps = np.array([0, 1, 9_998, 9_999, 10_000, 19_999, 10**9])
    expected = np.minimum(100.0 / (steps + 1.0), 0.01)
    np.testing.assert_array_equal(paper(steps), expected)
    assert float(paper(0)) == 0.01 and float(paper(19_999)) == 0.005
    rates = schedules.learning_rates(paper, 9_998, 4, "float32")
    np.testing.assert_array_equal(
        rates, np.array([0.01, 0.01, 100 / 10_001, 100 / 10_002], np.float32)
    )


def test_traced_rates_equal_the_host_rates():
    schedule = inverse_time(37.0, 0.003)
    steps = np.concatenate([np.arange(0, 30_000, 7), [2**24 - 2, 2**31 - 2]]).astype(np.int32)
    host = np.asarray(schedule(steps), np.float32)
    traced = jax.jit(lambda s: schedule(s).astype(jnp.float32))(jnp.asarray(steps))
    np.testing.assert_array_equal(np.asarray(traced), host)


@pytest.mark.parametrize(
    ("arguments", "error", "match"),
    [
        ((0.0, 0.01), ValueError, "scale"),
        ((100.0, -1.0), ValueError, "max_rate"),
        ((float("nan"), 0.01), ValueError, "scale"),
        ((100.0, float("inf")), ValueError, "max_rate"),
        ((10**400, 0.01), ValueError, "scale"),
        (("100", 0.01), TypeError, "scale"),
        ((100.0, True), TypeError, "max_rate"),
    ],
)
def test_bad_schedule_constants_are_refused_by_name(arguments, error, match):
    with pytest.raises(error, match=match):
        inverse_time(*arguments)
    with pytest.raises(error, match=match):
        InverseTime(*arguments)


@pytest.mark.heavy
def test_the_schedule_goes_through_jit_without_recompiling():
    """A frozen, static schedule: equal schedules, new steps and new states share one trace."""
    config = _config()
    traces = []

    @jax.jit
    def step(state, x, y, rate):
        traces.append(1)
        return gln_jax.update(state, x, x, y, rate, config=config)

    state = gln_jax.init(KEY, config)
    x = jnp.linspace(0.1, 0.9, 7, dtype=jnp.float32)
    before = state.layers[-1].weights
    for label in (0, 1, 2):
        state, _ = step(state, x, label, inverse_time())  # a new, equal schedule each call
    assert len(traces) == 1 and int(state.step) == 3
    # The rates were the schedule's: 0.01 for the first three examples.
    reference = gln_jax.init(KEY, config)
    for label in (0, 1, 2):
        reference, _ = gln_jax.update(reference, x, x, label, 0.01, config=config)
    np.testing.assert_allclose(state.layers[-1].weights, reference.layers[-1].weights, rtol=1e-6)
    assert not np.array_equal(before, state.layers[-1].weights)


@pytest.mark.heavy
def test_the_schedule_drives_the_scan_and_the_facade_alike():
    """``scan_update`` evaluates the schedule at ``state.step + i``; the facade at its count."""
    config = _config()
    schedule = inverse_time(0.3, 0.05)  # 0.05 for t <= 6, then 0.3 / t
    rng = np.random.default_rng(2)
    x = rng.uniform(0, 1, (12, 7)).astype(np.float32)
    y = rng.integers(0, 3, 12)
    model = gln_jax.GLN(
        "jax", [5, 3, 1], 7, context_map_size=3, num_classes=3, learning_rate=schedule, seed=4
    )
    start = model.reference_state()
    model.fit(x[:5], y[:5])
    model.fit(x[5:], y[5:])  # the count goes on across calls
    scanned, _ = jax.jit(gln_jax.scan_update, static_argnames="config")(
        jax.tree.map(jnp.asarray, start), x, x, y, schedule, config=config
    )
    rates = schedules.learning_rates(schedule, 0, 12, "float32")
    unrolled = jax.tree.map(jnp.asarray, start)
    for i in range(12):
        unrolled, _ = gln_jax.update(unrolled, x[i], x[i], y[i], rates[i], config=config)
    final = model.reference_state()
    for a, b, c in zip(final.layers, scanned.layers, unrolled.layers, strict=True):
        np.testing.assert_allclose(a.weights, c.weights, rtol=2e-5, atol=2e-6)
        np.testing.assert_allclose(b.weights, c.weights, rtol=2e-5, atol=2e-6)
    assert rates[5] == np.float32(0.05) and rates[6] == np.float32(0.3 / 7.0)
