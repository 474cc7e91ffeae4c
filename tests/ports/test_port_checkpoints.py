"""A checkpoint written by any backend loads into every backend with the same predictions."""

from __future__ import annotations

import functools

import numpy as np
import pytest

import gln_jax

from .port_harness import BACKENDS, PORTS, params

CONFIG = dict(layer_sizes=[3, 2], input_size=6, context_map_size=2, num_classes=3)


def _data(count: int = 60):
    rng = np.random.default_rng(7)
    return rng.random((count, 6), dtype=np.float32), rng.integers(0, 3, count)


@functools.lru_cache(maxsize=8)
def _saved(saver: str, directory: str) -> tuple[str, np.ndarray, gln_jax.GLNState]:
    """A model trained by ``saver`` and saved; returns the path, its probabilities, its state."""
    x, y = _data()
    model = gln_jax.GLN(saver, **CONFIG, learning_rate=0.05, seed=3)
    model.fit(x, y, batch_size=4)
    path = f"{directory}/{saver}.npz"
    model.save(path)
    return path, model.predict(x, return_probs=True), model.reference_state()


@pytest.fixture(scope="module")
def directory(tmp_path_factory):
    return str(tmp_path_factory.mktemp("checkpoints"))


def _assert_same_model(model, state, probs, same_backend: bool):
    loaded = model.reference_state()
    assert int(loaded.step) == int(state.step)
    for a, b in zip(loaded.layers, state.layers, strict=True):
        for field in gln_jax.LayerState._fields:
            np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
    x, _ = _data()
    got = _as_numpy(model.predict(x, return_probs=True))
    if same_backend:
        np.testing.assert_array_equal(got, probs)
    else:  # the same weights evaluated by another framework: rounding only
        np.testing.assert_allclose(got, probs, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(got.argmax(-1), probs.argmax(-1))


def _as_numpy(value) -> np.ndarray:
    if hasattr(value, "detach"):
        return value.detach().cpu().numpy()
    if hasattr(value, "numpy") and not isinstance(value, np.ndarray):
        return value.numpy()
    return np.asarray(value)


@pytest.mark.parametrize("loader", params(BACKENDS))
@pytest.mark.parametrize("saver", params(BACKENDS))
def test_checkpoint_loads_into_every_backend(saver, loader, directory):
    path, probs, state = _saved(saver.name, directory)
    model = gln_jax.GLN.load(path, backend=loader.name)
    assert model.backend == loader.name
    _assert_same_model(model, state, probs, saver is loader)
    if loader.name != "jax":  # the port's own class loads it too
        own = loader.module().GLN.load(path)
        _assert_same_model(own, state, probs, saver is loader)


@pytest.mark.parametrize("backend", params(PORTS))
def test_port_model_saves_what_the_reference_loads(backend, tmp_path):
    x, y = _data()
    model = backend.module().GLN(**CONFIG, learning_rate=0.05, seed=3)
    model.fit(x, y)
    model.save(tmp_path / "port.npz")
    loaded = gln_jax.GLN.load(tmp_path / "port.npz")
    expected = _as_numpy(model.predict(x, return_probs=True))
    np.testing.assert_allclose(loaded.predict(x, return_probs=True), expected, rtol=1e-5, atol=1e-6)
    assert loaded.step == len(x)
    assert loaded.learning_rate == 0.05
