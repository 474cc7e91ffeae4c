"""init / apply / update of a GLN over its layers and one-vs-all classes: the reference API.

Every function takes one example (``batch_update`` takes a batch, since examples that share a
weight row must accumulate); the neuron maths of one binary model is the family module
(:mod:`gln_jax.core.bernoulli`), vmapped over the leading class axis by
:mod:`gln_jax.core.multiclass`. Base predictions are ``clip(inputs, eps, 1 - eps)``; every
port reproduces these semantics exactly.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from gln_jax.core import bernoulli, checks, multiclass, numerics
from gln_jax.core.gating import batch_context_indices, context_indices
from gln_jax.core.schedules import traced_rates
from gln_jax.core.shapes import ArrayLike, Float, Rate, Real, Shaped
from gln_jax.core.types import (
    DEFAULT_HYPERPLANE_BIAS_SCALE,
    Array,
    GLNConfig,
    GLNState,
    LayerState,
    PRNGKey,
    StaticConfig,
    dense_rows,
)

Weights = tuple[jax.Array, ...]  # per layer [K, R, I] (one model) or [C, K, R, I]


_NORMAL_BLOCK = 1 << 15

_BATCH_HINT = "one example per call here; a batch goes to batch_apply or batch_update"


def check_example(function: str, state, inputs, side_info, config: GLNConfig) -> None:
    """Trace-time checks of one example's arguments (``inputs [P]``, ``side_info [N]``)."""
    checks.check_state(state, config, function=function)
    checks.check_array(
        inputs,
        (config.base_prediction_size,),
        "[P]",
        function=function,
        name="inputs",
        hint=_BATCH_HINT,
    )
    checks.check_array(
        side_info,
        (config.side_info_size,),
        "[N]",
        function=function,
        name="side_info",
        hint=_BATCH_HINT,
    )


def check_examples(function: str, state, inputs, side_info, config: GLNConfig, lead="B") -> int:
    """Trace-time checks of a batch or stream (``inputs [B, P]``, ``side_info [B, N]``);
    returns ``B``."""
    checks.check_state(state, config, function=function)
    checks.check_array(
        inputs,
        (None, config.base_prediction_size),
        f"[{lead}, P]",
        function=function,
        name="inputs",
    )
    checks.check_array(
        side_info,
        (None, config.side_info_size),
        f"[{lead}, N]",
        function=function,
        name="side_info",
    )
    count = int(np.shape(inputs)[0])
    checks.check_lengths(function, inputs=count, side_info=int(np.shape(side_info)[0]))
    return count


