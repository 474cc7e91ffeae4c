"""Training from an iterator of chunks: equal to the array fit, checkpoints, resume, failures."""

import jax
import numpy as np
import pytest

from gln_jax import fit_stream, init, make_config
from gln_jax.api._streaming import array_chunks, fit_chunks, train_chunks
from gln_jax.api.checkpoint import load_checkpoint
from gln_jax.api.jax_engine import JaxEngine

CONFIG = make_config([4, 4, 1], 8, num_classes=3)
RATE = 0.05


def _data(count=300, seed=0):
    rng = np.random.default_rng(seed)
    return rng.uniform(size=(count, 8)).astype(np.float32), rng.integers(0, 3, count)


def _ragged(X, y, sizes):
    start = 0
    for size in sizes:
        yield X[start : start + size], y[start : start + size]
        start += size
    if start < len(X):
        yield X[start:], y[start:]


def _assert_states_equal(a, b):
    for left, right in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_array_equal(np.asarray(left), np.asarray(right))


@pytest.mark.parametrize("batch_size", [1, 3])
def test_iterator_fit_equals_array_fit(batch_size):
    X, y = _data()
    state = init(jax.random.key(0), CONFIG)
    rates = np.full(len(y), RATE, np.float32)
    expected, p_expected = fit_stream(state, X, X, y, rates, config=CONFIG, batch_size=batch_size)
    engine = JaxEngine(CONFIG)
    outputs = []
    got = fit_chunks(
        engine,
        state,
        _ragged(X, y, [7, 50, 1, 90, 13]),
        learning_rate=RATE,
        batch_size=batch_size,
        chunk_size=64,
        on_piece=lambda _, p: outputs.append(p),
    )
    _assert_states_equal(got, expected)
    np.testing.assert_array_equal(np.concatenate(outputs), p_expected)
    assert int(got.step) == len(y)


def test_schedule_is_stepped_per_example_across_pieces():
    X, y = _data(100)
    state = init(jax.random.key(1), CONFIG)

    def schedule(step):
        return 0.1 / (1.0 + np.asarray(step, np.float32))

    rates = schedule(np.arange(100)).astype(np.float32)
    expected, _ = fit_stream(state, X, X, y, rates, config=CONFIG)
    got = fit_chunks(
        JaxEngine(CONFIG), state, array_chunks(X, y, 17), learning_rate=schedule, chunk_size=32
    )
    _assert_states_equal(got, expected)


def test_failure_leaves_last_piece_and_resume_equals_uninterrupted(tmp_path):
    X, y = _data(300, seed=2)
    engine = JaxEngine(CONFIG)
    state = init(jax.random.key(2), CONFIG)
    uninterrupted = fit_chunks(
        engine, state, array_chunks(X, y, 40), learning_rate=RATE, batch_size=2, chunk_size=32
    )

    def failing():
        yield from array_chunks(X[:130], y[:130], 40)
        raise OSError("disk went away")

    path = tmp_path / "stream.npz"
    last = []
    with pytest.raises(OSError, match="disk went away"):
        fit_chunks(
            engine,
            state,
            failing(),
            learning_rate=RATE,
            batch_size=2,
            chunk_size=32,
            checkpoint_path=path,
            checkpoint_every=50,
            on_piece=lambda s, _: last.append(s),
        )
    # Pieces end at 32, 50 (a checkpoint bound), 82 and 100; the 30 examples read after 100
    # never formed a complete piece, so the last completed state and the checkpoint are at 100.
    assert [int(s.step) for s in last] == [32, 50, 82, 100]
    checkpoint = load_checkpoint(path)
    assert int(checkpoint.state.step) == 100
    assert checkpoint.learning_rate == RATE
    skip = int(checkpoint.state.step)
    resumed = fit_chunks(
        engine,
        engine.from_reference(checkpoint.state),
        array_chunks(X, y, 40, start=skip),
        learning_rate=RATE,
        batch_size=2,
        chunk_size=32,
        skip=skip,
    )
    _assert_states_equal(resumed, uninterrupted)


def test_bad_chunk_raises_and_keeps_the_last_completed_piece():
    X, y = _data(100)
    bad_y = y.copy()
    bad_y[70] = 3  # out of range
    state = init(jax.random.key(3), CONFIG)
    engine = JaxEngine(CONFIG)
    states = []
    with pytest.raises(ValueError, match=r"y of chunk 2 labels must be in \[0, 3\)"):
        for trained, _ in train_chunks(
            engine, state, array_chunks(X, bad_y, 32), learning_rate=RATE, chunk_size=32
        ):
            states.append(trained)
    assert [int(s.step) for s in states] == [32, 64]
    expected, _ = fit_stream(
        state, X[:64], X[:64], y[:64], np.full(64, RATE, np.float32), config=CONFIG
    )
    _assert_states_equal(states[-1], expected)
    assert int(state.step) == 0  # the caller's state is never written


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"batch_size": 0}, "batch_size must be a positive int"),
        ({"batch_size": 4, "checkpoint_every": 6}, "must be a multiple of batch_size"),
        ({"skip": -1}, "skip must be a non-negative int"),
        ({"learning_rate": -1.0}, "learning_rate"),
    ],
)
def test_bad_arguments_are_refused(kwargs, message):
    X, y = _data(10)
    options = {"learning_rate": RATE, **kwargs}
    with pytest.raises(ValueError, match=message):
        next(
            train_chunks(
                JaxEngine(CONFIG), init(jax.random.key(0), CONFIG), array_chunks(X, y), **options
            )
        )


