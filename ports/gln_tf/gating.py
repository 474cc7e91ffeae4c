"""Hyperplane gating in TensorFlow: side information -> one context index per neuron.

Each neuron owns ``context_map_size`` hyperplanes ``(v_j, b_j)`` over the side information
``z``; its context index is ``sum_j 2**j * [v_j . z > b_j]`` (strict ``>``). The indices of a
whole batch, every layer and class, come from one matrix product.

The gates must be computed at full precision (the reference asks for ``Precision.HIGHEST``).
TensorFlow runs float32 matrix products on recent GPUs in TF32 unless
``tf.config.experimental.enable_tensor_float_32_execution(False)``: where that may happen (a
GPU is visible and TF32 is enabled), the projections are computed in float64 instead. No global
setting is changed.
"""

from __future__ import annotations

import tensorflow as tf

from gln_tf.types import Array, GLNConfig, LayerState, tf_dtype


def _bits_to_index(bits: tf.Tensor) -> tf.Tensor:
    """``[..., context_map_size]`` bools -> ``[...]`` int32 indices (bit j has weight 2**j)."""
    powers = tf.bitwise.left_shift(1, tf.range(bits.shape[-1], dtype=tf.int32))
    return tf.reduce_sum(tf.cast(bits, tf.int32) * powers, axis=-1)


def tf32_possible(dtype: tf.DType) -> bool:
    """Whether a float32 matrix product might run with reduced (TF32) precision."""
    return (
        dtype == tf.float32
        and tf.config.experimental.tensor_float_32_execution_enabled()
        and bool(tf.config.list_logical_devices("GPU"))
    )


def projections(planes: tf.Tensor, side_info: tf.Tensor) -> tf.Tensor:
    """``[B, N] @ [P, N].T -> [B, P]`` at full precision (see the module docstring)."""
    if tf32_possible(planes.dtype):
        return tf.matmul(
            tf.cast(side_info, tf.float64), tf.cast(planes, tf.float64), transpose_b=True
        )
    return tf.matmul(side_info, planes, transpose_b=True)


def batch_context_indices(
    layers: tuple[LayerState, ...], side_info: Array, *, config: GLNConfig
) -> tuple[tf.Tensor, ...]:
    """Context indices of a batch, all layers and classes from one matrix product.

    Args:
        layers: the state's layers (hyperplanes ``[C, K, H, N]``, offsets ``[C, K, H]``).
        side_info: ``[B, N]`` raw examples.
        config: the network's config.

    Returns:
        One int32 tensor ``[B, C, K_l]`` per layer, values in ``[0, 2**context_map_size)``.

    Example:
        >>> contexts = batch_context_indices(state.layers, x_batch, config=config)
        ... # doctest: +SKIP
    """
    dtype = tf_dtype(config)
    side_info = tf.convert_to_tensor(side_info, dtype=dtype)
    batch = tf.shape(side_info)[0]
    m = config.context_map_size
    if m == 0:
        return tuple(
            tf.zeros(tf.stack([batch, config.num_models, k]), tf.int32) for k in config.layer_sizes
        )
    planes = tf.concat(
        [
            tf.reshape(tf.cast(layer.hyperplanes, dtype), [-1, config.side_info_size])
            for layer in layers
        ],
        axis=0,
    )
    offsets = tf.concat(
        [tf.reshape(tf.cast(layer.hyperplane_bias, dtype), [-1]) for layer in layers], axis=0
    )
    product = projections(planes, side_info)
    bits = product > tf.cast(offsets, product.dtype)[None, :]
    out, start = [], 0
    for k in config.layer_sizes:
        size = config.num_models * k * m
        layer_bits = tf.reshape(bits[:, start : start + size], [-1, config.num_models, k, m])
        out.append(_bits_to_index(layer_bits))
        start += size
    return tuple(out)


def context_indices(
    layers: tuple[LayerState, ...], side_info: Array, *, config: GLNConfig
) -> tuple[tf.Tensor, ...]:
    """Context index of every neuron for one example.

    Args:
        layers: the state's layers.
        side_info: ``[N]`` raw example.
        config: the network's config.

    Returns:
        One int32 tensor ``[C, K_l]`` per layer.

    Example:
        >>> contexts = context_indices(state.layers, x, config=config)  # doctest: +SKIP
    """
    side_info = tf.convert_to_tensor(side_info, dtype=tf_dtype(config))
    batched = batch_context_indices(layers, side_info[None], config=config)
    return tuple(c[0] for c in batched)
