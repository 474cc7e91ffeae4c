"""GaussianGLN: predictions and learning in every backend with a Gaussian engine, bad targets,
checkpoints that record the family, and version-1 Bernoulli files that keep loading."""

import importlib.util
import json
import pathlib

import numpy as np
import pytest

from gln_jax import GLN, GaussianGLN
from gln_jax.api.checkpoint import FORMAT_VERSION, load_checkpoint

DATA = pathlib.Path(__file__).parent / "data"


def regression(count=120, width=6, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((count, width)).astype(np.float32)
    y = (np.sin(x[:, 0]) + 0.5 * x[:, 1] + 0.1 * rng.standard_normal(count)).astype(np.float32)
    return x, y


def model(backend="jax", **kwargs):
    return GaussianGLN(backend, [4, 4], 6, context_map_size=2, learning_rate=0.01, **kwargs)


@pytest.mark.heavy
def test_fit_learns_and_backends_agree():
    x, y = regression()
    jax_model, numpy_model = model("jax"), model("numpy")
    early = jax_model.fit(x, y)
    assert early.shape == (120,) and early.dtype == np.float32
    numpy_model.fit(x, y)
    mean, std = jax_model.predict(x, return_std=True)
    assert mean.shape == std.shape == (120,) and (std > 0).all()
    np.testing.assert_allclose(numpy_model.predict(x), mean, rtol=1e-3, atol=1e-4)
    for backend, framework in (("pytorch", "torch"), ("tf", "tensorflow")):
        if importlib.util.find_spec(framework) is not None:
            port_model = model(backend)
            port_model.fit(x[:40], y[:40])
            reference = model("jax")
            reference.fit(x[:40], y[:40])
            np.testing.assert_allclose(
                port_model.predict(x), reference.predict(x), rtol=1e-3, atol=1e-4
            )
    assert np.mean((mean - y) ** 2) < 0.6 * np.mean(y**2)  # untrained: about 1.0
    assert jax_model.step == numpy_model.step == 120
    assert "GaussianGLN(backend='jax'" in repr(jax_model)


@pytest.mark.heavy
def test_predict_with_target_learns_online_and_multi_output_shapes():
    x, y = regression()
    one = model()
    before = one.predict(x[:5])
    first = one.predict(x[:5], target=y[:5])
    np.testing.assert_array_equal(first, before)  # predictions from before the update
    assert one.step == 5 and not np.array_equal(one.predict(x[:5]), before)
    two = model(num_outputs=2)
    targets = np.stack([y, -y], axis=1)
    out = two.fit(x, targets, batch_size=4)
    assert out.shape == (120, 2)
    mean, std = two.predict(x[0], return_std=True)
    assert mean.shape == std.shape == (1, 2)


@pytest.mark.parametrize(
    "target, error",
    [
        (np.full(3, np.nan), "NaN"),
        (np.zeros(4), "shape"),
        (np.zeros((3, 2)), "shape"),
        (np.array(["a", "b", "c"]), "real numbers"),
    ],
)
def test_bad_targets_raise_and_change_nothing(target, error):
    x, y = regression()
    m = model()
    m.fit(x[:10], y[:10])
    weights = [layer.weights.copy() for layer in m.reference_state().layers]
    with pytest.raises((ValueError, TypeError), match=error):
        m.predict(x[:3], target=target)
    with pytest.raises((ValueError, TypeError), match=error):
        m.fit(x[:3], target)
    assert m.step == 10
    for a, b in zip(m.reference_state().layers, weights, strict=True):
        np.testing.assert_array_equal(a.weights, b)


def test_save_load_across_backends_records_the_family(tmp_path):
    x, y = regression()
    m = model()
    m.fit(x, y)
    path = tmp_path / "gaussian.npz"
    m.save(path)
    with np.load(path) as data:
        meta = json.loads(str(data["config"]))
    assert meta["format_version"] == FORMAT_VERSION == 3 and meta["family"] == "gaussian"
    assert load_checkpoint(path).config == m.config
    for backend in ("jax", "numpy"):
        loaded = GaussianGLN.load(path, backend)
        np.testing.assert_allclose(loaded.predict(x), m.predict(x), rtol=1e-5, atol=1e-6)
        assert loaded.step == 120 and loaded.learning_rate == 0.01
    with pytest.raises(ValueError, match="gaussian-family"):
        GLN.load(path)
    bernoulli = GLN("jax", [2], 6)
    bernoulli.save(tmp_path / "bernoulli.npz")
    with pytest.raises(ValueError, match="bernoulli-family"):
        GaussianGLN.load(tmp_path / "bernoulli.npz")


def test_version_1_file_keeps_loading():
    """``data/bernoulli_v1.npz`` was written by the version-1 ``save_checkpoint`` (commit
    1a867d9): ``GLN([2, 1], 3, context_map_size=1)``, seed 0, one batch update of two examples
    at rate 0.1, saved with learning rate 0.01."""
    path = DATA / "bernoulli_v1.npz"
    with np.load(path) as data:
        meta = json.loads(str(data["config"]))
    assert meta["format_version"] == 1 and "family" not in meta
    loaded = GLN.load(path)
    assert loaded.step == 2 and loaded.learning_rate == 0.01
    x = np.array([[0.1, 0.7, 0.3]], np.float32)
    np.testing.assert_allclose(loaded.predict(x, return_probs=True), [0.6157442], rtol=1e-6)


def test_unknown_family_is_refused(tmp_path):
    m = model()
    path = tmp_path / "m.npz"
    m.save(path)
    with np.load(path) as data:
        contents = {k: data[k] for k in data.files}
    meta = json.loads(str(contents["config"]))
    meta["family"] = "poisson"
    contents["config"] = np.array(json.dumps(meta))
    with open(path, "wb") as handle:
        np.savez(handle, **contents)
    with pytest.raises(ValueError, match="unknown family 'poisson'"):
        GaussianGLN.load(path)
