"""The ``"jax"`` backend: the reference implementation behind the facade, jitted once per shape."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from gln_jax.api.engine import FunctionalFit
from gln_jax.core import kernel
from gln_jax.core.gating import batch_context_indices
from gln_jax.core.kernel.gates import GateMatrix, gate_matrix
from gln_jax.core.network import batch_apply, batch_update_from_contexts, update_from_contexts
from gln_jax.core.stream import ROUTES, fit_stream
from gln_jax.core.types import GLNConfig, GLNState, LayerState

_gate_matrix = jax.jit(gate_matrix)

#: Batches below this many examples run the kernel on one thread (starting threads costs more).
#: Measured for ``[4, 4, 1]``, 10 classes, on a 2-core Xeon: one and two threads take the same
#: time at 8 examples; two are 6% faster at 16, 11% at 32 and 25% at 128.
KERNEL_THREADS_BATCH_MIN = 16
#: The engine keeps the kernel's gate matrix (a transposed copy of the hyperplanes) between
#: calls up to this size; a larger model's calls each make a transient one.
GATE_CACHE_MAX_BYTES = 256 * 2**20


@functools.partial(jax.jit, static_argnames=("config", "kernel_threads"))
def predict_batch(
    state: GLNState, inputs, side_info, *, config: GLNConfig, kernel_threads: int = 0, gates=None
) -> jax.Array:
    """Probabilities ``[B, C]`` of a batch (inputs ``[B, P]``, side_info ``[B, N]``, or
    ``None`` when the gates look at the inputs themselves); ``kernel_threads > 0`` runs the
    forward pass in the fused CPU kernel on that many threads (the same values), with the
    state's :func:`~gln_jax.core.kernel.gates.gate_matrix` when ``gates`` holds it."""
    side_info = inputs if side_info is None else side_info
    if kernel_threads:
        return kernel.kernel_batch_apply(
            state, inputs, side_info, config=config, threads=kernel_threads, gates=gates
        )
    return batch_apply(state, inputs, side_info, config=config)


@functools.partial(jax.jit, static_argnames=("config", "threads"), donate_argnums=(0,))
def kernel_train(weights, step, gates, inputs, side_info, targets, rates, *, config, threads=1):
    """One batch update in the fused kernel (a batch of one: the exact online step).

    Takes and returns only what the update changes (the weights, donated, and the step count),
    so the caller keeps its hyperplanes and their ``gates`` (the state's
    :func:`~gln_jax.core.kernel.gates.gate_matrix`, made once) from call to call.

    Returns:
        ``(weights, step, p [B, C])``.
    """
    side_info = inputs if side_info is None else side_info
    return kernel.kernel_weights_update(
        weights,
        step,
        gates,
        inputs,
        side_info,
        targets,
        rates,
        config=config,
        threads=threads,
        batch_size=inputs.shape[0],
    )


@functools.partial(jax.jit, static_argnames=("config",), donate_argnums=(0,))
def train_batch(state: GLNState, inputs, side_info, targets, rates, *, config: GLNConfig):
    """One batch update in pure JAX (the exact online step for a batch of one); donates
    ``state``. ``side_info`` is ``None`` when the gates look at the inputs themselves (one
    transfer of the example instead of two). The kernel's update is :func:`kernel_train`.
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
    routes = ROUTES

    name = "jax"

    def __init__(self, config: GLNConfig):
        if config.dtype == "float64" and not jax.config.jax_enable_x64:
            raise ValueError(
                "dtype='float64' needs 64-bit JAX: call "
                "jax.config.update('jax_enable_x64', True) first (or use another backend)"
            )
        self.config = config
        self._kernel: bool | None = None  # whether the fused kernel serves this engine
        # the gate matrix of the last state seen, and that state's gating arrays (compared by
        # identity: JAX arrays never change, and the kernel's training step keeps them)
        self._gates: tuple[tuple, GateMatrix] | None = None

    def _gate_matrix(self, state: GLNState) -> GateMatrix | None:
        """The kernel's gate matrix of ``state``, kept from call to call for the same gates.

        It is a transposed copy of the hyperplanes, so it is kept only for JAX arrays (which
        never change in place) and up to :data:`GATE_CACHE_MAX_BYTES`; otherwise (None) each
        kernel call makes its own, a transient copy.
        """
        if self.config.context_map_size == 0:
            return None
        key = tuple(a for layer in state.layers for a in (layer.hyperplanes, layer.hyperplane_bias))
        kept = self._gates  # one read: engines may be shared between threads
        if kept is not None and all(a is b for a, b in zip(kept[0], key, strict=True)):
            return kept[1]
        self._gates = None  # let the previous copy go before the next is made
        size = sum(int(np.prod(a.shape)) * a.dtype.itemsize for a in key)
        if size > GATE_CACHE_MAX_BYTES or not all(isinstance(a, jax.Array) for a in key):
            return None
        gates = _gate_matrix(state.layers)
        self._gates = (key, gates)
        return gates

    def _kernel_threads(self, batch: int) -> int:
        """Threads for a kernel call on ``batch`` examples, or 0 for the pure-JAX path.

        Decided once per engine (the facade's states live on the default device), with
        :func:`gln_jax.core.kernel.use_kernel`'s rule.
        """
        if self._kernel is None:
            self._kernel = kernel.use_kernel(self.config)
        if not self._kernel:
            return 0
        return kernel.threads(self.config) if batch >= KERNEL_THREADS_BATCH_MIN else 1

    def from_reference(self, state: GLNState) -> GLNState:
        return jax.tree.map(jnp.asarray, state)

    def own(self, state: GLNState) -> GLNState:
        """A copy of a state given from outside (``model.state = ...``): training donates the
        engine's buffers, which must never be the caller's."""
        return jax.tree.map(lambda a: jnp.array(a, copy=True), state)

    def to_reference(self, state: GLNState) -> GLNState:
        return jax.tree.map(np.asarray, state)

    def step(self, state) -> int:
        return int(state.step)

    def predict(self, state, inputs, side_info):
        side = side_info  # None: the gating sees the inputs (one transfer instead of two)
        threads = self._kernel_threads(inputs.shape[0])
        gates = self._gate_matrix(state) if threads else None
        p = predict_batch(
            state, inputs, side, config=self.config, kernel_threads=threads, gates=gates
        )
        return np.asarray(p)

    def train(self, state, inputs, side_info, targets, rates):
        side = side_info  # None: the gating sees the inputs (one transfer instead of two)
        threads = self._kernel_threads(inputs.shape[0])
        if threads:
            gates = self._gate_matrix(state)
            if gates is None and self.config.context_map_size:  # not kept: made for this call
                gates = _gate_matrix(state.layers)
            weights, step, p = kernel_train(
                tuple(layer.weights for layer in state.layers),
                state.step,
                gates,
                inputs,
                side,
                targets,
                rates,
                config=self.config,
                threads=threads,
            )
            layers = tuple(  # built directly: NamedTuple._replace costs microseconds a call
                LayerState(w, layer.hyperplanes, layer.hyperplane_bias)
                for layer, w in zip(state.layers, weights, strict=True)
            )
            return GLNState(layers, step), np.asarray(p)
        state, p = train_batch(state, inputs, side, targets, rates, config=self.config)
        return state, np.asarray(p)
