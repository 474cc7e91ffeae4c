"""One-vs-all in NumPy: every state array carries a leading class axis, so the maths is
vectorised over classes directly.

A binary model (``num_classes == 2``) has a class axis of size 1 whose target is the label
itself; a model with ``num_classes > 2`` trains one binary GLN per class on ``label == c``.
"""

from __future__ import annotations

import numpy as np

from gln_numpy.types import Array, GLNConfig


def class_targets(label: Array, config: GLNConfig) -> np.ndarray:
    """Binary target of every one-vs-all model for one example.

    Args:
        label: scalar class label (bool or int).
        config: the network's config.

    Returns:
        ``[C]`` int32: ``[label]`` for a binary model, ``one_hot(label)`` otherwise.

    Example:
        >>> class_targets(2, make_config([1], 3, num_classes=4))  # doctest: +SKIP
        array([0, 0, 1, 0], dtype=int32)
    """
    label = np.asarray(label).astype(np.int32)
    if config.num_classes == 2:
        return label[None]
    return (np.arange(config.num_classes, dtype=np.int32) == label).astype(np.int32)


def batch_class_targets(labels: Array, config: GLNConfig) -> np.ndarray:
    """:func:`class_targets` of a batch: ``[B]`` labels -> ``[B, C]`` int32 targets."""
    labels = np.asarray(labels).astype(np.int32).reshape(-1)
    if config.num_classes == 2:
        return labels[:, None]
    classes = np.arange(config.num_classes, dtype=np.int32)
    return (labels[:, None] == classes[None, :]).astype(np.int32)


def predict_classes(probabilities: Array, *, config: GLNConfig) -> np.ndarray:
    """Class predictions from per-class probabilities.

    Args:
        probabilities: ``[B, C]`` probabilities.
        config: the network's config.

    Returns:
        ``[B]`` bools (``p > 0.5``) for a binary model, else the int argmax over classes.

    Example:
        >>> predict_classes(np.array([[0.7], [0.2]]), config=binary_config)  # doctest: +SKIP
        array([ True, False])
    """
    probabilities = np.asarray(probabilities)
    if config.num_classes == 2:
        return probabilities[:, 0] > 0.5
    return probabilities.argmax(axis=-1)
