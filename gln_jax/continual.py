"""Task-free continual learning: the protocols, their baselines, and a pool of GLNs.

Two protocols, each a list of :class:`Task` seen one after another, one pass each, with no task
boundary given to the learner:

- :func:`split_mnist`: domain-incremental split MNIST, five binary tasks (digits 0/1, 2/3, 4/5,
  6/7, 8/9); the label is which digit of the pair (0 for the first, 1 for the second);
- :func:`permuted_mnist`: ten tasks, each the 10-class problem under a fixed random
  permutation of the pixels.

:func:`run_protocol` trains a learner on the tasks in order and measures its test accuracy on
every task at evaluation points along the stream; :func:`forgetting` is each task's best
accuracy from the point its training began minus its final accuracy. Learners (all with
``fit(x, y)``, one online pass in the given order, and ``predict(x)``):

- :class:`PoolLearner`: the library's continual-learning method, a pool of GLNs mixed by a
  switching Bayesian mixture (:mod:`gln_jax.core.pool`: members are kept, added and mixed
  online by their joint predictive log-loss, with no task labels);
- :class:`GLNLearner`: one plain GLN (:func:`gln_jax.scan_update`, batch 1);
- :class:`MLPLearner`: an MLP trained online with Adam (optax), one pass in small batches;
  ``hidden=()`` is online logistic regression.

Example:
    >>> import gln_jax
    >>> from gln_jax import continual, datasets
    >>> data = datasets.get_mnist()  # doctest: +SKIP
    >>> tasks = continual.split_mnist(*data)  # doctest: +SKIP
    >>> member = gln_jax.make_config([16, 16, 1], 784, context_map_size=4)  # doctest: +SKIP
    >>> learner = continual.PoolLearner(continual.make_pool_config(member), 1e-2)  # doctest: +SKIP
    >>> result = continual.run_protocol(learner, tasks)  # doctest: +SKIP
    >>> result["average_accuracy"]  # doctest: +SKIP

See :doc:`/guides/continual`.
"""

from __future__ import annotations

import functools
import time
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from gln_jax.core import network, scan
from gln_jax.core.pool import PoolConfig as PoolConfig
from gln_jax.core.pool import PoolState as PoolState
from gln_jax.core.pool import fixed_share as fixed_share
from gln_jax.core.pool import init as init_pool
from gln_jax.core.pool import make_pool_config as make_pool_config
from gln_jax.core.pool import predict as predict_pool
from gln_jax.core.pool import scan_step as scan_pool
from gln_jax.core.pool import step as pool_step

__all__ = [
    "PROTOCOLS",
    "SPLIT_PAIRS",
    "GLNLearner",
    "MLPLearner",
    "PoolConfig",
    "PoolLearner",
    "PoolState",
    "Task",
    "fixed_share",
    "forgetting",
    "init_pool",
    "make_pool_config",
    "make_protocol",
    "permuted_mnist",
    "pool_step",
    "predict_pool",
    "run_protocol",
    "scan_pool",
    "split_mnist",
    "state_nbytes",
]

#: The digit pairs of split MNIST, in the order they are seen.
SPLIT_PAIRS = ((0, 1), (2, 3), (4, 5), (6, 7), (8, 9))


class Task(NamedTuple):
    """One task of a protocol: training examples in stream order and a test set.

    Attributes:
        name: e.g. ``"0/1"`` or ``"permutation 3"``.
        x_train: ``[T, N]`` float32 in ``[0, 1]``.
        y_train: ``[T]`` int32 labels.
        x_test: ``[B, N]`` float32.
        y_test: ``[B]`` int32.
    """

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray


def _first(array: np.ndarray, count: int | None) -> np.ndarray:
    return array if count is None else array[:count]


