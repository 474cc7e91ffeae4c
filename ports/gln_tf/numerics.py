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
