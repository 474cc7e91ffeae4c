"""The ``"pytorch"`` backend of the :class:`gln_jax.GLN` facade (see :mod:`gln_jax.api.backends`).

The engine's state is a :class:`~gln_torch.module.GLNModule` (buffers on CUDA when available,
else the CPU). Training computes the new weights on a clone and copies them into the buffers
only once everything has succeeded, so a call that fails leaves the module as it was.
"""

from __future__ import annotations

import numpy as np
import torch

from gln_jax.api.engine import gating_input
from gln_jax.core.types import CHUNK_SIZE
from gln_torch import numerics
from gln_torch.gating import batch_context_indices
from gln_torch.module import GLNModule
from gln_torch.multiclass import batch_class_targets
from gln_torch.network import (
    batch_apply,
    batch_step,
    clone_weights,
    flat_rows,
    flatten,
    input_logits,
    online_step,
    state_device,
    to_tensor,
    with_weights,
)
from gln_torch.stream import fit_chunks
from gln_torch.types import GLNConfig, GLNState, as_tensor, to_reference, torch_dtype


@torch.no_grad()
def predict_batch(state: GLNState, inputs, side_info, *, config: GLNConfig) -> torch.Tensor:
    """Probabilities ``[B, C]`` of a batch (inputs ``[B, P]``, side_info ``[B, N]``).

    Example:
        >>> probs = predict_batch(module.state, x_batch, x_batch, config=config)
        ... # doctest: +SKIP
    """
    return batch_apply(state, inputs, side_info, config=config)


@torch.no_grad()
def train_batch(state: GLNState, inputs, side_info, targets, rates, *, config: GLNConfig):
    """One batch update (the exact online step for a batch of one) on a clone of the weights.

    Args:
        state: the current state (not modified; its gating tensors are shared with the result).
        inputs: ``[B, P]`` base probabilities.
        side_info: ``[B, N]`` raw examples.
        targets: ``[B]`` int labels.
        rates: ``[B]`` learning rates.
        config: the network's config.

    Returns:
        ``(state, p [B, C])``.
    """
    device = state_device(state)
    contexts = batch_context_indices(state.layers, side_info, config=config)
    weights = clone_weights(state, config)
    flat = flatten(weights)
    x0 = input_logits(to_tensor(inputs, config, device), config)
    rows = flat_rows(contexts, config)
    target_rows = batch_class_targets(as_tensor(targets, device=device), config)
    target_rows = target_rows.to(torch_dtype(config))
    rates = to_tensor(rates, config, device).reshape(-1)
    if x0.shape[0] == 1:  # the cheaper single-example path, same maths
        first = tuple(r[0].reshape(-1) for r in rows)
        p = online_step(flat, x0[0], first, target_rows[0][:, None], rates[0], config)[None]
    else:
        p = batch_step(flat, x0, rows, target_rows, rates, config)
    state = with_weights(
        state, weights, numerics.advance_step(state.step, x0.shape[0]), copy_gating=False
    )
    return state, p


@torch.no_grad()
def fit_module(
    module: GLNModule, inputs, side_info, targets, rates, batch_size: int, epochs: int = 1
) -> torch.Tensor:
    """Trains ``module`` on a stream (``epochs`` passes), committing only at the end.

    Args:
        module: the model; its buffers change only after every pass has succeeded.
        inputs: ``[T, P]`` base probabilities.
        side_info: ``[T, N]`` raw examples.
        targets: ``[T]`` labels.
        rates: ``[epochs * T]`` learning rates, one per example and pass.
        batch_size: examples per update.
        epochs: passes over the stream.

    Returns:
        ``[epochs * T, C]`` predictions made before each update.
    """
    state, config = module.state, module.config
    weights = clone_weights(state, config)
    flat = flatten(weights)
    total = len(targets)
    out = [
        fit_chunks(
            flat,
            state,
            inputs,
            side_info,
            targets,
            rates[epoch * total : (epoch + 1) * total],
            config=config,
            batch_size=batch_size,
            chunk_size=CHUNK_SIZE,
        )
        for epoch in range(epochs)
    ]
    module.assign(
        with_weights(
            state, weights, numerics.advance_step(state.step, total * epochs), copy_gating=False
        )
    )
    return torch.cat(out)


def _numpy(tensor: torch.Tensor) -> np.ndarray:
    return tensor.detach().cpu().numpy()


class TorchEngine:
    """The PyTorch port behind ``gln_jax.GLN(backend="pytorch")``.

    Args:
        config: the model's config.
        device: where new modules go; ``None`` means CUDA when available, else the CPU.
    """

    name = "pytorch"

    def __init__(self, config: GLNConfig, device=None):
        self.config = config
        self.device = device

    def from_reference(self, state: GLNState) -> GLNModule:
        """A :class:`GLNModule` holding a copy of a reference state."""
        return GLNModule(self.config, state, device=self.device)

    def to_reference(self, module: GLNModule) -> GLNState:
        """A NumPy copy of the module's state in the reference layout."""
        return to_reference(module.state)

    def step(self, module: GLNModule) -> int:
        """Number of examples learned from."""
        return int(module.step)

    def predict(self, module: GLNModule, inputs, side_info) -> np.ndarray:
        """Probabilities ``[B, C]`` of ``inputs [B, P]`` with gates on ``side_info [B, N]``."""
        side_info = gating_input(inputs, side_info)
        return _numpy(predict_batch(module.state, inputs, side_info, config=module.config))

    def train(self, module: GLNModule, inputs, side_info, targets, rates):
        """One batch update, then the buffers are assigned; returns ``(module, probs)``."""
        side_info = gating_input(inputs, side_info)
        state, p = train_batch(
            module.state, inputs, side_info, targets, rates, config=module.config
        )
        module.assign(state)
        return module, _numpy(p)

    def fit(
        self, module: GLNModule, inputs, side_info, targets, rates, batch_size: int, num_epochs=1
    ):
        """Trains on a stream in order (``num_epochs`` passes, committed at the end); returns
        ``(module, probs [num_epochs * T, C])``."""
        side_info = gating_input(inputs, side_info)
        p = fit_module(module, inputs, side_info, targets, rates, batch_size, num_epochs)
        return module, _numpy(p)
