"""One-vs-all in PyTorch: every state tensor carries a leading class axis, so the maths is
vectorised over classes directly.

A binary model (``num_classes == 2``) has a class axis of size 1 whose target is the label
itself; a model with ``num_classes > 2`` trains one binary GLN per class on ``label == c``.
"""

from __future__ import annotations

import torch

from gln_torch.types import Array, GLNConfig, as_tensor


def class_targets(label: Array, config: GLNConfig) -> torch.Tensor:
    """Binary target of every one-vs-all model for one example.

    Args:
        label: scalar class label (bool, int or a 0-d tensor).
        config: the network's config.

    Returns:
        ``[C]`` int32 on the label's device: ``[label]`` for a binary model,
        ``one_hot(label)`` otherwise.

    Example:
        >>> class_targets(2, make_config([1], 3, num_classes=4))  # doctest: +SKIP
        tensor([0, 0, 1, 0], dtype=torch.int32)
    """
    label = as_tensor(label).to(torch.int32)
    if config.num_classes == 2:
        return label.reshape(1)
    classes = torch.arange(config.num_classes, dtype=torch.int32, device=label.device)
    return (classes == label).to(torch.int32)


def batch_class_targets(labels: Array, config: GLNConfig) -> torch.Tensor:
    """:func:`class_targets` of a batch: ``[B]`` labels -> ``[B, C]`` int32 targets."""
    labels = as_tensor(labels).to(torch.int32).reshape(-1)
    if config.num_classes == 2:
        return labels[:, None]
    classes = torch.arange(config.num_classes, dtype=torch.int32, device=labels.device)
    return (labels[:, None] == classes[None, :]).to(torch.int32)


def predict_classes(probabilities: Array, *, config: GLNConfig) -> torch.Tensor:
    """Class predictions from per-class probabilities.

    Args:
        probabilities: ``[B, C]`` probabilities.
        config: the network's config.

    Returns:
        ``[B]`` bools (``p > 0.5``) for a binary model, else the int64 argmax over classes.

    Example:
        >>> predict_classes(torch.tensor([[0.7], [0.2]]), config=binary_config)
        ... # doctest: +SKIP
        tensor([ True, False])
    """
    probabilities = as_tensor(probabilities)
    if config.num_classes == 2:
        return probabilities[:, 0] > 0.5
    return probabilities.argmax(dim=-1)
