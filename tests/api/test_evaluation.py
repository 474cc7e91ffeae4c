"""learning_curve and log_spaced_points: test accuracy along one online pass."""

import numpy as np
import pytest

from gln_jax import GLN
from gln_jax.api.evaluation import learning_curve, log_spaced_points

#: Every piece of the stream is 16 examples long, so the online transform and the fit driver
#: compile once (they pad to powers of two); the test set is one predict batch of 128.
POINTS = [16, 32, 48, 64, 80, 96, 112, 128]


def _data():
    """128 training and 128 test examples, 24 features in [0, 1], 3 linearly separable classes."""
    rng = np.random.default_rng(0)
    X = rng.uniform(size=(256, 24)).astype(np.float32)
    y = np.argmax((X - 0.5) @ rng.normal(size=(24, 3)), axis=1)  # 39, 42, 47 test examples
    return X[:128], y[:128], X[128:], y[128:]


def _model():
    return GLN("jax", [4, 1], 24, num_classes=3, learning_rate=1e-2, side_info_transform="center")


@pytest.mark.heavy
def test_learning_curve_equals_a_hand_loop_of_single_examples():
    X, y, X_test, y_test = _data()
    curve = learning_curve(_model(), X, y, X_test, y_test, POINTS, test_batch=128)

    hand, model = [], _model()  # the README loop: one predict(target=) call per example
    for n in range(POINTS[-1]):
        model.predict(X[n : n + 1], target=y[n : n + 1])
        if n + 1 in POINTS:
            hand.append(100.0 * np.mean(model.predict(X_test) == y_test))
    assert curve.dtype == np.float64 and curve.shape == (len(POINTS),)
    np.testing.assert_allclose(curve, hand, rtol=0, atol=1e-9)
    majority = 100.0 * np.mean(y_test == np.bincount(y_test).argmax())
    assert curve[-1] > max(curve[0] + 10.0, majority + 25.0)  # it learns along the stream
    # pieces of one stream learn what the whole stream learns
    model = _model()
    model.fit(X, y)
    assert curve[-1] == 100.0 * np.mean(model.predict(X_test) == y_test)


@pytest.mark.parametrize(
    ("points", "message"),
    [([40, 40], "strictly increasing"), ([10, 129], "beyond the 128"), ([0, 5], "positive")],
)
def test_learning_curve_refuses_bad_points_before_learning(points, message):
    X, y, X_test, y_test = _data()
    model = _model()
    with pytest.raises(ValueError, match=message):
        learning_curve(model, X, y, X_test, y_test, points)
    assert model.step == 0


def test_log_spaced_points():
    assert log_spaced_points(60000, count=4, first=60) == [60, 600, 6000, 60000]
    points = log_spaced_points(1000, count=12, first=1)
    assert points[0] == 1 and points[-1] == 1000 and np.all(np.diff(points) > 0)
    assert len(points) == 12
    with pytest.raises(ValueError, match="at most total"):
        log_spaced_points(10, first=11)
