"""The ``"jax"`` backend: the reference implementation behind the facade, jitted once per shape."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from gln_jax.api.engine import FunctionalFit
from gln_jax.core.gating import batch_context_indices
from gln_jax.core.network import batch_apply, batch_update_from_contexts, update_from_contexts
from gln_jax.core.stream import fit_stream
from gln_jax.core.types import GLNConfig, GLNState


@functools.partial(jax.jit, static_argnames=("config",))
def predict_batch(state: GLNState, inputs, side_info, *, config: GLNConfig) -> jax.Array:
    """Probabilities ``[B, C]`` of a batch (inputs ``[B, P]``, side_info ``[B, N]``, or
    ``None`` when the gates look at the inputs themselves)."""
    side_info = inputs if side_info is None else side_info
    return batch_apply(state, inputs, side_info, config=config)


@functools.partial(jax.jit, static_argnames=("config",), donate_argnums=(0,))
def train_batch(state: GLNState, inputs, side_info, targets, rates, *, config: GLNConfig):
    """One batch update (the exact online step for a batch of one); donates ``state``.

    ``side_info`` is ``None`` when the gates look at the inputs themselves (one transfer of
    the example instead of two).
    """
    side_info = inputs if side_info is None else side_info
    contexts = batch_context_indices(state.layers, side_info, config=config)
    if inputs.shape[0] == 1:  # static: the cheaper single-example path, same maths
        first = tuple(c[0] for c in contexts)
        state, p = update_from_contexts(
            state, inputs[0], first, targets[0], rates[0], config=config
        )
        return state, p[None]
    return batch_update_from_contexts(state, inputs, contexts, targets, rates, config=config)


class JaxEngine(FunctionalFit):
    """The reference implementation, jitted once per config and input shape."""

    fit_stream = staticmethod(fit_stream)

    name = "jax"

    def __init__(self, config: GLNConfig):
        if config.dtype == "float64" and not jax.config.jax_enable_x64:
            raise ValueError(
                "dtype='float64' needs 64-bit JAX: call "
                "jax.config.update('jax_enable_x64', True) first (or use another backend)"
            )
        self.config = config

    def from_reference(self, state: GLNState) -> GLNState:
        return jax.tree.map(jnp.asarray, state)

    def to_reference(self, state: GLNState) -> GLNState:
        return jax.tree.map(np.asarray, state)

    def step(self, state) -> int:
        return int(state.step)

    def predict(self, state, inputs, side_info):
        gates = None if side_info is inputs else side_info
        return np.asarray(predict_batch(state, inputs, gates, config=self.config))

    def train(self, state, inputs, side_info, targets, rates):
        gates = None if side_info is inputs else side_info
        state, p = train_batch(state, inputs, gates, targets, rates, config=self.config)
        return state, np.asarray(p)
