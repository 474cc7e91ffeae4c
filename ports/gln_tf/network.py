"""apply / update / batch_update of a GLN in TensorFlow, vectorised across neurons and classes.

A transliteration of :mod:`gln_jax.core.network` (read its docstring for the semantics):

- base predictions ``clip(inputs, eps, 1 - eps)``; a layer's input logits are the logits of
  the previous layer's clipped outputs, with ``1.0`` appended last when ``config.bias``;
- neuron output ``p = clip(sigmoid(w_c . x), eps, 1 - eps)`` with ``c`` its context index;
- update of the active row only: ``w_c <- clip(w_c - lr * (p - y) * x, -wc, wc)``;
- a batch update predicts with the weights from before the batch, adds the deltas of all its
  examples into their rows (shared rows accumulate), then clips the touched rows.

Each layer's weights ``[C, K, R, I]`` are viewed as a flat table ``[C*K*R, I]`` whose active
rows are addressed by flat row numbers ``(c*K + k)*R + context``. The maths reads and writes
rows through a small store: :class:`Tables` holds tensors and writes make new tensors (the pure
functional API below, and loop variables of the ``tf.function`` scans in
:mod:`gln_tf.scan`); :class:`VariableTables` writes into ``tf.Variable``\\ s in place (the
fast path of :class:`gln_tf.module.GLNModule`). The functions run eagerly or inside a
``tf.function``.
"""

from __future__ import annotations

import tensorflow as tf

from gln_jax.core.types import dense_scoring
from gln_tf import numerics
from gln_tf.gating import batch_context_indices, context_indices, tf32_possible
from gln_tf.multiclass import batch_class_targets, class_targets
from gln_tf.types import Array, GLNConfig, GLNState, tf_dtype


class Tables:
    """Flat weight tables ``[C*K*R, I]`` as tensors; a write replaces the tensor (pure)."""

    def __init__(self, tables):
        self.tables = list(tables)

    def read(self, layer: int, rows: tf.Tensor) -> tf.Tensor:
        return tf.gather(self.tables[layer], rows)

    def write(self, layer: int, rows: tf.Tensor, values: tf.Tensor) -> None:
        self.tables[layer] = tf.tensor_scatter_nd_update(self.tables[layer], rows[:, None], values)

    def add(self, layer: int, rows: tf.Tensor, values: tf.Tensor) -> None:
        self.tables[layer] = tf.tensor_scatter_nd_add(self.tables[layer], rows[:, None], values)


class VariableTables(Tables):
    """Flat weight tables as ``tf.Variable``\\ s, written in place (rows only)."""

    def write(self, layer: int, rows: tf.Tensor, values: tf.Tensor) -> None:
        self.tables[layer].scatter_update(tf.IndexedSlices(values, rows))

    def add(self, layer: int, rows: tf.Tensor, values: tf.Tensor) -> None:
        self.tables[layer].scatter_add(tf.IndexedSlices(values, rows))


def base_predictions(x: Array, *, config: GLNConfig) -> tf.Tensor:
    """Default base predictions: the example itself, clipped into ``[eps, 1 - eps]``.

    Args:
        x: ``[N]`` (or ``[B, N]``) example with entries in [0, 1].
        config: the network's config.

    Returns:
        Same shape, clipped, in ``config.dtype``.

    Example:
        >>> base_predictions(tf.constant([0.0, 0.5]), config=config)  # doctest: +SKIP
    """
    x = tf.cast(tf.convert_to_tensor(x), tf_dtype(config))
    return numerics.clip_probability(x, config.pred_clipping)


def append_bias(x: tf.Tensor, config: GLNConfig) -> tf.Tensor:
    """``[..., K]`` logits -> ``[..., K + 1]`` with the bias input ``1.0`` last (if any)."""
    if not config.bias:
        return x
    return tf.concat([x, tf.ones_like(x[..., :1])], axis=-1)


def input_logits(inputs, config: GLNConfig) -> tf.Tensor:
    """``[..., K]`` base probabilities -> ``[..., K (+1)]`` first-layer input logits."""
    return append_bias(numerics.logit(base_predictions(inputs, config=config)), config)


def flat_rows(contexts, config: GLNConfig) -> tuple[tf.Tensor, ...]:
    """Per layer ``[..., C, K]`` context indices -> int32 flat row numbers, same shape."""
    out = []
    for c, k in zip(contexts, config.layer_sizes, strict=True):
        models = tf.range(config.num_models, dtype=tf.int32)[:, None]
        offsets = (models * k + tf.range(k, dtype=tf.int32)[None, :]) * config.num_contexts
        out.append(offsets + tf.cast(c, tf.int32))
    return tuple(out)


