"""Safety of the Gaussian family: raw targets, hyperparameters out of range, NaN outputs."""

from __future__ import annotations

import numpy as np
import pytest

from gln_jax import GaussianGLN
from gln_jax.sklearn import GLNRegressor


def _diabetes():
    datasets = pytest.importorskip("sklearn.datasets")
    X, y = datasets.load_diabetes(return_X_y=True)
    X = (X - X[:350].mean(0)) / X[:350].std(0)
    return X[:350], y[:350], X[350:], y[350:]


def test_raw_diabetes_targets_raise_a_clear_error_and_change_nothing():
    X, y, _, _ = _diabetes()
    model = GaussianGLN("jax", [32, 32], 10)
    before = model.reference_state()
    with pytest.raises(ValueError, match="standardise"):
        model.fit(X, y)
    with pytest.raises(ValueError, match="standardise"):
        model.predict(X[:5], y[:5])
    assert model.step == 0
    for a, b in zip(model.reference_state().layers, before.layers, strict=True):
        np.testing.assert_array_equal(a.weights, b.weights)


@pytest.mark.heavy
def test_standardised_diabetes_targets_train_like_the_regressor():
    X, y, Xt, yt = _diabetes()
    mean, scale = y.mean(), y.std()
    model = GaussianGLN("jax", [32, 32], 10)
    model.fit(X, (y - mean) / scale)
    rmse = np.sqrt(np.mean((mean + scale * model.predict(Xt) - yt) ** 2))
    assert rmse < 80  # GLNRegressor: about 60


@pytest.mark.parametrize(
    "kwargs",
    [
        {"learning_rate": 1e39},
        {"learning_rate": 10.0},
        {"min_sigma_sq": 1e-30, "max_sigma_sq": 1e-29},
        {"max_sigma_sq": 1e30},
        {"input_sigma_sq": 1e-30},
        {"bias_sigma_sq": 1e-30},
        {"bias_max_mu": 1e30},
    ],
    ids=lambda k: ",".join(k),
)
def test_hyperparameters_out_of_range_raise_naming_the_parameter(kwargs):
    name = next(iter(kwargs))
    with pytest.raises(ValueError, match=name):
        GaussianGLN("jax", [4, 4], 3, **kwargs)


@pytest.mark.parametrize(
    "kwargs",
    [{"learning_rate": 1e39}, {"input_sigma_sq": 1e-30}, {"bias_max_mu": 1e30}],
    ids=lambda k: ",".join(k),
)
def test_regressor_validates_hyperparameters_at_fit(kwargs):
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(20, 3)), rng.normal(size=20)
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        GLNRegressor(layer_sizes=(4, 1), **kwargs).fit(X, y)


def test_inputs_whose_weighted_sums_overflow_raise():
    rng = np.random.default_rng(0)
    model = GaussianGLN("jax", [4, 4], 3)
    with pytest.raises(ValueError, match="input"):
        model.fit(rng.normal(size=(10, 3)) * 1e14, rng.normal(size=10))
    with pytest.raises(ValueError, match="input"):
        model.predict(np.full((1, 3), 1e14))
    assert model.step == 0


def test_a_learning_rate_assigned_later_is_checked_before_training():
    rng = np.random.default_rng(0)
    model = GaussianGLN("jax", [4, 4], 3)
    model.learning_rate = 100.0
    with pytest.raises(ValueError, match="learning_rate"):
        model.fit(rng.normal(size=(10, 3)), rng.normal(size=10))
    assert model.step == 0


def test_non_finite_outputs_raise_and_keep_the_state():
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(10, 3)), rng.normal(size=10)
    model = GaussianGLN("jax", [4, 4], 3)
    model.fit(X, y)
    good = model.reference_state()
    runner = model._runner
    layers = tuple(
        layer._replace(weights=np.full_like(layer.weights, np.nan)) for layer in good.layers
    )
    poisoned = runner.engine.from_reference(good._replace(layers=layers))
    kept = runner.state
    runner.state = poisoned
    with pytest.raises(FloatingPointError, match="NaN"):
        model.fit(X, y)
    assert runner.state is poisoned  # restored to the state from before the call
    with pytest.raises(FloatingPointError, match="NaN"):
        model.predict(X)
    runner.state = kept
    assert np.isfinite(model.predict(X)).all()
