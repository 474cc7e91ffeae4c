"""Side information through the facade: every backend equals the functional API; checkpoints."""

import json
import pathlib
import zipfile

import jax
import numpy as np
import pytest
from frameworks import require

import gln_jax
from gln_jax import GLN
from gln_jax.api.checkpoint import FORMAT_VERSION, load_checkpoint
from gln_jax.core import _transforms as transforms

BACKENDS = ["jax", "numpy", "pytorch", "tf"]
DATA = pathlib.Path(__file__).parent / "data"
RATE = 0.02


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(5)
    X = rng.random((24, 12), dtype=np.float32)
    S = rng.normal(size=(24, 5)).astype(np.float32)
    return X, S, rng.integers(0, 3, 24)


def model(backend, transform=None, **kwargs):
    return GLN(
        backend,
        [3, 1],
        12,
        context_map_size=2,
        num_classes=3,
        learning_rate=RATE,
        seed=4,
        side_info_size=5,
        side_info_transform=transform,
        **kwargs,
    )


def snapshot(m):
    state = jax.tree.map(np.array, m.reference_state())
    side = None if m.side_info_state is None else jax.tree.map(np.array, m.side_info_state)
    return state, side


def reference(X, S, y, transform=None):
    """The functional API on the same arrays: (probabilities on X after fitting, config)."""
    config = gln_jax.make_config(
        [3, 1], 5, context_map_size=2, num_classes=3, base_prediction_size=12
    )
    state = gln_jax.init(jax.random.key(4), config)
    gates = S
    if transform is not None:
        stats, gates = transforms.transform_stream(transforms.init(5), S, config=transform)
    rates = np.full(len(y), RATE, np.float32)
    state, _ = gln_jax.fit_stream(state, X, gates, y, rates, config=config)
    test_gates = S if transform is None else transforms.apply_batch(stats, S, config=transform)
    return np.asarray(gln_jax.batch_apply(state, X, test_gates, config=config)), config