def flatten(weights) -> list[tf.Tensor]:
    """Per layer ``[C, K, R, I]`` -> ``[C*K*R, I]``."""
    return [tf.reshape(w, [-1, w.shape[-1]]) for w in weights]


def unflatten(tables, config: GLNConfig) -> list[tf.Tensor]:
    """Per layer ``[C*K*R, I]`` -> ``[C, K, R, I]``."""
    return [
        tf.reshape(t, [config.num_models, k, config.num_contexts, i])
        for t, k, i in zip(tables, config.layer_sizes, config.layer_input_sizes(), strict=True)
    ]


def with_weights(state: GLNState, weights, step) -> GLNState:
    layers = tuple(
        layer._replace(weights=w) for layer, w in zip(state.layers, weights, strict=True)
    )
    return GLNState(layers=layers, step=tf.cast(step, tf.int32))


def _first_layer_sums(tables: Tables, x: tf.Tensor, rows: tf.Tensor, config: GLNConfig):
    """``w_c . x`` of every first-layer neuron: ``[B, I_0]`` inputs, ``[B, C, K]`` rows.

    Where the reference's rule says so (:func:`gln_jax.core.types.dense_scoring`: few rows per
    neuron, more than one example) the inputs meet every row in one matrix product and the
    active sums are picked (cheaper than gathering rows); otherwise (or where float32 products
    may run in TF32) the active rows are gathered and reduced elementwise.
    """
    neurons = config.num_models * config.layer_sizes[0]
    flat = tf.reshape(rows, [-1, neurons])
    table = tables.tables[0]
    if dense_scoring(config.num_contexts, x.shape[0]) and not tf32_possible(table.dtype):
        sums = tf.matmul(x, table, transpose_b=True)  # [B, C*K*R]
        picked = tf.gather(sums, flat, batch_dims=1)
    else:
        active = tf.reshape(tables.read(0, tf.reshape(flat, [-1])), [-1, neurons, x.shape[-1]])
        picked = tf.reduce_sum(active * x[:, None, :], axis=-1)
    return tf.reshape(picked, [-1, config.num_models, config.layer_sizes[0]])


def _forward(tables: Tables, x0: tf.Tensor, rows, config: GLNConfig):
    """Forward pass of a batch, every class at once.

    Args:
        tables: per layer ``[C*K*R, I]``.
        x0: ``[B, I_0]`` first-layer input logits (shared by the classes).
        rows: per layer ``[B, C, K]`` flat row numbers of the active rows.
        config: the network's config.

    Returns:
        ``(xs, ps)``: per layer the input logits (``[B, I_0]`` for the first layer, else
        ``[B, C, I]``) and the clipped outputs ``[B, C, K]``.
    """
    xs, ps = [], []
    x = x0
    sizes = zip(config.layer_sizes, config.layer_input_sizes(), strict=True)
    for layer, (r, (neurons, width)) in enumerate(zip(rows, sizes, strict=True)):
        if layer == 0:
            s = _first_layer_sums(tables, x, r, config)
        else:
            active = tables.read(layer, tf.reshape(r, [-1]))
            active = tf.reshape(active, [-1, config.num_models, neurons, width])
            s = tf.reduce_sum(active * x[:, :, None, :], axis=-1)
        p = numerics.clip_probability(numerics.sigmoid(s), config.pred_clipping)
        xs.append(x)
        ps.append(p)
        x = append_bias(numerics.logit(p), config)
    return xs, ps


def batch_step(tables: Tables, x0, rows, targets, rates, config: GLNConfig) -> tf.Tensor:
    """Batch update through ``tables``: predictions from the old weights, deltas added, rows
    clipped.

    Args:
        tables: per layer ``[C*K*R, I]``; written through.
        x0: ``[B, I_0]`` input logits.
        rows: per layer ``[B, C, K]`` flat row numbers.
        targets: ``[B, C]`` 0/1 targets in ``config.dtype``.
        rates: ``[B]`` learning rates (0 makes an example a no-op).
        config: the network's config.

    Returns:
        ``[B, C]`` predictions made before the update.
    """
    xs, ps = _forward(tables, x0, rows, config)
    for layer, (x, p, r) in enumerate(zip(xs, ps, rows, strict=True)):
        scale = rates[:, None, None] * (p - targets[:, :, None])  # [B, C, K]
        x_rows = x[:, None, None, :] if layer == 0 else x[:, :, None, :]
        delta = -scale[..., None] * x_rows  # [B, C, K, I]
        flat = tf.reshape(r, [-1])
        tables.add(layer, flat, tf.reshape(delta, [-1, x.shape[-1]]))
        touched, _ = tf.unique(flat)
        tables.write(
            layer,
            touched,
            numerics.clip_weights(tables.read(layer, touched), config.weight_clipping),
        )
    return ps[-1][..., 0]


