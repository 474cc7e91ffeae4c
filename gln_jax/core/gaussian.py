"""The Gaussian neuron family (Budden et al., 2020): products of Gaussians, closed-form update.

One single-output model (no output axis) on one example, or a batch;
:mod:`gln_jax.core.gaussian_network` runs these over layers and vmaps them over the outputs.

A neuron's inputs are Gaussians ``(mu_i, sigma_i^2)``; with precisions ``a_i = 1 / sigma_i^2``
and ``b_i = a_i * mu_i``, the active row ``w`` of the neuron (chosen by its context) gives the
weighted product of the inputs raised to ``w_i``, again a Gaussian:

- precision ``s = w . a``, projected into ``[1 / max_sigma_sq, 1 / min_sigma_sq]``: the row
  is moved along ``a`` to the nearest ``w' = w + a (s' - s) / |a|^2`` with ``s' = clip(s)``;
- ``sigma^2 = 1 / s'`` and ``mu = (w' . b) / s'``.

Every layer's inputs get ``bias_len`` constant bias Gaussians appended (means evenly spaced in
``[-bias_max_mu, bias_max_mu]``, variance ``bias_sigma_sq``). The loss is the Gaussian negative
log-likelihood ``L = log(2 pi sigma^2) / 2 + (y - mu)^2 / (2 sigma^2)``; its gradient with
respect to the stored row, through the projection, is

``g = (mu - y) b + c a`` with ``c = ((y - mu)(y + mu) - sigma^2) / 2`` inside the variance
range and ``c = -(mu - y) (a . b) / |a|^2`` where the projection is active;

the update is ``w <- clip(w - lr * g, -weight_clipping, weight_clipping)`` on the active row.

Shapes: ``K`` neurons of a layer, ``R`` rows per neuron, ``I`` inputs of a neuron, ``B`` batch.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from gln_jax.core import numerics
from gln_jax.core.gaussian_types import GaussianConfig

Weights = tuple[jax.Array, ...]  # per layer [K, R, I] (one output) or [C, K, R, I]


def append_bias(mu: jax.Array, sigma_sq: jax.Array, config: GaussianConfig):
    """``[..., K]`` means and variances -> ``[..., K + bias_len]`` with the bias Gaussians."""
    if not config.bias_len:
        return mu, sigma_sq
    lead = mu.shape[:-1]
    bias_mu = jnp.linspace(-config.bias_max_mu, config.bias_max_mu, config.bias_len)
    bias_mu = jnp.broadcast_to(bias_mu.astype(mu.dtype), (*lead, config.bias_len))
    bias_sigma_sq = jnp.full((*lead, config.bias_len), config.bias_sigma_sq, sigma_sq.dtype)
    return (
        jnp.concatenate([mu, bias_mu], axis=-1),
        jnp.concatenate([sigma_sq, bias_sigma_sq], axis=-1),
    )


def input_gaussians(inputs: jax.Array, config: GaussianConfig):
    """``[..., P]`` input means -> first-layer ``(mu, sigma_sq)``, each ``[..., P + bias_len]``.

    Every input is a Gaussian of variance ``config.input_sigma_sq`` around its value.
    """
    mu = jnp.asarray(inputs, config.dtype)
    return append_bias(mu, jnp.full(mu.shape, config.input_sigma_sq, mu.dtype), config)


def _precision_terms(mu_in: jax.Array, sigma_sq_in: jax.Array):
    """``a = 1 / sigma^2``, ``b = a * mu``, ``a . b`` and ``|a|^2`` of a layer's inputs ``[I]``."""
    a = 1.0 / sigma_sq_in
    b = a * mu_in
    return a, b, jnp.sum(a * b), jnp.sum(a * a)


def neurons(active: jax.Array, mu_in: jax.Array, sigma_sq_in: jax.Array, config: GaussianConfig):
    """Outputs of a layer's neurons from their active rows.

    Args:
        active: ``[K, I]`` active weight rows.
        mu_in, sigma_sq_in: ``[I]`` the layer's input Gaussians.
        config: the network's config.

    Returns:
        ``(mu [K], sigma_sq [K], inside [K])``; ``inside`` is false where the variance was
        projected into ``[min_sigma_sq, max_sigma_sq]``.
    """
    a, b, ab, aa = _precision_terms(mu_in, sigma_sq_in)
    s = jnp.sum(active * a[None, :], axis=-1)
    s_proj = jnp.clip(s, 1.0 / config.max_sigma_sq, 1.0 / config.min_sigma_sq)
    m = jnp.sum(active * b[None, :], axis=-1) + (s_proj - s) * (ab / aa)
    return m / s_proj, 1.0 / s_proj, s == s_proj


