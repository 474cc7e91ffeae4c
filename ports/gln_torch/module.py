"""``GLNModule``: a GLN state held as ``nn.Module`` buffers (the PyTorch idiom for state).

Buffers (not parameters: a GLN learns without gradients) make ``state_dict``,
``load_state_dict``, ``.to(device)``, ``.double()`` and ``.float()`` work as for any module.
Keys follow the checkpoint layout: ``layers.{i}.weights``, ``layers.{i}.hyperplanes``,
``layers.{i}.hyperplane_bias`` and ``step``. The module's ``config.dtype`` follows its buffers
(``.double()`` makes it ``"float64"``); dtypes other than float32/float64 are refused.
"""

from __future__ import annotations

import torch
from torch import nn

from gln_torch.gating import batch_context_indices
from gln_torch.network import batch_apply_from_contexts
from gln_torch.types import (
    DTYPES,
    GLNConfig,
    GLNState,
    LayerState,
    as_tensor,
    from_reference,
    torch_dtype,
)


class _LayerBuffers(nn.Module):
    """One layer's state as three buffers."""

    def __init__(self, layer: LayerState):
        super().__init__()
        self.register_buffer("weights", layer.weights)
        self.register_buffer("hyperplanes", layer.hyperplanes)
        self.register_buffer("hyperplane_bias", layer.hyperplane_bias)

    def state(self) -> LayerState:
        return LayerState(self.weights, self.hyperplanes, self.hyperplane_bias)


class GLNModule(nn.Module):
    """A GLN state as buffers, with a forward pass that returns probabilities.

    Args:
        config: the model's config.
        state: a state with NumPy, JAX or torch leaves (copied).
        device: where the buffers go; ``None`` means CUDA when available, else the CPU.

    Attributes:
        config: the :class:`~gln_jax.GLNConfig`, its ``dtype`` kept equal to the buffers'.

    Example:
        >>> module = GLNModule(config, gln_jax.init(jax.random.key(0), config))
        ... # doctest: +SKIP
        >>> probs = module(inputs, side_info)  # doctest: +SKIP
    """

    def __init__(self, config: GLNConfig, state: GLNState, device=None):
        super().__init__()
        self.config = config
        tensors = from_reference(state, device=device, dtype=torch_dtype(config))
        self.layers = nn.ModuleList(_LayerBuffers(layer) for layer in tensors.layers)
        self.register_buffer("step", tensors.step)

    @property
    def state(self) -> GLNState:
        """The state as a :class:`~gln_jax.GLNState` of the module's own buffers (no copy)."""
        return GLNState(layers=tuple(layer.state() for layer in self.layers), step=self.step)

    @property
    def device(self) -> torch.device:
        """The device of the buffers."""
        return self.step.device

    @torch.no_grad()
    def assign(self, state: GLNState) -> None:
        """Copies a state of the same shapes into the buffers (after all computing is done)."""
        for layer, new in zip(self.layers, state.layers, strict=True):
            for name, value in zip(LayerState._fields, new, strict=True):
                buffer = getattr(layer, name)
                if value is not buffer:
                    buffer.copy_(value)
        self.step.copy_(as_tensor(state.step, dtype=self.step.dtype))

    @torch.no_grad()
    def forward(self, inputs: torch.Tensor, side_info: torch.Tensor) -> torch.Tensor:
        """Probabilities of a batch (no update).

        Args:
            inputs: ``[B, P]`` base probabilities.
            side_info: ``[B, N]`` raw examples.

        Returns:
            ``[B, C]`` probabilities on the module's device.
        """
        state = self.state
        contexts = batch_context_indices(state.layers, side_info, config=self.config)
        return batch_apply_from_contexts(state, inputs, contexts, config=self.config)

    def _apply(self, fn, recurse=True):
        """Refuses dtypes other than float32/float64 and keeps ``config.dtype`` in sync."""
        weights = self.layers[0].weights
        probe = fn(torch.zeros((), dtype=weights.dtype, device=weights.device))
        name = str(probe.dtype).removeprefix("torch.")
        if name not in DTYPES:
            raise TypeError(f"a GLN holds its state in one of {DTYPES}, not {name}")
        module = super()._apply(fn, recurse)
        self.config = self.config._replace(dtype=name)
        return module

    def extra_repr(self) -> str:
        c = self.config
        return (
            f"layer_sizes={list(c.layer_sizes)}, side_info_size={c.side_info_size}, "
            f"context_map_size={c.context_map_size}, num_classes={c.num_classes}, "
            f"dtype={c.dtype!r}"
        )
