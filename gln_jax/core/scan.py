"""Pure ``lax.scan`` drivers: exact online and batched learning over a stream of examples.

The gates depend only on the examples and the fixed hyperplanes, so the context indices of a
whole stream come from one matrix product before the scan; inside the scan only the selected
weight rows are read and written.

Both drivers are pure and work under ``jit`` and ``vmap``. The host-side driver that feeds
a long stream through them in fixed-size chunks is :func:`gln_jax.core.stream.fit_stream`;
the Gram-chunk route of exact online learning, :mod:`gln_jax.core.chunked`, replays a chunk
with :func:`scan_update` when a weight clip may have fired.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from gln_jax.core.gating import batch_context_indices
from gln_jax.core.network import batch_update_from_contexts, update_from_contexts
from gln_jax.core.types import Array, GLNConfig, GLNState


def scan_update(
    state: GLNState,
    inputs: Array,
    side_info: Array,
    targets: Array,
    learning_rates: Array,
    *,
    config: GLNConfig,
    mask: Array | None = None,
) -> tuple[GLNState, jax.Array]:
    """Exact online learning over a stream: :func:`gln_jax.update` once per example.

    Args:
        state: the GLN state.
        inputs: ``[T, P]`` base probabilities.
        side_info: ``[T, N]`` raw examples.
        targets: ``[T]`` class labels.
        learning_rates: ``[T]`` rate of each example.
        config: the network's config.
        mask: optional ``[T]`` bools; a masked-out example changes nothing (padding).

    Returns:
        ``(state, p)`` with ``p [T, C]`` the prediction made before each example's update.

    Example:
        >>> state, p = scan_update(state, x, x, y, jnp.full(len(y), 1e-3), config=config)
        ... # doctest: +SKIP
    """
    targets = jnp.asarray(targets)
    if mask is None:
        mask = jnp.ones(targets.shape, bool)
    contexts = batch_context_indices(state.layers, side_info, config=config)

    def body(carry, xs):
        x, ctx, target, lr, keep = xs
        lr = jnp.where(keep, jnp.asarray(lr, config.dtype), 0)
        return update_from_contexts(
            carry, x, ctx, target, lr, config=config, count=keep.astype(jnp.int32)
        )

    xs = (jnp.asarray(inputs), contexts, targets, jnp.asarray(learning_rates), mask)
    return jax.lax.scan(body, state, xs)


def scan_batch_update(
    state: GLNState,
    inputs: Array,
    side_info: Array,
    targets: Array,
    learning_rates: Array,
    *,
    config: GLNConfig,
    mask: Array | None = None,
) -> tuple[GLNState, jax.Array]:
    """Batched learning over a stream: :func:`gln_jax.batch_update` once per batch.

    Args:
        state: the GLN state.
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
    targets = jnp.asarray(targets)
    side_info = jnp.asarray(side_info)
    if mask is None:
        mask = jnp.ones(targets.shape, bool)
    s, b = targets.shape
    flat = batch_context_indices(state.layers, side_info.reshape(s * b, -1), config=config)
    contexts = tuple(c.reshape(s, b, *c.shape[1:]) for c in flat)

    def body(carry, xs):
        x, ctx, target, lr, keep = xs
        return batch_update_from_contexts(carry, x, ctx, target, lr, config=config, mask=keep)

    xs = (jnp.asarray(inputs), contexts, targets, jnp.asarray(learning_rates), mask)
    return jax.lax.scan(body, state, xs)
