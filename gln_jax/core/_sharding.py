"""Class-sharded models: the one-vs-all class axis placed on a device mesh.

The classes of a one-vs-all GLN are independent models, so their weights shard perfectly: each
device holds ``1/D`` of the classes (``D`` devices on the mesh axis) and runs the unchanged
drivers of :mod:`gln_jax.core.stream` on them, while the stream (inputs, side information,
targets, rates) is replicated. Predictions ``[B, C]`` are the only thing gathered.

Every device runs the unchanged drivers on its own classes inside ``jax.shard_map``, with a
local config of ``C / D`` classes and the labels shifted by its first class (a label outside its
classes is a 0 target for all of them), so no collective ever touches the weights or the gates.

Padding: the class axis must be a multiple of ``D``, so a :class:`ClassSharding` carries a
*padded* config (``num_classes`` rounded up to a multiple of ``D``, and to at least 3 classes per
device so that the local config stays one-vs-all) and the real class count. Labels are always
below the real count, so the padded classes' one-vs-all targets are always 0; their weights,
hyperplanes and their offsets start at zero; their outputs are sliced off inside the jitted
functions; :func:`unshard_state` drops them. No padded class reaches an output or a checkpoint.

A binary model has a single model on its class axis and is not class-sharded (shard an ensemble
of binary models over its member axis instead, :mod:`gln_jax.core._ensemble`).

Multi-host: every function here works on a mesh spanning several processes
(``jax.distributed.initialize`` first); each process then holds only its devices' classes.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from gln_jax.core.network import batch_apply, init_class_range
from gln_jax.core.stream import chunk_spans, scan_batch_update, scan_update, take_chunk
from gln_jax.core.types import CHUNK_SIZE, Array, GLNConfig, GLNState, LayerState, PRNGKey

#: Default name of the mesh axis the classes are sharded over.
CLASS_AXIS = "classes"


class ClassSharding(NamedTuple):
    """How a model's classes lie on a mesh (hashable: a static argument).

    Attributes:
        mesh: the device mesh.
        axis: the mesh axis holding the classes.
        config: the *padded* config, ``num_classes`` a multiple of the axis size; the jitted
            drivers see only this one.
        num_classes: the real class count (``config.num_classes`` of the user's model).
    """

    mesh: Mesh
    axis: str
    config: GLNConfig
    num_classes: int

    @property
    def real_config(self) -> GLNConfig:
        """The user's config (real class count)."""
        return self.config._replace(num_classes=self.num_classes)

    @property
    def local_config(self) -> GLNConfig:
        """The config of one device's classes (at least 3, so it stays one-vs-all)."""
        per_device = self.config.num_classes // self.mesh.shape[self.axis]
        return self.config._replace(num_classes=per_device)

    @property
    def num_padded(self) -> int:
        """Padded classes appended after the real ones."""
        return self.config.num_classes - self.num_classes


def make_mesh(devices=None, axis: str = CLASS_AXIS) -> Mesh:
    """A one-axis mesh over ``devices`` (default: every device of every process)."""
    devices = jax.devices() if devices is None else list(devices)
    if not devices:
        raise ValueError("devices must name at least one device")
    return Mesh(np.asarray(devices), (axis,))


def class_sharding(config: GLNConfig, mesh: Mesh, axis: str = CLASS_AXIS) -> ClassSharding:
    """Pads ``config``'s class axis to a multiple of the mesh axis size.

    Args:
        config: a one-vs-all config (``num_classes > 2``).
        mesh: the device mesh.
        axis: the mesh axis to shard the classes over.

    Returns:
        The :class:`ClassSharding`.

    Raises:
        ValueError: a binary config, ``axis`` not an axis of ``mesh``, or a mesh without
            devices.

    Example:
        >>> layout = class_sharding(make_config([4, 1], 8, num_classes=10), make_mesh())
        ... # doctest: +SKIP
    """
    if not isinstance(mesh, Mesh):
        raise TypeError(f"mesh must be a jax.sharding.Mesh, got {type(mesh).__name__}")
    if axis not in mesh.shape:
        raise ValueError(f"mesh has axes {tuple(mesh.shape)}, not {axis!r}")
    if mesh.size == 0:
        raise ValueError(
            f"mesh has no devices (axis sizes {dict(mesh.shape)}): every axis needs at least "
            "one device"
        )
    if config.num_classes == 2:
        raise ValueError(
            "a binary model has one model on its class axis and cannot be class-sharded; "
            "shard an ensemble over its member axis instead"
        )
    size = mesh.shape[axis]
    padded = max(3, -(-config.num_classes // size)) * size
    return ClassSharding(mesh, axis, config._replace(num_classes=padded), config.num_classes)


def state_shardings(layout: ClassSharding) -> GLNState:
    """The :class:`NamedSharding` of every leaf: class axis on the mesh, ``step`` replicated."""
    split = NamedSharding(layout.mesh, P(layout.axis))
    layers = tuple(LayerState(split, split, split) for _ in layout.config.layer_sizes)
    return GLNState(layers=layers, step=NamedSharding(layout.mesh, P()))


def _replicated(layout: ClassSharding) -> NamedSharding:
    return NamedSharding(layout.mesh, P())


def _pad_classes(array: jax.Array, pad: int) -> jax.Array:
    if not pad:
        return array
    return jnp.concatenate([array, jnp.zeros((pad, *array.shape[1:]), array.dtype)])


def init_sharded(key: PRNGKey, config: GLNConfig, mesh: Mesh, axis: str = CLASS_AXIS):
    """:func:`gln_jax.init` drawn straight onto the mesh (never whole on one device).

    The real classes equal ``init(key, config)``'s (to rounding of the hyperplane norms); the
    padded classes are zero. Each device draws only its own classes' hyperplanes and offsets
    (:func:`gln_jax.core.network.init_class_range` inside ``shard_map``: the blocks of
    :func:`init`'s normal draws that hold them, at most two blocks of 32,768 numbers more), so
    no device ever holds more than its share of the state plus those blocks.

    Args:
        key: a ``jax.random`` key.
        config: the user's (unpadded) one-vs-all config.
        mesh: the device mesh.
        axis: the mesh axis of the classes.

    Returns:
        ``(state, layout)``: the padded, sharded state and its :class:`ClassSharding`.
    """
    layout = class_sharding(config, mesh, axis)
    per_device = layout.local_config.num_classes

    def draw(key):
        first = jax.lax.axis_index(axis) * per_device
        return init_class_range(key, config, first, per_device)

    split, same = P(axis), P()
    specs = GLNState(
        layers=tuple(LayerState(split, split, split) for _ in config.layer_sizes), step=same
    )
    local = jax.shard_map(draw, mesh=mesh, in_specs=same, out_specs=specs, check_vma=False)
    return jax.jit(local, out_shardings=state_shardings(layout))(key), layout


def shard_state(state: GLNState, layout: ClassSharding) -> GLNState:
    """Places an unpadded state (NumPy or JAX leaves, ``C`` real classes) on the mesh.

    Each device receives only its own slice (padded classes are zero), built from the host copy
    with ``jax.make_array_from_callback``, so this also works when the mesh spans processes.
    """
    shardings = state_shardings(layout)
    real = layout.num_classes

    def place(array, sharding):
        array = np.asarray(array)
        if array.ndim == 0:
            return jax.make_array_from_callback((), sharding, lambda index: array)
        if array.shape[0] != real:
            raise ValueError(f"state has {array.shape[0]} classes, the layout {real}")
        shape = (layout.config.num_classes, *array.shape[1:])

        def shard(index):
            rows = range(*index[0].indices(shape[0]))
            block = np.zeros((len(rows), *shape[1:]), array.dtype)
            inside = [r for r in rows if r < real]
            if inside:
                block[: len(inside)] = array[inside[0] : inside[-1] + 1]
            return block[(slice(None), *index[1:])]

        return jax.make_array_from_callback(shape, sharding, shard)

    return jax.tree.map(place, state, shardings)


def to_host(array: jax.Array) -> np.ndarray:
    """A NumPy copy of a (possibly multi-process) array, assembled on the host."""
    if array.is_fully_addressable:
        return np.asarray(array)
    if array.sharding.is_fully_replicated:
        return np.asarray(array.addressable_data(0))
    from jax.experimental import multihost_utils

    return np.asarray(multihost_utils.process_allgather(array, tiled=True))


def unshard_state(state: GLNState, layout: ClassSharding) -> GLNState:
    """The real classes of a sharded state as a NumPy state (what checkpoints and ports take).

    The copy is assembled on the host, shard by shard; no device ever holds the whole state.
    """
    real = layout.num_classes
    return jax.tree.map(lambda a: to_host(a) if a.ndim == 0 else to_host(a)[:real], state)


def _local(layout: ClassSharding, fn, in_specs, out_specs):
    """``fn`` run by every device on its own classes (``jax.shard_map``: no state collective)."""
    return jax.shard_map(fn, mesh=layout.mesh, in_specs=in_specs, out_specs=out_specs)


def _state_specs(layout: ClassSharding) -> GLNState:
    return jax.tree.map(lambda s: s.spec, state_shardings(layout))


@functools.cache
def _predict_fn(layout: ClassSharding):
    def local(state, inputs, side_info):
        return batch_apply(state, inputs, side_info, config=layout.local_config)

    predict = _local(layout, local, (_state_specs(layout), P(), P()), P(None, layout.axis))
    replicated = _replicated(layout)
    return jax.jit(
        lambda state, inputs, side_info: predict(state, inputs, side_info)[:, : layout.num_classes],
        in_shardings=(state_shardings(layout), replicated, replicated),
        out_shardings=replicated,
    )


#: Rows per compiled call of :func:`predict_sharded`: a call's temporaries (gating projections
#: and row scores of every local class) grow with its rows, so larger batches go in blocks.
PREDICT_BLOCK = 256

#: Most bytes of per-row temporaries one compiled call may hold on one device: the gating
#: projections ``[rows, C_local, K, H]`` and context indices of every layer, and for
#: predictions the selected weight rows ``[rows, C_local, K, I]``.
TEMPORARY_BYTES = 32 * 2**20


def rows_per_call(layout: ClassSharding, batch_size: int = 1, *, weight_rows: bool) -> int:
    """Rows per compiled call that keep one device's temporaries within ``TEMPORARY_BYTES``.

    Args:
        layout: the state's :class:`ClassSharding`.
        batch_size: the rows of one update; the answer is a power of two of batches.
        weight_rows: count the weight rows each row selects (prediction) as well as its
            gating projections and contexts (the scan drivers, which gate a whole chunk first).

    Returns:
        ``batch_size`` times the largest power of two of batches whose temporaries fit (at
        least one batch).
    """
    config = layout.local_config
    itemsize = np.dtype(config.dtype).itemsize
    planes = config.context_map_size
    per_row = 0
    for neurons, inputs in zip(config.layer_sizes, config.layer_input_sizes(), strict=True):
        rows = config.num_classes * neurons
        per_row += rows * (planes * itemsize + np.dtype(np.int32).itemsize)
        if weight_rows:
            per_row += rows * inputs * itemsize
    batches = max(1, TEMPORARY_BYTES // max(1, per_row * batch_size))
    return batch_size * (1 << (batches.bit_length() - 1))


def predict_sharded(
    state: GLNState,
    inputs: Array,
    side_info: Array,
    *,
    layout: ClassSharding,
    block_size: int = PREDICT_BLOCK,
):
    """Probabilities ``[B, C]`` of the real classes (``inputs [B, P]``, ``side_info [B, N]``).

    The weights stay where they are; the ``[B, C]`` result is replicated on every device. A
    batch of more rows than ``block_size`` (capped by :func:`rows_per_call`, so that a call's
    temporaries stay within ``TEMPORARY_BYTES`` per device) is predicted a block at a time,
    the last block padded.
    """
    total = np.shape(inputs)[0]
    block_size = min(block_size, rows_per_call(layout, weight_rows=True))
    predict = _predict_fn(layout)
    if total <= block_size:
        return predict(state, inputs, side_info)
    parts = []
    for start in range(0, total, block_size):
        stop = min(start + block_size, total)
        pad = ((0, block_size - (stop - start)), (0, 0))
        block = predict(
            state,
            np.pad(np.asarray(inputs[start:stop]), pad, constant_values=0.5),
            np.pad(np.asarray(side_info[start:stop]), pad),
        )
        # One block in flight at a time: queued calls of a program with a collective could
        # hold XLA:CPU's threads while waiting for devices whose turn has not come.
        parts.append(block[: stop - start].block_until_ready())
    return jnp.concatenate(parts)


def chunk_update(state, inputs, side_info, targets, rates, mask, *, config, batch_size):
    """One compiled chunk of a stream: :func:`scan_update` or :func:`scan_batch_update`.

    ``inputs [L, P]``, ``side_info [L, N]``, ``targets [L]``, ``rates [L]`` and ``mask [L]``
    with ``L`` a multiple of ``batch_size``; returns ``(state, p [L, C])``.
    """
    if batch_size == 1:
        return scan_update(state, inputs, side_info, targets, rates, config=config, mask=mask)
    shape = (-1, batch_size)
    state, p = scan_batch_update(
        state,
        inputs.reshape(*shape, inputs.shape[-1]),
        side_info.reshape(*shape, side_info.shape[-1]),
        targets.reshape(shape),
        rates.reshape(shape),
        config=config,
        mask=mask.reshape(shape),
    )
    return state, p.reshape(-1, p.shape[-1])


@functools.cache
def _chunk_fn(layout: ClassSharding, batch_size: int):
    local_config = layout.local_config
    size = local_config.num_classes

    def local(state, inputs, side_info, targets, rates, mask):
        # The device's classes are [offset, offset + size): a label outside them is a 0
        # target for every local class (class_targets' one-hot of an out-of-range label).
        offset = jax.lax.axis_index(layout.axis) * size
        local_targets = jnp.asarray(targets, jnp.int32) - offset.astype(jnp.int32)
        return chunk_update(
            state,
            inputs,
            side_info,
            local_targets,
            rates,
            mask,
            config=local_config,
            batch_size=batch_size,
        )

    specs = _state_specs(layout)
    run = _local(layout, local, (specs, *[P()] * 5), (specs, P(None, layout.axis)))
    replicated = _replicated(layout)
    shardings = state_shardings(layout)

    def chunk(*args):
        state, p = run(*args)
        return state, p[:, : layout.num_classes]

    return jax.jit(
        chunk,
        in_shardings=(shardings, *[replicated] * 5),
        out_shardings=(shardings, replicated),
    )


def fit_sharded(
    state: GLNState,
    inputs: Array,
    side_info: Array,
    targets: Array,
    learning_rates: Array,
    *,
    layout: ClassSharding,
    batch_size: int = 1,
    chunk_size: int = CHUNK_SIZE,
) -> tuple[GLNState, np.ndarray]:
    """:func:`gln_jax.fit_stream` on a class-sharded state: same chunks, same maths.

    Each chunk is one jitted call with the state's shardings in and out and the chunk's
    arrays replicated; the caller's ``state`` is left intact. A chunk holds at most
    ``chunk_size`` examples and at most :func:`rows_per_call` rows, so the gating temporaries
    of a call stay within ``TEMPORARY_BYTES`` per device.

    Args:
        state: a state from :func:`init_sharded` or :func:`shard_state`.
        inputs: ``[T, P]`` base probabilities (NumPy, memmap or JAX).
        side_info: ``[T, N]`` raw examples.
        targets: ``[T]`` labels below ``layout.num_classes``.
        learning_rates: ``[T]``.
        layout: the state's :class:`ClassSharding`.
        batch_size: examples per update (1: exact online learning).
        chunk_size: most examples per compiled scan.

    Returns:
        ``(state, p)``, ``p`` a NumPy ``[T, C]`` array of the real classes' predictions.
    """
    targets = np.asarray(targets)
    total = targets.shape[0]
    dtype = np.dtype(layout.config.dtype)
    run = _chunk_fn(layout, batch_size)
    chunk_size = min(chunk_size, rows_per_call(layout, batch_size, weight_rows=False))
    real = np.ones(total, bool)
    outputs = []
    for start, stop, pad in chunk_spans(total, batch_size, chunk_size):
        state, p = run(
            state,
            take_chunk(inputs, start, stop, pad, 0.5, dtype),
            take_chunk(side_info, start, stop, pad, 0.0, dtype),
            take_chunk(targets, start, stop, pad, 0, np.int32),
            take_chunk(learning_rates, start, stop, pad, 0.0, dtype),
            take_chunk(real, start, stop, pad, False),
        )
        outputs.append(to_host(p)[: stop - start])
    if not outputs:
        return state, np.zeros((0, layout.num_classes), dtype)
    return state, np.concatenate(outputs)
