"""Drivers over a stream of examples in TensorFlow: ``tf.while_loop`` scans in ``tf.function``.

As in :mod:`gln_jax.core.scan`, the gates depend only on the examples and the fixed hyperplanes,
so the context indices of a whole chunk come from one matrix product before the loop; inside
the loop only the selected weight rows are read and written. Each scan is one ``tf.function``
per config with an input signature whose stream length (and batch size) is unknown, so it is
traced once per config and never again for new lengths.

The functional drivers here carry the weight tables as loop variables (pure, new tensors per
write); :class:`gln_tf.module.GLNModule` runs the same loops over ``tf.Variable`` working
copies written in place, which is faster. The host-side driver that feeds a long stream
through the same scans in fixed-size chunks is :func:`gln_tf.stream.fit_stream`.
"""

from __future__ import annotations

import functools

import tensorflow as tf

from gln_tf import numerics
from gln_tf.gating import batch_context_indices
from gln_tf.multiclass import batch_class_targets
from gln_tf.network import (
    Tables,
    VariableTables,
    batch_step,
    flat_rows,
    flatten,
    input_logits,
    online_step,
    unflatten,
    with_weights,
)
from gln_tf.types import Array, GLNConfig, GLNState, LayerState, tf_dtype


def prepare(state: GLNState, inputs, side_info, targets, config: GLNConfig):
    """Vectorised per-chunk work: input logits ``[T, I_0]``, flat rows per layer
    ``[T, C, K]``, class targets ``[T, C]``."""
    contexts = batch_context_indices(state.layers, side_info, config=config)
    target_rows = tf.cast(batch_class_targets(targets, config), tf_dtype(config))
    return input_logits(inputs, config), flat_rows(contexts, config), target_rows


def online_loop(tables, x0, rows, targets, rates, *, config: GLNConfig, in_place: bool):
    """Exact online updates of ``T`` examples in order (a ``tf.while_loop``).

    Args:
        tables: per layer ``[C*K*R, I]`` flat tables: tensors (carried as loop variables) or,
            with ``in_place``, ``tf.Variable``\\ s written in place.
        x0: ``[T, I_0]`` input logits.
        rows: per layer ``[T, C, K]`` flat row numbers.
        targets: ``[T, C]`` targets in ``config.dtype``.
        rates: ``[T]`` learning rates in ``config.dtype``.
        config: the network's config.
        in_place: whether ``tables`` are variables.

    Returns:
        ``(tables, p [T, C])``: the final tables (the variables themselves when in place).
    """
    steps = tf.shape(x0)[0]
    step_rows = [tf.reshape(r, [steps, -1]) for r in rows]
    column = targets[:, :, None]
    probs = tf.TensorArray(tf_dtype(config), size=steps, element_shape=[config.num_models])

    def one(store, t):
        return online_step(store, x0[t], [r[t] for r in step_rows], column[t], rates[t], config)

    if in_place:

        def body(t, probs):
            return t + 1, probs.write(t, one(VariableTables(tables), t))

        _, probs = tf.while_loop(
            lambda t, _: t < steps, body, (tf.constant(0), probs), parallel_iterations=1
        )
        return tables, probs.stack()

    def pure_body(t, carried, probs):
        store = Tables(carried)
        p = one(store, t)
        return t + 1, store.tables, probs.write(t, p)

    _, tables, probs = tf.while_loop(
        lambda t, *_: t < steps,
        pure_body,
        (tf.constant(0), list(tables), probs),
        parallel_iterations=1,
    )
    return tables, probs.stack()


