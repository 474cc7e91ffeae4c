"""MNIST-family loaders: flat float32 arrays, deskewed through a checksum-keyed user cache."""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
import warnings
import zipfile
from pathlib import Path

import numpy as np

from gln_jax.data import datasets
from gln_jax.data.deskew import DESKEW_VERSION, deskew
from gln_jax.data.download import cache_lock


def get_mnist(
    deskewed: bool = True,
    data_dir=None,
    dataset: str = "mnist",
    *,
    cache_dir=None,
    download: bool = True,
    mirrors=None,
    timeout: float = datasets.DEFAULT_TIMEOUT,
    retries: int = datasets.DEFAULT_RETRIES,
    deadline: float | None = datasets.DEFAULT_DEADLINE,
    progress: bool = True,
):
    """MNIST (or Fashion-MNIST) as flat float32 arrays, deskewed by default.

    The four IDX files are looked up in ``data_dir``, then ``$GLN_JAX_DATA_DIR``, then the user
    cache (downloaded there when missing) and verified against their canonical checksums; see
    :mod:`gln_jax.data.datasets`. Deskewed images are cached as ``.npz`` in the user cache, keyed
    by the dataset and its checksums, so only the first call pays for deskewing; a cache file
    whose arrays have the wrong shape or dtype, or values outside ``[0, 1]`` (NaN included), is
    rebuilt. Nothing is ever written into a data directory, and no lock file is left behind.

    Args:
        deskewed: apply :func:`deskew` to every image.
        data_dir: directory holding the IDX files (``.gz`` or not); may be read-only.
        dataset: ``"mnist"`` or ``"fashion"`` (any name in ``datasets.DATASETS``).
        cache_dir: use this directory instead of the user cache (downloads and deskewed arrays).
        download: download missing files (else ``FileNotFoundError``).
        mirrors: base URLs replacing the dataset's default mirrors.
        timeout: seconds per blocking socket operation while downloading.
        retries: extra attempts per mirror after a transient failure.
        deadline: seconds for each file's download, every mirror and retry together.
        progress: show tqdm progress bars (download, deskew).

    Returns:
        ``X_train [60000, 784]``, ``y_train [60000]``, ``X_test [10000, 784]``,
        ``y_test [10000]``: float32 inputs in ``[0, 1]`` and int64 labels.

    Example:
        >>> X_train, y_train, X_test, y_test = get_mnist()  # doctest: +SKIP
        >>> X_train.shape, y_train[:3]  # doctest: +SKIP
        ((60000, 784), array([5, 0, 4]))
    """
    data = datasets.load_dataset(
        dataset,
        data_dir,
        cache_dir=cache_dir,
        download=download,
        mirrors=mirrors,
        timeout=timeout,
        retries=retries,
        deadline=deadline,
        progress=progress,
    )
    for name in ("train_images", "test_images"):
        array = getattr(data, name)
        if array.dtype != np.uint8 or array.ndim != 3:
            raise ValueError(
                f"{dataset} {name} must be [N, H, W] uint8, got {array.shape} {array.dtype}"
            )
    y_train = data.train_labels.astype(np.int64)
    y_test = data.test_labels.astype(np.int64)
    if deskewed:
        cache = Path(cache_dir) if cache_dir is not None else datasets.user_cache_dir(dataset)
        X_train, X_test = _deskewed(data, dataset, cache, progress)
    else:
        X_train, X_test = _flat(data.train_images), _flat(data.test_images)
    return X_train, y_train, X_test, y_test


def _flat(images: np.ndarray) -> np.ndarray:
    """``[N, H, W]`` uint8 -> ``[N, H * W]`` float32 in ``[0, 1]``."""
    return images.reshape(images.shape[0], -1).astype(np.float32) / np.float32(255)


def _deskewed(data: datasets.LoadedDataset, dataset: str, cache: Path, progress: bool):
    """Deskewed ``(X_train, X_test)`` from the cache, computing and caching them when absent."""
    key = hashlib.sha256(
        f"deskew-v{DESKEW_VERSION}|{dataset}|{','.join(data.md5s)}".encode()
    ).hexdigest()[:24]
    path = cache / f"deskewed-{key}.npz"
    shapes = [(len(a), a[0].size) for a in (data.train_images, data.test_images)]
    cached = _read_cache(path, shapes)
    if cached is not None:
        return cached
    with contextlib.ExitStack() as stack:
        try:
            cache.mkdir(parents=True, exist_ok=True)
            stack.enter_context(cache_lock(str(path) + ".lock"))  # removed on release
        except OSError as err:
            warnings.warn(
                f"cannot write the deskew cache in {cache} ({err}); deskewing without caching",
                RuntimeWarning,
                stacklevel=3,
            )
            return _compute(data, progress)
        cached = _read_cache(path, shapes)  # another process may have written it meanwhile
        if cached is not None:
            return cached
        arrays = _compute(data, progress)
        try:
            _write_cache(path, arrays)
        except OSError as err:
            warnings.warn(
                f"cannot write the deskew cache {path} ({err}); it will be recomputed next time",
                RuntimeWarning,
                stacklevel=3,
            )
        return arrays


def _umask_mode() -> int:
    """The mode a plain ``open()`` gives a new file: ``0o666`` less the process umask."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def _write_cache(path: Path, arrays) -> None:
    """Writes ``(X_train, X_test)`` atomically: a temporary file renamed into place.

    ``mkstemp`` creates the file ``0o600``; it gets the umask's mode, as any file written with
    ``open()`` would, so a shared cache stays readable where the umask says so.
    """
    handle, partial = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    try:
        with os.fdopen(handle, "wb") as sink:
            np.savez(sink, X_train=arrays[0], X_test=arrays[1])
        os.chmod(partial, _umask_mode())
        os.replace(partial, path)
    finally:
        if os.path.exists(partial):
            os.unlink(partial)


def _compute(data: datasets.LoadedDataset, progress: bool):
    images = np.concatenate([data.train_images, data.test_images]).astype(np.float32) / 255
    out = deskew(images, progress=progress).reshape(images.shape[0], -1)
    n = data.train_images.shape[0]
    return out[:n], out[n:]


def _read_cache(path: Path, shapes):
    """The cached ``(X_train, X_test)`` if ``path`` holds them intact, else ``None``.

    Intact: both arrays of the expected shapes, float32, every value in ``[0, 1]`` (which
    excludes NaN and inf), as :func:`deskew` returns them.
    """
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = archive["X_train"], archive["X_test"]
    except (OSError, KeyError, ValueError, zipfile.BadZipFile, EOFError):
        return None
    if [a.shape for a in arrays] != shapes or any(a.dtype != np.float32 for a in arrays):
        return None
    if not all(a.size == 0 or (a.min() >= 0.0 and a.max() <= 1.0) for a in arrays):
        return None  # NaN fails both comparisons
    return arrays
