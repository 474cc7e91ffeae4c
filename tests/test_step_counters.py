"""Counters that never wrap: a state's int32 ``step`` and a transform's ``count`` saturate at
``2**31 - 1`` in every backend, and the facades count exactly on the host (a Python int),
evaluate schedules there and write the exact count to checkpoints."""

import jax.numpy as jnp
import numpy as np
import pytest
from frameworks import require

import gln_jax
from gln_jax import transforms
from gln_jax.api.checkpoint import load_checkpoint, save_checkpoint
from gln_jax.core import numerics

START = 2**31 - 10  # ten examples before an int32 counter would wrap
X = np.random.default_rng(0).random((64, 8)).astype(np.float32)
Y = np.arange(64) % 3


def near_the_limit(model, tmp_path, load):
    """``model`` saved with the exact count ``START`` and loaded again."""
    path = tmp_path / "start.npz"
    model.save(path)
    checkpoint = load_checkpoint(path)
    save_checkpoint(path, checkpoint.config, checkpoint.state, learning_rate=0.01, step=START)
    return load(path)


@pytest.mark.parametrize(
    ("step", "count", "expected"),
    [
        (0, 5, 5),
        (START, 9, 2**31 - 1),
        (START, 10, 2**31 - 1),
        (START, 64, 2**31 - 1),
        (2**31 - 1, 2**31 - 1, 2**31 - 1),
    ],
)
def test_advance_step_saturates_in_every_backend(step, count, expected):
    require("torch", "tf")
    import gln_numpy.numerics as np_numerics
    import gln_tf.numerics as tf_numerics
    import gln_torch.numerics as torch_numerics
    import torch

    got = numerics.advance_step(jnp.asarray(step, jnp.int32), count)
    assert got.dtype == jnp.int32 and int(got) == expected
    assert int(np_numerics.advance_step(np.int32(step), count)) == expected
    torch_got = torch_numerics.advance_step(torch.tensor(step, dtype=torch.int32), count)
    assert torch_got.dtype == torch.int32 and int(torch_got) == expected
    assert int(tf_numerics.advance_step(step, count)) == expected


@pytest.mark.parametrize("backend", ["jax", "numpy", "torch", "tf"])
def test_facade_counts_past_int32_and_its_checkpoint_loads(backend, tmp_path):
    require(backend)
    model = near_the_limit(
        gln_jax.GLN(backend, [4, 1], 8, num_classes=3, learning_rate=0.01),
        tmp_path,
        gln_jax.GLN.load,
    )
    assert model.step == START
    model.fit(X, Y)  # crosses 2**31 inside one call
    model.predict(X[:4], Y[:4])
    assert model.step == START + 68
    assert int(np.asarray(model.reference_state().step)) == 2**31 - 1  # saturated, not wrapped
    path = tmp_path / "end.npz"
    model.save(path)
    loaded = gln_jax.GLN.load(path)
    assert loaded.step == START + 68
    np.testing.assert_array_equal(
        loaded.predict(X, return_probs=True), model.predict(X, return_probs=True)
    )


@pytest.mark.parametrize("port", ["gln_numpy", "gln_torch", "gln_tf"])
def test_port_facades_count_past_int32(port, tmp_path):
    require(port)
    module = pytest.importorskip(port)
    model = near_the_limit(module.GLN([4, 1], 8, num_classes=3), tmp_path, module.GLN.load)
    model.fit(X, Y)
    assert model.step == START + 64
    model.save(tmp_path / "end.npz")
    assert module.GLN.load(tmp_path / "end.npz").step == START + 64


def test_schedule_is_evaluated_at_the_exact_count(tmp_path):
    """A schedule past 2**31 gives the same model as the same rates from step 0."""

    def schedule(t):
        return 0.02 if t < 2**31 + 20 else 0.005

    fresh = gln_jax.GLN("jax", [4, 1], 8, num_classes=3, learning_rate=0.01)
    shifted = gln_jax.GLN(
        "jax", [4, 1], 8, num_classes=3, learning_rate=lambda t: schedule(t + START)
    )
    late = near_the_limit(fresh, tmp_path, lambda p: gln_jax.GLN.load(p, learning_rate=schedule))
    late.fit(X[:40], Y[:40])
    for x, y in zip(X[40:], Y[40:], strict=True):
        late.predict(x[None], np.array([y]))
    shifted.fit(X[:40], Y[:40])
    for x, y in zip(X[40:], Y[40:], strict=True):
        shifted.predict(x[None], np.array([y]))
    for a, b in zip(late.reference_state().layers, shifted.reference_state().layers, strict=True):
        np.testing.assert_array_equal(a.weights, b.weights)


def test_streamed_fit_counts_exactly_and_checkpoints_the_exact_count(tmp_path):
    model = near_the_limit(
        gln_jax.GLN("jax", [4, 1], 8, num_classes=3, learning_rate=0.01),
        tmp_path,
        gln_jax.GLN.load,
    )
    path = tmp_path / "stream.npz"
    chunks = iter([(X[:32], Y[:32]), (X[32:], Y[32:])])
    model.fit(chunks, chunk_size=16, checkpoint_path=path, checkpoint_every=2)
    assert model.step == START + 64
    assert load_checkpoint(path).step == START + 64


def test_gaussian_facade_counts_past_int32(tmp_path):
    model = gln_jax.GaussianGLN("jax", [4, 1], 8, learning_rate=0.01)
    model = near_the_limit(model, tmp_path, gln_jax.GaussianGLN.load)
    model.fit(X, X[:, 0] * 2 - 1)
    assert model.step == START + 64
    assert int(np.asarray(model.reference_state().step)) == 2**31 - 1


def test_state_assignment_sets_the_count_and_pickles_keep_it():
    import pickle

    model = gln_jax.GLN("numpy", [4, 1], 8, num_classes=3)
    model.state = model.reference_state()._replace(step=np.asarray(START, np.int32))
    assert model.step == START
    model.fit(X, Y)
    assert pickle.loads(pickle.dumps(model)).step == START + 64


def test_transform_count_saturates_without_changing_float32_statistics():
    config = transforms.make_transform("standardize")
    x = jnp.asarray(np.random.default_rng(1).random(8), jnp.float32)
    state = transforms.TransformState(
        jnp.asarray(2**31 - 2, jnp.int32), jnp.full(8, 0.5, jnp.float32), jnp.full(8, 1e8)
    )
    state = jax_update(state, x, config)
    assert int(state.count) == 2**31 - 1
    saturated = jax_update(state, x, config)
    assert int(saturated.count) == 2**31 - 1  # stays, never wraps to a negative count
    np.testing.assert_array_equal(saturated.mean, state.mean)  # 1 / n below float32 rounding
    assert np.isfinite(np.asarray(transforms.apply(saturated, x, config=config))).all()


def jax_update(state, x, config):
    return transforms.update(state, x, config=config)


def test_the_reported_reproduction_saves_and_loads(tmp_path):
    """Set the state's step ten short of 2**31, fit 64 examples, save, load."""
    model = gln_jax.GLN("jax", [4, 1], 8, num_classes=3)
    model.state = model.state._replace(step=jnp.asarray(START, jnp.int32))
    model.fit(X, Y)
    model.save(tmp_path / "model.npz")
    loaded = gln_jax.GLN.load(tmp_path / "model.npz")
    assert loaded.step == model.step == START + 64