@pytest.mark.heavy
@pytest.mark.parametrize("backend", BACKENDS)
def test_facade_side_info_equals_functional_api(backend, data):
    require(backend)
    X, S, y = data
    expected, config = reference(X, S, y)
    m = model(backend)
    assert m.config == config and m.input_size == 12
    m.fit(X[:12], y[:12], side_info=S[:12])
    for i in range(12, 24):  # the online predict loop continues the same stream
        m.predict(X[i : i + 1], target=y[i : i + 1], side_info=S[i : i + 1])
    probs = np.asarray(m.predict(X, return_probs=True, side_info=S))
    np.testing.assert_allclose(probs, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.heavy
@pytest.mark.parametrize("backend", ["jax", "numpy"])
def test_facade_transform_equals_functional_transform(backend, data):
    X, S, y = data
    transform = transforms.make_transform("standardize", scale=3.0)
    expected, _ = reference(X, S, y, transform)
    m = model(backend, transform)
    m.fit(X[:10], y[:10], side_info=S[:10])
    for i in range(10, 24):
        m.predict(X[i : i + 1], target=y[i : i + 1], side_info=S[i : i + 1])
    assert int(m.side_info_state.count) == 24
    np.testing.assert_allclose(m.side_info_state.mean, S.astype(np.float64).mean(0), rtol=1e-5)
    probs = np.asarray(m.predict(X, return_probs=True, side_info=S))
    np.testing.assert_allclose(probs, expected, rtol=1e-5, atol=1e-6)
    assert int(m.side_info_state.count) == 24  # predicting learns nothing


def test_default_interface_unchanged(data):
    X, _, y = data
    plain = GLN("jax", [3, 1], 12, num_classes=3, seed=1)
    assert plain.config == gln_jax.make_config([3, 1], 12, num_classes=3)
    given = GLN("jax", [3, 1], 12, num_classes=3, seed=1)
    plain.fit(X, y)
    given.fit(X, y, side_info=X)  # the default side information is the input itself
    np.testing.assert_array_equal(
        plain.predict(X, return_probs=True), given.predict(X, return_probs=True, side_info=X)
    )


def test_transform_on_the_input_itself(data):
    X, _, y = data
    m = GLN("jax", [3, 1], 12, num_classes=3, side_info_transform="center")
    m.fit(X, y, num_epochs=2)  # the statistics keep learning through both epochs
    assert int(m.side_info_state.count) == 48
    np.testing.assert_allclose(m.side_info_state.mean, X.astype(np.float64).mean(0), rtol=1e-5)


@pytest.mark.parametrize("backend", ["jax", "pytorch"])
def test_bad_side_info_raises_and_changes_nothing(backend, data):
    require(backend)
    X, S, y = data
    m = model(backend, "center")
    m.fit(X[:4], y[:4], side_info=S[:4])
    before = snapshot(m)
    nan = S[:4].copy()
    nan[1, 2] = np.nan
    bad = [
        ({"side_info": S[:4, :4]}, "5 features"),
        ({"side_info": nan}, "NaN"),
        ({"side_info": S[:3]}, "3 rows"),
        ({}, "pass side_info"),
    ]
    for kwargs, message in bad:
        with pytest.raises(ValueError, match=message):
            m.predict(X[:4], target=y[:4], **kwargs)
        with pytest.raises(ValueError, match=message):
            m.fit(X[:4], y[:4], **kwargs)
        after = snapshot(m)
        jax.tree.map(np.testing.assert_array_equal, after, before)
    for kwargs, error in (
        ({"side_info_size": 0}, ValueError),
        ({"side_info_size": 2.0}, TypeError),
        ({"side_info_transform": "whiten"}, ValueError),
        ({"side_info_transform": 3}, TypeError),
    ):
        with pytest.raises(error):
            GLN(backend, [2, 1], 12, **kwargs)


@pytest.mark.parametrize("source, target", [("numpy", "jax"), ("jax", "tf")])
def test_checkpoint_round_trips_width_and_statistics(tmp_path, data, source, target):
    require(source, target)
    X, S, y = data
    transform = transforms.make_transform("center", scale=10.0, freeze_after=7)
    m = model(source, transform)
    m.fit(X, y, side_info=S)
    path = tmp_path / "m.npz"
    m.save(path)
    loaded = GLN.load(path, target)
    assert loaded.input_size == 12 and loaded.config.side_info_size == 5
    assert loaded.side_info_transform == transform
    jax.tree.map(np.testing.assert_array_equal, loaded.side_info_state, m.side_info_state)
    assert int(loaded.side_info_state.count) == 7
    np.testing.assert_allclose(
        np.asarray(loaded.predict(X, return_probs=True, side_info=S)),
        np.asarray(m.predict(X, return_probs=True, side_info=S)),
        rtol=1e-5,
        atol=1e-6,
    )
    with np.load(path) as contents:
        meta = json.loads(str(contents["config"]))
        assert meta["format_version"] == FORMAT_VERSION == 3
        assert meta["input_size"] == 12 and meta["side_info_size"] == 5
        assert set(contents.files) >= {"side_info/count", "side_info/mean", "side_info/m2"}


def test_version_1_file_still_loads():
    """A file written by gln-jax's format-version-1 save_checkpoint."""
    checkpoint = load_checkpoint(DATA / "checkpoint-v1.npz")
    assert checkpoint.side_info.input_size == 6 and checkpoint.side_info.transform is None
    m = GLN.load(DATA / "checkpoint-v1.npz")
    assert m.input_size == 6 and m.side_info_transform is None and m.learning_rate == 0.05
    with np.load(DATA / "checkpoint-v1-inputs.npz") as arrays:
        # the recorded predictions came from XLA's forward pass; the fused CPU kernel's may
        # differ in the last float32 bit (another summation order)
        np.testing.assert_allclose(
            m.predict(arrays["X"], return_probs=True), arrays["p"], rtol=1e-6, atol=1e-7
        )


def rewrite(src, dst, meta_change=None, extra=None, drop=()):
    with np.load(src) as contents:
        arrays = {k: contents[k] for k in contents.files if k not in drop}
    meta = json.loads(str(arrays["config"]))
    meta.update(meta_change or {})
    arrays["config"] = np.array(json.dumps(meta))
    arrays.update(extra or {})
    np.savez(dst, **arrays)


def test_corrupt_side_info_blocks_are_refused(tmp_path, data):
    X, S, y = data
    m = model("jax", "center")
    m.fit(X, y, side_info=S)
    good = tmp_path / "good.npz"
    m.save(good)
    bad = tmp_path / "bad.npz"
    cases = [
        ({"meta_change": {"format_version": 1}}, "version-2 keys"),
        ({"meta_change": {"input_size": 0}}, "input_size"),
        ({"meta_change": {"input_size": 11}}, "input_size"),
        ({"meta_change": {"side_info_transform": {"kind": "whiten"}}}, "side_info_transform"),
        ({"meta_change": {"side_info_transform": None}}, "without a side_info_transform"),
        ({"drop": ("side_info/m2",)}, "without all"),
        ({"extra": {"side_info/mean": np.zeros(4, np.float32)}}, "side_info/mean"),
        ({"extra": {"side_info/m2": np.full(5, -1, np.float32)}}, "negative"),
        ({"extra": {"side_info/mean": np.full(5, np.nan, np.float32)}}, "NaN"),
        ({"extra": {"side_info/mean": np.full(5, 1e30, np.float32)}}, "features' limit"),
        ({"extra": {"side_info/count": np.array(-1)}}, r"is -1, outside \[0, 2147483647\]"),
        ({"extra": {"side_info/count": np.array(2**31)}}, "is 2147483648, outside"),
        ({"extra": {"side_info/count": np.array(2**64 - 1, np.uint64)}}, "outside"),
        ({"extra": {"side_info/count": np.array(0)}}, "count' is 0 but"),
        ({"extra": {"side_info/count": np.array(1.5)}}, "side_info/count' has shape"),
        ({"extra": {"side_info/other": np.zeros(1)}}, "unexpected"),
    ]
    for change, message in cases:
        rewrite(good, bad, **change)
        with pytest.raises(ValueError, match=message):
            GLN.load(bad)
    v1 = tmp_path / "v1.npz"
    rewrite(DATA / "checkpoint-v1.npz", v1, extra={"side_info/count": np.array(1)})
    with pytest.raises(ValueError, match="unexpected"):
        GLN.load(v1)
    assert zipfile.is_zipfile(good)


# --- base predictions from the transform (base_gain) -----------------------------------------

SHARP = transforms.make_transform("center", scale=10.0, base_gain=4.0)


def sharp_model(backend, **kwargs):
    kwargs = {"side_info_transform": SHARP, **kwargs}
    return GLN(
        backend, [3, 1], 12, context_map_size=2, num_classes=3, learning_rate=RATE, seed=4, **kwargs
    )


@pytest.mark.heavy
@pytest.mark.parametrize("backend", ["jax", "numpy"])
def test_base_gain_equals_hand_computed_sharpened_deviations(backend, data):
    X, _, y = data
    x64 = X.astype(np.float64)
    means = np.cumsum(x64, axis=0) / np.arange(1, 25)[:, None]  # example t: mean of 0..t
    sigmoid = lambda v: 1.0 / (1.0 + np.exp(-v))  # noqa: E731
    config = gln_jax.make_config([3, 1], 12, context_map_size=2, num_classes=3)
    state = gln_jax.init(jax.random.key(4), config)
    base, gates = sigmoid(4.0 * (x64 - means)), 10.0 * (x64 - means)
    rates = np.full(24, RATE, np.float32)
    state, _ = gln_jax.fit_stream(
        state, base.astype(np.float32), gates.astype(np.float32), y, rates, config=config
    )
    final = x64 - means[-1]
    expected = gln_jax.batch_apply(
        state,
        sigmoid(4.0 * final).astype(np.float32),
        (10.0 * final).astype(np.float32),
        config=config,
    )

    m = sharp_model(backend)
    m.fit(X[:10], y[:10])
    for i in range(10, 24):  # the online predict loop continues the same stream
        m.predict(X[i : i + 1], target=y[i : i + 1])
    np.testing.assert_allclose(m.side_info_state.mean, means[-1], rtol=1e-5)
    probs = np.asarray(m.predict(X, return_probs=True))
    np.testing.assert_allclose(probs, np.asarray(expected), rtol=1e-5, atol=1e-6)
    plain = sharp_model(backend, side_info_transform=SHARP._replace(base_gain=None))
    plain.fit(X, y)  # without base_gain the pixels are the base predictions: another model
    assert np.abs(np.asarray(plain.predict(X, return_probs=True)) - probs).max() > 1e-3


def test_base_gain_checks():
    with pytest.raises(ValueError, match="pass no base_predictor"):
        sharp_model("jax", base_predictor=lambda x: x)
    with pytest.raises(ValueError, match="as wide as the examples"):
        sharp_model("jax", side_info_size=5)
    with pytest.raises(ValueError, match="base_gain must be positive"):
        transforms.make_transform(base_gain=0.0)
    with pytest.raises(TypeError, match="base_gain"):
        transforms.make_transform(base_gain=True)
    with pytest.raises(ValueError, match="gives no base predictions"):
        transforms.base_predictions(np.zeros(3), config=transforms.make_transform())


def test_base_gain_round_trips_in_a_checkpoint(tmp_path, data):
    X, _, y = data
    m = sharp_model("jax")
    m.fit(X, y)
    m.save(tmp_path / "sharp.npz")
    loaded = GLN.load(tmp_path / "sharp.npz", "numpy")
    assert loaded.side_info_transform == SHARP
    np.testing.assert_allclose(
        np.asarray(loaded.predict(X, return_probs=True)),
        np.asarray(m.predict(X, return_probs=True)),
        rtol=1e-5,
        atol=1e-6,
    )
