"""Logit, sigmoid and clipping in TensorFlow: the only home of eps and clip arithmetic in the
port. Every function keeps the dtype of its tensor argument."""

from __future__ import annotations

import tensorflow as tf


def clip_probability(p: tf.Tensor, eps: float) -> tf.Tensor:
    """Clips probabilities into ``[eps, 1 - eps]``.

    Args:
        p: probabilities, any shape.
        eps: ``pred_clipping``, in (0, 0.5).

    Returns:
        ``p`` clipped, same shape and dtype.
    """
    return tf.clip_by_value(p, eps, 1.0 - eps)


def logit(p: tf.Tensor) -> tf.Tensor:
    """``log(p) - log1p(-p)`` of clipped probabilities, any shape."""
    return tf.math.log(p) - tf.math.log1p(-p)


def sigmoid(x: tf.Tensor) -> tf.Tensor:
    """Numerically stable ``1 / (1 + exp(-x))``, any shape."""
    return tf.math.sigmoid(x)


def clip_weights(w: tf.Tensor, weight_clipping: float) -> tf.Tensor:
    """Clips weights into ``[-weight_clipping, weight_clipping]``, any shape."""
    return tf.clip_by_value(w, -weight_clipping, weight_clipping)


#: The largest count an int32 step counter holds (the reference's ``STEP_MAX``).
STEP_MAX = 2**31 - 1


def advance_step(step, count) -> tf.Tensor:
    """``step + count`` as an int32 tensor, saturating at :data:`STEP_MAX` (the reference's
    ``numerics.advance_step``); summed in int64."""
    total = tf.cast(step, tf.int64) + tf.cast(count, tf.int64)
    return tf.cast(tf.minimum(total, STEP_MAX), tf.int32)