def batch_loop(tables, x0, rows, targets, rates, batch_size, *, config, in_place: bool):
    """Consecutive batch updates of ``batch_size`` examples; a last partial batch is smaller.

    Args:
        tables: as in :func:`online_loop`.
        x0: ``[T, I_0]`` input logits.
        rows: per layer ``[T, C, K]`` flat row numbers.
        targets: ``[T, C]`` targets in ``config.dtype``.
        rates: ``[T]`` learning rates (0 makes an example a no-op).
        batch_size: scalar int32 tensor, examples per update.
        config: the network's config.
        in_place: whether ``tables`` are variables.

    Returns:
        ``(tables, p [T, C])``.
    """
    total = tf.shape(x0)[0]
    batches = (total + batch_size - 1) // batch_size
    probs = tf.TensorArray(
        tf_dtype(config),
        size=batches,
        element_shape=[None, config.num_models],
        infer_shape=False,
    )

    def one(store, i):
        part = slice(i * batch_size, tf.minimum((i + 1) * batch_size, total))
        return batch_step(
            store, x0[part], [r[part] for r in rows], targets[part], rates[part], config
        )

    if in_place:

        def body(i, probs):
            return i + 1, probs.write(i, one(VariableTables(tables), i))

        _, probs = tf.while_loop(
            lambda i, _: i < batches, body, (tf.constant(0), probs), parallel_iterations=1
        )
        return tables, _concat(probs, config)

    def pure_body(i, carried, probs):
        store = Tables(carried)
        p = one(store, i)
        return i + 1, store.tables, probs.write(i, p)

    _, tables, probs = tf.while_loop(
        lambda i, *_: i < batches,
        pure_body,
        (tf.constant(0), list(tables), probs),
        parallel_iterations=1,
    )
    return tables, _concat(probs, config)


def _concat(probs: tf.TensorArray, config: GLNConfig) -> tf.Tensor:
    """The ``[T, C]`` concatenation of a TensorArray of ``[b, C]`` (``[0, C]`` if empty)."""
    empty = tf.zeros([0, config.num_models], tf_dtype(config))
    return tf.cond(probs.size() > 0, probs.concat, lambda: empty)


def state_signature(config: GLNConfig) -> GLNState:
    """The ``tf.TensorSpec`` structure of a state of ``config`` (for input signatures)."""
    dtype = tf_dtype(config)
    c, m, n, r = (
        config.num_models,
        config.context_map_size,
        config.side_info_size,
        config.num_contexts,
    )
    layers = tuple(
        LayerState(
            tf.TensorSpec([c, k, r, i], dtype),
            tf.TensorSpec([c, k, m, n], dtype),
            tf.TensorSpec([c, k, m], dtype),
        )
        for k, i in zip(config.layer_sizes, config.layer_input_sizes(), strict=True)
    )
    return GLNState(layers=layers, step=tf.TensorSpec([], tf.int32))


def stream_signature(config: GLNConfig, *leading) -> list[tf.TensorSpec]:
    """Specs of ``(inputs, side_info, targets, rates)`` with the given leading dimensions."""
    dtype = tf_dtype(config)
    leading = list(leading)
    return [
        tf.TensorSpec([*leading, config.base_prediction_size], dtype),
        tf.TensorSpec([*leading, config.side_info_size], dtype),
        tf.TensorSpec(leading, tf.int32),
        tf.TensorSpec(leading, dtype),
    ]


@functools.lru_cache(maxsize=64)
def _scans(config: GLNConfig):
    """The ``tf.function`` scans of one config, traced once each (cached per config)."""
    state_spec = state_signature(config)
    flat = stream_signature(config, None)
    mask = tf.TensorSpec([None], tf.bool)

    def finish(state, tables, count, p):
        return with_weights(
            state, unflatten(tables, config), numerics.advance_step(state.step, count)
        ), p

    @tf.function(input_signature=[state_spec, *flat, mask])
    def online(state, inputs, side_info, targets, rates, keep):
        x0, rows, target_rows = prepare(state, inputs, side_info, targets, config)
        rates = tf.where(keep, rates, tf.zeros_like(rates))
        tables = flatten([layer.weights for layer in state.layers])
        tables, p = online_loop(tables, x0, rows, target_rows, rates, config=config, in_place=False)
        return finish(state, tables, tf.reduce_sum(tf.cast(keep, tf.int32)), p)

    @tf.function(input_signature=[state_spec, *flat, mask, tf.TensorSpec([], tf.int32)])
    def batched(state, inputs, side_info, targets, rates, keep, batch_size):
        x0, rows, target_rows = prepare(state, inputs, side_info, targets, config)
        rates = tf.where(keep, rates, tf.zeros_like(rates))
        tables = flatten([layer.weights for layer in state.layers])
        tables, p = batch_loop(
            tables, x0, rows, target_rows, rates, batch_size, config=config, in_place=False
        )
        return finish(state, tables, tf.reduce_sum(tf.cast(keep, tf.int32)), p)

    return online, batched