def online_step(tables: Tables, x0, rows, target, rate, config: GLNConfig) -> tf.Tensor:
    """Exact online update of one example through ``tables``.

    Args:
        tables: per layer ``[C*K*R, I]``; written through.
        x0: ``[I_0]`` input logits.
        rows: per layer ``[C*K]`` flat row numbers.
        target: ``[C, 1]`` 0/1 targets in ``config.dtype``.
        rate: scalar learning rate in ``config.dtype``.
        config: the network's config.

    Returns:
        ``[C]`` prediction made before the update.
    """
    classes = config.num_models
    x = x0
    p = None
    sizes = zip(config.layer_sizes, config.layer_input_sizes(), strict=True)
    for layer, (r, (neurons, width)) in enumerate(zip(rows, sizes, strict=True)):
        active = tables.read(layer, r)  # [C*K, I]
        if layer == 0:
            if tf32_possible(active.dtype):  # full precision, as the reference sums
                s = tf.reduce_sum(active * x[None, :], axis=-1)
            else:
                s = tf.linalg.matvec(active, x)
            active = tf.reshape(active, [classes, neurons, width])
            x_rows = x[None, None, :]
        else:
            active = tf.reshape(active, [classes, neurons, width])
            x_rows = x[:, None, :]
            s = tf.reduce_sum(active * x_rows, axis=-1)
        p = numerics.clip_probability(
            numerics.sigmoid(tf.reshape(s, [classes, neurons])), config.pred_clipping
        )
        step = ((p - target) * rate)[:, :, None] * x_rows
        new_rows = numerics.clip_weights(active - step, config.weight_clipping)
        tables.write(layer, r, tf.reshape(new_rows, [classes * neurons, width]))
        x = append_bias(numerics.logit(p), config)
    return p[:, 0]


def _weights(state: GLNState, config: GLNConfig) -> list[tf.Tensor]:
    return [tf.cast(layer.weights, tf_dtype(config)) for layer in state.layers]


def apply_from_contexts(state: GLNState, inputs: Array, contexts, *, config: GLNConfig):
    """:func:`apply` with precomputed context indices (per layer ``[C, K]``)."""
    contexts = tuple(tf.convert_to_tensor(c)[None] for c in contexts)
    inputs = tf.cast(tf.convert_to_tensor(inputs), tf_dtype(config))[None]
    return batch_apply_from_contexts(state, inputs, contexts, config=config)[0]


def batch_apply_from_contexts(state: GLNState, inputs: Array, contexts, *, config: GLNConfig):
    """Probabilities ``[B, C]`` of a batch with context indices per layer ``[B, C, K]``."""
    tables = Tables(flatten(_weights(state, config)))
    _, ps = _forward(tables, input_logits(inputs, config), flat_rows(contexts, config), config)
    return ps[-1][..., 0]


def batch_apply(state: GLNState, inputs: Array, side_info: Array, *, config: GLNConfig):
    """Probabilities of a batch: :func:`apply` for every example, all at once.

    The contexts come from one matrix product; where
    :func:`gln_jax.core.types.dense_scoring` says so the first layer scores every row with one
    matrix product and picks the active one, else it gathers the active rows. Equals the
    reference's ``batch_apply`` up to float rounding.

    Args:
        state: the GLN state.
        inputs: ``[B, P]`` base probabilities.
        side_info: ``[B, N]`` raw examples.
        config: the network's config.

    Returns:
        ``[B, C]`` clipped probabilities in ``config.dtype``.

    Example:
        >>> probs = batch_apply(state, x_batch, x_batch, config=config)  # doctest: +SKIP
    """
    contexts = batch_context_indices(state.layers, side_info, config=config)
    return batch_apply_from_contexts(state, inputs, contexts, config=config)


