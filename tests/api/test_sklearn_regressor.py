"""GLNRegressor: real targets, their standardisation and equality with the Gaussian facade
(what it shares with GLNClassifier, scikit-learn's conformance suite included, is in
test_sklearn_estimators.py)."""

import jax
import numpy as np
import pytest

pytest.importorskip("sklearn")

from sklearn.datasets import load_diabetes, make_regression  # noqa: E402
from sklearn.model_selection import GridSearchCV, cross_val_score  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import FunctionTransformer  # noqa: E402

from gln_jax import GaussianGLN  # noqa: E402
from gln_jax.sklearn import GLNRegressor, running_standardize  # noqa: E402


def small(backend, **params):
    """A small estimator: few neurons and rows, so the checks compile and run quickly."""
    defaults = dict(layer_sizes=(4, 1), context_map_size=2, random_state=0)
    return GLNRegressor(backend=backend, **(defaults | params))


def data(n=120, outputs=None, seed=0, scale=1.0):
    X, y = make_regression(
        n_samples=n,
        n_features=5,
        n_informative=3,
        n_targets=outputs or 1,
        noise=5.0,
        random_state=seed,
    )
    return X * scale + 100.0 * scale, y * 10.0 + 300.0


def state_arrays(model):
    return [np.asarray(leaf) for leaf in jax.tree.leaves(model.state_)]


def seed_of(random_state):
    return int(np.random.RandomState(random_state).randint(np.iinfo(np.int32).max))


