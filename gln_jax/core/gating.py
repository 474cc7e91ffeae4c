"""Hyperplane gating: side information -> one context index per neuron.

Each neuron owns ``context_map_size`` hyperplanes ``(v_j, b_j)`` over the side information ``z``;
its context index is ``sum_j 2**j * [v_j . z > b_j]``. The gates depend only on the example and
the fixed hyperplanes, so the indices of a whole batch come from one matrix product.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from gln_jax.core.shapes import ArrayLike, Int, Real
from gln_jax.core.types import GLNConfig, LayerState

_HIGHEST = jax.lax.Precision.HIGHEST  # no TF32/bf16 passes on GPU/TPU: gates must be exact


def _bits_to_index(bits: jax.Array) -> jax.Array:
    """``[..., context_map_size]`` bools -> ``[...]`` int32 indices (bit j has weight 2**j)."""
    powers = 2 ** jnp.arange(bits.shape[-1], dtype=jnp.int32)
    return jnp.matmul(bits.astype(jnp.int32), powers)


def context_indices(
    layers: tuple[LayerState, ...], side_info: Real[ArrayLike, " N"], *, config: GLNConfig
) -> tuple[Int[jax.Array, "C _"], ...]:
    """Context index of every neuron for one example.

    Args:
        layers: the state's layers (hyperplanes ``[C, K, H, N]``, offsets ``[C, K, H]``).
        side_info: ``[N]`` raw example.
        config: the network's config.

    Returns:
        One int32 array ``[C, K_l]`` per layer, values in ``[0, 2**context_map_size)``.

    Example:
        >>> ctx = context_indices(state.layers, x, config=config)  # doctest: +SKIP
    """
    batched = batch_context_indices(layers, jnp.asarray(side_info)[None], config=config)
    return tuple(c[0] for c in batched)


def batch_context_indices(
    layers: tuple[LayerState, ...], side_info: Real[ArrayLike, "B N"], *, config: GLNConfig
) -> tuple[Int[jax.Array, "B C _"], ...]:
    """Context indices of a batch: every class and neuron of a layer from one matrix product.

    Args:
        layers: the state's layers.
        side_info: ``[B, N]`` raw examples.
        config: the network's config.

    Returns:
        One int32 array ``[B, C, K_l]`` per layer.
    """
    side_info = jnp.asarray(side_info, dtype=config.dtype)
    m = config.context_map_size
    if m == 0:
        return tuple(
            jnp.zeros((side_info.shape[0], config.num_models, k), jnp.int32)
            for k in config.layer_sizes
        )
    out = []
    for layer in layers:  # one product per layer: no copy of the hyperplanes into one matrix
        c, k, _, n = layer.hyperplanes.shape
        projections = jnp.matmul(
            side_info, layer.hyperplanes.reshape(c * k * m, n).T, precision=_HIGHEST
        )  # [B, C K m]
        bits = projections > layer.hyperplane_bias.reshape(-1)[None, :]
        out.append(_bits_to_index(bits.reshape(side_info.shape[0], c, k, m)))
    return tuple(out)
