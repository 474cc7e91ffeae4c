"""The IDX file format of MNIST-like datasets, and content checksums.

An IDX file is two zero bytes, a type code, the number of dims, each dim as a big-endian
uint32, then the data in C order. Files may be gzip-compressed; checksums are always of the
*uncompressed* content, so any gzip wrapping of the same bytes verifies.
"""

from __future__ import annotations

import gzip
import hashlib
import zlib
from pathlib import Path
from typing import NamedTuple

import numpy as np

GZIP_MAGIC = b"\x1f\x8b"
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


def decompress(data: bytes, *, name: str = "<bytes>") -> bytes:
    """Returns ``data`` gunzipped when it starts with the gzip magic number, else unchanged."""
    if not data.startswith(GZIP_MAGIC):
        return data
    try:
        return gzip.decompress(data)
    except (EOFError, OSError, zlib.error) as err:
        raise IDXError(f"{name}: broken or truncated gzip stream ({err})") from err


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
    data = decompress(path.read_bytes(), name=str(path))
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
