"""Learning rates: checks of a constant rate or a schedule, and a schedule's rates per example.

A rate is a positive finite real number or a callable schedule from the example's step to its
rate; a schedule is evaluated on the host, once per example (see :func:`learning_rates`). The
step of an example is the number learned before it (0 for the first); :func:`inverse_time`
(from :mod:`gln_jax.core.schedules`) is the paper's ``min(100 / t, 0.01)`` with ``t = step +
1``. With
a config, a rate is also checked against the model's dtype: one update with it must stay finite
(:func:`check_update_size`).

Example:
    >>> check_learning_rate(0.01)
    0.01
    >>> learning_rates(lambda step: 0.1 / (1 + step), 0, 3, "float32").tolist()  # doctest: +SKIP
    [0.10000000149011612, 0.05000000074505806, 0.03333333507180214]
"""

from __future__ import annotations

import math
import numbers

import numpy as np

from gln_jax.core.schedules import InverseTime as InverseTime
from gln_jax.core.schedules import host_rates
from gln_jax.core.schedules import inverse_time as inverse_time
from gln_jax.core.types import GLNConfig, largest_finite, max_logit


def check_update_size(rate: float, batch: int, config: GLNConfig, name: str) -> None:
    """Checks that one update with ``rate`` stays finite in ``config.dtype``.

    A weight's update is ``rate * (p - target) * logit`` summed over the examples of a batch
    that share its row, so its magnitude is at most ``batch * rate * max_logit(config)`` (with
    ``|p - target| <= 1``); added to a weight of magnitude up to ``weight_clipping`` it must stay
    finite, or the update writes inf and then NaN. The bound is the Bernoulli family's; other
    families (Gaussian) only need the rate itself to be finite in the dtype.
    """
    if config.family != "bernoulli":
        return
    worst = batch * rate * max_logit(config) + config.weight_clipping
    if not worst < largest_finite(config.dtype):
        per = f"{batch} examples x " if batch > 1 else ""
        raise ValueError(
            f"{name}={rate:.4g} is too large for {config.dtype}: one update of up to "
            f"{per}rate x max|logit| {max_logit(config):.4g} (+ weight_clipping) reaches "
            f"{worst:.4g}, beyond the largest {config.dtype} ({largest_finite(config.dtype):.4g})"
        )


def check_learning_rate(learning_rate, config: GLNConfig | None = None):
    """A positive finite real rate or a callable schedule from step to rate.

    Args:
        learning_rate: a real number (``float``, ``int``, ``Fraction``, NumPy scalar) or a
            schedule.
        config: when given, the rate must also be positive and finite in ``config.dtype`` and
            one update with it must stay finite (:func:`check_update_size`).

    Returns:
        The schedule as given, or the rate as a Python ``float``.

    Raises:
        TypeError: not a real number nor a callable.
        ValueError: not positive and finite (in the model's dtype).
    """
    if callable(learning_rate):
        return learning_rate
    if isinstance(learning_rate, bool) or not isinstance(learning_rate, numbers.Real):
        raise TypeError(
            "learning_rate must be a positive real number or a schedule (callable step -> "
            f"rate), got {learning_rate!r}"
        )
    try:
        rate = float(learning_rate)
    except (OverflowError, ValueError) as err:
        raise ValueError(f"learning_rate must be positive and finite, got {learning_rate}") from err
    if not (math.isfinite(rate) and rate > 0):
        raise ValueError(f"learning_rate must be positive and finite, got {learning_rate}")
    if config is not None:
        with np.errstate(over="ignore", under="ignore"):
            typed = float(np.asarray(rate, config.dtype))
        if not (math.isfinite(typed) and typed > 0):
            raise ValueError(
                f"learning_rate={rate} is not a positive finite {config.dtype} (it becomes {typed})"
            )
        check_update_size(rate, 1, config, "learning_rate")
    return rate


def learning_rates(
    learning_rate, step: int, count: int, dtype, *, config: GLNConfig | None = None, batch: int = 1
) -> np.ndarray:
    """Rates of the examples ``step, ..., step + count - 1`` (a schedule evaluated on the host).

    A schedule is called once with the vector of steps when it accepts one (optax schedules do),
    else once per step. Rates must be finite and non-negative; with ``config``, the largest must
    also keep an update of ``batch`` examples finite (:func:`check_update_size`).
    """
    if not callable(learning_rate):
        rates = np.full(count, learning_rate, dtype)
        largest = float(rates[0]) if count else None  # one value: no reduction
    else:
        rates = host_rates(learning_rate, step, count, dtype)
        largest = float(rates.max()) if count else None
    if config is not None and largest is not None:
        check_update_size(largest, batch, config, "learning_rate")
    return rates
