"""Downloading dataset files from public mirrors, safely.

Each mirror is tried in order with bounded timeouts and retries; the body goes to a temporary
file that is renamed into place only once its uncompressed content verifies, under a lock file,
so neither a partial nor a corrupt download is ever used or left behind, and two processes
downloading the same file at once do not corrupt the cache.
"""

from __future__ import annotations

import errno
import gzip
import hashlib
import http.client
import os
import socket
import tempfile
import time
import urllib.error
import urllib.request
import zlib
from pathlib import Path

from gln_jax.data.idx import (
    GZIP_MAGIC,
    ChecksumError,
    IDXError,
    IDXFile,
    content_md5,
    decompress,
    find_file,
)

ENV_DATA_DIR = "GLN_JAX_DATA_DIR"
DEFAULT_TIMEOUT = 30.0  # seconds per blocking socket operation (connect, each read)
DEFAULT_RETRIES = 2  # extra attempts per mirror after a transient failure
DEFAULT_BACKOFF = 1.0  # seconds before the first retry, doubled for each further one
_CHUNK = 1 << 16


class DownloadError(OSError):
    """No mirror could deliver a file (every one unreachable, missing or failing)."""


class _Transient(Exception):
    """A failure worth retrying on the same mirror (timeout, 5xx, reset, truncated body)."""


class _Skip(Exception):
    """A failure that retrying the same mirror cannot fix (unreachable, 404, bad content)."""


def _unreachable(reason) -> bool:
    if isinstance(reason, (ConnectionRefusedError, socket.gaierror)):
        return True
    return isinstance(reason, OSError) and reason.errno in (
        errno.ENETUNREACH,
        errno.EHOSTUNREACH,
        errno.EADDRNOTAVAIL,
    )


def download_file(
    file: IDXFile,
    directory,
    mirrors,
    *,
    timeout: float = DEFAULT_TIMEOUT,
    retries: int = DEFAULT_RETRIES,
    backoff: float = DEFAULT_BACKOFF,
    progress: bool = True,
) -> Path:
    """Downloads ``file`` into ``directory`` from the first mirror that delivers it intact.

    Each mirror is tried in order: an unreachable host, a 4xx answer or content that fails
    verification moves on to the next mirror at once; a timeout, a 5xx answer, a reset or a
    truncated body is retried ``retries`` times with exponential backoff. The body goes to a
    temporary file in ``directory`` that is renamed into place only once the MD5 of its
    uncompressed content matches; whatever fails, no partial file is left behind. A lock file
    (``<name>.gz.lock``) serialises concurrent downloads of the same file, and a file that
    another process finished meanwhile is reused.

    Args:
        file: what to download and its checksum.
        directory: the download cache (created when missing).
        mirrors: base URLs; the file's URL is ``mirror + file.name + ".gz"``.
        timeout: seconds per blocking socket operation.
        retries: extra attempts per mirror after a transient failure.
        backoff: seconds before the first retry, doubled for each further one.
        progress: show a tqdm progress bar.

    Returns:
        The path of the verified file (``name.gz``, or ``name`` if a mirror served it plain).

    Raises:
        ChecksumError: every mirror failed and at least one served wrong content (the first
            such one is named, with both digests).
        DownloadError: every mirror failed otherwise; the message lists each failure.

    Example:
        >>> spec = DATASETS["mnist"]
        >>> download_file(spec.test_labels, user_cache_dir("mnist"), spec.mirrors)  # doctest: +SKIP
    """
    from filelock import FileLock

    directory = Path(directory)
    mirrors = [mirrors] if isinstance(mirrors, str) else list(mirrors)
    if not mirrors:
        raise ValueError("mirrors must list at least one base URL")
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise DownloadError(
            f"cannot create the download cache {directory} ({err}); pass cache_dir=... "
            f"or put the files in a directory given as data_dir=... or ${ENV_DATA_DIR}"
        ) from err
    with FileLock(str(directory / f"{file.name}.gz.lock")):
        existing = find_file(directory, file.name)
        if existing is not None:  # another process may have finished it while we waited
            try:
                verified = content_md5(decompress(existing.read_bytes())) == file.md5
            except IDXError:
                verified = False
            if verified:
                return existing
            existing.unlink()  # our own cache holds a bad copy: replace it
        failures, mismatch = [], None
        for mirror in mirrors:
            url = mirror + ("" if mirror.endswith("/") else "/") + f"{file.name}.gz"
            for attempt in range(retries + 1):
                try:
                    return _fetch(url, file, directory, timeout=timeout, progress=progress)
                except ChecksumError as err:
                    mismatch = mismatch or err
                    failures.append(f"{url}: {err}")
                    break
                except _Skip as err:
                    failures.append(f"{url}: {err}")
                    break
                except _Transient as err:
                    failures.append(f"{url} (attempt {attempt + 1}/{retries + 1}): {err}")
                    if attempt < retries:
                        time.sleep(backoff * 2**attempt)
    if mismatch is not None:
        raise mismatch
    raise DownloadError(
        f"could not download {file.name}.gz from any mirror:\n  "
        + "\n  ".join(failures)
        + f"\nWithout network access, put the four IDX files (.gz or not) in a directory and "
        f"pass it as data_dir=..., or set ${ENV_DATA_DIR} to it."
    )


