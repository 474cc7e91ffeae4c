"""The fused kernel's JAX side: the ``jax.ffi`` calls of online learning and inference.

:func:`kernel_scan_update` is :func:`gln_jax.core.stream.scan_update` with the sequential
part (every layer and class of every step) in one foreign call; the context indices come
first from the kernel's gating call (:mod:`gln_jax.core.kernel.gates`, sparse over the
examples' zeros) and the first layer's input logits from XLA. :func:`kernel_weights_update`
is the same update on the weights alone (the caller keeps the hyperplanes and their
:class:`~gln_jax.core.kernel.gates.GateMatrix`). :func:`kernel_ensemble_update` runs every
member of an ensemble in one such call, and :func:`kernel_batch_apply` is
:func:`gln_jax.core.network.batch_apply` by the same kernel without learning.

Every call checks its buffers' dtypes and shapes and its attributes in C++ first; a mismatch
(a state of another dtype than its config's, layer counts that disagree, a config without
layers) raises ``jax.errors.JaxRuntimeError`` naming it, as does a C++ failure inside the
call (memory or threads running out): the process lives. Memory of a call beyond its
arguments and results: on each thread (at most one per class and at most 64) working copies
of the weight tables of at most 16 MiB, the predictions of its classes and a few rows of
scratch; the gating call holds one group of examples' scratch per thread.
"""

from __future__ import annotations

import os

import jax
import jax.numpy as jnp
import numpy as np

from gln_jax.core import bernoulli, multiclass, numerics
from gln_jax.core.kernel import library
from gln_jax.core.kernel.gates import GateMatrix, gate_matrix, kernel_context_indices
from gln_jax.core.kernel.library import SWITCH as SWITCH
from gln_jax.core.kernel.library import enabled as enabled
from gln_jax.core.kernel.library import load as load
from gln_jax.core.kernel.library import require as require
from gln_jax.core.types import Array, GLNConfig, GLNState

#: The XLA FFI target name of the kernel (CPU).
TARGET = library.FIT_TARGET


