"""The Gaussian neuron family in TensorFlow: a transliteration of :mod:`gln_jax.core.gaussian`.

Read the reference's docstring for the maths. Every function takes a leading batch axis ``B``
(one example is a batch of one) and one output's weights ``[K, R, I]`` per layer; the functions
are pure (``tf.tensor_scatter_nd_*`` builds new weight tensors).
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from gln_jax.core.gaussian_types import GaussianConfig


def append_bias(mu: tf.Tensor, sigma_sq: tf.Tensor, config: GaussianConfig):
    """``[..., K]`` means and variances -> ``[..., K + bias_len]`` with the bias Gaussians."""
    if not config.bias_len:
        return mu, sigma_sq
    shape = tf.concat([tf.shape(mu)[:-1], [config.bias_len]], axis=0)
    means = np.linspace(-config.bias_max_mu, config.bias_max_mu, config.bias_len)
    bias_mu = tf.broadcast_to(tf.constant(means, dtype=mu.dtype), shape)
    bias_sigma_sq = tf.fill(shape, tf.constant(config.bias_sigma_sq, sigma_sq.dtype))
    return tf.concat([mu, bias_mu], axis=-1), tf.concat([sigma_sq, bias_sigma_sq], axis=-1)


def input_gaussians(inputs: tf.Tensor, config: GaussianConfig):
    """``[..., P]`` input means -> first-layer ``(mu, sigma_sq)``, each ``[..., P + bias_len]``."""
    sigma_sq = tf.fill(tf.shape(inputs), tf.constant(config.input_sigma_sq, inputs.dtype))
    return append_bias(inputs, sigma_sq, config)


def _precision_terms(mu_in: tf.Tensor, sigma_sq_in: tf.Tensor):
    a = 1.0 / sigma_sq_in
    b = a * mu_in
    return a, b, tf.reduce_sum(a * b, axis=-1), tf.reduce_sum(a * a, axis=-1)


def neurons(active, mu_in, sigma_sq_in, config: GaussianConfig):
    """``active [B, K, I]``, inputs ``[B, I]`` -> ``(mu, sigma_sq, inside)``, each ``[B, K]``."""
    a, b, ab, aa = _precision_terms(mu_in, sigma_sq_in)
    s = tf.reduce_sum(active * a[:, None, :], axis=-1)
    s_proj = tf.clip_by_value(s, 1.0 / config.max_sigma_sq, 1.0 / config.min_sigma_sq)
    m = tf.reduce_sum(active * b[:, None, :], axis=-1) + (s_proj - s) * (ab / aa)[:, None]
    return m / s_proj, 1.0 / s_proj, tf.equal(s, s_proj)


def gradient(mu_in, sigma_sq_in, mu, sigma_sq, inside, target):
    """Closed-form gradient ``[B, K, I]`` of each neuron's loss (targets ``[B]``)."""
    a, b, ab, aa = _precision_terms(mu_in, sigma_sq_in)
    t = target[:, None]
    error = mu - t
    free = 0.5 * ((t - mu) * (t + mu) - sigma_sq)
    coefficient = tf.where(inside, free, -error * (ab / aa)[:, None])
    return error[..., None] * b[:, None, :] + coefficient[..., None] * a[:, None, :]


def _row_indices(w: tf.Tensor, ctx: tf.Tensor) -> tf.Tensor:
    """``[B, K, 2]`` (neuron, context) indices of the active rows."""
    neuron = tf.broadcast_to(tf.range(tf.shape(w)[0], dtype=ctx.dtype)[None, :], tf.shape(ctx))
    return tf.stack([neuron, ctx], axis=-1)


def forward(weights, mu0, sigma_sq0, contexts, *, config: GaussianConfig):
    """Forward pass of one output on a batch: per layer the inputs, outputs and active rows."""
    inputs, outputs, rows = [], [], []
    mu, sigma_sq = mu0, sigma_sq0
    for w, ctx in zip(weights, contexts, strict=True):
        active = tf.gather_nd(w, _row_indices(w, ctx))  # [B, K, I]
        out = neurons(active, mu, sigma_sq, config)
        inputs.append((mu, sigma_sq))
        outputs.append(out)
        rows.append(active)
        mu, sigma_sq = append_bias(out[0], out[1], config)
    return inputs, outputs, rows


def batch_update(weights, mu0, sigma_sq0, contexts, targets, learning_rates, *, config):
    """Batch update of one output; returns ``(new weights, predictions [B, 2])``."""
    inputs, outputs, _ = forward(weights, mu0, sigma_sq0, contexts, config=config)
    new_weights = []
    for w, (mu_in, s_in), out, ctx in zip(weights, inputs, outputs, contexts, strict=True):
        g = gradient(mu_in, s_in, *out, targets)
        index = _row_indices(w, ctx)
        w = tf.tensor_scatter_nd_add(w, index, -learning_rates[:, None, None] * g)
        clip = config.weight_clipping
        rows = tf.clip_by_value(tf.gather_nd(w, index), -clip, clip)
        new_weights.append(tf.tensor_scatter_nd_update(w, index, rows))
    mu, sigma_sq, _ = outputs[-1]
    return new_weights, tf.stack([mu[:, 0], sigma_sq[:, 0]], axis=-1)
