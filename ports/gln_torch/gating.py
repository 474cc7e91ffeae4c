"""Hyperplane gating in PyTorch: side information -> one context index per neuron.

Each neuron owns ``context_map_size`` hyperplanes ``(v_j, b_j)`` over the side information
``z``; its context index is ``sum_j 2**j * [v_j . z > b_j]`` (strict ``>``). The indices of a
whole batch, every layer and class, come from one matrix product on the device of the hyperplanes.

The gates must be computed at full precision (as the reference asks for
``Precision.HIGHEST``): when float32 matrix products on CUDA may use TF32
(``torch.backends.cuda.matmul.allow_tf32`` or a float32 matmul precision other than
``"highest"``), the projections are computed in float64 instead. No global setting is changed.
"""

from __future__ import annotations

import torch

from gln_torch.types import Array, GLNConfig, LayerState, as_tensor, torch_dtype


def _bits_to_index(bits: torch.Tensor) -> torch.Tensor:
    """``[..., context_map_size]`` bools -> ``[...]`` int32 indices (bit j has weight 2**j)."""
    powers = 2 ** torch.arange(bits.shape[-1], dtype=torch.int32, device=bits.device)
    return torch.sum(bits.to(torch.int32) * powers, dim=-1, dtype=torch.int32)


def tf32_possible(tensor: torch.Tensor) -> bool:
    """Whether a float32 matmul of ``tensor`` might run with reduced (TF32) precision."""
    return (
        tensor.is_cuda
        and tensor.dtype == torch.float32
        and (
            torch.backends.cuda.matmul.allow_tf32
            or torch.get_float32_matmul_precision() != "highest"
        )
    )


def projections(planes: torch.Tensor, side_info: torch.Tensor) -> torch.Tensor:
    """``[B, N] @ [P, N].T -> [B, P]`` at full precision (see the module docstring)."""
    if tf32_possible(planes):
        return torch.matmul(side_info.double(), planes.double().T)
    return torch.matmul(side_info, planes.T)


def batch_context_indices(
    layers: tuple[LayerState, ...], side_info: Array, *, config: GLNConfig
) -> tuple[torch.Tensor, ...]:
    """Context indices of a batch, all layers and classes from one matrix product.

    Args:
        layers: the state's layers (hyperplanes ``[C, K, H, N]``, offsets ``[C, K, H]``).
        side_info: ``[B, N]`` raw examples (moved to the hyperplanes' device).
        config: the network's config.

    Returns:
        One int32 tensor ``[B, C, K_l]`` per layer, values in ``[0, 2**context_map_size)``.

    Example:
        >>> contexts = batch_context_indices(state.layers, x_batch, config=config)
        ... # doctest: +SKIP
    """
    device = layers[0].hyperplanes.device
    dtype = torch_dtype(config)
    side_info = as_tensor(side_info, dtype=dtype, device=device)
    batch = side_info.shape[0]
    if config.context_map_size == 0:
        return tuple(
            torch.zeros((batch, config.num_models, k), dtype=torch.int32, device=device)
            for k in config.layer_sizes
        )
    planes = torch.cat(
        [layer.hyperplanes.to(dtype).reshape(-1, config.side_info_size) for layer in layers]
    )
    offsets = torch.cat([layer.hyperplane_bias.to(dtype).reshape(-1) for layer in layers])
    bits = projections(planes, side_info) > offsets[None, :]
    out, start = [], 0
    for layer in layers:
        shape = tuple(layer.hyperplane_bias.shape)  # [C, K, m]
        size = shape[0] * shape[1] * shape[2]
        out.append(_bits_to_index(bits[:, start : start + size].reshape(batch, *shape)))
        start += size
    return tuple(out)


def context_indices(
    layers: tuple[LayerState, ...], side_info: Array, *, config: GLNConfig
) -> tuple[torch.Tensor, ...]:
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
    side_info = as_tensor(side_info, device=layers[0].hyperplanes.device)
    batched = batch_context_indices(layers, side_info[None], config=config)
    return tuple(c[0] for c in batched)
