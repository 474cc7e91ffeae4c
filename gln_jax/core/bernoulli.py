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
from gln_jax.core.types import GLNConfig

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

    The active rows are gathered and the deltas scattered; :func:`dense_batch_update` is the
    same update for all classes at once by matrix products.

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


def dense_scores(x: jax.Array, weights: jax.Array) -> jax.Array:
    """Scores of every row of every neuron and class, by one matrix product.

    Args:
        x: ``[B, I]`` inputs shared by the classes (first layer) or ``[C, B, I]`` per class.
        weights: ``[C, K, R, I]``.

    Returns:
        ``[C, B, K, R]``.
    """
    c, k, r, i = weights.shape
    if x.ndim == 2:  # one 2-D product: XLA copies no weights for it
        scores = jnp.matmul(x, weights.reshape(c * k * r, i).T, precision=_HIGHEST)
        return jnp.moveaxis(scores.reshape(-1, c, k, r), 1, 0)
    scores = jnp.einsum("cbi,cni->cbn", x, weights.reshape(c, k * r, i), precision=_HIGHEST)
    return scores.reshape(c, -1, k, r)


def dense_batch_update(weights, x0, contexts, targets, learning_rates, *, config: GLNConfig):
    """:func:`batch_update` of all classes at once by matrix products.

    Every row is scored by one product (:func:`dense_scores`) and the deltas of the batch are
    summed into the table by another, through the one-hot matrix of the active rows (a
    segment sum over rows). Every weight lies inside the clip before the update, so clipping
    the whole table equals clipping the touched rows. Same result as the vmapped
    :func:`batch_update` up to summation order; cheaper while rows per neuron are few
    (:func:`gln_jax.core.types.dense_rows`).

    Args:
        weights: per layer ``[C, K, R, I]``.
        x0: ``[B, I_0]`` input logits (shared by the classes).
        contexts: per layer ``[C, B, K]``.
        targets: ``[C, B]`` 0/1 targets.
        learning_rates: ``[B]``; a rate of 0 makes an example a no-op.
        config: the network's config.

    Returns:
        ``(weights, p_out [C, B])``.
    """
    new_weights = []
    x = x0
    for w, ctx in zip(weights, contexts, strict=True):
        c, k, r, i = w.shape
        z = jnp.take_along_axis(dense_scores(x, w), ctx[..., None], axis=-1)[..., 0]
        p = numerics.clip_probability(numerics.sigmoid(z), config.pred_clipping)  # [C, B, K]
        scale = learning_rates[None, :, None] * (p - targets[..., None])
        hits = jax.nn.one_hot(ctx, r, dtype=w.dtype) * scale[..., None]  # [C, B, K, R]
        if x.ndim == 2:
            hits = jnp.moveaxis(hits, 1, 3).reshape(c * k * r, -1)  # [C K R, B]
            delta = jnp.matmul(hits, x, precision=_HIGHEST)
        else:
            hits = hits.reshape(c, -1, k * r)
            delta = jnp.einsum("cbn,cbi->cni", hits, x, precision=_HIGHEST)
        new_weights.append(
            numerics.clip_weights(w - delta.reshape(w.shape), config.weight_clipping)
        )
        x = append_bias(numerics.logit(p), config)
    return tuple(new_weights), p[..., 0]
