"""init / apply / update of a Gaussian GLN, and its ``lax.scan`` drivers: the reference API.

The state is a :class:`~gln_jax.core.types.GLNState` (same fields as the Bernoulli family) with
a leading axis over the ``C`` outputs of a multi-output regressor; the gates are the shared
:mod:`gln_jax.core.gating`, the neuron maths is :mod:`gln_jax.core.gaussian`, vmapped over the
outputs by :func:`gln_jax.core.multiclass.over_classes`. Inputs are the ``P`` input means (by
default the standardised example itself), each a Gaussian of variance ``input_sigma_sq``.

Every prediction is ``[..., C, 2]``: the mean and the variance of each output.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from gln_jax.core import gaussian, multiclass, network, numerics
from gln_jax.core.gating import batch_context_indices, context_indices
from gln_jax.core.gaussian_types import GaussianConfig
from gln_jax.core.stream import drive_chunks
from gln_jax.core.types import CHUNK_SIZE, Array, GLNState, PRNGKey


def init(key: PRNGKey, config: GaussianConfig) -> GLNState:
    """Initial state: the shared gating draw, weight rows ``1 / inputs`` (bias counted).

    Args:
        key: a ``jax.random`` key.
        config: from :func:`gln_jax.core.gaussian_types.make_gaussian_config`.

    Returns:
        The state; every array has a leading output axis of size ``config.num_outputs``.

    Example:
        >>> state = init(jax.random.key(0), make_gaussian_config([8], 10))  # doctest: +SKIP
    """
    return network.init(key, config)


def _weights(state: GLNState):
    return tuple(layer.weights for layer in state.layers)


def _output_targets(target: Array, config: GaussianConfig) -> jax.Array:
    """A scalar or ``[C]`` target -> ``[C]`` in ``config.dtype``."""
    return jnp.broadcast_to(jnp.asarray(target, config.dtype), (config.num_outputs,))


def apply_from_contexts(state: GLNState, inputs: Array, contexts, *, config: GaussianConfig):
    """:func:`apply` with precomputed context indices (per layer ``[C, K]``)."""
    mu0, sigma_sq0 = gaussian.input_gaussians(inputs, config)
    forward = multiclass.over_classes(gaussian.forward, (0, None, None, 0), config=config)
    _, outputs, _ = forward(_weights(state), mu0, sigma_sq0, contexts)
    mu, sigma_sq, _ = outputs[-1]
    return jnp.stack([mu[:, 0], sigma_sq[:, 0]], axis=-1)


def apply(state: GLNState, inputs: Array, side_info: Array, *, config: GaussianConfig):
    """Predictive Gaussian of every output for one example.

    Args:
        state: the state.
        inputs: ``[P]`` input means (the standardised example, by default).
        side_info: ``[N]`` the example the gates look at.
        config: the network's config.

    Returns:
        ``[C, 2]``: mean and variance of each output.

    Example:
        >>> out = apply(state, x, x, config=config)  # doctest: +SKIP
    """
    contexts = context_indices(state.layers, side_info, config=config)
    return apply_from_contexts(state, inputs, contexts, config=config)


def batch_apply(state: GLNState, inputs: Array, side_info: Array, *, config: GaussianConfig):
    """:func:`apply` of a batch: ``inputs [B, P]``, ``side_info [B, N]`` -> ``[B, C, 2]``."""
    contexts = batch_context_indices(state.layers, side_info, config=config)
    return jax.vmap(functools.partial(apply_from_contexts, state, config=config))(inputs, contexts)


def update_from_contexts(state, inputs, contexts, target, learning_rate, *, config, count=1):
    """:func:`update` with precomputed contexts; ``count`` (0 or 1) advances ``step``."""
    mu0, sigma_sq0 = gaussian.input_gaussians(inputs, config)
    targets = _output_targets(target, config)
    lr = jnp.asarray(learning_rate, config.dtype)
    step_fn = multiclass.over_classes(gaussian.update, (0, None, None, 0, 0, None), config=config)
    weights, out = step_fn(_weights(state), mu0, sigma_sq0, contexts, targets, lr)
    step = numerics.advance_step(state.step, count)
    return network._with_weights(state, weights, step), out


def update(state, inputs, side_info, target, learning_rate, *, config: GaussianConfig):
    """Predicts one example, then learns from it (exact online step).

    Args:
        state: the state.
        inputs: ``[P]`` input means.
        side_info: ``[N]`` the example the gates look at.
        target: scalar (one output) or ``[C]`` real targets.
        learning_rate: scalar rate.
        config: the network's config.

    Returns:
        ``(new_state, prediction [C, 2])``, the prediction made before the update.

    Example:
        >>> state, out = update(state, x, x, 0.3, 1e-2, config=config)  # doctest: +SKIP
    """
    contexts = context_indices(state.layers, side_info, config=config)
    return update_from_contexts(state, inputs, contexts, target, learning_rate, config=config)


def batch_update_from_contexts(
    state, inputs, contexts, targets, learning_rates, *, config, mask=None
):
    """:func:`batch_update` with contexts per layer ``[B, C, K]``; ``mask [B]`` drops padding."""
    mu0, sigma_sq0 = gaussian.input_gaussians(inputs, config)
    targets = jax.vmap(lambda t: _output_targets(t, config))(jnp.asarray(targets))  # [B, C]
    lrs = jnp.asarray(learning_rates, config.dtype)
    count = jnp.asarray(lrs.shape[0], jnp.int32)
    if mask is not None:
        lrs = jnp.where(mask, lrs, 0)
        count = jnp.sum(mask, dtype=jnp.int32)
    contexts = tuple(jnp.moveaxis(c, 1, 0) for c in contexts)  # [C, B, K]
    step_fn = multiclass.over_classes(
        gaussian.batch_update, (0, None, None, 0, 1, None), config=config
    )
    weights, out = step_fn(_weights(state), mu0, sigma_sq0, contexts, targets, lrs)
    return network._with_weights(
        state, weights, numerics.advance_step(state.step, count)
    ), jnp.moveaxis(out, 0, 1)


def batch_update(state, inputs, side_info, targets, learning_rates, *, config: GaussianConfig):
    """Predicts a batch with the weights from before it, then learns from all of it.

    Contributions of examples that share a row add up; touched rows are then clipped. A batch
    of one equals :func:`update`.

    Args:
        state: the state.
        inputs: ``[B, P]`` input means.
        side_info: ``[B, N]`` examples for the gates.
        targets: ``[B]`` (one output) or ``[B, C]`` targets.
        learning_rates: ``[B]``.
        config: the network's config.

    Returns:
        ``(new_state, prediction [B, C, 2])``.
    """
    contexts = batch_context_indices(state.layers, side_info, config=config)
    return batch_update_from_contexts(
        state, inputs, contexts, targets, learning_rates, config=config
    )


def scan_update(state, inputs, side_info, targets, learning_rates, *, config, mask=None):
    """Exact online learning over a stream: :func:`update` once per example, in a ``lax.scan``.

    Args:
        state: the state.
        inputs: ``[T, P]``; side_info: ``[T, N]``; targets: ``[T]`` or ``[T, C]``;
            learning_rates: ``[T]``.
        config: the network's config.
        mask: optional ``[T]`` bools; a masked-out example changes nothing.

    Returns:
        ``(state, prediction [T, C, 2])``, each made before its example's update.
    """
    targets = jnp.asarray(targets)
    if mask is None:
        mask = jnp.ones(targets.shape[:1], bool)
    contexts = batch_context_indices(state.layers, side_info, config=config)

    def body(carry, xs):
        x, ctx, target, lr, keep = xs
        lr = jnp.where(keep, jnp.asarray(lr, config.dtype), 0)
        return update_from_contexts(
            carry, x, ctx, target, lr, config=config, count=keep.astype(jnp.int32)
        )

    xs = (jnp.asarray(inputs), contexts, targets, jnp.asarray(learning_rates), mask)
    return jax.lax.scan(body, state, xs)


def scan_batch_update(state, inputs, side_info, targets, learning_rates, *, config, mask=None):
    """Batched learning over a stream: :func:`batch_update` once per batch of ``[S, B, ...]``.

    Returns:
        ``(state, prediction [S, B, C, 2])``.
    """
    targets = jnp.asarray(targets)
    side_info = jnp.asarray(side_info)
    s, b = targets.shape[:2]
    if mask is None:
        mask = jnp.ones((s, b), bool)
    flat = batch_context_indices(state.layers, side_info.reshape(s * b, -1), config=config)
    contexts = tuple(c.reshape(s, b, *c.shape[1:]) for c in flat)

    def body(carry, xs):
        x, ctx, target, lr, keep = xs
        return batch_update_from_contexts(carry, x, ctx, target, lr, config=config, mask=keep)

    xs = (jnp.asarray(inputs), contexts, targets, jnp.asarray(learning_rates), mask)
    return jax.lax.scan(body, state, xs)


@functools.partial(jax.jit, static_argnames=("config", "batch_size"), donate_argnums=(0,))
def _fit_chunk(state, inputs, side_info, targets, learning_rates, mask, *, config, batch_size):
    if batch_size == 1:
        return scan_update(
            state, inputs, side_info, targets, learning_rates, config=config, mask=mask
        )
    split = lambda a: a.reshape(-1, batch_size, *a.shape[1:])  # noqa: E731
    state, out = scan_batch_update(
        state,
        split(inputs),
        split(side_info),
        split(targets),
        split(learning_rates),
        config=config,
        mask=split(mask),
    )
    return state, out.reshape(-1, *out.shape[2:])


def fit_stream(
    state: GLNState,
    inputs: Array,
    side_info: Array,
    targets: Array,
    learning_rates: Array,
    *,
    config: GaussianConfig,
    batch_size: int = 1,
    chunk_size: int = CHUNK_SIZE,
) -> tuple[GLNState, np.ndarray]:
    """Trains on a whole stream in order, in fixed-size jitted chunks (host-side driver).

    As :func:`gln_jax.fit_stream`: the last chunk is padded with masked-out examples, so only
    a few chunk shapes are compiled, and the caller's ``state`` is left intact.

    Args:
        state: the state.
        inputs: ``[T, P]`` input means; side_info: ``[T, N]``.
        targets: ``[T, C]`` (or ``[T]`` for one output) real targets.
        learning_rates: ``[T]``.
        config: the network's config.
        batch_size: examples per update (1: exact online learning).
        chunk_size: most examples per compiled scan.

    Returns:
        ``(state, prediction)`` with ``prediction`` a NumPy ``[T, C, 2]`` array (mean and
        variance) of the predictions made before each update.
    """
    dtype = np.dtype(config.dtype)
    targets = np.asarray(targets, dtype).reshape(len(targets), -1)
    targets = np.broadcast_to(targets, (targets.shape[0], config.num_outputs))
    columns = [(a, 0, dtype) for a in (inputs, side_info, targets, learning_rates)]
    chunk = functools.partial(_fit_chunk, config=config, batch_size=batch_size)
    empty = np.zeros((0, config.num_outputs, 2), dtype)
    return drive_chunks(chunk, state, columns, batch_size, chunk_size, empty)
