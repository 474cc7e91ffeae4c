"""A pool of GLNs mixed by a switching Bayesian mixture: task-free continual learning.

The pool holds up to ``M`` member GLNs (one stacked :class:`~gln_jax.core.types.GLNState`, a
leading member axis on every leaf). Each member is a joint model of an example: a GLN for the
label given the example, ``p_m(y | x)``, and a Gaussian over a fixed random projection
``z = x @ projection`` (``D`` wide) for the example itself, ``p_m(x)``. The mixture over
members is a fixed-share switching mixture (Herbster and Warmuth's fixed share, the switching
prior of the forget-me-not process): after each example every member's weight is multiplied by
its joint likelihood ``p_m(x) p_m(y | x)`` (its predictive log-loss), renormalised, then a
fraction ``switch_rate`` of the mass is shared out evenly over the members in use, so that a
member that explained an old segment of the stream can regain the lead within a few examples.

Members are kept, added and trained online by that posterior alone, with no task labels:

- only the member with the largest posterior weight after an example (the *learner*) learns
  from it: its GLN takes one :func:`gln_jax.core.network.update` step and its input model adds
  the example; every other member is left exactly as it is, so what it learned is kept;
- one member in use is always *fresh*: an untrained GLN (it predicts 1/2) whose input model is
  the broad prior (the pooled mean and covariance of every example so far, times
  ``novelty_scale``). On examples unlike any member's, the fresh member explains them best,
  becomes the learner and is thereby added to the pool; the next unused slot becomes fresh.
  When every slot is in use, the member that has learned from the fewest examples (a member
  adopted on a few outliers, as a rule) is emptied and becomes the fresh one.

Prediction needs no label: the members' weights are updated by ``p_m(x)`` only, and the GLNs'
probabilities are mixed by that posterior, so an example from an old task is routed to the
member that learned it. :func:`~gln_jax.continual.pool_step` returns that prediction, made
before it learns, from the switching mixture's weights (the prior for the stream's next
example); :func:`~gln_jax.continual.predict_pool` weighs the members by the examples each has
learned instead (the prior for a held-out set of every task), or as the stream does.

With ``rate_scale`` set, the learner steps at ``min(learning_rate, rate_scale / (n + 1))``,
``n`` the examples it has learned from: a member's rate falls as it learns its segment, so a
later task's stray examples that it wins cannot overwrite it.

A member's input model is the Gaussian posterior-predictive of its examples shrunk towards the
prior: mean ``(sum z + k mu0) / (n + k)`` and covariance
``(sum (z - mean)(z - mean)^T + k Sigma0) / (n + k)``, ``k = prior_strength``, with
``mu0, Sigma0`` the prior above (``Sigma0`` = ``novelty_scale`` times the pooled covariance
plus ``prior_variance`` times the identity).

Cost (``M`` slots, ``D`` projection width): a step evaluates ``M`` GLNs (one forward pass
each), ``M`` Cholesky factorisations of ``D x D`` and updates one GLN, so it costs about ``M``
times a single GLN's :func:`~gln_jax.core.network.apply` plus one update; memory is ``M``
member states plus ``M (D^2 + D + 1)`` statistics. Measured figures are in the continual
learning guide.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp

from gln_jax.core import network
from gln_jax.core.types import (
    Array,
    GLNConfig,
    GLNState,
    PRNGKey,
    StaticConfig,
    register_static_config,
)

#: Log-weight of a slot that holds no member (finite, so masked arithmetic stays NaN-free).
UNUSED_LOG_WEIGHT = -1e30


@register_static_config
@dataclasses.dataclass(frozen=True)
class PoolConfig(StaticConfig):
    """Static hyperparameters of a pool of GLNs (hashable, no arrays).

    Attributes:
        member: the config of every member GLN.
        capacity: ``M``, the most members the pool holds (the fresh one included).
        switch_rate: fixed-share rate in ``[0, 1)``: the fraction of the posterior mass shared
            out evenly over the members in use after every example.
        projection_size: ``D``, width of the random projection the input models see.
        prior_strength: pseudo-count ``k`` of the prior in every member's input model.
        novelty_scale: factor on the pooled covariance in the prior (the fresh member's input
            model): above 1, so the fresh member is broader than any trained member.
        prior_variance: variance added to every direction of the prior (before any example,
            it is the whole prior).
        input_weight: exponent ``b`` on the input models' densities (a tempered likelihood,
            ``p_m(x)**b``): below 1 it keeps a Gaussian's over-confident density in ``D``
            dimensions from outweighing the labels' evidence.
        rate_scale: ``None`` (the learner's GLN steps at the given rate) or ``s > 0``: each
            member follows its own inverse-time schedule, stepping at
            ``min(learning_rate, s / (n + 1))`` with ``n`` the examples it has learned from.
            A member that has learned a task then takes small steps, so the few examples of a
            later task that it wins (a 9 that looks like a 4) cannot undo what it learned.
    """

    member: GLNConfig
    capacity: int = 8
    switch_rate: float = 1e-3
    projection_size: int = 64
    prior_strength: float = 10.0
    novelty_scale: float = 4.0
    prior_variance: float = 1e-2
    input_weight: float = 1.0
    rate_scale: float | None = None

    @property
    def num_outcomes(self) -> int:
        """Outcomes of the label distribution (2 for a binary member)."""
        return self.member.num_classes


class PoolState(NamedTuple):
    """State of a pool of GLNs (every field a JAX array).

    Attributes:
        members: the member GLNs, every leaf with a leading ``[M]`` axis.
        log_weights: ``[M]`` log posterior weights of the switching mixture (normalised over
            the slots in use; ``UNUSED_LOG_WEIGHT`` elsewhere).
        in_use: ``[M]`` bool, the slots holding a member (the fresh one included).
        fresh: scalar int32, the slot of the fresh member, ``M`` when the pool is full.
        counts: ``[M]`` examples each member's input model has seen.
        sums: ``[M, D]`` sums of their projections.
        moments: ``[M, D, D]`` sums of their outer products.
        total_count: scalar, examples seen by the pool.
        total_sum: ``[D]`` sum of every projection.
        total_moment: ``[D, D]`` sum of every outer product.
        projection: ``[N, D]`` fixed Gaussian projection of the side information.
    """

    members: GLNState
    log_weights: Array
    in_use: Array
    fresh: Array
    counts: Array
    sums: Array
    moments: Array
    total_count: Array
    total_sum: Array
    total_moment: Array
    projection: Array


def _positive_finite(value) -> bool:
    """Whether ``value`` is an int or float, finite and above 0."""
    return isinstance(value, (int, float)) and math.isfinite(value) and value > 0


def make_pool_config(member: GLNConfig, **options) -> PoolConfig:
    """Validates the pool's options and builds a :class:`PoolConfig`.

    Args:
        member: config of every member (:func:`gln_jax.make_config`).
        **options: any field of :class:`PoolConfig` but ``member``.

    Returns:
        The config.

    Raises:
        ValueError, TypeError: an option out of range, naming it.

    Example:
        >>> from gln_jax.core.types import make_config
        >>> make_pool_config(make_config([8, 1], 784), capacity=6).capacity
        6
    """
    if not isinstance(member, GLNConfig):
        raise TypeError(f"member must be a GLNConfig, got {type(member).__name__}")
    config = PoolConfig(member=member, **options)
    if not isinstance(config.capacity, int) or config.capacity < 2:
        raise ValueError(f"capacity must be an int of at least 2, got {config.capacity!r}")
    if not 0.0 <= config.switch_rate < 1.0:
        raise ValueError(f"switch_rate must be in [0, 1), got {config.switch_rate!r}")
    if not isinstance(config.projection_size, int) or config.projection_size < 1:
        raise ValueError(f"projection_size must be a positive int, got {config.projection_size!r}")
    for name in ("prior_strength", "novelty_scale", "prior_variance", "input_weight"):
        value = getattr(config, name)
        if not _positive_finite(value):
            raise ValueError(f"{name} must be a positive finite number, got {value!r}")
    scale = config.rate_scale
    if scale is not None and not _positive_finite(scale):
        raise ValueError(f"rate_scale must be None or a positive finite number, got {scale!r}")
    return config


def init(key: PRNGKey, config: PoolConfig) -> PoolState:
    """A pool whose only member in use is a fresh GLN in slot 0.

    Every slot starts as an independent :func:`gln_jax.core.network.init` state (its own
    hyperplanes), so a slot that becomes fresh later is already an untrained GLN.

    Args:
        key: a ``jax.random`` key.
        config: from :func:`make_pool_config`.

    Returns:
        The initial state.

    Example:
        >>> state = init(jax.random.key(0), config)  # doctest: +SKIP
    """
    member_key, projection_key = jax.random.split(key)
    keys = jax.random.split(member_key, config.capacity)
    members = jax.vmap(functools.partial(network.init, config=config.member))(keys)
    m, d, n = config.capacity, config.projection_size, config.member.side_info_size
    dtype = jnp.dtype(config.member.dtype)
    projection = jax.random.normal(projection_key, (n, d), dtype) / jnp.sqrt(jnp.asarray(n, dtype))
    in_use = jnp.arange(m) == 0
    return PoolState(
        members=members,
        log_weights=jnp.where(in_use, 0.0, UNUSED_LOG_WEIGHT).astype(dtype),
        in_use=in_use,
        fresh=jnp.zeros((), jnp.int32),
        counts=jnp.zeros((m,), dtype),
        sums=jnp.zeros((m, d), dtype),
        moments=jnp.zeros((m, d, d), dtype),
        total_count=jnp.zeros((), dtype),
        total_sum=jnp.zeros((d,), dtype),
        total_moment=jnp.zeros((d, d), dtype),
        projection=projection,
    )


def fixed_share(log_weights: Array, log_likelihoods: Array, in_use: Array, switch_rate) -> Array:
    """One step of the fixed-share switching mixture, in log space.

    ``w_m <- (1 - a) * w_m l_m / sum_j w_j l_j + a / n`` over the ``n`` members in use
    (``a = switch_rate``); slots not in use keep ``UNUSED_LOG_WEIGHT``.

    Args:
        log_weights: ``[M]`` log weights, normalised over ``in_use``.
        log_likelihoods: ``[M]`` log-likelihood of the example under each member.
        in_use: ``[M]`` bool.
        switch_rate: the share ``a``, a scalar in ``[0, 1)``.

    Returns:
        ``[M]`` the new log weights.

    Example:
        >>> fixed_share(jnp.log(jnp.array([0.5, 0.5])), jnp.log(jnp.array([0.9, 0.1])),
        ...             jnp.array([True, True]), 0.1).round(4)  # doctest: +SKIP
    """
    posterior = jnp.where(in_use, log_weights + log_likelihoods, -jnp.inf)
    posterior = posterior - jax.nn.logsumexp(posterior)
    n = jnp.sum(in_use).astype(log_weights.dtype)
    rate = jnp.asarray(switch_rate, log_weights.dtype)
    shared = jnp.logaddexp(jnp.log1p(-rate) + posterior, jnp.log(rate) - jnp.log(n))
    return jnp.where(in_use, shared, UNUSED_LOG_WEIGHT).astype(log_weights.dtype)


def _prior(state: PoolState, config: PoolConfig):
    """Mean ``[D]`` and covariance ``[D, D]`` of the broad prior (the fresh member's model)."""
    dtype = state.total_sum.dtype
    count = jnp.maximum(state.total_count, 1.0)
    mean = state.total_sum / count
    cov = state.total_moment / count - jnp.outer(mean, mean)
    eye = jnp.eye(config.projection_size, dtype=dtype)
    return mean, config.novelty_scale * cov + config.prior_variance * eye


def input_log_densities(state: PoolState, z: Array, *, config: PoolConfig) -> Array:
    """``[B, M]`` tempered log-densities ``b log p_m(z)`` of projections ``z [B, D]``."""
    mean0, cov0 = _prior(state, config)
    k = jnp.asarray(config.prior_strength, z.dtype)
    n = state.counts[:, None]  # [M, 1]
    means = (state.sums + k * mean0[None]) / (n + k)  # [M, D]
    # sum over the member's examples of (z - mean)(z - mean)^T, for any mean:
    centred = (
        state.moments
        - jnp.einsum("md,me->mde", means, state.sums)
        - jnp.einsum("md,me->mde", state.sums, means)
        + n[..., None] * jnp.einsum("md,me->mde", means, means)
    )
    covs = (centred + k * cov0[None]) / (n[..., None] + k)
    chol = jnp.linalg.cholesky(covs)  # [M, D, D]
    diff = z[:, None, :] - means[None]  # [B, M, D]
    solved = jax.vmap(
        lambda c, d: jax.scipy.linalg.solve_triangular(c, d.T, lower=True).T,
        in_axes=(0, 1),
        out_axes=1,
    )(chol, diff)  # [B, M, D]
    log_det = jnp.sum(jnp.log(jnp.diagonal(chol, axis1=-2, axis2=-1)), axis=-1)  # [M]
    d = config.projection_size
    log_density = (
        -0.5 * jnp.sum(solved**2, axis=-1) - log_det[None] - 0.5 * d * math.log(2 * math.pi)
    )
    return config.input_weight * log_density


def member_probabilities(members: GLNState, inputs: Array, side_info: Array, *, config):
    """``[B, M, K]`` label distribution of every member for a batch (``K`` outcomes)."""
    per_member = jax.vmap(
        functools.partial(network.batch_apply, config=config.member), in_axes=(0, None, None)
    )
    p = per_member(members, inputs, side_info)  # [M, B, C]
    p = jnp.moveaxis(p, 0, 1)  # [B, M, C]
    if config.member.num_classes == 2:
        return jnp.concatenate([1.0 - p, p], axis=-1)
    return p / jnp.sum(p, axis=-1, keepdims=True)


def _member_probabilities_one(members, inputs, side_info, *, config):
    """``[M, K]`` label distribution of every member for one example."""
    per_member = jax.vmap(
        functools.partial(network.apply, config=config.member), in_axes=(0, None, None)
    )
    p = per_member(members, inputs, side_info)  # [M, C]
    if config.member.num_classes == 2:
        return jnp.concatenate([1.0 - p, p], axis=-1)
    return p / jnp.sum(p, axis=-1, keepdims=True)


#: How :func:`predict` weighs the members before their input models: see its ``routing``.
ROUTINGS = ("counts", "posterior")


def predict(
    state: PoolState,
    inputs: Array,
    side_info: Array,
    *,
    config: PoolConfig,
    routing: str = "counts",
) -> Array:
    """Label distribution of a batch, with no label: members mixed by ``w_m p_m(x)``.

    Args:
        state: the pool.
        inputs: ``[B, P]`` base probabilities (as for :func:`gln_jax.batch_apply`).
        side_info: ``[B, N]`` raw examples.
        config: the pool's config.
        routing: the members' weights ``w_m`` before their input models (static).
            ``"counts"``: each member's share of the examples learned so far, ``n_m + 1``
            normalised, the prior for held-out examples drawn from everything the pool has
            seen (a test set of every task). ``"posterior"``: the switching mixture's current
            weights, the prior for the examples that continue the stream (what
            :func:`~gln_jax.continual.pool_step` predicts with); after a long task they
            favour its member so strongly that examples of earlier tasks are routed to it.

    Returns:
        ``[B, K]`` probabilities of the ``K = member.num_classes`` outcomes.

    Raises:
        ValueError: an unknown ``routing``.

    Example:
        >>> probs = predict(state, x, x, config=config)  # doctest: +SKIP
    """
    if routing == "counts":
        prior = jnp.log(state.counts + 1.0)
    elif routing == "posterior":
        prior = state.log_weights
    else:
        raise ValueError(f"routing must be one of {ROUTINGS}, got {routing!r}")
    z = side_info @ state.projection
    log_x = input_log_densities(state, z, config=config)  # [B, M]
    weights = jnp.where(state.in_use[None], prior[None] + log_x, -jnp.inf)
    weights = jax.nn.softmax(weights, axis=-1)  # [B, M]
    probs = member_probabilities(state.members, inputs, side_info, config=config)
    return jnp.einsum("bm,bmk->bk", weights, probs)


def step(
    state: PoolState,
    inputs: Array,
    side_info: Array,
    target: Array,
    learning_rate,
    *,
    config: PoolConfig,
) -> tuple[PoolState, Array]:
    """Predicts one example with no label, then learns from it (one online step).

    Args:
        state: the pool.
        inputs: ``[P]`` base probabilities.
        side_info: ``[N]`` raw example.
        target: scalar int label.
        learning_rate: scalar rate of the learner's GLN update (traced: no recompilation).
        config: the pool's config.

    Returns:
        ``(new_state, probs)``, ``probs [K]`` the label distribution predicted before learning.
    """
    dtype = state.log_weights.dtype
    z = side_info @ state.projection  # [D]
    log_x = input_log_densities(state, z[None], config=config)[0]  # [M]
    probs = _member_probabilities_one(state.members, inputs, side_info, config=config)  # [M, K]
    routing = jnp.where(state.in_use, state.log_weights + log_x, -jnp.inf)
    prediction = jax.nn.softmax(routing) @ probs
    label = jnp.asarray(target, jnp.int32)
    log_y = jnp.log(probs[:, label])
    log_weights = fixed_share(state.log_weights, log_x + log_y, state.in_use, config.switch_rate)
    learner = jnp.argmax(jnp.where(state.in_use, log_x + log_y + state.log_weights, -jnp.inf))
    learner = learner.astype(jnp.int32)
    member = jax.tree.map(lambda leaf: leaf[learner], state.members)
    rate = jnp.asarray(learning_rate, dtype)
    if config.rate_scale is not None:  # the learner's own inverse-time schedule
        rate = jnp.minimum(rate, config.rate_scale / (state.counts[learner] + 1.0))
    member, _ = network.update(member, inputs, side_info, label, rate, config=config.member)
    members = jax.tree.map(lambda leaf, new: leaf.at[learner].set(new), state.members, member)
    outer = jnp.outer(z, z)
    slots = jnp.arange(config.capacity)
    adopted = learner == state.fresh
    free = jnp.logical_not(state.in_use)
    # The next fresh slot: the first free one; in a full pool, the member (not the learner) that
    # has learned from the fewest examples, emptied and reset to an untrained GLN.
    smallest = jnp.argmin(jnp.where(slots == learner, jnp.inf, state.counts))
    next_fresh = jnp.where(jnp.any(free), jnp.argmax(free), smallest).astype(jnp.int32)
    joining = adopted & (slots == next_fresh)  # [M], at most one slot
    fresh = jnp.where(adopted, next_fresh, state.fresh)
    in_use = state.in_use | joining
    members = jax.tree.map(
        lambda leaf, start: jnp.where(_along(joining, leaf), start, leaf),
        members,
        _untrained(members, config),
    )
    one_hot = (slots == learner).astype(dtype)
    keep = jnp.logical_not(joining).astype(dtype)
    # The new fresh member enters with the share a member in use gets from fixed share.
    entry = jnp.log(jnp.asarray(config.switch_rate, dtype)) - jnp.log(jnp.sum(in_use).astype(dtype))
    log_weights = jnp.where(joining, entry, log_weights)
    log_weights = jnp.where(
        in_use,
        log_weights - jax.nn.logsumexp(jnp.where(in_use, log_weights, -jnp.inf)),
        UNUSED_LOG_WEIGHT,
    ).astype(dtype)
    new_state = PoolState(
        members=members,
        log_weights=log_weights,
        in_use=in_use,
        fresh=fresh,
        counts=keep * state.counts + one_hot,
        sums=keep[:, None] * state.sums + one_hot[:, None] * z[None],
        moments=keep[:, None, None] * state.moments + one_hot[:, None, None] * outer[None],
        total_count=state.total_count + 1.0,
        total_sum=state.total_sum + z,
        total_moment=state.total_moment + outer,
        projection=state.projection,
    )
    return new_state, prediction


def _along(mask: Array, leaf: Array) -> Array:
    """``mask [M]`` shaped to broadcast against a member leaf ``[M, ...]``."""
    return mask.reshape(mask.shape + (1,) * (leaf.ndim - 1))


def _untrained(members: GLNState, config: PoolConfig) -> GLNState:
    """The members with every weight at its initial value ``min(1 / inputs, weight_clipping)``
    (the gating, fixed, is kept): what :func:`gln_jax.core.network.init` starts a member at."""
    layers = tuple(
        layer._replace(
            weights=jnp.full_like(
                layer.weights, min(1.0 / layer.weights.shape[-1], config.member.weight_clipping)
            )
        )
        for layer in members.layers
    )
    return members._replace(layers=layers, step=jnp.zeros_like(members.step))


def scan_step(
    state: PoolState,
    inputs: Array,
    side_info: Array,
    targets: Array,
    learning_rate,
    *,
    config: PoolConfig,
) -> tuple[PoolState, Array]:
    """:func:`~gln_jax.continual.pool_step` over a stream ``[T, ...]`` with ``lax.scan``;
    returns ``[T, K]`` predictions.

    Args:
        state: the pool.
        inputs: ``[T, P]`` base probabilities.
        side_info: ``[T, N]`` raw examples.
        targets: ``[T]`` int labels.
        learning_rate: scalar rate (traced).
        config: the pool's config.

    Returns:
        ``(new_state, probs)``.
    """

    def body(carry, example):
        x, s, y = example
        return step(carry, x, s, y, learning_rate, config=config)

    return jax.lax.scan(body, state, (inputs, side_info, targets))
