"""Learning-rate schedules: a callable from an example's step to its rate, evaluated once.

A schedule (for example an optax schedule, or ``lambda step: 1e-2 / (1 + step / 1000)``) is
accepted wherever rates are. The host drivers evaluate it with NumPy steps
(:func:`host_rates`, as the facades do); the traced functions (``update``,
``batch_update``, the ``lax.scan`` drivers) evaluate it under ``jit`` at the state's step
(:func:`traced_rates`), so a schedule used there must be traceable (``jnp`` operations on
its argument, no ``float(step)``). Both give the facade's rates: the schedule of the number of
examples learned before each one.

A step is the count of examples learned before an example, so the first example of a model
has step 0; the paper's example count ``t`` (1 for the first example) is ``step + 1``.
:func:`inverse_time` is the paper's schedule, ``min(scale / t, max_rate)``.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from gln_jax.core.checks import check_rates

#: The constants of the schedule of Veness et al. (Gated Linear Networks, AAAI 2021) on MNIST:
#: ``min(100 / t, 0.01)``, constant for the first 10,000 examples, then ``100 / t``.
PAPER_RATE_SCALE = 100.0
PAPER_MAX_RATE = 0.01


@dataclasses.dataclass(frozen=True)
class InverseTime:
    """The schedule ``min(scale / t, max_rate)`` with ``t = step + 1``; see :func:`inverse_time`.

    Frozen and hashable, and registered as a static pytree (no leaves): it can be passed
    through ``jax.jit`` as an ordinary argument, and equal schedules share one compilation.

    Attributes:
        scale: the numerator, positive.
        max_rate: the largest rate, positive; the rate equals it until ``t = scale /
            max_rate``.
    """

    scale: float
    max_rate: float

    def __post_init__(self) -> None:
        for name in ("scale", "max_rate"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, numbers.Real):
                raise TypeError(
                    f"inverse_time: {name} must be a positive real number, got {value!r}"
                )
            try:
                number = float(value)
            except OverflowError:
                number = math.inf
            if not (math.isfinite(number) and number > 0):
                raise ValueError(f"inverse_time: {name} must be positive and finite, got {value}")
            object.__setattr__(self, name, number)

    def __call__(self, step):
        """Rates of the steps ``step`` (any shape): NumPy float64 for host values (ints, NumPy
        arrays), a JAX array in JAX's default float dtype for JAX arrays and tracers."""
        if isinstance(step, jax.Array):
            t = jnp.asarray(step).astype(jnp.result_type(float)) + 1
            return jnp.minimum(self.scale / t, self.max_rate)
        t = np.asarray(step, np.float64) + 1.0
        return np.minimum(self.scale / t, self.max_rate)


jax.tree_util.register_static(InverseTime)


def inverse_time(scale: float = PAPER_RATE_SCALE, max_rate: float = PAPER_MAX_RATE) -> InverseTime:
    """The schedule ``min(scale / t, max_rate)`` of the example count ``t = step + 1``.

    With the defaults it is the paper's MNIST schedule ``min(100 / t, 0.01)`` (Veness et al.,
    Gated Linear Networks): 0.01 for the first 10,000 examples, then ``100 / t``. ``t`` counts
    the examples learned from, the current one included: the facades evaluate a schedule at
    ``step``, the number of examples learned before, so the first example has ``t = 1``. It
    keeps counting across ``fit`` calls, epochs and a checkpoint's save and load (the
    checkpoint stores no schedule: pass it again to ``load``).

    Args:
        scale: positive finite float, the numerator.
        max_rate: positive finite float, the largest rate.

    Returns:
        An :class:`InverseTime`, accepted wherever a learning rate is (facades, ``update``,
        ``batch_update``, the ``lax.scan`` drivers; the ports' facades evaluate it on the
        host).

    Raises:
        TypeError, ValueError: an argument that is not a positive finite real number.

    Example:
        >>> inverse_time()(np.array([0, 9999, 19999])).tolist()
        [0.01, 0.01, 0.005]
    """
    return InverseTime(scale, max_rate)


#: Floating dtypes NumPy knows only through ``ml_dtypes`` (JAX's and TF's bfloat16), accepted
#: as a schedule's rate.
NARROW_FLOATS = ("bfloat16", "float16")


