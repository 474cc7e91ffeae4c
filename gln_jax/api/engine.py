"""The contract between the facade and a backend: the :class:`Engine` protocol.

An engine holds no state of its own; it turns the reference state into its framework's arrays
and runs that framework's compiled (or vectorised) functions on it. Inputs arrive as checked
NumPy arrays (the facade validates them first); outputs are NumPy. A training call returns a
new state and never leaves a half-updated one behind when it raises.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import numpy as np

from gln_jax.api.validation import as_numpy
from gln_jax.core.types import GLNConfig, GLNState

NativeState = Any  # the engine's own state: a GLNState of its arrays, a module, ...


def gating_input(inputs, side_info):
    """The side information the gating sees: ``side_info``, or ``inputs`` when it is ``None``
    (the facades pass ``None`` when the examples are both)."""
    return inputs if side_info is None else side_info


@runtime_checkable
class Engine(Protocol):
    """What a backend provides to the facades (through :class:`gln_jax.api.runner.EngineRunner`).

    Shapes: ``B`` batch, ``T`` stream length, ``P`` base predictions, ``N`` side information,
    ``C`` one-vs-all models (see :mod:`gln_jax.core.types`). A ``side_info`` of ``None`` means
    the inputs are the side information (:func:`gating_input`).
    """

    name: str
    config: GLNConfig

    def from_reference(self, state: GLNState) -> NativeState:
        """Converts a NumPy-leaved reference state to the engine's own state."""

    def to_reference(self, state: NativeState) -> GLNState:
        """A NumPy copy of the engine's state in the reference layout."""

    def step(self, state: NativeState) -> int:
        """Number of examples learned from."""

    def predict(
        self, state: NativeState, inputs: np.ndarray, side_info: np.ndarray | None
    ) -> np.ndarray:
        """Probabilities ``[B, C]`` of ``inputs [B, P]`` gated on ``side_info [B, N]`` (``None``:
        the inputs are the side information)."""

    def train(
        self,
        state: NativeState,
        inputs: np.ndarray,
        side_info: np.ndarray | None,
        targets: np.ndarray,
        rates: np.ndarray,
    ) -> tuple[NativeState, np.ndarray]:
        """One batch update (exact online for ``B = 1``); returns ``(state, probs [B, C])``."""

    def fit(
        self,
        state: NativeState,
        inputs: np.ndarray,
        side_info: np.ndarray | None,
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


def fit_epochs(
    fit_stream,
    state,
    inputs,
    side_info,
    targets,
    rates,
    *,
    config,
    batch_size,
    num_epochs,
    **options,
):
    """``num_epochs`` passes of a functional ``fit_stream`` that never writes into its state.

    The engines whose state is functional (JAX, NumPy, the Gaussian family) share this loop: a
    pass that raises leaves the caller's ``state`` as it was, so ``fit`` stays all-or-nothing.

    Args:
        fit_stream: ``(state, inputs, side_info, targets, rates, *, config, batch_size) ->
            (state, probs [T, ...])``.
        state: the engine's state.
        inputs: ``[T, P]`` base predictions.
        side_info: ``[T, N]`` side information, or ``None`` (the inputs).
        targets: ``[T]`` (or ``[T, C]``) targets.
        rates: ``[num_epochs * T]`` learning rates.
        config: the model's config.
        batch_size: examples per update.
        num_epochs: passes over the stream.
        **options: further keywords of ``fit_stream`` (the JAX engine's ``route``).

    Returns:
        ``(state, probs [num_epochs * T, ...])`` with the probs as NumPy.
    """
    total, outputs = inputs.shape[0], []
    side_info = gating_input(inputs, side_info)
    for epoch in range(num_epochs):
        state, probs = fit_stream(
            state,
            inputs,
            side_info,
            targets,
            rates[epoch * total : (epoch + 1) * total],
            config=config,
            batch_size=batch_size,
            **options,
        )
        outputs.append(as_numpy(probs, "probs"))  # torch/TF tensors on any device too
    return state, np.concatenate(outputs)


class FunctionalFit:
    """Mixin of the engines whose stream driver never writes into the state it is given (the
    JAX and NumPy engines, every Gaussian engine): ``fit`` runs the passes through
    :func:`fit_epochs`. An engine sets ``fit_stream = staticmethod(its driver)``."""

    fit_stream = None
    config = None
    #: The ``route`` values ``fit`` takes (see :func:`gln_jax.fit_stream`); an engine whose
    #: driver has one way to train takes ``"auto"`` only.
    routes: tuple[str, ...] = ("auto",)

    def fit(self, state, inputs, side_info, targets, rates, batch_size, num_epochs=1, route="auto"):
        """Trains on a stream in order (``num_epochs`` passes, ``rates [num_epochs * T]``);
        returns ``(state, probs [num_epochs * T, ...])``."""
        options = {"route": route} if len(self.routes) > 1 else {}
        return fit_epochs(
            self.fit_stream,
            state,
            inputs,
            side_info,
            targets,
            rates,
            config=self.config,
            batch_size=batch_size,
            num_epochs=num_epochs,
            **options,
        )
