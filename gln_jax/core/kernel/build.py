"""Builds the fused kernel from its C++ sources, once per source, compiler and machine.

The shared library goes to a per-user cache, ``$XDG_CACHE_HOME/gln_jax/kernels/`` (default
``~/.cache/gln_jax/kernels/``), under a name that hashes everything the binary depends on:
the sources, the compiler and its version, the flags, the XLA FFI headers and the CPU.

The instruction set is chosen by ``$GLN_JAX_KERNEL_TARGET``, passed to the compiler as
``-march=<target>``: ``native`` (the default) builds for the CPU it runs on; a baseline such as
``x86-64-v2`` (SSE4.2), ``x86-64-v3`` (AVX2) or ``x86-64-v4`` (AVX-512) builds a library that
any CPU of that level runs (a container image built on one machine and run on others). The
kernel fixes its summation order in its source and forbids fused multiply-adds
(``-ffp-contract=off``), so every target computes the same float operations: on one machine,
builds for ``x86-64-v2``, ``x86-64-v3`` and ``native`` gave the same bits. Two CPUs can still
differ in the last bits, because the C library's ``exp``, ``log`` and ``log1p`` pick their code
path by the CPU they run on (see the semantics page, "Routes and rounding").

The cache is trusted only as far as it is private and whole:

* the cache folder is created with mode ``0700``; a folder (or library) that belongs to
  another user or that others may write is never loaded from (:class:`UntrustedCacheError`):
  anyone who can write there could plant code;
* a build compiles into a temporary file, checks that the compiler wrote a non-empty shared
  object, flushes it to disk (``fsync``) and renames it into place, then writes beside it a
  record of its size and SHA-256 (``<library>.sha256``), written the same way;
* before a library is loaded its size and digest are checked against that record; a
  truncated, emptied or altered file (loading one can kill the process with ``SIGBUS``) is
  rebuilt into a fresh file instead;
* one lock per cache folder (``.lock``) serialises builds, so concurrent first uses
  (pytest-xdist workers, several processes) compile once; a build removes temporary files
  that a killed build left behind (older than :data:`BUILD_TIMEOUT`).

``$GLN_JAX_KERNEL_CXXFLAGS`` adds compiler flags (split on white space; they are part of the
library's name), for example ``-fsanitize=address,undefined -g`` for a checked build (the
process then needs the sanitizer runtime preloaded, ``LD_PRELOAD=$(c++
-print-file-name=libasan.so)``).
"""

from __future__ import annotations

import hashlib
import os
import platform
import re
import shlex
import shutil
import stat
import subprocess
import tempfile
import time
from pathlib import Path

from gln_jax._cache import cache_root

_HERE = Path(__file__).parent
#: The C++ sources compiled into the one shared library.
SOURCES = (_HERE / "online_fit.cc", _HERE / "gates.cc")
#: The headers the sources include (part of the library's name).
HEADERS = (_HERE / "simd.h", _HERE / "handler.h")
#: Compiler flags; ``-ffp-contract=off`` keeps every multiply and add separate, as the
#: reference writes them. The handlers check their arguments themselves (``-DNDEBUG``).
FLAGS = (
    "-O3",
    "-shared",
    "-fPIC",
    "-std=c++17",
    "-ffp-contract=off",
    "-pthread",
    "-DNDEBUG",
)
#: Environment variable of extra compiler flags (see the module docstring).
EXTRA_FLAGS = "GLN_JAX_KERNEL_CXXFLAGS"
#: Environment variable naming the instruction set (``-march=<target>``).
TARGET = "GLN_JAX_KERNEL_TARGET"
#: The target when :data:`TARGET` is unset or empty.
DEFAULT_TARGET = "native"
_TARGET_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]{0,63}")
#: The compilers tried in turn when ``$CXX`` is not set.
COMPILERS = ("c++", "g++", "clang++")
#: Seconds a compilation may take.
BUILD_TIMEOUT = 300
#: The lock file of a cache folder.
LOCK_NAME = ".lock"
#: Suffix of the record of a library's size and digest.
RECORD_SUFFIX = ".sha256"


class BuildError(RuntimeError):
    """The kernel could not be built (no compiler, a failed compilation, no headers)."""


class CompilerNotFoundError(BuildError):
    """No C++ compiler could be found or run (``$CXX``, else ``c++``, ``g++``, ``clang++``)."""


class CompileError(BuildError):
    """The compiler ran and failed; :attr:`stderr` holds what it said.

    Attributes:
        command: the compiler's command line.
        stderr: the compiler's error output (its first 8,000 characters).
    """

    def __init__(self, command: list[str], stderr: str) -> None:
        self.command = list(command)
        self.stderr = stderr[:8000]
        super().__init__(f"compiling the kernel failed ({' '.join(command)}):\n{self.stderr}")

    def first_errors(self, lines: int = 4) -> str:
        """The compiler's first ``lines`` lines that say ``error`` (else its first lines)."""
        said = [line.strip() for line in self.stderr.splitlines() if line.strip()]
        errors = [line for line in said if "error" in line.lower()] or said
        return "\n".join(errors[:lines]) or "the compiler gave no message"


