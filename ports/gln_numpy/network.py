"""apply / update / batch_update of a GLN in NumPy, vectorised across neurons and classes.

A transliteration of :mod:`gln_jax.core.network` (read its docstring for the semantics):

- base predictions ``clip(inputs, eps, 1 - eps)``; a layer's input logits are the logits of the
  previous layer's clipped outputs, with ``1.0`` appended last when ``config.bias``;
- neuron output ``p = clip(sigmoid(w_c . x), eps, 1 - eps)`` with ``c`` its context index;
- update of the active row only: ``w_c <- clip(w_c - lr * (p - y) * x, -wc, wc)``;
- a batch update predicts with the weights from before the batch, adds the deltas of all its
  examples into their rows (shared rows accumulate), then clips the touched rows.

Internally each layer's weights ``[C, K, R, I]`` are viewed as a flat table ``[C*K*R, I]``
and the active rows are addressed by flat row numbers ``(c*K + k)*R + context``: reading and
writing the active rows of every neuron and class is one fancy-indexing operation per layer.
The public functions never write into their arguments: they copy the state first, and every
array they return is fresh.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from gln_jax.core.types import dense_scoring
from gln_numpy import numerics
from gln_numpy.gating import batch_context_indices, context_indices
from gln_numpy.multiclass import batch_class_targets, class_targets
from gln_numpy.types import Array, GLNConfig, GLNState

FlatWeights = Sequence[np.ndarray]  # per layer [C*K*R, I], written in place by the helpers


def base_predictions(x: Array, *, config: GLNConfig) -> np.ndarray:
    """Default base predictions: the example itself, clipped into ``[eps, 1 - eps]``.

    Args:
        x: ``[N]`` (or ``[B, N]``) example with entries in [0, 1].
        config: the network's config.

    Returns:
        A new array of the same shape, clipped, in ``config.dtype``.

    Example:
        >>> base_predictions(np.array([0.0, 0.5], np.float32), config=config)  # doctest: +SKIP
        array([0.001, 0.5  ], dtype=float32)
    """
    return numerics.clip_probability(np.asarray(x, config.dtype), config.pred_clipping)


def append_bias(x: np.ndarray, config: GLNConfig) -> np.ndarray:
    """``[..., K]`` logits -> ``[..., K + 1]`` with the bias input ``1.0`` last (if any)."""
    if not config.bias:
        return x
    return np.concatenate([x, np.ones((*x.shape[:-1], 1), x.dtype)], axis=-1)


def input_logits(inputs: Array, config: GLNConfig) -> np.ndarray:
    """``[..., K]`` base probabilities -> ``[..., K (+1)]`` first-layer input logits."""
    p = numerics.clip_probability(np.asarray(inputs, config.dtype), config.pred_clipping)
    return append_bias(numerics.logit(p), config)


def _row_offsets(config: GLNConfig, neurons: int) -> np.ndarray:
    """``[C, K]`` int64 flat row of context 0 of every neuron of a layer."""
    models = np.arange(config.num_models, dtype=np.int64)[:, None]
    return (models * neurons + np.arange(neurons, dtype=np.int64)[None, :]) * config.num_contexts


def flat_rows(contexts, config: GLNConfig) -> tuple[np.ndarray, ...]:
    """Per layer ``[..., C, K]`` context indices -> flat row numbers (int64, same shape)."""
    return tuple(
        _row_offsets(config, k) + np.asarray(c, np.int64)
        for c, k in zip(contexts, config.layer_sizes, strict=True)
    )


def copy_weights(state: GLNState, config: GLNConfig) -> list[np.ndarray]:
    """Fresh copies of every layer's weights, in ``config.dtype``."""
    return [np.array(layer.weights, dtype=config.dtype, copy=True) for layer in state.layers]


