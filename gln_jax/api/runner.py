"""What a facade holds its state in: a :class:`Runner`, and :class:`EngineRunner` for engines.

A facade (:mod:`gln_jax.api.base`) does not own arrays: it owns a runner, which holds the
model's state in one backend and runs that backend's computations on it, committing a new
state only when a training call has succeeded. :class:`EngineRunner` serves every backend
whose state is functional (the JAX reference, the NumPy port, every Gaussian engine) through
an :class:`~gln_jax.api.engine.Engine`; the PyTorch and TensorFlow ports' runners hold their
``nn.Module`` / ``tf.Module`` instead (``gln_torch.facade``, ``gln_tf.facade``).
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import numpy as np

from gln_jax.api.engine import Engine
from gln_jax.core import multiclass
from gln_jax.core.types import GLNConfig, GLNState


@runtime_checkable
class Runner(Protocol):
    """A model's state in one backend, and the calls the facades make on it.

    Shapes: ``B`` batch, ``T`` stream, ``P`` base predictions, ``N`` side information, ``C``
    one-vs-all models (see :mod:`gln_jax.core.types`). ``side_info`` ``None`` means the
    inputs are the side information. Outputs are the backend's arrays.
    """

    backend: str
    state: Any

    @property
    def config(self) -> GLNConfig:
        """The model's config (its ``dtype`` follows the state's)."""

    def step(self) -> int:
        """Examples learned from so far."""

    def reference_state(self) -> GLNState:
        """A NumPy copy of the state in the reference layout."""

    def predict(self, inputs, side_info):
        """Outputs ``[B, C, ...]`` of a batch; changes nothing."""

    def train(self, inputs, side_info, targets, rates):
        """One batch update, committed; returns the outputs made before it."""

    def fit(self, inputs, side_info, targets, rates, batch_size: int, num_epochs: int):
        """``num_epochs`` passes in order, committed all at once; returns ``[epochs * T, ...]``."""

    def classes(self, probs):
        """Predicted classes of probabilities ``[B, C]`` (Bernoulli models)."""

    def normalize(self, probs):
        """Probabilities ``[B, C]`` with each row divided by its sum (Bernoulli models)."""


class EngineRunner:
    """A functional state and the :class:`~gln_jax.api.engine.Engine` that runs it.

    Training never writes into the previous state: the engine computes a new one and the
    runner rebinds :attr:`state` once the call has succeeded.

    Args:
        engine: the backend's engine (it holds the config).
        state: the engine's own state.
    """

    def __init__(self, engine: Engine, state):
        self.engine = engine
        self.state = state

    @property
    def backend(self) -> str:
        return self.engine.name

    @property
    def config(self) -> GLNConfig:
        return self.engine.config

    def step(self) -> int:
        return self.engine.step(self.state)

    def reference_state(self) -> GLNState:
        return self.engine.to_reference(self.state)

    def predict(self, inputs, side_info):
        return self.engine.predict(self.state, inputs, side_info)

    def train(self, inputs, side_info, targets, rates):
        self.state, outputs = self.engine.train(self.state, inputs, side_info, targets, rates)
        return outputs

    @property
    def routes(self) -> tuple[str, ...]:
        """The ``route`` values :meth:`fit` takes (the engine's; ``("auto",)`` by default)."""
        return getattr(self.engine, "routes", ("auto",))

    def fit(
        self,
        inputs,
        side_info,
        targets,
        rates,
        batch_size: int,
        num_epochs: int,
        route: str = "auto",
    ):
        options = {} if route == "auto" else {"route": route}
        self.state, outputs = self.engine.fit(
            self.state, inputs, side_info, targets, rates, batch_size, num_epochs, **options
        )
        return outputs

    def classes(self, probs) -> np.ndarray:
        return np.asarray(multiclass.predict_classes(probs, config=self.config))

    def normalize(self, probs) -> np.ndarray:
        probs = np.asarray(probs)
        return probs / probs.sum(axis=1, keepdims=True)
