"""The fused CPU kernel of exact online learning (and of batch updates), through ``jax.ffi``.

One foreign call runs a whole chunk of a stream: for every step and one-vs-all class, the
gather-dot of each neuron's active row, the layer-by-layer forward pass with the reference's
clipping, and the closed-form update of the active rows (``online_fit.cc``, a transliteration
of :func:`gln_jax.core.bernoulli.update`). The classes are split over the process's cores.
The context indices come first from the kernel's own gating call (``gates.cc``, :mod:`.gates`:
sparse over the examples' zeros, independent of the batch).
The same call serves batch updates (``batch_size`` > 1: a batch's examples predicted with
the weights from before it, their deltas added, the touched rows clipped, as
:func:`gln_jax.core.bernoulli.batch_update`), an ensemble's members flattened into the class
axis (:func:`kernel_ensemble_update`), the weights alone (:func:`kernel_weights_update`, for
callers that keep the hyperplanes' gate matrix) and, without learning, batched inference
(:func:`kernel_batch_apply`).

The C++ sources ship with the package and are compiled on first use with the system compiler
(``$CXX``, else ``c++``/``g++``) into a private per-user cache (:func:`build.cache_dir`, see
:mod:`.build` for how a damaged or foreign library is never loaded); nothing happens at import
time. Without a compiler, when the build fails, or when the cache folder is not private,
:func:`use_kernel` says no, the pure-JAX path runs and the first CPU fit of the process warns
(:class:`KernelFallbackWarning`, naming the reason). With ``GLN_JAX_KERNEL=0`` in the
environment the pure-JAX path is chosen on purpose and nothing warns. :func:`status` says
which of these holds; ``python -m gln_jax.core.kernel build`` builds the cache ahead of time
(for a container image, say) and ``python -m gln_jax.core.kernel status`` prints the status.

Example:
    >>> from gln_jax.core import kernel
    >>> kernel.available()  # doctest: +SKIP
    True
    >>> print(kernel.status())  # doctest: +SKIP
    fused CPU kernel: in use
    ...
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import jax
import numpy as np

from gln_jax.core.kernel import build as _build
from gln_jax.core.kernel import library as _library
from gln_jax.core.kernel.library import KernelFallbackWarning as KernelFallbackWarning
from gln_jax.core.kernel.online import TARGET as TARGET
from gln_jax.core.kernel.online import enabled, load
from gln_jax.core.kernel.online import kernel_batch_apply as kernel_batch_apply
from gln_jax.core.kernel.online import kernel_ensemble_update as kernel_ensemble_update
from gln_jax.core.kernel.online import kernel_scan_update as kernel_scan_update
from gln_jax.core.kernel.online import kernel_weights_update as kernel_weights_update
from gln_jax.core.kernel.online import threads as threads
from gln_jax.core.types import GLNConfig, GLNState

__all__ = [
    "KernelFallbackWarning",
    "KernelStatus",
    "available",
    "kernel_batch_apply",
    "kernel_ensemble_update",
    "kernel_scan_update",
    "kernel_weights_update",
    "status",
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
    (:func:`gln_jax.core._ensemble.fit_ensemble`) asks the same rule with its stacked state and
    runs all members in one call.

    A state on one CPU device whose kernel could not be built or loaded (no compiler, a
    failed build, a cache folder others may write) gets False and, the first time in the
    process, a :class:`KernelFallbackWarning` naming the reason; ``GLN_JAX_KERNEL=0`` gets
    False silently.

    Args:
        config: the network's config.
        state: the state to be trained (its devices are checked), or None.
        batch_size: examples per update.

    Returns:
        True when :func:`gln_jax.fit_stream` should run its chunks in the kernel.
    """
    if not isinstance(config, GLNConfig) or batch_size < 1 or not enabled():
        return False
    if not _on_one_cpu(state):
        return False
    if load():
        return True
    _library.warn_fallback()
    return False


