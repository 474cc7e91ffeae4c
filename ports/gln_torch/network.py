"""apply / update / batch_update of a GLN in PyTorch, vectorised across neurons and classes.

A transliteration of :mod:`gln_jax.core.network` (read its docstring for the semantics):

- base predictions ``clip(inputs, eps, 1 - eps)``; a layer's input logits are the logits of
  the previous layer's clipped outputs, with ``1.0`` appended last when ``config.bias``;
- neuron output ``p = clip(sigmoid(w_c . x), eps, 1 - eps)`` with ``c`` its context index;
- update of the active row only: ``w_c <- clip(w_c - lr * (p - y) * x, -wc, wc)``;
- a batch update predicts with the weights from before the batch, adds the deltas of all its
  examples into their rows (``index_add_``: shared rows accumulate), then clips the touched
  rows.

Each layer's weights ``[C, K, R, I]`` are viewed as a flat table ``[C*K*R, I]`` whose active
rows are addressed by flat row numbers ``(c*K + k)*R + context``, so reading and writing the
active rows of every neuron and class is one ``index_select`` / ``index_copy_`` per layer.
Everything runs under ``torch.no_grad()`` on the device of the state; the public functions
clone the state before writing and never modify their arguments.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from gln_jax.core.types import dense_scoring
from gln_torch import numerics
from gln_torch.gating import batch_context_indices, context_indices, tf32_possible
from gln_torch.multiclass import batch_class_targets, class_targets
from gln_torch.types import Array, GLNConfig, GLNState, as_tensor, torch_dtype

FlatWeights = Sequence[torch.Tensor]  # per layer [C*K*R, I], written in place by the helpers


def state_device(state: GLNState) -> torch.device:
    return state.layers[0].weights.device


def to_tensor(value, config: GLNConfig, device, dtype=None) -> torch.Tensor:
    """``value`` as a tensor of ``dtype`` (default ``config.dtype``) on ``device``."""
    return as_tensor(value, dtype=dtype or torch_dtype(config), device=device)


@torch.no_grad()
def base_predictions(x: Array, *, config: GLNConfig) -> torch.Tensor:
    """Default base predictions: the example itself, clipped into ``[eps, 1 - eps]``.

    Args:
        x: ``[N]`` (or ``[B, N]``) example with entries in [0, 1].
        config: the network's config.

    Returns:
        A new tensor of the same shape and device, clipped, in ``config.dtype``.

    Example:
        >>> base_predictions(torch.tensor([0.0, 0.5]), config=config)  # doctest: +SKIP
        tensor([0.0010, 0.5000])
    """
    x = as_tensor(x)
    return numerics.clip_probability(x.to(torch_dtype(config)), config.pred_clipping)


def append_bias(x: torch.Tensor, config: GLNConfig) -> torch.Tensor:
    """``[..., K]`` logits -> ``[..., K + 1]`` with the bias input ``1.0`` last (if any)."""
    if not config.bias:
        return x
    return torch.cat([x, torch.ones((*x.shape[:-1], 1), dtype=x.dtype, device=x.device)], -1)


def input_logits(inputs: torch.Tensor, config: GLNConfig) -> torch.Tensor:
    """``[..., K]`` base probabilities -> ``[..., K (+1)]`` first-layer input logits."""
    p = numerics.clip_probability(inputs.to(torch_dtype(config)), config.pred_clipping)
    return append_bias(numerics.logit(p), config)


def _row_offsets(config: GLNConfig, neurons: int, device) -> torch.Tensor:
    """``[C, K]`` int64 flat row of context 0 of every neuron of a layer."""
    models = torch.arange(config.num_models, dtype=torch.int64, device=device)[:, None]
    units = torch.arange(neurons, dtype=torch.int64, device=device)[None, :]
    return (models * neurons + units) * config.num_contexts


def flat_rows(contexts, config: GLNConfig) -> tuple[torch.Tensor, ...]:
    """Per layer ``[..., C, K]`` context indices -> flat row numbers (int64, same shape)."""
    return tuple(
        _row_offsets(config, k, c.device) + c.to(torch.int64)
        for c, k in zip(contexts, config.layer_sizes, strict=True)
    )


def clone_weights(state: GLNState, config: GLNConfig) -> list[torch.Tensor]:
    """Fresh contiguous copies of every layer's weights, in ``config.dtype``."""
    dtype = torch_dtype(config)
    return [
        layer.weights.to(dtype=dtype, copy=True).contiguous(memory_format=torch.contiguous_format)
        for layer in state.layers
    ]


