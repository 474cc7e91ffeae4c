"""Online side-information transforms: a running per-feature mean (and scale), by Welford.

The gates of a GLN compare side information against fixed random hyperplanes, so where the
side information sits matters: raw images in [0, 1] all lie in one orthant, and centring them
on their mean makes the hyperplanes split the data (see the README's recipe). These transforms
keep learning online and honest: the statistics are estimated from the stream itself, one
example at a time, never from data the model has not seen.

Convention (``update`` then ``apply``): the side information of example ``t`` is transformed
with the statistics of examples ``0..t`` (itself included, nothing later). Before any example
the mean is 0 and the scale 1. With ``freeze_after=k`` the statistics stop changing after the
first ``k`` examples. A prediction without learning applies the current statistics and
changes nothing.

Closed form (per feature; Welford's update of the count ``n``, mean ``m`` and sum of squared
deviations ``M2``)::

    n <- min(n + 1, 2**31 - 1);  d = x - m;  m <- m + d / n;  M2 <- M2 + d * (x - m)
    z = scale * (x - m)                                   (center)
    z = scale * (x - m) / (sqrt(M2 / n) + eps)            (standardize; population std)

With no example seen yet (``n = 0``) ``z = scale * x``.

Range: Welford's ``M2`` is at most ``n * max|x|**2`` and one step's ``d * (x - m)`` at most
``4 * max|x|**2``, so the host drivers (:func:`transform_stream`, :func:`apply_batch`) take
features up to :func:`feature_limit` (``sqrt(largest finite) / 2**17``: about ``1.4e14`` in
float32 and ``1.0e149`` in float64), where no statistic of up to ``2**31`` examples can
overflow, and raise a ``ValueError`` naming the features' range beyond it (a check only: the
arithmetic of every accepted input is unchanged).

With ``base_gain`` set, the transform also gives the network its base predictions, a sharpened
version of the same deviation: ``p = sigmoid(base_gain * z / scale)`` (for ``center``,
``sigmoid(base_gain * (x - m))``: a pixel at its running mean predicts 1/2, logit 0, and adds
nothing to a neuron's mixture; see :func:`base_predictions`).

Shapes: ``N`` side-information width, ``T`` stream.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from gln_jax.core import numerics
from gln_jax.core.types import CHUNK_SIZE, Array, StaticConfig, register_static_config

#: Transform kinds: ``"center"`` (subtract the running mean) or ``"standardize"`` (also divide by
#: the running standard deviation plus ``eps``).
KINDS = ("center", "standardize")
DEFAULT_STD_EPS = 0.1


@register_static_config
@dataclasses.dataclass(frozen=True)
class TransformConfig(StaticConfig):
    """Static, hashable settings of a side-information transform (a frozen dataclass; see
    :class:`~gln_jax.core.types.StaticConfig`).

    Attributes:
        kind: ``"center"`` or ``"standardize"``.
        scale: the transformed side information is multiplied by this.
        freeze_after: stop updating the statistics after this many examples (``None``: never).
        eps: added to the standard deviation before dividing (``"standardize"`` only).
        base_gain: ``None`` (the base predictions are the examples), or the gain of the
            sigmoid that turns the transformed side information into base predictions.
    """

    kind: str = "center"
    scale: float = 1.0
    freeze_after: int | None = None
    eps: float = DEFAULT_STD_EPS
    base_gain: float | None = None


class TransformState(NamedTuple):
    """Running statistics of the side information seen so far.

    Attributes:
        count: scalar int32, examples in the statistics; it stops at ``2**31 - 1``
            (:data:`~gln_jax.core.numerics.STEP_MAX`) instead of wrapping. By then one
            example moves float32 statistics by less than their rounding (``1 / n`` is below
            float32's ``2**-24`` resolution from ``n = 2**24`` on), so the count stopping
            changes nothing in float32. In float64 the mean goes on learning with weight
            ``1 / (2**31 - 1)`` per example while ``M2`` goes on adding, so after ``k`` more
            examples a standardising transform's scale reads ``sqrt(1 + k / 2**31)`` times
            too high.
        mean: ``[N]`` running mean.
        m2: ``[N]`` running sum of squared deviations from the mean.
    """

    count: Array
    mean: Array
    m2: Array


jax.export.register_namedtuple_serialization(
    TransformState, serialized_name="gln_jax.TransformState"
)


def make_transform(
    kind="center", scale=1.0, freeze_after=None, eps=DEFAULT_STD_EPS, base_gain=None
):
    """Validates the settings and builds a :class:`TransformConfig`.

    Args:
        kind: ``"center"`` or ``"standardize"``.
        scale: positive finite float.
        freeze_after: ``None`` or a positive int.
        eps: positive finite float.
        base_gain: ``None`` or a positive finite float (see :func:`base_predictions`).

    Returns:
        The config.

    Raises:
        ValueError, TypeError: naming the bad argument.
    """
    if kind not in KINDS:
        raise ValueError(f"side-information transform kind must be one of {KINDS}, got {kind!r}")
    checked = [("scale", scale), ("eps", eps)]
    if base_gain is not None:
        checked.append(("base_gain", base_gain))
    for name, value in checked:
        if isinstance(value, bool) or not isinstance(value, (int, float, np.floating)):
            raise TypeError(f"transform {name} must be a positive float, got {value!r}")
        if not (np.isfinite(value) and value > 0):
            raise ValueError(f"transform {name} must be positive and finite, got {value}")
    if freeze_after is not None:
        if isinstance(freeze_after, bool) or not isinstance(freeze_after, (int, np.integer)):
            raise TypeError(f"freeze_after must be None or a positive int, got {freeze_after!r}")
        if freeze_after < 1:
            raise ValueError(f"freeze_after must be positive, got {freeze_after}")
        freeze_after = int(freeze_after)
    gain = None if base_gain is None else float(base_gain)
    return TransformConfig(str(kind), float(scale), freeze_after, float(eps), gain)


def feature_limit(dtype) -> float:
    """The largest feature magnitude the online statistics take without overflow.

    ``sqrt(largest finite) / 2**17``: about ``1.4e14`` in float32 and ``1.0e149`` in float64.
    At this magnitude no statistic of up to ``2**31`` examples can overflow.

    Args:
        dtype: the statistics' dtype (``float32`` or ``float64``).

    Returns:
        The limit as a Python float.
    """
    return float(np.sqrt(np.finfo(np.dtype(dtype)).max)) * 2.0**-17


def check_features(xs: np.ndarray, name: str = "side information") -> None:
    """Raises a ``ValueError`` when ``xs`` holds a value beyond :func:`feature_limit`.

    Args:
        xs: NumPy features in the statistics' dtype.
        name: what ``xs`` is, for the message.
    """
    if not xs.size:
        return
    limit = feature_limit(xs.dtype)
    low, high = float(np.min(xs)), float(np.max(xs))
    if not (-limit <= low and high <= limit):  # also catches nan and inf
        raise ValueError(
            f"{name} ranges from {low:g} to {high:g}; the online {xs.dtype} statistics take "
            f"magnitudes up to {limit:.3g} (beyond it their running sums of squares could "
            "overflow): rescale the features first"
        )


def init(size: int, dtype="float32") -> TransformState:
    """Statistics of an empty stream: count 0, mean 0, ``M2`` 0 (``[size]`` each)."""
    zeros = jnp.zeros((size,), dtype)
    return TransformState(jnp.zeros((), jnp.int32), zeros, zeros)


def update(state: TransformState, x: Array, *, config: TransformConfig) -> TransformState:
    """Adds one example ``x [N]`` to the statistics (Welford); frozen statistics stay put."""
    x = jnp.asarray(x, state.mean.dtype)
    count = numerics.advance_step(state.count, 1)
    delta = x - state.mean
    mean = state.mean + delta / count.astype(x.dtype)
    m2 = state.m2 + delta * (x - mean)
    new = TransformState(count, mean, m2)
    if config.freeze_after is None:
        return new
    frozen = state.count >= config.freeze_after
    return jax.tree.map(lambda old, fresh: jnp.where(frozen, old, fresh), state, new)


def apply(state: TransformState, x: Array, *, config: TransformConfig) -> jax.Array:
    """Transforms side information ``x [..., N]`` with the current statistics."""
    x = jnp.asarray(x, state.mean.dtype)
    lead = (1,) * (x.ndim - 1)  # explicit broadcasting over any leading batch axes
    z = x - state.mean.reshape(*lead, -1)
    if config.kind == "standardize":
        n = jnp.maximum(state.count, 1).astype(x.dtype)
        divisor = jnp.where(state.count > 0, jnp.sqrt(state.m2 / n) + config.eps, 1)
        z = z / divisor.reshape(*lead, -1)
    return z * config.scale


def base_predictions(z: Array, *, config: TransformConfig) -> jax.Array:
    """Base predictions from transformed side information: ``sigmoid(base_gain * z / scale)``.

    Args:
        z: ``[..., N]`` side information as :func:`apply` returns it.
        config: a config whose ``base_gain`` is set.

    Returns:
        ``[..., N]`` probabilities (the network clips them into
        ``[pred_clipping, 1 - pred_clipping]``).

    Example:
        >>> config = make_transform("center", scale=30.0, base_gain=8.0)
        >>> base_predictions(jnp.array([0.0, 3.0]), config=config)  # x - m = 0 and 0.1
        Array([0.5      , 0.6899745], dtype=float32)
    """
    if config.base_gain is None:
        raise ValueError("this transform gives no base predictions (base_gain is None)")
    z = jnp.asarray(z)
    return numerics.sigmoid(z * (config.base_gain / config.scale))


def update_apply(state: TransformState, x: Array, *, config: TransformConfig):
    """One online step: ``update`` with ``x [N]``, then ``apply`` to it; returns ``(state, z)``."""
    state = update(state, x, config=config)
    return state, apply(state, x, config=config)


def scan(state: TransformState, xs: Array, *, config: TransformConfig, mask: Array | None = None):
    """Online transform of a stream ``xs [T, N]`` (``lax.scan`` of :func:`update_apply`).

    Args:
        state: the statistics before the stream.
        xs: ``[T, N]`` side information in stream order.
        config: the transform's config.
        mask: optional ``[T]`` bools; a masked-out row (padding) leaves the statistics alone.

    Returns:
        ``(state, zs [T, N])``.
    """
    if mask is None:
        mask = jnp.ones(xs.shape[0], bool)

    def body(carry, row):
        x, keep = row
        new, z = update_apply(carry, x, config=config)
        new = jax.tree.map(lambda old, fresh: jnp.where(keep, fresh, old), carry, new)
        return new, z

    return jax.lax.scan(body, state, (jnp.asarray(xs, state.mean.dtype), mask))


_scan_jit = jax.jit(scan, static_argnames=("config",))


def transform_stream(state: TransformState, xs, *, config: TransformConfig, chunk=CHUNK_SIZE):
    """Host-side driver of :func:`scan`: fixed-size padded chunks, NumPy out.

    Composes with :func:`gln_jax.fit_stream`: transform the stream's side information first,
    then fit on it; example ``t`` is transformed with the statistics of examples ``0..t``, which
    is exactly what a per-example transform inside the training loop would use.

    Args:
        state: the statistics before the stream.
        xs: ``[T, N]`` side information (NumPy or JAX).
        config: the transform's config.
        chunk: most examples per compiled scan.

    Returns:
        ``(state, zs)`` with ``zs`` a NumPy ``[T, N]`` array.

    Raises:
        ValueError: a feature beyond :func:`feature_limit`.
    """
    xs = np.asarray(xs, np.dtype(state.mean.dtype))
    check_features(xs)
    total = xs.shape[0]
    length = min(chunk, 1 << max(0, total - 1).bit_length())
    outputs = []
    for start in range(0, total, length):
        part = xs[start : start + length]
        real = part.shape[0]
        mask = np.arange(length) < real
        if real < length:
            part = np.pad(part, [(0, length - real), (0, 0)])
        state, zs = _scan_jit(state, part, config=config, mask=mask)
        outputs.append(np.asarray(zs)[:real])
    if not outputs:
        return state, np.zeros_like(xs)
    return state, np.concatenate(outputs)


@functools.partial(jax.jit, static_argnames=("config",))
def _batch_apply(state, xs, *, config):
    return apply(state, xs, config=config)


def apply_batch(state: TransformState, xs, *, config: TransformConfig) -> np.ndarray:
    """``apply`` to a batch ``[B, N]`` with the current statistics (nothing learned); NumPy out.

    Raises:
        ValueError: a feature beyond :func:`feature_limit`.
    """
    xs = np.asarray(xs, np.dtype(state.mean.dtype))
    check_features(xs)
    return np.asarray(_batch_apply(state, xs, config=config))
