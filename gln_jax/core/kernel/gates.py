"""Context indices by the kernel's sparse gating (``GlnGates`` in ``gates.cc``).

The gating of :func:`gln_jax.core.gating.batch_context_indices` as one foreign call over the
transposed hyperplanes of every layer: each example's projections are ascending sequential
sums over its non-zero entries only (a zero adds an exact zero, so the sums are those over
every entry), which reads a fraction of the hyperplanes on sparse inputs such as images. The
context indices equal XLA's wherever no projection lies within rounding of its hyperplane's
bias (XLA's matrix product sums in another, blocked order); they never depend on the batch,
the chunks or the threads, so a chunked stream, an ensemble and its separate fits all see the
same context indices.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from gln_jax.core.kernel import library
from gln_jax.core.types import Array, GLNConfig, LayerState

#: The XLA FFI target name of the gating call (CPU).
TARGET = library.GATES_TARGET
#: The kernel reads the columns in passes of 64 floats (32 doubles): the matrix is padded.
COLUMN_MULTIPLE = 64


class GateMatrix(NamedTuple):
    """Every layer's hyperplanes in the layout the gating call reads.

    Attributes:
        hyperplanes_t: ``[N, J]`` the hyperplanes transposed, ``sum_l C * K_l * H`` columns,
            layer by layer, each in the order of the hyperplanes ``[C, K, H, N]`` (``C`` the
            flattened class axis: the classes, or an ensemble's ``E`` members times its
            classes, member-major), then zero columns up to a multiple of
            :data:`COLUMN_MULTIPLE`.
        hyperplane_bias: ``[J]`` the hyperplanes' offsets in the same order (zero padded).
    """

    hyperplanes_t: jax.Array
    hyperplane_bias: jax.Array


def gate_matrix(layers: tuple[LayerState, ...]) -> GateMatrix:
    """Gathers the layers' hyperplanes into one transposed matrix (a copy: build it once).

    Args:
        layers: a state's layers (hyperplanes ``[C, K, H, N]``), or an ensemble's (a leading
            ``[E]`` axis on every leaf; its members are flattened member-major into the class
            axis, ``E * C`` columns per neuron and hyperplane).

    Returns:
        The :class:`GateMatrix`.
    """
    planes = [jnp.reshape(layer.hyperplanes, (-1, layer.hyperplanes.shape[-1])) for layer in layers]
    bias = jnp.concatenate([jnp.reshape(layer.hyperplane_bias, (-1,)) for layer in layers])
    pad = -bias.shape[0] % COLUMN_MULTIPLE
    hyperplanes_t = jnp.pad(jnp.concatenate(planes, axis=0).T, ((0, 0), (0, pad)))
    return GateMatrix(hyperplanes_t, jnp.pad(bias, (0, pad)))


def kernel_context_indices(
    gates: GateMatrix,
    side_info: Array,
    *,
    config: GLNConfig,
    members: int = 1,
    threads: int = 1,
) -> tuple[jax.Array, ...]:
    """Context indices of a batch, every layer and class, from one foreign call.

    Args:
        gates: the :class:`GateMatrix` of the layers.
        side_info: ``[B, N]`` raw examples.
        config: the network's config (its dtype, layers and ``context_map_size``, at least 1).
        members: the ensemble members ``E`` in ``gates`` (``E * C`` columns per neuron).
        threads: threads the examples are split over (the indices do not depend on it).

    Returns:
        One int32 array ``[B, E * C, K_l]`` per layer, as
        :func:`gln_jax.core.gating.batch_context_indices` (equal wherever no projection lies
        within rounding of its hyperplane's bias).

    Raises:
        RuntimeError: when the kernel is not available (see :func:`.library.load`).
        jax.errors.JaxRuntimeError: when the gate matrix does not fit the config (the message
            names the mismatch).
    """
    library.require()  # at trace time: the first kernel call of a process may be this one
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
            jnp.asarray(gates.hyperplanes_t, dtype),
            jnp.asarray(gates.hyperplane_bias, dtype),
            context_map_size=np.int64(config.context_map_size),
            num_threads=np.int64(threads),
        )
    )
