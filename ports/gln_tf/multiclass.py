"""One-vs-all in TensorFlow: every state tensor carries a leading class axis, so the maths is
vectorised over classes directly.

A binary model (``num_classes == 2``) has a class axis of size 1 whose target is the label
itself; a model with ``num_classes > 2`` trains one binary GLN per class on ``label == c``.
"""

from __future__ import annotations

import tensorflow as tf

from gln_tf.types import Array, GLNConfig


def _labels(value) -> tf.Tensor:
    value = tf.convert_to_tensor(value)
    return tf.cast(value, tf.int32)


def class_targets(label: Array, config: GLNConfig) -> tf.Tensor:
    """Binary target of every one-vs-all model for one example.

    Args:
        label: scalar class label (bool or int).
        config: the network's config.

    Returns:
        ``[C]`` int32: ``[label]`` for a binary model, ``one_hot(label)`` otherwise.

    Example:
        >>> class_targets(2, make_config([1], 3, num_classes=4))  # doctest: +SKIP
        <tf.Tensor: shape=(4,), dtype=int32, numpy=array([0, 0, 1, 0], dtype=int32)>
    """
    label = tf.reshape(_labels(label), [])
    if config.num_classes == 2:
        return label[None]
    return tf.cast(tf.range(config.num_classes, dtype=tf.int32) == label, tf.int32)


def batch_class_targets(labels: Array, config: GLNConfig) -> tf.Tensor:
    """:func:`class_targets` of a batch: ``[B]`` labels -> ``[B, C]`` int32 targets."""
    labels = tf.reshape(_labels(labels), [-1])
    if config.num_classes == 2:
        return labels[:, None]
    classes = tf.range(config.num_classes, dtype=tf.int32)
    return tf.cast(labels[:, None] == classes[None, :], tf.int32)


def predict_classes(probabilities: Array, *, config: GLNConfig) -> tf.Tensor:
    """Class predictions from per-class probabilities.

    Args:
        probabilities: ``[B, C]`` probabilities.
        config: the network's config.

    Returns:
        ``[B]`` bools (``p > 0.5``) for a binary model, else the int64 argmax over classes.

    Example:
        >>> predict_classes(tf.constant([[0.7], [0.2]]), config=binary_config)
        ... # doctest: +SKIP
    """
    probabilities = tf.convert_to_tensor(probabilities)
    if config.num_classes == 2:
        return probabilities[:, 0] > 0.5
    return tf.argmax(probabilities, axis=-1)
