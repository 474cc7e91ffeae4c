"""The IDX file format of MNIST-like datasets, and content checksums.

An IDX file is two zero bytes, a type code, the number of dims, each dim as a big-endian
uint32, then the data in C order. Files may be gzip-compressed; checksums are always of the
*uncompressed* content, so any gzip wrapping of the same bytes verifies.
"""

from __future__ import annotations

import hashlib
import itertools
import os
import zlib
from pathlib import Path
from typing import NamedTuple

import numpy as np

GZIP_MAGIC = b"\x1f\x8b"
_READ_CHUNK = 1 << 20
_IDX_DTYPES = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


class IDXError(ValueError):
    """A file is not a well-formed IDX file (bad magic number, truncated, wrong dims)."""


class ChecksumError(ValueError):
    """A file's uncompressed content does not have the registered MD5.

    Attributes:
        path: the file (or URL) that failed.
        expected: the registered MD5 (hex).
        actual: the MD5 of what was read (hex).
    """

    def __init__(self, path, expected: str, actual: str, hint: str = ""):
        self.path, self.expected, self.actual = str(path), expected, actual
        message = (
            f"checksum mismatch for {self.path}: the MD5 of its uncompressed content is "
            f"{actual}, expected {expected}"
        )
        super().__init__(message + (f"; {hint}" if hint else ""))


class IDXFile(NamedTuple):
    """One file of a dataset.

    Attributes:
        name: file name without ``.gz``, e.g. ``"train-images-idx3-ubyte"``.
        md5: MD5 (hex) of the uncompressed content.
        shape: the dims the file must hold, e.g. ``(60000, 28, 28)``.
    """

    name: str
    md5: str
    shape: tuple[int, ...]

    @property
    def size(self) -> int:
        """Bytes of the uncompressed file: the IDX header plus ``uint8`` data of ``shape``."""
        return idx_size(self.shape)


def idx_size(shape: tuple[int, ...], itemsize: int = 1) -> int:
    """Bytes of an uncompressed IDX file holding an array of ``shape`` and ``itemsize``."""
    return 4 + 4 * len(shape) + int(np.prod(shape, dtype=np.int64)) * itemsize


def max_stored_size(size: int) -> int:
    """The most bytes a file of ``size`` uncompressed bytes may take on disk or on the wire.

    Gzip can grow incompressible data by a few bytes per 16 KiB block plus its header and
    trailer; this bound is generous (1% and 64 KiB) and still stops an endless body early.
    """
    return size + size // 100 + (64 << 10)


def decompress(data: bytes, *, name: str = "<bytes>", max_size: int | None = None) -> bytes:
    """Returns ``data`` gunzipped when it starts with the gzip magic number, else unchanged.

    Args:
        data: the file's bytes.
        name: what error messages call the file.
        max_size: refuse (:class:`IDXError`) content longer than this many bytes, without ever
            inflating more than ``max_size + 1`` bytes (a gzip bomb costs nothing).
    """
    return _inflate(iter([data]), name=name, max_size=max_size)


def read_content(path, *, max_size: int | None = None) -> bytes:
    """A file's uncompressed content, gzipped or not, streamed and capped at ``max_size``.

    Neither the file nor its inflated content is ever held beyond ``max_size`` (plus the
    gzip overhead of :func:`max_stored_size`): an oversized plain file is refused from its
    size, a gzip bomb after inflating ``max_size + 1`` bytes.

    Raises:
        IDXError: the content is longer than ``max_size`` or the gzip stream is broken.
    """
    path = Path(path)
    with open(path, "rb") as source:
        if max_size is not None:
            stored = os.fstat(source.fileno()).st_size
            if stored > max_stored_size(max_size):
                raise IDXError(
                    f"{path}: {stored} bytes on disk, more than a file of {max_size} bytes "
                    "can take; wrong file"
                )
        chunks = iter(lambda: source.read(_READ_CHUNK), b"")
        return _inflate(chunks, name=str(path), max_size=max_size)


