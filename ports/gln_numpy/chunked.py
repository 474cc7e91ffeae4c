"""Exact online learning in NumPy, layer by layer over chunks in Gram form.

Learning is local: a neuron's update depends only on its own output and the target, so a
layer's outputs over a chunk of ``T`` examples do not depend on the layers above it. The
stream is therefore learned one chunk at a time and, within a chunk, one *layer* at a time:
the first layer over all ``T`` examples, then the second over the first's outputs, and so on.

Within a layer, the active row of neuron ``j`` at step ``t`` is its row at the chunk start
minus ``g_s x_s`` for every earlier example ``s`` of the chunk that hit the same row
(``g_s = lr_s (p_s - y_s)``), as long as no weight clip fires, so its score is

    z_t = W_start[row_t] . x_t  -  sum_{s < t, row_s == row_t} g_s (x_s . x_t)

(the derivation of :mod:`gln_jax.core.chunked`, applied here to every layer). The first terms
of a whole chunk come from one matrix product, the dot products ``x_s . x_t`` from the chunk's
Gram matrix, and the sequential loop only moves vectors of one scalar per neuron: six NumPy
calls on ``[C*K]`` vectors per layer and step, instead of a gather, an update, a clip and a
scatter of rows as wide as the input. After the loop the table moves once per chunk, by a
matrix product. Measured on MNIST, 10 classes, float32 (2-core Xeon), the loop runs about
1.6x as fast as the per-step one at ``[4, 4, 1]`` and 2x at ``[16, 16, 1]``.

Clipping breaks the linearity. Each row's excursion over the chunk is bounded by
``max|w| + sum_s |g_s| max|x_s|`` over the examples that hit it; when that bound may reach the
clip, the layer's chunk is replayed one example at a time from the chunk start by the per-step
update (with its clip), so the result is always the exact online one, up to float summation
order (float64 within 1e-12 of :func:`gln_numpy.network.update` applied in turn).
"""

from __future__ import annotations

import numpy as np

from gln_numpy import numerics
from gln_numpy.network import _append_bias, _learn_rows
from gln_numpy.types import GLNConfig

#: Examples per chunk. The first layer's scoring and update products cost less per example in
#: longer chunks, while the ``[T, T, C*K]`` coefficients and the per-step calls on
#: ``[C*K, T]`` arrays cost more: measured for ``[4, 4, 1]`` and ``[16, 16, 1]``, 10 classes,
#: MNIST, 64 with the deeper layers in parts of 32 was fastest (32 to 128, parts of 16 to 64,
#: within 15%).
CHUNK = 64
#: Rows per neuron (``2**context_map_size``) up to which streams learn in chunks: the first
#: layer's scoring and update products touch every row of its table, ``R`` times the active
#: rows' arithmetic.
MAX_ROWS = 16
#: Examples per part of a chunk in the layers after the first (their cost is all per step).
DEEP_CHUNK = 32
#: Streams shorter than this keep the per-step loop (the chunk's set-up would not pay).
MIN_STEPS = 16
#: After a replay, a layer skips its Gram attempt for this many chunks at most (the skip
#: doubles from 1 on consecutive replays and resets after a chunk that needed none), so a
#: stream whose weights sit at the clip costs about the per-step loop, not both.
MAX_SKIP = 16
#: Relative safety margin of the clip test: a bound within this fraction of the clip replays.
CLIP_MARGIN = 1e-4

_VECDOT = getattr(np, "vecdot", None)  # NumPy >= 2.0


def _scores(wf: np.ndarray, x: np.ndarray, rows: np.ndarray, shared: bool) -> np.ndarray:
    """``W[row] . x`` of every step and neuron of a chunk, ``[T, M]``.

    ``x`` is ``[T, I]`` (shared by every neuron: the first layer) or ``[T, C, I]`` (one input
    per class; ``rows`` is then ``[T, C, K]``). The first layer scores every row of its table
    by one matrix product and picks the active ones: with at most :data:`MAX_ROWS` rows per
    neuron that is cheaper than gathering ``T * C * K`` rows as wide as the input.
    """
    steps = rows.shape[0]
    if shared:
        every = numerics.matmul(wf, x.T)  # [C*K*R, T]
        return every[rows.reshape(steps, -1), np.arange(steps)[:, None]]
    active = wf[rows]  # [T, C, K, I]
    return _dots(active, x[:, :, None, :]).reshape(steps, -1)


def _gram(x: np.ndarray, shared: bool) -> np.ndarray:
    """``x_t . x_s`` for ``s < t``, else 0: ``[t, 1, 1, s]``, or ``[t, C, 1, s]`` per class."""
    if shared:
        gram = numerics.matmul(x, x.T)[:, None, None, :]
    else:
        gram = numerics.matmul(x.transpose(1, 0, 2), x.transpose(1, 2, 0))  # [C, t, s]
        gram = gram.transpose(1, 0, 2)[:, :, None, :]
    steps = x.shape[0]
    return gram * np.tri(steps, k=-1, dtype=gram.dtype)[:, None, None, :]


