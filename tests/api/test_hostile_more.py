"""Hostile review, second round: extreme features, set_params after fit, bad rngs and meshes,
and the multi-epoch streaming resume recipe of docs/guides/scale.md."""

import jax
import numpy as np
import pytest
from jax.sharding import Mesh

from gln_jax import GLN, make_config
from gln_jax.core import _sharding as sharding
from gln_jax.core import _transforms as transforms
from gln_jax.sklearn import GLNClassifier, GLNRegressor
from gln_jax.streaming import array_chunks


def _assert_states_equal(a, b):
    for left, right in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_array_equal(np.asarray(left), np.asarray(right))


# ---------------------------------------------------------------- 1. extreme finite features
def test_transform_rejects_features_whose_statistics_would_overflow():
    config = transforms.make_transform("standardize")
    state = transforms.init(2, "float32")
    with pytest.raises(ValueError, match=r"ranges from -1e\+20 to 1e\+20"):
        transforms.transform_stream(state, np.array([[1e20, 0.0], [-1e20, 1.0]]), config=config)
    with pytest.raises(ValueError, match="statistics take magnitudes up to"):
        transforms.apply_batch(state, np.array([[1e20, 0.0]]), config=config)
    limit = transforms.feature_limit("float32")
    ok = np.array([[limit, 0.0], [-limit, 1.0]] * 4, np.float32)
    new, zs = transforms.transform_stream(state, ok, config=config)
    assert np.isfinite(np.asarray(new.m2)).all() and np.isfinite(zs).all()


def test_sklearn_rejects_extreme_features_and_stays_unchanged():
    X = np.array([[1e308, 0.0], [-1e308, 1.0], [1e308, 2.0], [0.0, 3.0]])
    y = np.array([0, 1, 0, 1])
    clf = GLNClassifier(layer_sizes=(4, 1), max_iter=1)
    with pytest.raises(ValueError, match="ranges from -1e\\+308 to 1e\\+308"):
        clf.fit(X, y)
    assert not hasattr(clf, "state_")


def test_facade_rejects_extreme_features_through_the_transform():
    model = GLN("jax", [3, 1], 2, side_info_transform="standardize", seed=0)
    X = np.array([[1e20, 0.5], [-1e20, 0.5], [1e20, 0.5]])
    with pytest.raises(ValueError, match="statistics take magnitudes up to"):
        model.predict(X, np.array([0, 1, 0]))
    assert model.step == 0


def test_facade_checks_the_transformed_side_information():
    transform = transforms.make_transform("center", scale=3e38)  # raw values pass the check
    model = GLN("jax", [3, 1], 2, side_info_transform=transform, seed=0)
    X = np.array([[0.9, 0.1], [0.1, 0.9]])
    with pytest.raises(ValueError, match="transformed side information"):
        model.predict(X)  # no statistics yet: z = scale * x
    standardize = transforms.make_transform("standardize", scale=3e38)
    model = GLN("jax", [3, 1], 2, side_info_transform=standardize, seed=0)
    with pytest.raises(ValueError, match="transformed side information"):
        model.predict(X, np.array([0, 1]))  # learning: z = scale * (x - m) / (std + eps)
    assert model.step == 0


# ---------------------------------------------------------------- 2. set_params after fit
@pytest.mark.heavy
@pytest.mark.parametrize("estimator", [GLNClassifier, GLNRegressor])
def test_set_params_after_fit_changes_nothing_until_the_next_fit(estimator):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 3)) * 5 + 2
    y = (X[:, 0] > 2).astype(int) if estimator is GLNClassifier else X[:, 0] * 3.0
    params = dict(layer_sizes=(4, 1), max_iter=1, random_state=0, learning_rate=0.01)
    model, control = estimator(**params).fit(X, y), estimator(**params).fit(X, y)
    before = model.predict(X)
    model.set_params(standardize=False, learning_rate=0.5, batch_size=4)
    np.testing.assert_array_equal(model.predict(X), before)
    model.partial_fit(X[:10], y[:10])
    control.partial_fit(X[:10], y[:10])
    np.testing.assert_array_equal(model.predict(X), control.predict(X))
    _assert_states_equal(model.state_, control.state_)
    model.fit(X, y)  # the new parameters take effect here
    np.testing.assert_array_equal(model.mean_, np.zeros(3))
    fresh = estimator(**{**params, "standardize": False, "learning_rate": 0.5, "batch_size": 4})
    np.testing.assert_array_equal(model.predict(X), fresh.fit(X, y).predict(X))


# ---------------------------------------------------------------- 3. bad rngs and empty meshes
def test_nnx_rngs_must_be_an_nnx_rngs():
    pytest.importorskip("flax")
    from gln_jax.nnx import GLN as NNXGLN

    with pytest.raises(TypeError, match=r"nnx\.Rngs\(0\)"):
        NNXGLN([3, 1], 4, num_classes=3, rngs=0)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"devices": []},
        {"mesh": Mesh(np.empty((0,), object), ("classes",))},
    ],
)
def test_a_mesh_without_devices_is_a_value_error(kwargs):
    with pytest.raises(ValueError, match="devices"):
        GLN("jax", [3, 1], 4, num_classes=3, **kwargs)


def test_class_sharding_rejects_a_mesh_without_devices():
    mesh = Mesh(np.empty((0,), object), ("classes",))
    with pytest.raises(ValueError, match="no devices"):
        sharding.class_sharding(make_config([3, 1], 4, num_classes=3), mesh)


# ---------------------------------------------------------------- 4. multi-epoch resume recipe
def test_multi_epoch_resume_recipe_learns_every_example_once_per_epoch(tmp_path):
    rng = np.random.default_rng(0)
    T, chunk, epochs = 200, 10, 2
    X = np.memmap(tmp_path / "x.f32", np.float32, "w+", shape=(T, 8))
    X[:] = rng.uniform(size=(T, 8))
    y = np.memmap(tmp_path / "y.i64", np.int64, "w+", shape=(T,))
    y[:] = rng.integers(0, 3, T)
    X.flush(), y.flush()

    def model():
        return GLN("jax", [4, 4, 1], 8, num_classes=3, learning_rate=0.05, seed=2)

    uninterrupted = model()
    uninterrupted.fit(X, y, num_epochs=epochs, chunk_size=chunk)

    def killed(after):  # the stream of the guide's recipe, failing mid-way through epoch 2
        for index, item in enumerate(array_chunks(X, y, chunk, num_epochs=epochs)):
            if index == after:
                raise RuntimeError("killed")
            yield item

    path = tmp_path / "stream.npz"
    first = model()
    with pytest.raises(RuntimeError, match="killed"):
        first.fit(killed(27), chunk_size=chunk, checkpoint_path=path, checkpoint_every=40)
    resumed = GLN.load(path)
    assert resumed.step == 240  # the checkpoint sits in the second epoch
    with pytest.raises(ValueError, match="pass its num_epochs"):
        array_chunks(X, y, chunk, start=resumed.step)  # the old recipe silently did nothing
    resumed.fit(
        array_chunks(X, y, chunk, start=resumed.step, num_epochs=epochs),
        chunk_size=chunk,
        checkpoint_path=path,
        checkpoint_every=40,
    )
    assert resumed.step == uninterrupted.step == epochs * T
    _assert_states_equal(resumed.state, uninterrupted.state)
