"""apply / update / batch_update of a Gaussian GLN in TensorFlow, and its stream drivers.

A transliteration of :mod:`gln_jax.core.gaussian_network` (eager and pure: every call returns
a new state of tensors): the state is a :class:`~gln_jax.GLNState` with a leading output axis
``C``; predictions are ``[..., C, 2]`` (mean and variance).
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from gln_tf import gaussian, numerics
from gln_tf.gating import batch_context_indices
from gln_tf.network import with_weights
from gln_tf.types import Array, GLNState, tf_dtype


def _tensor(value, config) -> tf.Tensor:
    """``value`` in ``config.dtype`` (Python floats converted at that precision, not float32)."""
    if isinstance(value, (tf.Tensor, tf.Variable)):
        return tf.cast(value, tf_dtype(config))
    return tf.constant(np.asarray(value, config.dtype))


def _contexts(contexts, c: int):
    return [ctx[:, c] for ctx in contexts]


def _output_targets(targets, count: int, config) -> tf.Tensor:
    t = tf.reshape(_tensor(targets, config), (count, -1))
    return tf.broadcast_to(t, (count, config.num_outputs))


def batch_apply(state: GLNState, inputs: Array, side_info: Array, *, config) -> tf.Tensor:
    """Predictions ``[B, C, 2]`` of ``inputs [B, P]`` gated on ``side_info [B, N]``."""
    contexts = batch_context_indices(state.layers, _tensor(side_info, config), config=config)
    mu0, sigma_sq0 = gaussian.input_gaussians(_tensor(inputs, config), config)
    out = []
    for c in range(config.num_outputs):
        weights = [layer.weights[c] for layer in state.layers]
        _, outputs, _ = gaussian.forward(
            weights, mu0, sigma_sq0, _contexts(contexts, c), config=config
        )
        out.append(tf.stack([outputs[-1][0][:, 0], outputs[-1][1][:, 0]], axis=-1))
    return tf.stack(out, axis=1)


def apply(state: GLNState, inputs: Array, side_info: Array, *, config) -> tf.Tensor:
    """Predictive Gaussian ``[C, 2]`` of one example."""
    batch = _tensor(inputs, config)[None], _tensor(side_info, config)[None]
    return batch_apply(state, *batch, config=config)[0]


def _learn(weights, mu0, sigma_sq0, contexts, targets, rates, config):
    """One batch step of every output: ``(new weights per layer [C, K, R, I], out [B, C, 2])``."""
    per_output, outs = [], []
    for c in range(config.num_outputs):
        new, out = gaussian.batch_update(
            [w[c] for w in weights],
            mu0,
            sigma_sq0,
            _contexts(contexts, c),
            targets[:, c],
            rates,
            config=config,
        )
        per_output.append(new)
        outs.append(out)
    layers = [tf.stack([new[i] for new in per_output]) for i in range(len(weights))]
    return layers, tf.stack(outs, axis=1)


def batch_update(state, inputs, side_info, targets, learning_rates, *, config):
    """Predicts a batch with the weights from before it, then learns from all of it.

    Returns:
        ``(new_state, prediction [B, C, 2])``.
    """
    inputs = _tensor(inputs, config)
    count = int(inputs.shape[0])
    contexts = batch_context_indices(state.layers, _tensor(side_info, config), config=config)
    mu0, sigma_sq0 = gaussian.input_gaussians(inputs, config)
    rates = tf.reshape(_tensor(learning_rates, config), (count,))
    weights, out = _learn(
        [layer.weights for layer in state.layers],
        mu0,
        sigma_sq0,
        contexts,
        _output_targets(targets, count, config),
        rates,
        config,
    )
    return with_weights(state, weights, numerics.advance_step(state.step, count)), out


def update(state, inputs, side_info, target, learning_rate, *, config):
    """Exact online step on one example; returns ``(new_state, prediction [C, 2])``."""
    new, out = batch_update(
        state,
        _tensor(inputs, config)[None],
        _tensor(side_info, config)[None],
        tf.reshape(_tensor(target, config), (1, -1)),
        tf.reshape(_tensor(learning_rate, config), (1,)),
        config=config,
    )
    return new, out[0]


def scan_update(state, inputs, side_info, targets, learning_rates, *, config):
    """Exact online learning over a stream, one example at a time.

    Returns:
        ``(state, prediction [T, C, 2])``.
    """
    inputs = _tensor(inputs, config)
    count = int(inputs.shape[0])
    contexts = batch_context_indices(state.layers, _tensor(side_info, config), config=config)
    mu0, sigma_sq0 = gaussian.input_gaussians(inputs, config)
    targets = _output_targets(targets, count, config)
    rates = tf.reshape(_tensor(learning_rates, config), (count,))
    weights = [layer.weights for layer in state.layers]
    outs = []
    for t in range(count):
        weights, out = _learn(
            weights,
            mu0[t : t + 1],
            sigma_sq0[t : t + 1],
            [c[t : t + 1] for c in contexts],
            targets[t : t + 1],
            rates[t : t + 1],
            config,
        )
        outs.append(out)
    if not outs:
        return state, tf.zeros((0, config.num_outputs, 2), tf_dtype(config))
    return with_weights(state, weights, numerics.advance_step(state.step, count)), tf.concat(
        outs, axis=0
    )


def fit_stream(state, inputs, side_info, targets, learning_rates, *, config, batch_size=1):
    """Trains on a whole stream in order; returns ``(state, prediction [T, C, 2])``."""
    if batch_size == 1:
        return scan_update(state, inputs, side_info, targets, learning_rates, config=config)
    inputs, side_info = _tensor(inputs, config), _tensor(side_info, config)
    targets, rates = _tensor(targets, config), _tensor(learning_rates, config)
    outputs = []
    for start in range(0, int(inputs.shape[0]), batch_size):
        sl = slice(start, start + batch_size)
        state, out = batch_update(
            state, inputs[sl], side_info[sl], targets[sl], rates[sl], config=config
        )
        outputs.append(out)
    if not outputs:
        return state, tf.zeros((0, config.num_outputs, 2), tf_dtype(config))
    return state, tf.concat(outputs, axis=0)
