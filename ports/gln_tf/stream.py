"""The host-side driver of exact online and batched learning over a long stream, in TensorFlow.

:func:`fit_stream` feeds a stream through the compiled scans of :mod:`gln_tf.scan` one
fixed-size chunk at a time, so memory stays bounded and each scan is traced once per config.
The stream drivers :func:`scan_update` and :func:`scan_batch_update` live in
:mod:`gln_tf.scan`; this module re-exports them.
"""

from __future__ import annotations

import tensorflow as tf

from gln_jax.core.types import CHUNK_SIZE
from gln_tf.scan import _scans, _state, _stream
from gln_tf.scan import scan_batch_update as scan_batch_update
from gln_tf.scan import scan_update as scan_update
from gln_tf.types import Array, GLNConfig, GLNState, tf_dtype


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
) -> tuple[GLNState, tf.Tensor]:
    """Trains on a whole stream in order, in chunks that bound the memory.

    ``batch_size == 1`` is exact online learning; otherwise consecutive batches of
    ``batch_size`` examples are learned with :func:`gln_tf.batch_update` semantics and a last
    partial batch is a smaller batch.

    Args:
        state: the GLN state.
        inputs: ``[T, P]`` base probabilities.
        side_info: ``[T, N]`` raw examples.
        targets: ``[T]`` class labels.
        learning_rates: ``[T]`` rate of each example.
        config: the network's config.
        batch_size: examples per update.
        chunk_size: most examples per call of the compiled scan.
        route: ``"auto"``, the one route of this port (the reference's ``"kernel"`` and
            ``"xla"`` name its own implementations).

    Returns:
        ``(state, p)`` with ``p [T, C]`` the predictions made before each update.

    Example:
        >>> state, p = fit_stream(state, x, x, y, rates, config=config)  # doctest: +SKIP
    """
    if route != "auto":
        raise ValueError(
            f"fit_stream: route={route!r}: the TensorFlow port trains one way, route='auto' "
            "('kernel' and 'xla' are the JAX reference's routes)"
        )
    online, batched = _scans(config)
    stream = _stream(config, inputs, side_info, targets, learning_rates, None)
    total = int(stream[2].shape[0])
    length = batch_size * max(1, chunk_size // batch_size)
    state = _state(state, config)
    outputs = []
    for start in range(0, total, length):
        chunk = [a[start : start + length] for a in stream]
        if batch_size == 1:
            state, p = online(state, *chunk)
        else:
            state, p = batched(state, *chunk, tf.constant(batch_size, tf.int32))
        outputs.append(p)
    if not outputs:
        return state, tf.zeros([0, config.num_models], tf_dtype(config))
    return state, tf.concat(outputs, axis=0)
