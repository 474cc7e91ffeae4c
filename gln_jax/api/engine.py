"""The contract between the facade and a backend: the :class:`Engine` protocol.

An engine holds no state of its own; it turns the reference state into its framework's arrays
and runs that framework's compiled (or vectorised) functions on it. Inputs arrive as checked
NumPy arrays (the facade validates them first); outputs are NumPy. A training call returns a
new state and never leaves a half-updated one behind when it raises.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import numpy as np

from gln_jax.core.types import GLNConfig, GLNState

NativeState = Any  # the engine's own state: a GLNState of its arrays, a module, ...


@runtime_checkable
class Engine(Protocol):
    """What a backend provides to :class:`gln_jax.api.facade.GLNBase`.

    Shapes: ``B`` batch, ``T`` stream length, ``P`` base predictions, ``N`` side information,
    ``C`` one-vs-all models (see :mod:`gln_jax.core.types`).
    """

    name: str
    config: GLNConfig

    def from_reference(self, state: GLNState) -> NativeState:
        """Converts a NumPy-leaved reference state to the engine's own state."""

    def to_reference(self, state: NativeState) -> GLNState:
        """A NumPy copy of the engine's state in the reference layout."""

    def step(self, state: NativeState) -> int:
        """Number of examples learned from."""

    def predict(self, state: NativeState, inputs: np.ndarray, side_info: np.ndarray) -> np.ndarray:
        """Probabilities ``[B, C]`` of ``inputs [B, P]`` gated on ``side_info [B, N]``."""

    def train(
        self,
        state: NativeState,
        inputs: np.ndarray,
        side_info: np.ndarray,
        targets: np.ndarray,
        rates: np.ndarray,
    ) -> tuple[NativeState, np.ndarray]:
        """One batch update (exact online for ``B = 1``); returns ``(state, probs [B, C])``."""

    def fit(
        self,
        state: NativeState,
        inputs: np.ndarray,
        side_info: np.ndarray,
        targets: np.ndarray,
        rates: np.ndarray,
        batch_size: int,
        num_epochs: int = 1,
    ) -> tuple[NativeState, np.ndarray]:
        """Trains on a stream ``[T, ...]`` in order, ``num_epochs`` passes with ``rates
        [num_epochs * T]``; returns ``(state, probs [num_epochs * T, C])``.

        All passes form one transaction: a call that raises (or is interrupted) leaves the
        given state as it was.
        """