def split_mnist(
    x_train,
    y_train,
    x_test,
    y_test,
    *,
    pairs=SPLIT_PAIRS,
    train_per_task: int | None = None,
    test_per_task: int | None = None,
) -> list[Task]:
    """Domain-incremental split MNIST: one binary task per digit pair.

    A task holds the examples of its two digits in their original order; its label is 1 for
    the pair's second digit and 0 for the first, so every task shares one output.

    Args:
        x_train, y_train, x_test, y_test: ``[T, N]``, ``[T]``, ``[B, N]``, ``[B]`` arrays (the
            order of :func:`gln_jax.datasets.get_mnist`).
        pairs: the digit pairs, in stream order.
        train_per_task: keep only the first this many training examples of each task.
        test_per_task: keep only the first this many test examples of each task.

    Returns:
        One :class:`Task` per pair.

    Example:
        >>> x = np.eye(4, dtype=np.float32); y = np.array([0, 1, 2, 3])
        >>> [t.y_train.tolist() for t in split_mnist(x, y, x, y, pairs=((0, 1), (2, 3)))]
        [[0, 1], [0, 1]]
    """
    x_train, x_test = np.asarray(x_train, np.float32), np.asarray(x_test, np.float32)
    y_train, y_test = np.asarray(y_train), np.asarray(y_test)
    tasks = []
    for first, second in pairs:
        train = np.flatnonzero((y_train == first) | (y_train == second))
        test = np.flatnonzero((y_test == first) | (y_test == second))
        train, test = _first(train, train_per_task), _first(test, test_per_task)
        tasks.append(
            Task(
                f"{first}/{second}",
                x_train[train],
                (y_train[train] == second).astype(np.int32),
                x_test[test],
                (y_test[test] == second).astype(np.int32),
            )
        )
    return tasks


def permuted_mnist(
    x_train,
    y_train,
    x_test,
    y_test,
    *,
    num_tasks: int = 10,
    seed: int = 0,
    train_per_task: int | None = None,
    test_per_task: int | None = None,
) -> list[Task]:
    """Permuted MNIST: the 10-class problem under ``num_tasks`` fixed random pixel permutations.

    Every task permutes the pixels of every example by its own permutation, drawn from
    ``numpy.random.default_rng(seed)``; labels are the digits.

    Args:
        x_train, y_train, x_test, y_test: as for :func:`split_mnist`.
        num_tasks: number of permutations.
        seed: seed of the permutations.
        train_per_task: keep only the first this many training examples in each task.
        test_per_task: keep only the first this many test examples in each task.

    Returns:
        One :class:`Task` per permutation.

    Example:
        >>> x = np.arange(6, dtype=np.float32).reshape(2, 3); y = np.array([0, 1])
        >>> sorted(permuted_mnist(x, y, x, y, num_tasks=2)[1].x_train[0].tolist())
        [0.0, 1.0, 2.0]
    """
    x_train, x_test = np.asarray(x_train, np.float32), np.asarray(x_test, np.float32)
    y_train = np.asarray(y_train).astype(np.int32)
    y_test = np.asarray(y_test).astype(np.int32)
    rng = np.random.default_rng(seed)
    tasks = []
    for index in range(num_tasks):
        order = rng.permutation(x_train.shape[1])
        tasks.append(
            Task(
                f"permutation {index}",
                _first(x_train, train_per_task)[:, order],
                _first(y_train, train_per_task),
                _first(x_test, test_per_task)[:, order],
                _first(y_test, test_per_task),
            )
        )
    return tasks


#: Protocol name -> (builder, number of classes of its label).
PROTOCOLS = {"split-mnist": (split_mnist, 2), "permuted-mnist": (permuted_mnist, 10)}


def make_protocol(name: str, data, **options) -> list[Task]:
    """The tasks of a protocol by name (a key of :data:`PROTOCOLS`).

    Args:
        name: ``"split-mnist"`` or ``"permuted-mnist"``.
        data: ``(x_train, y_train, x_test, y_test)``.
        **options: keyword arguments of the builder.

    Returns:
        The tasks.

    Raises:
        ValueError: an unknown name.
    """
    if name not in PROTOCOLS:
        raise ValueError(f"unknown protocol {name!r}; known: {', '.join(PROTOCOLS)}")
    return PROTOCOLS[name][0](*data, **options)


def forgetting(accuracy, first_points) -> np.ndarray:
    """Each task's forgetting: its best accuracy from its first point on, minus its final one.

    Args:
        accuracy: ``[points, tasks]`` test accuracy at each evaluation point.
        first_points: ``[tasks]`` index of the first evaluation point at which the task had
            been trained on.

    Returns:
        ``[tasks]`` forgetting (same units as ``accuracy``); 0 for the last task when it is
        only evaluated once.

    Example:
        >>> forgetting([[0.9, 0.5], [0.6, 0.8]], [0, 1]).tolist()
        [0.30000000000000004, 0.0]
    """
    accuracy = np.asarray(accuracy, np.float64)
    return np.array(
        [
            accuracy[first:, task].max() - accuracy[-1, task]
            for task, first in enumerate(first_points)
        ]
    )


