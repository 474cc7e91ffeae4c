"""Exact online learning in PyTorch, layer by layer over chunks in Gram form.

A transliteration of :mod:`gln_numpy.chunked` (read its docstring for the derivation): learning
is local, so a chunk of ``T`` examples is learned one layer at a time; within a layer, step
``t``'s score is the chunk-start score of its row minus ``sum_s g_s (x_s . x_t)`` over the
earlier steps of the chunk that hit the same row, so the sequential loop launches six kernels
on ``[C*K]`` vectors per layer and step (instead of a gather, a matrix-vector product, an
update, a clamp and a scatter of rows as wide as the input), and the table moves once per chunk
by ``addmm_``. When a row's excursion over the chunk may reach the clip, the layer's chunk is
replayed one example at a time with the clip, so the result is always the exact online one,
up to float summation order.

The chunk's matrix products would run in TF32 where float32 CUDA matmuls may (see
:func:`gln_torch.gating._tf32_possible`); there the per-step loop is kept.
"""

from __future__ import annotations

import torch
from gln_numpy.chunked import CLIP_MARGIN, Backoff  # one replay policy for both ports

from gln_torch import numerics
from gln_torch.gating import _tf32_possible
from gln_torch.network import _append_bias, _learn_rows
from gln_torch.types import GLNConfig

#: Examples per chunk, and per part of a chunk in the layers after the first (measured for
#: ``[4, 4, 1]`` and ``[16, 16, 1]``, 10 classes, MNIST, float32, on a 2-core Xeon).
CHUNK = 64
DEEP_CHUNK = 32
#: Rows per neuron up to which streams learn in chunks (the first layer's products touch every
#: row of its table).
MAX_ROWS = 16
#: Streams shorter than this keep the per-step loop.
MIN_STEPS = 16


def use_chunked(config: GLNConfig, steps: int, weights: torch.Tensor) -> bool:
    """Whether a stream of ``steps`` examples learns in chunks (else one example at a time).

    Args:
        config: the network's config.
        steps: the stream's length.
        weights: a table of the model (its device and dtype decide the TF32 question).

    Returns:
        True with at most :data:`MAX_ROWS` rows per neuron, :data:`MIN_STEPS` examples, and products
        at full precision.
    """
    return config.num_contexts <= MAX_ROWS and steps >= MIN_STEPS and not _tf32_possible(weights)


def _scores(wf: torch.Tensor, x: torch.Tensor, rows: torch.Tensor, shared: bool) -> torch.Tensor:
    """``W[row] . x`` of every step and neuron of a chunk, ``[T, M]`` (as the NumPy port)."""
    steps = rows.shape[0]
    if shared:
        every = wf @ x.T  # [C*K*R, T]
        picks = torch.arange(steps, device=wf.device)[:, None]
        return every[rows.reshape(steps, -1), picks]
    active = wf[rows]  # [T, C, K, I]
    return torch.linalg.vecdot(active, x[:, :, None, :]).reshape(steps, -1)


def _gram(x: torch.Tensor, shared: bool) -> torch.Tensor:
    """``x_t . x_s`` for ``s < t``, else 0: ``[t, 1, 1, s]``, or ``[t, C, 1, s]`` per class."""
    steps = x.shape[0]
    if shared:
        gram = (x @ x.T)[:, None, None, :]
    else:
        gram = torch.bmm(x.transpose(0, 1), x.permute(1, 2, 0))  # [C, t, s]
        gram = gram.permute(1, 0, 2)[:, :, None, :]
    earlier = torch.ones((steps, steps), dtype=x.dtype, device=x.device).tril_(-1)
    return gram * earlier[:, None, None, :]


def _excursions(rows, g, x, shared: bool, neurons: int, table_rows: int) -> torch.Tensor:
    """Per table row, ``sum_t |g_t| max|x_t|`` over the chunk's steps that hit it."""
    steps = rows.shape[0]
    if shared:
        largest = x.abs().amax(dim=1)[:, None, None]  # [T, 1, 1]
    else:
        largest = x.abs().amax(dim=2)[:, :, None]  # [T, C, 1]
    terms = g.abs().reshape(steps, -1, neurons) * largest
    return torch.bincount(rows.reshape(-1), weights=terms.reshape(-1), minlength=table_rows)


def _replay(wf, x, rows, targets, rates, config: GLNConfig) -> torch.Tensor:
    """The layer's chunk one example at a time (the port's per-step update, clamp included)."""
    steps, classes, neurons = rows.shape
    out = torch.empty(targets.shape, dtype=wf.dtype, device=wf.device)
    for t in range(steps):  # chunks run only where no product may run in TF32
        target = targets[t].view(classes, neurons)
        p = _learn_rows(wf, rows[t].reshape(-1), x[t], target, rates[t], config, tf32=False)
        out[t] = p.reshape(-1)
    return out


