"""The Bernoulli neuron family: geometric mixing of probabilities, closed-form local update.

One binary model (no class axis) on one example, or a batch. :mod:`gln_jax.core.network` runs
these over layers and vmaps them over the one-vs-all classes.

- a layer's input logits are the logits of the previous layer's clipped outputs, with ``1.0``
  appended when ``config.bias``;
- neuron output ``p = clip(sigmoid(w_c . x), eps, 1 - eps)`` with ``c`` its context index;
- update of the active row only: ``w_c <- clip(w_c - lr * (p - y) * x, -wc, wc)``.

Shapes: ``K`` neurons of a layer, ``R`` rows per neuron, ``I`` inputs of a neuron, ``B`` batch.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from gln_jax.core import numerics
from gln_jax.core.types import GLNConfig, dense_rows

_HIGHEST = jax.lax.Precision.HIGHEST

Weights = tuple[jax.Array, ...]  # per layer [K, R, I] (one model) or [C, K, R, I]


def input_logits(inputs: jax.Array, config: GLNConfig) -> jax.Array:
    """``[..., K]`` base probabilities -> ``[..., K (+1)]`` first-layer input logits."""
    p = numerics.clip_probability(jnp.asarray(inputs, config.dtype), config.pred_clipping)
    return append_bias(numerics.logit(p), config)


def append_bias(x: jax.Array, config: GLNConfig) -> jax.Array:
    if not config.bias:
        return x
    return jnp.concatenate([x, jnp.ones((*x.shape[:-1], 1), x.dtype)], axis=-1)


def forward(weights: Weights, x0: jax.Array, contexts, *, config: GLNConfig):
    """Forward pass of one binary model on one example.

    Args:
        weights: per layer ``[K, R, I]``.
        x0: ``[I_0]`` first-layer input logits.
        contexts: per layer ``[K]`` context indices.
        config: the network's config.

    Returns:
        ``(xs, ps, rows)``: per layer the input logits ``[I]``, the clipped outputs ``[K]``
        and the active weight rows ``[K, I]``.
    """
    xs, ps, rows = [], [], []
    x = x0
    for w, ctx in zip(weights, contexts, strict=True):
        active = w[jnp.arange(w.shape[0]), ctx]  # [K, I]
        p = numerics.clip_probability(
            numerics.sigmoid(jnp.sum(active * x[None, :], axis=-1)), config.pred_clipping
        )
        xs.append(x)
        ps.append(p)
        rows.append(active)
        x = append_bias(numerics.logit(p), config)
    return xs, ps, rows


def update(weights, x0, contexts, target, learning_rate, *, config: GLNConfig):
    """Exact online update of one binary model; returns ``(weights, p_out)``."""
    xs, ps, rows = forward(weights, x0, contexts, config=config)
    new_weights = []
    for w, x, p, active, ctx in zip(weights, xs, ps, rows, contexts, strict=True):
        step = (learning_rate * (p - target))[:, None] * x[None, :]
        row = numerics.clip_weights(active - step, config.weight_clipping)
        new_weights.append(w.at[jnp.arange(w.shape[0]), ctx].set(row))
    return tuple(new_weights), ps[-1][0]


def batch_update(weights, x0, contexts, targets, learning_rates, *, config: GLNConfig):
    """Batch update of one binary model: predictions from the old weights, deltas added.

    With few rows per neuron (:func:`gln_jax.core.types.dense_rows`) every row is scored by
    one matrix product and the deltas of the batch are summed into the table by another (a
    one-hot matrix product, a segment sum over the rows); otherwise the active rows are
    gathered and the deltas scattered. Both give the same result up to summation order.

    Args:
        weights: per layer ``[K, R, I]``.
        x0: ``[B, I_0]`` input logits.
        contexts: per layer ``[B, K]``.
        targets: ``[B]`` 0/1 targets of this model.
        learning_rates: ``[B]``; a rate of 0 makes an example a no-op (used for padding).
        config: the network's config.

    Returns:
        ``(weights, p_out [B])``.
    """
    if dense_rows(config):
        return _dense_batch_update(weights, x0, contexts, targets, learning_rates, config=config)
    return _gather_batch_update(weights, x0, contexts, targets, learning_rates, config=config)


def _gather_batch_update(weights, x0, contexts, targets, learning_rates, *, config: GLNConfig):
    """:func:`batch_update` by gathering the active rows and scattering the deltas."""
    batch_forward = jax.vmap(functools.partial(forward, config=config), in_axes=(None, 0, 0))
    xs, ps, _ = batch_forward(weights, x0, contexts)
    new_weights = []
    for w, x, p, ctx in zip(weights, xs, ps, contexts, strict=True):
        scale = learning_rates[:, None] * (p - targets[:, None])  # [B, K]
        delta = -scale[:, :, None] * x[:, None, :]  # [B, K, I]
        neuron = jnp.broadcast_to(jnp.arange(w.shape[0]), ctx.shape)
        w = w.at[neuron, ctx].add(delta)
        rows = numerics.clip_weights(w[neuron, ctx], config.weight_clipping)
        new_weights.append(w.at[neuron, ctx].set(rows))
    return tuple(new_weights), ps[-1][:, 0]


def _dense_batch_update(weights, x0, contexts, targets, learning_rates, *, config: GLNConfig):
    """:func:`batch_update` by matrix products: dense scoring, one-hot summed deltas.

    Every weight lies inside the clip before the update, so clipping the whole table equals
    clipping the touched rows.
    """
    new_weights = []
    x = x0
    for w, ctx in zip(weights, contexts, strict=True):
        scores = jnp.einsum("bi,kri->bkr", x, w, precision=_HIGHEST)
        z = jnp.take_along_axis(scores, ctx[..., None], axis=-1)[..., 0]  # [B, K]
        p = numerics.clip_probability(numerics.sigmoid(z), config.pred_clipping)
        scale = learning_rates[:, None] * (p - targets[:, None])  # [B, K]
        hits = jax.nn.one_hot(ctx, w.shape[1], dtype=w.dtype)  # [B, K, R]
        delta = jnp.einsum("bkr,bi->kri", scale[..., None] * hits, x, precision=_HIGHEST)
        new_weights.append(numerics.clip_weights(w - delta, config.weight_clipping))
        x = append_bias(numerics.logit(p), config)
    return tuple(new_weights), p[:, 0]
