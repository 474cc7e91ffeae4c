"""Logit, sigmoid and clipping in NumPy: the only home of eps and clip arithmetic in the port.

Every function keeps the float dtype of its array argument (Python float bounds are weak under
NumPy's promotion rules, so float32 stays float32). Clipping is ``minimum(maximum(.))``: the
same values as ``np.clip`` for two ufunc calls, without ``np.clip``'s Python-level overhead
(it runs several times per example in the online loop).
"""

from __future__ import annotations

import numpy as np
from scipy.special import expit


def clip_probability(p: np.ndarray, eps: float, out: np.ndarray | None = None) -> np.ndarray:
    """Clips probabilities into ``[eps, 1 - eps]``.

    Args:
        p: probabilities, any shape.
        eps: ``pred_clipping``, in (0, 0.5).
        out: optional array to write into (may be ``p`` itself).

    Returns:
        ``p`` clipped, same shape and dtype.
    """
    return np.minimum(np.maximum(p, eps, out=out), 1.0 - eps, out=out)


def logit(p: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """``log(p) - log1p(-p)`` of clipped probabilities, any shape.

    Args:
        p: clipped probabilities.
        out: optional array of ``p``'s shape to write into.

    Returns:
        The logits (``out`` when given).
    """
    return np.subtract(np.log(p), np.log1p(-p), out=out)


def sigmoid(x: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """Numerically stable ``1 / (1 + exp(-x))``, any shape (no overflow warnings)."""
    return expit(x, out=out)


def clip_weights(
    w: np.ndarray, weight_clipping: float, out: np.ndarray | None = None
) -> np.ndarray:
    """Clips weights into ``[-weight_clipping, weight_clipping]``, any shape."""
    return np.minimum(np.maximum(w, -weight_clipping, out=out), weight_clipping, out=out)


def matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``np.matmul(a, b)`` without OpenBLAS's spurious "invalid value" flag.

    Some OpenBLAS kernels leave the processor's FE_INVALID flag set after multiplying finite
    operands (numpy/numpy#24067, OpenMathLib/OpenBLAS#1924), and NumPy turns the flag into a
    ``RuntimeWarning`` (an error under ``-W error``) on some CPUs and not others. Every operand
    reaching this port's products is finite (inputs are validated, weights and logits are
    clipped), so an invalid result cannot arise here and the flag is ignored for the product
    alone; overflow and division warnings stay as they are.

    Args:
        a: ``[..., n, k]`` or ``[..., k]``.
        b: ``[..., k, p]`` or ``[k]``.

    Returns:
        ``a @ b``, NumPy's broadcasting and dtype rules.
    """
    with np.errstate(invalid="ignore"):
        return np.matmul(a, b)


#: The largest count an int32 step counter holds (the reference's ``STEP_MAX``).
STEP_MAX = 2**31 - 1


def advance_step(step, count) -> np.ndarray:
    """``step + count`` as an int32 scalar array, saturating at :data:`STEP_MAX` (the
    reference's ``numerics.advance_step``)."""
    return np.asarray(min(int(step) + int(count), STEP_MAX), np.int32)
