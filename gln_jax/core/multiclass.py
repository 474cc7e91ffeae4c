"""One-vs-all: one binary GLN per class, all classes in one vmapped computation.

A binary model (``num_classes == 2``) has a class axis of size 1 whose target is the label
itself; a model with ``num_classes > 2`` has one binary GLN per class, trained on the one-hot
targets ``label == c``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import jax
import jax.numpy as jnp

from gln_jax.core.shapes import ArrayLike, Int, Real, Shaped
from gln_jax.core.types import Array, GLNConfig


def over_classes(fn: Callable, in_axes: tuple, *, config: GLNConfig) -> Callable:
    """Vmaps a per-model function over the leading class axis of the state.

    Args:
        fn: a function of one binary model taking ``config`` as keyword.
        in_axes: ``jax.vmap`` axes of its positional arguments (0 for per-class arrays,
            ``None`` for what the classes share, such as the first layer's inputs).
        config: bound before vmapping.

    Returns:
        The vmapped function; its outputs have a leading class axis.
    """
    return jax.vmap(functools.partial(fn, config=config), in_axes=in_axes)


def class_targets(label: Shaped[ArrayLike, ""], config: GLNConfig) -> Int[jax.Array, " C"]:
    """Binary target of every one-vs-all model for one example.

    Args:
        label: scalar class label (bool or int).
        config: the network's config.

    Returns:
        ``[C]`` int32: ``[label]`` for a binary model, ``one_hot(label)`` otherwise.
    """
    label = jnp.asarray(label).astype(jnp.int32)
    if config.num_classes == 2:
        return label[None]
    return (jnp.arange(config.num_classes, dtype=jnp.int32) == label).astype(jnp.int32)


def batch_class_targets(labels: Array, config: GLNConfig) -> jax.Array:
    """:func:`class_targets` of a batch: ``[B]`` labels -> ``[B, C]`` int32 targets."""
    return jax.vmap(lambda label: class_targets(label, config))(jnp.asarray(labels))


def predict_classes(
    probabilities: Real[ArrayLike, "B C"], *, config: GLNConfig
) -> Shaped[ArrayLike, " B"]:
    """Class predictions from per-class probabilities.

    Args:
        probabilities: ``[B, C]`` outputs of :func:`gln_jax.apply` (vmapped).
        config: the network's config.

    Returns:
        ``[B]`` bools (``p > 0.5``) for a binary model, else int argmax over classes. Works on
        NumPy and JAX arrays alike.
    """
    if config.num_classes == 2:
        return probabilities[:, 0] > 0.5
    return probabilities.argmax(axis=-1)
