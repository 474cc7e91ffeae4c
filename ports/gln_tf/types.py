"""Config and state of the TensorFlow port: the reference's NamedTuples with ``tf.Tensor``
leaves.

The port holds no randomness: a state comes from :func:`gln_jax.init` (or a checkpoint) and is
converted with :func:`from_reference`. Field names are the reference's, so one checkpoint format
serves every port.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from gln_jax.core.types import DTYPES as DTYPES
from gln_jax.core.types import Array as Array
from gln_jax.core.types import GLNConfig as GLNConfig
from gln_jax.core.types import GLNState as GLNState
from gln_jax.core.types import LayerState as LayerState
from gln_jax.core.types import make_config as make_config


def tf_dtype(config: GLNConfig) -> tf.DType:
    """The TensorFlow dtype of ``config.dtype`` (``tf.float32`` or ``tf.float64``)."""
    return tf.as_dtype(config.dtype)


def _numpy(leaf) -> np.ndarray:
    """A NumPy copy of a tensor, variable or array-like."""
    if isinstance(leaf, (tf.Tensor, tf.Variable)):
        return np.array(leaf.numpy(), copy=True)
    return np.array(leaf, copy=True)


def from_reference(state: GLNState, dtype=None) -> GLNState:
    """Copies a reference state (NumPy, JAX or TF leaves) into TF tensors.

    Args:
        state: a :class:`GLNState`.
        dtype: the float dtype of the weights and gating; ``None`` keeps theirs.

    Returns:
        A :class:`GLNState` of new tensors (``step`` an int32 scalar).

    Example:
        >>> state = from_reference(gln_jax.init(jax.random.key(0), config))  # doctest: +SKIP
    """
    dtype = None if dtype is None else tf.as_dtype(dtype)
    layers = tuple(
        LayerState(*(tf.constant(_numpy(leaf), dtype=dtype) for leaf in layer))
        for layer in state.layers
    )
    return GLNState(layers=layers, step=tf.constant(int(_numpy(state.step)), tf.int32))


def to_reference(state: GLNState) -> GLNState:
    """Copies a TF state into the reference layout (a :class:`GLNState` of NumPy arrays).

    Args:
        state: a state of tensors or variables.

    Returns:
        NumPy copies of every array; ``step`` an int32 scalar.
    """
    layers = tuple(LayerState(*(_numpy(leaf) for leaf in layer)) for layer in state.layers)
    return GLNState(layers=layers, step=np.asarray(_numpy(state.step), np.int32))
