"""The host-side driver of exact online and batched learning over a long stream, in NumPy.

:func:`fit_stream` feeds a stream through the loops of :mod:`gln_numpy.scan` one chunk at a
time (the context indices of a chunk are computed at once), so memory stays bounded. The
stream drivers :func:`scan_update` and :func:`scan_batch_update` live in :mod:`gln_numpy.scan`;
this module re-exports them.
"""

from __future__ import annotations

import numpy as np

from gln_jax.core.types import CHUNK_SIZE
from gln_numpy import numerics
from gln_numpy.network import batch_step, copy_weights, flatten, with_weights
from gln_numpy.scan import _online_loop, _prepare
from gln_numpy.scan import scan_batch_update as scan_batch_update
from gln_numpy.scan import scan_update as scan_update
from gln_numpy.types import Array, GLNConfig, GLNState


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
) -> tuple[GLNState, np.ndarray]:
    """Trains on a whole stream in order, in chunks that bound the memory.

    ``batch_size == 1`` is exact online learning; otherwise consecutive batches of
    ``batch_size`` examples are learned with :func:`gln_numpy.batch_update` semantics and a last
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
        ``(state, p)`` with ``p`` a ``[T, C]`` array of the predictions made before each
        update.

    Example:
        >>> state, p = fit_stream(state, x, x, y, rates, config=config)  # doctest: +SKIP
    """
    if route != "auto":
        raise ValueError(
            f"fit_stream: route={route!r}: the NumPy port trains one way, route='auto' "
            "('kernel' and 'xla' are the JAX reference's routes)"
        )
    targets = np.asarray(targets)
    total = targets.shape[0]
    length = batch_size * max(1, chunk_size // batch_size)
    weights = copy_weights(state, config)
    flat = flatten(weights)
    out = np.empty((total, config.num_models), config.dtype)
    for start in range(0, total, length):
        stop = min(start + length, total)
        x0, rows, target_rows, rates = _prepare(
            state,
            inputs[start:stop],
            side_info[start:stop],
            targets[start:stop],
            learning_rates[start:stop],
            config,
        )
        if batch_size == 1:
            out[start:stop] = _online_loop(flat, x0, rows, target_rows, rates, config)
            continue
        for first in range(0, stop - start, batch_size):
            part = slice(first, min(first + batch_size, stop - start))
            out[start + part.start : start + part.stop] = batch_step(
                flat,
                x0[part],
                tuple(r[part] for r in rows),
                target_rows[part],
                rates[part],
                config,
            )
    return with_weights(state, weights, numerics.advance_step(state.step, total)), out
