"""The NumPy and PyTorch ports' Gram chunks equal their per-step online loop (and so the
reference's), and the replay policy they share backs off as it should."""

from __future__ import annotations

import numpy as np
import pytest
from gln_common import chunked as driver

from .port_harness import BY_NAME, params

CHUNKED = params([BY_NAME["numpy"], BY_NAME["pytorch"]])  # the ports that learn in Gram chunks


def _copy_weights(backend, model):
    """Fresh copies of the model's weights in its dtype (NumPy copies, PyTorch clones)."""
    network = backend.module("network")
    copy = network.copy_weights if backend.name == "numpy" else network.clone_weights
    return copy(model.state, model.config)


def _problem(
    backend,
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
    model = backend.module().GLN(
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
    x0, rows, targets, rates = backend.module("scan")._prepare(
        model.state, x, x, y, rates, model.config
    )
    return model, x0, rows, targets, rates


def _per_step(backend, model, x0, rows, targets, rates):
    """The per-step loop (the path the chunks replace): weights and ``p [T, C]`` in NumPy."""
    network = backend.module("network")
    weights = _copy_weights(backend, model)
    flat = network.flatten(weights)
    steps = x0.shape[0]
    if backend.name == "numpy":  # rows [C, K] and targets [C] per step
        buffers = network.StepBuffers(flat, rows, model.config)
        step_rows, step_targets = rows, targets
    else:  # rows [C*K] and targets [C, 1] per step
        buffers = network.StepBuffers(flat, model.config)
        step_rows, step_targets = [r.reshape(steps, -1) for r in rows], targets[:, :, None]
    p = [
        network.online_step(
            flat,
            x0[t],
            tuple(r[t] for r in step_rows),
            step_targets[t],
            rates[t],
            model.config,
            buffers,
        )
        for t in range(steps)
    ]
    return [backend.to_numpy(w) for w in weights], np.stack([backend.to_numpy(q) for q in p])


def _chunked(backend, model, x0, rows, targets, rates):
    weights = _copy_weights(backend, model)
    flat = backend.module("network").flatten(weights)
    p = backend.module("chunked").online_loop(flat, x0, rows, targets, rates, model.config)
    return [backend.to_numpy(w) for w in weights], backend.to_numpy(p)


@pytest.fixture
def replays(backend, monkeypatch):
    """Counts the layer chunks learned one step at a time."""
    count = {"n": 0}
    chunked = backend.module("chunked")
    real = chunked.OPS.replay

    def spy(*args, **kwargs):
        count["n"] += 1
        return real(*args, **kwargs)

    monkeypatch.setattr(chunked, "OPS", chunked.OPS._replace(replay=spy))
    return count


@pytest.mark.parametrize("backend", CHUNKED)
@pytest.mark.parametrize("layer_sizes, bias", [([4, 3, 1], True), ([5, 1], False), ([1], True)])
def test_chunks_equal_the_per_step_loop_without_clipping(backend, layer_sizes, bias, replays):
    """Float64 within 1e-12, step by step, on a stream longer than a chunk (and a partial
    last chunk), with rows shared by many examples and no clip firing."""
    problem = _problem(backend, layer_sizes, bias=bias, steps=150, lr=0.005)
    w_step, p_step = _per_step(backend, *problem)
    w_chunk, p_chunk = _chunked(backend, *problem)
    assert replays["n"] == 0  # every chunk took the Gram form
    np.testing.assert_allclose(p_chunk, p_step, rtol=0, atol=1e-12)
    for a, b in zip(w_chunk, w_step, strict=True):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-12)
    flat = backend.to_numpy(problem[2][0]).reshape(-1)
    assert len(np.unique(flat)) < flat.size / 8  # the stream does share rows


@pytest.mark.parametrize("backend", CHUNKED)
def test_chunks_replay_when_a_clip_may_fire(backend, replays):
    """A high rate and a tight clip: chunks replay one step at a time and the result is still
    the per-step one; the weights stay inside the clip."""
    problem = _problem(backend, [4, 3, 1], lr=2.0, clip=0.3, steps=200)
    w_step, p_step = _per_step(backend, *problem)
    w_chunk, p_chunk = _chunked(backend, *problem)
    assert replays["n"] > 0
    np.testing.assert_allclose(p_chunk, p_step, rtol=0, atol=1e-12)
    for a, b in zip(w_chunk, w_step, strict=True):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-12)
        assert np.abs(a).max() <= 0.3
    assert any(np.isclose(np.abs(a).max(), 0.3) for a in w_step)  # a clip did fire


