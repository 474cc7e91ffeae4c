"""The ``"tf"`` backend of the :class:`gln_jax.GLN` facade (see :mod:`gln_jax.api.backends`).

The engine's state is a :class:`~gln_tf.module.GLNModule` (variables on the default device:
a GPU when TensorFlow sees one). Its compiled methods are traced once per module; training
assigns the variables only after the whole call has been computed.
"""

from __future__ import annotations

import numpy as np

from gln_jax.api.engine import gating_input
from gln_tf.module import GLNModule
from gln_tf.types import GLNConfig, GLNState, to_reference


class TFEngine:
    """The TensorFlow port behind ``gln_jax.GLN(backend="tf")``.

    Args:
        config: the model's config.
    """

    name = "tf"

    def __init__(self, config: GLNConfig):
        self.config = config

    def from_reference(self, state: GLNState) -> GLNModule:
        """A :class:`GLNModule` holding a copy of a reference state."""
        return GLNModule(self.config, state)

    def to_reference(self, module: GLNModule) -> GLNState:
        """A NumPy copy of the module's state in the reference layout."""
        return to_reference(module.state)

    def step(self, module: GLNModule) -> int:
        """Number of examples learned from."""
        return int(module.step.numpy())

    def predict(self, module: GLNModule, inputs, side_info) -> np.ndarray:
        """Probabilities ``[B, C]`` of ``inputs [B, P]`` with gates on ``side_info [B, N]``."""
        side_info = gating_input(inputs, side_info)
        return module.predict_probabilities(inputs, side_info).numpy()

    def train(self, module: GLNModule, inputs, side_info, targets, rates):
        """One batch update; returns ``(module, probs [B, C])``."""
        side_info = gating_input(inputs, side_info)
        return module, module.train(inputs, side_info, targets, rates).numpy()

    def fit(
        self, module: GLNModule, inputs, side_info, targets, rates, batch_size: int, num_epochs=1
    ):
        """Trains on a stream in order (``num_epochs`` passes, committed at the end); returns
        ``(module, probs [num_epochs * T, C])``."""
        side_info = gating_input(inputs, side_info)
        probs = module.fit(inputs, side_info, targets, rates, batch_size, num_epochs)
        return module, probs.numpy()