def _fetch(url: str, file: IDXFile, directory: Path, *, timeout: float, progress: bool) -> Path:
    """One attempt: streams ``url`` into a temporary file, verifies it, renames it into place."""
    from tqdm import tqdm

    from gln_jax import __version__

    request = urllib.request.Request(url, headers={"User-Agent": f"gln-jax/{__version__}"})
    handle, partial = tempfile.mkstemp(dir=directory, prefix=f".{file.name}.", suffix=".part")
    try:
        with os.fdopen(handle, "wb") as sink:
            received, total = _stream(request, sink, timeout, progress, tqdm, file.name)
        if total is not None and received != total:
            raise _Transient(f"truncated download, received {received} of {total} bytes")
        with open(partial, "rb") as source:
            head = source.read(2)
        try:
            digest = _file_content_md5(partial, gzipped=head == GZIP_MAGIC)
        except (EOFError, OSError, zlib.error) as err:
            raise _Skip(f"broken or truncated gzip stream ({err})") from err
        if digest != file.md5:
            raise ChecksumError(url, file.md5, digest)
        final = directory / (f"{file.name}.gz" if head == GZIP_MAGIC else file.name)
        os.replace(partial, final)
        return final
    finally:
        if os.path.exists(partial):
            os.unlink(partial)


def _stream(request, sink, timeout: float, progress: bool, tqdm, name: str):
    """Copies a response body into ``sink``; returns ``(bytes received, Content-Length)``."""
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            length = response.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
            received = 0
            with tqdm(
                total=total,
                unit="B",
                unit_scale=True,
                unit_divisor=1024,
                desc=name,
                disable=not progress,
            ) as bar:
                while chunk := response.read(_CHUNK):
                    sink.write(chunk)
                    received += len(chunk)
                    bar.update(len(chunk))
            return received, total
    except urllib.error.HTTPError as err:
        err.close()
        if err.code >= 500 or err.code in (408, 429):
            raise _Transient(f"HTTP {err.code} {err.reason}") from None
        raise _Skip(f"HTTP {err.code} {err.reason}") from None
    except urllib.error.URLError as err:
        if _unreachable(err.reason):
            raise _Skip(f"unreachable ({err.reason})") from None
        raise _Transient(f"{err.reason}") from None
    except (TimeoutError, http.client.HTTPException, ConnectionError) as err:
        raise _Transient(f"{type(err).__name__}: {err}") from None


def _file_content_md5(path, *, gzipped: bool) -> str:
    """MD5 of a file's uncompressed content, streamed."""
    digest = hashlib.md5(usedforsecurity=False)
    with gzip.open(path, "rb") if gzipped else open(path, "rb") as source:
        while chunk := source.read(_CHUNK * 16):
            digest.update(chunk)
    return digest.hexdigest()
