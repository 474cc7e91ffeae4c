"""The NumPy port's Gram chunks equal its per-step online loop (and so the reference's)."""

from __future__ import annotations

import numpy as np
import pytest

gln_numpy = pytest.importorskip("gln_numpy")

from gln_numpy import chunked, stream  # noqa: E402
from gln_numpy.network import StepBuffers, _copy_weights, _flatten, _online_step  # noqa: E402


def _problem(
    layer_sizes, *, classes=3, m=2, steps=150, lr=0.05, clip=5.0, bias=True, dtype="float64", seed=0
):
    """A model and a stream whose examples often share rows (few contexts, few inputs)."""
    rng = np.random.default_rng(seed)
    model = gln_numpy.GLN(
        layer_sizes,
        6,
        num_classes=classes,
        context_map_size=m,
        seed=seed,
        learning_rate=lr,
        weight_clipping=clip,
        bias=bias,
        dtype=dtype,
    )
    x = rng.random((steps, 6)).astype(dtype)
    y = rng.integers(0, classes, steps)
    rates = np.full(steps, lr, dtype)
    x0, rows, targets, rates = stream._prepare(model.state, x, x, y, rates, model.config)
    return model, x0, rows, targets, rates


def _per_step(model, x0, rows, targets, rates):
    """The per-step loop (the path the chunks replace): weights and ``p [T, C]``."""
    weights = _copy_weights(model.state, model.config)
    flat = _flatten(weights)
    buffers = StepBuffers(flat, rows, model.config)
    p = np.stack(
        [
            _online_step(
                flat,
                x0[t],
                tuple(r[t] for r in rows),
                targets[t],
                rates[t],
                model.config,
                buffers,
            )
            for t in range(x0.shape[0])
        ]
    )
    return weights, p


def _chunked(model, x0, rows, targets, rates):
    weights = _copy_weights(model.state, model.config)
    p = chunked.online_loop(_flatten(weights), x0, rows, targets, rates, model.config)
    return weights, p


@pytest.fixture
def replays(monkeypatch):
    """Counts the layer chunks learned one step at a time."""
    count = {"n": 0}
    real = chunked._replay

    def spy(*args, **kwargs):
        count["n"] += 1
        return real(*args, **kwargs)

    monkeypatch.setattr(chunked, "_replay", spy)
    return count


@pytest.mark.parametrize("layer_sizes, bias", [([4, 3, 1], True), ([5, 1], False), ([1], True)])
def test_chunks_equal_the_per_step_loop_without_clipping(layer_sizes, bias, replays):
    """Float64 within 1e-12, step by step, on a stream longer than a chunk (and a partial
    last chunk), with rows shared by many examples and no clip firing."""
    problem = _problem(layer_sizes, bias=bias, steps=150, lr=0.005)
    w_step, p_step = _per_step(*problem)
    w_chunk, p_chunk = _chunked(*problem)
    assert replays["n"] == 0  # every chunk took the Gram form
    np.testing.assert_allclose(p_chunk, p_step, rtol=0, atol=1e-12)
    for a, b in zip(w_chunk, w_step, strict=True):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-12)
    flat = problem[2][0].reshape(-1)
    assert len(np.unique(flat)) < flat.size / 8  # the stream does share rows


def test_chunks_replay_when_a_clip_may_fire(replays):
    """A high rate and a tight clip: chunks replay one step at a time and the result is still
    the per-step one; the weights stay inside the clip."""
    problem = _problem([4, 3, 1], lr=2.0, clip=0.3, steps=200)
    w_step, p_step = _per_step(*problem)
    w_chunk, p_chunk = _chunked(*problem)
    assert replays["n"] > 0
    np.testing.assert_allclose(p_chunk, p_step, rtol=0, atol=1e-12)
    for a, b in zip(w_chunk, w_step, strict=True):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-12)
        assert np.abs(a).max() <= 0.3
    assert any(np.isclose(np.abs(a).max(), 0.3) for a in w_step)  # a clip did fire


def test_float32_chunks_match_the_per_step_loop():
    problem = _problem([4, 3, 1], dtype="float32", lr=0.02, steps=130)
    w_step, p_step = _per_step(*problem)
    w_chunk, p_chunk = _chunked(*problem)
    assert p_chunk.dtype == np.float32
    np.testing.assert_allclose(p_chunk, p_step, rtol=2e-5, atol=2e-6)
    for a, b in zip(w_chunk, w_step, strict=True):
        assert a.dtype == np.float32
        np.testing.assert_allclose(a, b, rtol=2e-5, atol=2e-6)


def test_backoff_skips_the_gram_attempt_after_replays():
    backoff = chunked.Backoff(2)
    assert backoff.attempt(0) and backoff.attempt(1)
    backoff.record(0, replayed=True)  # skip one chunk
    assert not backoff.attempt(0)
    assert backoff.attempt(0)
    backoff.record(0, replayed=True)  # then two
    assert [backoff.attempt(0) for _ in range(3)] == [False, False, True]
    for _ in range(10):  # every attempt replays: the skip doubles up to its cap
        while not backoff.attempt(0):
            pass
        backoff.record(0, replayed=True)
    assert backoff.skip[0] == chunked.MAX_SKIP
    skipped = 0
    while not backoff.attempt(0):
        skipped += 1
    assert skipped == chunked.MAX_SKIP
    backoff.record(0, replayed=False)  # an attempt that needed no replay resets the skip
    assert backoff.skip[0] == 0 and backoff.attempt(0)
    assert backoff.attempt(1)  # layers back off separately


def test_streams_choose_chunks_by_rows_and_length(monkeypatch):
    small = gln_numpy.GLN([2, 1], 6, context_map_size=4).config
    wide = gln_numpy.GLN([2, 1], 6, context_map_size=5).config
    assert chunked.use_chunked(small, chunked.MIN_STEPS)
    assert not chunked.use_chunked(small, chunked.MIN_STEPS - 1)
    assert not chunked.use_chunked(wide, 1000)
    calls = {"n": 0}
    real = chunked.online_loop

    def spy(*args):
        calls["n"] += 1
        return real(*args)

    monkeypatch.setattr(chunked, "online_loop", spy)
    model, x0, rows, targets, rates = _problem([3, 1], m=2, steps=40)
    state, p = stream.scan_update(
        model.state,
        np.zeros((40, 6)) + 0.5,
        np.zeros((40, 6)) + 0.5,
        np.zeros(40, int),
        rates,
        config=model.config,
    )
    assert calls["n"] == 1 and p.shape == (40, 3)
