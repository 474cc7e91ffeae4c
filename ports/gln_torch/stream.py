"""The host-side driver of exact online and batched learning over a long stream, in PyTorch.

:func:`fit_stream` (and :func:`fit_chunks`, its in-place core, which the engine calls) feeds a
stream through the loops of :mod:`gln_torch.scan` one chunk at a time (the context indices of
a chunk are computed at once), so memory stays bounded. The stream drivers
:func:`scan_update` and :func:`scan_batch_update` live in :mod:`gln_torch.scan`; this module
re-exports them.
"""

from __future__ import annotations

import torch

from gln_jax.core.types import CHUNK_SIZE
from gln_torch import numerics
from gln_torch.network import (
    batch_step,
    clone_weights,
    flatten,
    state_device,
    to_tensor,
    with_weights,
)
from gln_torch.scan import _online_loop, _prepare
from gln_torch.scan import scan_batch_update as scan_batch_update
from gln_torch.scan import scan_update as scan_update
from gln_torch.types import Array, GLNConfig, GLNState, torch_dtype


def fit_chunks(
    flat_weights, state, inputs, side_info, targets, rates, *, config, batch_size, chunk_size
) -> torch.Tensor:
    """Learns a stream in order into ``flat_weights`` (in place); returns ``p [T, C]``.

    Args:
        flat_weights: per layer ``[C*K*R, I]`` working copies, written in place.
        state: the state whose gating the contexts use.
        inputs: ``[T, P]`` base probabilities.
        side_info: ``[T, N]`` raw examples.
        targets: ``[T]`` labels.
        rates: ``[T]`` learning rates.
        config: the network's config.
        batch_size: examples per update; a last partial batch is a smaller batch.
        chunk_size: most examples whose contexts are computed at once.
    """
    device = state_device(state)
    total = len(targets)
    length = batch_size * max(1, chunk_size // batch_size)
    out = []
    for start in range(0, total, length):
        stop = min(start + length, total)
        x0, rows, target_rows, chunk_rates = _prepare(
            state,
            to_tensor(inputs[start:stop], config, device),
            to_tensor(side_info[start:stop], config, device),
            targets[start:stop],
            rates[start:stop],
            config,
        )
        if batch_size == 1:
            out.append(_online_loop(flat_weights, x0, rows, target_rows, chunk_rates, config))
            continue
        for first in range(0, stop - start, batch_size):
            part = slice(first, first + batch_size)
            out.append(
                batch_step(
                    flat_weights,
                    x0[part],
                    tuple(r[part] for r in rows),
                    target_rows[part],
                    chunk_rates[part],
                    config,
                )
            )
    if not out:
        return torch.empty((0, config.num_models), dtype=torch_dtype(config), device=device)
    return torch.cat(out)


@torch.no_grad()
def fit_stream(
    state: GLNState,
    inputs: Array,
    side_info: Array,
    targets: Array,
    learning_rates: Array,
    *,
    config: GLNConfig,
    batch_size: int = 1,
    chunk_size: int = CHUNK_SIZE,
    route: str = "auto",
) -> tuple[GLNState, torch.Tensor]:
    """Trains on a whole stream in order, in chunks that bound the memory.

    ``batch_size == 1`` is exact online learning; otherwise consecutive batches of
    ``batch_size`` examples are learned with :func:`gln_torch.batch_update` semantics and a last
    partial batch is a smaller batch. The caller's ``state`` is left intact.

    Args:
        state: the GLN state.
        inputs: ``[T, P]`` base probabilities.
        side_info: ``[T, N]`` raw examples.
        targets: ``[T]`` class labels.
        learning_rates: ``[T]`` rate of each example.
        config: the network's config.
        batch_size: examples per update.
        chunk_size: most examples whose contexts are computed at once.
        route: ``"auto"``, the one route of this port (the reference's ``"kernel"`` and
            ``"xla"`` name its own implementations).

    Returns:
        ``(state, p)`` with ``p [T, C]`` the predictions made before each update, on the
        state's device.

    Example:
        >>> state, p = fit_stream(state, x, x, y, rates, config=config)  # doctest: +SKIP
    """
    if route != "auto":
        raise ValueError(
            f"fit_stream: route={route!r}: the PyTorch port trains one way, route='auto' "
            "('kernel' and 'xla' are the JAX reference's routes)"
        )
    weights = clone_weights(state, config)
    p = fit_chunks(
        flatten(weights),
        state,
        inputs,
        side_info,
        targets,
        learning_rates,
        config=config,
        batch_size=batch_size,
        chunk_size=chunk_size,
    )
    return with_weights(state, weights, numerics.advance_step(state.step, p.shape[0])), p