def test_chunks_must_be_pairs():
    with pytest.raises(TypeError, match=r"chunk 0 must be an \(X, y\) tuple"):
        next(
            train_chunks(
                JaxEngine(CONFIG),
                init(jax.random.key(0), CONFIG),
                iter([np.zeros((2, 8))]),
                learning_rate=RATE,
            )
        )


def test_facade_fit_on_an_iterator_and_memmaps_equals_array_fit(tmp_path):
    from gln_jax import GLN

    X, y = _data(200, seed=5)
    by_arrays = GLN("jax", [4, 4, 1], 8, num_classes=3, learning_rate=RATE, seed=1)
    expected = by_arrays.fit(X, y, batch_size=2)
    by_chunks = GLN("jax", [4, 4, 1], 8, num_classes=3, learning_rate=RATE, seed=1)
    got = by_chunks.fit(_ragged(X, y, [33, 5, 70]), batch_size=2, chunk_size=64)
    np.testing.assert_array_equal(got, expected)
    _assert_states_equal(by_chunks.state, by_arrays.state)
    X_map = np.memmap(tmp_path / "x.f32", np.float32, "w+", shape=X.shape)
    X_map[:] = X
    y_map = np.memmap(tmp_path / "y.i64", np.int64, "w+", shape=y.shape)
    y_map[:] = y
    by_memmap = GLN("jax", [4, 4, 1], 8, num_classes=3, learning_rate=RATE, seed=1)
    np.testing.assert_array_equal(
        by_memmap.fit(X_map, y_map, batch_size=2, chunk_size=64), expected
    )
    _assert_states_equal(by_memmap.state, by_arrays.state)


def test_facade_stream_failure_checkpoint_and_resume(tmp_path):
    from gln_jax import GLN

    X, y = _data(200, seed=6)
    uninterrupted = GLN("jax", [4, 4, 1], 8, num_classes=3, learning_rate=RATE, seed=2)
    uninterrupted.fit(X, y)

    def failing():
        yield X[:90], y[:90]
        yield X[90:95], np.full(5, 7)  # a bad label: the chunk is refused

    model = GLN("jax", [4, 4, 1], 8, num_classes=3, learning_rate=RATE, seed=2)
    path = tmp_path / "model.npz"
    with pytest.raises(ValueError, match="labels must be in"):
        model.fit(failing(), chunk_size=32, checkpoint_path=path, checkpoint_every=40)
    # Pieces end at 32, 40, 72 and 80; the 10 examples held after 80 never formed a piece.
    assert model.step == 80
    resumed = GLN.load(path)
    assert resumed.step == 80
    resumed.fit(array_chunks(X, y, 64, start=resumed.step), chunk_size=32)
    _assert_states_equal(resumed.state, uninterrupted.state)
    with pytest.raises(ValueError, match="num_epochs must be 1"):
        model.fit(array_chunks(X, y), num_epochs=2)
    with pytest.raises(ValueError, match="apply to streams"):
        model.fit(X, y, checkpoint_every=10)


@pytest.mark.parametrize(
    "side", [{"side_info_transform": "center"}, {"side_info_size": 3}], ids=["transform", "width"]
)
def test_facade_stream_refuses_models_with_side_information(side):
    from gln_jax import GLN

    X, y = _data(20, seed=2)
    model = GLN("jax", [4, 4, 1], 8, num_classes=3, learning_rate=RATE, **side)
    before = model.reference_state()
    with pytest.raises(ValueError, match="fit on a stream"):
        model.fit(_ragged(X, y, [7, 13]))
    _assert_states_equal(model.reference_state(), before)
    assert model.step == 0


def test_memmaps_are_arrays_where_a_model_cannot_stream(tmp_path):
    """A memmap is an array: a model with a side-information transform fits it in one go, and
    so does the Gaussian facade, with the results of the in-memory arrays."""
    from gln_jax import GLN, GaussianGLN

    X, y = _data(60, seed=3)
    X_map = np.memmap(tmp_path / "x.f32", np.float32, "w+", shape=X.shape)
    X_map[:] = X
    y_map = np.memmap(tmp_path / "y.i64", np.int64, "w+", shape=y.shape)
    y_map[:] = y
    options = dict(num_classes=3, learning_rate=RATE, side_info_transform="center", seed=4)
    from_arrays = GLN("jax", [4, 4, 1], 8, **options)
    from_memmaps = GLN("jax", [4, 4, 1], 8, **options)
    np.testing.assert_array_equal(from_memmaps.fit(X_map, y_map), from_arrays.fit(X, y))
    _assert_states_equal(from_memmaps.state, from_arrays.state)
    targets = X.sum(1).astype(np.float32)
    t_map = np.memmap(tmp_path / "t.f32", np.float32, "w+", shape=targets.shape)
    t_map[:] = targets
    gauss_arrays = GaussianGLN("numpy", [4], 8, seed=2)
    gauss_memmaps = GaussianGLN("numpy", [4], 8, seed=2)
    np.testing.assert_array_equal(gauss_memmaps.fit(X_map, t_map), gauss_arrays.fit(X, targets))