def _layer_chunk(
    wf, x, rows, targets, rates, config: GLNConfig, shared: bool, attempt: bool = True
) -> tuple[torch.Tensor, bool]:
    """One layer over one chunk, in place on ``wf``: ``(p [T, M], replayed)``.

    Args:
        wf: the layer's ``[C*K*R, I]`` table, updated in place.
        x: ``[T, I]`` shared inputs (first layer) or ``[T, C, I]`` per class.
        rows: ``[T, C, K]`` flat row numbers (int64).
        targets: ``[T, M]`` each neuron's 0/1 target, ``M = C * K``.
        rates: ``[T]`` learning rates.
        config: the network's config.
        shared: whether ``x`` is shared by every class.
        attempt: False goes straight to the per-step replay.
    """
    if not attempt:
        return _replay(wf, x, rows, targets, rates, config), True
    eps, clip = config.pred_clipping, config.weight_clipping
    steps, classes, neurons = rows.shape
    width = classes * neurons
    flat_rows = rows.reshape(steps, width)
    options = {"dtype": wf.dtype, "device": wf.device}
    coefficients = torch.empty((steps, width, steps + 1), **options)  # [t, M, s | score]
    terms = coefficients[:, :, :steps]  # 1 where s hit the same row as t
    terms.copy_(flat_rows[:, :, None] == flat_rows.T[None, :, :])
    per_class = terms.view(steps, classes, neurons, steps)
    per_class.mul_(_gram(x, shared))  # times x_t . x_s, s < t
    coefficients[:, :, steps] = _scores(wf, x, rows, shared)
    h_rows = torch.zeros((steps + 1, width), **options)  # -g of each step once taken
    h_rows[steps] = 1.0
    h = h_rows.T  # [M, T + 1]
    p = torch.empty((steps, width), **options)
    z = torch.empty(width, **options)
    step_rates = rates.unbind(0)
    for t in range(steps):  # six kernels on [M] vectors per step
        torch.linalg.vecdot(coefficients[t], h, out=z)  # the score
        torch.sigmoid(z, out=z)
        pt = torch.clamp(z, eps, 1.0 - eps, out=p[t])
        torch.mul(torch.sub(targets[t], pt, out=z), step_rates[t], out=h_rows[t])
    g = h_rows[:steps]  # [T, M], -g exactly (negation is exact)
    excursion = _excursions(flat_rows, g, x, shared, neurons, wf.shape[0])
    touched = excursion > 0
    reach = wf[touched].abs().amax(dim=1) + excursion[touched]
    if bool((reach >= clip * (1.0 - CLIP_MARGIN)).any()):  # a clip may fire: replay exactly
        return _replay(wf, x, rows, targets, rates, config), True
    table = torch.zeros((wf.shape[0], steps), **options)  # each step's -g in the rows it hit
    table[flat_rows, torch.arange(steps, device=wf.device)[:, None]] = g
    if shared:
        wf.addmm_(table, x)
    else:
        per_class = wf.view(classes, -1, wf.shape[1])  # [C, K*R, I]
        per_class.baddbmm_(table.view(classes, -1, steps), x.transpose(0, 1))
    return p, False


def online_chunk(
    flat_weights, x0, rows, targets, rates, config: GLNConfig, backoff: Backoff | None = None
) -> torch.Tensor:
    """Exact online learning of one chunk, layer by layer, in place on ``flat_weights``.

    Args:
        flat_weights: per layer ``[C*K*R, I]``, written in place.
        x0: ``[T, I_0]`` first-layer input logits.
        rows: per layer ``[T, C, K]`` flat row numbers (int64).
        targets: ``[T, C]`` 0/1 targets in ``config.dtype``.
        rates: ``[T]`` learning rates (0 for padding).
        config: the network's config.
        backoff: the stream's :class:`gln_numpy.chunked.Backoff` (None: always try).

    Returns:
        ``[T, C]`` predictions made before each example's update.
    """
    x = x0
    p = None
    last = len(flat_weights) - 1
    steps = x0.shape[0]
    for layer, (wf, r) in enumerate(zip(flat_weights, rows, strict=True)):
        neurons = r.shape[2]
        y = targets.repeat_interleave(neurons, dim=1)  # [T, C*K]
        part = steps if layer == 0 else DEEP_CHUNK  # as the NumPy port
        outputs = []
        for a in range(0, steps, part):
            attempt = backoff is None or backoff.attempt(layer)
            out, replayed = _layer_chunk(
                wf,
                x[a : a + part],
                r[a : a + part],
                y[a : a + part],
                rates[a : a + part],
                config,
                shared=layer == 0,
                attempt=attempt,
            )
            if backoff is not None and attempt:
                backoff.record(layer, replayed)
            outputs.append(out)
        p = torch.cat(outputs)
        if layer < last:  # the next layer's inputs [T, C, K (+1)]
            x = _append_bias(numerics.logit(p).reshape(r.shape), config)
    return p.reshape(targets.shape)


def online_loop(flat_weights, x0, rows, targets, rates, config: GLNConfig) -> torch.Tensor:
    """:func:`online_chunk` over a stream in chunks of ``CHUNK``; returns ``p [T, C]``.

    Args:
        flat_weights: per layer ``[C*K*R, I]``, written in place.
        x0: ``[T, I_0]`` first-layer input logits.
        rows: per layer ``[T, C, K]`` flat row numbers.
        targets: ``[T, C]`` 0/1 targets in ``config.dtype``.
        rates: ``[T]`` learning rates (0 for padding).
        config: the network's config.

    Returns:
        ``[T, C]`` predictions made before each example's update.
    """
    backoff = Backoff(len(flat_weights))
    parts = [
        online_chunk(
            flat_weights,
            x0[a : a + CHUNK],
            tuple(r[a : a + CHUNK] for r in rows),
            targets[a : a + CHUNK],
            rates[a : a + CHUNK],
            config,
            backoff,
        )
        for a in range(0, x0.shape[0], CHUNK)
    ]
    return torch.cat(parts)
