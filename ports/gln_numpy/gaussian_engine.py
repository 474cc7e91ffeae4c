"""The ``"numpy"`` backend of the Gaussian family (``GaussianGLN("numpy", ...)``).

Its state is a :class:`~gln_jax.GLNState` of NumPy arrays; every training call learns on a
copy of the weights and returns a new state, so a failing call leaves the old one intact.
"""

from __future__ import annotations

import numpy as np

from gln_jax.api.engine import gating_input
from gln_numpy import gaussian_network
from gln_numpy.engine import NumpyEngine
from gln_numpy.types import GLNState


class GaussianNumpyEngine(NumpyEngine):
    """The NumPy port of the Gaussian family behind the facade; state conversion is
    :class:`~gln_numpy.engine.NumpyEngine`'s.

    Args:
        config: the model's :class:`~gln_jax.core.gaussian_types.GaussianConfig`.
    """

    fit_stream = staticmethod(gaussian_network.fit_stream)

    def predict(self, state: GLNState, inputs, side_info) -> np.ndarray:
        side_info = gating_input(inputs, side_info)
        return gaussian_network.batch_apply(state, inputs, side_info, config=self.config)

    def train(self, state: GLNState, inputs, side_info, targets, rates):
        side_info = gating_input(inputs, side_info)
        return gaussian_network.batch_update(
            state, inputs, side_info, targets, rates, config=self.config
        )
