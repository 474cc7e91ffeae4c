"""The ``"tf"`` backend of the Gaussian family (``GaussianGLN("tf", ...)``).

Its state is a :class:`~gln_jax.GLNState` of TF tensors; the functions are pure, so a failing
call leaves the old state intact.
"""

from __future__ import annotations

import numpy as np

from gln_jax.api.engine import FunctionalFit, gating_input
from gln_tf import gaussian_network
from gln_tf.types import GLNState, from_reference, to_reference


class GaussianTFEngine(FunctionalFit):
    """The TensorFlow port of the Gaussian family behind the facade."""

    fit_stream = staticmethod(gaussian_network.fit_stream)

    name = "tf"

    def __init__(self, config):
        self.config = config

    def from_reference(self, state: GLNState) -> GLNState:
        return from_reference(state, dtype=self.config.dtype)

    def to_reference(self, state: GLNState) -> GLNState:
        return to_reference(state)

    def step(self, state: GLNState) -> int:
        return int(state.step)

    def predict(self, state: GLNState, inputs, side_info) -> np.ndarray:
        side_info = gating_input(inputs, side_info)
        return gaussian_network.batch_apply(state, inputs, side_info, config=self.config).numpy()

    def train(self, state: GLNState, inputs, side_info, targets, rates):
        side_info = gating_input(inputs, side_info)
        state, out = gaussian_network.batch_update(
            state, inputs, side_info, targets, rates, config=self.config
        )
        return state, out.numpy()
