"""The ``"pytorch"`` backend of the Gaussian family (``GaussianGLN("pytorch", ...)``).

Its state is a :class:`~gln_jax.GLNState` of tensors (CUDA when available, else the CPU);
every training call learns on clones and returns a new state, so a failing call leaves the old
one intact.
"""

from __future__ import annotations

import numpy as np

from gln_jax.api.engine import FunctionalFit, gating_input
from gln_torch import gaussian_network
from gln_torch.types import GLNState, from_reference, to_reference, torch_dtype


class GaussianTorchEngine(FunctionalFit):
    """The PyTorch port of the Gaussian family behind the facade."""

    fit_stream = staticmethod(gaussian_network.fit_stream)

    name = "pytorch"

    def __init__(self, config):
        self.config = config

    def from_reference(self, state: GLNState) -> GLNState:
        return from_reference(state, dtype=torch_dtype(self.config))

    def to_reference(self, state: GLNState) -> GLNState:
        return to_reference(state)

    def step(self, state: GLNState) -> int:
        return int(state.step)

    def predict(self, state: GLNState, inputs, side_info) -> np.ndarray:
        side_info = gating_input(inputs, side_info)
        out = gaussian_network.batch_apply(state, inputs, side_info, config=self.config)
        return out.cpu().numpy()

    def train(self, state: GLNState, inputs, side_info, targets, rates):
        side_info = gating_input(inputs, side_info)
        state, out = gaussian_network.batch_update(
            state, inputs, side_info, targets, rates, config=self.config
        )
        return state, out.cpu().numpy()
