"""Context indices by the kernel's sparse halfspace gating (``GlnGates`` in ``online_step.cc``).

The gates of :func:`gln_jax.core.gating.batch_context_indices` as one foreign call over the
transposed hyperplanes of every layer: each example's projections are ascending sequential
sums over its non-zero entries only (a zero adds an exact zero, so the sums are those over
every entry), which reads a fraction of the hyperplanes on sparse inputs such as images. The
indices equal XLA's wherever no projection lies within rounding of its threshold (XLA's
matrix product sums in another, blocked order); they never depend on the batch, the chunks or
the threads, so a chunked stream, an ensemble and its separate fits all see the same gates.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from gln_jax.core.types import Array, GLNConfig, LayerState

#: The XLA FFI target name of the gating call (CPU).
TARGET = "gln_jax_gates"
#: The kernel reads the columns in passes of 64 floats (32 doubles): the matrix is padded.
COLUMN_MULTIPLE = 64


class GateMatrix(NamedTuple):
    """Every layer's hyperplanes in the layout the gating call reads.

    Attributes:
        planes_t: ``[N, J]`` the hyperplanes transposed, ``sum_l M * K_l * m`` columns, layer
            by layer, each model-major (``M`` models: the classes, or an ensemble's members
            times classes), then zero columns up to a multiple of :data:`COLUMN_MULTIPLE`.
        thresholds: ``[J]`` the gating thresholds in the same order (zero padded).
    """

    planes_t: jax.Array
    thresholds: jax.Array


def gate_matrix(layers: tuple[LayerState, ...]) -> GateMatrix:
    """Gathers the layers' hyperplanes into one transposed matrix (a copy: build it once).

    Args:
        layers: a state's layers (hyperplanes ``[C, K, m, N]``), or an ensemble's (a leading
            ``[E]`` axis on every leaf; its members are flattened model-major, ``M = E * C``).

    Returns:
        The :class:`GateMatrix`.
    """
    planes = [jnp.reshape(layer.hyperplanes, (-1, layer.hyperplanes.shape[-1])) for layer in layers]
    thresholds = jnp.concatenate([jnp.reshape(layer.hyperplane_bias, (-1,)) for layer in layers])
    pad = -thresholds.shape[0] % COLUMN_MULTIPLE
    planes_t = jnp.pad(jnp.concatenate(planes, axis=0).T, ((0, 0), (0, pad)))
    return GateMatrix(planes_t, jnp.pad(thresholds, (0, pad)))


def kernel_context_indices(
    gates: GateMatrix,
    side_info: Array,
    *,
    config: GLNConfig,
    members: int = 1,
    threads: int = 1,
) -> tuple[jax.Array, ...]:
    """Context indices of a batch, every layer and model, from one foreign call.

    Args:
        gates: the :class:`GateMatrix` of the layers.
        side_info: ``[B, N]`` raw examples.
        config: the network's config (its dtype, layers and ``context_map_size``, at least 1).
        members: the ensemble members in ``gates`` (``M = members * config.num_models``).
        threads: threads the examples are split over (the indices do not depend on it).

    Returns:
        One int32 array ``[B, M, K_l]`` per layer, as
        :func:`gln_jax.core.gating.batch_context_indices` (equal wherever no projection lies
        within rounding of its threshold).

    Raises:
        RuntimeError: when the kernel is not available (see :func:`.online.load`).
    """
    from gln_jax.core.kernel import online  # noqa: PLC0415 - online imports this module

    online.require()  # at trace time: the first kernel call of a process may be this one
    dtype = jnp.dtype(config.dtype)
    side_info = jnp.asarray(side_info, dtype)
    batch = side_info.shape[0]
    results = tuple(
        jax.ShapeDtypeStruct((batch, members * config.num_models, k), jnp.int32)
        for k in config.layer_sizes
    )
    call = jax.ffi.ffi_call(TARGET, results)
    return tuple(
        call(
            side_info,
            jnp.asarray(gates.planes_t, dtype),
            jnp.asarray(gates.thresholds, dtype),
            context_map_size=np.int64(config.context_map_size),
            num_threads=np.int64(threads),
        )
    )
