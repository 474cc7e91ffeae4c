"""Drivers over a stream of examples in PyTorch: exact online learning and batched learning.

As in :mod:`gln_jax.core.scan`, the gates depend only on the examples and the fixed hyperplanes,
so the context indices (one matrix product), the flat row numbers, the first layer's input
logits and the class targets of a whole chunk are computed before the loop. Exact online
learning then runs in the Gram chunks of :mod:`gln_torch.chunked` (layer by layer, six small
kernels per layer and step) where :func:`gln_torch.chunked.use_chunked` allows, else one
example at a time with a few kernels per layer (``index_select``, a matrix-vector product, the
elementwise maths, ``index_copy_``); either way on a private clone of the weights, in place.

The host-side driver that feeds a long stream through the same loops in fixed-size chunks is
:func:`gln_torch.stream.fit_stream`.
"""

from __future__ import annotations

import torch

from gln_torch import chunked, numerics
from gln_torch.gating import batch_context_indices
from gln_torch.multiclass import batch_class_targets
from gln_torch.network import (
    StepBuffers,
    batch_step,
    clone_weights,
    flat_rows,
    flatten,
    input_logits,
    online_step,
    state_device,
    to_tensor,
    with_weights,
)
from gln_torch.types import Array, GLNConfig, GLNState, as_tensor, torch_dtype


def _online_loop(flat_weights, x0, rows, targets, rates, config: GLNConfig) -> torch.Tensor:
    """Exact online updates of ``T`` examples in order, in place; returns ``p [T, C]``.

    Args:
        flat_weights: per layer ``[C*K*R, I]``.
        x0: ``[T, I_0]`` input logits.
        rows: per layer ``[T, C, K]`` flat row numbers.
        targets: ``[T, C]`` targets in ``config.dtype``.
        rates: ``[T]`` rates in ``config.dtype``.
        config: the network's config.
    """
    steps = x0.shape[0]
    if steps == 0:
        return x0.new_empty((0, config.num_models))
    if chunked.use_chunked(config, steps, flat_weights[0]):  # Gram chunks, layer by layer
        return chunked.online_loop(flat_weights, x0, rows, targets, rates, config)
    # Views of every example made at once: the loop itself only launches kernels.
    per_layer = [r.reshape(steps, -1).unbind(0) for r in rows]
    per_example = zip(
        x0.unbind(0),
        zip(*per_layer, strict=True),
        targets[:, :, None].unbind(0),
        rates.unbind(0),
        strict=True,
    )
    buffers = StepBuffers(flat_weights, config)
    out = [online_step(flat_weights, x, r, y, lr, config, buffers) for x, r, y, lr in per_example]
    return torch.stack(out)


def _prepare(state: GLNState, inputs, side_info, targets, rates, config: GLNConfig):
    """Vectorised per-stream work: input logits, flat rows, class targets, rates."""
    device = state_device(state)
    contexts = batch_context_indices(state.layers, side_info, config=config)
    targets = batch_class_targets(as_tensor(targets, device=device), config)
    return (
        input_logits(to_tensor(inputs, config, device), config),
        flat_rows(contexts, config),
        targets.to(torch_dtype(config)),
        to_tensor(rates, config, device).reshape(-1),
    )


def _masked(rates: torch.Tensor, mask) -> tuple[torch.Tensor, int]:
    """Rates with masked-out examples at 0, and the number of examples kept."""
    if mask is None:
        return rates, rates.shape[0]
    mask = as_tensor(mask, dtype=torch.bool, device=rates.device).reshape(-1)
    return torch.where(mask, rates, torch.zeros_like(rates)), int(mask.sum())


@torch.no_grad()
def scan_update(
    state: GLNState,
    inputs: Array,
    side_info: Array,
    targets: Array,
    learning_rates: Array,
    *,
    config: GLNConfig,
    mask: Array | None = None,
) -> tuple[GLNState, torch.Tensor]:
    """Exact online learning over a stream: :func:`gln_torch.update` once per example.

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
        >>> state, p = scan_update(state, x, x, y, torch.full((len(y),), 1e-3), config=config)
        ... # doctest: +SKIP
    """
    x0, rows, target_rows, rates = _prepare(
        state, inputs, side_info, targets, learning_rates, config
    )
    rates, count = _masked(rates, mask)
    weights = clone_weights(state, config)
    p = _online_loop(flatten(weights), x0, rows, target_rows, rates, config)
    return with_weights(state, weights, numerics.advance_step(state.step, count)), p


@torch.no_grad()
def scan_batch_update(
    state: GLNState,
    inputs: Array,
    side_info: Array,
    targets: Array,
    learning_rates: Array,
    *,
    config: GLNConfig,
    mask: Array | None = None,
) -> tuple[GLNState, torch.Tensor]:
    """Batched learning over a stream: :func:`gln_torch.batch_update` once per batch.

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
    device = state_device(state)
    targets = as_tensor(targets, device=device)
    s, b = targets.shape
    x0, rows, target_rows, rates = _prepare(
        state,
        to_tensor(inputs, config, device).reshape(s * b, -1),
        to_tensor(side_info, config, device).reshape(s * b, -1),
        targets.reshape(-1),
        learning_rates,
        config,
    )
    rates, count = _masked(rates, mask)
    weights = clone_weights(state, config)
    flat = flatten(weights)
    out = []
    for i in range(s):
        part = slice(i * b, (i + 1) * b)
        out.append(
            batch_step(
                flat,
                x0[part],
                tuple(r[part] for r in rows),
                target_rows[part],
                rates[part],
                config,
            )
        )
    p = torch.stack(out) if out else x0.new_empty((0, b, config.num_models))
    return with_weights(state, weights, numerics.advance_step(state.step, count)), p
