"""Exact online learning in chunks: the first layer's sequential work reduced to scalars.

Within a chunk of ``T`` examples, the active first-layer row of neuron ``k`` (class ``c``) at
step ``t`` is its row at the chunk start minus ``g_s x_s`` for every earlier example ``s`` of
the chunk that hit the same row (``g_s = lr_s (p_s - y_s)``), as long as no weight clip fires.
Its score is therefore

    z_t = W_start[ctx_t] . x_t  -  sum_{s < t, ctx_s == ctx_t} g_s (x_s . x_t)

The first term of every step comes from one matrix product over every row of the chunk-start
table (``[T, I] x [C K R, I]``), the dot products ``x_s . x_t`` from the chunk's Gram matrix
``[T, T]``; only the scalars ``g_s`` are sequential. After the chunk, the table moves by one
more matrix product (``W -= sum_t g_t onehot(ctx_t) x_t``). Deeper layers (few inputs) keep
the per-step path of :func:`gln_jax.core.bernoulli.update`.

Clipping breaks the linearity. Each first-layer weight's excursion over the chunk is bounded
by ``|w| + sum_s |g_s| |x_s|`` (over the examples that hit its row); when that bound may reach
the clip, the chunk is replayed exactly by :func:`gln_jax.core.scan.scan_update` from its
start, so the result is always the exact online one (up to float summation order).

The dense scoring and the one-hot update cost ``R`` times the active rows' arithmetic, which
pays while rows per neuron are few: :func:`use_chunked` is the switch rule.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from gln_jax.core import bernoulli, multiclass, numerics
from gln_jax.core.gating import batch_context_indices
from gln_jax.core.scan import scan_update
from gln_jax.core.types import CHUNKED_ROWS_MAX, GRAM_CHUNK, Array, GLNConfig, GLNState

_HIGHEST = jax.lax.Precision.HIGHEST

#: Relative safety margin of the clip test: a bound within this fraction of the clip replays.
_CLIP_MARGIN = 1e-4


def use_chunked(config: GLNConfig) -> bool:
    """Whether exact online learning runs in Gram chunks (else one example per scan step).

    The chunked step scores every row of the first layer (``R = 2**context_map_size`` per
    neuron) by a matrix product, ``R`` times the arithmetic of the active rows, so it needs
    ``R <= CHUNKED_ROWS_MAX``. It removes the first layer's per-step gather and scatter but
    not the deeper layers' per-step work, which XLA on CPU runs at a fixed cost per operation:
    measured on a 2-core Xeon (10 classes, MNIST, CPU time), a single-layer network learns
    about 3x faster in chunks, while ``[4, 4, 1]`` and ``[16, 16, 1]`` ran 0.8-1.0x of the
    per-step scan. So the rule takes chunks only where the first layer is the whole network.

    Args:
        config: the network's config.

    Returns:
        True when :func:`chunked_scan_update` is the faster exact route.
    """
    return config.num_contexts <= CHUNKED_ROWS_MAX and len(config.layer_sizes) == 1


def _deeper_step(weights, x1, contexts, targets, lr, *, config):
    """Exact online step of the layers after the first, all classes; ``x1 [C, K1 (+1)]``."""
    step_fn = multiclass.over_classes(bernoulli.update, (0, 0, 0, 0, None), config=config)
    return step_fn(weights, x1, contexts, targets, lr)


def _chunk(state: GLNState, x0, contexts, targets, lrs, keep, *, config: GLNConfig):
    """One chunk of exact online learning by the Gram formulation, without the clip test.

    Args:
        state: the GLN state at the chunk start.
        x0: ``[T, I]`` first-layer input logits.
        contexts: per layer ``[T, C, K]``.
        targets: ``[T, C]`` binary targets in ``config.dtype``.
        lrs: ``[T]`` rates (0 for padding).
        keep: ``[T]`` bools, the real examples.
        config: the network's config.

    Returns:
        ``(state, p [T, C], bound)`` where ``bound [C, K, R]`` per row is the largest
        ``|w| + sum_s |g_s| max|x_s|`` (a cheap per-row bound of the excursion).
    """
    w1 = state.layers[0].weights  # [C, K, R, I]
    ctx1 = contexts[0]  # [T, C, K]
    c, k, r, i = w1.shape
    rows = w1.reshape(c * k * r, i)
    scores = jnp.matmul(x0, rows.T, precision=_HIGHEST).reshape(-1, c, k, r)
    start_scores = jnp.take_along_axis(scores, ctx1[..., None], axis=-1)[..., 0]  # [T, C, K]
    gram = jnp.matmul(x0, x0.T, precision=_HIGHEST)  # [T, T]
    # [T(t), T(u), C, K]: x_t . x_u where examples t and u hit the same row, else 0
    shared = jnp.where(ctx1[:, None] == ctx1[None, :], gram[:, :, None, None], 0)
    deep = tuple(layer.weights for layer in state.layers[1:])
    eps = config.pred_clipping

    def body(carry, xs):
        deep, corr = carry
        t, ctx_deep, y, lr = xs
        z = start_scores[t] - corr[t]  # [C, K]
        p1 = numerics.clip_probability(numerics.sigmoid(z), eps)
        g = lr * (p1 - y[:, None])  # [C, K]
        corr = corr + g[None] * shared[t]
        if deep:
            x1 = bernoulli.append_bias(numerics.logit(p1), config)
            deep, p = _deeper_step(deep, x1, ctx_deep, y, lr, config=config)
        else:
            p = p1[:, 0]
        return (deep, corr), (g, p)

    steps = jnp.arange(x0.shape[0])
    xs = (steps, tuple(contexts[1:]), targets, lrs)
    (deep, _), (g, p) = jax.lax.scan(body, (deep, jnp.zeros_like(start_scores)), xs)
    hits = jax.nn.one_hot(ctx1, config.num_contexts, dtype=x0.dtype)  # [T, C, K, R]
    step = (g[..., None] * hits).reshape(-1, c * k * r)  # [T, C K R]
    w1 = w1 - jnp.matmul(step.T, x0, precision=_HIGHEST).reshape(w1.shape)
    row_max = jnp.max(jnp.abs(state.layers[0].weights), axis=-1)  # [C, K, R]
    x_max = jnp.max(jnp.abs(x0), axis=-1)  # [T]
    excursion = jnp.einsum("tckr,t->ckr", jnp.abs(g)[..., None] * hits, x_max)
    weights = (w1, *deep)
    layers = tuple(
        layer._replace(weights=w) for layer, w in zip(state.layers, weights, strict=True)
    )
    count = jnp.sum(keep, dtype=jnp.int32)
    new_state = state._replace(layers=layers, step=numerics.advance_step(state.step, count))
    return new_state, p, (g, hits, row_max + excursion)


def _clip_free(state, x0, g, hits, row_bound, *, config: GLNConfig):
    """Whether no first-layer clip can have fired in the chunk (per-row test, then per weight)."""
    limit = config.weight_clipping * (1.0 - _CLIP_MARGIN)

    def per_weight():
        w = jnp.abs(state.layers[0].weights)
        step = (jnp.abs(g)[..., None] * hits).reshape(x0.shape[0], -1)  # [T, C K R]
        bound = w + jnp.matmul(step.T, jnp.abs(x0), precision=_HIGHEST).reshape(w.shape)
        return jnp.all(bound <= limit)

    return jax.lax.cond(jnp.all(row_bound <= limit), lambda: jnp.array(True), per_weight)


def chunked_scan_update(
    state: GLNState,
    inputs: Array,
    side_info: Array,
    targets: Array,
    learning_rates: Array,
    *,
    config: GLNConfig,
    mask: Array | None = None,
    chunk: int = GRAM_CHUNK,
) -> tuple[GLNState, jax.Array, jax.Array]:
    """Exact online learning over a stream, in Gram chunks (same result as ``scan_update``).

    Args:
        state: the GLN state.
        inputs: ``[T, P]`` base probabilities.
        side_info: ``[T, N]`` raw examples.
        targets: ``[T]`` class labels.
        learning_rates: ``[T]`` rate of each example.
        config: the network's config.
        mask: optional ``[T]`` bools; a masked-out example changes nothing (padding).
        chunk: examples per Gram chunk; ``T`` is padded up to a multiple of it.

    Returns:
        ``(state, p, replays)``: ``p [T, C]`` the prediction made before each example's update,
        ``replays`` the int32 number of chunks replayed one example at a time because a weight
        clip may have fired.

    Example:
        >>> state, p, replays = chunked_scan_update(state, x, x, y, rates, config=config)
        ... # doctest: +SKIP
    """
    targets = jnp.asarray(targets).astype(jnp.int32)
    total = targets.shape[0]
    if mask is None:
        mask = jnp.ones((total,), bool)
    chunk = max(1, min(chunk, total))
    pad = -total % chunk
    dtype = jnp.dtype(config.dtype)

    def padded(a, fill):
        a = jnp.asarray(a)
        return jnp.pad(a, [(0, pad)] + [(0, 0)] * (a.ndim - 1), constant_values=fill)

    inputs = padded(jnp.asarray(inputs, dtype), 0.5)
    side_info = padded(jnp.asarray(side_info, dtype), 0.0)
    targets, mask = padded(targets, 0), padded(mask, False)
    lrs = jnp.where(mask, padded(jnp.asarray(learning_rates, dtype), 0.0), 0)
    contexts = batch_context_indices(state.layers, side_info, config=config)
    x0 = bernoulli.input_logits(inputs, config)
    binary = multiclass.batch_class_targets(targets, config).astype(dtype)

    def blocks(a):
        return a.reshape(-1, chunk, *a.shape[1:])

    def body(carry, xs):
        state, replays = carry
        x, ctx, y, lr, keep, raw_inputs, raw_side, raw_targets = xs
        new_state, p, (g, hits, row_bound) = _chunk(state, x, ctx, y, lr, keep, config=config)

        def replay():
            s, q = scan_update(
                state, raw_inputs, raw_side, raw_targets, lr, config=config, mask=keep
            )
            return s, q

        ok = _clip_free(state, x, g, hits, row_bound, config=config)
        new_state, p = jax.lax.cond(ok, lambda: (new_state, p), replay)
        return (new_state, replays + (~ok).astype(jnp.int32)), p

    xs = (
        blocks(x0),
        tuple(blocks(c) for c in contexts),
        blocks(binary),
        blocks(lrs),
        blocks(mask),
        blocks(inputs),
        blocks(side_info),
        blocks(targets),
    )
    (state, replays), p = jax.lax.scan(body, (state, jnp.zeros((), jnp.int32)), xs)
    return state, p.reshape(-1, p.shape[-1])[:total], replays