def flatten(weights: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Per layer ``[C, K, R, I]`` -> ``[C*K*R, I]`` views (writes go through to ``weights``)."""
    return [w.reshape(-1, w.shape[-1]) for w in weights]  # contiguous copies: always views


def with_weights(state: GLNState, weights, step, *, copy_gating: bool = True) -> GLNState:
    """A new state with ``weights`` and ``step``; the gating arrays copied unless told not."""
    gating = np.array if copy_gating else np.asarray
    layers = tuple(
        layer._replace(
            weights=w,
            hyperplanes=gating(layer.hyperplanes),
            hyperplane_bias=gating(layer.hyperplane_bias),
        )
        for layer, w in zip(state.layers, weights, strict=True)
    )
    return GLNState(layers=layers, step=np.asarray(step, np.int32))


#: Examples whose first-layer rows are gathered at once (bounds the ``[B, C*K, I]`` buffer).
BLOCK = 128
#: Most entries of one block of dense scores ``[b, C*K*R]`` (16 MiB in float32).
DENSE_BLOCK_ENTRIES = 1 << 22


def _first_layer_sums(
    wf: np.ndarray, x: np.ndarray, r: np.ndarray, *, dense: bool = False
) -> np.ndarray:
    """``w_c . x`` of every first-layer neuron: ``[B, I_0]`` inputs, ``[B, C, K]`` rows.

    With ``dense`` and where the reference's rule says so
    (:func:`gln_jax.core.types.dense_scoring`: few rows per neuron, more than one example) the
    inputs meet every row in one matrix product per block of examples and the active sums are
    picked: at 16 rows per neuron, 4-10x faster here than gathering each example's rows (a
    gathered copy of ``C*K`` rows per example, then as many small products). Otherwise the rows
    are gathered. Inference takes ``dense``; learning does not: OpenBLAS's matrix product sums
    in another order than its batched products, and over a float32 stream of batch updates
    that difference compounds past the ports' parity tolerance (a hypothesis case at batch 7).
    """
    batch, classes, neurons = r.shape
    flat = r.reshape(batch, classes * neurons)
    s = np.empty((batch, classes * neurons), wf.dtype)
    if dense and dense_scoring(wf.shape[0] // (classes * neurons), batch):
        step = max(1, DENSE_BLOCK_ENTRIES // wf.shape[0])
        for start in range(0, batch, step):
            block = slice(start, start + step)
            scores = numerics.matmul(x[block], wf.T)  # [b, C*K*R]
            s[block] = np.take_along_axis(scores, flat[block], axis=1)
        return s.reshape(batch, classes, neurons)
    for start in range(0, batch, BLOCK):
        block = slice(start, start + BLOCK)
        active = wf[flat[block]]  # [b, C*K, I]
        s[block] = numerics.matmul(active, x[block, :, None])[..., 0]
    return s.reshape(batch, classes, neurons)


def _forward(
    flat_weights: FlatWeights, x0: np.ndarray, rows, config: GLNConfig, *, dense: bool = False
):
    """Forward pass of a batch, every class at once.

    Args:
        flat_weights: per layer ``[C*K*R, I]``.
        x0: ``[B, I_0]`` first-layer input logits (shared by the classes).
        rows: per layer ``[B, C, K]`` flat row numbers of the active rows.
        config: the network's config.
        dense: the first layer may score every row (inference; see :func:`_first_layer_sums`).

    Returns:
        ``(xs, ps)``: per layer the input logits (``[B, I_0]`` for the first layer, else
        ``[B, C, I]``) and the clipped outputs ``[B, C, K]``.
    """
    xs, ps = [], []
    x = x0
    for wf, r in zip(flat_weights, rows, strict=True):
        if x.ndim == 2:  # first layer: one input vector shared by every class
            s = _first_layer_sums(wf, x, r, dense=dense)
        else:
            s = numerics.matmul(wf[r], x[:, :, :, None])[..., 0]  # [B, C, K, I] @ [B, C, I, 1]
        p = numerics.clip_probability(numerics.sigmoid(s), config.pred_clipping)
        xs.append(x)
        ps.append(p)
        x = append_bias(numerics.logit(p), config)
    return xs, ps


def batch_step(
    flat_weights: FlatWeights, x0, rows, targets, rates, config: GLNConfig
) -> np.ndarray:
    """Batch update in place: predictions from the old weights, deltas added, rows clipped.

    The deltas of a layer are summed per touched row by one product: a ``[U, B]`` table holds
    each example's ``-lr (p - y)`` in the rows it hit (``U`` touched rows; an example hits a
    row at most once, since neurons own disjoint rows), times the ``[B, I]`` inputs.

    Args:
        flat_weights: per layer ``[C*K*R, I]``, written in place.
        x0: ``[B, I_0]`` input logits.
        rows: per layer ``[B, C, K]`` flat row numbers.
        targets: ``[B, C]`` 0/1 targets in ``config.dtype``.
        rates: ``[B]`` learning rates in ``config.dtype`` (0 makes an example a no-op).
        config: the network's config.

    Returns:
        ``[B, C]`` predictions made before the update.
    """
    xs, ps = _forward(flat_weights, x0, rows, config)
    for wf, x, p, r in zip(flat_weights, xs, ps, rows, strict=True):
        batch = r.shape[0]
        scale = rates[:, None, None] * (p - targets[:, :, None])  # [B, C, K]
        touched, where = np.unique(r.reshape(-1), return_inverse=True)
        table = np.zeros((touched.size, batch), wf.dtype)  # [U, B]
        table[where.reshape(batch, -1), np.arange(batch)[:, None]] = -scale.reshape(batch, -1)
        if x.ndim == 2:  # first layer: one input vector per example, shared by the classes
            delta = numerics.matmul(table, x)  # [U, I]
        else:  # a row's input is its class's: [B, C, I] picked per touched row
            owner = touched // (wf.shape[0] // x.shape[1])  # the class of each touched row
            delta = np.einsum("ub,bui->ui", table, x[:, owner, :])
        wf[touched] = numerics.clip_weights(wf[touched] + delta, config.weight_clipping)
    return ps[-1][..., 0]


class StepBuffers:
    """Arrays one online step writes into, made once per stream instead of once per step.

    Per layer: the gathered active rows ``[C, K, I]``, their update ``[C, K, I]``, and (for
    every layer but the last) the next layer's input logits ``[C, K (+1)]`` with the bias
    column already set. The step then allocates nothing of the first layer's size.
    """

    def __init__(self, flat_weights: FlatWeights, rows, config: GLNConfig):
        """Makes the buffers.

        Args:
            flat_weights: per layer ``[C*K*R, I]``.
            rows: per layer ``[..., C, K]`` flat row numbers (one step's or a stream's).
            config: the network's config.
        """
        self.active, self.delta, self.inputs = [], [], []
        for wf, r in zip(flat_weights, rows, strict=True):
            shape = (*r.shape[-2:], wf.shape[1])  # [C, K, I]
            self.active.append(np.empty(shape, wf.dtype))
            self.delta.append(np.empty(shape, wf.dtype))
            logits = np.empty((shape[0], shape[1] + (1 if config.bias else 0)), wf.dtype)
            if config.bias:
                logits[:, -1] = 1.0
            self.inputs.append(logits)


def online_step(
    flat_weights: FlatWeights,
    x0,
    rows,
    target,
    rate,
    config: GLNConfig,
    buffers: StepBuffers | None = None,
):
    """Exact online update of one example in place.

    Args:
        flat_weights: per layer ``[C*K*R, I]``, written in place.
        x0: ``[I_0]`` input logits.
        rows: per layer ``[C, K]`` flat row numbers.
        target: ``[C]`` 0/1 targets in ``config.dtype``.
        rate: scalar learning rate in ``config.dtype``.
        config: the network's config.
        buffers: the stream's :class:`StepBuffers` (made here when not given).

    Returns:
        ``[C]`` prediction made before the update.
    """
    if buffers is None:
        buffers = StepBuffers(flat_weights, rows, config)
    column = target[:, None]
    x = x0
    p = None
    last = len(flat_weights) - 1
    # one guard for the step's products (see numerics.matmul): every operand is finite here
    with np.errstate(invalid="ignore"):
        for layer, (wf, r) in enumerate(zip(flat_weights, rows, strict=True)):
            p = learn_rows(
                wf, r, x, column, rate, config, buffers.active[layer], buffers.delta[layer]
            )
            if layer < last:  # the output layer's logits feed nothing
                x = buffers.inputs[layer]
                numerics.logit(p, out=x[:, : p.shape[1]])
    return p[:, 0]


def learn_rows(wf, r, x, target, rate, config: GLNConfig, active, delta) -> np.ndarray:
    """One layer's exact online step in place: its active rows' outputs, then their update.

    Args:
        wf: the layer's ``[C*K*R, I]`` table, written in place.
        r: ``[C, K]`` flat row numbers.
        x: ``[I]`` inputs shared by the classes (first layer) or ``[C, I]`` one per class.
        target: the 0/1 targets, ``[C, 1]`` or ``[C, K]``.
        rate: scalar learning rate in ``config.dtype``.
        config: the network's config.
        active: ``[C, K, I]`` buffer for the gathered rows; delta: the same, for their update.

    Returns:
        ``[C, K]`` clipped outputs, from the rows before the update.
    """
    # rows are in range by construction ("clip" skips a buffered copy)
    active = np.take(wf, r, axis=0, out=active, mode="clip")
    if x.ndim == 1:
        s = np.matmul(active, x)
        x_rows = x
    else:
        s = np.matmul(active, x[:, :, None])[..., 0]
        x_rows = x[:, None, :]
    p = numerics.clip_probability(numerics.sigmoid(s), config.pred_clipping)  # [C, K]
    step = np.multiply((rate * (p - target))[..., None], x_rows, out=delta)
    clip = config.weight_clipping
    wf[r] = numerics.clip_weights(np.subtract(active, step, out=active), clip, out=active)
    return p


def apply_from_contexts(state: GLNState, inputs: Array, contexts, *, config: GLNConfig):
    """:func:`apply` with precomputed context indices (per layer ``[C, K]``)."""
    p = batch_apply_from_contexts(
        state,
        np.asarray(inputs)[None],
        tuple(np.asarray(c)[None] for c in contexts),
        config=config,
    )
    return p[0]


def batch_apply_from_contexts(state: GLNState, inputs: Array, contexts, *, config: GLNConfig):
    """Probabilities ``[B, C]`` of a batch with context indices per layer ``[B, C, K]``."""
    flat = [
        np.asarray(layer.weights, config.dtype).reshape(-1, layer.weights.shape[-1])
        for layer in state.layers
    ]
    rows = flat_rows(contexts, config)
    _, ps = _forward(flat, input_logits(inputs, config), rows, config, dense=True)
    return ps[-1][..., 0]


def batch_apply(state: GLNState, inputs: Array, side_info: Array, *, config: GLNConfig):
    """Probabilities of a batch: :func:`apply` for every example, all at once.

    The contexts come from one matrix product; the first layer then scores every row by one
    matrix product and picks the active sums where :func:`gln_jax.core.types.dense_scoring`
    says so, else gathers the active rows of every neuron and class (in blocks of
    :data:`BLOCK` examples) and multiplies them by its inputs, like the deeper layers. Equals
    the reference's ``batch_apply`` up to float rounding.

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