def _state(state: GLNState, config: GLNConfig) -> GLNState:
    """A state whose leaves are tensors of the config's dtype (variables are read)."""
    dtype = tf_dtype(config)
    layers = tuple(
        LayerState(*(tf.cast(tf.convert_to_tensor(leaf), dtype) for leaf in layer))
        for layer in state.layers
    )
    return GLNState(layers=layers, step=tf.cast(tf.convert_to_tensor(state.step), tf.int32))


def _stream(config: GLNConfig, inputs, side_info, targets, rates, mask):
    """The stream's arrays as flat tensors of the config's dtypes, and a mask."""
    dtype = tf_dtype(config)
    inputs = tf.reshape(tf.cast(inputs, dtype), [-1, config.base_prediction_size])
    side_info = tf.reshape(tf.cast(side_info, dtype), [-1, config.side_info_size])
    targets = tf.reshape(tf.cast(targets, tf.int32), [-1])
    rates = tf.reshape(tf.cast(rates, dtype), [-1])
    if mask is None:
        mask = tf.ones_like(targets, tf.bool)
    mask = tf.reshape(tf.cast(mask, tf.bool), [-1])
    return inputs, side_info, targets, rates, mask


def scan_update(
    state: GLNState,
    inputs: Array,
    side_info: Array,
    targets: Array,
    learning_rates: Array,
    *,
    config: GLNConfig,
    mask: Array | None = None,
) -> tuple[GLNState, tf.Tensor]:
    """Exact online learning over a stream: :func:`gln_tf.update` once per example.

    Args:
        state: the GLN state.
        inputs: ``[T, P]`` base probabilities.
        side_info: ``[T, N]`` raw examples.
        targets: ``[T]`` class labels.
        learning_rates: ``[T]`` rate of each example.
        config: the network's config.
        mask: optional ``[T]`` bools; a masked-out example learns with rate 0 and is not
            counted in ``step`` (padding).

    Returns:
        ``(state, p)`` with ``p [T, C]`` the prediction made before each example's update.

    Example:
        >>> state, p = scan_update(state, x, x, y, tf.fill([len(y)], 1e-3), config=config)
        ... # doctest: +SKIP
    """
    online, _ = _scans(config)
    stream = _stream(config, inputs, side_info, targets, learning_rates, mask)
    return online(_state(state, config), *stream)


def scan_batch_update(
    state: GLNState,
    inputs: Array,
    side_info: Array,
    targets: Array,
    learning_rates: Array,
    *,
    config: GLNConfig,
    mask: Array | None = None,
) -> tuple[GLNState, tf.Tensor]:
    """Batched learning over a stream: :func:`gln_tf.batch_update` once per batch.

    Args:
        state: the GLN state.
        inputs: ``[S, B, P]`` base probabilities, ``S`` batches of ``B``.
        side_info: ``[S, B, N]`` raw examples.
        targets: ``[S, B]`` class labels.
        learning_rates: ``[S, B]``.
        config: the network's config.
        mask: optional ``[S, B]`` bools; masked-out examples contribute nothing.

    Returns:
        ``(state, p)`` with ``p [S, B, C]``.

    Example:
        >>> state, p = scan_batch_update(state, xs, xs, ys, rates, config=config)
        ... # doctest: +SKIP
    """
    _, batched = _scans(config)
    shape = tf.shape(tf.convert_to_tensor(targets))
    stream = _stream(config, inputs, side_info, targets, learning_rates, mask)
    state, p = batched(_state(state, config), *stream, tf.cast(shape[1], tf.int32))
    return state, tf.reshape(p, [shape[0], shape[1], config.num_models])
