"""Host-side checks of what users pass in: every bad input is rejected before any state changes.

All checks work on NumPy arrays (anything ``np.asarray`` accepts, JAX arrays included) and raise
``TypeError`` or ``ValueError`` naming the argument and what was expected.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable

import numpy as np

from gln_jax.core.types import GLNConfig


def as_numpy(value, name: str) -> np.ndarray:
    """Converts array-likes (NumPy, JAX, torch, TF, lists) to a NumPy array."""
    if hasattr(value, "detach") and hasattr(value, "cpu"):  # torch tensors, on any device
        value = value.detach().cpu().numpy()
    elif hasattr(value, "numpy") and not isinstance(value, np.ndarray):  # tf tensors
        value = value.numpy()
    try:
        array = np.asarray(value)
    except Exception as err:  # noqa: BLE001 - anything numpy cannot read is a type error
        raise TypeError(f"{name} must be an array of numbers, got {type(value).__name__}") from err
    return array


def check_examples(value, *, width: int, dtype, name: str = "input") -> tuple[np.ndarray, bool]:
    """Checks a batch (or one example) of inputs.

    Args:
        value: ``[B, width]`` or ``[width]`` numbers, all finite.
        width: expected last dimension.
        dtype: dtype to convert to.
        name: argument name used in error messages.

    Returns:
        ``(array [B, width] of dtype, was_single)``.
    """
    array = as_numpy(value, name)
    if array.dtype == object or not (np.issubdtype(array.dtype, np.number) or array.dtype == bool):
        raise TypeError(f"{name} must hold numbers, got dtype {array.dtype}")
    if np.issubdtype(array.dtype, np.complexfloating):
        raise TypeError(f"{name} must hold real numbers, got dtype {array.dtype}")
    single = array.ndim == 1
    if single:
        array = array[None]
    if array.ndim != 2:
        raise ValueError(
            f"{name} must have shape [batch, {width}] or [{width}], got shape {array.shape}"
        )
    if array.shape[1] != width:
        raise ValueError(f"{name} must have {width} features per example, got {array.shape[1]}")
    array = np.asarray(array, dtype=dtype)
    if not np.isfinite(array).all():
        raise ValueError(f"{name} contains NaN or inf")
    return array, single


def check_targets(value, *, batch: int, num_classes: int, name: str = "target") -> np.ndarray:
    """Checks labels: ``[batch]`` integral values in ``[0, num_classes)``; returns int32."""
    array = as_numpy(value, name)
    if array.ndim == 0:
        array = array[None]
    if array.ndim != 1:
        raise ValueError(f"{name} must have shape [{batch}], got shape {array.shape}")
    if array.shape[0] != batch:
        raise ValueError(f"{name} has {array.shape[0]} labels but the input has {batch} examples")
    if array.dtype == bool:
        return array.astype(np.int32)
    if not np.issubdtype(array.dtype, np.number) or np.issubdtype(array.dtype, np.complexfloating):
        raise TypeError(f"{name} must hold integer class labels, got dtype {array.dtype}")
    if not np.isfinite(array).all() or not np.array_equal(array, np.round(array)):
        raise ValueError(f"{name} must hold integral class labels, got {array[:8]!r}")
    if array.size and (array.min() < 0 or array.max() >= num_classes):
        raise ValueError(
            f"{name} labels must be in [0, {num_classes}), got values from {array.min()} "
            f"to {array.max()}"
        )
    return array.astype(np.int32)


def check_seed(seed) -> None:
    """An int that ``jax.random.key`` accepts: in ``[-2**63, 2**63)``."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"seed must be an int, got {seed!r}")
    if not -(2**63) <= int(seed) < 2**63:
        raise ValueError(f"seed must be in [-2**63, 2**63), got {seed}")


