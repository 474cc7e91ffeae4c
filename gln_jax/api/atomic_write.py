"""Atomic file writing: a temporary file in the destination's folder, renamed into place.

A reader sees either the old file or the complete new one, never a partial write: the data is
written to ``.gln-<random>.npz.tmp`` next to the destination, flushed to disk, renamed over the
destination, and the rename itself is made durable. Temporaries left by a killed process are
tidied away by later writes once they are :data:`STALE_TEMPORARY_SECONDS` old.

Example:
    >>> write_atomically("model.npz", lambda handle: handle.write(b"..."))  # doctest: +SKIP
"""

from __future__ import annotations

import os
import re
import secrets
import stat
import time
from collections.abc import Callable
from typing import BinaryIO

#: A temporary file of ours (``.gln-*.npz.tmp``) untouched this long is a killed save's.
STALE_TEMPORARY_SECONDS = 15 * 60
_TEMPORARY = re.compile(r"\.gln-[A-Za-z0-9_]+\.npz\.tmp")


def write_atomically(path, write: Callable[[BinaryIO], object]) -> None:
    """Writes a file atomically: ``write(handle)`` into a temporary, then renamed to ``path``.

    Args:
        path: destination file (written exactly there; no suffix is added).
        write: called once with the temporary file opened for binary writing.

    Raises:
        OSError: the folder is not writable or the disk is full; the old file (if any) is left
            as it was and the temporary is removed. Anything ``write`` raises, likewise.
    """
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    _remove_stale_temporaries(directory)
    fd, tmp = _create_temporary(directory)
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise
    _fsync_directory(directory)


def _create_temporary(directory: str) -> tuple[int, str]:
    """Creates ``directory/.gln-<random>.npz.tmp``; returns ``(descriptor, path)``.

    Opened with mode ``0o666`` so that the kernel applies the umask (and any default ACL), as a
    plain ``open`` would: ``tempfile.mkstemp`` would make every checkpoint ``0o600``.
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    for _ in range(100):
        tmp = os.path.join(directory, f".gln-{secrets.token_hex(8)}.npz.tmp")
        try:
            return os.open(tmp, flags, 0o666), tmp
        except FileExistsError:
            continue
    raise FileExistsError(f"could not create a temporary file in {directory!r}")


def _remove_stale_temporaries(directory: str) -> None:
    """Deletes our own temporaries (``.gln-*.npz.tmp``) left in ``directory`` by killed saves.

    Only regular files of this user, untouched for :data:`STALE_TEMPORARY_SECONDS`, so that a
    save in progress in another process is left alone. Failures are ignored: this is tidying.
    """
    now = time.time()
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return
    for entry in entries:
        if not _TEMPORARY.fullmatch(entry.name):
            continue
        try:
            info = entry.stat(follow_symlinks=False)
            if (
                stat.S_ISREG(info.st_mode)
                and (not hasattr(os, "getuid") or info.st_uid == os.getuid())
                and now - info.st_mtime > STALE_TEMPORARY_SECONDS
            ):
                os.unlink(entry.path)
        except OSError:
            continue


def _fsync_directory(directory: str) -> None:
    """Makes the rename durable (POSIX; a no-op where directories cannot be opened)."""
    try:
        fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