def _standard_normal(key: PRNGKey, count: int, dtype) -> jax.Array:
    """``[count]`` standard normal draws, made in fixed-size blocks.

    One block shape serves every configuration, so building a model of a new shape compiles
    nothing new (a fresh ``jax.random.normal`` shape costs a compilation of up to a second).
    """
    blocks = max(1, -(-count // _NORMAL_BLOCK))
    draws = [
        jax.random.normal(jax.random.fold_in(key, i), (_NORMAL_BLOCK,), dtype)
        for i in range(blocks)
    ]
    return jnp.concatenate(draws)[:count]


def _standard_normal_range(key: PRNGKey, start, count: int, dtype) -> jax.Array:
    """Elements ``[start, start + count)`` of :func:`_standard_normal` (of any length).

    Only the blocks holding those elements are drawn, so a device can draw its own part of a
    large model's hyperplanes without the rest (:func:`gln_jax.core._sharding.init_sharded`).

    Args:
        key: the key given to :func:`_standard_normal`.
        start: int or traced int32 scalar, the first element.
        count: static int, how many elements.
        dtype: float dtype.

    Returns:
        ``[count]`` draws, equal to ``_standard_normal(key, n, dtype)[start : start + count]``.
    """
    start = jnp.asarray(start, jnp.int32)
    first = start // _NORMAL_BLOCK
    blocks = count // _NORMAL_BLOCK + 2  # enough for any alignment of the range
    indices = first + jnp.arange(blocks, dtype=jnp.int32)
    keys = jax.vmap(lambda i: jax.random.fold_in(key, i))(indices)
    draws = jax.vmap(lambda k: jax.random.normal(k, (_NORMAL_BLOCK,), dtype))(keys)
    return jax.lax.dynamic_slice(draws.reshape(-1), (start - first * _NORMAL_BLOCK,), (count,))


def _layer_state(planes, offsets, inputs: int, config: GLNConfig) -> LayerState:
    """A layer's initial state from its raw normal draws (:func:`init`'s rule, written once).

    Args:
        planes: ``[C, K, H, N]`` standard normal draws (the hyperplanes' normals).
        offsets: ``[C, K, H]`` standard normal draws (the hyperplanes' offsets).
        inputs: the layer's input width (bias included).
        config: the model's config.

    Returns:
        The layer: weights ``min(1 / inputs, weight_clipping)``; normals divided by their norm
        with ``hyperplane_normalize``, else the raw draws; with ``context_bias`` the drawn
        offsets times ``hyperplane_bias_scale``, else zero offsets.
    """
    # A config without the hyperplane options (the Gaussian family's) draws as they default.
    if getattr(config, "hyperplane_normalize", config.context_bias):
        planes = planes / jnp.sqrt(jnp.sum(planes * planes, axis=-1, keepdims=True))
    if config.context_bias:
        scale = getattr(config, "hyperplane_bias_scale", DEFAULT_HYPERPLANE_BIAS_SCALE)
        offsets = offsets * jnp.asarray(scale, offsets.dtype)
    else:
        offsets = jnp.zeros_like(offsets)
    start = min(1.0 / inputs, config.weight_clipping)
    shape = (*planes.shape[:2], config.num_contexts, inputs)
    return LayerState(jnp.full(shape, start, planes.dtype), planes, offsets)


def init_class_range(key: PRNGKey, config: GLNConfig, first, count: int) -> GLNState:
    """Classes ``[first, first + count)`` of :func:`init`'s state, drawing only those.

    Classes at or beyond ``config.num_models`` (padding) are all zero. Under ``jit`` with a
    traced ``first`` (a device's first class), each device draws only its own hyperplanes.

    Args:
        key: the key given to :func:`init`.
        config: the model's config (its real class count).
        first: int or traced int32 scalar, the first class.
        count: static int, classes to build.

    Returns:
        A state whose leaves have a leading class axis of size ``count``; ``step`` is 0.
    """
    dtype = jnp.dtype(config.dtype)
    c, m, n = config.num_models, config.context_map_size, config.side_info_size
    if c * sum(config.layer_sizes) * m * n >= 2**31:
        raise ValueError(
            "init_class_range addresses the hyperplane draws with int32 offsets: this model has "
            f"{c * sum(config.layer_sizes) * m * n} hyperplane numbers, 2**31 or more"
        )
    plane_key, bias_key = jax.random.split(key)
    first = jnp.asarray(first, jnp.int32)
    real = (first + jnp.arange(count, dtype=jnp.int32)) < c  # [count]
    layers, plane_start, bias_start = [], 0, 0
    for neurons, inputs in zip(config.layer_sizes, config.layer_input_sizes(), strict=True):
        per_plane, per_bias = neurons * m * n, neurons * m
        planes = _standard_normal_range(
            plane_key, plane_start + first * per_plane, count * per_plane, dtype
        ).reshape(count, neurons, m, n)
        offsets = _standard_normal_range(
            bias_key, bias_start + first * per_bias, count * per_bias, dtype
        ).reshape(count, neurons, m)
        plane_start, bias_start = plane_start + c * per_plane, bias_start + c * per_bias
        layer = _layer_state(planes, offsets, inputs, config)
        layers.append(
            LayerState(
                *(
                    jnp.where(real.reshape(-1, *[1] * (a.ndim - 1)), a, 0).astype(dtype)
                    for a in layer
                )
            )
        )
    return GLNState(layers=tuple(layers), step=jnp.zeros((), jnp.int32))


def init(key: PRNGKey, config: GLNConfig) -> GLNState:
    """Builds the initial state: gating hyperplanes at random, weights ``1 / inputs``.

    Weight rows start at ``1 / inputs`` (``1/K`` for a neuron of ``K`` inputs, the bias input
    counted), clipped into ``[-weight_clipping, weight_clipping]`` so that every weight always
    lies inside the clip. The gating normals are standard Gaussian vectors, divided by their
    norm when ``config.hyperplane_normalize`` (which defaults to ``context_bias``); the offsets
    are ``N(0, hyperplane_bias_scale**2)`` with ``context_bias`` and zero without it. The
    defaults (``context_bias=True``) give unit-norm normals and ``N(0, 1)`` offsets.

    Args:
        key: a ``jax.random`` key.
        config: from :func:`gln_jax.make_config`.

    Returns:
        The state, every array with a leading class axis of size ``config.num_models``.

    Example:
        >>> state = init(jax.random.key(0), make_config([4, 4], 784))  # doctest: +SKIP
    """
    checks.check_config(config, function="init", families=(StaticConfig,))
    dtype = jnp.dtype(config.dtype)
    if dtype == jnp.float64 and not jax.config.jax_enable_x64:
        raise ValueError(
            "dtype='float64' needs 64-bit JAX: call jax.config.update('jax_enable_x64', True) "
            "before building the model"
        )
    c, m, n = config.num_models, config.context_map_size, config.side_info_size
    plane_key, bias_key = jax.random.split(key)
    plane_sizes = [c * k * m * n for k in config.layer_sizes]
    planes_flat = _standard_normal(plane_key, sum(plane_sizes), dtype)
    offsets_flat = _standard_normal(bias_key, c * m * sum(config.layer_sizes), dtype)
    layers, plane_start, bias_start = [], 0, 0
    for neurons, inputs, size in zip(
        config.layer_sizes, config.layer_input_sizes(), plane_sizes, strict=True
    ):
        planes = planes_flat[plane_start : plane_start + size].reshape(c, neurons, m, n)
        offsets = offsets_flat[bias_start : bias_start + c * neurons * m]
        offsets = offsets.reshape(c, neurons, m)
        plane_start, bias_start = plane_start + size, bias_start + c * neurons * m
        layers.append(_layer_state(planes, offsets, inputs, config))
    return GLNState(layers=tuple(layers), step=jnp.zeros((), jnp.int32))


def base_predictions(x: Real[ArrayLike, "*B P"], *, config: GLNConfig) -> Float[jax.Array, "*B P"]:
    """Default base predictions: the example itself, clipped into ``[eps, 1 - eps]``.

    Args:
        x: ``[P]`` (or ``[B, P]``) example with entries in [0, 1].
        config: the network's config.

    Returns:
        Same shape, clipped, in ``config.dtype``.

    Raises:
        ValueError: a last axis other than ``config.base_prediction_size`` wide, or a rank
            other than 1 or 2 (raised while tracing).
    """
    checks.check_config(config, function="base_predictions")
    width = config.base_prediction_size
    if np.ndim(x) not in (1, 2) or np.shape(x)[-1] != width:
        raise ValueError(
            f"base_predictions: x must have shape [P] or [B, P] with P = {width}, got shape "
            f"{tuple(np.shape(x))}"
        )
    return numerics.clip_probability(jnp.asarray(x, config.dtype), config.pred_clipping)


def _weights(state: GLNState) -> Weights:
    return tuple(layer.weights for layer in state.layers)


def _with_weights(state: GLNState, weights: Weights, step) -> GLNState:
    layers = tuple(
        layer._replace(weights=w) for layer, w in zip(state.layers, weights, strict=True)
    )
    return GLNState(layers=layers, step=step)


def apply_from_contexts(state: GLNState, inputs: Array, contexts, *, config: GLNConfig):
    """:func:`apply` with precomputed context indices (per layer ``[C, K]``)."""
    x0 = bernoulli.input_logits(inputs, config)
    forward = multiclass.over_classes(bernoulli.forward, (0, None, 0), config=config)
    _, ps, _ = forward(_weights(state), x0, contexts)
    return ps[-1][:, 0]


def batch_apply(
    state: GLNState,
    inputs: Real[ArrayLike, "B P"],
    side_info: Real[ArrayLike, "B N"],
    *,
    config: GLNConfig,
) -> Float[jax.Array, "B C"]:
    """Probabilities of a batch: :func:`apply` vmapped, computed layer by layer for speed.

    Where :func:`gln_jax.core.types.dense_rows` says so (few rows per neuron, more than one
    example), every row of a layer is scored by one matrix product and the active row's score
    is then selected; otherwise the active rows are gathered. The result equals
    ``jax.vmap(apply)`` up to float rounding.

    Args:
        state: the GLN state.
        inputs: ``[B, P]`` base probabilities.
        side_info: ``[B, N]`` raw examples.
        config: the network's config.

    Returns:
        ``[B, C]`` clipped probabilities.

    Raises:
        ValueError, TypeError: arguments that disagree with ``config`` (see :func:`update`).
    """
    check_examples("batch_apply", state, inputs, side_info, config)
    contexts = batch_context_indices(state.layers, side_info, config=config)
    if not dense_rows(config, contexts[0].shape[0]):
        return jax.vmap(functools.partial(apply_from_contexts, state, config=config))(
            inputs, contexts
        )
    x = bernoulli.input_logits(inputs, config)  # [B, I], shared by the classes
    for layer, ctx in zip(state.layers, contexts, strict=True):
        scores = bernoulli.dense_scores(x, layer.weights)  # [C, B, K, R]
        z = jnp.take_along_axis(scores, jnp.moveaxis(ctx, 1, 0)[..., None], axis=-1)[..., 0]
        p = numerics.clip_probability(numerics.sigmoid(z), config.pred_clipping)  # [C, B, K]
        x = bernoulli.append_bias(numerics.logit(p), config)
    return p[..., 0].T


def apply(
    state: GLNState,
    inputs: Real[ArrayLike, " P"],
    side_info: Real[ArrayLike, " N"],
    *,
    config: GLNConfig,
) -> Float[jax.Array, " C"]:
    """Probability of the positive class of every one-vs-all model, for one example.

    Args:
        state: the GLN state.
        inputs: ``[P]`` base probabilities in [0, 1] (see :func:`base_predictions`); values
            are not checked under ``jit``.
        side_info: ``[N]`` raw example, looked at by the gates.
        config: the network's config.

    Returns:
        ``[C]`` clipped probabilities, ``C = config.num_models``.

    Raises:
        ValueError, TypeError: arguments that disagree with ``config`` (see :func:`update`).

    Example:
        >>> p = apply(state, x, x, config=config)  # doctest: +SKIP
    """
    check_example("apply", state, inputs, side_info, config)
    contexts = context_indices(state.layers, side_info, config=config)
    return apply_from_contexts(state, inputs, contexts, config=config)


def update_from_contexts(
    state, inputs, contexts, target, learning_rate, *, config: GLNConfig, count=1
):
    """:func:`update` with precomputed context indices; ``count`` (0 or 1) advances ``step``."""
    x0 = bernoulli.input_logits(inputs, config)
    targets = multiclass.class_targets(target, config).astype(config.dtype)
    lr = jnp.asarray(learning_rate, config.dtype)
    step_fn = multiclass.over_classes(bernoulli.update, (0, None, 0, 0, None), config=config)
    weights, p = step_fn(_weights(state), x0, contexts, targets, lr)
    return _with_weights(state, weights, numerics.advance_step(state.step, count)), p


def update(
    state: GLNState,
    inputs: Real[ArrayLike, " P"],
    side_info: Real[ArrayLike, " N"],
    target: Shaped[ArrayLike, ""],
    learning_rate: Rate,
    *,
    config: GLNConfig,
) -> tuple[GLNState, Float[jax.Array, " C"]]:
    """Predicts one example, then learns from it (exact online step).

    Only the active row of each neuron moves, from that neuron's own clipped output:
    ``w_c <- clip(w_c - lr * (p - y) * x, -wc, wc)``.

    Args:
        state: the GLN state.
        inputs: ``[P]`` base probabilities.
        side_info: ``[N]`` raw example.
        target: scalar class label in ``[0, num_classes)`` (0/1 or bool when binary). Not
            checked: this function is traced under ``jit``, where values cannot be inspected,
            and a label outside the range trains every one-vs-all model towards 0 (a binary
            model takes it as its target value). Check labels on the host first, or use
            :func:`gln_jax.fit_stream` or the ``GLN`` facade, which do.
        learning_rate: scalar rate for this example, or a schedule: a traceable callable of
            the step, evaluated at ``state.step`` (the examples learned so far).
        config: the network's config.

    Returns:
        ``(new_state, p)`` with ``p [C]`` the prediction made before the update.

    Raises:
        ValueError, TypeError: while tracing, naming the argument: a state whose layers,
            class axis, shapes or dtype are not the config's; ``inputs`` not ``[P]`` or
            ``side_info`` not ``[N]`` (one example: a batch goes to :func:`batch_update`); a
            ``target`` or ``learning_rate`` that is not a scalar.

    Example:
        >>> state, p = update(state, x, x, 3, 1e-3, config=config)  # doctest: +SKIP
    """
    check_example("update", state, inputs, side_info, config)
    checks.check_array(target, (), "[]", function="update", name="target", hint=_BATCH_HINT)
    rate = traced_rates(
        learning_rate,
        jnp.asarray(state.step),
        config.dtype,
        function="update",
        name="learning_rate",
        letters="[]",
    )
    contexts = context_indices(state.layers, side_info, config=config)
    return update_from_contexts(state, inputs, contexts, target, rate, config=config)


def batch_update_from_contexts(
    state, inputs, contexts, targets, learning_rates, *, config: GLNConfig, mask=None
):
    """:func:`batch_update` with contexts per layer ``[B, C, K]``; ``mask [B]`` drops padding."""
    x0 = bernoulli.input_logits(inputs, config)
    targets = multiclass.batch_class_targets(targets, config)
    lrs = jnp.asarray(learning_rates, config.dtype)
    count = jnp.asarray(lrs.shape[0], jnp.int32)
    if mask is not None:
        lrs = jnp.where(mask, lrs, 0)
        count = jnp.sum(mask, dtype=jnp.int32)
    contexts = tuple(jnp.moveaxis(c, 1, 0) for c in contexts)  # [C, B, K]
    targets = targets.astype(config.dtype)
    if dense_rows(config, lrs.shape[0]):
        weights, p = bernoulli.dense_batch_update(
            _weights(state), x0, contexts, targets.T, lrs, config=config
        )
    else:
        step_fn = multiclass.over_classes(
            bernoulli.batch_update, (0, None, 0, 1, None), config=config
        )
        weights, p = step_fn(_weights(state), x0, contexts, targets, lrs)
    return _with_weights(state, weights, numerics.advance_step(state.step, count)), p.T


def batch_update(
    state: GLNState,
    inputs: Real[ArrayLike, "B P"],
    side_info: Real[ArrayLike, "B N"],
    targets: Shaped[ArrayLike, " B"],
    learning_rates: Real[ArrayLike, " B"] | Rate,
    *,
    config: GLNConfig,
) -> tuple[GLNState, Float[jax.Array, "B C"]]:
    """Predicts a batch with the weights from before it, then learns from all of it.

    Example ``i`` contributes ``-learning_rates[i] * (p_i - y_i) * x_i`` to its active rows;
    contributions to a shared row add up; the touched rows are then clipped and ``step``
    advances by the batch size. A batch of one equals :func:`update`.

    Args:
        state: the GLN state.
        inputs: ``[B, P]`` base probabilities.
        side_info: ``[B, N]`` raw examples.
        targets: ``[B]`` class labels in ``[0, num_classes)``; not checked under ``jit`` (see
            :func:`update`).
        learning_rates: ``[B]`` rate of each example, one scalar rate for all of them, or a
            schedule: a traceable callable of the step, evaluated at ``state.step + i`` for
            example ``i``.
        config: the network's config.

    Returns:
        ``(new_state, p)`` with ``p [B, C]`` the predictions made before the update.

    Raises:
        ValueError, TypeError: while tracing, naming the argument (see :func:`update`).
    """
    batch = check_examples("batch_update", state, inputs, side_info, config)
    checks.check_array(targets, (batch,), "[B]", function="batch_update", name="targets")
    rates = traced_rates(
        learning_rates,
        jnp.asarray(state.step) + jnp.arange(batch, dtype=jnp.int32),
        config.dtype,
        function="batch_update",
        name="learning_rates",
        letters="[B]",
    )
    contexts = batch_context_indices(state.layers, side_info, config=config)
    return batch_update_from_contexts(state, inputs, contexts, targets, rates, config=config)
