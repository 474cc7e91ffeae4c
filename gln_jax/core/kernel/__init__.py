"""The fused CPU kernel of exact online learning (and of batch updates), through ``jax.ffi``.

One foreign call runs a whole chunk of a stream: for every step and one-vs-all class, the
gather-dot of each neuron's active row, the layer-by-layer forward pass with the reference's
clipping, and the closed-form update of the active rows (``online_step.cc``, a transliteration
of :func:`gln_jax.core.bernoulli.update`). The classes are split over the process's cores.
The context indices come first from the kernel's own gating call (:mod:`.gates`: sparse over
the examples' zeros, independent of the batch).
The same call serves batch updates (``batch_size`` > 1: a batch's examples predicted with
the weights from before it, their deltas added, the touched rows clipped, as
:func:`gln_jax.core.bernoulli.batch_update`), an ensemble's members flattened into the class
axis (:func:`kernel_ensemble_update`) and, without learning, batched inference
(:func:`kernel_batch_apply`).

The C++ source ships with the package and is compiled on first use with the system compiler
(``$CXX``, else ``c++``/``g++``) into a per-user cache (:func:`build.cache_dir`); nothing
happens at import time. Without a compiler, when the build fails, or with ``GLN_JAX_KERNEL=0``
in the environment, :func:`use_kernel` says no and the pure-JAX path runs (one debug-level
log record on ``gln_jax.kernel`` says why).

Example:
    >>> from gln_jax.core import kernel
    >>> kernel.available()  # doctest: +SKIP
    True
"""

from __future__ import annotations

import jax
import numpy as np

from gln_jax.core.kernel.online import TARGET as TARGET
from gln_jax.core.kernel.online import enabled, load
from gln_jax.core.kernel.online import kernel_batch_apply as kernel_batch_apply
from gln_jax.core.kernel.online import kernel_ensemble_update as kernel_ensemble_update
from gln_jax.core.kernel.online import kernel_scan_update as kernel_scan_update
from gln_jax.core.kernel.online import threads as threads
from gln_jax.core.types import GLNConfig, GLNState

__all__ = [
    "available",
    "kernel_batch_apply",
    "kernel_ensemble_update",
    "kernel_scan_update",
    "threads",
    "use_kernel",
]


def available() -> bool:
    """Whether the fused kernel can run in this process (built, loaded, not switched off).

    The first call builds the kernel if it is not in the cache yet (seconds, once per
    machine); later calls return at once.

    Returns:
        False with ``GLN_JAX_KERNEL=0``, without a working C++ compiler, or when the build
        failed; True otherwise.
    """
    return enabled() and load()


def _on_one_cpu(state: GLNState | None) -> bool:
    """Whether a computation on ``state`` runs on one CPU device (never across a mesh)."""
    if state is None or not jax.tree.leaves(state):
        return jax.default_backend() == "cpu"
    for leaf in jax.tree.leaves(state):
        if isinstance(leaf, jax.core.Tracer):
            return False
        if isinstance(leaf, jax.Array):
            devices = leaf.devices()
            if len(devices) != 1 or next(iter(devices)).platform != "cpu":
                return False
        elif not isinstance(leaf, (np.ndarray, np.generic)) or jax.default_backend() != "cpu":
            return False
    return True


def use_kernel(config: GLNConfig, state: GLNState | None = None, batch_size: int = 1) -> bool:
    """The switch rule: whether learning a stream of ``state`` runs in the fused kernel.

    Yes for a Bernoulli network (:class:`GLNConfig`, every layout and dtype) at any batch size
    (1: exact online learning; above, batch updates) on a state that lives on one CPU device
    (or in NumPy with a CPU default backend) when :func:`available`. Never on a sharded state
    or on another platform; ``jax.grad`` users call the pure functions of
    :mod:`gln_jax.core.stream` and never reach it. An unsharded ensemble
    (:func:`gln_jax.core.ensemble.fit_ensemble`) asks the same rule with its stacked state and
    runs all members in one call.

    Args:
        config: the network's config.
        state: the state to be trained (its devices are checked), or None.
        batch_size: examples per update.

    Returns:
        True when :func:`gln_jax.fit_stream` should run its chunks in the kernel.
    """
    if not isinstance(config, GLNConfig) or batch_size < 1 or not enabled():
        return False
    return _on_one_cpu(state) and load()
