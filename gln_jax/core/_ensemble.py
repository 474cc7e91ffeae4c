"""Ensembles and learning-rate sweeps: ``E`` independent GLNs trained on one stream at once.

An ensemble state is a :class:`~gln_jax.GLNState` whose every leaf has a leading member axis
``E`` (``step`` is ``[E]``). Members share the config and the stream; they differ by their key
(:func:`init_ensemble`) or by their learning rates (:func:`init_sweep` plus ``[E, T]`` rates).
Training is one compiled scan: ``jax.vmap`` over the member axis of the stream drivers of
:mod:`gln_jax.core.stream`, so each member's result equals a separate fit of that member (in
float32 up to a gate whose projection lies within rounding of its offset: the vmapped
product sums in another order). On one CPU device at batch size 1, where
:func:`gln_jax.core.kernel.use_kernel` says so, every member's classes run in one call of the
fused kernel per chunk instead, every member's gates from one call of the kernel's gating,
whose sums never depend on what shares the call (bit for bit its own fit, float32 included);
members with the same gates (a sweep's, see :func:`shares_gates`) share one member's gating.

The member axis shards over a device mesh like the classes do (:func:`shard_ensemble`): it is
padded to a multiple of the device count with members whose rates are always 0 (they never
change), and every output is sliced back to the real members.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from gln_jax.core import checks, kernel, numerics
from gln_jax.core._sharding import chunk_update, to_host
from gln_jax.core.network import batch_apply, init
from gln_jax.core.schedules import host_rates
from gln_jax.core.shapes import ArrayLike, Float, Rate, Real, Shaped
from gln_jax.core.stream import check_stream, chunk_spans, take_chunk
from gln_jax.core.types import CHUNK_SIZE, Array, GLNConfig, GLNState, PRNGKey

#: Default name of the mesh axis the members are sharded over.
MEMBER_AXIS = "members"


def init_ensemble(keys: Array, config: GLNConfig) -> GLNState:
    """``E`` members, member ``e`` equal to ``gln_jax.init(keys[e], config)``.

    Args:
        keys: ``[E]`` ``jax.random`` keys (``jax.random.split(key, E)``).
        config: the members' config.

    Returns:
        The ensemble state, every leaf with a leading ``[E]`` axis.

    Example:
        >>> states = init_ensemble(jax.random.split(jax.random.key(0), 16), config)
        ... # doctest: +SKIP
    """
    return jax.vmap(functools.partial(init, config=config))(keys)


def init_sweep(key: PRNGKey, config: GLNConfig, num_members: int) -> GLNState:
    """``num_members`` copies of ``gln_jax.init(key, config)``: a sweep's members differ only by
    the ``[E, T]`` learning rates passed to :func:`fit_ensemble`."""
    if isinstance(num_members, bool) or not isinstance(num_members, (int, np.integer)):
        raise TypeError(f"num_members must be an int, got {num_members!r}")
    if num_members < 1:
        raise ValueError(f"num_members must be positive, got {num_members}")
    state = init(key, config)
    return jax.tree.map(lambda a: jnp.broadcast_to(a, (int(num_members), *a.shape)), state)


def num_members(states: GLNState) -> int:
    """``E``, the size of the member axis."""
    return int(states.step.shape[0])


class MemberSharding(NamedTuple):
    """How an ensemble's members lie on a mesh (hashable: a static argument).

    Attributes:
        mesh: the device mesh.
        axis: the mesh axis holding the members.
        num_members: the real member count ``E``; the state holds a multiple of the axis size.
    """

    mesh: Mesh
    axis: str
    num_members: int

    @property
    def num_padded(self) -> int:
        size = self.mesh.shape[self.axis]
        return -(-self.num_members // size) * size - self.num_members


def shard_ensemble(
    states: GLNState, mesh: Mesh, axis: str = MEMBER_AXIS
) -> tuple[GLNState, MemberSharding]:
    """Places the member axis on ``mesh`` (padded with copies of member 0 that never learn).

    Returns:
        ``(states, layout)``: the padded, sharded ensemble and its :class:`MemberSharding`.
    """
    if axis not in mesh.shape:
        raise ValueError(f"mesh has axes {tuple(mesh.shape)}, not {axis!r}")
    layout = MemberSharding(mesh, axis, num_members(states))
    pad = layout.num_padded
    sharding = NamedSharding(mesh, P(axis))

    def place(array):
        array = np.asarray(array)
        if pad:
            array = np.concatenate([array, np.repeat(array[:1], pad, axis=0)])
        return jax.make_array_from_callback(array.shape, sharding, lambda index: array[index])

    return jax.tree.map(place, states), layout


def unshard_ensemble(states: GLNState, layout: MemberSharding) -> GLNState:
    """The real members as a NumPy ensemble state (assembled on the host)."""
    return jax.tree.map(lambda a: to_host(a)[: layout.num_members], states)


def _member_chunk(states, inputs, side_info, targets, rates, mask, *, config, batch_size):
    run = functools.partial(chunk_update, config=config, batch_size=batch_size)
    return jax.vmap(run, in_axes=(0, None, None, None, 0, None))(
        states, inputs, side_info, targets, rates, mask
    )


def shares_gates(states: GLNState) -> bool:
    """Whether every member has member 0's hyperplanes and offsets (a sweep's members do).

    The gates never learn, so members that start with the same ones keep them; their context
    indices are then computed once per chunk for all members. Compares values on the host
    (the state is on one CPU device when this is asked).
    """
    for layer in states.layers:
        for leaf in (layer.hyperplanes, layer.hyperplane_bias):
            values = np.asarray(leaf)
            if not (values == values[:1]).all():
                return False
    return True


@functools.cache
def _chunk_fn(
    config: GLNConfig,
    batch_size: int,
    layout: MemberSharding | None,
    kernel_threads: int = 0,
    shared_gates: bool = False,
):
    if kernel_threads:  # every member's classes in one call of the fused CPU kernel

        def fused(states, inputs, side_info, targets, rates, mask):
            return kernel.kernel_ensemble_update(
                states,
                inputs,
                side_info,
                targets,
                rates,
                config=config,
                mask=mask,
                threads=kernel_threads,
                shared_gates=shared_gates,
                batch_size=batch_size,
            )

        return jax.jit(fused)
    run = functools.partial(_member_chunk, config=config, batch_size=batch_size)
    if layout is None:
        return jax.jit(run)
    split, same = P(layout.axis), P()
    local = jax.shard_map(
        run,
        mesh=layout.mesh,
        in_specs=(split, same, same, same, split, same),
        out_specs=(split, split),
    )
    replicated = NamedSharding(layout.mesh, same)
    split_sharding = NamedSharding(layout.mesh, split)

    def chunk(states, inputs, side_info, targets, rates, mask):
        states, p = local(states, inputs, side_info, targets, rates, mask)
        return states, p[: layout.num_members]

    return jax.jit(
        chunk,
        in_shardings=(split_sharding, *[replicated] * 3, split_sharding, replicated),
        out_shardings=(split_sharding, replicated),
    )


def fit_ensemble(
    states: GLNState,
    inputs: Real[ArrayLike, "T P"],
    side_info: Real[ArrayLike, "T N"],
    targets: Shaped[ArrayLike, " T"],
    learning_rates: Real[ArrayLike, "*E T"] | Rate,
    *,
    config: GLNConfig,
    batch_size: int = 1,
    chunk_size: int = CHUNK_SIZE,
    layout: MemberSharding | None = None,
) -> tuple[GLNState, Float[np.ndarray, "E T C"]]:
    """Trains every member on one stream, in order, one compiled scan per chunk.

    Member ``e`` equals ``gln_jax.fit_stream`` of that member alone with its rates.

    Args:
        states: an ensemble state (``[E]`` leading axis), sharded or not.
        inputs: ``[T, P]`` base probabilities (NumPy, memmap or JAX).
        side_info: ``[T, N]`` raw examples.
        targets: ``[T]`` labels.
        learning_rates: one scalar rate, ``[T]`` shared by the members, ``[E, T]`` one vector
            per member (a sweep), or a schedule (a callable of the step, evaluated on the host
            at each member's ``step, ..., step + T - 1``).
        config: the members' config.
        batch_size: examples per update (1: exact online learning).
        chunk_size: most examples per compiled scan.
        layout: the :class:`MemberSharding` of a sharded ensemble, else ``None``.

    Returns:
        ``(states, p)`` with ``p`` a NumPy ``[E, T, C]`` array of the predictions made before
        each update.

    Raises:
        ValueError, TypeError: checked on the host before anything runs, naming the argument:
            members whose state does not match ``config``, shapes that disagree with ``T`` or
            the config, labels outside ``[0, num_classes)``, rates of another shape.

    Example:
        >>> states, p = fit_ensemble(states, x, x, y, rates, config=config)  # doctest: +SKIP
    """
    member = jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape[1:], a.dtype), states)
    checks.check_state(member, config, function="fit_ensemble", name="a member of states")
    members = num_members(states)
    real_members = members if layout is None else layout.num_members
    dtype = np.dtype(config.dtype)
    if callable(learning_rates):
        steps = np.asarray(states.step)[:real_members]
        total = int(np.shape(targets)[0]) if np.ndim(targets) else 0
        learning_rates = np.stack([host_rates(learning_rates, int(s), total, dtype) for s in steps])
    targets, _ = check_stream(inputs, side_info, targets, 0.0, batch_size, config)
    total = targets.shape[0]
    rates = np.asarray(learning_rates, dtype)
    if rates.ndim == 0:
        rates = np.full(total, rates, dtype)
    if not np.isfinite(rates).all():
        raise ValueError("fit_ensemble: learning_rates must be finite numbers")
    if rates.shape == (total,):
        rates = np.broadcast_to(rates, (real_members, total))
    if rates.shape != (real_members, total):
        raise ValueError(
            f"learning_rates must be [T] or [E, T] = [{real_members}, {total}], got {rates.shape}"
        )
    if members != real_members:  # padded members never learn
        rates = np.concatenate([rates, np.zeros((members - real_members, total), dtype)])
    threads, shared = 0, False
    if layout is None and kernel.use_kernel(config, states, batch_size):
        threads, shared = kernel.threads(config, members), shares_gates(states)
    run = _chunk_fn(config, batch_size, layout, threads, shared)
    real = np.ones(total, bool)
    outputs = []
    for start, stop, pad in chunk_spans(total, batch_size, chunk_size):
        states, p = run(
            states,
            take_chunk(inputs, start, stop, pad, 0.5, dtype),
            take_chunk(side_info, start, stop, pad, 0.0, dtype),
            take_chunk(targets, start, stop, pad, 0, np.int32),
            take_chunk(rates.T, start, stop, pad, 0.0, dtype).T,
            take_chunk(real, start, stop, pad, False),
        )
        outputs.append(to_host(p)[:, : stop - start])
    if not outputs:
        return states, np.zeros((real_members, 0, config.num_models), dtype)
    return states, np.concatenate(outputs, axis=1)


@functools.partial(jax.jit, static_argnames=("config",))
def predict_members(states: GLNState, inputs: Array, side_info: Array, *, config: GLNConfig):
    """Every member's probabilities ``[E, B, C]`` of a batch (``inputs [B, P]``,
    ``side_info [B, N]``); a padded (sharded) ensemble's padding members are included: slice
    ``[:layout.num_members]``."""
    return jax.vmap(functools.partial(batch_apply, config=config), in_axes=(0, None, None))(
        states, inputs, side_info
    )


def mean_logit_probabilities(member_probabilities: Array, *, config: GLNConfig) -> jax.Array:
    """The ensemble's prediction: ``sigmoid`` of the mean of the members' logits.

    Args:
        member_probabilities: ``[E, B, C]`` from :func:`predict_members` (real members only).
        config: the members' config.

    Returns:
        ``[B, C]`` probabilities, clipped like a GLN's outputs.
    """
    p = jnp.asarray(member_probabilities, config.dtype)
    z = jnp.mean(numerics.logit(p), axis=0)
    return numerics.clip_probability(numerics.sigmoid(z), config.pred_clipping)


def predict_ensemble(
    states: GLNState,
    inputs: Array,
    side_info: Array,
    *,
    config: GLNConfig,
    layout: MemberSharding | None = None,
) -> tuple[jax.Array, jax.Array]:
    """Member predictions ``[E, B, C]`` and their mean-logit combination ``[B, C]``.

    Example:
        >>> by_member, mean = predict_ensemble(states, x, x, config=config)  # doctest: +SKIP
    """
    members = predict_members(states, inputs, side_info, config=config)
    if layout is not None:
        members = members[: layout.num_members]
    return members, mean_logit_probabilities(members, config=config)