class UntrustedCacheError(BuildError):
    """The cache folder or a library in it may have been written by someone else."""


def cache_dir() -> Path:
    """Where built kernels live: ``$XDG_CACHE_HOME/gln_jax/kernels`` or ``~/.cache/...``."""
    return cache_root() / "kernels"


def target() -> str:
    """The instruction set the kernel is built for: ``$GLN_JAX_KERNEL_TARGET`` or ``native``.

    Raises:
        BuildError: when the variable holds something that cannot be a ``-march`` value (white
            space, a leading dash, shell characters).
    """
    named = os.environ.get(TARGET, "").strip()
    if not named:
        return DEFAULT_TARGET
    if not _TARGET_PATTERN.fullmatch(named):
        raise BuildError(
            f"${TARGET}={named!r} is not an instruction-set name; use native, x86-64-v2, "
            "x86-64-v3, x86-64-v4 or another value the compiler takes for -march"
        )
    return named


def flags() -> tuple[str, ...]:
    """The compiler flags: :data:`FLAGS`, ``-march=<target>`` and ``$GLN_JAX_KERNEL_CXXFLAGS``.

    Raises:
        BuildError: when ``$GLN_JAX_KERNEL_TARGET`` is not a valid name (see :func:`target`).
    """
    return (*FLAGS, f"-march={target()}", *shlex.split(os.environ.get(EXTRA_FLAGS, "")))


def find_compiler() -> str:
    """The C++ compiler: ``$CXX`` if set, else ``c++``, ``g++`` or ``clang++`` on the PATH.

    ``$CXX`` is honoured first and alone: when it names a missing program, no other compiler
    is tried (a wrong ``$CXX`` is reported, not silently replaced).

    Raises:
        CompilerNotFoundError: when none is found (``$CXX`` names a missing program, or none
            on the PATH).
    """
    named = os.environ.get("CXX", "").strip()
    candidates = [named] if named else list(COMPILERS)
    for name in candidates:
        found = shutil.which(name)
        if found:
            return found
    tried = f"$CXX={named}" if named else ", ".join(candidates) + " on the PATH ($CXX is not set)"
    raise CompilerNotFoundError(f"no C++ compiler found (tried {tried})")


def compiler_version(compiler: str) -> str:
    """What ``compiler --version`` prints (its first line names the compiler and version).

    Raises:
        CompilerNotFoundError: when the compiler cannot be run.
    """
    try:
        out = subprocess.run(
            [compiler, "--version"], capture_output=True, text=True, timeout=60, check=False
        ).stdout
    except (OSError, subprocess.SubprocessError) as err:
        raise CompilerNotFoundError(f"cannot run the C++ compiler {compiler}: {err}") from err
    return out


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
    """The cached library's path for these sources, compiler, flags, headers and CPU.

    Args:
        compiler: path of the C++ compiler.
        directory: the cache directory (default :func:`cache_dir`).

    Returns:
        ``directory / "gln_online_<hash>.so"``.

    Raises:
        CompilerNotFoundError: when the compiler cannot be run.
    """
    version = compiler_version(compiler)
    include = Path(_include_dir())
    digest = hashlib.sha256()
    for part in (
        *(path.read_bytes() for path in (*SOURCES, *HEADERS)),
        compiler.encode(),
        version.encode(),
        " ".join(flags()).encode(),
        (include / "xla" / "ffi" / "api" / "ffi.h").read_bytes(),
        (include / "xla" / "ffi" / "api" / "c_api.h").read_bytes(),
        platform.machine().encode(),
        _cpu_signature().encode(),
    ):
        digest.update(hashlib.sha256(part).digest())
    return (directory or cache_dir()) / f"gln_online_{digest.hexdigest()[:24]}.so"


def _private_dir(directory: Path) -> None:
    """Creates ``directory`` with mode 0700 if missing; checks that only this user may write it.

    Raises:
        UntrustedCacheError: the folder belongs to another user or others may write it.
    """
    if not directory.exists():
        directory.parent.mkdir(parents=True, exist_ok=True)
        try:
            directory.mkdir(mode=0o700)
        except FileExistsError:  # another process made it meanwhile: checked below
            pass
    _check_private(directory, "cache folder")


def check_cache_dir(directory: Path | None = None) -> None:
    """Checks, without creating anything, that an existing cache folder is private.

    Args:
        directory: the cache directory (default :func:`cache_dir`); a missing one passes.

    Raises:
        UntrustedCacheError: the folder belongs to another user or others may write it.
    """
    directory = directory or cache_dir()
    if os.path.lexists(directory):
        _check_private(directory, "cache folder")


