"""Logit, sigmoid and clipping: the only home of eps and clip arithmetic in the reference."""

from __future__ import annotations

import jax
import jax.numpy as jnp


def clip_probability(p: jax.Array, eps: float) -> jax.Array:
    """Clips probabilities into ``[eps, 1 - eps]``.

    Args:
        p: probabilities, any shape.
        eps: ``pred_clipping``, in (0, 0.5).

    Returns:
        ``p`` clipped, same shape and dtype.
    """
    return jnp.clip(p, eps, 1.0 - eps)


def logit(p: jax.Array) -> jax.Array:
    """``log(p / (1 - p))`` of clipped probabilities, any shape."""
    return jnp.log(p) - jnp.log1p(-p)


def sigmoid(x: jax.Array) -> jax.Array:
    """Numerically stable ``1 / (1 + exp(-x))``, any shape."""
    return jax.nn.sigmoid(x)


def clip_weights(w: jax.Array, weight_clipping: float) -> jax.Array:
    """Clips weights into ``[-weight_clipping, weight_clipping]``, any shape."""
    return jnp.clip(w, -weight_clipping, weight_clipping)


#: The largest count an int32 step counter holds: counts stop here instead of wrapping.
STEP_MAX = 2**31 - 1


def advance_step(step: jax.Array, count) -> jax.Array:
    """``step + count`` for an int32 counter, saturating at :data:`STEP_MAX`.

    A state's ``step`` (and a transform's example count) stops at ``2**31 - 1`` rather than
    wrapping to a negative number; the facades keep the exact count on the host.

    Args:
        step: scalar int32, the counter.
        count: non-negative scalar int (traced or not), the examples to add.

    Returns:
        Scalar int32, ``min(step + count, STEP_MAX)``.
    """
    step = jnp.asarray(step, jnp.int32)
    return step + jnp.minimum(jnp.asarray(count, jnp.int32), STEP_MAX - step)
