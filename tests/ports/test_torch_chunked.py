"""The PyTorch port's Gram chunks equal its per-step online loop (and so the reference's)."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
gln_torch = pytest.importorskip("gln_torch")

from gln_torch import chunked, stream  # noqa: E402
from gln_torch.network import StepBuffers, _clone_weights, _flatten, _online_step  # noqa: E402


def _problem(
    layer_sizes,
    *,
    classes=3,
    m=2,
    steps=150,
    lr=0.005,
    clip=5.0,
    bias=True,
    dtype="float64",
    seed=0,
):
    """A model and a stream whose examples often share rows (few contexts, few inputs)."""
    rng = np.random.default_rng(seed)
    model = gln_torch.GLN(
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
    x0, rows, targets, rates = stream._prepare(
        model.state, x, x, y, np.full(steps, lr, dtype), model.config
    )
    return model, x0, rows, targets, rates


def _per_step(model, x0, rows, targets, rates):
    """The per-step loop (the path the chunks replace): weights and ``p [T, C]``."""
    weights = _clone_weights(model.state, model.config)
    flat = _flatten(weights)
    buffers = StepBuffers(flat, model.config)
    steps = x0.shape[0]
    per_layer = [r.reshape(steps, -1) for r in rows]
    p = torch.stack(
        [
            _online_step(
                flat,
                x0[t],
                tuple(r[t] for r in per_layer),
                targets[t][:, None],
                rates[t],
                model.config,
                buffers,
            )
            for t in range(steps)
        ]
    )
    return [w.numpy() for w in weights], p.numpy()


def _chunked(model, x0, rows, targets, rates):
    weights = _clone_weights(model.state, model.config)
    p = chunked.online_loop(_flatten(weights), x0, rows, targets, rates, model.config)
    return [w.numpy() for w in weights], p.numpy()


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
    """Float64 within 1e-12, step by step, with rows shared by many examples, a partial last
    chunk and no clip firing."""
    problem = _problem(layer_sizes, bias=bias)
    w_step, p_step = _per_step(*problem)
    w_chunk, p_chunk = _chunked(*problem)
    assert replays["n"] == 0
    np.testing.assert_allclose(p_chunk, p_step, rtol=0, atol=1e-12)
    for a, b in zip(w_chunk, w_step, strict=True):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-12)


def test_chunks_replay_when_a_clip_may_fire(replays):
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
        np.testing.assert_allclose(a, b, rtol=2e-5, atol=2e-6)


def test_streams_choose_chunks_by_rows_length_and_precision(monkeypatch):
    small = gln_torch.GLN([2, 1], 6, context_map_size=4)
    wide = gln_torch.GLN([2, 1], 6, context_map_size=5).config
    table = small.state.layers[0].weights
    assert chunked.use_chunked(small.config, chunked.MIN_STEPS, table)
    assert not chunked.use_chunked(small.config, chunked.MIN_STEPS - 1, table)
    assert not chunked.use_chunked(wide, 1000, table)
    monkeypatch.setattr(chunked, "_tf32_possible", lambda tensor: True)  # CUDA with TF32
    assert not chunked.use_chunked(small.config, 1000, table)
    monkeypatch.undo()
    calls = {"n": 0}
    real = chunked.online_loop

    def spy(*args):
        calls["n"] += 1
        return real(*args)

    monkeypatch.setattr(chunked, "online_loop", spy)
    x = np.full((40, 6), 0.5)
    small.fit(x, np.zeros(40, int))
    assert calls["n"] == 1 and small.step == 40