def _check_private(path: Path, what: str) -> None:
    """Raises :class:`UntrustedCacheError` unless ``path`` is this user's and only theirs to
    write (not a symbolic link, not group- or other-writable)."""
    info = os.lstat(path)
    if stat.S_ISLNK(info.st_mode):
        raise UntrustedCacheError(f"the kernel {what} {path} is a symbolic link")
    if hasattr(os, "getuid") and info.st_uid != os.getuid():
        raise UntrustedCacheError(
            f"the kernel {what} {path} belongs to user id {info.st_uid}, not to this user"
        )
    if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise UntrustedCacheError(
            f"the kernel {what} {path} is writable by others (mode "
            f"{stat.S_IMODE(info.st_mode):04o}); make it private (chmod 700) or set "
            "XDG_CACHE_HOME to a private folder"
        )


def _record_of(path: Path) -> Path:
    return path.with_name(path.name + RECORD_SUFFIX)


def _describe(path: Path) -> str:
    """``"<size> <sha256>"`` of a file."""
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
            size += len(block)
    return f"{size} {digest.hexdigest()}"


def verified(path: Path) -> bool:
    """Whether ``path`` is a whole library as its build recorded it (size and SHA-256), and it
    and its record are this user's and only theirs to write (else it is to be rebuilt)."""
    record = _record_of(path)
    try:
        _check_private(path, "library")
        _check_private(record, "library record")
    except (OSError, UntrustedCacheError):
        return False
    try:
        return record.read_text(encoding="ascii").strip() == _describe(path)
    except (OSError, UnicodeDecodeError):
        return False


def _write_durably(path: Path, data: bytes | None = None) -> None:
    """Flushes ``path`` to disk (after writing ``data`` to it, when given)."""
    flags = os.O_RDWR if data is None else os.O_WRONLY | os.O_CREAT | os.O_TRUNC
    with os.fdopen(os.open(path, flags, 0o600), "r+b" if data is None else "wb") as f:
        if data is not None:
            f.write(data)
            f.flush()
        os.fsync(f.fileno())


def _sync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # pragma: no cover - a platform without directory handles
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


def _remove_stale_temporaries(directory: Path) -> None:
    """Removes temporary files of builds that were killed (older than a build may take)."""
    deadline = time.time() - BUILD_TIMEOUT - 60
    for leftover in directory.glob("*.tmp"):
        try:
            if leftover.stat().st_mtime < deadline:
                leftover.unlink()
        except OSError:
            pass


def _compile(compiler: str, target: Path) -> None:
    """Compiles into a temporary file beside ``target``, then renames it and its record into
    place (each flushed to disk first)."""
    fd, tmp_name = tempfile.mkstemp(prefix=target.stem + ".", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    record_tmp = tmp.with_name(tmp.name[: -len(".tmp")] + RECORD_SUFFIX + ".tmp")
    try:
        sources = [str(source) for source in SOURCES]
        command = [compiler, *flags(), "-isystem", _include_dir(), *sources, "-o", str(tmp)]
        proc = subprocess.run(
            command, capture_output=True, text=True, timeout=BUILD_TIMEOUT, check=False
        )
        if proc.returncode != 0:
            raise CompileError(command, proc.stderr)
        with open(tmp, "rb") as f:
            magic = f.read(4)
        if magic != b"\x7fELF":
            raise BuildError(
                f"the compiler {compiler} exited without error but wrote no shared library "
                f"({tmp.stat().st_size} bytes)"
            )
        os.chmod(tmp, 0o700)  # whatever the umask: only this user writes the cache
        _write_durably(tmp)
        _write_durably(record_tmp, (_describe(tmp) + "\n").encode("ascii"))
        os.replace(tmp, target)  # atomic: readers see the old file or the whole new one
        os.replace(record_tmp, _record_of(target))
        _sync_dir(target.parent)
    finally:
        for leftover in (tmp, record_tmp):
            if leftover.exists():
                leftover.unlink()


def build(directory: Path | None = None) -> tuple[Path, bool]:
    """Returns the cached library, compiling it first if it is missing or damaged.

    Args:
        directory: the cache directory (default :func:`cache_dir`).

    Returns:
        ``(path, compiled)``: the library (whole and private, see the module docstring) and
        whether this call compiled it.

    Raises:
        UntrustedCacheError: the cache folder or the library may have been written by others.
        CompilerNotFoundError: no compiler could be found or run.
        CompileError: the compilation failed (the error holds the compiler's messages).
        BuildError: another failure (an unwritable cache, a compiler that wrote no library).
    """
    from filelock import FileLock  # noqa: PLC0415

    compiler = find_compiler()
    target = library_path(compiler, directory)
    try:
        _private_dir(target.parent)
        if verified(target):
            return target, False
        with FileLock(str(target.parent / LOCK_NAME), timeout=BUILD_TIMEOUT + 60):
            _remove_stale_temporaries(target.parent)
            if verified(target):  # another process built it while this one waited
                return target, False
            _compile(compiler, target)
    except (OSError, subprocess.SubprocessError) as err:
        raise BuildError(f"building the kernel failed: {err}") from err
    return target, True
