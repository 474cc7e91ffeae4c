"""A hardened reader of ``.npz`` archives that trusts nothing in the file.

Only a regular file is opened (never a directory, FIFO, socket or device, even one swapped in
while it is opened); every member must be a plain ``.npy`` array named once; a member's header
is read and its dtype and shape checked before any data, and no more than the bytes that shape
and dtype need is ever decompressed. Nothing is unpickled or executed. Every failure is a
:class:`CheckpointError` naming the file and what is wrong with it.

Example:
    >>> with open_archive("model.npz") as archive:  # doctest: +SKIP
    ...     members = list_members("model.npz", archive)
    ...     step = read_member("model.npz", archive, members["step"], "step", is_int, ())
"""

from __future__ import annotations

import contextlib
import os
import stat
import zipfile
from collections.abc import Callable, Iterator

import numpy as np


class CheckpointError(ValueError):
    """A file that is not a valid gln-jax checkpoint: truncated, corrupt, foreign, or holding
    values its config does not allow. The message names the file and the reason."""


def bad(path, why: str) -> CheckpointError:
    """The error for ``path``, which is not a valid checkpoint because of ``why``."""
    return CheckpointError(f"{os.fspath(path)!r} is not a valid gln-jax checkpoint: {why}")


@contextlib.contextmanager
def open_archive(path) -> Iterator[zipfile.ZipFile]:
    """Opens a regular file as a zip archive, for reading.

    Raises:
        FileNotFoundError: no such file.
        CheckpointError: not a regular file, or not readable as a zip archive.
    """
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise FileNotFoundError(f"no checkpoint at {os.fspath(path)!r}") from None
    except OSError as err:
        raise bad(path, f"cannot stat it ({err})") from err
    if not stat.S_ISREG(info.st_mode):
        raise bad(path, "it is not a regular file (a directory, FIFO, socket or device)")
    try:  # O_NONBLOCK: should a FIFO replace the file meanwhile, open does not block on it
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    except OSError as err:
        raise bad(path, f"cannot open it ({err})") from err
    with os.fdopen(fd, "rb") as handle:
        if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
            raise bad(path, "it is not a regular file (a directory, FIFO, socket or device)")
        try:
            archive = zipfile.ZipFile(handle)
        except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, ValueError) as err:
            raise bad(path, f"cannot read it as an .npz archive ({err})") from err
        with archive:
            yield archive


def list_members(path, archive: zipfile.ZipFile) -> dict[str, zipfile.ZipInfo]:
    """The archive's members by name without ``.npy``; each must be an ``.npy`` file, once.

    Raises:
        CheckpointError: a member that is not an ``.npy`` array, or one named twice.
    """
    members = {}
    for item in archive.infolist():
        if not item.filename.endswith(".npy") or item.is_dir():
            raise bad(path, f"member {item.filename!r} is not an .npy array")
        name = item.filename[: -len(".npy")]
        if name in members:
            raise bad(path, f"member {item.filename!r} appears twice")
        members[name] = item
    return members


def read_member(
    path,
    archive: zipfile.ZipFile,
    item: zipfile.ZipInfo,
    key: str,
    dtype_ok: Callable[[np.dtype], bool],
    shape: tuple[int, ...],
) -> np.ndarray:
    """One ``.npy`` member: header checked first, then at most the expected bytes read.

    Args:
        path: the archive's path (for messages).
        archive: the open archive.
        item: the member.
        key: its name without ``.npy`` (for messages).
        dtype_ok: predicate on the header's dtype.
        shape: the shape the member must have.

    Returns:
        The array, in native byte order.

    Raises:
        CheckpointError: a header that is not ``.npy``, an object or unexpected dtype, another
            shape, or more or fewer bytes of data than the shape and dtype need.
    """
    try:
        with archive.open(item) as stream:
            version = np.lib.format.read_magic(stream)
            if version == (1, 0):
                header = np.lib.format.read_array_header_1_0(stream)
            elif version == (2, 0):
                header = np.lib.format.read_array_header_2_0(stream)
            else:
                raise ValueError(f"unsupported .npy version {version}")
            stored_shape, fortran_order, dtype = header
            if dtype.hasobject or not dtype_ok(dtype) or tuple(stored_shape) != tuple(shape):
                raise bad(
                    path,
                    f"{key!r} has shape {tuple(stored_shape)} and dtype {dtype}, which its "
                    f"config does not allow (shape {tuple(shape)})",
                )
            nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
            if item.file_size > stream.tell() + nbytes:
                raise bad(path, f"{key!r} holds more bytes than its shape and dtype need")
            data = stream.read(nbytes + 1)  # never decompresses more than one byte too many
    except CheckpointError:
        raise
    except ValueError as err:
        raise bad(path, f"{key!r} is not a valid .npy array ({err})") from err
    except (zipfile.BadZipFile, OSError, EOFError, NotImplementedError) as err:
        raise bad(path, f"cannot read {key!r} ({err})") from err
    if len(data) != nbytes:
        raise bad(path, f"{key!r} holds {len(data)} bytes of data, its shape needs {nbytes}")
    array = np.frombuffer(data, dtype).reshape(shape, order="F" if fortran_order else "C")
    return np.array(array, dtype.newbyteorder("=") if dtype.kind in "iuf" else dtype)
