"""Drivers over a stream of examples in NumPy: exact online learning and batched learning.

As in :mod:`gln_jax.core.scan`, the gates depend only on the examples and the fixed hyperplanes,
so the context indices (and the first layer's input logits) of a whole chunk come from one
vectorised pass before the loop. Exact online learning then runs in the Gram chunks of
:mod:`gln_numpy.chunked` (layer by layer) where :func:`gln_numpy.chunked.use_chunked` allows,
else one example at a time, reading and writing only the selected weight rows; either way in
place, on a private copy of the state.

The host-side driver that feeds a long stream through the same loops in fixed-size chunks is
:func:`gln_numpy.stream.fit_stream`.
"""

from __future__ import annotations

import numpy as np

from gln_numpy import chunked, numerics
from gln_numpy.gating import batch_context_indices
from gln_numpy.multiclass import batch_class_targets
from gln_numpy.network import (
    StepBuffers,
    batch_step,
    copy_weights,
    flat_rows,
    flatten,
    input_logits,
    online_step,
    with_weights,
)
from gln_numpy.types import Array, GLNConfig, GLNState


def _online_loop(flat_weights, x0, rows, targets, rates, config: GLNConfig) -> np.ndarray:
    """:func:`online_step` over ``T`` examples in order; returns ``p [T, C]``.

    Streams that :func:`gln_numpy.chunked.use_chunked` accepts learn in Gram chunks, layer by
    layer (the same exact online result, up to float summation order).
    """
    if chunked.use_chunked(config, x0.shape[0]):
        return chunked.online_loop(flat_weights, x0, rows, targets, rates, config)
    out = np.empty((x0.shape[0], config.num_models), config.dtype)
    buffers = StepBuffers(flat_weights, rows, config)
    for t in range(x0.shape[0]):
        out[t] = online_step(
            flat_weights, x0[t], tuple(r[t] for r in rows), targets[t], rates[t], config, buffers
        )
    return out


def _prepare(state: GLNState, inputs, side_info, targets, rates, config: GLNConfig):
    """Vectorised per-stream work: input logits, flat rows, class targets, rates."""
    dtype = np.dtype(config.dtype)
    contexts = batch_context_indices(state.layers, side_info, config=config)
    return (
        input_logits(inputs, config),
        flat_rows(contexts, config),
        batch_class_targets(targets, config).astype(dtype),
        np.asarray(rates, dtype).reshape(-1),
    )


def scan_update(
    state: GLNState,
    inputs: Array,
    side_info: Array,
    targets: Array,
    learning_rates: Array,
    *,
    config: GLNConfig,
    mask: Array | None = None,
) -> tuple[GLNState, np.ndarray]:
    """Exact online learning over a stream: :func:`gln_numpy.update` once per example.

    Args:
        state: the GLN state (not modified).
        inputs: ``[T, P]`` base probabilities.
        side_info: ``[T, N]`` raw examples.
        targets: ``[T]`` class labels.
        learning_rates: ``[T]`` rate of each example.
        config: the network's config.
        mask: optional ``[T]`` bools; a masked-out example learns with rate 0 and is not
            counted in ``step`` (padding).

    Returns:
        ``(state, p)`` with ``p [T, C]`` the prediction made before each example's update.

    Example:
        >>> state, p = scan_update(state, x, x, y, np.full(len(y), 1e-3), config=config)
        ... # doctest: +SKIP
    """
    x0, rows, target_rows, rates = _prepare(
        state, inputs, side_info, targets, learning_rates, config
    )
    count = rates.shape[0]
    if mask is not None:
        mask = np.asarray(mask, bool).reshape(-1)
        rates = np.where(mask, rates, rates.dtype.type(0))
        count = int(mask.sum())
    weights = copy_weights(state, config)
    p = _online_loop(flatten(weights), x0, rows, target_rows, rates, config)
    return with_weights(state, weights, numerics.advance_step(state.step, count)), p


def scan_batch_update(
    state: GLNState,
    inputs: Array,
    side_info: Array,
    targets: Array,
    learning_rates: Array,
    *,
    config: GLNConfig,
    mask: Array | None = None,
) -> tuple[GLNState, np.ndarray]:
    """Batched learning over a stream: :func:`gln_numpy.batch_update` once per batch.

    Args:
        state: the GLN state (not modified).
        inputs: ``[S, B, P]`` base probabilities, ``S`` batches of ``B``.
        side_info: ``[S, B, N]`` raw examples.
        targets: ``[S, B]`` class labels.
        learning_rates: ``[S, B]``.
        config: the network's config.
        mask: optional ``[S, B]`` bools; masked-out examples contribute nothing.

    Returns:
        ``(state, p)`` with ``p [S, B, C]``.

    Example:
        >>> state, p = scan_batch_update(state, xs, xs, ys, rates, config=config)
        ... # doctest: +SKIP
    """
    targets = np.asarray(targets)
    s, b = targets.shape
    inputs = np.asarray(inputs).reshape(s * b, -1)
    side_info = np.asarray(side_info).reshape(s * b, -1)
    x0, rows, target_rows, rates = _prepare(
        state, inputs, side_info, targets.reshape(-1), learning_rates, config
    )
    count = s * b
    if mask is not None:
        mask = np.asarray(mask, bool).reshape(-1)
        rates = np.where(mask, rates, rates.dtype.type(0))
        count = int(mask.sum())
    weights = copy_weights(state, config)
    flat = flatten(weights)
    out = np.empty((s, b, config.num_models), config.dtype)
    for i in range(s):
        part = slice(i * b, (i + 1) * b)
        out[i] = batch_step(
            flat, x0[part], tuple(r[part] for r in rows), target_rows[part], rates[part], config
        )
    return with_weights(state, weights, numerics.advance_step(state.step, count)), out
