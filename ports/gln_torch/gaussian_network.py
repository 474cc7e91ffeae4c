"""apply / update / batch_update of a Gaussian GLN in PyTorch, and its stream drivers.

A transliteration of :mod:`gln_jax.core.gaussian_network` (see :mod:`gln_numpy.gaussian_network`
for the same code in NumPy): the state is a :class:`~gln_jax.GLNState` of tensors with a leading
output axis ``C``; predictions are ``[..., C, 2]`` (mean and variance). The public functions
clone the weights before learning, so they never write into their arguments.
"""

from __future__ import annotations

import torch

from gln_torch import gaussian, numerics
from gln_torch.gating import batch_context_indices
from gln_torch.network import state_device, to_tensor, with_weights
from gln_torch.types import Array, GLNState


def _contexts(contexts, c: int):
    return [ctx[:, c].long() for ctx in contexts]


def _output_targets(targets, count: int, config, device) -> torch.Tensor:
    t = to_tensor(targets, config, device).reshape(count, -1)
    return t.expand(count, config.num_outputs)


@torch.no_grad()
def batch_apply(state: GLNState, inputs: Array, side_info: Array, *, config) -> torch.Tensor:
    """Predictions ``[B, C, 2]`` of ``inputs [B, P]`` gated on ``side_info [B, N]``."""
    device = state_device(state)
    contexts = batch_context_indices(state.layers, side_info, config=config)
    mu0, sigma_sq0 = gaussian.input_gaussians(to_tensor(inputs, config, device), config)
    out = []
    for c in range(config.num_outputs):
        weights = [layer.weights[c] for layer in state.layers]
        _, outputs, _ = gaussian.forward(
            weights, mu0, sigma_sq0, _contexts(contexts, c), config=config
        )
        out.append(torch.stack([outputs[-1][0][:, 0], outputs[-1][1][:, 0]], dim=-1))
    return torch.stack(out, dim=1)


def apply(state: GLNState, inputs: Array, side_info: Array, *, config) -> torch.Tensor:
    """Predictive Gaussian ``[C, 2]`` of one example."""
    device = state_device(state)
    batch = to_tensor(inputs, config, device)[None], to_tensor(side_info, config, device)[None]
    return batch_apply(state, *batch, config=config)[0]


def _learn(weights, mu0, sigma_sq0, contexts, targets, rates, config) -> torch.Tensor:
    out = [
        gaussian.batch_update(
            [w[c] for w in weights],
            mu0,
            sigma_sq0,
            _contexts(contexts, c),
            targets[:, c],
            rates,
            config=config,
        )
        for c in range(config.num_outputs)
    ]
    return torch.stack(out, dim=1)


@torch.no_grad()
def batch_update(state, inputs, side_info, targets, learning_rates, *, config):
    """Predicts a batch with the weights from before it, then learns from all of it.

    Returns:
        ``(new_state, prediction [B, C, 2])``.
    """
    device = state_device(state)
    inputs = to_tensor(inputs, config, device)
    count = inputs.shape[0]
    contexts = batch_context_indices(state.layers, side_info, config=config)
    weights = [layer.weights.clone() for layer in state.layers]
    mu0, sigma_sq0 = gaussian.input_gaussians(inputs, config)
    targets = _output_targets(targets, count, config, device)
    rates = to_tensor(learning_rates, config, device).reshape(count)
    out = _learn(weights, mu0, sigma_sq0, contexts, targets, rates, config)
    return with_weights(state, weights, numerics.advance_step(state.step, count)), out


def update(state, inputs, side_info, target, learning_rate, *, config):
    """Exact online step on one example; returns ``(new_state, prediction [C, 2])``."""
    device = state_device(state)
    new, out = batch_update(
        state,
        to_tensor(inputs, config, device)[None],
        to_tensor(side_info, config, device)[None],
        to_tensor(target, config, device).reshape(1, -1),
        to_tensor(learning_rate, config, device).reshape(1),
        config=config,
    )
    return new, out[0]


@torch.no_grad()
def scan_update(state, inputs, side_info, targets, learning_rates, *, config):
    """Exact online learning over a stream, one example at a time, on private clones.

    Returns:
        ``(state, prediction [T, C, 2])``.
    """
    device = state_device(state)
    inputs = to_tensor(inputs, config, device)
    count = inputs.shape[0]
    contexts = batch_context_indices(state.layers, side_info, config=config)
    weights = [layer.weights.clone() for layer in state.layers]
    mu0, sigma_sq0 = gaussian.input_gaussians(inputs, config)
    targets = _output_targets(targets, count, config, device)
    rates = to_tensor(learning_rates, config, device).reshape(count)
    out = torch.empty((count, config.num_outputs, 2), dtype=inputs.dtype, device=device)
    for t in range(count):
        out[t] = _learn(
            weights,
            mu0[t : t + 1],
            sigma_sq0[t : t + 1],
            [c[t : t + 1] for c in contexts],
            targets[t : t + 1],
            rates[t : t + 1],
            config,
        )[0]
    return with_weights(state, weights, numerics.advance_step(state.step, count)), out


def fit_stream(state, inputs, side_info, targets, learning_rates, *, config, batch_size=1):
    """Trains on a whole stream in order; returns ``(state, prediction [T, C, 2])``."""
    if batch_size == 1:
        return scan_update(state, inputs, side_info, targets, learning_rates, config=config)
    device = state_device(state)
    inputs, side_info = to_tensor(inputs, config, device), to_tensor(side_info, config, device)
    targets, rates = to_tensor(targets, config, device), to_tensor(learning_rates, config, device)
    outputs = []
    for start in range(0, inputs.shape[0], batch_size):
        sl = slice(start, start + batch_size)
        state, out = batch_update(
            state, inputs[sl], side_info[sl], targets[sl], rates[sl], config=config
        )
        outputs.append(out)
    if not outputs:
        return state, torch.zeros((0, config.num_outputs, 2), dtype=inputs.dtype, device=device)
    return state, torch.cat(outputs)
