"""Backends of the :class:`gln_jax.GLN` facade: one engine per framework, one interface.

An engine holds no state of its own; it turns the reference state into its framework's
arrays and runs that framework's compiled (or vectorised) functions on it:

- ``from_reference(state)`` / ``to_reference(state)``: convert a NumPy-leaved
  :class:`~gln_jax.GLNState` to and from the engine's own state;
- ``step(state) -> int``;
- ``predict(state, inputs, side_info) -> probs [B, C]``;
- ``train(state, inputs, side_info, targets, rates) -> (state, probs [B, C])``;
- ``fit(state, inputs, side_info, targets, rates, batch_size) -> (state, probs [T, C])``.

Inputs arrive as checked NumPy arrays; outputs are NumPy.
"""

from __future__ import annotations

import functools
import importlib

import jax
import jax.numpy as jnp
import numpy as np

from gln_jax._types import GLNConfig, GLNState
from gln_jax.context import batch_context_indices
from gln_jax.network import batch_apply, batch_update_from_contexts, update_from_contexts
from gln_jax.stream import fit_stream


@functools.partial(jax.jit, static_argnames=("config",))
def predict_batch(state: GLNState, inputs, side_info, *, config: GLNConfig) -> jax.Array:
    """Probabilities ``[B, C]`` of a batch (inputs ``[B, K]``, side_info ``[B, N]``)."""
    return batch_apply(state, inputs, side_info, config=config)


@functools.partial(jax.jit, static_argnames=("config",), donate_argnums=(0,))
def train_batch(state: GLNState, inputs, side_info, targets, rates, *, config: GLNConfig):
    """One batch update (the exact online step for a batch of one); donates ``state``."""
    contexts = batch_context_indices(state.layers, side_info, config=config)
    if inputs.shape[0] == 1:  # static: the cheaper single-example path, same maths
        first = tuple(c[0] for c in contexts)
        state, p = update_from_contexts(
            state, inputs[0], first, targets[0], rates[0], config=config
        )
        return state, p[None]
    return batch_update_from_contexts(state, inputs, contexts, targets, rates, config=config)


class JaxEngine:
    """The reference implementation, jitted once per config and input shape."""

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
        return np.asarray(predict_batch(state, inputs, side_info, config=self.config))

    def train(self, state, inputs, side_info, targets, rates):
        state, p = train_batch(state, inputs, side_info, targets, rates, config=self.config)
        return state, np.asarray(p)

    def fit(self, state, inputs, side_info, targets, rates, batch_size):
        return fit_stream(
            state, inputs, side_info, targets, rates, config=self.config, batch_size=batch_size
        )


#: backend name -> (module holding its engine, engine class, pip extra); aliases map to names.
_ENGINES = {
    "jax": ("gln_jax.backends", "JaxEngine", None),
    "numpy": ("gln_numpy.engine", "NumpyEngine", None),
    "pytorch": ("gln_torch.engine", "TorchEngine", "torch"),
    "tf": ("gln_tf.engine", "TFEngine", "tf"),
}
_ALIASES = {"torch": "pytorch", "tensorflow": "tf"}


def backend_names() -> list[str]:
    """The valid ``backend`` arguments, aliases included."""
    return sorted([*_ENGINES, *_ALIASES])


def make_engine(backend: str, config: GLNConfig):
    """Builds the engine of ``backend`` for ``config``.

    Raises:
        ValueError: an unknown backend (the message lists the valid names).
        ImportError: the backend's framework is not installed (the message names the extra).
    """
    if not isinstance(backend, str):
        raise TypeError(f"backend must be a string, one of {backend_names()}, got {backend!r}")
    name = _ALIASES.get(backend.lower(), backend.lower())
    if name not in _ENGINES:
        raise ValueError(f"unknown backend {backend!r}; valid backends: {backend_names()}")
    module_name, class_name, extra = _ENGINES[name]
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise ImportError(
            f"backend {backend!r} needs a framework that is not installed ({err.name}); "
            f"install it with: pip install 'gln-jax[{extra}]'"
        ) from err
    return getattr(module, class_name)(config)
