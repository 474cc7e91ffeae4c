"""The ``"numpy"`` backend of the :class:`gln_jax.GLN` facade (see :mod:`gln_jax.api.backends`).

The engine's state is a :class:`~gln_jax.GLNState` of NumPy arrays owned by the engine; every
training call copies the weights, learns on the copy and returns a new state, so a call that
fails leaves the previous state as it was.
"""

from __future__ import annotations

import numpy as np

from gln_jax.api.engine import FunctionalFit, gating_input
from gln_numpy import numerics
from gln_numpy.gating import batch_context_indices
from gln_numpy.multiclass import batch_class_targets
from gln_numpy.network import (
    batch_apply,
    batch_step,
    copy_weights,
    flat_rows,
    flatten,
    input_logits,
    online_step,
    with_weights,
)
from gln_numpy.stream import fit_stream
from gln_numpy.types import GLNConfig, GLNState, from_reference, to_reference


def predict_batch(state: GLNState, inputs, side_info, *, config: GLNConfig) -> np.ndarray:
    """Probabilities ``[B, C]`` of a batch (inputs ``[B, P]``, side_info ``[B, N]``).

    Example:
        >>> probs = predict_batch(state, x_batch, x_batch, config=config)  # doctest: +SKIP
    """
    return batch_apply(state, inputs, side_info, config=config)


def train_batch(state: GLNState, inputs, side_info, targets, rates, *, config: GLNConfig):
    """One batch update (the exact online step for a batch of one) on a copy of the weights.

    Args:
        state: the engine's state (not modified; its gating arrays are shared with the result).
        inputs: ``[B, P]`` base probabilities.
        side_info: ``[B, N]`` raw examples.
        targets: ``[B]`` int labels.
        rates: ``[B]`` learning rates.
        config: the network's config.

    Returns:
        ``(state, p [B, C])``.
    """
    dtype = np.dtype(config.dtype)
    contexts = batch_context_indices(state.layers, side_info, config=config)
    weights = copy_weights(state, config)
    flat = flatten(weights)
    x0 = input_logits(inputs, config)
    rows = flat_rows(contexts, config)
    target_rows = batch_class_targets(targets, config).astype(dtype)
    rates = np.asarray(rates, dtype).reshape(-1)
    if x0.shape[0] == 1:  # the cheaper single-example path, same maths
        p = online_step(flat, x0[0], tuple(r[0] for r in rows), target_rows[0], rates[0], config)
        p = p[None]
    else:
        p = batch_step(flat, x0, rows, target_rows, rates, config)
    step = numerics.advance_step(state.step, x0.shape[0])
    return with_weights(state, weights, step, copy_gating=False), p


class NumpyEngine(FunctionalFit):
    """The NumPy port behind ``gln_jax.GLN(backend="numpy")``.

    Args:
        config: the model's config.
    """

    fit_stream = staticmethod(fit_stream)

    name = "numpy"

    def __init__(self, config: GLNConfig):
        self.config = config

    def from_reference(self, state: GLNState) -> GLNState:
        """A NumPy copy of a reference state, in ``config.dtype``."""
        return from_reference(state, dtype=self.config.dtype)

    def to_reference(self, state: GLNState) -> GLNState:
        """A NumPy copy of the engine's state in the reference layout."""
        return to_reference(state)

    def step(self, state: GLNState) -> int:
        """Number of examples learned from."""
        return int(state.step)

    def predict(self, state: GLNState, inputs, side_info) -> np.ndarray:
        """Probabilities ``[B, C]`` of ``inputs [B, P]`` with gates on ``side_info [B, N]``."""
        side_info = gating_input(inputs, side_info)
        return predict_batch(state, inputs, side_info, config=self.config)

    def train(self, state: GLNState, inputs, side_info, targets, rates):
        """One batch update; returns ``(state, probs [B, C])``."""
        side_info = gating_input(inputs, side_info)
        return train_batch(state, inputs, side_info, targets, rates, config=self.config)
