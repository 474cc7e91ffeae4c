"""The Gaussian neuron family in NumPy: a transliteration of :mod:`gln_jax.core.gaussian`.

Read the reference's docstring for the maths. Here every function takes a leading batch axis
``B`` (one example is a batch of one) and one output's weights ``[K, R, I]`` per layer; the
functions never write into their arguments except :func:`update` and :func:`batch_update`,
which write into the weight arrays they are given (callers pass copies).
"""

from __future__ import annotations

import numpy as np

from gln_jax.core.gaussian_types import GaussianConfig


def append_bias(mu: np.ndarray, sigma_sq: np.ndarray, config: GaussianConfig):
    """``[..., K]`` means and variances -> ``[..., K + bias_len]`` with the bias Gaussians."""
    if not config.bias_len:
        return mu, sigma_sq
    lead = mu.shape[:-1]
    bias_mu = np.linspace(-config.bias_max_mu, config.bias_max_mu, config.bias_len)
    bias_mu = np.broadcast_to(bias_mu.astype(mu.dtype), (*lead, config.bias_len))
    bias_sigma_sq = np.full((*lead, config.bias_len), config.bias_sigma_sq, sigma_sq.dtype)
    return (
        np.concatenate([mu, bias_mu], axis=-1),
        np.concatenate([sigma_sq, bias_sigma_sq], axis=-1),
    )


def input_gaussians(inputs, config: GaussianConfig):
    """``[..., P]`` input means -> first-layer ``(mu, sigma_sq)``, each ``[..., P + bias_len]``."""
    mu = np.array(inputs, dtype=config.dtype)
    return append_bias(mu, np.full(mu.shape, config.input_sigma_sq, mu.dtype), config)


def _precision_terms(mu_in: np.ndarray, sigma_sq_in: np.ndarray):
    a = 1.0 / sigma_sq_in
    b = a * mu_in
    return a, b, np.sum(a * b, axis=-1), np.sum(a * a, axis=-1)


def neurons(active, mu_in, sigma_sq_in, config: GaussianConfig):
    """Outputs of a layer: ``active [B, K, I]``, inputs ``[B, I]`` -> ``(mu, sigma_sq, inside)``
    each ``[B, K]``."""
    a, b, ab, aa = _precision_terms(mu_in, sigma_sq_in)
    s = np.sum(active * a[:, None, :], axis=-1)
    s_proj = np.clip(s, 1.0 / config.max_sigma_sq, 1.0 / config.min_sigma_sq)
    m = np.sum(active * b[:, None, :], axis=-1) + (s_proj - s) * (ab / aa)[:, None]
    return m / s_proj, 1.0 / s_proj, s == s_proj


def gradient(mu_in, sigma_sq_in, mu, sigma_sq, inside, target):
    """Closed-form gradient ``[B, K, I]`` of each neuron's loss (targets ``[B]``)."""
    a, b, ab, aa = _precision_terms(mu_in, sigma_sq_in)
    t = target[:, None]
    error = mu - t
    free = 0.5 * ((t - mu) * (t + mu) - sigma_sq)
    coefficient = np.where(inside, free, -error * (ab / aa)[:, None])
    return error[..., None] * b[:, None, :] + coefficient[..., None] * a[:, None, :]


def forward(weights, mu0, sigma_sq0, contexts, *, config: GaussianConfig):
    """Forward pass of one output on a batch: per layer inputs, outputs and active rows.

    Args:
        weights: per layer ``[K, R, I]``.
        mu0, sigma_sq0: ``[B, I_0]``.
        contexts: per layer ``[B, K]``.
        config: the network's config.
    """
    inputs, outputs, rows = [], [], []
    mu, sigma_sq = mu0, sigma_sq0
    for w, ctx in zip(weights, contexts, strict=True):
        active = w[np.arange(w.shape[0])[None, :], ctx]  # [B, K, I]
        out = neurons(active, mu, sigma_sq, config)
        inputs.append((mu, sigma_sq))
        outputs.append(out)
        rows.append(active)
        mu, sigma_sq = append_bias(out[0], out[1], config)
    return inputs, outputs, rows


def batch_update(weights, mu0, sigma_sq0, contexts, targets, learning_rates, *, config):
    """Batch update of one output, in place on ``weights``; returns the predictions ``[B, 2]``.

    Predictions use the weights from before the batch; the deltas of examples sharing a row
    add up; the touched rows are then clipped. A batch of one is the exact online step.
    """
    inputs, outputs, _ = forward(weights, mu0, sigma_sq0, contexts, config=config)
    for w, (mu_in, s_in), out, ctx in zip(weights, inputs, outputs, contexts, strict=True):
        g = gradient(mu_in, s_in, *out, targets)
        neuron = np.broadcast_to(np.arange(w.shape[0])[None, :], ctx.shape)
        np.add.at(w, (neuron, ctx), -learning_rates[:, None, None] * g)
        w[neuron, ctx] = np.clip(w[neuron, ctx], -config.weight_clipping, config.weight_clipping)
    mu, sigma_sq, _ = outputs[-1]
    return np.stack([mu[:, 0], sigma_sq[:, 0]], axis=-1)


def update(weights, mu0, sigma_sq0, contexts, target, learning_rate, *, config):
    """Exact online update of one output on one example (``mu0 [I_0]``, contexts ``[K]``),
    in place on ``weights``; returns the prediction ``[2]``."""
    dtype = np.dtype(config.dtype)
    out = batch_update(
        weights,
        mu0[None],
        sigma_sq0[None],
        tuple(np.asarray(c)[None] for c in contexts),
        np.asarray([target], dtype),
        np.asarray([learning_rate], dtype),
        config=config,
    )
    return out[0]
