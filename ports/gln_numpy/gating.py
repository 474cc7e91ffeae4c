"""Hyperplane gating in NumPy: side information -> one context index per neuron.

Each neuron owns ``context_map_size`` hyperplanes ``(v_j, b_j)`` over the side information
``z``; its context index is ``sum_j 2**j * [v_j . z > b_j]`` (strict ``>``). The indices of a
whole batch, every layer and class, come from one matrix product.
"""

from __future__ import annotations

import numpy as np

from gln_numpy.numerics import matmul
from gln_numpy.types import Array, GLNConfig, LayerState


def _bits_to_index(bits: np.ndarray) -> np.ndarray:
    """``[..., context_map_size]`` bools -> ``[...]`` int32 indices (bit j has weight 2**j)."""
    powers = np.left_shift(1, np.arange(bits.shape[-1], dtype=np.int32))
    return np.sum(bits.astype(np.int32) * powers, axis=-1, dtype=np.int32)


def batch_context_indices(
    layers: tuple[LayerState, ...], side_info: Array, *, config: GLNConfig
) -> tuple[np.ndarray, ...]:
    """Context indices of a batch, all layers and classes from one matrix product.

    Args:
        layers: the state's layers (hyperplanes ``[C, K, H, N]``, offsets ``[C, K, H]``).
        side_info: ``[B, N]`` raw examples.
        config: the network's config.

    Returns:
        One int32 array ``[B, C, K_l]`` per layer, values in ``[0, 2**context_map_size)``.

    Example:
        >>> contexts = batch_context_indices(state.layers, x_batch, config=config)
        ... # doctest: +SKIP
    """
    dtype = np.dtype(config.dtype)
    side_info = np.asarray(side_info, dtype=dtype)
    batch = side_info.shape[0]
    if config.context_map_size == 0:
        return tuple(np.zeros((batch, config.num_models, k), np.int32) for k in config.layer_sizes)
    planes = np.concatenate(
        [
            np.asarray(layer.hyperplanes, dtype).reshape(-1, config.side_info_size)
            for layer in layers
        ]
    )
    offsets = np.concatenate(
        [np.asarray(layer.hyperplane_bias, dtype).reshape(-1) for layer in layers]
    )
    projections = matmul(side_info, planes.T)  # [B, sum C*K*m]
    bits = projections > offsets[None, :]
    out, start = [], 0
    for layer in layers:
        shape = np.shape(layer.hyperplane_bias)  # [C, K, m]
        size = shape[0] * shape[1] * shape[2]
        out.append(_bits_to_index(bits[:, start : start + size].reshape(batch, *shape)))
        start += size
    return tuple(out)


def context_indices(
    layers: tuple[LayerState, ...], side_info: Array, *, config: GLNConfig
) -> tuple[np.ndarray, ...]:
    """Context index of every neuron for one example.

    Args:
        layers: the state's layers.
        side_info: ``[N]`` raw example.
        config: the network's config.

    Returns:
        One int32 array ``[C, K_l]`` per layer.

    Example:
        >>> contexts = context_indices(state.layers, x, config=config)  # doctest: +SKIP
    """
    batched = batch_context_indices(layers, np.asarray(side_info)[None], config=config)
    return tuple(c[0] for c in batched)
