"""What GLNClassifier and GLNRegressor share, tested on both: scikit-learn's own conformance
suite, chunked streams, pickling and cloning, and the tags they declare.

What only one family does (labels, probabilities, target standardisation, equality with its
facade) is tested in ``test_sklearn.py`` and ``test_sklearn_regressor.py``.
"""

import pickle
from collections.abc import Callable
from typing import NamedTuple

import jax
import numpy as np
import pytest

pytest.importorskip("sklearn")

from sklearn.base import clone  # noqa: E402
from sklearn.datasets import make_blobs, make_regression  # noqa: E402
from sklearn.utils.estimator_checks import parametrize_with_checks  # noqa: E402
from sklearn.utils.validation import has_fit_parameter  # noqa: E402

from gln_jax.sklearn import GLNClassifier, GLNRegressor  # noqa: E402


class Case(NamedTuple):
    """One estimator under test.

    Attributes:
        estimator: the class.
        defaults: the small estimator's parameters (few neurons and rows, so that the checks
            compile and run quickly).
        data: ``() -> (X, y)``, 120 examples of 5 features far from zero.
        output: ``(model, X) -> array``: what the model predicts (probabilities or means).
        partial_fit: extra arguments of ``partial_fit``'s calls.
        fitted: an attribute only a fitted model has.
        repr: the repr of the small estimator (scikit-learn's: the non-default parameters).
        rtol, atol: how closely a chunked stream's outputs equal one pass's.
    """

    estimator: type
    defaults: dict
    data: Callable
    output: Callable
    partial_fit: dict
    fitted: str
    repr: str
    rtol: float
    atol: float

    def small(self, backend, **params):
        return self.estimator(backend=backend, **(self.defaults | params))


def blobs():
    X, y = make_blobs(n_samples=120, centers=3, n_features=5, random_state=0)
    return X + 100.0, y


def regression():
    X, y = make_regression(n_samples=120, n_features=5, n_informative=3, noise=5.0, random_state=0)
    return X + 100.0, y * 10.0 + 300.0


CLASSIFIER = Case(
    GLNClassifier,
    dict(layer_sizes=(4, 1), context_map_size=2, learning_rate=0.1, random_state=0),
    blobs,
    lambda model, X: model.predict_proba(X),
    {"classes": [0, 1, 2]},
    "classes_",
    "GLNClassifier(context_map_size=2, layer_sizes=(4, 1), learning_rate=0.1, random_state=0)",
    1e-6,
    1e-7,
)
REGRESSOR = Case(
    GLNRegressor,
    dict(layer_sizes=(4, 1), context_map_size=2, random_state=0),
    regression,
    lambda model, X: model.predict(X),
    {},
    "n_outputs_",
    "GLNRegressor(context_map_size=2, layer_sizes=(4, 1), random_state=0)",
    1e-6,
    0.0,
)
CASES = pytest.mark.parametrize("case", [CLASSIFIER, REGRESSOR], ids=["classifier", "regressor"])


@pytest.mark.heavy  # about 200 checks, 40 s in all on 2 cores
@parametrize_with_checks(
    [case.small(backend) for case in (CLASSIFIER, REGRESSOR) for backend in ("numpy", "jax")],
    expected_failed_checks=lambda e: {},
)
def test_sklearn_conformance(estimator, check):
    check(estimator)


def state_arrays(model):
    return [np.asarray(leaf) for leaf in jax.tree.leaves(model.state_)]


@CASES
@pytest.mark.parametrize("backend", ["numpy", "jax"])
def test_partial_fit_chunks_equal_one_fit_pass(case, backend):
    X, y = case.data()
    whole = case.small(backend, shuffle=False).fit(X, y)
    chunked = case.small(backend, shuffle=False)
    for start in range(0, len(y), 50):  # uneven chunks: 50, 50, 20
        chunked.partial_fit(X[start : start + 50], y[start : start + 50], **case.partial_fit)
    for a, b in zip(state_arrays(whole), state_arrays(chunked), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    np.testing.assert_array_equal(whole.mean_, chunked.mean_)
    np.testing.assert_array_equal(whole.sum_squared_deviations_, chunked.sum_squared_deviations_)
    if case.estimator is GLNRegressor:
        np.testing.assert_array_equal(whole.target_mean_, chunked.target_mean_)
        np.testing.assert_array_equal(
            whole.target_sum_squared_deviations_, chunked.target_sum_squared_deviations_
        )
    assert whole.n_samples_seen_ == chunked.n_samples_seen_ == len(y)
    # the states agree to rtol 1e-6, atol 1e-7 (above), so the outputs to about the same
    np.testing.assert_allclose(
        case.output(whole, X), case.output(chunked, X), rtol=case.rtol, atol=case.atol
    )


@CASES
def test_pickle_round_trip_and_clone(case):
    X, y = case.data()
    model = case.small("jax").fit(X[:80], y[:80])
    copy = pickle.loads(pickle.dumps(model))
    np.testing.assert_array_equal(case.output(copy, X), case.output(model, X))
    model.partial_fit(X[80:], y[80:])
    copy.partial_fit(X[80:], y[80:])
    np.testing.assert_array_equal(case.output(copy, X), case.output(model, X))
    fresh = clone(model)
    assert fresh.get_params() == model.get_params()
    assert not hasattr(fresh, case.fitted)
    # scikit-learn's repr: the parameters that differ from the defaults
    assert " ".join(repr(fresh).split()) == case.repr


@CASES
def test_common_tags_and_sample_weight_say_what_is_supported(case):
    tags = case.estimator().__sklearn_tags__()
    assert tags.estimator_type == ("classifier" if case is CLASSIFIER else "regressor")
    assert not tags.input_tags.allow_nan and not tags.input_tags.sparse
    assert tags.requires_fit and not tags.non_deterministic
    assert not has_fit_parameter(case.estimator(), "sample_weight")
