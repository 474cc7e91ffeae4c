"""Exact online learning in PyTorch, layer by layer over chunks in Gram form.

The driver, its policy and the derivation live in :mod:`gln_common.chunked`; this module
supplies PyTorch's arithmetic (:data:`OPS`). The sequential loop launches six kernels on
``[CK]`` vectors (``CK = C * K``, the flattened class-neuron axis) per layer and step (instead
of a gather, a matrix-vector product, an update, a clamp and a scatter of rows as wide as the
input), and the table moves once per chunk by ``addmm_``.

The chunk's matrix products would run in TF32 where float32 CUDA matmuls may (see
:func:`gln_torch.gating.tf32_possible`); there the per-step loop is kept.
"""

from __future__ import annotations

import torch
from gln_common import chunked as driver

from gln_torch import numerics
from gln_torch.gating import tf32_possible
from gln_torch.network import append_bias, learn_rows
from gln_torch.types import GLNConfig


def _scores(wf: torch.Tensor, x: torch.Tensor, rows: torch.Tensor, shared: bool) -> torch.Tensor:
    """``W[row] . x`` of every step and neuron of a chunk, ``[T, CK]`` (as the NumPy port)."""
    steps = rows.shape[0]
    if shared:
        every = wf @ x.T  # [C*K*R, T]
        picks = torch.arange(steps, device=wf.device)[:, None]
        return every[rows.reshape(steps, -1), picks]
    active = wf[rows]  # [T, C, K, I]
    return torch.linalg.vecdot(active, x[:, :, None, :]).reshape(steps, -1)


def _gram(x: torch.Tensor, shared: bool) -> torch.Tensor:
    """``x_t . x_s`` for ``s < t``, else 0: ``[t, 1, 1, s]``, or ``[t, C, 1, s]`` per class."""
    steps = x.shape[0]
    if shared:
        gram = (x @ x.T)[:, None, None, :]
    else:
        gram = torch.bmm(x.transpose(0, 1), x.permute(1, 2, 0))  # [C, t, s]
        gram = gram.permute(1, 0, 2)[:, :, None, :]
    earlier = torch.ones((steps, steps), dtype=x.dtype, device=x.device).tril_(-1)
    return gram * earlier[:, None, None, :]


def coefficients(wf, x, rows, shared: bool) -> torch.Tensor:
    """``[T, CK, T + 1]``: the Gram terms of the earlier steps that hit the same row, then the
    chunk-start score (see :class:`gln_common.chunked.ChunkOps`)."""
    steps, classes, neurons = rows.shape
    width = classes * neurons
    flat_rows = rows.reshape(steps, width)
    out = torch.empty((steps, width, steps + 1), dtype=wf.dtype, device=wf.device)
    terms = out[:, :, :steps]  # 1 where s hit the same row as t
    terms.copy_(flat_rows[:, :, None] == flat_rows.T[None, :, :])
    per_class = terms.view(steps, classes, neurons, steps)
    per_class.mul_(_gram(x, shared))  # times x_t . x_s, s < t
    out[:, :, steps] = _scores(wf, x, rows, shared)
    return out