def _rowdot(a: np.ndarray, b: np.ndarray, out: np.ndarray) -> np.ndarray:
    """``sum(a * b, axis=-1)`` of ``[M, S]`` arrays into ``out [M]`` in one call."""
    if _VECDOT is not None:
        return _VECDOT(a, b, out=out)
    return np.einsum("ms,ms->m", a, b, out=out)  # NumPy < 2.0


def _dots(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``sum(a * b, axis=-1)`` with broadcasting (one call on NumPy >= 2.0)."""
    if _VECDOT is not None:
        return _VECDOT(a, b)
    return np.sum(a * b, axis=-1)


def _excursions(rows, g, x, shared: bool, neurons: int, table_rows: int) -> np.ndarray:
    """Per table row, ``sum_t |g_t| max|x_t|`` over the chunk's steps that hit it."""
    steps = rows.shape[0]
    if shared:
        largest = np.abs(x).max(axis=1)[:, None, None]  # [T, 1, 1]
    else:
        largest = np.abs(x).max(axis=2)[:, :, None]  # [T, C, 1]
    terms = np.abs(g).reshape(steps, -1, neurons) * largest
    return np.bincount(rows.reshape(-1), weights=terms.reshape(-1), minlength=table_rows)


def _replay(wf, x, rows, targets, rates, config: GLNConfig) -> np.ndarray:
    """The layer's chunk one example at a time (the port's per-step update, clip included)."""
    steps, classes, neurons = rows.shape
    out = np.empty(targets.shape, wf.dtype)
    active = np.empty((classes, neurons, wf.shape[1]), wf.dtype)
    delta = np.empty_like(active)
    with np.errstate(invalid="ignore"):  # see numerics.matmul: every operand is finite
        for t in range(steps):
            target = targets[t].reshape(classes, neurons)
            p = _learn_rows(wf, rows[t], x[t], target, rates[t], config, active, delta)
            out[t] = p.reshape(-1)
    return out


def use_chunked(config: GLNConfig, steps: int) -> bool:
    """Whether a stream of ``steps`` examples learns in chunks (else one example at a time).

    Args:
        config: the network's config.
        steps: the stream's length.

    Returns:
        True with at most :data:`MAX_ROWS` rows per neuron and :data:`MIN_STEPS` examples.
    """
    return config.num_contexts <= MAX_ROWS and steps >= MIN_STEPS


class Backoff:
    """Per layer, how many more chunks go straight to the per-step replay, and the next skip."""

    def __init__(self, layers: int):
        self.pending = [0] * layers
        self.skip = [0] * layers

    def attempt(self, layer: int) -> bool:
        """Whether this chunk of ``layer`` tries the Gram form (counts a skipped chunk)."""
        if self.pending[layer]:
            self.pending[layer] -= 1
            return False
        return True

    def record(self, layer: int, replayed: bool) -> None:
        """Notes whether an attempted chunk of ``layer`` had to replay."""
        if replayed:
            self.skip[layer] = min(MAX_SKIP, max(1, 2 * self.skip[layer]))
            self.pending[layer] = self.skip[layer]
        else:
            self.skip[layer] = 0


def _layer_chunk(
    wf, x, rows, targets, rates, config: GLNConfig, shared: bool, attempt: bool = True
) -> tuple[np.ndarray, bool]:
    """One layer over one chunk, in place on ``wf``; returns its outputs ``p [T, M]``.

    Step ``t``'s score is one row dot: its coefficients ``[M, T + 1]`` (the Gram terms of the
    earlier steps that hit the same row, then the chunk-start score) against
    ``h [M, T + 1]`` (each earlier step's ``lr (y - p) = -g``, then 1).

    Args:
        wf: the layer's ``[C*K*R, I]`` table, updated in place.
        x: ``[T, I]`` shared inputs (first layer) or ``[T, C, I]`` per class.
        rows: ``[T, C, K]`` flat row numbers.
        targets: ``[T, M]`` each neuron's 0/1 target, ``M = C * K``.
        rates: ``[T]`` learning rates.
        config: the network's config.
        shared: whether ``x`` is shared by every class.
        attempt: False goes straight to the per-step replay.

    Returns:
        ``(p, replayed)``: the outputs and whether the chunk was learned one step at a time.
    """
    if not attempt:
        return _replay(wf, x, rows, targets, rates, config), True
    eps, clip = config.pred_clipping, config.weight_clipping
    dtype = wf.dtype
    steps, classes, neurons = rows.shape
    width = classes * neurons
    flat_rows = rows.reshape(steps, width)
    coefficients = np.empty((steps, width, steps + 1), dtype)  # [t, M, s | start score]
    terms = coefficients[:, :, :steps]  # [t, M, s]: 1 where s hit the same row as t
    np.equal(flat_rows[:, :, None], flat_rows.T[None, :, :], out=terms)
    per_class = terms.reshape(steps, classes, neurons, steps)
    np.multiply(per_class, _gram(x, shared), out=per_class)  # times x_t . x_s, s < t
    coefficients[:, :, steps] = _scores(wf, x, rows, shared)
    h = np.zeros((width, steps + 1), dtype)  # -g of each step once taken, 0 before
    h[:, steps] = 1.0
    p = np.empty((steps, width), dtype)
    z = np.empty(width, dtype)
    low, high = dtype.type(eps), dtype.type(1.0 - eps)
    rates = rates.astype(dtype, copy=False)
    with np.errstate(invalid="ignore"):
        for t in range(steps):  # six calls on [M] vectors per step
            _rowdot(coefficients[t], h, out=z)  # the score
            numerics.sigmoid(z, out=z)
            pt = np.minimum(np.maximum(z, low, out=p[t]), high, out=p[t])
            np.multiply(rates[t], np.subtract(targets[t], pt, out=z), out=h[:, t])
    g = h[:, :steps].T  # [T, M], -g exactly (negation is exact)
    excursion = _excursions(flat_rows, g, x, shared, neurons, wf.shape[0])
    touched = excursion > 0
    reach = np.abs(wf[touched]).max(axis=1) + excursion[touched]
    if np.any(reach >= clip * (1.0 - CLIP_MARGIN)):  # a clip may fire: replay exactly
        return _replay(wf, x, rows, targets, rates, config), True
    table = np.zeros((wf.shape[0], steps), dtype)  # each step's -g in the rows it hit
    table[flat_rows, np.arange(steps)[:, None]] = g
    if shared:
        wf += numerics.matmul(table, x)
    else:
        per_class = wf.reshape(classes, -1, wf.shape[1])  # [C, K*R, I] view
        per_class += numerics.matmul(table.reshape(classes, -1, steps), x.transpose(1, 0, 2))
    return p, False


def online_chunk(
    flat_weights, x0, rows, targets, rates, config: GLNConfig, backoff: Backoff | None = None
) -> np.ndarray:
    """Exact online learning of one chunk, layer by layer, in place on ``flat_weights``.

    Args:
        flat_weights: per layer ``[C*K*R, I]``, written in place.
        x0: ``[T, I_0]`` first-layer input logits.
        rows: per layer ``[T, C, K]`` flat row numbers.
        targets: ``[T, C]`` 0/1 targets in ``config.dtype``.
        rates: ``[T]`` learning rates (0 for padding).
        config: the network's config.
        backoff: the stream's :class:`Backoff` (None: every chunk tries the Gram form).

    Returns:
        ``[T, C]`` predictions made before each example's update.
    """
    x = x0
    p = None
    last = len(flat_weights) - 1
    steps = x0.shape[0]
    for layer, (wf, r) in enumerate(zip(flat_weights, rows, strict=True)):
        neurons = r.shape[2]
        y = np.repeat(targets, neurons, axis=1)  # [T, C*K]
        # the first layer takes the whole chunk (its products cost less per example in long
        # chunks); deeper layers, whose cost is the per-step loop and the [T, T, M]
        # coefficients, take it in parts of DEEP_CHUNK, one after the other
        part = steps if layer == 0 else DEEP_CHUNK
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
        p = np.concatenate(outputs)
        if layer < last:  # the next layer's inputs [T, C, K (+1)]
            x = _append_bias(numerics.logit(p).reshape(r.shape), config)
    return p.reshape(targets.shape)


def online_loop(flat_weights, x0, rows, targets, rates, config: GLNConfig) -> np.ndarray:
    """:func:`online_chunk` over a stream in chunks of :data:`CHUNK`; returns ``p [T, C]``.

    Args:
        flat_weights: per layer ``[C*K*R, I]``, written in place.
        x0: ``[T, I_0]`` first-layer input logits.
        rows: per layer ``[T, C, K]`` flat row numbers.
        targets: ``[T, C]`` 0/1 targets in ``config.dtype``.
        rates: ``[T]`` learning rates (0 for padding).
        config: the network's config.

    Returns:
        ``[T, C]`` predictions made before each example's update (the exact online ones, up
        to float summation order).
    """
    out = np.empty(targets.shape, np.dtype(config.dtype))
    backoff = Backoff(len(flat_weights))
    for a in range(0, x0.shape[0], CHUNK):
        part = slice(a, a + CHUNK)
        out[part] = online_chunk(
            flat_weights,
            x0[part],
            tuple(r[part] for r in rows),
            targets[part],
            rates[part],
            config,
            backoff,
        )
    return out