def threads(config: GLNConfig, members: int = 1) -> int:
    """Threads of a call: this process's cores, at most one per class (of every member)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not on Linux
        cores = os.cpu_count() or 1
    return max(1, min(cores, config.num_models * members))


def _call(
    results, x0, targets, rates, contexts, weights, *, config, threads, learn, aliases, batch_size=1
):
    """One foreign call of the kernel with its attributes (checks that it is loaded first).

    Args:
        results: the ``jax.ShapeDtypeStruct`` of each result (predictions first).
        x0, targets, rates, contexts, weights: the call's arguments, in that order.
        config: the network's config (clipping, bias).
        threads: threads the classes are split over.
        learn: whether the call updates the weights (else targets and rates are not read).
        aliases: ``{argument index: result index}`` of the weights updated in place.
        batch_size: examples per update (dividing ``T``); 1 is exact online learning.

    Raises:
        RuntimeError: when the kernel is not available (see :func:`load`).
        ValueError: when ``contexts`` and ``weights`` count different layers.
    """
    require()
    if len(contexts) != len(weights):
        raise ValueError(
            f"{len(weights)} layers of weights but {len(contexts)} of context indices "
            "(a state and a config of different networks?)"
        )
    call = jax.ffi.ffi_call(TARGET, results, input_output_aliases=aliases)
    return call(
        x0,
        targets,
        rates,
        *(jnp.asarray(c, jnp.int32) for c in contexts),
        *weights,
        num_layers=np.int64(len(weights)),
        num_threads=np.int64(threads),
        pred_clipping=np.float64(config.pred_clipping),
        weight_clipping=np.float64(config.weight_clipping),
        bias=np.bool_(config.bias),
        learn=np.bool_(learn),
        batch_size=np.int64(batch_size),
    )


def online_fit(
    weights, x0, contexts, targets, learning_rates, *, config: GLNConfig, threads=1, batch_size=1
):
    """The foreign call: exact online learning of a chunk, all layers and classes.

    Args:
        weights: per layer ``[C, K, R, I]`` (updated in place when donated).
        x0: ``[T, I_0]`` first-layer input logits.
        contexts: per layer ``[T, C, K]`` int32 context indices.
        targets: ``[T, C]`` 0/1 targets in ``config.dtype``.
        learning_rates: ``[T]`` rates in ``config.dtype`` shared by the classes, or ``[T, C]``
            one per class (0 for padding).
        config: the network's config (its clipping, bias and dtype; ``C`` comes from
            ``targets``, so an ensemble's members can be flattened into the class axis).
        threads: threads the classes are split over (results do not depend on it).
        batch_size: examples per update, dividing ``T`` (batch semantics, as
            :func:`gln_jax.core.bernoulli.batch_update`); 1 is exact online learning.

    Returns:
        ``(weights, p)`` with ``p [T, C]`` the predictions made before each update.

    Raises:
        RuntimeError: when the kernel is not available (see :func:`load`).
    """
    layers = len(weights)
    results = (
        jax.ShapeDtypeStruct(targets.shape, jnp.dtype(config.dtype)),
        *(jax.ShapeDtypeStruct(w.shape, w.dtype) for w in weights),
    )
    first_weight = 3 + layers  # x0, targets, rates, contexts..., weights...
    aliases = {first_weight + i: 1 + i for i in range(layers)}
    p, *new_weights = _call(
        results,
        x0,
        targets,
        learning_rates,
        contexts,
        weights,
        config=config,
        threads=threads,
        learn=True,
        aliases=aliases,
        batch_size=batch_size,
    )
    return tuple(new_weights), p


def online_predict(weights, x0, contexts, *, config: GLNConfig, threads=1) -> jax.Array:
    """The foreign call without learning: every class's prediction of a batch.

    Args:
        weights: per layer ``[C, K, R, I]`` (read, never written).
        x0: ``[B, I_0]`` first-layer input logits.
        contexts: per layer ``[B, C, K]`` int32 context indices.
        config: the network's config.
        threads: threads the classes are split over (results do not depend on it).

    Returns:
        ``p [B, C]``, the same values as :func:`gln_jax.core.network.batch_apply`'s
        gathered rows (float64 within 1e-12).

    Raises:
        RuntimeError: when the kernel is not available (see :func:`load`).
    """
    dtype = jnp.dtype(config.dtype)
    results = (jax.ShapeDtypeStruct((x0.shape[0], weights[0].shape[0]), dtype),)
    unread = jnp.zeros((1,), dtype)  # targets and rates are not read without learning
    (p,) = _call(
        results,
        x0,
        unread,
        unread,
        contexts,
        weights,
        config=config,
        threads=threads,
        learn=False,
        aliases={},
    )
    return p


def kernel_contexts(
    layers,
    side_info: Array,
    *,
    config: GLNConfig,
    threads: int = 1,
    gates: GateMatrix | None = None,
    members: int = 1,
) -> tuple[jax.Array, ...]:
    """Context indices for the kernel: its sparse gating call (:mod:`.gates`).

    Args:
        layers: the state's layers (an ensemble's, with a leading ``[E]`` axis, when
            ``members > 1``); read only when ``gates`` is None.
        side_info: ``[T, N]`` raw examples.
        config: the network's config.
        threads: threads the examples are split over (the indices do not depend on it).
        gates: the layers' :func:`.gates.gate_matrix`, when the caller keeps one (it is a
            transposed copy of every hyperplane; made here otherwise).
        members: ensemble members ``E`` in ``layers`` (flattened member-major into the class
            axis, ``E * C``).

    Returns:
        One int32 array ``[T, E * C, K_l]`` per layer.

    Raises:
        ValueError: when ``gates`` is None and ``layers`` hold no hyperplanes.
    """
    if config.context_map_size == 0:  # one context: every index is 0
        return tuple(
            jnp.zeros((side_info.shape[0], members * config.num_models, k), jnp.int32)
            for k in config.layer_sizes
        )
    if gates is None:
        if layers is None or any(layer.hyperplanes is None for layer in layers):
            raise ValueError("the kernel's gating needs the layers' hyperplanes or their gates")
        gates = gate_matrix(layers)
    return kernel_context_indices(gates, side_info, config=config, members=members, threads=threads)


def kernel_batch_apply(
    state: GLNState,
    inputs: Array,
    side_info: Array,
    *,
    config: GLNConfig,
    threads: int = 1,
    gates: GateMatrix | None = None,
) -> jax.Array:
    """:func:`gln_jax.core.network.batch_apply` by the fused kernel (same arguments, result).

    The kernel's gating call computes the batch's context indices (:func:`kernel_contexts`)
    and XLA the input logits; the kernel then gathers each neuron's active row and runs the
    forward pass, reading only the active rows (no dense scoring of every row, no gathered
    copy).

    Args:
        state: the GLN state.
        inputs: ``[B, P]`` base probabilities.
        side_info: ``[B, N]`` raw examples.
        config: the network's config.
        threads: threads the classes (and the gates' examples) are split over.
        gates: the state's :func:`.gates.gate_matrix`, if the caller keeps one.

    Returns:
        ``[B, C]`` probabilities.
    """
    contexts = kernel_contexts(state.layers, side_info, config=config, threads=threads, gates=gates)
    x0 = bernoulli.input_logits(inputs, config)
    weights = tuple(layer.weights for layer in state.layers)
    return online_predict(weights, x0, contexts, config=config, threads=threads)


def kernel_scan_update(
    state: GLNState,
    inputs: Array,
    side_info: Array,
    targets: Array,
    learning_rates: Array,
    *,
    config: GLNConfig,
    mask: Array | None = None,
    threads: int = 1,
    gates: GateMatrix | None = None,
    batch_size: int = 1,
) -> tuple[GLNState, jax.Array]:
    """:func:`gln_jax.core.stream.scan_update` by the fused kernel (same arguments, result);
    with ``batch_size > 1``, :func:`gln_jax.core.stream.scan_batch_update` of the stream cut
    into consecutive batches.

    Needs :func:`gln_jax.core.kernel.available`; CPU only, no ``vmap`` or ``grad``.

    Args:
        state: the GLN state.
        inputs: ``[T, P]`` base probabilities.
        side_info: ``[T, N]`` raw examples.
        targets: ``[T]`` class labels.
        learning_rates: ``[T]`` rate of each example.
        config: the network's config.
        mask: optional ``[T]`` bools; a masked-out example changes nothing (padding).
        threads: threads the classes (and the gates' examples) are split over.
        gates: the state's :func:`.gates.gate_matrix`, if the caller keeps one.
        batch_size: examples per update, dividing ``T`` (static); a masked-out example of a
            batch adds nothing to it.

    Returns:
        ``(state, p)`` with ``p [T, C]`` the prediction made before each example's update
        (before its batch's update).
    """
    weights = tuple(layer.weights for layer in state.layers)
    contexts = kernel_contexts(state.layers, side_info, config=config, threads=threads, gates=gates)
    weights, step, p = _learn(
        weights,
        state.step,
        contexts,
        inputs,
        targets,
        learning_rates,
        config=config,
        mask=mask,
        threads=threads,
        batch_size=batch_size,
    )
    layers = tuple(
        layer._replace(weights=w) for layer, w in zip(state.layers, weights, strict=True)
    )
    return GLNState(layers=layers, step=step), p


def kernel_weights_update(
    weights: tuple[Array, ...],
    step: Array,
    gates: GateMatrix | None,
    inputs: Array,
    side_info: Array,
    targets: Array,
    learning_rates: Array,
    *,
    config: GLNConfig,
    mask: Array | None = None,
    threads: int = 1,
    batch_size: int = 1,
) -> tuple[tuple[jax.Array, ...], jax.Array, jax.Array]:
    """:func:`kernel_scan_update` on what the update changes: the weights and the step count.

    The caller keeps the hyperplanes and their gate matrix from call to call (the matrix is a
    transposed copy of every hyperplane, made once by :func:`.gates.gate_matrix`).

    Args:
        weights: per layer ``[C, K, R, I]``, in ``config.dtype``.
        step: the state's step count (int32 scalar).
        gates: the state's :func:`.gates.gate_matrix`; None only when
            ``config.context_map_size`` is 0 (one context per neuron).
        inputs: ``[T, P]`` base probabilities.
        side_info: ``[T, N]`` raw examples.
        targets: ``[T]`` class labels.
        learning_rates: ``[T]`` rate of each example.
        config: the network's config.
        mask: optional ``[T]`` bools; a masked-out example changes nothing (padding).
        threads: threads the classes (and the gates' examples) are split over.
        batch_size: examples per update, dividing ``T`` (static); 1 is exact online learning.

    Returns:
        ``(weights, step, p)``: the updated weights per layer, the step count plus the
        examples learned, and ``p [T, C]`` the prediction made before each example's update.

    Raises:
        ValueError: when ``gates`` is None and ``config.context_map_size`` is not 0.
        jax.errors.JaxRuntimeError: when the weights do not fit the config (the message names
            the mismatch).

    Example:
        >>> from gln_jax.core.kernel import gates as kernel_gates  # doctest: +SKIP
        >>> matrix = kernel_gates.gate_matrix(state.layers)  # doctest: +SKIP
        >>> weights = tuple(layer.weights for layer in state.layers)  # doctest: +SKIP
        >>> weights, step, p = kernel_weights_update(  # doctest: +SKIP
        ...     weights, state.step, matrix, x, x, y, rates, config=config)
    """
    contexts = kernel_contexts(None, side_info, config=config, threads=threads, gates=gates)
    return _learn(
        tuple(weights),
        step,
        contexts,
        inputs,
        targets,
        learning_rates,
        config=config,
        mask=mask,
        threads=threads,
        batch_size=batch_size,
    )


def _learn(
    weights, step, contexts, inputs, targets, learning_rates, *, config, mask, threads, batch_size
):
    """The update of :func:`kernel_scan_update` once the context indices are known.

    Returns:
        ``(weights, step, p)`` as :func:`kernel_weights_update`.
    """
    dtype = jnp.dtype(config.dtype)
    targets = jnp.asarray(targets)
    if mask is None:
        mask = jnp.ones(targets.shape, bool)
    x0 = bernoulli.input_logits(inputs, config)
    binary = multiclass.batch_class_targets(targets, config).astype(dtype)
    rates = jnp.where(mask, jnp.asarray(learning_rates, dtype), 0)
    weights, p = online_fit(
        weights, x0, contexts, binary, rates, config=config, threads=threads, batch_size=batch_size
    )
    return weights, numerics.advance_step(step, jnp.sum(mask, dtype=jnp.int32)), p


def kernel_ensemble_update(
    states: GLNState,
    inputs: Array,
    side_info: Array,
    targets: Array,
    learning_rates: Array,
    *,
    config: GLNConfig,
    mask: Array | None = None,
    threads: int = 1,
    shared_gates: bool = False,
    batch_size: int = 1,
) -> tuple[GLNState, jax.Array]:
    """Exact online learning of every member of an ensemble in one call of the kernel.

    The members' one-vs-all classes are independent models like the classes of one member,
    so the ``E`` members are flattened into the class axis (``E * C`` one-vs-all models,
    member-major, each with its member's rate) and run by :func:`online_fit`; member ``e`` equals
    :func:`kernel_scan_update` of that member alone with its rates.

    Args:
        states: an ensemble state (every leaf with a leading ``[E]`` axis).
        inputs: ``[T, P]`` base probabilities.
        side_info: ``[T, N]`` raw examples.
        targets: ``[T]`` class labels.
        learning_rates: ``[E, T]`` rate of each member and example.
        config: the members' config.
        mask: optional ``[T]`` bools; a masked-out example changes nothing (padding).
        threads: threads the ``E * C`` flattened classes are split over.
        shared_gates: every member has member 0's hyperplanes and thresholds (a sweep, see
            :func:`gln_jax.core._ensemble.shares_gates`): the context indices are computed once,
            from member 0, for all members (the same indices, one member's gating instead of
            ``E``). Static.
        batch_size: examples per update, dividing ``T`` (static; see
            :func:`kernel_scan_update`).

    Returns:
        ``(states, p)`` with ``p [E, T, C]`` the predictions made before each update.
    """
    dtype = jnp.dtype(config.dtype)
    targets = jnp.asarray(targets)
    if mask is None:
        mask = jnp.ones(targets.shape, bool)
    members, steps, classes = states.step.shape[0], targets.shape[0], config.num_models
    if shared_gates:  # one gating call for all members: member 0's indices, repeated
        first = jax.tree.map(lambda a: a[0], states.layers)
        contexts = tuple(
            jnp.tile(c, (1, members, 1))
            for c in kernel_contexts(first, side_info, config=config, threads=threads)
        )  # per layer [T, E * C, K], member-major
    else:  # every member's hyperplanes in one gating call, member-major
        contexts = kernel_contexts(
            states.layers, side_info, config=config, threads=threads, members=members
        )
    x0 = bernoulli.input_logits(inputs, config)
    binary = multiclass.batch_class_targets(targets, config).astype(dtype)  # [T, C]
    rates = jnp.where(mask[None, :], jnp.asarray(learning_rates, dtype), 0)  # [E, T]
    weights = tuple(
        layer.weights.reshape(members * classes, *layer.weights.shape[2:])
        for layer in states.layers
    )
    weights, p = online_fit(
        weights,
        x0,
        contexts,
        jnp.tile(binary, (1, members)),
        jnp.repeat(rates.T, classes, axis=1),
        config=config,
        threads=threads,
        batch_size=batch_size,
    )
    layers = tuple(
        layer._replace(weights=w.reshape(layer.weights.shape))
        for layer, w in zip(states.layers, weights, strict=True)
    )
    step = numerics.advance_step(states.step, jnp.sum(mask, dtype=jnp.int32))
    p = jnp.moveaxis(p.reshape(steps, members, classes), 0, 1)
    return GLNState(layers=layers, step=step), p
