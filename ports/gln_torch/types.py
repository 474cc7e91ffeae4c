"""Config and state of the PyTorch port: the reference's NamedTuples with torch tensor leaves.

The port holds no randomness: a state comes from :func:`gln_jax.init` (or a checkpoint) and is
converted with :func:`from_reference`. Field names are the reference's, so one checkpoint format
serves every port.
"""

from __future__ import annotations

import numpy as np
import torch

from gln_jax.core.types import DTYPES as DTYPES
from gln_jax.core.types import Array as Array
from gln_jax.core.types import GLNConfig as GLNConfig
from gln_jax.core.types import GLNState as GLNState
from gln_jax.core.types import LayerState as LayerState
from gln_jax.core.types import make_config as make_config


def torch_dtype(config: GLNConfig) -> torch.dtype:
    """The torch dtype of ``config.dtype`` (``torch.float32`` or ``torch.float64``)."""
    return getattr(torch, config.dtype)


def default_device() -> torch.device:
    """CUDA when available, else the CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def as_tensor(value, *, dtype=None, device=None) -> torch.Tensor:
    """``torch.as_tensor`` that also takes read-only arrays (JAX's, NumPy views) by copying.

    Args:
        value: a tensor, NumPy or JAX array, scalar or nested list.
        dtype: torch dtype of the result; ``None`` keeps the value's.
        device: device of the result; ``None`` keeps the tensor's (CPU for other values).

    Returns:
        A tensor; shares memory with ``value`` only when ``value`` is already a tensor of that
        dtype and device (the port never writes into it).
    """
    if isinstance(value, torch.Tensor):
        return value.to(device=device, dtype=dtype)
    array = np.asarray(value)
    if not array.flags.writeable:
        array = array.copy()
    return torch.as_tensor(array, dtype=dtype, device=device)


def _to_tensor(leaf, dtype, device) -> torch.Tensor:
    if isinstance(leaf, torch.Tensor):
        return leaf.detach().to(device=device, dtype=dtype, copy=True)
    return torch.tensor(np.asarray(leaf), dtype=dtype, device=device)  # torch.tensor copies


def from_reference(state: GLNState, *, device=None, dtype=None) -> GLNState:
    """Copies a reference state (NumPy, JAX or torch leaves) into torch tensors.

    Args:
        state: a :class:`GLNState`.
        device: where the tensors go; ``None`` means CUDA when available, else the CPU.
        dtype: a torch float dtype for the weights and gating; ``None`` keeps theirs.

    Returns:
        A :class:`GLNState` of fresh tensors (``step`` an int32 scalar).

    Example:
        >>> state = from_reference(gln_jax.init(jax.random.key(0), config))  # doctest: +SKIP
    """
    device = default_device() if device is None else torch.device(device)
    layers = tuple(
        LayerState(
            *(
                _to_tensor(leaf, dtype if dtype is not None else _float_dtype(leaf), device)
                for leaf in layer
            )
        )
        for layer in state.layers
    )
    step = torch.tensor(int(np.asarray(_numpy(state.step))), dtype=torch.int32, device=device)
    return GLNState(layers=layers, step=step)


def _float_dtype(leaf) -> torch.dtype:
    if isinstance(leaf, torch.Tensor):
        return leaf.dtype
    return getattr(torch, np.asarray(leaf).dtype.name)


def _numpy(leaf) -> np.ndarray:
    """A NumPy copy of a tensor (any device) or array-like."""
    if isinstance(leaf, torch.Tensor):
        return leaf.detach().cpu().numpy().copy()
    return np.array(leaf, copy=True)


def to_reference(state: GLNState) -> GLNState:
    """Copies a torch state into the reference layout (a :class:`GLNState` of NumPy arrays).

    Args:
        state: a state of tensors on any device.

    Returns:
        NumPy copies of every array; ``step`` an int32 scalar.
    """
    layers = tuple(LayerState(*(_numpy(leaf) for leaf in layer)) for layer in state.layers)
    return GLNState(layers=layers, step=np.asarray(_numpy(state.step), np.int32))
