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
import numpy as np

from gln_jax.core import checks, numerics
from gln_jax.core.gating import batch_context_indices
from gln_jax.core.network import (
    batch_update_from_contexts,
    check_examples,
    update_from_contexts,
)
from gln_jax.core.schedules import traced_rates
from gln_jax.core.shapes import ArrayLike, Bool, Float, Rate, Real, Shaped
from gln_jax.core.types import GLNConfig, GLNState


def example_steps(step, mask) -> jax.Array:
    """The step at which each example of a stream is learned: ``step`` plus the real
    (unmasked) examples before it, int32 of ``mask``'s shape (flattened order), saturating at
    :data:`~gln_jax.core.numerics.STEP_MAX` as the state's ``step`` does."""
    flat = jnp.asarray(mask, jnp.int32).reshape(-1)
    before = jnp.cumsum(flat) - flat
    step = jnp.asarray(step, jnp.int32)
    return numerics.advance_step(step, before).reshape(jnp.shape(mask))


def _check_mask(mask, shape, letters: str, function: str) -> None:
    if mask is not None and tuple(np.shape(mask)) != shape:
        raise ValueError(
            f"{function}: mask must have shape {letters} = {shape}, got {tuple(np.shape(mask))}"
        )


def scan_update(
    state: GLNState,
    inputs: Real[ArrayLike, "T P"],
    side_info: Real[ArrayLike, "T N"],
    targets: Shaped[ArrayLike, " T"],
    learning_rates: Real[ArrayLike, " T"] | Rate,
    *,
    config: GLNConfig,
    mask: Bool[ArrayLike, " T"] | None = None,
) -> tuple[GLNState, Float[jax.Array, "T C"]]:
    """Exact online learning over a stream: :func:`gln_jax.update` once per example.

    Args:
        state: the GLN state.
        inputs: ``[T, P]`` base probabilities.
        side_info: ``[T, N]`` raw examples.
        targets: ``[T]`` class labels.
        learning_rates: ``[T]`` rate of each example, one scalar rate for all of them, or a
            schedule: a traceable callable of the step, evaluated at the step each example is
            learned at (``state.step`` plus the real examples before it).
        config: the network's config.
        mask: optional ``[T]`` bools; a masked-out example changes nothing (padding).

    Returns:
        ``(state, p)`` with ``p [T, C]`` the prediction made before each example's update.

    Raises:
        ValueError, TypeError: while tracing, naming the argument (see :func:`gln_jax.update`).

    Example:
        >>> state, p = scan_update(state, x, x, y, jnp.full(len(y), 1e-3), config=config)
        ... # doctest: +SKIP
    """
    length = check_examples("scan_update", state, inputs, side_info, config, lead="T")
    checks.check_array(targets, (length,), "[T]", function="scan_update", name="targets")
    _check_mask(mask, (length,), "[T]", "scan_update")
    targets = jnp.asarray(targets)
    if mask is None:
        mask = jnp.ones(targets.shape, bool)
    learning_rates = traced_rates(
        learning_rates,
        example_steps(state.step, mask),
        config.dtype,
        function="scan_update",
        name="learning_rates",
        letters="[T]",
    )
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
    inputs: Real[ArrayLike, "S B P"],
    side_info: Real[ArrayLike, "S B N"],
    targets: Shaped[ArrayLike, "S B"],
    learning_rates: Real[ArrayLike, "S B"] | Rate,
    *,
    config: GLNConfig,
    mask: Bool[ArrayLike, "S B"] | None = None,
) -> tuple[GLNState, Float[jax.Array, "S B C"]]:
    """Batched learning over a stream: :func:`gln_jax.batch_update` once per batch.

    Args:
        state: the GLN state.
        inputs: ``[S, B, P]`` base probabilities, ``S`` batches of ``B``.
        side_info: ``[S, B, N]`` raw examples.
        targets: ``[S, B]`` class labels.
        learning_rates: ``[S, B]``, one scalar rate for all, or a traceable schedule of the
            step (evaluated at each example's step, as in :func:`scan_update`).
        config: the network's config.
        mask: optional ``[S, B]`` bools; masked-out examples contribute nothing.

    Returns:
        ``(state, p)`` with ``p [S, B, C]``.

    Raises:
        ValueError, TypeError: while tracing, naming the argument (see :func:`gln_jax.update`).

    Example:
        >>> state, p = scan_batch_update(state, xs, xs, ys, rates, config=config)
        ... # doctest: +SKIP
    """
    function = "scan_batch_update"
    checks.check_state(state, config, function=function)
    for name, value, width, letters in (
        ("inputs", inputs, config.base_prediction_size, "[S, B, P]"),
        ("side_info", side_info, config.side_info_size, "[S, B, N]"),
    ):
        checks.check_array(value, (None, None, width), letters, function=function, name=name)
    shape = tuple(np.shape(inputs))[:2]
    if tuple(np.shape(side_info))[:2] != shape:
        raise ValueError(
            f"{function}: side_info's [S, B] = {tuple(np.shape(side_info))[:2]} differs from "
            f"inputs' {shape}"
        )
    checks.check_array(targets, shape, "[S, B]", function=function, name="targets")
    _check_mask(mask, shape, "[S, B]", function)
    targets = jnp.asarray(targets)
    side_info = jnp.asarray(side_info)
    if mask is None:
        mask = jnp.ones(targets.shape, bool)
    learning_rates = traced_rates(
        learning_rates,
        example_steps(state.step, mask),
        config.dtype,
        function=function,
        name="learning_rates",
        letters="[S, B]",
    )
    s, b = targets.shape
    flat = batch_context_indices(state.layers, side_info.reshape(s * b, -1), config=config)
    contexts = tuple(c.reshape(s, b, *c.shape[1:]) for c in flat)

    def body(carry, xs):
        x, ctx, target, lr, keep = xs
        return batch_update_from_contexts(carry, x, ctx, target, lr, config=config, mask=keep)

    xs = (jnp.asarray(inputs), contexts, targets, jnp.asarray(learning_rates), mask)
    return jax.lax.scan(body, state, xs)