def apply(state: GLNState, inputs: Array, side_info: Array, *, config: GLNConfig) -> tf.Tensor:
    """Probability of the positive class of every one-vs-all model, for one example.

    Args:
        state: the GLN state (tensors or variables).
        inputs: ``[P]`` base probabilities (see :func:`base_predictions`).
        side_info: ``[N]`` raw example, looked at by the gates.
        config: the network's config.

    Returns:
        ``[C]`` clipped probabilities in ``config.dtype``.

    Example:
        >>> p = apply(state, x, x, config=config)  # doctest: +SKIP
    """
    contexts = context_indices(state.layers, side_info, config=config)
    return apply_from_contexts(state, inputs, contexts, config=config)


def update_from_contexts(
    state, inputs, contexts, target, learning_rate, *, config: GLNConfig, count=1
):
    """:func:`update` with precomputed context indices; ``count`` (0 or 1) advances ``step``."""
    dtype = tf_dtype(config)
    tables = Tables(flatten(_weights(state, config)))
    rows = tuple(tf.reshape(r, [-1]) for r in flat_rows(contexts, config))
    target = tf.cast(class_targets(target, config), dtype)[:, None]
    rate = tf.cast(tf.convert_to_tensor(learning_rate), dtype)
    p = online_step(tables, input_logits(inputs, config), rows, target, rate, config)
    step = numerics.advance_step(state.step, count)
    return with_weights(state, unflatten(tables.tables, config), step), p


def update(
    state: GLNState,
    inputs: Array,
    side_info: Array,
    target: Array,
    learning_rate: Array,
    *,
    config: GLNConfig,
) -> tuple[GLNState, tf.Tensor]:
    """Predicts one example, then learns from it (exact online step).

    Only the active row of each neuron moves, from that neuron's own clipped output:
    ``w_c <- clip(w_c - lr * (p - y) * x, -wc, wc)``. Pure: returns new tensors.

    Args:
        state: the GLN state.
        inputs: ``[P]`` base probabilities.
        side_info: ``[N]`` raw example.
        target: scalar class label in ``[0, num_classes)`` (0/1 or bool when binary).
        learning_rate: scalar rate for this example.
        config: the network's config.

    Returns:
        ``(new_state, p)`` with ``p [C]`` the prediction made before the update.

    Example:
        >>> state, p = update(state, x, x, 3, 1e-3, config=config)  # doctest: +SKIP
    """
    contexts = context_indices(state.layers, side_info, config=config)
    return update_from_contexts(state, inputs, contexts, target, learning_rate, config=config)


def batch_update_from_contexts(
    state, inputs, contexts, targets, learning_rates, *, config: GLNConfig, mask=None
):
    """:func:`batch_update` with contexts per layer ``[B, C, K]``; ``mask [B]`` drops padding."""
    dtype = tf_dtype(config)
    rates = tf.reshape(tf.cast(tf.convert_to_tensor(learning_rates), dtype), [-1])
    count = tf.shape(rates)[0]
    if mask is not None:
        mask = tf.reshape(tf.cast(tf.convert_to_tensor(mask), tf.bool), [-1])
        rates = tf.where(mask, rates, tf.zeros_like(rates))
        count = tf.reduce_sum(tf.cast(mask, tf.int32))
    tables = Tables(flatten(_weights(state, config)))
    p = batch_step(
        tables,
        input_logits(inputs, config),
        flat_rows(contexts, config),
        tf.cast(batch_class_targets(targets, config), dtype),
        rates,
        config,
    )
    step = numerics.advance_step(state.step, count)
    return with_weights(state, unflatten(tables.tables, config), step), p


def batch_update(
    state: GLNState,
    inputs: Array,
    side_info: Array,
    targets: Array,
    learning_rates: Array,
    *,
    config: GLNConfig,
) -> tuple[GLNState, tf.Tensor]:
    """Predicts a batch with the weights from before it, then learns from all of it.

    Example ``i`` contributes ``-learning_rates[i] * (p_i - y_i) * x_i`` to its active rows;
    contributions to a shared row add up; the touched rows are then clipped and ``step``
    advances by the batch size. A batch of one equals :func:`update`.

    Args:
        state: the GLN state.
        inputs: ``[B, P]`` base probabilities.
        side_info: ``[B, N]`` raw examples.
        targets: ``[B]`` class labels.
        learning_rates: ``[B]`` rate of each example.
        config: the network's config.

    Returns:
        ``(new_state, p)`` with ``p [B, C]`` the predictions made before the update.

    Example:
        >>> state, p = batch_update(state, xs, xs, ys, tf.fill([len(ys)], 1e-3), config=config)
        ... # doctest: +SKIP
    """
    contexts = batch_context_indices(state.layers, side_info, config=config)
    return batch_update_from_contexts(
        state, inputs, contexts, targets, learning_rates, config=config
    )