def run_protocol(learner, tasks, *, evals_per_task: int = 1) -> dict:
    """Trains ``learner`` on the tasks in order and tests it on every task along the way.

    Each task's training examples are given to ``learner.fit`` in ``evals_per_task`` chunks
    (in order, no boundary signalled); after every chunk, every task's test set is predicted.

    Args:
        learner: an object with ``fit(x, y)`` (one online pass) and ``predict(x) -> labels``.
        tasks: from :func:`split_mnist`, :func:`permuted_mnist` or :func:`make_protocol`.
        evals_per_task: evaluation points per task (1: after each task).

    Returns:
        A JSON-able dict: ``tasks`` (names), ``examples_seen`` ``[points]``, ``accuracy``
        ``[points, tasks]`` (%), ``final_accuracy`` and ``forgetting`` ``[tasks]`` (%),
        ``average_accuracy`` and ``average_forgetting`` (%, the forgetting averaged over all
        tasks but the last), and ``train_seconds`` (time in ``fit``).
    """
    seen, points, accuracy, first_points, train_seconds = 0, [], [], [], 0.0
    for task in tasks:
        bounds = np.linspace(0, task.x_train.shape[0], evals_per_task + 1).astype(int)
        for chunk, (start, stop) in enumerate(zip(bounds[:-1], bounds[1:], strict=True)):
            began = time.perf_counter()
            learner.fit(task.x_train[start:stop], task.y_train[start:stop])
            train_seconds += time.perf_counter() - began
            seen += int(stop - start)
            if chunk == 0:
                first_points.append(len(points))
            points.append(seen)
            accuracy.append(
                [100.0 * float(np.mean(learner.predict(t.x_test) == t.y_test)) for t in tasks]
            )
    final = np.asarray(accuracy[-1])
    lost = forgetting(accuracy, first_points)
    return {
        "tasks": [task.name for task in tasks],
        "examples_seen": points,
        "first_points": first_points,
        "accuracy": [[round(value, 2) for value in row] for row in accuracy],
        "final_accuracy": [round(float(value), 2) for value in final],
        "forgetting": [round(float(value), 2) for value in lost],
        "average_accuracy": round(float(final.mean()), 2),
        "average_forgetting": round(float(lost[:-1].mean()) if len(lost) > 1 else 0.0, 2),
        "train_seconds": round(train_seconds, 1),
    }


def _predict_in_batches(fn, x: np.ndarray, batch: int = 2048) -> np.ndarray:
    return np.concatenate([np.asarray(fn(x[i : i + batch])) for i in range(0, len(x), batch)])


class GLNLearner:
    """One plain GLN trained online (batch 1) on raw pixels: the reference of forgetting.

    Args:
        config: from :func:`gln_jax.make_config` (``side_info_size`` the example's width).
        learning_rate: constant rate.
        seed: seed of the initial state.
    """

    def __init__(self, config, learning_rate: float, seed: int = 0):
        self.config = config
        self.learning_rate = learning_rate
        self.state = network.init(jax.random.key(seed), config)
        self._fit = jax.jit(functools.partial(scan.scan_update, config=config))
        self._apply = jax.jit(functools.partial(network.batch_apply, config=config))

    def _inputs(self, x):
        eps = self.config.pred_clipping
        return np.clip(np.asarray(x, self.config.dtype), eps, 1 - eps)

    def fit(self, x, y) -> None:
        """One online pass over ``x [T, N]``, ``y [T]`` in order."""
        rate = jnp.asarray(self.learning_rate, self.config.dtype)
        self.state, _ = self._fit(self.state, self._inputs(x), np.asarray(x), np.asarray(y), rate)

    def predict(self, x) -> np.ndarray:
        """``[B]`` predicted labels."""
        p = _predict_in_batches(lambda b: self._apply(self.state, self._inputs(b), b), x)
        return (p[:, 0] > 0.5).astype(np.int32) if self.config.num_classes == 2 else p.argmax(1)


