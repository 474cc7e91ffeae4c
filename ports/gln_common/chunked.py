"""Exact online learning layer by layer over chunks in Gram form, for any array framework.

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
Gram matrix, and the sequential loop only moves vectors of one scalar per neuron: a handful of
calls on ``[CK]`` vectors per layer and step, instead of a gather, an update, a clip and a
scatter of rows as wide as the input. After the loop the table moves once per chunk, by a
matrix product.

Clipping breaks the linearity. Each row's excursion over the chunk is bounded by
``max|w| + sum_s |g_s| max|x_s|`` over the examples that hit it; when that bound may reach the
clip, the layer's chunk is replayed one example at a time from the chunk start by the port's
per-step update (with its clip), so the result is always the exact online one, up to float
summation order.

This module holds what does not depend on the array framework: the policy (chunk lengths,
when to chunk, when to back off to the per-step replay) and the loops over layers and parts of
a chunk. Each port supplies its arithmetic as a :class:`ChunkOps`, so that every port keeps
its own float summation order.

Shapes: ``T`` steps of a chunk, ``C`` classes (one-vs-all models), ``K`` neurons of a layer,
``R`` rows per neuron (``2**context_map_size``), ``I`` inputs of a neuron. ``CK = C * K`` is
the flattened class-neuron axis (class-major), and a layer's table is ``[C*K*R, I]``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

#: Examples per chunk. The first layer's scoring and update products cost less per example in
#: longer chunks, while the ``[T, CK, T]`` coefficients and the per-step calls on ``[CK, T]``
#: arrays cost more: measured in NumPy for ``[4, 4, 1]`` and ``[16, 16, 1]``, 10 classes,
#: MNIST, 64 with the deeper layers in parts of 32 was fastest (32 to 128, parts of 16 to 64,
#: within 15%); the same lengths were measured fastest in PyTorch on a 2-core Xeon.
CHUNK = 64
#: Examples per part of a chunk in the layers after the first (their cost is all per step).
DEEP_CHUNK = 32
#: Rows per neuron (``2**context_map_size``) up to which streams learn in chunks: the first
#: layer's scoring and update products touch every row of its table, ``R`` times the active
#: rows' arithmetic.
MAX_ROWS = 16
#: Streams shorter than this keep the per-step loop (the chunk's set-up would not pay).
MIN_STEPS = 16
#: After a replay, a layer skips its Gram attempt for this many chunks at most (the skip
#: doubles from 1 on consecutive replays and resets after a chunk that needed none), so a
#: stream whose weights sit at the clip costs about the per-step loop, not both.
MAX_SKIP = 16
#: Relative safety margin of the clip test: a bound within this fraction of the clip replays.
CLIP_MARGIN = 1e-4

Array = Any  # a port's array type (``np.ndarray``, ``torch.Tensor``)


class ChunkOps(NamedTuple):
    """A port's arithmetic for the driver: every function works on that port's arrays.

    Attributes:
        coefficients: ``(wf, x, rows, shared) -> [T, CK, T + 1]``: for step ``t`` and neuron,
            ``x_t . x_s`` for each earlier step ``s`` that hit the same row (else 0), then the
            chunk-start score ``W[row_t] . x_t``.
        scan: ``(coefficients, targets, rates, config) -> (p, h)``: the sequential loop;
            ``p [T, CK]`` the clipped outputs and ``h [T, CK]`` each step's ``lr (y - p)``
            (that is ``-g``).
        excursions: ``(flat_rows, h, x, shared, neurons, table_rows) -> [C*K*R]``: per table
            row, ``sum_t |g_t| max|x_t|`` over the chunk's steps that hit it.
        largest: ``(rows [U, I]) -> [U]``: the largest ``|w|`` of each row.
        add_steps: ``(wf, flat_rows, h, x, shared) -> None``: adds each step's ``h_t x_t``
            into the rows it hit, in place.
        replay: ``(wf, x, rows, targets, rates, config) -> p [T, CK]``: the chunk one example
            at a time by the port's per-step update (clip included), in place.
        repeat: ``(targets [T, C], neurons) -> [T, CK]``: each class's target per neuron.
        concatenate: ``(parts) -> array``: the parts joined along the first axis.
        next_inputs: ``(p [T, CK], shape, config) -> [T, C, K (+1)]``: the next layer's input
            logits, ``shape = (T, C, K)``, bias appended when ``config.bias``.
    """

    coefficients: Callable[..., Array]
    scan: Callable[..., tuple[Array, Array]]
    excursions: Callable[..., Array]
    largest: Callable[[Array], Array]
    add_steps: Callable[..., None]
    replay: Callable[..., Array]
    repeat: Callable[[Array, int], Array]
    concatenate: Callable[[list], Array]
    next_inputs: Callable[..., Array]


def use_chunked(config, steps: int) -> bool:
    """Whether a stream of ``steps`` examples learns in chunks (else one example at a time).

    Args:
        config: the network's config.
        steps: the stream's length.

    Returns:
        True with at most :data:`MAX_ROWS` rows per neuron and :data:`MIN_STEPS` examples.

    Example:
        >>> use_chunked(config, 1000)  # doctest: +SKIP
        True
    """
    return config.num_contexts <= MAX_ROWS and steps >= MIN_STEPS


class Backoff:
    """Per layer, how many more chunks go straight to the per-step replay, and the next skip.

    Example:
        >>> backoff = Backoff(2)
        >>> backoff.attempt(0)
        True
        >>> backoff.record(0, replayed=True)
        >>> backoff.attempt(0)
        False
    """

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


def layer_chunk(
    ops: ChunkOps, wf, x, rows, targets, rates, config, shared: bool, attempt: bool = True
) -> tuple[Array, bool]:
    """One layer over one chunk, in place on ``wf``: ``(p [T, CK], replayed)``.

    Args:
        ops: the port's arithmetic.
        wf: the layer's ``[C*K*R, I]`` table, updated in place.
        x: ``[T, I]`` shared inputs (first layer) or ``[T, C, I]`` one per class.
        rows: ``[T, C, K]`` flat row numbers (int64).
        targets: ``[T, CK]`` each neuron's 0/1 target.
        rates: ``[T]`` learning rates.
        config: the network's config.
        shared: whether ``x`` is shared by every class.
        attempt: False goes straight to the per-step replay.

    Returns:
        ``(p, replayed)``: the outputs and whether the chunk was learned one step at a time.
    """
    if not attempt:
        return ops.replay(wf, x, rows, targets, rates, config), True
    steps, classes, neurons = rows.shape
    flat_rows = rows.reshape(steps, classes * neurons)
    coefficients = ops.coefficients(wf, x, rows, shared)
    p, h = ops.scan(coefficients, targets, rates, config)
    excursion = ops.excursions(flat_rows, h, x, shared, neurons, wf.shape[0])
    touched = excursion > 0
    reach = ops.largest(wf[touched]) + excursion[touched]
    if bool((reach >= config.weight_clipping * (1.0 - CLIP_MARGIN)).any()):
        return ops.replay(wf, x, rows, targets, rates, config), True  # a clip may fire
    ops.add_steps(wf, flat_rows, h, x, shared)
    return p, False


def online_chunk(
    ops: ChunkOps, flat_weights, x0, rows, targets, rates, config, backoff: Backoff | None = None
) -> Array:
    """Exact online learning of one chunk, layer by layer, in place on ``flat_weights``.

    Args:
        ops, flat_weights, x0, rows, targets, rates, config: as for :func:`online_loop`, for
            the ``T`` examples of one chunk.
        backoff: the stream's :class:`Backoff` (None: every chunk tries the Gram form).

    Returns:
        ``[T, C]`` predictions made before each example's update.
    """
    x = x0
    p = None
    last = len(flat_weights) - 1
    steps = x0.shape[0]
    for layer, (wf, r) in enumerate(zip(flat_weights, rows, strict=True)):
        y = ops.repeat(targets, r.shape[2])  # [T, CK]
        # the first layer takes the whole chunk (its products cost less per example in long
        # chunks); deeper layers, whose cost is the per-step loop and the [T, CK, T]
        # coefficients, take it in parts of DEEP_CHUNK, one after the other
        part = steps if layer == 0 else DEEP_CHUNK
        outputs = []
        for a in range(0, steps, part):
            attempt = backoff is None or backoff.attempt(layer)
            out, replayed = layer_chunk(
                ops,
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
        p = ops.concatenate(outputs)
        if layer < last:  # the next layer's inputs [T, C, K (+1)]
            x = ops.next_inputs(p, r.shape, config)
    return p.reshape(targets.shape)


def online_loop(ops: ChunkOps, flat_weights, x0, rows, targets, rates, config) -> Array:
    """:func:`online_chunk` over a stream in chunks of :data:`CHUNK`; returns ``p [T, C]``.

    Args:
        ops: the port's arithmetic.
        flat_weights: per layer ``[C*K*R, I]``, written in place.
        x0: ``[T, I_0]`` first-layer input logits.
        rows: per layer ``[T, C, K]`` flat row numbers (int64).
        targets: ``[T, C]`` 0/1 targets in ``config.dtype``.
        rates: ``[T]`` learning rates (0 for padding).
        config: the network's config.

    Returns:
        ``[T, C]`` predictions made before each example's update (the exact online ones, up
        to float summation order).

    Example:
        >>> p = online_loop(gln_numpy.chunked.OPS, flat, x0, rows, targets, rates, config)
        ... # doctest: +SKIP
    """
    backoff = Backoff(len(flat_weights))
    parts = [
        online_chunk(
            ops,
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
    return ops.concatenate(parts)
