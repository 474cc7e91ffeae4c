"""Downloading dataset files from public mirrors, safely.

Each mirror is tried in order with bounded timeouts and retries, under an overall deadline; a
body is capped at the most bytes the expected file can take (:func:`~gln_jax.data.idx.
max_stored_size`), and its content is inflated with a cap at the expected size. The body goes
to a temporary file that is renamed into place only once its uncompressed content verifies,
under a lock file (removed again on release), so neither a partial nor a corrupt download is
ever used or left behind, and two processes downloading the same file at once do not corrupt
the cache.
"""

from __future__ import annotations

import contextlib
import errno
import http.client
import os
import socket
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from gln_jax._version import __version__
from gln_jax.data.idx import (
    GZIP_MAGIC,
    ChecksumError,
    IDXError,
    IDXFile,
    content_md5,
    find_file,
    max_stored_size,
    read_content,
)

try:
    import fcntl
except ImportError:  # Windows: filelock's msvcrt lock, which removes its file itself
    fcntl = None

ENV_DATA_DIR = "GLN_JAX_DATA_DIR"
DEFAULT_TIMEOUT = 30.0  # seconds per blocking socket operation (connect, each read)
DEFAULT_RETRIES = 2  # extra attempts per mirror after a transient failure
DEFAULT_BACKOFF = 1.0  # seconds before the first retry, doubled for each further one
DEFAULT_DEADLINE = 900.0  # seconds for a whole download (every mirror and retry together)
_CHUNK = 1 << 16


class DownloadError(OSError):
    """No mirror could deliver a file (every one unreachable, missing or failing)."""


class _Transient(Exception):
    """A failure worth retrying on the same mirror (timeout, 5xx, reset, truncated body)."""


class _Skip(Exception):
    """A failure that retrying the same mirror cannot fix (unreachable, 404, bad content)."""


class _Deadline(Exception):
    """The overall deadline of a download passed: no further read, retry or mirror."""


@contextlib.contextmanager
def cache_lock(path):
    """An exclusive inter-process lock on ``path``, whose file is removed on release.

    POSIX: ``flock`` on the file; after acquiring, the holder checks that ``path`` still names
    the file it locked (a previous holder may have removed it meanwhile) and starts again if
    not, so removing the file on release is safe and no empty lock file stays behind.
    Elsewhere, ``filelock``'s lock.

    Example:
        >>> with cache_lock(directory / "name.gz.lock"):  # doctest: +SKIP
        ...     pass
    """
    path = os.fspath(path)
    if fcntl is None:
        from filelock import FileLock

        with FileLock(path):
            yield
        return
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            held = os.fstat(fd)
            try:
                named = os.stat(path)
            except FileNotFoundError:
                named = None
        except BaseException:
            os.close(fd)
            raise
        if named is not None and (named.st_dev, named.st_ino) == (held.st_dev, held.st_ino):
            break
        os.close(fd)  # a previous holder removed it: lock the file that is there now
    try:
        yield
    finally:
        try:
            os.unlink(path)
        except OSError:
            pass
        os.close(fd)


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
    deadline: float | None = DEFAULT_DEADLINE,
    progress: bool = True,
) -> Path:
    """Downloads ``file`` into ``directory`` from the first mirror that delivers it intact.

    Each mirror is tried in order: an unreachable host, a 4xx answer or content that fails
    verification moves on to the next mirror at once; a timeout, a 5xx answer, a reset or a
    truncated body is retried ``retries`` times with exponential backoff. A body longer than
    ``file`` can take (its uncompressed size plus the gzip overhead of
    :func:`~gln_jax.data.idx.max_stored_size`) is cut off and the mirror passed over; the
    whole call stops with :class:`DownloadError` once ``deadline`` seconds have passed (checked
    between reads, each read bounded by ``timeout``). The body goes to a temporary file in
    ``directory`` that is renamed into place only once the MD5 of its uncompressed content
    (inflated with a cap at the expected size) matches; whatever fails, no partial file is
    left behind. A lock file (``<name>.gz.lock``, removed on release) serialises concurrent
    downloads of the same file; a verified file that another process finished meanwhile is
    reused, a copy that fails to verify is replaced.

    Args:
        file: what to download and its checksum.
        directory: the download cache (created when missing).
        mirrors: base URLs; the file's URL is ``mirror + file.name + ".gz"``.
        timeout: seconds per blocking socket operation.
        retries: extra attempts per mirror after a transient failure.
        backoff: seconds before the first retry, doubled for each further one.
        deadline: seconds for the whole call, every mirror and retry together (``None``: no
            deadline; each read is still bounded by ``timeout``).
        progress: show a tqdm progress bar.

    Returns:
        The path of the verified file (``name.gz``, or ``name`` if a mirror served it plain).

    Raises:
        ChecksumError: every mirror failed and at least one served wrong content (the first
            such one is named, with both digests).
        DownloadError: every mirror failed otherwise, or the deadline passed; the message
            lists each failure.

    Example:
        >>> spec = DATASETS["mnist"]
        >>> download_file(spec.test_labels, user_cache_dir("mnist"), spec.mirrors)  # doctest: +SKIP
    """
    directory = Path(directory)
    mirrors = [mirrors] if isinstance(mirrors, str) else list(mirrors)
    if not mirrors:
        raise ValueError("mirrors must list at least one base URL")
    if deadline is not None and not deadline > 0:
        raise ValueError(f"deadline must be a positive number of seconds or None, got {deadline!r}")
    end = None if deadline is None else time.monotonic() + deadline
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise DownloadError(
            f"cannot create the download cache {directory} ({err}); pass cache_dir=... "
            f"or put the files in a directory given as data_dir=... or ${ENV_DATA_DIR}"
        ) from err
    failures, mismatch = [], None
    with cache_lock(directory / f"{file.name}.gz.lock"):
        existing = find_file(directory, file.name)
        if existing is not None:  # another process may have finished it while we waited
            try:
                verified = content_md5(read_content(existing, max_size=file.size)) == file.md5
            except IDXError:
                verified = False
            if verified:
                return existing
            existing.unlink()  # our own cache holds a bad copy: replace it
        try:
            for mirror in mirrors:
                url = mirror + ("" if mirror.endswith("/") else "/") + f"{file.name}.gz"
                for attempt in range(retries + 1):
                    try:
                        return _fetch(url, file, directory, timeout, end, progress)
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
                            _sleep(backoff * 2**attempt, end)
        except _Deadline as err:
            earlier = "".join(f"\n  {failure}" for failure in failures)
            raise DownloadError(
                f"could not download {file.name}.gz within the deadline of {deadline} s "
                f"({err}){'; earlier failures:' if earlier else ''}{earlier}"
            ) from None
    if mismatch is not None:
        raise mismatch
    raise DownloadError(
        f"could not download {file.name}.gz from any mirror:\n  "
        + "\n  ".join(failures)
        + f"\nWithout network access, put the four IDX files (.gz or not) in a directory and "
        f"pass it as data_dir=..., or set ${ENV_DATA_DIR} to it."
    )