def _inflate(chunks, *, name: str, max_size: int | None) -> bytes:
    """Joins ``chunks``, gunzipping them (every gzip member) if they start with the magic."""
    first = next(chunks, b"")
    if not first.startswith(GZIP_MAGIC):
        out = bytearray(first)
        for chunk in chunks:
            if max_size is not None and len(out) > max_size:
                break
            out += chunk
        _check_size(out, name, max_size)
        return bytes(out)
    limit = None if max_size is None else max_size + 1
    out = bytearray()
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        for chunk in itertools.chain([first], chunks):
            pending = chunk
            while pending:
                if inflater.eof:  # another gzip member follows, as gzip.decompress allows
                    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
                room = 0 if limit is None else limit - len(out)  # >= 1: 0 would mean no limit
                out += inflater.decompress(pending, room)
                _check_size(out, name, max_size)
                pending = inflater.unused_data if inflater.eof else inflater.unconsumed_tail
        if not inflater.eof:
            out += inflater.flush()
            _check_size(out, name, max_size)
    except zlib.error as err:
        raise IDXError(f"{name}: broken or truncated gzip stream ({err})") from err
    if not inflater.eof:
        raise IDXError(
            f"{name}: broken or truncated gzip stream (it ends before its end-of-stream marker)"
        )
    return bytes(out)


def _check_size(out, name: str, max_size: int | None) -> None:
    if max_size is not None and len(out) > max_size:
        raise IDXError(
            f"{name}: content longer than the {max_size} bytes expected (a gzip bomb or the "
            "wrong file); stopped reading"
        )


def parse_idx(data: bytes, *, name: str = "<bytes>") -> np.ndarray:
    """Parses the bytes of an uncompressed IDX file.

    The header is two zero bytes, a type code, the number of dims, then each dim as a big-endian
    uint32; the data follow in C order, big-endian.

    Args:
        data: the whole file content.
        name: what error messages call the file.

    Returns:
        A read-only array of the file's dims and type (``uint8`` for MNIST), e.g. ``[N, 28, 28]``.

    Example:
        >>> parse_idx(bytes([0, 0, 8, 1, 0, 0, 0, 2, 7, 9]))
        array([7, 9], dtype=uint8)
    """
    if len(data) < 4:
        raise IDXError(f"{name}: truncated IDX file, {len(data)} bytes is shorter than a header")
    if data[0] != 0 or data[1] != 0 or data[2] not in _IDX_DTYPES or data[3] == 0:
        raise IDXError(
            f"{name}: not an IDX file, bad magic number 0x{data[:4].hex()} (expected 0x0000 "
            f"then a type code in {{{', '.join(f'0x{c:02x}' for c in _IDX_DTYPES)}}} and the "
            "number of dims)"
        )
    dtype, ndim = _IDX_DTYPES[data[2]], data[3]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise IDXError(f"{name}: truncated IDX header, {len(data)} of {header} bytes")
    dims = tuple(int(d) for d in np.frombuffer(data, ">u4", count=ndim, offset=4))
    expected = header + int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
    if len(data) < expected:
        raise IDXError(
            f"{name}: truncated IDX file, {len(data)} bytes where dims {dims} need {expected}"
        )
    if len(data) > expected:
        raise IDXError(
            f"{name}: {len(data) - expected} bytes after the data of dims {dims}; "
            "wrong dims or not an IDX file"
        )
    return np.frombuffer(data, dtype, offset=header).reshape(dims)


def content_md5(data: bytes) -> str:
    """MD5 (hex) of uncompressed content, the digest the registry records."""
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


def read_idx(path, *, md5: str | None = None, shape: tuple[int, ...] | None = None) -> np.ndarray:
    """Reads an IDX file, gzipped or not, optionally checking its content and dims.

    Args:
        path: the file.
        md5: expected MD5 of the uncompressed content; :class:`ChecksumError` when it differs.
        shape: expected dims; :class:`IDXError` when they differ.

    Returns:
        The file's array (read-only), e.g. ``[60000, 28, 28]`` uint8.

    Example:
        >>> images = read_idx("t10k-images-idx3-ubyte.gz")  # doctest: +SKIP
    """
    path = Path(path)
    data = read_content(path, max_size=None if shape is None else idx_size(tuple(shape), 8))
    if md5 is not None and (actual := content_md5(data)) != md5:
        raise ChecksumError(path, md5, actual)
    array = parse_idx(data, name=str(path))
    if shape is not None and array.shape != tuple(shape):
        raise IDXError(f"{path}: wrong dims, holds {array.shape}, expected {tuple(shape)}")
    return array


def find_file(directory: Path, name: str) -> Path | None:
    """``directory/name`` or ``directory/name.gz``, whichever exists first; else ``None``."""
    for candidate in (directory / name, directory / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    return None
