"""The fused kernel's shared library: built or found in the cache, loaded and registered with
XLA once per process.

Both foreign calls live in the one library: :data:`FIT_TARGET` (online learning, batch
updates and inference, :mod:`.online`) and :data:`GATES_TARGET` (the gating, :mod:`.gates`).
"""

from __future__ import annotations

import ctypes
import logging
import os
import sys
import threading
import warnings
from pathlib import Path

import jax

from gln_jax.core.kernel import build

logger = logging.getLogger("gln_jax.kernel")

#: The XLA FFI target name of online learning, batch updates and inference (CPU).
FIT_TARGET = "gln_jax_online_fit"
#: The XLA FFI target name of the gating call (CPU).
GATES_TARGET = "gln_jax_gates"
#: Environment variable that turns the kernel off when set to ``0`` (or false/no/off).
SWITCH = "GLN_JAX_KERNEL"

#: Why the kernel is not in use (the ``cause`` of :class:`~gln_jax.core.kernel.KernelStatus`).
SWITCHED_OFF = "switched off"
NO_COMPILER = "no compiler"
BUILD_FAILED = "build failed"
CACHE_NOT_PRIVATE = "cache not private"
LOAD_FAILED = "load failed"
NOT_ON_CPU = "not on CPU"
NOT_BUILT = "not built yet"
NOT_LOADED = "not loaded yet"

#: What the pure-JAX fallback costs, as the warning says it.
FALLBACK_COST = (
    "the pure-JAX path runs instead (the same results, several times slower on CPU for exact "
    "online learning)"
)

_PACKAGE = str(Path(__file__).resolve().parents[2]) + os.sep  # the gln_jax folder
_lock = threading.Lock()
_status: bool | None = None  # None: not tried yet in this process
_path: Path | None = None  # the library loaded in this process
_failure: tuple[str, str] | None = None  # (cause, reason) of a failed load
_warned = False  # the fallback warning is given once per process
_registered = False  # the FFI target names are registered once per process


class KernelFallbackWarning(UserWarning):
    """A CPU fit runs in pure JAX because the fused kernel could not be built or loaded."""


def enabled() -> bool:
    """False when ``$GLN_JAX_KERNEL`` is ``0``, ``false``, ``no`` or ``off``."""
    return os.environ.get(SWITCH, "1").strip().lower() not in ("0", "false", "no", "off")


def _cause_of(err: Exception) -> tuple[str, str]:
    """``(cause, reason)`` of a failed build or load, the reason short enough for a warning."""
    if isinstance(err, build.UntrustedCacheError):
        return CACHE_NOT_PRIVATE, f"the cache folder is not private: {err}"
    if isinstance(err, build.CompilerNotFoundError):
        return NO_COMPILER, str(err)
    if isinstance(err, build.CompileError):
        return BUILD_FAILED, f"the build failed: {err.first_errors()}"
    if isinstance(err, build.BuildError):
        return BUILD_FAILED, f"the build failed: {err}"
    return LOAD_FAILED, f"the built library could not be loaded: {err}"


def load() -> bool:
    """Builds (or finds in the cache), loads and registers the kernel, once per process.

    Returns:
        Whether the kernel is ready. A missing compiler, a failed build or a cache that others
        may write returns False, leaves one debug-level log record on ``gln_jax.kernel`` and
        keeps the reason for :func:`failure` (a CPU fit then warns once, see
        :func:`warn_fallback`). Nothing is raised.
    """
    global _status, _path, _failure, _registered
    with _lock:
        if _status is not None:
            return _status
        try:
            path, compiled = build.build()
            library = ctypes.cdll.LoadLibrary(str(path))
            if not _registered:
                jax.ffi.register_ffi_target(
                    FIT_TARGET, jax.ffi.pycapsule(library.GlnOnlineFit), platform="cpu"
                )
                jax.ffi.register_ffi_target(
                    GATES_TARGET, jax.ffi.pycapsule(library.GlnGates), platform="cpu"
                )
                _registered = True
            logger.debug("fused kernel %s %s", "built at" if compiled else "loaded from", path)
            _status, _path, _failure = True, path, None
        except (build.BuildError, OSError, AttributeError) as err:
            logger.debug("fused kernel unavailable, learning runs in pure JAX: %s", err)
            _status, _failure = False, _cause_of(err)
        return _status


def loaded() -> Path | None:
    """The library loaded in this process, or None (not tried yet, or it failed)."""
    return _path if _status else None


def failure() -> tuple[str, str] | None:
    """``(cause, reason)`` when :func:`load` failed in this process, else None."""
    return _failure if _status is False else None


def _caller_outside_package() -> int:
    """The ``stacklevel`` that points a warning at the first caller outside ``gln_jax``."""
    level, frame = 1, sys._getframe(1)  # the function that calls warnings.warn: level 1
    while frame is not None and frame.f_code.co_filename.startswith(_PACKAGE):
        frame, level = frame.f_back, level + 1
    return level


def warn_fallback() -> None:
    """Warns once per process that a CPU fit falls back to pure JAX, saying why.

    Called where a fit on a CPU state chooses its path and :func:`load` failed; a kernel
    switched off with ``GLN_JAX_KERNEL=0`` never gets here.
    """
    global _warned
    reason = failure()
    if reason is None or _warned:
        return
    _warned = True
    warnings.warn(
        f"gln_jax: the fused CPU kernel is not used ({'; '.join(reason[1].splitlines())}); "
        f"{FALLBACK_COST}. Set "
        f"{SWITCH}=0 to choose the pure-JAX path on purpose (no warning), or see "
        "'python -m gln_jax.core.kernel status'.",
        KernelFallbackWarning,
        stacklevel=_caller_outside_package(),
    )


def require() -> None:
    """Builds or loads the kernel before a foreign call is traced (XLA needs its targets).

    Raises:
        RuntimeError: when the kernel is not available (see :func:`load`).
    """
    if not load():
        why = _failure[1] if _failure else "not loaded"
        raise RuntimeError(
            f"the fused kernel is not available ({why}); use the pure functions of "
            "gln_jax.core (scan_update, batch_apply)"
        )