def scan(coefficients, targets, rates, config: GLNConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """The sequential loop: ``(p [T, CK], h [T, CK])`` with ``h_t = lr_t (y_t - p_t)``.

    Step ``t``'s score is one row dot: its coefficients ``[CK, T + 1]`` against the transposed
    ``[T + 1, CK]`` buffer of each earlier step's ``lr (y - p)``, then 1.
    """
    steps, width = coefficients.shape[:2]
    eps = config.pred_clipping
    options = {"dtype": coefficients.dtype, "device": coefficients.device}
    h_rows = torch.zeros((steps + 1, width), **options)  # -g of each step once taken
    h_rows[steps] = 1.0
    h = h_rows.T  # [CK, T + 1]
    p = torch.empty((steps, width), **options)
    z = torch.empty(width, **options)
    step_rates = rates.unbind(0)
    for t in range(steps):  # six kernels on [CK] vectors per step
        torch.linalg.vecdot(coefficients[t], h, out=z)  # the score
        torch.sigmoid(z, out=z)
        pt = torch.clamp(z, eps, 1.0 - eps, out=p[t])
        torch.mul(torch.sub(targets[t], pt, out=z), step_rates[t], out=h_rows[t])
    return p, h_rows[:steps]  # -g exactly (negation is exact)


def excursions(rows, h, x, shared: bool, neurons: int, table_rows: int) -> torch.Tensor:
    """Per table row, ``sum_t |g_t| max|x_t|`` over the chunk's steps that hit it."""
    steps = rows.shape[0]
    if shared:
        largest = x.abs().amax(dim=1)[:, None, None]  # [T, 1, 1]
    else:
        largest = x.abs().amax(dim=2)[:, :, None]  # [T, C, 1]
    terms = h.abs().reshape(steps, -1, neurons) * largest
    return torch.bincount(rows.reshape(-1), weights=terms.reshape(-1), minlength=table_rows)


def largest(rows: torch.Tensor) -> torch.Tensor:
    """``[U, I]`` rows -> ``[U]`` the largest ``|w|`` of each."""
    return rows.abs().amax(dim=1)


def add_steps(wf, flat_rows, h, x, shared: bool) -> None:
    """Adds each step's ``h_t x_t`` into the rows it hit, by one matrix product, in place."""
    steps = flat_rows.shape[0]
    table = torch.zeros((wf.shape[0], steps), dtype=wf.dtype, device=wf.device)
    table[flat_rows, torch.arange(steps, device=wf.device)[:, None]] = h
    if shared:
        wf.addmm_(table, x)
    else:
        classes = x.shape[1]
        per_class = wf.view(classes, -1, wf.shape[1])  # [C, K*R, I]
        per_class.baddbmm_(table.view(classes, -1, steps), x.transpose(0, 1))


def replay(wf, x, rows, targets, rates, config: GLNConfig) -> torch.Tensor:
    """The layer's chunk one example at a time (the port's per-step update, clamp included)."""
    steps, classes, neurons = rows.shape
    out = torch.empty(targets.shape, dtype=wf.dtype, device=wf.device)
    for t in range(steps):  # chunks run only where no product may run in TF32
        target = targets[t].view(classes, neurons)
        p = learn_rows(wf, rows[t].reshape(-1), x[t], target, rates[t], config, tf32=False)
        out[t] = p.reshape(-1)
    return out


def repeat(targets: torch.Tensor, neurons: int) -> torch.Tensor:
    """``[T, C]`` targets -> ``[T, CK]``: each class's target for each of its neurons."""
    return targets.repeat_interleave(neurons, dim=1)


def concatenate(parts) -> torch.Tensor:
    """The parts joined along the first axis."""
    return torch.cat(parts)


def next_inputs(p: torch.Tensor, shape, config: GLNConfig) -> torch.Tensor:
    """``[T, CK]`` outputs -> the next layer's input logits ``[T, C, K (+1)]``."""
    return append_bias(numerics.logit(p).reshape(shape), config)


#: PyTorch's arithmetic for the shared driver (each field is this module's function of its name).
OPS = driver.ChunkOps(
    coefficients, scan, excursions, largest, add_steps, replay, repeat, concatenate, next_inputs
)


def use_chunked(config: GLNConfig, steps: int, weights: torch.Tensor) -> bool:
    """Whether a stream of ``steps`` examples learns in chunks (else one example at a time).

    Args:
        config: the network's config.
        steps: the stream's length.
        weights: a table of the model (its device and dtype decide the TF32 question).

    Returns:
        True with at most :data:`gln_common.chunked.MAX_ROWS` rows per neuron,
        :data:`gln_common.chunked.MIN_STEPS` examples, and products at full precision.

    Example:
        >>> use_chunked(config, 1000, module.state.layers[0].weights)  # doctest: +SKIP
        True
    """
    return driver.use_chunked(config, steps) and not tf32_possible(weights)


def online_loop(flat_weights, x0, rows, targets, rates, config: GLNConfig) -> torch.Tensor:
    """:func:`gln_common.chunked.online_loop` with PyTorch's :data:`OPS`: exact online
    learning of ``T`` examples in Gram chunks, in place on ``flat_weights`` (per layer
    ``[C*K*R, I]``); returns the predictions ``[T, C]`` made before each example's update.

    Example:
        >>> p = online_loop(flatten(weights), x0, rows, targets, rates, config)  # doctest: +SKIP
    """
    return driver.online_loop(OPS, flat_weights, x0, rows, targets, rates, config)