@pytest.mark.heavy
@pytest.mark.parametrize("outputs", [None, 2])
def test_predictions_equal_the_facade_on_the_transformed_data(outputs):
    X, y = data(outputs=outputs)
    model = small("jax", shuffle=False, learning_rate=0.01).fit(X, y)
    z, _, mean, m2 = running_standardize(X, 0, np.zeros(5), np.zeros(5))
    y2 = y.reshape(len(y), -1)
    c = y2.shape[1]
    yz, _, y_mean, y_m2 = running_standardize(y2, 0, np.zeros(c), np.zeros(c))
    facade = GaussianGLN(
        "jax", [4, 1], 5, context_map_size=2, num_outputs=c, learning_rate=0.01, seed=seed_of(0)
    )
    facade.fit(z, yz if outputs else yz[:, 0])
    reference = jax.tree.leaves(facade.reference_state())
    for ours, theirs in zip(state_arrays(model), reference, strict=True):
        np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(model.target_mean_, y2.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(model.target_scale_, y2.std(axis=0), rtol=1e-10)
    X_new, _ = data(n=40, outputs=outputs, seed=1)
    z_new = (X_new - mean) / np.sqrt(m2 / len(y))
    mu, sigma = facade.predict(z_new, return_std=True)
    scale = np.sqrt(y_m2 / len(y))
    mean_ours, std_ours = model.predict(X_new, return_std=True)
    assert mean_ours.shape == std_ours.shape == ((40,) if outputs is None else (40, 2))
    expected_mean = y_mean + scale * np.asarray(mu, np.float64).reshape(40, c)
    expected_std = scale * np.asarray(sigma, np.float64).reshape(40, c)
    np.testing.assert_allclose(mean_ours.reshape(40, c), expected_mean, rtol=1e-5, atol=1e-3)
    np.testing.assert_allclose(std_ours.reshape(40, c), expected_std, rtol=1e-5)
    assert (std_ours > 0).all()
    np.testing.assert_array_equal(model.predict(X_new), mean_ours)


def test_standardize_false_uses_features_and_targets_as_they_are():
    X, y = data()
    Xs = (X - X.mean(axis=0)) / X.std(axis=0)
    ys = (y - y.mean()) / y.std()
    model = small("numpy", standardize=False, shuffle=False).fit(Xs, ys)
    facade = GaussianGLN("numpy", [4, 1], 5, context_map_size=2, seed=seed_of(0))
    facade.fit(Xs, ys)
    np.testing.assert_allclose(model.predict(Xs), facade.predict(Xs), rtol=1e-6, atol=1e-7)
    np.testing.assert_array_equal(model.target_mean_, [0.0])
    np.testing.assert_array_equal(model.target_scale_, [1.0])


def test_feature_and_target_scale_do_not_matter():
    X, y = data()
    a = small("numpy", shuffle=False).fit(X, y)
    b = small("numpy", shuffle=False).fit(X * 1e4 - 3e5, y * 1e3 + 7.0)
    np.testing.assert_allclose(
        a.predict(X) * 1e3 + 7.0, b.predict(X * 1e4 - 3e5), rtol=1e-4, atol=1e-2
    )


@pytest.mark.heavy
def test_learns_and_gives_calibrated_spreads():
    X, y = make_regression(n_samples=3000, n_features=5, noise=10.0, random_state=0)
    model = GLNRegressor(layer_sizes=(16, 1), random_state=0, max_iter=2).fit(X[:2500], y[:2500])
    assert model.score(X[2500:], y[2500:]) > 0.9
    mean, std = model.predict(X[2500:], return_std=True)
    inside = np.abs(y[2500:] - mean) < 2 * std  # two standard deviations: about 95% nominal
    assert 0.8 < inside.mean() <= 1.0


def test_bad_input_leaves_the_model_unchanged():
    X, y = data()
    model = small("numpy").fit(X, y)
    before = state_arrays(model)
    saved = {k: np.copy(v) for k, v in vars(model).items() if isinstance(v, np.ndarray)}
    bad_x = X[:5].copy()
    bad_x[2, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        model.partial_fit(bad_x, y[:5])
    bad_y = y[:5].copy()
    bad_y[3] = np.inf
    with pytest.raises(ValueError, match="infinity|inf"):
        model.partial_fit(X[:5], bad_y)
    with pytest.raises(ValueError, match="features"):
        model.partial_fit(X[:5, :3], y[:5])
    with pytest.raises(ValueError, match="shape"):
        model.partial_fit(X[:5], np.stack([y[:5], y[:5]], axis=1))
    for a, b in zip(before, state_arrays(model), strict=True):
        np.testing.assert_array_equal(a, b)
    for name, value in saved.items():
        np.testing.assert_array_equal(value, getattr(model, name))
    with pytest.raises(ValueError, match="learning_rate"):
        small("numpy", learning_rate=-1.0).fit(X, y)
    with pytest.raises(ValueError, match="sigma_sq"):
        small("numpy", min_sigma_sq=2.0, max_sigma_sq=1.0).fit(X, y)
    with pytest.raises(ValueError, match="max_iter"):
        small("numpy", max_iter=0).fit(X, y)
    fresh = small("numpy")
    with pytest.raises(ValueError, match="NaN"):
        fresh.partial_fit(bad_x, y[:5])
    assert vars(fresh) == vars(small("numpy"))  # nothing set by the failed first call


def test_pipeline_grid_search_and_cross_validation():
    X, y = load_diabetes(return_X_y=True)
    pipe = make_pipeline(FunctionTransformer(np.tanh), small("numpy", layer_sizes=(8, 1)))
    scores = cross_val_score(pipe, X, y, cv=3)
    assert scores.shape == (3,) and scores.mean() > 0.2
    search = GridSearchCV(
        small("numpy", layer_sizes=(8, 1)), {"learning_rate": [0.003, 0.01]}, cv=3
    ).fit(X, y)
    assert search.best_params_["learning_rate"] in (0.003, 0.01)
    assert search.best_score_ > 0.3
    assert search.predict(X).shape == (442,)


def test_regressor_tags():
    tags = GLNRegressor().__sklearn_tags__()  # (the common tags: test_sklearn_estimators.py)
    assert tags.target_tags.multi_output and tags.target_tags.single_output
    assert tags.regressor_tags.poor_score  # one pass at the default rate (see the tag's comment)
