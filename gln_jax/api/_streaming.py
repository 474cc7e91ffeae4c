"""Streams larger than memory: training from an iterator of ``(X, y)`` chunks, with checkpoints.

The incoming chunks (any sizes) are checked one by one and re-cut into pieces of at most
``chunk_size`` examples, each a multiple of ``batch_size`` from the start of the stream, so
batches fall exactly where :meth:`gln_jax.GLN.fit` on the whole array would put them and the
result equals the array fit. Memory holds one piece plus one incoming chunk, never the stream;
:func:`array_chunks` reads NumPy arrays and ``np.memmap`` files a slice at a time.

Unlike a fit on arrays (all or nothing), an iterator cannot be rewound: :func:`train_chunks`
yields the state after every piece, so a failure (a bad chunk, an exception in the iterator)
leaves the caller with the state of the last completed piece, whose ``step`` says how many
examples it has learned. With ``checkpoint_every=N`` a checkpoint is written whenever the stream
position reaches a multiple of ``N``; a resumed run (``skip`` = examples already learned)
continues exactly where the checkpoint left off, with results identical to an uninterrupted run.

The driver works through an :class:`~gln_jax.api.engine.Engine`, so it trains the JAX
reference, a class-sharded JAX model (:class:`~gln_jax.api.sharded_engine.ShardedJaxEngine`)
or a port alike.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

import numpy as np

from gln_jax.api import schedules, validation
from gln_jax.api.checkpoint import save_checkpoint
from gln_jax.core.types import CHUNK_SIZE, GLNConfig


def _positive_int(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return int(value)


def array_chunks(
    X, y, chunk_size: int = CHUNK_SIZE, *, start: int = 0, num_epochs: int = 1
) -> Iterator[tuple]:
    """``(X[i:i + chunk_size], y[i:i + chunk_size])`` from ``start`` on, read a slice at a time.

    With ``num_epochs`` the stream is ``num_epochs`` passes over ``(X, y)`` in order, and
    ``start`` counts examples of that whole stream: resuming a multi-epoch run at
    ``start=model.step`` continues in the epoch the checkpoint was taken in (``start // T``) at
    example ``start % T`` and then runs the remaining epochs, so every example is learned once
    per epoch.

    Args:
        X: ``[T, N]`` array or ``np.memmap`` (only the current slice is read into memory).
        y: ``[T]`` labels (array or memmap).
        chunk_size: examples per chunk.
        start: first example of the stream (after a resume: the examples already learned),
            at most ``num_epochs * T``.
        num_epochs: passes over ``(X, y)``.

    Yields:
        NumPy ``(X_chunk [B, N], y_chunk [B])`` (no chunk spans two epochs).

    Raises:
        ValueError: a bad argument, or ``start`` past the end of the stream.

    Example:
        >>> X = np.memmap("x.f32", np.float32, "r", shape=(2_000_000, 64))  # doctest: +SKIP
        >>> state = fit_chunks(state, array_chunks(X, y), config=config, learning_rate=1e-3)
        ... # doctest: +SKIP
    """
    chunk_size = _positive_int("chunk_size", chunk_size)
    num_epochs = _positive_int("num_epochs", num_epochs)
    if len(X) != len(y):
        raise ValueError(f"X has {len(X)} examples, y has {len(y)}")
    if isinstance(start, bool) or not isinstance(start, (int, np.integer)) or start < 0:
        raise ValueError(f"start must be a non-negative int, got {start!r}")
    total = len(X)
    if start > num_epochs * total:
        raise ValueError(
            f"start={start} is past the end of the stream ({num_epochs} epoch(s) of {total} "
            "examples); to resume a multi-epoch run pass its num_epochs"
        )
    return _epochs(X, y, chunk_size, int(start), num_epochs)


def _epochs(X, y, chunk_size: int, start: int, num_epochs: int) -> Iterator[tuple]:
    """The generator of :func:`array_chunks` (its arguments checked when it is called)."""
    total = len(X)
    first = start // total if total else num_epochs
    for epoch in range(first, num_epochs):
        offset = start - epoch * total if epoch == first else 0
        for begin in range(offset, total, chunk_size):
            stop = begin + chunk_size
            yield np.asarray(X[begin:stop]), np.asarray(y[begin:stop])


def _pieces(chunks: Iterable, *, config, base_predictor, piece: int, every, position: int):
    """Checked ``(inputs, side_info, targets)`` pieces ending on piece and checkpoint bounds
    (``side_info`` ``None`` where the examples are the inputs themselves)."""
    buffer_x, buffer_y, held = [], [], 0

    def cut(limit):
        nonlocal buffer_x, buffer_y, held
        side_info = np.concatenate(buffer_x) if len(buffer_x) > 1 else buffer_x[0]
        targets = np.concatenate(buffer_y) if len(buffer_y) > 1 else buffer_y[0]
        buffer_x, buffer_y = [side_info[limit:]], [targets[limit:]]
        held -= limit
        side_info, targets = side_info[:limit], targets[:limit]
        inputs = validation.base_predictions(base_predictor, side_info, config)
        return inputs, (None if base_predictor is None else side_info), targets

    def next_size(pos):
        size = piece
        if every is not None:
            size = min(size, every - pos % every)
        return size

    for index, chunk in enumerate(chunks):
        if not (isinstance(chunk, tuple) and len(chunk) == 2):
            raise TypeError(f"chunk {index} must be an (X, y) tuple, got {type(chunk).__name__}")
        side_info, _ = validation.check_examples(
            chunk[0], width=config.side_info_size, dtype=config.dtype, name=f"X of chunk {index}"
        )
        targets = validation.check_targets(
            chunk[1],
            batch=side_info.shape[0],
            num_classes=config.num_classes,
            name=f"y of chunk {index}",
        )
        buffer_x.append(side_info)
        buffer_y.append(targets)
        held += side_info.shape[0]
        while held and held >= next_size(position):
            size = next_size(position)
            yield cut(size)
            position += size
    if held:
        yield cut(held)


def train_chunks(
    engine,
    state,
    chunks: Iterable,
    *,
    learning_rate: float | Callable,
    batch_size: int = 1,
    chunk_size: int = CHUNK_SIZE,
    base_predictor: Callable | None = None,
    checkpoint_every: int | None = None,
    skip: int = 0,
    step: int | None = None,
    route: str = "auto",
) -> Iterator[tuple]:
    """Trains piece by piece; yields ``(state, probabilities [L, C])`` after every piece.

    The caller owns every yielded state: keep the last one, and a failure of the stream (which
    raises out of this generator) leaves it at the last completed piece.

    Args:
        engine: an :class:`~gln_jax.api.engine.Engine` (its ``config`` is the model's).
        state: the engine's state to start from (not modified).
        chunks: iterable of ``(X [B, N], y [B])`` of any sizes.
        learning_rate: a constant rate or a schedule ``step -> rate`` (evaluated at the state's
            ``step``, as :meth:`gln_jax.GLN.fit` does).
        batch_size: examples per update (1: exact online learning).
        chunk_size: most examples per piece (rounded down to a multiple of ``batch_size``);
            bounds memory.
        base_predictor: optional host-side ``[B, N] -> [B, P]`` base predictor.
        checkpoint_every: pieces end at every multiple of this stream position (a multiple of
            ``batch_size``), so that a checkpoint can be written there.
        skip: stream position of the first example of ``chunks`` (examples already learned).
        step: the examples ``state`` has learned from, where a schedule is evaluated (a
            facade's exact ``step``); ``None``: the state's ``step``.
        route: ``"auto"``, ``"kernel"`` or ``"xla"`` (see :func:`gln_jax.fit_stream`); an
            engine other than JAX's takes ``"auto"`` only.

    Yields:
        ``(state, probabilities)`` with NumPy ``[L, C]`` predictions made before each update.
    """
    config: GLNConfig = engine.config
    batch_size = _positive_int("batch_size", batch_size)
    chunk_size = _positive_int("chunk_size", chunk_size)
    schedules.check_learning_rate(learning_rate)
    if checkpoint_every is not None:
        checkpoint_every = _positive_int("checkpoint_every", checkpoint_every)
        if checkpoint_every % batch_size:
            raise ValueError(
                f"checkpoint_every={checkpoint_every} must be a multiple of "
                f"batch_size={batch_size}, so that no batch straddles a checkpoint"
            )
    if isinstance(skip, bool) or not isinstance(skip, (int, np.integer)) or skip < 0:
        raise ValueError(f"skip must be a non-negative int, got {skip!r}")
    if skip % batch_size:
        raise ValueError(f"skip={skip} must be a multiple of batch_size={batch_size}")
    piece = max(batch_size, chunk_size - chunk_size % batch_size)
    pieces = _pieces(
        chunks,
        config=config,
        base_predictor=base_predictor,
        piece=piece,
        every=checkpoint_every,
        position=int(skip),
    )
    if step is None:
        step = engine.step(state)
    for inputs, side_info, targets in pieces:
        rates = schedules.learning_rates(
            learning_rate,
            step if callable(learning_rate) else 0,
            targets.shape[0],
            config.dtype,
            config=config,
            batch=batch_size,
        )
        options = {} if route == "auto" else {"route": route}
        state, probs = engine.fit(state, inputs, side_info, targets, rates, batch_size, **options)
        step += targets.shape[0]
        yield state, probs


def fit_chunks(
    engine,
    state,
    chunks: Iterable,
    *,
    learning_rate: float | Callable,
    batch_size: int = 1,
    chunk_size: int = CHUNK_SIZE,
    base_predictor: Callable | None = None,
    checkpoint_path=None,
    checkpoint_every: int | None = None,
    skip: int = 0,
    on_piece: Callable | None = None,
    step: int | None = None,
):
    """Trains on a stream of chunks, optionally checkpointing; returns the final state.

    Checkpoints (the portable ``.npz`` of :func:`gln_jax.api.checkpoint.save_checkpoint`,
    written atomically) are taken whenever the stream position (``skip`` + examples consumed)
    reaches a multiple of ``checkpoint_every``. To resume after a failure, load the checkpoint,
    convert its state with ``engine.from_reference`` and call again with ``skip`` set to the
    examples it has learned (its ``step`` minus the step the run started from) and the stream
    from that position (``array_chunks(X, y, start=skip)``); the result equals an uninterrupted
    run.

    Args:
        engine, state, chunks, learning_rate, batch_size, chunk_size, base_predictor,
            checkpoint_every, skip, step: as :func:`train_chunks` (checkpoints store the exact
            count, ``step`` plus the examples learned since).
        checkpoint_path: file the checkpoints are written to (required with
            ``checkpoint_every``).
        on_piece: optional callback ``(state, probabilities [L, C])`` after every piece.

    Returns:
        The engine's state after the whole stream. An exception from the stream propagates; the
        state of the last completed piece is then the last one given to ``on_piece`` (and the
        last checkpoint on disk).

    Example:
        >>> engine = JaxEngine(config)  # doctest: +SKIP
        >>> state = fit_chunks(engine, state, array_chunks(X, y), learning_rate=1e-3)
        ... # doctest: +SKIP
    """
    if (checkpoint_every is None) != (checkpoint_path is None):
        raise ValueError("checkpoint_every and checkpoint_path go together")
    position = int(skip)
    step = engine.step(state) if step is None else int(step)
    for trained, probs in train_chunks(
        engine,
        state,
        chunks,
        learning_rate=learning_rate,
        batch_size=batch_size,
        chunk_size=chunk_size,
        base_predictor=base_predictor,
        checkpoint_every=checkpoint_every,
        skip=skip,
        step=step,
    ):
        state = trained
        position += probs.shape[0]
        step += probs.shape[0]
        if on_piece is not None:
            on_piece(state, probs)
        if checkpoint_every is not None and position % checkpoint_every == 0:
            save_checkpoint(
                checkpoint_path,
                engine.config,
                engine.to_reference(state),
                learning_rate=None if callable(learning_rate) else learning_rate,
                has_base_predictor=base_predictor is not None,
                step=step,
            )
    return state


def is_stream(X, y=None) -> bool:
    """Whether :meth:`gln_jax.GLN.fit` should stream: an iterator of chunks, or memmaps."""
    if y is None:
        return hasattr(X, "__next__") or (
            hasattr(X, "__iter__") and not hasattr(X, "__len__") and not hasattr(X, "shape")
        )
    return isinstance(X, np.memmap) or isinstance(y, np.memmap)


def fit_model(
    model,
    X,
    y=None,
    batch_size: int = 1,
    num_epochs: int = 1,
    *,
    chunk_size: int = CHUNK_SIZE,
    checkpoint_path=None,
    checkpoint_every: int | None = None,
    route: str = "auto",
):
    """:meth:`gln_jax.GLN.fit` on a stream: ``model.state`` advances after every piece.

    Args:
        model: a Bernoulli facade whose runner is an engine's
            (:class:`~gln_jax.api.runner.EngineRunner`: :class:`gln_jax.GLN` of any backend,
            and ``gln_numpy.GLN``).
        X: an iterator of ``(X [B, N], y [B])`` chunks (``y`` then ``None``, one epoch), or an
            ``[T, N]`` array or ``np.memmap`` read ``chunk_size`` examples at a time.
        y: ``[T]`` labels with an array ``X``.
        batch_size, num_epochs: as :meth:`gln_jax.GLN.fit`.
        chunk_size: most examples in memory at once.
        checkpoint_path, checkpoint_every: ``model.save(checkpoint_path)`` whenever the model's
            ``step`` reaches a multiple of ``checkpoint_every``.

    Returns:
        The class predictions made before each update, ``[num_epochs * T]``.
    """
    if (checkpoint_every is None) != (checkpoint_path is None):
        raise ValueError("checkpoint_every and checkpoint_path go together")
    for name, value in (("batch_size", batch_size), ("num_epochs", num_epochs)):
        _positive_int(name, value)
    if y is None:
        if num_epochs != 1:
            raise ValueError("an iterator of chunks cannot be rewound: num_epochs must be 1")
        chunks = X
    else:

        def chunks_of_epochs():
            for _ in range(int(num_epochs)):
                yield from array_chunks(X, y, chunk_size)

        chunks = chunks_of_epochs()
    outputs = []
    runner = model._runner
    with model._lock:  # one model shared by threads: the stream's pieces are not interleaved
        skip = model.step if checkpoint_every is not None else 0
        step = model.step
        for state, probs in train_chunks(
            runner.engine,
            runner.state,
            chunks,
            learning_rate=model.learning_rate,
            batch_size=batch_size,
            chunk_size=chunk_size,
            base_predictor=model.base_predictor,
            checkpoint_every=checkpoint_every,
            skip=skip,
            step=step,
            route=route,
        ):
            runner.state = state
            step += probs.shape[0]
            model._step = step
            outputs.append(runner.classes(probs))
            if checkpoint_every is not None and model.step % checkpoint_every == 0:
                model.save(checkpoint_path)
    if not outputs:
        return runner.classes(np.zeros((0, model.config.num_models), model.config.dtype))
    return np.concatenate(outputs)