def _remaining(end: float | None, what: str) -> float | None:
    """Seconds left before ``end`` (``None``: no deadline); :class:`_Deadline` when none."""
    if end is None:
        return None
    left = end - time.monotonic()
    if left <= 0:
        raise _Deadline(what)
    return left


def _sleep(seconds: float, end: float | None) -> None:
    left = _remaining(end, "while waiting to retry")
    time.sleep(seconds if left is None else min(seconds, left))
    _remaining(end, "while waiting to retry")


def _fetch(url: str, file: IDXFile, directory: Path, timeout: float, end, progress: bool) -> Path:
    """One attempt: streams ``url`` into a temporary file, verifies it, renames it into place."""
    from tqdm import tqdm

    request = urllib.request.Request(url, headers={"User-Agent": f"gln-jax/{__version__}"})
    handle, partial = tempfile.mkstemp(dir=directory, prefix=f".{file.name}.", suffix=".part")
    try:
        with os.fdopen(handle, "wb") as sink:
            received, total = _stream(request, sink, file, timeout, end, progress, tqdm)
        if total is not None and received != total:
            raise _Transient(f"truncated download, received {received} of {total} bytes")
        with open(partial, "rb") as source:
            head = source.read(2)
        try:
            digest = content_md5(read_content(partial, max_size=file.size))
        except IDXError as err:
            raise _Skip(str(err).replace(partial, "the body")) from err
        if digest != file.md5:
            raise ChecksumError(url, file.md5, digest)
        final = directory / (f"{file.name}.gz" if head == GZIP_MAGIC else file.name)
        os.replace(partial, final)
        return final
    finally:
        if os.path.exists(partial):
            os.unlink(partial)


def _stream(request, sink, file: IDXFile, timeout: float, end, progress: bool, tqdm):
    """Copies a response body into ``sink``; returns ``(bytes received, Content-Length)``.

    Stops with :class:`_Skip` past :func:`max_stored_size` bytes and with :class:`_Deadline`
    once ``end`` (a ``time.monotonic`` value) has passed; each read returns what has arrived
    (``read1``), so a server trickling bytes cannot hold one read past ``timeout``.
    """
    cap = max_stored_size(file.size)
    left = _remaining(end, "before connecting")
    try:
        with urllib.request.urlopen(
            request, timeout=timeout if left is None else min(timeout, left)
        ) as response:
            length = response.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
            if total is not None and total > cap:
                raise _Skip(
                    f"the server announces {total} bytes, more than the {cap} that "
                    f"{file.name} ({file.size} bytes uncompressed) can take"
                )
            read = getattr(response, "read1", response.read)
            received = 0
            with tqdm(
                total=total,
                unit="B",
                unit_scale=True,
                unit_divisor=1024,
                desc=file.name,
                disable=not progress,
            ) as bar:
                while True:
                    _remaining(end, f"after {received} bytes")
                    chunk = read(_CHUNK)
                    if not chunk:
                        break
                    received += len(chunk)
                    if received > cap:
                        raise _Skip(
                            f"the body is longer than the {cap} bytes that {file.name} "
                            f"({file.size} bytes uncompressed) can take; stopped reading"
                        )
                    sink.write(chunk)
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
