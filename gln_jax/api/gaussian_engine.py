"""The ``"jax"`` backend of the Gaussian family: the reference, jitted once per shape.

Follows :class:`gln_jax.api.engine.Engine`; its outputs are ``[B, C, 2]`` (mean and variance
of every output) where the Bernoulli engines return probabilities ``[B, C]``.
"""

from __future__ import annotations

import functools

import jax
import numpy as np

from gln_jax.api.engine import gating_input
from gln_jax.api.jax_engine import JaxEngine
from gln_jax.core import gaussian_network
from gln_jax.core.gating import batch_context_indices
from gln_jax.core.gaussian_types import GaussianConfig
from gln_jax.core.types import GLNState


@functools.partial(jax.jit, static_argnames=("config",))
def predict_batch(state: GLNState, inputs, side_info, *, config: GaussianConfig) -> jax.Array:
    """``[B, C, 2]`` predictions of a batch (inputs ``[B, P]``, side_info ``[B, N]``)."""
    return gaussian_network.batch_apply(state, inputs, side_info, config=config)


@functools.partial(jax.jit, static_argnames=("config",), donate_argnums=(0,))
def train_batch(state: GLNState, inputs, side_info, targets, rates, *, config: GaussianConfig):
    """One batch update (the exact online step for a batch of one); donates ``state``."""
    contexts = batch_context_indices(state.layers, side_info, config=config)
    if inputs.shape[0] == 1:  # static: the cheaper single-example path, same maths
        first = tuple(c[0] for c in contexts)
        state, out = gaussian_network.update_from_contexts(
            state, inputs[0], first, targets[0], rates[0], config=config
        )
        return state, out[None]
    return gaussian_network.batch_update_from_contexts(
        state, inputs, contexts, targets, rates, config=config
    )


class GaussianJaxEngine(JaxEngine):
    """The reference Gaussian GLN behind ``GaussianGLN("jax", ...)``; state conversion and the
    64-bit check are :class:`~gln_jax.api.jax_engine.JaxEngine`'s."""

    fit_stream = staticmethod(gaussian_network.fit_stream)
    routes = ("auto",)  # the Gaussian family trains in XLA only

    def predict(self, state, inputs, side_info):
        side_info = gating_input(inputs, side_info)
        return np.asarray(predict_batch(state, inputs, side_info, config=self.config))

    def train(self, state, inputs, side_info, targets, rates):
        side_info = gating_input(inputs, side_info)
        state, out = train_batch(state, inputs, side_info, targets, rates, config=self.config)
        return state, np.asarray(out)