class PoolLearner:
    """The pool of GLNs (:mod:`gln_jax.core.pool`) as a learner: one online pass, batch 1.

    Args:
        config: from :func:`make_pool_config`.
        learning_rate: constant rate of the learner member's updates.
        seed: seed of the pool.
    """

    def __init__(self, config: PoolConfig, learning_rate: float, seed: int = 0):
        self.config = config
        self.learning_rate = learning_rate
        self.state = init_pool(jax.random.key(seed), config)
        self._fit = jax.jit(functools.partial(scan_pool, config=config))
        self._predict = jax.jit(functools.partial(predict_pool, config=config))

    def _inputs(self, x):
        eps = self.config.member.pred_clipping
        return np.clip(np.asarray(x, self.config.member.dtype), eps, 1 - eps)

    def fit(self, x, y) -> None:
        """One online pass over ``x [T, N]``, ``y [T]`` in order."""
        rate = jnp.asarray(self.learning_rate, self.config.member.dtype)
        self.state, _ = self._fit(
            self.state, self._inputs(x), np.asarray(x), np.asarray(y, np.int32), rate
        )

    def predict(self, x) -> np.ndarray:
        """``[B]`` predicted labels (no task label: members routed by their input models)."""
        probs = _predict_in_batches(lambda b: self._predict(self.state, self._inputs(b), b), x)
        return probs.argmax(1).astype(np.int32)

    def members_in_use(self) -> int:
        """Members in the pool, the fresh one included."""
        return int(np.sum(np.asarray(self.state.in_use)))


class MLPLearner:
    """An MLP (ReLU) trained online with Adam: one pass, in minibatches of ``batch_size``.

    ``hidden=()`` is multinomial logistic regression trained online.

    Args:
        input_size: width of an example.
        num_classes: outputs (softmax cross-entropy).
        hidden: hidden widths.
        learning_rate: Adam's rate.
        batch_size: examples per update (a last partial batch is its own update).
        seed: seed of the initial weights (scaled Gaussian, zero biases).
    """

    def __init__(
        self,
        input_size: int,
        num_classes: int,
        hidden=(256, 256),
        learning_rate: float = 1e-3,
        batch_size: int = 10,
        seed: int = 0,
    ):
        import optax

        sizes = (input_size, *hidden, num_classes)
        keys = jax.random.split(jax.random.key(seed), len(sizes) - 1)
        self.params = [
            (
                jax.random.normal(key, (fan_in, fan_out), jnp.float32) * np.sqrt(2.0 / fan_in),
                jnp.zeros((fan_out,), jnp.float32),
            )
            for key, fan_in, fan_out in zip(keys, sizes[:-1], sizes[1:], strict=True)
        ]
        self.batch_size = batch_size
        self.optimizer = optax.adam(learning_rate)
        self.opt_state = self.optimizer.init(self.params)
        self._step = jax.jit(self._make_step())
        self._logits = jax.jit(_mlp_logits)

    @property
    def num_parameters(self) -> int:
        """Weights and biases."""
        return int(sum(w.size + b.size for w, b in self.params))

    def _make_step(self):
        import optax

        optimizer = self.optimizer

        def loss(params, x, y):
            logits = _mlp_logits(params, x)
            return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

        def step(params, opt_state, x, y):
            grads = jax.grad(loss)(params, x, y)
            updates, opt_state = optimizer.update(grads, opt_state, params)
            return optax.apply_updates(params, updates), opt_state

        def run(params, opt_state, xs, ys):
            def body(carry, batch):
                return step(*carry, *batch), None

            (params, opt_state), _ = jax.lax.scan(body, (params, opt_state), (xs, ys))
            return params, opt_state

        return run

    def fit(self, x, y) -> None:
        """One online pass over ``x [T, N]``, ``y [T]`` in order, ``batch_size`` at a time."""
        x, y = np.asarray(x, np.float32), np.asarray(y, np.int32)
        whole = (len(x) // self.batch_size) * self.batch_size
        # optax's Adam mixes Python floats with its int32 step count: trace it under JAX's
        # standard promotion, whatever the caller's setting (a scoped context, not global).
        with jax.numpy_dtype_promotion("standard"):
            if whole:
                xs = x[:whole].reshape(-1, self.batch_size, x.shape[1])
                ys = y[:whole].reshape(-1, self.batch_size)
                self.params, self.opt_state = self._step(self.params, self.opt_state, xs, ys)
            if whole < len(x):
                self.params, self.opt_state = self._step(
                    self.params, self.opt_state, x[None, whole:], y[None, whole:]
                )

    def predict(self, x) -> np.ndarray:
        """``[B]`` predicted labels."""
        logits = _predict_in_batches(lambda b: self._logits(self.params, b), np.asarray(x))
        return logits.argmax(1).astype(np.int32)


def _mlp_logits(params, x):
    for weights, bias in params[:-1]:
        x = jax.nn.relu(x @ weights + bias[None])
    weights, bias = params[-1]
    return x @ weights + bias[None]


def state_nbytes(tree) -> int:
    """Bytes of the arrays of a pytree (a pool, a GLN or an MLP's parameters)."""
    return int(sum(np.asarray(leaf).nbytes for leaf in jax.tree.leaves(tree)))
