"""Builds the fused kernel from its C++ source, once per source, compiler and machine.

The shared library goes to a per-user cache, ``$XDG_CACHE_HOME/gln_jax/kernels/`` (default
``~/.cache/gln_jax/kernels/``), under a name that hashes everything the binary depends on:
the source, the compiler and its version, the flags, the XLA FFI headers and the CPU (the
flags include ``-march=native``). A build writes a temporary file and renames it into place,
under a file lock, so concurrent first uses (pytest-xdist workers, several processes) neither
corrupt the cache nor compile twice.
"""

from __future__ import annotations

import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
from pathlib import Path

SOURCE = Path(__file__).with_name("online_step.cc")
#: Compiler flags; ``-ffp-contract=off`` keeps every multiply and add separate, as the
#: reference writes them.
FLAGS = ("-O3", "-march=native", "-shared", "-fPIC", "-std=c++17", "-ffp-contract=off", "-pthread")
#: Seconds a compilation may take.
BUILD_TIMEOUT = 300


class BuildError(RuntimeError):
    """The kernel could not be built (no compiler, a failed compilation, no headers)."""


def cache_dir() -> Path:
    """Where built kernels live: ``$XDG_CACHE_HOME/gln_jax/kernels`` or ``~/.cache/...``."""
    root = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(root) / "gln_jax" / "kernels"


def find_compiler() -> str:
    """The C++ compiler: ``$CXX`` if set, else ``c++`` or ``g++`` on the ``PATH``.

    Raises:
        BuildError: when none is found (``$CXX`` names a missing program, or none on the PATH).
    """
    named = os.environ.get("CXX")
    candidates = [named] if named else ["c++", "g++", "clang++"]
    for name in candidates:
        found = shutil.which(name)
        if found:
            return found
    raise BuildError(f"no C++ compiler found (tried {', '.join(candidates)})")


def _cpu_signature() -> str:
    """The CPU model and feature flags (``-march=native`` binaries are per CPU)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            lines = [ln for ln in f if ln.startswith(("model name", "flags", "Features"))]
        return "".join(sorted(set(lines)))
    except OSError:
        return platform.processor()


def _include_dir() -> str:
    import jax.ffi  # noqa: PLC0415 - the build is lazy: no JAX work at import time

    return jax.ffi.include_dir()


def library_path(compiler: str, directory: Path | None = None) -> Path:
    """The cached library's path for this source, compiler, flags, headers and CPU.

    Args:
        compiler: path of the C++ compiler.
        directory: the cache directory (default :func:`cache_dir`).

    Returns:
        ``directory / "gln_online_<hash>.so"``.
    """
    try:
        version = subprocess.run(
            [compiler, "--version"], capture_output=True, text=True, timeout=60, check=False
        ).stdout
    except OSError as err:
        raise BuildError(f"cannot run the C++ compiler {compiler}: {err}") from err
    include = Path(_include_dir())
    digest = hashlib.sha256()
    for part in (
        SOURCE.read_bytes(),
        compiler.encode(),
        version.encode(),
        " ".join(FLAGS).encode(),
        (include / "xla" / "ffi" / "api" / "ffi.h").read_bytes(),
        (include / "xla" / "ffi" / "api" / "c_api.h").read_bytes(),
        platform.machine().encode(),
        _cpu_signature().encode(),
    ):
        digest.update(hashlib.sha256(part).digest())
    suffix = ".dll" if os.name == "nt" else ".so"
    return (directory or cache_dir()) / f"gln_online_{digest.hexdigest()[:24]}{suffix}"


def build(directory: Path | None = None) -> tuple[Path, bool]:
    """Returns the cached library, compiling it first if it is not there yet.

    Args:
        directory: the cache directory (default :func:`cache_dir`).

    Returns:
        ``(path, compiled)``: the library and whether this call compiled it.

    Raises:
        BuildError: no compiler, a failed compilation, or an unwritable cache.
    """
    from filelock import FileLock  # noqa: PLC0415

    compiler = find_compiler()
    target = library_path(compiler, directory)
    if target.exists():
        return target, False
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        with FileLock(str(target) + ".lock", timeout=BUILD_TIMEOUT + 60):
            if target.exists():  # another process built it while this one waited
                return target, False
            fd, tmp = tempfile.mkstemp(prefix=target.stem, suffix=".tmp", dir=target.parent)
            os.close(fd)
            try:
                command = [compiler, *FLAGS, "-I", _include_dir(), str(SOURCE), "-o", tmp]
                proc = subprocess.run(
                    command, capture_output=True, text=True, timeout=BUILD_TIMEOUT, check=False
                )
                if proc.returncode != 0:
                    raise BuildError(
                        f"compiling {SOURCE.name} failed ({' '.join(command)}):\n"
                        f"{proc.stderr[-4000:]}"
                    )
                os.replace(tmp, target)  # atomic: readers see no file or the whole file
            finally:
                if os.path.exists(tmp):
                    os.unlink(tmp)
    except (OSError, subprocess.SubprocessError) as err:
        raise BuildError(f"building the kernel failed: {err}") from err
    return target, True
