"""The ``"jax"`` backend: the reference implementation behind the facade, jitted once per shape."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from gln_jax.api.engine import FunctionalFit
from gln_jax.core import kernel
from gln_jax.core.gating import batch_context_indices
from gln_jax.core.network import batch_apply, batch_update_from_contexts, update_from_contexts
from gln_jax.core.stream import fit_stream
from gln_jax.core.types import GLNConfig, GLNState

#: Batches below this many examples run the kernel on one thread (starting threads costs more).
#: Measured for ``[4, 4, 1]``, 10 classes, on a 2-core Xeon: one and two threads take the same
#: time at 8 examples; two are 6% faster at 16, 11% at 32 and 25% at 128.
KERNEL_THREADS_BATCH_MIN = 16


@functools.partial(jax.jit, static_argnames=("config", "kernel_threads"))
def predict_batch(
    state: GLNState, inputs, side_info, *, config: GLNConfig, kernel_threads: int = 0
) -> jax.Array:
    """Probabilities ``[B, C]`` of a batch (inputs ``[B, P]``, side_info ``[B, N]``, or
    ``None`` when the gates look at the inputs themselves); ``kernel_threads > 0`` runs the
    forward pass in the fused CPU kernel on that many threads (the same values)."""
    side_info = inputs if side_info is None else side_info
    if kernel_threads:
        return kernel.kernel_batch_apply(
            state, inputs, side_info, config=config, threads=kernel_threads
        )
    return batch_apply(state, inputs, side_info, config=config)


@functools.partial(jax.jit, static_argnames=("config", "kernel_threads"), donate_argnums=(0,))
def train_batch(
    state: GLNState, inputs, side_info, targets, rates, *, config: GLNConfig, kernel_threads=0
):
    """One batch update (the exact online step for a batch of one); donates ``state``.

    ``side_info`` is ``None`` when the gates look at the inputs themselves (one transfer of
    the example instead of two). ``kernel_threads > 0`` runs an exact online step of a single
    example in the fused CPU kernel.
    """
    side_info = inputs if side_info is None else side_info
    if kernel_threads and inputs.shape[0] == 1:
        return kernel.kernel_scan_update(
            state, inputs, side_info, targets, rates, config=config, threads=kernel_threads
        )
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
        self._kernel: bool | None = None  # whether the fused kernel serves this engine

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

    def to_reference(self, state: GLNState) -> GLNState:
        return jax.tree.map(np.asarray, state)

    def step(self, state) -> int:
        return int(state.step)

    def predict(self, state, inputs, side_info):
        gates = None if side_info is inputs else side_info
        threads = self._kernel_threads(inputs.shape[0])
        p = predict_batch(state, inputs, gates, config=self.config, kernel_threads=threads)
        return np.asarray(p)

    def train(self, state, inputs, side_info, targets, rates):
        gates = None if side_info is inputs else side_info
        threads = self._kernel_threads(1) if inputs.shape[0] == 1 else 0
        state, p = train_batch(
            state, inputs, gates, targets, rates, config=self.config, kernel_threads=threads
        )
        return state, np.asarray(p)
