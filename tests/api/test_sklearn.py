"""GLNClassifier: labels, probabilities and equality with the functional API (what it shares
with GLNRegressor, scikit-learn's conformance suite included, is in test_sklearn_estimators.py)."""

import jax
import numpy as np
import pytest

pytest.importorskip("sklearn")

from sklearn.datasets import load_iris, make_blobs  # noqa: E402
from sklearn.model_selection import GridSearchCV, cross_val_score  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import FunctionTransformer  # noqa: E402

import gln_jax  # noqa: E402
from gln_jax.sklearn import GLNClassifier, running_standardize  # noqa: E402


def small(backend, **params):
    """A small estimator: few neurons and rows, so the checks compile and run quickly."""
    defaults = dict(layer_sizes=(4, 1), context_map_size=2, learning_rate=0.1, random_state=0)
    return GLNClassifier(backend=backend, **(defaults | params))


def blobs(n=120, centers=3, seed=0, scale=1.0):
    X, y = make_blobs(n_samples=n, centers=centers, n_features=5, random_state=seed)
    return X * scale + 100.0 * scale, y


def state_arrays(model):
    return [np.asarray(leaf) for leaf in jax.tree.leaves(model.state_)]


def test_running_standardize_is_welford_and_chunk_invariant():
    rng = np.random.default_rng(0)
    X = rng.normal(3.0, [1.0, 100.0, 1e-3], size=(200, 3))
    z, count, mean, m2 = running_standardize(X, 0, np.zeros(3), np.zeros(3))
    assert count == 200
    np.testing.assert_allclose(mean, X.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(m2 / count, X.var(axis=0), rtol=1e-10)
    # row t uses the statistics of rows 0..t
    t = 57
    expected = (X[t] - X[: t + 1].mean(axis=0)) / X[: t + 1].std(axis=0)
    np.testing.assert_allclose(z[t], expected, rtol=1e-9)
    np.testing.assert_array_equal(z[0], np.zeros(3))  # one example: zero variance, scale 1
    z1, c1, m1, s1 = running_standardize(X[:77], 0, np.zeros(3), np.zeros(3))
    z2, c2, m2b, s2 = running_standardize(X[77:], c1, m1, s1)
    np.testing.assert_array_equal(np.concatenate([z1, z2]), z)
    np.testing.assert_array_equal(m2b, mean)
    np.testing.assert_array_equal(s2, m2)


@pytest.mark.heavy
@pytest.mark.parametrize("centers", [2, 3])
def test_predictions_equal_the_facade_on_the_transformed_data(centers):
    X, y = blobs(centers=centers)
    labels = np.array(["b", "a", "c"])[y]  # not sorted: classes_ are ["a", "b", "c"]
    model = small("jax", shuffle=False).fit(X, labels)
    np.testing.assert_array_equal(model.classes_, np.sort(np.unique(labels)))
    seed = int(np.random.RandomState(0).randint(np.iinfo(np.int32).max))
    z, _, mean, m2 = running_standardize(X, 0, np.zeros(5), np.zeros(5))
    facade = gln_jax.GLN(
        "jax",
        [4, 1],
        5,
        context_map_size=2,
        num_classes=centers,
        base_predictor=lambda s: 1.0 / (1.0 + np.exp(-s)),
        learning_rate=0.1,
        seed=seed,
    )
    facade.fit(z, np.searchsorted(model.classes_, labels))
    reference = jax.tree.leaves(facade.reference_state())
    for ours, theirs in zip(state_arrays(model), reference, strict=True):
        np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-6)
    X_new, _ = blobs(n=40, centers=centers, seed=1)
    z_new = (X_new - mean) / np.sqrt(m2 / len(y))
    p = np.asarray(facade.predict(z_new, return_probs=True), np.float64).reshape(40, -1)
    scores = model.decision_function(X_new).reshape(40, -1)
    np.testing.assert_allclose(scores, np.log(p / (1 - p)), rtol=1e-4, atol=1e-4)
    proba = model.predict_proba(X_new)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-12)
    if centers == 2:
        np.testing.assert_allclose(proba[:, 1], p[:, 0], rtol=1e-5)
    else:
        np.testing.assert_allclose(proba, p / p.sum(axis=1, keepdims=True), rtol=1e-5)
    np.testing.assert_array_equal(model.predict(X_new), model.classes_[proba.argmax(axis=1)])


def test_feature_scale_does_not_matter():
    X, y = blobs()
    a = small("numpy", shuffle=False).fit(X, y)
    b = small("numpy", shuffle=False).fit(X * 1e4 - 3e5, y)
    np.testing.assert_allclose(a.predict_proba(X), b.predict_proba(X * 1e4 - 3e5), atol=1e-4)
    assert a.score(X, y) > 0.9


