"""Logit, sigmoid and clipping in PyTorch: the only home of eps and clip arithmetic in the port.

Every function keeps the dtype and device of its tensor argument (Python float bounds are
converted to the tensor's dtype).
"""

from __future__ import annotations

import torch


def clip_probability(p: torch.Tensor, eps: float) -> torch.Tensor:
    """Clips probabilities into ``[eps, 1 - eps]``.

    Args:
        p: probabilities, any shape.
        eps: ``pred_clipping``, in (0, 0.5).

    Returns:
        ``p`` clipped, same shape and dtype.
    """
    return torch.clamp(p, eps, 1.0 - eps)


def logit(p: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
    """``log(p) - log1p(-p)`` of clipped probabilities, any shape (written into ``out``, a
    tensor or view of ``p``'s shape, when given)."""
    if out is None:
        return torch.log(p) - torch.log1p(-p)
    return torch.log(p, out=out).sub_(torch.log1p(-p))


def sigmoid(x: torch.Tensor) -> torch.Tensor:
    """Numerically stable ``1 / (1 + exp(-x))``, any shape."""
    return torch.sigmoid(x)


def clip_weights(w: torch.Tensor, weight_clipping: float) -> torch.Tensor:
    """Clips weights into ``[-weight_clipping, weight_clipping]``, any shape."""
    return torch.clamp(w, -weight_clipping, weight_clipping)


#: The largest count an int32 step counter holds (the reference's ``STEP_MAX``).
STEP_MAX = 2**31 - 1


def advance_step(step, count) -> torch.Tensor:
    """``step + count`` for an int32 counter (tensor or int), saturating at :data:`STEP_MAX`
    (the reference's ``numerics.advance_step``); summed in int64 on the counter's device."""
    step = torch.as_tensor(step)
    total = step.to(torch.int64) + torch.as_tensor(count, dtype=torch.int64, device=step.device)
    return total.clamp(max=STEP_MAX).to(torch.int32)
