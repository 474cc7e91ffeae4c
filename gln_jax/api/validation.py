"""Host-side checks of what users pass in: every bad input is rejected before any state changes.

All checks work on NumPy arrays (anything ``np.asarray`` accepts, JAX arrays included) and raise
``TypeError`` or ``ValueError`` naming the argument and what was expected. Learning rates and
schedules are checked in :mod:`gln_jax.api.schedules`, host memory in :mod:`gln_jax.api.memory`.

This module imports no JAX (the NumPy, PyTorch and TensorFlow engines use it).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from gln_jax.core.types import GLNConfig, largest_finite

#: Floating dtypes NumPy only knows through ``ml_dtypes`` (what JAX and TF hand out for
#: bfloat16): converted to float32, which holds every value of theirs exactly.
NARROW_FLOATS = ("bfloat16", "float16")


def _torch_numpy(value, name: str) -> np.ndarray:
    """A torch tensor's values as NumPy (from any device; bfloat16 and other float types that
    NumPy lacks are widened to float32, exactly)."""
    if getattr(value, "is_meta", False):
        raise ValueError(
            f"{name} is a torch tensor on the 'meta' device, which holds no values; "
            "materialise it (e.g. .to('cpu') after filling it) first"
        )
    value = value.detach().cpu()
    try:
        return value.numpy()
    except TypeError as err:
        if value.is_floating_point():
            return value.float().numpy()
        raise TypeError(
            f"{name} has torch dtype {value.dtype}, which is not a number type"
        ) from err


def as_numpy(value, name: str) -> np.ndarray:
    """Converts array-likes (NumPy, JAX, torch, TF, lists) to a NumPy array.

    Raises:
        ValueError: a torch tensor on the ``meta`` device (it holds no values).
        TypeError: anything NumPy cannot read as an array.
    """
    if hasattr(value, "detach") and hasattr(value, "cpu"):  # torch tensors, on any device
        value = _torch_numpy(value, name)
    elif hasattr(value, "numpy") and not isinstance(value, np.ndarray):  # tf tensors
        value = value.numpy()
    try:
        array = np.asarray(value)
    except Exception as err:  # noqa: BLE001 - anything numpy cannot read is a type error
        raise TypeError(f"{name} must be an array of numbers, got {type(value).__name__}") from err
    dtype = array.dtype
    # (two-byte dtypes only: reading a dtype's name costs microseconds in per-call loops)
    if dtype.itemsize == 2 and dtype.name in NARROW_FLOATS:
        array = array.astype(np.float32)
    return array


def check_examples(
    value, *, width: int, dtype, name: str = "input", max_abs: float | None = None
) -> tuple[np.ndarray, bool]:
    """Checks a batch (or one example) of inputs.

    Args:
        value: ``[B, width]`` or ``[width]`` numbers, all finite.
        width: expected last dimension.
        dtype: dtype to convert to.
        name: argument name used in error messages.
        max_abs: the largest magnitude an entry may have (see :func:`side_info_limit`), or
            ``None`` for no bound.

    Returns:
        ``(array [B, width] of dtype, was_single)``.
    """
    array = as_numpy(value, name)
    kind = array.dtype.kind  # bool, signed, unsigned, float, complex are numbers
    if kind not in "biufc":
        raise TypeError(f"{name} must hold numbers, got dtype {array.dtype}")
    if kind == "c":
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
    if array.dtype != dtype:  # (np.errstate costs microseconds: only around a conversion)
        with np.errstate(over="ignore"):
            array = np.asarray(array, dtype=dtype)
    # one pass: the largest magnitude is NaN or inf exactly when an entry is
    largest = float(np.abs(array).max()) if array.size else 0.0
    if not math.isfinite(largest):
        raise ValueError(f"{name} contains NaN or inf (in {np.dtype(dtype).name})")
    if max_abs is not None and largest > max_abs:
        raise ValueError(
            f"{name} has an entry of magnitude {largest:.4g}; above {max_abs:.4g} this "
            f"model's gating projections (side information times hyperplanes) could "
            f"overflow {np.dtype(dtype).name}"
        )
    return array, single


def side_info_limit(config: GLNConfig, hyperplanes, hyperplane_bias) -> float:
    """The largest side-information magnitude whose gating projections stay finite.

    A projection ``h . z - b`` and each of its partial sums is at most
    ``max|z| * ||h||_1 + |b|`` in magnitude; the limit keeps that below half the largest
    finite value of ``config.dtype`` (a margin for rounding in any summation order).

    Args:
        config: the model's config.
        hyperplanes: per layer ``[C, K, H, N]`` hyperplane normals (NumPy).
        hyperplane_bias: per layer ``[C, K, H]`` hyperplane offsets.

    Returns:
        The bound on ``max|z|`` (``inf`` for a model without gating).
    """
    l1, bias = 0.0, 0.0
    for h, b in zip(hyperplanes, hyperplane_bias, strict=True):
        h = np.asarray(h, np.float64)
        if h.size:
            l1 = max(l1, float(np.abs(h).sum(-1).max()))
            bias = max(bias, float(np.abs(np.asarray(b, np.float64)).max()))
    if l1 == 0.0:
        return math.inf
    return max(0.0, largest_finite(config.dtype) / 2 - bias) / l1


def check_targets(value, *, batch: int, num_classes: int, name: str = "target") -> np.ndarray:
    """Checks labels: ``[batch]`` integral values in ``[0, num_classes)`` (bools only for a
    binary model); returns int32."""
    array = as_numpy(value, name)
    if array.ndim == 0:
        array = array[None]
    if array.ndim != 1:
        raise ValueError(f"{name} must have shape [{batch}], got shape {array.shape}")
    if array.shape[0] != batch:
        raise ValueError(f"{name} has {array.shape[0]} labels but the input has {batch} examples")
    if array.dtype == bool:
        if num_classes != 2:
            raise TypeError(
                f"{name} holds bools, which are for binary models; this model has "
                f"{num_classes} classes: pass integer labels in [0, {num_classes})"
            )
        return array.astype(np.int32)
    kind = array.dtype.kind
    if kind not in "iuf":
        raise TypeError(f"{name} must hold integer class labels, got dtype {array.dtype}")
    if kind == "f" and (not np.isfinite(array).all() or not np.array_equal(array, np.round(array))):
        raise ValueError(f"{name} must hold integral class labels, got {array[:8]!r}")
    if array.size == 1:  # one label (a per-call online step): no reductions
        low = high = array.item()
    elif array.size:
        low, high = array.min(), array.max()
    if array.size and (low < 0 or high >= num_classes):
        raise ValueError(
            f"{name} labels must be in [0, {num_classes}), got values from {low} to {high}"
        )
    return array.astype(np.int32)


def check_seed(seed) -> None:
    """An int that ``jax.random.key`` accepts: in ``[-2**63, 2**63)``."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"seed must be an int, got {seed!r}")
    if not -(2**63) <= int(seed) < 2**63:
        raise ValueError(f"seed must be in [-2**63, 2**63), got {seed}")


