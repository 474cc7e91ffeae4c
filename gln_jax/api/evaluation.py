"""``evaluate_mnist`` (the original README's online protocol) and ``learning_curve``."""

from __future__ import annotations

import numpy as np

from gln_jax.data.mnist import get_mnist


def _num_classes(model) -> int | None:
    config = getattr(model, "config", None)
    value = getattr(config, "num_classes", None) or getattr(model, "num_classes", None)
    return None if value is None else int(value)


def _positive_int(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return int(value)


def evaluate_mnist(
    model,
    deskewed: bool = True,
    batch_size: int = 1,
    num_epochs: int = 1,
    mnist_class: int | None = None,
    seed: int = 0,
    dataset: str = "mnist",
    data_dir=None,
    *,
    data=None,
    limit=None,
    progress: bool = True,
):
    """Trains ``model`` online on (shuffled) MNIST, then reports its test accuracy.

    Train and test sets are shuffled once with ``np.random.default_rng(seed)``. Each epoch
    feeds the training set through ``model.predict(batch, target=...)`` in batches, then
    predicts the test set in batches, with tqdm progress bars that count examples.

    Args:
        model: a :class:`~gln_jax.GLN` (or anything with the same ``predict``); binary when
            ``mnist_class`` is given, else with one class per label.
        deskewed: use deskewed images (see :func:`get_mnist`).
        batch_size: examples per ``predict`` call, positive.
        num_epochs: passes over the training set, positive.
        mnist_class: if given, a binary task, "is it digit ``mnist_class``?".
        seed: seed of the shuffling generator.
        dataset: ``"mnist"`` or ``"fashion"``.
        data_dir: where the IDX files are (see :func:`get_mnist`).
        data: pre-loaded ``(X_train [N, D], y_train [N], X_test [M, D], y_test [M])`` used
            instead of :func:`get_mnist` (``deskewed``, ``dataset`` and ``data_dir`` are then
            ignored).
        limit: keep only the first ``limit`` shuffled training and test examples, or
            ``(train_limit, test_limit)``; ``None`` keeps all.
        progress: show tqdm progress bars.

    Returns:
        Test accuracy in percent (a float), or a list of one accuracy per epoch when
        ``num_epochs > 1``.

    Example:
        >>> model = GLN("jax", [4, 4, 1], 784)  # doctest: +SKIP
        >>> evaluate_mnist(model, mnist_class=3, batch_size=4)  # doctest: +SKIP
        98.6
    """
    from tqdm import tqdm

    batch_size = _positive_int("batch_size", batch_size)
    num_epochs = _positive_int("num_epochs", num_epochs)
    if data is None:
        data = get_mnist(deskewed, data_dir, dataset, progress=progress)
    X_train, y_train, X_test, y_test = (np.asarray(a) for a in data)
    if len(X_train) != len(y_train) or len(X_test) != len(y_test):
        raise ValueError("data: inputs and labels must have the same number of examples")
    num_labels = int(max(y_train.max(), y_test.max())) + 1
    _check_model(model, X_train.shape[1], num_labels, mnist_class)

    train_limit, test_limit = _limits(limit)
    rng = np.random.default_rng(seed)
    train_order, test_order = rng.permutation(len(X_train)), rng.permutation(len(X_test))
    train_order, test_order = train_order[:train_limit], test_order[:test_limit]
    X_train, y_train = X_train[train_order], y_train[train_order]
    X_test, y_test = X_test[test_order], y_test[test_order]
    if mnist_class is not None:
        y_train, y_test = y_train == mnist_class, y_test == mnist_class

    accuracies = []
    for epoch in range(num_epochs):
        desc = f"train {epoch + 1}/{num_epochs}" if num_epochs > 1 else "train"
        with tqdm(total=len(X_train), desc=desc, unit="ex", disable=not progress) as bar:
            for start in range(0, len(X_train), batch_size):
                batch = slice(start, start + batch_size)
                model.predict(X_train[batch], target=y_train[batch])
                bar.update(len(X_train[batch]))
        predictions = []
        with tqdm(total=len(X_test), desc="test", unit="ex", disable=not progress) as bar:
            for start in range(0, len(X_test), batch_size):
                batch = X_test[start : start + batch_size]
                predictions.append(np.reshape(model.predict(batch), -1))
                bar.update(len(batch))
        accuracies.append(float(100.0 * np.mean(np.concatenate(predictions) == y_test)))
    return accuracies if num_epochs > 1 else accuracies[0]


def _limits(limit) -> tuple[int | None, int | None]:
    """``limit`` as ``(train_limit, test_limit)``, each ``None`` or a positive int."""
    pair = tuple(limit) if isinstance(limit, (tuple, list)) else (limit, limit)
    if len(pair) != 2:
        raise ValueError(f"limit must be an int or a (train, test) pair, got {limit!r}")
    return tuple(None if value is None else _positive_int("limit", value) for value in pair)


def _check_model(model, input_size: int, num_labels: int, mnist_class) -> None:
    """Clear errors for a model that cannot learn the requested task."""
    model_input = getattr(model, "input_size", None)  # the facades' example width
    if model_input is None:  # another model with the classic interface: its config's width
        config = getattr(model, "config", None)
        model_input = getattr(config, "side_info_size", None) or getattr(config, "input_size", None)
    if model_input is not None and model_input != input_size:
        raise ValueError(f"the model takes {model_input} inputs, the data has {input_size}")
    num_classes = _num_classes(model)
    if mnist_class is not None:
        if isinstance(mnist_class, bool) or not isinstance(mnist_class, (int, np.integer)):
            raise TypeError(f"mnist_class must be an int label, got {mnist_class!r}")
        if not 0 <= mnist_class < num_labels:
            raise ValueError(f"mnist_class must be in [0, {num_labels}), got {mnist_class}")
        if num_classes is not None and num_classes != 2:
            raise ValueError(
                f"mnist_class={mnist_class} is a binary task ('{mnist_class} or not'), but the "
                f"model has num_classes={num_classes}; build it with num_classes=2"
            )
    elif num_classes is not None and num_classes < num_labels:
        hint = "; pass mnist_class=k for a binary 'k or not' task" if num_classes == 2 else ""
        raise ValueError(
            f"the data has {num_labels} classes but the model has num_classes={num_classes}" + hint
        )


def log_spaced_points(total: int, count: int = 12, first: int = 100) -> list[int]:
    """About ``count`` distinct example counts from ``first`` to ``total``, evenly spaced in log.

    Args:
        total: examples in the stream (the last point), positive.
        count: how many points to aim for (rounding may merge a few), positive.
        first: the first point, in ``[1, total]``.

    Returns:
        Strictly increasing ints, the last one ``total``.

    Example:
        >>> log_spaced_points(60000, count=4, first=60)
        [60, 600, 6000, 60000]
    """
    total, count, first = (
        _positive_int(name, value)
        for name, value in (("total", total), ("count", count), ("first", first))
    )
    if first > total:
        raise ValueError(f"first must be at most total ({total}), got {first}")
    points = np.unique(np.rint(np.geomspace(first, total, count)).astype(np.int64))
    return [int(point) for point in points]


def learning_curve(
    model, X_train, y_train, X_test, y_test, points, *, batch_size: int = 1, test_batch=1000
) -> np.ndarray:
    """Test accuracy after each point of one online pass: train up to a point, test, go on.

    The model learns ``X_train[:points[-1]]`` once, in order, with ``model.fit`` (from its
    current state; each example is seen once), and after the first ``points[i]`` examples
    predicts the whole test set (``model.predict`` without targets, which learns nothing:
    a side-information transform keeps its statistics). Pieces of one stream learn what the
    whole stream learns, so the last point is the accuracy of one ``fit`` on
    ``X_train[:points[-1]]``.

    Args:
        model: a :class:`~gln_jax.GLN` (or anything with its ``fit`` and ``predict``).
        X_train: ``[T, N]`` training examples, in the order they are learned.
        y_train: ``[T]`` labels.
        X_test: ``[M, N]`` test examples.
        y_test: ``[M]`` labels.
        points: strictly increasing example counts in ``[1, T]``
            (:func:`log_spaced_points` makes some).
        batch_size: examples per update (1: exact online learning).
        test_batch: test examples per ``predict`` call, positive.

    Returns:
        ``[len(points)]`` float64 test accuracies in percent.

    Example:
        >>> model = GLN("jax", [4, 4, 1], 784, num_classes=10)  # doctest: +SKIP
        >>> learning_curve(model, X, y, X_test, y_test, [100, 1000, 10000])  # doctest: +SKIP
        array([63.2 , 86.41, 91.75])
    """
    test_batch = _positive_int("test_batch", test_batch)
    X_test, y_test = np.asarray(X_test), np.asarray(y_test)
    if len(X_train) != len(y_train) or len(X_test) != len(y_test):
        raise ValueError("inputs and labels must have the same number of examples")
    if len(X_test) == 0:
        raise ValueError("the test set is empty")
    points = [_positive_int("points", point) for point in np.asarray(points).reshape(-1)]
    if not points or any(b <= a for a, b in zip(points[:-1], points[1:], strict=True)):
        raise ValueError(f"points must be strictly increasing, got {points}")
    if points[-1] > len(X_train):
        raise ValueError(f"points go to {points[-1]}, beyond the {len(X_train)} training examples")
    accuracies = []
    seen = 0
    for point in points:
        model.fit(X_train[seen:point], y_train[seen:point], batch_size=batch_size)
        seen = point
        predictions = np.concatenate(
            [
                np.reshape(np.asarray(model.predict(X_test[start : start + test_batch])), -1)
                for start in range(0, len(X_test), test_batch)
            ]
        )
        accuracies.append(100.0 * float(np.mean(predictions == y_test)))
    return np.asarray(accuracies, dtype=np.float64)
