"""Portable checkpoints: round trip, and clear errors for anything that is not one."""

import json
import zipfile

import jax
import numpy as np
import pytest

from gln_jax import GLN
from gln_jax.api.checkpoint import FORMAT_VERSION, load_checkpoint


@pytest.fixture
def saved(tmp_path):
    rng = np.random.default_rng(0)
    X, y = rng.random((50, 9), dtype=np.float32), rng.integers(0, 3, 50)
    model = GLN("jax", [3, 1], 9, num_classes=3, learning_rate=0.05)
    model.fit(X, y)
    path = tmp_path / "model.npz"
    model.save(path)
    return model, path, X


def rewrite(path, change):
    with np.load(path, allow_pickle=False) as data:
        contents = {k: data[k] for k in data.files}
    change(contents)
    with open(path, "wb") as handle:
        np.savez(handle, **contents)


def test_round_trip_is_exact(saved):
    model, path, X = saved
    loaded = GLN.load(path)
    np.testing.assert_array_equal(
        loaded.predict(X, return_probs=True), model.predict(X, return_probs=True)
    )
    assert loaded.step == model.step == 50 and loaded.learning_rate == 0.05
    with np.load(path, allow_pickle=False) as data:
        meta = json.loads(str(data["config"]))
        files = sorted(data.files)
    assert meta["format_version"] == FORMAT_VERSION
    assert files[:3] == ["config", "layers/0/hyperplane_bias", "layers/0/hyperplanes"]


def test_schedule_and_base_predictor_must_be_passed_again(tmp_path):
    model = GLN(
        "jax",
        [2, 1],
        4,
        learning_rate=lambda step: 0.01,
        base_predictor=lambda x: np.concatenate([x, 1 - x], axis=1),
    )
    path = tmp_path / "m.npz"
    model.save(path)
    with pytest.raises(ValueError, match="base_predictor"):
        GLN.load(path, learning_rate=0.1)
    with pytest.raises(ValueError, match="schedule"):
        GLN.load(path, base_predictor=lambda x: np.concatenate([x, 1 - x], axis=1))
    with pytest.raises(ValueError, match="returns 4 base predictions"):
        GLN.load(path, base_predictor=lambda x: x, learning_rate=0.1)
    loaded = GLN.load(
        path, base_predictor=lambda x: np.concatenate([x, 1 - x], axis=1), learning_rate=0.1
    )
    assert loaded.config.base_prediction_size == 8


def test_truncated_file(saved):
    _, path, _ = saved
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="not a valid gln-jax checkpoint"):
        GLN.load(path)


def test_foreign_files(tmp_path):
    text = tmp_path / "notes.npz"
    text.write_text("hello")
    with pytest.raises(ValueError, match="not a valid gln-jax checkpoint"):
        load_checkpoint(text)
    other = tmp_path / "other.npz"
    np.savez(other, a=np.zeros(3))
    with pytest.raises(ValueError, match="no 'config'"):
        load_checkpoint(other)
    pickled = tmp_path / "pickled.npz"
    with zipfile.ZipFile(pickled, "w") as archive:  # an object array would need pickle
        with archive.open("config.npy", "w") as handle:
            np.lib.format.write_array(handle, np.array([{"x": 1}], dtype=object))
        with archive.open("step.npy", "w") as handle:
            np.lib.format.write_array(handle, np.array(0))
    with pytest.raises(ValueError, match="not a valid gln-jax checkpoint"):
        load_checkpoint(pickled)
    with pytest.raises(FileNotFoundError):
        load_checkpoint(tmp_path / "missing.npz")


@pytest.mark.parametrize(
    ("change", "match"),
    [
        (lambda c: c.__setitem__("layers/0/weights", c["layers/0/weights"][:, :2]), "shape"),
        (
            lambda c: c.__setitem__(
                "layers/1/hyperplanes", c["layers/1/hyperplanes"].astype(np.float64)
            ),
            "dtype",
        ),
        (lambda c: c.pop("layers/1/hyperplane_bias"), "missing array"),
        (lambda c: c.__setitem__("extra", np.zeros(1)), "unexpected entries"),
        (lambda c: c.__setitem__("step", np.array(-3)), "step"),
        (lambda c: c["layers/0/weights"].__setitem__((0, 0, 0, 0), np.nan), "NaN"),
        (lambda c: c["layers/0/weights"].__setitem__((0, 0, 0, 0), 9.0), "outside"),
        (lambda c: c.__setitem__("config", np.array("{not json")), "JSON"),
        (
            lambda c: c.__setitem__(
                "config",
                np.array(json.dumps(dict(json.loads(str(c["config"])), format_version=99))),
            ),
            "format_version 99",
        ),
        (
            lambda c: c.__setitem__(
                "config", np.array(json.dumps(dict(json.loads(str(c["config"])), num_classes=1)))
            ),
            "num_classes",
        ),
    ],
)
def test_inconsistent_contents(saved, change, match):
    _, path, _ = saved
    rewrite(path, change)
    with pytest.raises(ValueError, match=match):
        GLN.load(path)


def test_float64_checkpoint_into_jax_needs_x64(tmp_path, x64):
    model = GLN("jax", [2, 1], 4, dtype="float64")
    path = tmp_path / "m64.npz"
    model.save(path)
    jax.config.update("jax_enable_x64", False)
    with pytest.raises(ValueError, match="jax_enable_x64"):
        GLN.load(path)
    jax.config.update("jax_enable_x64", True)
    assert GLN.load(path).reference_state().layers[0].weights.dtype == np.float64