def check_base_predictor(base_predictor: Callable | None, input_size: int) -> int | None:
    """Probes a base predictor on one zero example; returns its output width ``K``."""
    if base_predictor is None:
        return None
    if not callable(base_predictor):
        raise TypeError(
            f"base_predictor must be a callable [B, N] -> [B, P], got {base_predictor!r}"
        )
    probe = as_numpy(base_predictor(np.zeros((1, input_size), np.float32)), "base_predictor output")
    _check_numeric(probe, "base_predictor")
    if probe.ndim != 2 or probe.shape[0] != 1 or probe.shape[1] < 1:
        raise ValueError(
            "base_predictor must map [B, N] inputs to [B, P] base predictions, returned shape "
            f"{probe.shape} for an input of shape (1, {input_size})"
        )
    return int(probe.shape[1])


def _check_numeric(array: np.ndarray, name: str) -> None:
    if array.dtype == object or not (np.issubdtype(array.dtype, np.number) or array.dtype == bool):
        raise TypeError(
            f"{name} must return real numbers (probabilities), returned dtype {array.dtype}"
        )
    if np.issubdtype(array.dtype, np.complexfloating):
        raise TypeError(f"{name} must return real numbers, returned dtype {array.dtype}")


def base_predictions(
    base_predictor: Callable | None, inputs: np.ndarray, config: GLNConfig
) -> np.ndarray:
    """Runs the host-side base predictor (or passes inputs through) and checks its output."""
    if base_predictor is None:
        return inputs
    out = as_numpy(base_predictor(inputs), "base_predictor output")
    _check_numeric(out, "base_predictor")
    expected = (inputs.shape[0], config.base_prediction_size)
    if out.shape != expected:
        raise ValueError(f"base_predictor must return shape {expected}, returned {out.shape}")
    out = np.asarray(out, dtype=config.dtype)
    if not np.isfinite(out).all():
        raise ValueError("base_predictor returned NaN or inf")
    return out


def check_input_size(input_size) -> int:
    """The width of an example, a positive int (the facades' ``input_size``)."""
    if isinstance(input_size, bool) or not isinstance(input_size, (int, np.integer)):
        raise TypeError(f"input_size must be a positive int, got {input_size!r}")
    if input_size < 1:
        raise ValueError(f"input_size must be positive, got {input_size}")
    return int(input_size)


def check_side_info_size(side_info_size, input_size) -> int:
    """Width of the side information: ``side_info_size``, or ``input_size`` if ``None``."""
    input_size = check_input_size(input_size)
    if side_info_size is None:
        return input_size
    if isinstance(side_info_size, bool) or not isinstance(side_info_size, (int, np.integer)):
        raise TypeError(f"side_info_size must be None or a positive int, got {side_info_size!r}")
    if side_info_size < 1:
        raise ValueError(f"side_info_size must be positive, got {side_info_size}")
    return int(side_info_size)


def check_side_info_transform(transform):
    """``None``, ``"center"``, ``"standardize"`` or a ``TransformConfig`` -> a checked config."""
    # Imported here, not at the top: ``gln_jax.core._transforms`` imports JAX, and this module
    # (with ``gln_jax.api.engine``, which the NumPy, PyTorch and TensorFlow engines import)
    # stays free of JAX. There is no cycle: core never imports api.
    from gln_jax.core import _transforms as transforms  # noqa: PLC0415

    if transform is None:
        return None
    if isinstance(transform, str):
        return transforms.make_transform(transform)
    if isinstance(transform, transforms.TransformConfig):
        return transforms.make_transform(**transform._asdict())
    raise TypeError(
        "side_info_transform must be None, 'center', 'standardize' or a TransformConfig "
        f"(gln_jax.core._transforms.make_transform), got {transform!r}"
    )