def check_learning_rate(learning_rate) -> None:
    """A positive finite float or a callable schedule from step to rate."""
    if callable(learning_rate):
        return
    if isinstance(learning_rate, bool) or not isinstance(learning_rate, numbers.Real):
        raise TypeError(
            "learning_rate must be a positive float or a schedule (callable step -> rate), "
            f"got {learning_rate!r}"
        )
    if not (np.isfinite(learning_rate) and learning_rate > 0):
        raise ValueError(f"learning_rate must be positive and finite, got {learning_rate}")


def learning_rates(learning_rate, step: int, count: int, dtype) -> np.ndarray:
    """Rates of the examples ``step, ..., step + count - 1`` (a schedule evaluated on the host).

    A schedule is called once with the vector of steps when it accepts one (optax schedules do),
    else once per step. Rates must be finite and non-negative.
    """
    if not callable(learning_rate):
        return np.full(count, learning_rate, dtype)
    steps = np.arange(step, step + count)
    rates = None
    if count > 1:
        try:
            rates = np.asarray(learning_rate(steps), dtype=dtype)
        except Exception:  # noqa: BLE001 - scalar-only schedules are evaluated one by one
            rates = None
        if rates is not None and rates.shape != (count,):
            rates = None
    if rates is None:
        rates = np.array([np.asarray(learning_rate(int(s))) for s in steps], dtype=dtype)
        rates = rates.reshape(count)
    if not (np.isfinite(rates).all() and (rates >= 0).all()):
        raise ValueError(
            f"learning_rate schedule must return finite non-negative rates, got {rates[:8]!r} "
            f"for steps from {step}"
        )
    return rates


def check_base_predictor(base_predictor: Callable | None, input_size: int) -> int | None:
    """Probes a base predictor on one zero example; returns its output width ``K``."""
    if base_predictor is None:
        return None
    if not callable(base_predictor):
        raise TypeError(
            f"base_predictor must be a callable [B, N] -> [B, P], got {base_predictor!r}"
        )
    probe = np.asarray(base_predictor(np.zeros((1, input_size), np.float32)))
    if probe.ndim != 2 or probe.shape[0] != 1 or probe.shape[1] < 1:
        raise ValueError(
            "base_predictor must map [B, N] inputs to [B, P] base predictions, returned shape "
            f"{probe.shape} for an input of shape (1, {input_size})"
        )
    return int(probe.shape[1])


def base_predictions(
    base_predictor: Callable | None, inputs: np.ndarray, config: GLNConfig
) -> np.ndarray:
    """Runs the host-side base predictor (or passes inputs through) and checks its output."""
    if base_predictor is None:
        return inputs
    out = as_numpy(base_predictor(inputs), "base_predictor output")
    expected = (inputs.shape[0], config.base_prediction_size)
    if out.shape != expected:
        raise ValueError(f"base_predictor must return shape {expected}, returned {out.shape}")
    out = np.asarray(out, dtype=config.dtype)
    if not np.isfinite(out).all():
        raise ValueError("base_predictor returned NaN or inf")
    return out


def check_side_info_size(side_info_size, input_size) -> int:
    """Width of the gates' side information: ``side_info_size``, or ``input_size`` if ``None``."""
    if side_info_size is None:
        return input_size
    if isinstance(side_info_size, bool) or not isinstance(side_info_size, (int, np.integer)):
        raise TypeError(f"side_info_size must be None or a positive int, got {side_info_size!r}")
    if side_info_size < 1:
        raise ValueError(f"side_info_size must be positive, got {side_info_size}")
    return int(side_info_size)


def check_side_info_transform(transform):
    """``None``, ``"center"``, ``"standardize"`` or a ``TransformConfig`` -> a checked config."""
    from gln_jax.core import transforms

    if transform is None:
        return None
    if isinstance(transform, str):
        return transforms.make_transform(transform)
    if isinstance(transform, transforms.TransformConfig):
        return transforms.make_transform(*transform)
    raise TypeError(
        "side_info_transform must be None, 'center', 'standardize' or a TransformConfig "
        f"(gln_jax.core.transforms.make_transform), got {transform!r}"
    )
