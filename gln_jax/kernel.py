"""The fused CPU kernel: whether it can run here, and when the library uses it.

On CPU, learning a stream (``GLN.fit`` on the ``jax`` backend at any batch size,
:func:`gln_jax.fit_stream`, ensembles) and batched inference run each chunk in one call of a
small C++ kernel through ``jax.ffi``. Its source ships with the package and is compiled on
first use with the system compiler (``$CXX``, else ``c++``/``g++``; seconds, once per machine)
into a private per-user cache. Without a compiler, when the build fails, or when the cache
folder is not private to the user, the pure-JAX path runs instead, with the same semantics,
and the first CPU fit warns once (:class:`KernelFallbackWarning`, naming the reason); with
``GLN_JAX_KERNEL=0`` in the environment the pure-JAX path is chosen on purpose and nothing
warns. :func:`status` reports which route runs and why; ``python -m gln_jax.kernel build``
builds the cache ahead of time (for container images and Colab) and prints where it went
(``python -m gln_jax.kernel status`` prints the status).

Example:
    >>> from gln_jax import kernel
    >>> kernel.available()  # doctest: +SKIP
    True

This module re-exports the user-facing part of :mod:`gln_jax.core.kernel`.
"""

from gln_jax.core.kernel import KernelFallbackWarning as KernelFallbackWarning
from gln_jax.core.kernel import KernelStatus as KernelStatus
from gln_jax.core.kernel import available as available
from gln_jax.core.kernel import status as status
from gln_jax.core.kernel import threads as threads
from gln_jax.core.kernel import use_kernel as use_kernel

__all__ = ["KernelFallbackWarning", "KernelStatus", "available", "status", "threads", "use_kernel"]

if __name__ == "__main__":
    from gln_jax.core.kernel.__main__ import main

    raise SystemExit(main())
