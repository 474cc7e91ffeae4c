"""The continual-learning protocols (gln_jax.continual) and the forgetting tool, on tiny data."""

import forgetting
import numpy as np
import pytest

from gln_jax import continual


def _digits(count=40, width=6, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.uniform(size=(count, width)).astype(np.float32)
    y = np.arange(count) % 10
    return x, y


def test_split_mnist_keeps_each_pair_in_order_with_its_binary_label():
    x, y = _digits()
    tasks = continual.split_mnist(x, y, x[:20], y[:20])
    assert [t.name for t in tasks] == ["0/1", "2/3", "4/5", "6/7", "8/9"]
    for task, (first, second) in zip(tasks, continual.SPLIT_PAIRS, strict=True):
        rows = np.flatnonzero((y == first) | (y == second))
        np.testing.assert_array_equal(task.x_train, x[rows])
        np.testing.assert_array_equal(task.y_train, (y[rows] == second).astype(np.int32))
        assert task.y_test.tolist() == [0, 1, 0, 1]
    short = continual.split_mnist(x, y, x, y, train_per_task=3, test_per_task=1)
    assert [t.y_train.tolist() for t in short][0] == [0, 1, 0] and short[0].x_test.shape == (1, 6)


def test_permuted_mnist_applies_one_fixed_permutation_per_task():
    x, y = _digits()
    tasks = continual.permuted_mnist(x, y, x[:5], y[:5], num_tasks=3, seed=4)
    again = continual.permuted_mnist(x, y, x[:5], y[:5], num_tasks=3, seed=4)
    orders = []
    for task, twin in zip(tasks, again, strict=True):
        order = [int(np.flatnonzero(x[0] == value)[0]) for value in task.x_train[0]]
        np.testing.assert_array_equal(task.x_train, x[:, order])
        np.testing.assert_array_equal(task.x_test, x[:5, order])  # same permutation for test
        np.testing.assert_array_equal(task.x_train, twin.x_train)
        np.testing.assert_array_equal(task.y_train, y)
        orders.append(tuple(order))
    assert len(set(orders)) == 3
    with pytest.raises(ValueError, match="unknown protocol 'rotated'"):
        continual.make_protocol("rotated", (x, y, x, y))


def test_forgetting_is_best_from_the_first_point_minus_final():
    accuracy = [[90.0, 10.0, 0.0], [70.0, 95.0, 5.0], [60.0, 80.0, 99.0]]
    np.testing.assert_allclose(continual.forgetting(accuracy, [0, 1, 2]), [30.0, 15.0, 0.0])
    # a score before the task was trained on does not count
    np.testing.assert_allclose(continual.forgetting([[80.0], [50.0]], [1]), [0.0])


class _LastLabel:
    """Predicts the last label it was trained on: forgets everything but the latest."""

    def __init__(self):
        self.label = 0

    def fit(self, x, y):
        self.label = int(y[-1])

    def predict(self, x):
        return np.full(len(x), self.label)


def test_run_protocol_measures_every_task_at_every_point():
    zeros, ones = np.zeros((4, 2), np.float32), np.ones(4, np.int32)
    tasks = [
        continual.Task("a", zeros, 0 * ones, zeros, 0 * ones),
        continual.Task("b", zeros, ones, zeros, ones),
    ]
    result = continual.run_protocol(_LastLabel(), tasks, evals_per_task=2)
    assert result["examples_seen"] == [2, 4, 6, 8] and result["first_points"] == [0, 2]
    assert result["accuracy"] == [[100.0, 0.0], [100.0, 0.0], [0.0, 100.0], [0.0, 100.0]]
    assert result["final_accuracy"] == [0.0, 100.0] and result["forgetting"] == [100.0, 0.0]
    assert result["average_accuracy"] == 50.0 and result["average_forgetting"] == 100.0


def _separable(count=300, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.uniform(size=(count, 6)).astype(np.float32)
    return x, (x[:, 0] > x[:, 1]).astype(np.int32)


@pytest.mark.heavy
@pytest.mark.parametrize("hidden", [(), (16,)])
def test_mlp_and_logistic_regression_learn_online(hidden):
    x, y = _separable(1000)
    learner = continual.MLPLearner(6, 2, hidden=hidden, learning_rate=3e-2, batch_size=3, seed=0)
    before = [np.asarray(w).copy() for w, _ in learner.params]
    learner.fit(x, y)  # 1000 = 333 batches of 3 and a last batch of 1
    assert float(np.mean(learner.predict(x) == y)) > 0.9
    assert all(
        not np.array_equal(b, np.asarray(w))
        for b, (w, _) in zip(before, learner.params, strict=True)
    )
    assert learner.num_parameters == sum(w.size + b.size for w, b in learner.params)


@pytest.mark.heavy
def test_gln_and_pool_learners_learn_online():
    import gln_jax

    x, y = _separable(600)
    config = gln_jax.make_config([8, 1], 6, context_map_size=2)
    gln = continual.GLNLearner(config, 0.1, seed=0)
    gln.fit(x, y)
    assert float(np.mean(gln.predict(x) == y)) > 0.9
    pool = continual.PoolLearner(
        continual.make_pool_config(config, capacity=3, projection_size=4), 0.1, seed=0
    )
    pool.fit(x, y)
    assert float(np.mean(pool.predict(x) == y)) > 0.9 and 2 <= pool.members_in_use() <= 3
    assert continual.state_nbytes(pool.state) > continual.state_nbytes(gln.state)


@pytest.mark.heavy
def test_tool_measures_and_renders_a_small_protocol():
    rng = np.random.default_rng(0)
    x = rng.uniform(size=(100, 12)).astype(np.float32)
    y = np.arange(100) % 10
    result = forgetting.measure(
        ["split-mnist"], ["gln", "logistic"], (x, y, x, y), seeds=[0], train_per_task=8
    )
    run = result["runs"]["split-mnist/gln/seed0"]
    assert run["tasks"] == ["0/1", "2/3", "4/5", "6/7", "8/9"] and len(run["accuracy"]) == 5
    table = forgetting.render(result).splitlines()
    assert table[0].startswith("| protocol | method |") and len(table) == 4
    assert table[2].startswith(f"| split-mnist | gln | 1 | {run['average_accuracy']:.2f} |")
    with pytest.raises(ValueError, match="unknown method 'svm'"):
        forgetting.make_learner("svm", 12, 2, 0)
