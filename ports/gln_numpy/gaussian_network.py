"""apply / update / batch_update of a Gaussian GLN in NumPy, and its stream drivers.

A transliteration of :mod:`gln_jax.core.gaussian_network`: the state is a
:class:`~gln_jax.GLNState` of NumPy arrays with a leading output axis ``C``; predictions are
``[..., C, 2]`` (mean and variance). The public functions copy the weights before learning, so
they never write into their arguments.
"""

from __future__ import annotations

import numpy as np

from gln_numpy import gaussian, numerics
from gln_numpy.gating import batch_context_indices, context_indices
from gln_numpy.network import with_weights
from gln_numpy.types import Array, GLNState


def _output_targets(targets, count: int, config) -> np.ndarray:
    """``[B]`` or ``[B, C]`` targets -> ``[B, C]`` in ``config.dtype``."""
    t = np.asarray(targets, config.dtype).reshape(count, -1)
    return np.broadcast_to(t, (count, config.num_outputs))


def batch_apply_from_contexts(state: GLNState, inputs: Array, contexts, *, config) -> np.ndarray:
    """``[B, C, 2]`` predictions from contexts per layer ``[B, C, K]``."""
    mu0, sigma_sq0 = gaussian.input_gaussians(np.asarray(inputs), config)
    out = []
    for c in range(config.num_outputs):
        weights = [np.asarray(layer.weights[c], config.dtype) for layer in state.layers]
        _, outputs, _ = gaussian.forward(
            weights, mu0, sigma_sq0, [ctx[:, c] for ctx in contexts], config=config
        )
        out.append(np.stack([outputs[-1][0][:, 0], outputs[-1][1][:, 0]], axis=-1))
    return np.stack(out, axis=1)


def batch_apply(state: GLNState, inputs: Array, side_info: Array, *, config) -> np.ndarray:
    """Predictions ``[B, C, 2]`` of ``inputs [B, P]`` gated on ``side_info [B, N]``."""
    contexts = batch_context_indices(state.layers, side_info, config=config)
    return batch_apply_from_contexts(state, inputs, contexts, config=config)


def apply(state: GLNState, inputs: Array, side_info: Array, *, config) -> np.ndarray:
    """Predictive Gaussian ``[C, 2]`` of one example."""
    return batch_apply(state, np.asarray(inputs)[None], np.asarray(side_info)[None], config=config)[
        0
    ]


def _learn(weights, mu0, sigma_sq0, contexts, targets, rates, config) -> np.ndarray:
    """One batch step of every output, in place on ``weights`` (per layer ``[C, K, R, I]``)."""
    out = [
        gaussian.batch_update(
            [w[c] for w in weights],
            mu0,
            sigma_sq0,
            [ctx[:, c] for ctx in contexts],
            targets[:, c],
            rates,
            config=config,
        )
        for c in range(config.num_outputs)
    ]
    return np.stack(out, axis=1)


def batch_update_from_contexts(state, inputs, contexts, targets, learning_rates, *, config):
    """:func:`batch_update` with contexts per layer ``[B, C, K]``."""
    inputs = np.asarray(inputs, config.dtype)
    count = inputs.shape[0]
    weights = [np.array(layer.weights, dtype=config.dtype, copy=True) for layer in state.layers]
    mu0, sigma_sq0 = gaussian.input_gaussians(inputs, config)
    rates = np.asarray(learning_rates, config.dtype).reshape(count)
    out = _learn(
        weights, mu0, sigma_sq0, contexts, _output_targets(targets, count, config), rates, config
    )
    return with_weights(state, weights, numerics.advance_step(state.step, count)), out


def batch_update(state, inputs, side_info, targets, learning_rates, *, config):
    """Predicts a batch with the weights from before it, then learns from all of it.

    Returns:
        ``(new_state, prediction [B, C, 2])``.
    """
    contexts = batch_context_indices(state.layers, side_info, config=config)
    return batch_update_from_contexts(
        state, inputs, contexts, targets, learning_rates, config=config
    )


def update(state, inputs, side_info, target, learning_rate, *, config):
    """Exact online step on one example; returns ``(new_state, prediction [C, 2])``."""
    contexts = context_indices(state.layers, side_info, config=config)
    new, out = batch_update_from_contexts(
        state,
        np.asarray(inputs)[None],
        tuple(c[None] for c in contexts),
        np.asarray(target, config.dtype).reshape(1, -1),
        np.asarray([learning_rate]),
        config=config,
    )
    return new, out[0]


def scan_update(state, inputs, side_info, targets, learning_rates, *, config, mask=None):
    """Exact online learning over a stream, one example at a time, on a private copy.

    Returns:
        ``(state, prediction [T, C, 2])``.
    """
    inputs = np.asarray(inputs, config.dtype)
    count = inputs.shape[0]
    keep = np.ones(count, bool) if mask is None else np.asarray(mask, bool)
    contexts = batch_context_indices(state.layers, side_info, config=config)
    weights = [np.array(layer.weights, dtype=config.dtype, copy=True) for layer in state.layers]
    mu0, sigma_sq0 = gaussian.input_gaussians(inputs, config)
    targets = _output_targets(targets, count, config)
    rates = np.where(keep, np.asarray(learning_rates, config.dtype).reshape(count), 0)
    out = np.empty((count, config.num_outputs, 2), config.dtype)
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
    step = numerics.advance_step(state.step, keep.sum())
    return with_weights(state, weights, step), out


def fit_stream(state, inputs, side_info, targets, learning_rates, *, config, batch_size=1):
    """Trains on a whole stream in order (``batch_size`` examples per update).

    Returns:
        ``(state, prediction [T, C, 2])``; the caller's state is left intact.
    """
    if batch_size == 1:
        return scan_update(state, inputs, side_info, targets, learning_rates, config=config)
    outputs = []
    count = np.asarray(inputs).shape[0]
    for start in range(0, count, batch_size):
        sl = slice(start, start + batch_size)
        state, out = batch_update(
            state,
            np.asarray(inputs)[sl],
            np.asarray(side_info)[sl],
            np.asarray(targets)[sl],
            np.asarray(learning_rates)[sl],
            config=config,
        )
        outputs.append(out)
    if not outputs:
        return state, np.zeros((0, config.num_outputs, 2), config.dtype)
    return state, np.concatenate(outputs)
