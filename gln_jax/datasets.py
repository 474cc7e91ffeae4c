"""Dataset files: the IDX format, a registry of canonical checksums, lookup and download.

A dataset is four IDX files (train/test images and labels), plain or gzip-compressed. Every file
is verified against the MD5 of its *uncompressed* content, so any gzip wrapping of the same
bytes is accepted and anything else is refused. Files are looked up, one by one, in

1. the ``data_dir`` argument (the directory itself, then ``data_dir/<dataset>``),
2. ``$GLN_JAX_DATA_DIR`` (the same two places),
3. the user cache, ``$XDG_CACHE_HOME/gln-jax/<dataset>`` or ``~/.cache/gln-jax/<dataset>``,

and a file found nowhere is downloaded into the user cache from a list of public mirrors.
Downloads go to a temporary file that is renamed into place only once its uncompressed content
verifies, under a lock file, so neither a partial download nor a concurrent one is ever seen.
Data directories are only read, never written.

Only the standard library, NumPy and ``filelock`` are used; nothing here needs a network unless
a file is missing.
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
from typing import NamedTuple

import numpy as np

ENV_DATA_DIR = "GLN_JAX_DATA_DIR"
DEFAULT_TIMEOUT = 30.0  # seconds per blocking socket operation (connect, each read)
DEFAULT_RETRIES = 2  # extra attempts per mirror after a transient failure
DEFAULT_BACKOFF = 1.0  # seconds before the first retry, doubled for each further one
_CHUNK = 1 << 16
_GZIP_MAGIC = b"\x1f\x8b"
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


class DownloadError(OSError):
    """No mirror could deliver a file (every one unreachable, missing or failing)."""


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


class DatasetSpec(NamedTuple):
    """A dataset of four IDX files, where to download them and where the checksums come from.

    Attributes:
        name: registry key, also the name of its cache directory.
        train_images: ``[N, H, W]`` uint8 images.
        train_labels: ``[N]`` uint8 labels.
        test_images: ``[M, H, W]`` uint8 images.
        test_labels: ``[M]`` uint8 labels.
        mirrors: base URLs tried in order; a file's URL is ``mirror + name + ".gz"``.
        provenance: where the checksums come from.
    """

    name: str
    train_images: IDXFile
    train_labels: IDXFile
    test_images: IDXFile
    test_labels: IDXFile
    mirrors: tuple[str, ...]
    provenance: str

    @property
    def files(self) -> tuple[IDXFile, IDXFile, IDXFile, IDXFile]:
        """The four files in the order ``train_images, train_labels, test_images, test_labels``."""
        return (self.train_images, self.train_labels, self.test_images, self.test_labels)


MNIST_MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
)
FASHION_MIRRORS = (
    "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
    "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
)

DATASETS: dict[str, DatasetSpec] = {
    "mnist": DatasetSpec(
        name="mnist",
        train_images=IDXFile(
            "train-images-idx3-ubyte", "6bbc9ace898e44ae57da46a324031adb", (60000, 28, 28)
        ),
        train_labels=IDXFile(
            "train-labels-idx1-ubyte", "a25bea736e30d166cdddb491f175f624", (60000,)
        ),
        test_images=IDXFile(
            "t10k-images-idx3-ubyte", "2646ac647ad5339dbf082846283269ea", (10000, 28, 28)
        ),
        test_labels=IDXFile("t10k-labels-idx1-ubyte", "27ae3e4e09519cfbb04c329615203637", (10000,)),
        mirrors=MNIST_MIRRORS,
        provenance=(
            "MD5s of the uncompressed files as published with the original MNIST distribution "
            "(LeCun, Cortes, Burges; CC BY-SA 3.0), the same as listed in the project's "
            "shared/data/mnist/README.md and verified against that copy."
        ),
    ),
    "fashion": DatasetSpec(
        name="fashion",
        train_images=IDXFile(
            "train-images-idx3-ubyte", "f4a8712d7a061bf5bd6d2ca38dc4d50a", (60000, 28, 28)
        ),
        train_labels=IDXFile(
            "train-labels-idx1-ubyte", "9018921c3c673c538a1fc5bad174d6f9", (60000,)
        ),
        test_images=IDXFile(
            "t10k-images-idx3-ubyte", "8181f5470baa50b63fa0f6fddb340f0a", (10000, 28, 28)
        ),
        test_labels=IDXFile("t10k-labels-idx1-ubyte", "15d484375f8d13e6eb1aabb0c3f46965", (10000,)),
        mirrors=FASHION_MIRRORS,
        provenance=(
            "MD5s of the uncompressed files, computed from Debian's dataset-fashion-mnist "
            "0.0~git20200523.55506a9-1 (/usr/share/datasets/fashion-mnist; Zalando SE, MIT). "
            "Upstream (zalandoresearch/fashion-mnist) publishes MD5s of its .gz files only "
            "(8d4fb7e6c68d591d4c3dfef9ec88bf0d, 25c81989df183df01b3e8a0aad5dffbe, "
            "bef4ecab320f06d8554ea6380940ec79, bb300cfdad3c16e7a12a480ee83cd310); Debian "
            "re-compressed the same content, so only the uncompressed digests are portable."
        ),
    ),
}


def register_dataset(spec: DatasetSpec, *, overwrite: bool = False) -> None:
    """Adds a dataset (e.g. KMNIST) to the registry, so ``get_mnist(dataset=...)`` finds it.

    Example:
        >>> register_dataset(DatasetSpec("kmnist", ...))  # doctest: +SKIP
    """
    if spec.name in DATASETS and not overwrite:
        raise ValueError(f"dataset {spec.name!r} is already registered (pass overwrite=True)")
    DATASETS[spec.name] = spec


def get_spec(dataset: str) -> DatasetSpec:
    """The registered :class:`DatasetSpec` called ``dataset``."""
    try:
        return DATASETS[dataset]
    except KeyError:
        raise ValueError(
            f"unknown dataset {dataset!r}; registered: {', '.join(sorted(DATASETS))}"
        ) from None


# --- IDX format -----------------------------------------------------------------------------


def decompress(data: bytes, *, name: str = "<bytes>") -> bytes:
    """Returns ``data`` gunzipped when it starts with the gzip magic number, else unchanged."""
    if not data.startswith(_GZIP_MAGIC):
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


# --- lookup ---------------------------------------------------------------------------------


def user_cache_dir(dataset: str) -> Path:
    """``$XDG_CACHE_HOME/gln-jax/<dataset>``, or ``~/.cache/gln-jax/<dataset>``."""
    root = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(root) / "gln-jax" / dataset


def search_dirs(dataset: str, data_dir=None, cache_dir=None) -> list[Path]:
    """The directories searched for ``dataset``'s files, in order.

    Args:
        dataset: registry name.
        data_dir: optional directory given by the caller; it must exist.
        cache_dir: the cache to use instead of :func:`user_cache_dir`.

    Returns:
        ``[data_dir, data_dir/<dataset>, $GLN_JAX_DATA_DIR, $GLN_JAX_DATA_DIR/<dataset>, cache]``
        without the ones not given; the last one is the download cache.
    """
    dirs = []
    for source, value in (
        ("data_dir", data_dir),
        (f"${ENV_DATA_DIR}", os.environ.get(ENV_DATA_DIR)),
    ):
        if value is None or value == "":
            continue
        value = Path(value).expanduser()
        if not value.is_dir():
            raise FileNotFoundError(f"{source} {str(value)!r} is not a directory")
        dirs += [value, value / dataset]
    dirs.append(Path(cache_dir).expanduser() if cache_dir is not None else user_cache_dir(dataset))
    return dirs


def find_file(directory: Path, name: str) -> Path | None:
    """``directory/name`` or ``directory/name.gz``, whichever exists first; else ``None``."""
    for candidate in (directory / name, directory / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    return None


def _owner(file: IDXFile, digest: str, dataset: str) -> str | None:
    """The other registered dataset whose file of the same name has this digest, if any."""
    for spec in DATASETS.values():
        if spec.name != dataset and any(
            f.name == file.name and f.md5 == digest for f in spec.files
        ):
            return spec.name
    return None


class LoadedDataset(NamedTuple):
    """The arrays of a dataset as stored, plus the digests and files they came from.

    Attributes:
        train_images: ``[N, H, W]``.
        train_labels: ``[N]``.
        test_images: ``[M, H, W]``.
        test_labels: ``[M]``.
        md5s: the four verified digests, in the same order.
        paths: the four files read.
    """

    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray
    md5s: tuple[str, ...]
    paths: tuple[Path, ...]


def load_dataset(
    dataset: str = "mnist",
    data_dir=None,
    *,
    cache_dir=None,
    download: bool = True,
    mirrors=None,
    timeout: float = DEFAULT_TIMEOUT,
    retries: int = DEFAULT_RETRIES,
    backoff: float = DEFAULT_BACKOFF,
    progress: bool = True,
) -> LoadedDataset:
    """Finds (downloading if needed), verifies and parses the four files of a dataset.

    A file whose content is another registered dataset's file of the same name (MNIST found
    while looking for Fashion-MNIST) is passed over; any other mismatch is an error.

    Args:
        dataset: registry name, ``"mnist"`` or ``"fashion"``.
        data_dir: optional directory searched first (see :func:`search_dirs`).
        cache_dir: download cache instead of :func:`user_cache_dir`.
        download: download missing files; else a missing file is ``FileNotFoundError``.
        mirrors: base URLs replacing the dataset's default mirrors.
        timeout: seconds per blocking socket operation.
        retries: extra attempts per mirror after a transient failure.
        backoff: seconds before the first retry, doubled for each further one.
        progress: show tqdm progress bars while downloading.

    Returns:
        A :class:`LoadedDataset` of read-only arrays (``[N, 28, 28]`` uint8 images for MNIST).

    Example:
        >>> data = load_dataset("mnist", "../shared/data/mnist")  # doctest: +SKIP
        >>> data.train_images.shape  # doctest: +SKIP
        (60000, 28, 28)
    """
    spec = get_spec(dataset)
    dirs = search_dirs(dataset, data_dir, cache_dir)
    arrays, md5s, paths = [], [], []
    for file in spec.files:
        array, path = _load_file(spec, file, dirs)
        if array is None:
            if not download:
                raise FileNotFoundError(
                    f"{file.name}[.gz] of dataset {dataset!r} not found in "
                    f"{', '.join(map(str, dirs))}, and download=False"
                )
            path = download_file(
                file,
                dirs[-1],
                spec.mirrors if mirrors is None else mirrors,
                timeout=timeout,
                retries=retries,
                backoff=backoff,
                progress=progress,
            )
            array = read_idx(path, md5=file.md5, shape=file.shape)
        arrays.append(array)
        md5s.append(file.md5)
        paths.append(path)
    if arrays[0].shape[0] != arrays[1].shape[0] or arrays[2].shape[0] != arrays[3].shape[0]:
        raise IDXError(f"{dataset}: images and labels disagree in length")
    return LoadedDataset(*arrays, md5s=tuple(md5s), paths=tuple(paths))


def _load_file(spec: DatasetSpec, file: IDXFile, dirs: list[Path]):
    """``(array, path)`` of the first verified copy of ``file`` in ``dirs``, or ``(None, None)``."""
    for directory in dirs:
        path = find_file(directory, file.name)
        if path is None:
            continue
        data = decompress(path.read_bytes(), name=str(path))
        digest = content_md5(data)
        if digest != file.md5:
            if _owner(file, digest, spec.name) is not None:
                continue  # a sibling dataset's file (MNIST where Fashion was looked for)
            hint = "delete it to download it again" if directory == dirs[-1] else ""
            raise ChecksumError(path, file.md5, digest, hint)
        array = parse_idx(data, name=str(path))
        if array.shape != tuple(file.shape):
            raise IDXError(f"{path}: wrong dims, holds {array.shape}, expected {file.shape}")
        return array, path
    return None, None


# --- download -------------------------------------------------------------------------------


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
            digest = _file_content_md5(partial, gzipped=head == _GZIP_MAGIC)
        except (EOFError, OSError, zlib.error) as err:
            raise _Skip(f"broken or truncated gzip stream ({err})") from err
        if digest != file.md5:
            raise ChecksumError(url, file.md5, digest)
        final = directory / (f"{file.name}.gz" if head == _GZIP_MAGIC else file.name)
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