def gradient(mu_in, sigma_sq_in, mu, sigma_sq, inside, target):
    """Closed-form gradient of the log-likelihood loss with respect to the active rows.

    Args:
        mu_in, sigma_sq_in: ``[I]`` the layer's input Gaussians.
        mu, sigma_sq, inside: ``[K]`` from :func:`neurons`.
        target: scalar target.

    Returns:
        ``[K, I]`` the gradient of every neuron's loss with respect to its active row.
    """
    a, b, ab, aa = _precision_terms(mu_in, sigma_sq_in)
    error = mu - target
    free = 0.5 * ((target - mu) * (target + mu) - sigma_sq)
    coefficient = jnp.where(inside, free, -error * ab / aa)
    return error[:, None] * b[None, :] + coefficient[:, None] * a[None, :]


def forward(weights: Weights, mu0: jax.Array, sigma_sq0: jax.Array, contexts, *, config):
    """Forward pass of one single-output model on one example.

    Args:
        weights: per layer ``[K, R, I]``.
        mu0, sigma_sq0: ``[I_0]`` first-layer input Gaussians (bias included).
        contexts: per layer ``[K]`` context indices.
        config: the network's config.

    Returns:
        Per layer lists ``(inputs, outputs, rows)``: the input Gaussians ``([I], [I])``, the
        outputs ``(mu [K], sigma_sq [K], inside [K])`` and the active rows ``[K, I]``.
    """
    inputs, outputs, rows = [], [], []
    mu, sigma_sq = mu0, sigma_sq0
    for w, ctx in zip(weights, contexts, strict=True):
        active = w[jnp.arange(w.shape[0]), ctx]
        out = neurons(active, mu, sigma_sq, config)
        inputs.append((mu, sigma_sq))
        outputs.append(out)
        rows.append(active)
        mu, sigma_sq = append_bias(out[0], out[1], config)
    return inputs, outputs, rows


def update(weights, mu0, sigma_sq0, contexts, target, learning_rate, *, config):
    """Exact online update of one single-output model.

    Returns:
        ``(weights, prediction [2])``: the new weights and the output ``(mu, sigma_sq)``
        predicted before the update.
    """
    inputs, outputs, rows = forward(weights, mu0, sigma_sq0, contexts, config=config)
    new_weights = []
    for w, (mu_in, s_in), out, active, ctx in zip(
        weights, inputs, outputs, rows, contexts, strict=True
    ):
        g = gradient(mu_in, s_in, *out, target)
        row = numerics.clip_weights(active - learning_rate * g, config.weight_clipping)
        new_weights.append(w.at[jnp.arange(w.shape[0]), ctx].set(row))
    mu, sigma_sq, _ = outputs[-1]
    return tuple(new_weights), jnp.stack([mu[0], sigma_sq[0]])


def batch_update(weights, mu0, sigma_sq0, contexts, targets, learning_rates, *, config):
    """Batch update of one single-output model: predictions from the old weights, deltas added.

    Args:
        weights: per layer ``[K, R, I]``.
        mu0, sigma_sq0: ``[B, I_0]`` first-layer input Gaussians.
        contexts: per layer ``[B, K]``.
        targets: ``[B]`` targets of this output.
        learning_rates: ``[B]``; a rate of 0 makes an example a no-op (padding).
        config: the network's config.

    Returns:
        ``(weights, prediction [B, 2])``.
    """
    batch_forward = jax.vmap(functools.partial(forward, config=config), in_axes=(None, 0, 0, 0))
    inputs, outputs, _ = batch_forward(weights, mu0, sigma_sq0, contexts)
    new_weights = []
    for w, (mu_in, s_in), out, ctx in zip(weights, inputs, outputs, contexts, strict=True):
        g = jax.vmap(gradient)(mu_in, s_in, *out, targets)  # [B, K, I]
        delta = -learning_rates[:, None, None] * g
        neuron = jnp.broadcast_to(jnp.arange(w.shape[0]), ctx.shape)
        w = w.at[neuron, ctx].add(delta)
        rows = numerics.clip_weights(w[neuron, ctx], config.weight_clipping)
        new_weights.append(w.at[neuron, ctx].set(rows))
    mu, sigma_sq, _ = outputs[-1]
    return tuple(new_weights), jnp.stack([mu[:, 0], sigma_sq[:, 0]], axis=-1)