def schedule_value(learning_rate, step: int):
    """One value of a schedule on the host, checked to be one real number."""
    value = learning_rate(step)
    array = np.asarray(value)
    if array.dtype == object or not (
        np.issubdtype(array.dtype, np.number) or array.dtype.name in NARROW_FLOATS
    ):
        raise TypeError(
            f"learning_rate schedule must return a real number per step, returned {value!r} "
            f"({type(value).__name__}) for step {step}"
        )
    if array.size != 1:
        raise ValueError(
            f"learning_rate schedule must return one rate per step, returned shape "
            f"{array.shape} for step {step}"
        )
    if np.issubdtype(array.dtype, np.complexfloating):
        raise TypeError(f"learning_rate schedule returned a complex rate {value!r} at step {step}")
    return array.reshape(())


def host_rates(learning_rate, step: int, count: int, dtype) -> np.ndarray:
    """A schedule's rates of the examples ``step, ..., step + count - 1``, on the host.

    The schedule is called once with the vector of steps when it accepts one (optax
    schedules do), else once per step.

    Args:
        learning_rate: callable from step to rate.
        step: the first example's step.
        count: how many examples.
        dtype: the rates' dtype.

    Returns:
        ``[count]`` rates.

    Raises:
        TypeError, ValueError: a schedule that does not return one finite non-negative real
            rate per step.
    """
    steps = np.arange(step, step + count)
    rates = None
    if count > 1:
        try:
            with np.errstate(over="ignore"):
                rates = np.asarray(learning_rate(steps), dtype=dtype)
        except Exception:  # noqa: BLE001 - scalar-only schedules are evaluated one by one
            rates = None
        if rates is not None and rates.shape != (count,):
            rates = None
    if rates is None:
        values = [schedule_value(learning_rate, int(s)) for s in steps]
        with np.errstate(over="ignore"):
            rates = np.array(values, dtype=dtype).reshape(count)
    if not (np.isfinite(rates).all() and (rates >= 0).all()):
        raise ValueError(
            f"learning_rate schedule must return finite non-negative rates, got {rates[:8]!r} "
            f"for steps from {step}"
        )
    return rates


def traced_rates(
    learning_rate: Any, steps, dtype, *, function: str, name: str, letters: str
) -> Any:
    """Rates for the examples at ``steps``: a schedule evaluated there, or given rates.

    Args:
        learning_rate: a schedule (callable of the step), a scalar rate (broadcast) or rates of
            ``steps``' shape.
        steps: int32 array of the examples' steps (traced under ``jit``).
        dtype: the rates' dtype (the config's).
        function: the public function's name, for errors.
        name: the argument's name, for errors.
        letters: the rates' shape in letters, for errors.

    Returns:
        Rates of ``steps``' shape in ``dtype``.

    Raises:
        TypeError, ValueError: rates of another shape, or a schedule that does not return one
            real rate per step (raised while tracing).
    """
    shape = tuple(np.shape(steps))
    if callable(learning_rate):
        rates = jnp.asarray(learning_rate(steps))
        if rates.shape != shape:
            raise ValueError(
                f"{function}: the schedule given as {name} must return one rate per step: "
                f"called with steps of shape {shape}, it returned shape {rates.shape}"
            )
        if not jnp.issubdtype(rates.dtype, jnp.floating) and not jnp.issubdtype(
            rates.dtype, jnp.integer
        ):
            raise TypeError(
                f"{function}: the schedule given as {name} must return real rates, returned "
                f"dtype {rates.dtype}"
            )
        return rates.astype(dtype)
    if len(shape) > 1:  # [S, B] rates of scan_batch_update: a scalar or the full shape
        if np.shape(learning_rate) not in ((), shape):
            raise ValueError(
                f"{function}: {name} must be a scalar, a schedule or have shape {letters} = "
                f"{shape}, got shape {np.shape(learning_rate)}"
            )
    else:
        check_rates(
            learning_rate,
            shape[0] if shape else None,
            function=function,
            name=name,
            letters=letters,
        )
    return jnp.broadcast_to(jnp.asarray(learning_rate, dtype), shape)