@pytest.mark.parametrize("backend", CHUNKED)
def test_float32_chunks_match_the_per_step_loop(backend):
    problem = _problem(backend, [4, 3, 1], dtype="float32", lr=0.02, steps=130)
    w_step, p_step = _per_step(backend, *problem)
    w_chunk, p_chunk = _chunked(backend, *problem)
    assert p_chunk.dtype == np.float32
    np.testing.assert_allclose(p_chunk, p_step, rtol=2e-5, atol=2e-6)
    for a, b in zip(w_chunk, w_step, strict=True):
        assert a.dtype == np.float32
        np.testing.assert_allclose(a, b, rtol=2e-5, atol=2e-6)


def test_backoff_skips_the_gram_attempt_after_replays():
    backoff = driver.Backoff(2)
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
    assert backoff.skip[0] == driver.MAX_SKIP
    skipped = 0
    while not backoff.attempt(0):
        skipped += 1
    assert skipped == driver.MAX_SKIP
    backoff.record(0, replayed=False)  # an attempt that needed no replay resets the skip
    assert backoff.skip[0] == 0 and backoff.attempt(0)
    assert backoff.attempt(1)  # layers back off separately


def _use_chunked(backend, model, steps: int) -> bool:
    """The port's rule (PyTorch's also looks at a table's device and dtype)."""
    chunked = backend.module("chunked")
    if backend.name == "numpy":
        return chunked.use_chunked(model.config, steps)
    return chunked.use_chunked(model.config, steps, model.state.layers[0].weights)


@pytest.mark.parametrize("backend", CHUNKED)
def test_streams_choose_chunks_by_rows_and_length(backend, monkeypatch):
    small = backend.module().GLN([2, 1], 6, context_map_size=4)
    wide = backend.module().GLN([2, 1], 6, context_map_size=5)
    assert _use_chunked(backend, small, driver.MIN_STEPS)
    assert not _use_chunked(backend, small, driver.MIN_STEPS - 1)
    assert not _use_chunked(backend, wide, 1000)
    calls = {"n": 0}
    chunked = backend.module("chunked")
    real = chunked.online_loop

    def spy(*args):
        calls["n"] += 1
        return real(*args)

    monkeypatch.setattr(chunked, "online_loop", spy)
    model, x0, rows, targets, rates = _problem(backend, [3, 1], m=2, steps=40, lr=0.05)
    state, p = backend.module("scan").scan_update(
        model.state,
        np.zeros((40, 6)) + 0.5,
        np.zeros((40, 6)) + 0.5,
        np.zeros(40, int),
        rates,
        config=model.config,
    )
    assert calls["n"] == 1 and p.shape == (40, 3)
    small.fit(np.full((40, 6), 0.5), np.zeros(40, int))  # the facade's stream takes them too
    assert calls["n"] == 2 and small.step == 40


@pytest.mark.parametrize("backend", params([BY_NAME["pytorch"]]))
def test_torch_streams_keep_the_per_step_loop_where_tf32_may_run(backend, monkeypatch):
    small = backend.module().GLN([2, 1], 6, context_map_size=4)
    chunked = backend.module("chunked")
    assert _use_chunked(backend, small, 1000)
    monkeypatch.setattr(chunked, "tf32_possible", lambda tensor: True)  # CUDA with TF32
    assert not _use_chunked(backend, small, 1000)