def test_bad_input_leaves_the_model_unchanged():
    X, y = blobs()
    model = small("numpy").fit(X, y)
    before = state_arrays(model)
    mean = model.mean_.copy()
    bad_x = X[:5].copy()
    bad_x[2, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        model.partial_fit(bad_x, y[:5])
    with pytest.raises(ValueError, match="not in classes"):
        model.partial_fit(X[:5], np.array([0, 1, 2, 7, 0]))
    with pytest.raises(ValueError, match="features"):
        model.partial_fit(X[:5, :3], y[:5])
    for a, b in zip(before, state_arrays(model), strict=True):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(mean, model.mean_)
    with pytest.raises(ValueError, match="2 classes"):
        model.fit(X[:, :3], np.zeros(len(y)))  # would reset n_features_in_ before failing
    assert model.n_features_in_ == 5
    fresh = small("numpy")
    with pytest.raises(ValueError, match="not in classes"):
        fresh.partial_fit(X, y, classes=[0, 1])
    assert vars(fresh) == vars(small("numpy"))  # nothing set by the failed first call
    with pytest.raises(ValueError, match="classes must be passed"):
        small("numpy").partial_fit(X, y)
    with pytest.raises(ValueError, match="learning_rate"):
        small("numpy", learning_rate=-1.0).fit(X, y)
    with pytest.raises(ValueError, match="layer_sizes"):
        small("numpy", layer_sizes=(0, 1)).fit(X, y)
    with pytest.raises(ValueError, match="max_iter"):
        small("numpy", max_iter=0).fit(X, y)


@pytest.mark.heavy
def test_pipeline_grid_search_and_cross_validation():
    X, y = load_iris(return_X_y=True)
    pipe = make_pipeline(FunctionTransformer(np.log1p), small("numpy", layer_sizes=(8, 1)))
    scores = cross_val_score(pipe, X, y, cv=3)
    assert scores.shape == (3,) and scores.mean() > 0.8
    search = GridSearchCV(
        small("numpy", layer_sizes=(8, 1)), {"learning_rate": [0.03, 0.1]}, cv=3
    ).fit(X, y)
    assert search.best_params_["learning_rate"] in (0.03, 0.1)
    assert search.best_score_ > 0.8
    assert search.predict(X).shape == (150,)


def test_standardize_false_uses_features_as_probabilities():
    X, y = blobs()
    X01 = (X - X.min(axis=0)) / (X.max(axis=0) - X.min(axis=0))
    model = small("numpy", standardize=False, shuffle=False).fit(X01, y)
    facade = gln_jax.GLN(
        "numpy",
        [4, 1],
        5,
        context_map_size=2,
        num_classes=3,
        learning_rate=0.1,
        seed=int(np.random.RandomState(0).randint(np.iinfo(np.int32).max)),
    )
    facade.fit(X01, y)
    p = np.asarray(facade.predict(X01, return_probs=True), np.float64)
    expected = p / p.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(model.predict_proba(X01), expected, rtol=1e-6)


def test_refitting_the_same_shapes_compiles_nothing_new():
    from gln_jax.api.jax_engine import predict_batch
    from gln_jax.core.stream import _fit_chunk

    X, y = blobs(n=100)
    model = small("jax").fit(X, y)
    model.predict_proba(X[:7])
    sizes = (predict_batch._cache_size(), _fit_chunk._cache_size())
    for n in (90, 70):  # chunks pad to 128 examples, predictions to 128 and 8 rows
        model.fit(X[:n], y[:n]).partial_fit(X[:n], y[:n])
        model.predict_proba(X[:n])
        model.predict_proba(X[:5])
    assert (predict_batch._cache_size(), _fit_chunk._cache_size()) == sizes


def test_feature_names_in():
    pd = pytest.importorskip("pandas")  # scikit-learn reads column names of data frames only
    X, y = blobs()
    frame = pd.DataFrame(X, columns=[f"f{i}" for i in range(5)])
    model = small("numpy").fit(frame, y)
    np.testing.assert_array_equal(model.feature_names_in_, frame.columns.to_numpy(object))
    with pytest.raises(ValueError, match="feature names"):
        model.predict(frame.rename(columns={"f0": "other"}))


def test_classifier_tags():
    tags = GLNClassifier().__sklearn_tags__()  # (the common tags: test_sklearn_estimators.py)
    assert tags.classifier_tags.multi_class and not tags.classifier_tags.multi_label