def apply(state: GLNState, inputs: Array, side_info: Array, *, config: GLNConfig) -> np.ndarray:
    """Probability of the positive class of every one-vs-all model, for one example.

    Args:
        state: the GLN state (NumPy arrays).
        inputs: ``[P]`` base probabilities (see :func:`base_predictions`).
        side_info: ``[N]`` raw example, looked at by the gates.
        config: the network's config.

    Returns:
        ``[C]`` clipped probabilities in ``config.dtype``, ``C = config.num_models``.

    Example:
        >>> p = apply(state, x, x, config=config)  # doctest: +SKIP
    """
    contexts = context_indices(state.layers, side_info, config=config)
    return apply_from_contexts(state, inputs, contexts, config=config)


def update_from_contexts(
    state, inputs, contexts, target, learning_rate, *, config: GLNConfig, count=1
):
    """:func:`update` with precomputed context indices; ``count`` (0 or 1) advances ``step``."""
    dtype = np.dtype(config.dtype)
    weights = copy_weights(state, config)
    p = online_step(
        flatten(weights),
        input_logits(inputs, config),
        flat_rows(contexts, config),
        class_targets(target, config).astype(dtype),
        np.asarray(learning_rate, dtype),
        config,
    )
    return with_weights(state, weights, numerics.advance_step(state.step, count)), p