@dataclasses.dataclass(frozen=True)
class KernelStatus:
    """Whether the fused kernel is in use in this process, where it lives, and if not, why.

    Attributes:
        in_use: whether CPU fits of this process run in the kernel (built, loaded, switched
            on, CPU backend).
        cause: None when in use, else one of ``"switched off"``, ``"not on CPU"``,
            ``"no compiler"``, ``"build failed"``, ``"cache not private"``,
            ``"load failed"``, ``"not built yet"`` or ``"not loaded yet"``.
        reason: the cause in words (the compiler's first error lines for a failed build).
        cache_dir: the cache folder (``$XDG_CACHE_HOME/gln_jax/kernels``).
        library: the library file for this compiler, flags and CPU (None without a
            compiler); the loaded one once loaded.
        built: whether that file is in the cache, whole.
        compiler: the compiler's path (``$CXX`` first, else ``c++``, ``g++``, ``clang++``).
        compiler_version: the first line of its ``--version``.
        flags: the compiler flags (with ``-march=$GLN_JAX_KERNEL_TARGET``, default
            ``native``, and ``$GLN_JAX_KERNEL_CXXFLAGS``); empty when the target is invalid.
        backend: JAX's default backend.
    """

    in_use: bool
    cause: str | None
    reason: str | None
    cache_dir: Path
    library: Path | None
    built: bool
    compiler: str | None
    compiler_version: str | None
    flags: tuple[str, ...]
    backend: str

    def __str__(self) -> str:
        if self.in_use:
            head = "fused CPU kernel: in use"
        elif self.cause in (_library.NOT_BUILT, _library.NOT_LOADED):
            head = f"fused CPU kernel: not in use yet ({self.reason})"
        else:
            head = f"fused CPU kernel: not in use ({self.cause})"
        lines = [head]
        if not self.in_use and self.cause not in (_library.NOT_BUILT, _library.NOT_LOADED):
            lines += ["  " + line for line in (self.reason or "").splitlines()]
            if self.cause not in (_library.SWITCHED_OFF, _library.NOT_ON_CPU):
                lines.append(f"  {_library.FALLBACK_COST}")
        state = "built" if self.built else "not built"
        if self.in_use:
            state += ", loaded"
        lines += [
            f"  library:  {self.library} ({state})" if self.library else "  library:  unknown",
            f"  cache:    {self.cache_dir}",
            f"  compiler: {self.compiler} ({self.compiler_version})"
            if self.compiler
            else "  compiler: none",
            f"  flags:    {' '.join(self.flags)}",
            f"  backend:  {self.backend}",
        ]
        return "\n".join(lines)


def _flags_or_none() -> tuple[str, ...]:
    """The compiler flags, or none where ``$GLN_JAX_KERNEL_TARGET`` is invalid (the cause
    then says so)."""
    try:
        return _build.flags()
    except _build.BuildError:
        return ()


def status(build: bool = False) -> KernelStatus:
    """Whether the fused kernel is in use in this process, where its cache is, and if not, why.

    Args:
        build: build (if needed) and load the kernel first, as the first CPU fit would. By
            default nothing is built or loaded: a process that has not used the kernel yet
            reports ``"not built yet"`` or ``"not loaded yet"``.

    Returns:
        A :class:`KernelStatus`; ``print`` it for a readable report.

    Example:
        >>> from gln_jax.core import kernel
        >>> kernel.status(build=True).in_use  # doctest: +SKIP
        True
    """
    switched_on = enabled()
    if build and switched_on:
        load()
    directory = _build.cache_dir()
    compiler = version = library_file = None
    built = False
    problem = None  # (cause, reason) of a compiler that cannot be found or run
    try:
        compiler = _build.find_compiler()
        version = (_build.compiler_version(compiler).splitlines() or ["unknown version"])[0]
        library_file = _library.loaded() or _build.library_path(compiler, directory)
        built = _build.verified(library_file)
    except _build.BuildError as err:
        problem = _library._cause_of(err)
    backend = jax.default_backend()

    if not switched_on:
        cause = (_library.SWITCHED_OFF, f"switched off with {_library.SWITCH}=0")
    elif backend != "cpu":
        cause = (
            _library.NOT_ON_CPU,
            f"JAX's default backend is {backend!r}; the kernel runs only on CPU states",
        )
    elif _library.failure() is not None:
        cause = _library.failure()
    elif _library.loaded() is not None:
        cause = None
    elif problem is not None:
        cause = problem
    else:
        try:
            _build.check_cache_dir(directory)
            cause = (
                (_library.NOT_LOADED, "built; it loads on the first CPU fit")
                if built
                else (
                    _library.NOT_BUILT,
                    "not built yet; it builds on the first CPU fit, or ahead of time with "
                    "'python -m gln_jax.core.kernel build'",
                )
            )
        except _build.UntrustedCacheError as err:
            cause = _library._cause_of(err)
    return KernelStatus(
        in_use=cause is None,
        cause=cause[0] if cause else None,
        reason=cause[1] if cause else None,
        cache_dir=directory,
        library=library_file,
        built=built,
        compiler=compiler,
        compiler_version=version,
        flags=_flags_or_none(),
        backend=backend,
    )