def flatten(weights: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """Per layer ``[C, K, R, I]`` -> ``[C*K*R, I]`` views (writes go through to ``weights``)."""
    return [w.view(-1, w.shape[-1]) for w in weights]


def with_weights(state: GLNState, weights, step, *, copy_gating: bool = True) -> GLNState:
    """A new state with ``weights`` and ``step``; the gating tensors cloned unless told not."""

    def gating(tensor: torch.Tensor) -> torch.Tensor:
        return tensor.clone() if copy_gating else tensor

    layers = tuple(
        layer._replace(
            weights=w,
            hyperplanes=gating(layer.hyperplanes),
            hyperplane_bias=gating(layer.hyperplane_bias),
        )
        for layer, w in zip(state.layers, weights, strict=True)
    )
    step = as_tensor(step, dtype=torch.int32, device=state.step.device).clone()
    return GLNState(layers=layers, step=step)


def _row_dots(rows: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``[G, K, I]`` rows times ``[G, I]`` inputs -> ``[G, K]`` dot products.

    A batched matrix product, or an elementwise product and sum where float32 products may run
    in TF32 on CUDA (the reference sums these products at full precision).
    """
    if tf32_possible(rows):
        return torch.sum(rows * x[:, None, :], dim=-1)
    return torch.bmm(rows, x[:, :, None])[..., 0]


def _block(device: torch.device) -> int:
    """Examples whose first-layer rows are gathered at once (bounds the ``[b, C*K, I]``
    buffer: small on the CPU, larger on an accelerator)."""
    return 128 if device.type == "cpu" else 4096


def _first_layer_sums(wf: torch.Tensor, x: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
    """``w_c . x`` of every first-layer neuron: ``[B, I_0]`` inputs, ``[B, C, K]`` rows.

    Where the reference's rule says so (:func:`gln_jax.core.types.dense_scoring`: few rows per
    neuron, more than one example) the inputs meet every row in one matrix product and the
    active sums are picked (cheaper than gathering the rows); otherwise the rows are gathered.
    Where float32 products may use TF32 the rows are always gathered (an elementwise-exact
    batched product keeps full precision).
    """
    batch, classes, neurons = r.shape
    rows_per_neuron = wf.shape[0] // (classes * neurons)
    if dense_scoring(rows_per_neuron, batch) and not tf32_possible(wf):
        sums = torch.matmul(x, wf.T)  # [B, C*K*R]
        return torch.gather(sums, 1, r.reshape(batch, -1)).view(batch, classes, neurons)
    block = _block(wf.device)
    if batch <= block:
        active = wf.index_select(0, r.reshape(-1)).view(batch, classes * neurons, -1)
        return _row_dots(active, x).view(batch, classes, neurons)
    return torch.cat(
        [
            _first_layer_sums(wf, x[start : start + block], r[start : start + block])
            for start in range(0, batch, block)
        ]
    )


def _forward(flat_weights: FlatWeights, x0: torch.Tensor, rows, config: GLNConfig):
    """Forward pass of a batch, every class at once.

    Args:
        flat_weights: per layer ``[C*K*R, I]``.
        x0: ``[B, I_0]`` first-layer input logits (shared by the classes).
        rows: per layer ``[B, C, K]`` flat row numbers of the active rows.
        config: the network's config.

    Returns:
        ``(xs, ps)``: per layer the input logits (``[B, I_0]`` for the first layer, else
        ``[B, C, I]``) and the clipped outputs ``[B, C, K]``.
    """
    xs, ps = [], []
    x = x0
    for wf, r in zip(flat_weights, rows, strict=True):
        batch, classes, neurons = r.shape
        if x.dim() == 2:  # first layer: one input vector shared by every class
            s = _first_layer_sums(wf, x, r)
        else:
            active = wf.index_select(0, r.reshape(-1)).view(batch * classes, neurons, -1)
            s = _row_dots(active, x.reshape(batch * classes, -1)).view(batch, classes, neurons)
        p = numerics.clip_probability(numerics.sigmoid(s), config.pred_clipping)
        xs.append(x)
        ps.append(p)
        x = append_bias(numerics.logit(p), config)
    return xs, ps


def batch_step(
    flat_weights: FlatWeights, x0, rows, targets, rates, config: GLNConfig
) -> torch.Tensor:
    """Batch update in place: predictions from the old weights, deltas added, rows clipped.

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
        scale = rates[:, None, None] * (p - targets[:, :, None])  # [B, C, K]
        x_rows = x[:, None, None, :] if x.dim() == 2 else x[:, :, None, :]
        delta = -scale[..., None] * x_rows  # [B, C, K, I]
        flat = r.reshape(-1)
        wf.index_add_(0, flat, delta.reshape(flat.numel(), -1))
        touched = torch.unique(flat)
        wf.index_copy_(
            0, touched, numerics.clip_weights(wf.index_select(0, touched), config.weight_clipping)
        )
    return ps[-1][..., 0]


class StepBuffers:
    """What every exact online step of one stream reuses, made once by the caller.

    Attributes:
        tf32: whether float32 products might run in TF32 here (then they are summed elementwise).
        inputs: per hidden layer ``(x, logits)``: the next layer's input buffer ``[C, K + 1]``
            (``[C, K]`` without bias; the bias column holds 1.0) and its logit columns, a view
            that :func:`gln_torch.numerics.logit` writes into (no concatenation per step).
    """

    def __init__(self, flat_weights: FlatWeights, config: GLNConfig):
        first = flat_weights[0]
        self.tf32 = tf32_possible(first)
        self.inputs = []
        for k in config.layer_sizes[:-1]:
            x = first.new_ones((config.num_models, k + 1 if config.bias else k))
            self.inputs.append((x, x[:, :k]))


def online_step(flat_weights: FlatWeights, x0, rows, target, rate, config: GLNConfig, buffers=None):
    """Exact online update of one example in place.

    Args:
        flat_weights: per layer ``[C*K*R, I]``, written in place.
        x0: ``[I_0]`` input logits.
        rows: per layer ``[C*K]`` flat row numbers (int64).
        target: ``[C, 1]`` 0/1 targets in ``config.dtype``.
        rate: 0-d learning rate in ``config.dtype``.
        config: the network's config.
        buffers: the stream's :class:`StepBuffers` (made here when None); the next layer's
            inputs are written into them, so they must not be shared between threads.

    Returns:
        ``[C]`` prediction made before the update.
    """
    if buffers is None:
        buffers = StepBuffers(flat_weights, config)
    last = len(flat_weights) - 1
    x = x0
    p = x0
    for layer, (wf, r) in enumerate(zip(flat_weights, rows, strict=True)):
        p = learn_rows(wf, r, x, target, rate, config, buffers.tf32)
        if layer < last:  # the output layer's logits feed nothing
            x, logits = buffers.inputs[layer]
            numerics.logit(p, out=logits)
    return p[:, 0]


def learn_rows(wf, r, x, target, rate, config: GLNConfig, tf32: bool) -> torch.Tensor:
    """One layer's exact online step in place: its active rows' outputs, then their update.

    Args:
        wf: the layer's ``[C*K*R, I]`` table, written in place.
        r: ``[C*K]`` flat row numbers (int64).
        x: ``[I]`` inputs shared by the classes (first layer) or ``[C, I]`` one per class.
        target: the 0/1 targets, ``[C, 1]`` or ``[C, K]``.
        rate: 0-d learning rate in ``config.dtype``.
        config: the network's config.
        tf32: whether float32 products might run in TF32 (then they are summed elementwise).

    Returns:
        ``[C, K]`` clipped outputs, from the rows before the update.
    """
    eps, clip = config.pred_clipping, config.weight_clipping
    classes = config.num_models
    active = wf.index_select(0, r)  # [C*K, I]
    if x.dim() == 1:
        if tf32:
            p = _row_dots(active[None], x[None]).view(classes, -1)
        else:
            p = torch.mv(active, x).view(classes, -1)
        x_rows = x
    else:
        grouped = active.view(classes, -1, active.shape[1])
        p = _row_dots(grouped, x)
        x_rows = x[:, None, :]
    p = torch.sigmoid(p).clamp_(eps, 1.0 - eps)  # [C, K]
    scale = torch.sub(p, target).mul_(rate).unsqueeze_(-1)
    active = active.view(classes, -1, active.shape[1])
    active.addcmul_(scale, x_rows, value=-1.0).clamp_(-clip, clip)  # w - scale * x
    wf.index_copy_(0, r, active.view(r.shape[0], -1))
    return p


def _as_contexts(contexts, device) -> tuple[torch.Tensor, ...]:
    return tuple(as_tensor(c, device=device) for c in contexts)


@torch.no_grad()
def apply_from_contexts(state: GLNState, inputs: Array, contexts, *, config: GLNConfig):
    """:func:`apply` with precomputed context indices (per layer ``[C, K]``)."""
    device = state_device(state)
    contexts = tuple(c[None] for c in _as_contexts(contexts, device))
    return batch_apply_from_contexts(
        state, to_tensor(inputs, config, device)[None], contexts, config=config
    )[0]


@torch.no_grad()
def batch_apply_from_contexts(state: GLNState, inputs: Array, contexts, *, config: GLNConfig):
    """Probabilities ``[B, C]`` of a batch with context indices per layer ``[B, C, K]``."""
    device = state_device(state)
    dtype = torch_dtype(config)
    flat = [layer.weights.to(dtype).reshape(-1, layer.weights.shape[-1]) for layer in state.layers]
    x0 = input_logits(to_tensor(inputs, config, device), config)
    rows = flat_rows(_as_contexts(contexts, device), config)
    _, ps = _forward(flat, x0, rows, config)
    return ps[-1][..., 0]


@torch.no_grad()
def batch_apply(state: GLNState, inputs: Array, side_info: Array, *, config: GLNConfig):
    """Probabilities of a batch: :func:`apply` for every example, all at once.

    The contexts come from one matrix product; the first layer of a batch with at least as
    many examples as rows per neuron scores every row with one matrix product and picks the
    active one, smaller batches gather the active rows. Equals the reference's ``batch_apply``
    up to float rounding.

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


@torch.no_grad()
def apply(state: GLNState, inputs: Array, side_info: Array, *, config: GLNConfig) -> torch.Tensor:
    """Probability of the positive class of every one-vs-all model, for one example.

    Args:
        state: the GLN state (tensors on one device).
        inputs: ``[P]`` base probabilities (see :func:`base_predictions`).
        side_info: ``[N]`` raw example, looked at by the gates.
        config: the network's config.

    Returns:
        ``[C]`` clipped probabilities in ``config.dtype`` on the state's device.

    Example:
        >>> p = apply(state, x, x, config=config)  # doctest: +SKIP
    """
    contexts = context_indices(state.layers, side_info, config=config)
    return apply_from_contexts(state, inputs, contexts, config=config)


@torch.no_grad()
def update_from_contexts(
    state, inputs, contexts, target, learning_rate, *, config: GLNConfig, count=1
):
    """:func:`update` with precomputed context indices; ``count`` (0 or 1) advances ``step``."""
    device = state_device(state)
    weights = clone_weights(state, config)
    rows = flat_rows(_as_contexts(contexts, device), config)
    target = class_targets(as_tensor(target, device=device), config)
    p = online_step(
        flatten(weights),
        input_logits(to_tensor(inputs, config, device), config),
        tuple(r.reshape(-1) for r in rows),
        target.to(torch_dtype(config))[:, None],
        to_tensor(learning_rate, config, device),
        config,
    )
    return with_weights(state, weights, numerics.advance_step(state.step, count)), p


@torch.no_grad()
def update(
    state: GLNState,
    inputs: Array,
    side_info: Array,
    target: Array,
    learning_rate: Array,
    *,
    config: GLNConfig,
) -> tuple[GLNState, torch.Tensor]:
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


@torch.no_grad()
def batch_update_from_contexts(
    state, inputs, contexts, targets, learning_rates, *, config: GLNConfig, mask=None
):
    """:func:`batch_update` with contexts per layer ``[B, C, K]``; ``mask [B]`` drops padding."""
    device = state_device(state)
    rates = to_tensor(learning_rates, config, device).reshape(-1)
    count = rates.shape[0]
    if mask is not None:
        mask = as_tensor(mask, dtype=torch.bool, device=device).reshape(-1)
        rates = torch.where(mask, rates, torch.zeros_like(rates))
        count = int(mask.sum())
    weights = clone_weights(state, config)
    targets = batch_class_targets(as_tensor(targets, device=device), config)
    p = batch_step(
        flatten(weights),
        input_logits(to_tensor(inputs, config, device), config),
        flat_rows(_as_contexts(contexts, device), config),
        targets.to(torch_dtype(config)),
        rates,
        config,
    )
    return with_weights(state, weights, numerics.advance_step(state.step, count)), p


@torch.no_grad()
def batch_update(
    state: GLNState,
    inputs: Array,
    side_info: Array,
    targets: Array,
    learning_rates: Array,
    *,
    config: GLNConfig,
) -> tuple[GLNState, torch.Tensor]:
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
        >>> state, p = batch_update(state, xs, xs, ys, torch.full((len(ys),), 1e-3),
        ...                         config=config)  # doctest: +SKIP
    """
    contexts = batch_context_indices(state.layers, side_info, config=config)
    return batch_update_from_contexts(
        state, inputs, contexts, targets, learning_rates, config=config
    )