def update(
    state: GLNState,
    inputs: Array,
    side_info: Array,
    target: Array,
    learning_rate: Array,
    *,
    config: GLNConfig,
) -> tuple[GLNState, np.ndarray]:
    """Predicts one example, then learns from it (exact online step).

    Only the active row of each neuron moves, from that neuron's own clipped output:
    ``w_c <- clip(w_c - lr * (p - y) * x, -wc, wc)``. The argument state is not modified.

    Args:
        state: the GLN state.
        inputs: ``[P]`` base probabilities.
        side_info: ``[N]`` raw example.
        target: scalar class label in ``[0, num_classes)`` (0/1 or bool when binary).
        learning_rate: scalar rate for this example.
        config: the network's config.

    Returns:
        ``(new_state, p)`` with ``p [C]`` the prediction made before the update; the new state
        shares no memory with ``state``.

    Example:
        >>> state, p = update(state, x, x, 3, 1e-3, config=config)  # doctest: +SKIP
    """
    contexts = context_indices(state.layers, side_info, config=config)
    return update_from_contexts(state, inputs, contexts, target, learning_rate, config=config)


def batch_update_from_contexts(
    state, inputs, contexts, targets, learning_rates, *, config: GLNConfig, mask=None
):
    """:func:`batch_update` with contexts per layer ``[B, C, K]``; ``mask [B]`` drops padding."""
    dtype = np.dtype(config.dtype)
    rates = np.asarray(learning_rates, dtype).reshape(-1)
    count = rates.shape[0]
    if mask is not None:
        mask = np.asarray(mask, bool)
        rates = np.where(mask, rates, dtype.type(0))
        count = int(mask.sum())
    weights = copy_weights(state, config)
    p = batch_step(
        flatten(weights),
        input_logits(inputs, config),
        flat_rows(contexts, config),
        batch_class_targets(targets, config).astype(dtype),
        rates,
        config,
    )
    return with_weights(state, weights, numerics.advance_step(state.step, count)), p


def batch_update(
    state: GLNState,
    inputs: Array,
    side_info: Array,
    targets: Array,
    learning_rates: Array,
    *,
    config: GLNConfig,
) -> tuple[GLNState, np.ndarray]:
    """Predicts a batch with the weights from before it, then learns from all of it.

    Example ``i`` contributes ``-learning_rates[i] * (p_i - y_i) * x_i`` to its active rows;
    contributions to a shared row add up; the touched rows are then clipped and ``step``
    advances by the batch size. A batch of one equals :func:`update`.

    Args:
        state: the GLN state (not modified).
        inputs: ``[B, P]`` base probabilities.
        side_info: ``[B, N]`` raw examples.
        targets: ``[B]`` class labels.
        learning_rates: ``[B]`` rate of each example.
        config: the network's config.

    Returns:
        ``(new_state, p)`` with ``p [B, C]`` the predictions made before the update.

    Example:
        >>> state, p = batch_update(state, xs, xs, ys, np.full(len(ys), 1e-3), config=config)
        ... # doctest: +SKIP
    """
    contexts = batch_context_indices(state.layers, side_info, config=config)
    return batch_update_from_contexts(
        state, inputs, contexts, targets, learning_rates, config=config
    )
