"""Datasets: a registry of canonical checksums and mirrors, and where files are looked up.

The file format lives in :mod:`gln_jax.data.idx`, downloading in :mod:`gln_jax.data.download`; their
public names are re-exported here.

A dataset is four IDX files (train/test images and labels), plain or gzip-compressed. Every file
is verified against the MD5 of its *uncompressed* content, so any gzip wrapping of the same
bytes is accepted and anything else is refused. Files are looked up, one by one, in

1. the ``data_dir`` argument (the directory itself, then ``data_dir/<dataset>``),
2. ``$GLN_JAX_DATA_DIR`` (the same two places),
3. the dataset's system folder (:attr:`DatasetSpec.system_dir`), where a distribution's package
   installs it: ``/usr/share/datasets/fashion-mnist`` for Debian's ``dataset-fashion-mnist``,
4. the user cache, ``$XDG_CACHE_HOME/gln_jax/datasets/<dataset>`` (default
   ``~/.cache/gln_jax/datasets/<dataset>``; the folder the fused kernel's cache shares), and
   ``$XDG_CACHE_HOME/gln-jax/<dataset>`` where an earlier release downloaded it (read only),

and a file found nowhere is downloaded into the user cache from a list of public mirrors.
Downloads go to a temporary file that is renamed into place only once its uncompressed content
verifies, under a lock file, so neither a partial download nor a concurrent one is ever seen;
each is capped at the size its file can take and bounded by an overall deadline. Files are
inflated as a stream with a cap at their expected size, so a gzip bomb costs nothing. A copy
in the download cache that fails to verify is downloaded again (``download=True``) or named in
the error with the advice to delete it. Data directories are only read, never written.

Only the standard library, NumPy and ``filelock`` are used; nothing here needs a network unless
a file is missing.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import NamedTuple

import numpy as np

from gln_jax._cache import cache_root
from gln_jax.data.download import (
    DEFAULT_BACKOFF,
    DEFAULT_DEADLINE,
    DEFAULT_RETRIES,
    DEFAULT_TIMEOUT,
    ENV_DATA_DIR,
    DownloadError,
    download_file,
)
from gln_jax.data.idx import (
    ChecksumError,
    IDXError,
    IDXFile,
    content_md5,
    decompress,
    find_file,
    max_stored_size,
    parse_idx,
    read_content,
    read_idx,
)

__all__ = [
    "DATASETS",
    "DEFAULT_BACKOFF",
    "DEFAULT_DEADLINE",
    "DEFAULT_RETRIES",
    "DEFAULT_TIMEOUT",
    "ENV_DATA_DIR",
    "ChecksumError",
    "DatasetSpec",
    "DownloadError",
    "IDXError",
    "IDXFile",
    "LoadedDataset",
    "content_md5",
    "decompress",
    "download_file",
    "find_file",
    "get_spec",
    "load_dataset",
    "max_stored_size",
    "parse_idx",
    "read_content",
    "read_idx",
    "register_dataset",
    "search_dirs",
    "user_cache_dir",
]


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
        system_dir: folder where an operating-system package installs the files, searched
            after ``$GLN_JAX_DATA_DIR`` and before the user cache; ``None`` when there is none.
    """

    name: str
    train_images: IDXFile
    train_labels: IDXFile
    test_images: IDXFile
    test_labels: IDXFile
    mirrors: tuple[str, ...]
    provenance: str
    system_dir: str | None = None

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
#: Where Debian's ``dataset-fashion-mnist`` package (``apt-get install dataset-fashion-mnist``)
#: installs the four ``.gz`` files.
FASHION_SYSTEM_DIR = "/usr/share/datasets/fashion-mnist"

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
        system_dir=FASHION_SYSTEM_DIR,
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


# --- lookup ---------------------------------------------------------------------------------


def user_cache_dir(dataset: str) -> Path:
    """``$XDG_CACHE_HOME/gln_jax/datasets/<dataset>`` (default ``~/.cache/gln_jax/...``)."""
    return cache_root() / "datasets" / dataset


def legacy_cache_dir(dataset: str) -> Path:
    """``$XDG_CACHE_HOME/gln-jax/<dataset>``, where gln-jax 0.1 downloaded datasets (read only)."""
    return cache_root().parent / "gln-jax" / dataset


def search_dirs(dataset: str, data_dir=None, cache_dir=None) -> list[Path]:
    """The directories searched for ``dataset``'s files, in order.

    Args:
        dataset: registry name.
        data_dir: optional directory given by the caller; it must exist.
        cache_dir: the cache to use instead of :func:`user_cache_dir`.

    Returns:
        ``[data_dir, data_dir/<dataset>, $GLN_JAX_DATA_DIR, $GLN_JAX_DATA_DIR/<dataset>,
        system_dir, legacy cache, cache]`` without the ones not given or, for the legacy
        cache (``legacy_cache_dir``), not there (the system folder is the dataset's
        :attr:`DatasetSpec.system_dir`, when it has one); the last one is the download cache.
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
    spec = DATASETS.get(dataset)
    if spec is not None and spec.system_dir:
        dirs.append(Path(spec.system_dir))
    if cache_dir is not None:
        dirs.append(Path(cache_dir).expanduser())
        return dirs
    legacy = legacy_cache_dir(dataset)
    if legacy.is_dir():
        dirs.append(legacy)
    dirs.append(user_cache_dir(dataset))
    return dirs


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
    deadline: float | None = DEFAULT_DEADLINE,
    progress: bool = True,
) -> LoadedDataset:
    """Finds (downloading if needed), verifies and parses the four files of a dataset.

    A file whose content is another registered dataset's file of the same name (MNIST found
    while looking for Fashion-MNIST) is passed over; a copy in the download cache that fails
    to verify is downloaded again when ``download`` is true; any other mismatch is an error.

    Args:
        dataset: registry name, ``"mnist"`` or ``"fashion"``.
        data_dir: optional directory searched first (see :func:`search_dirs`).
        cache_dir: download cache instead of :func:`user_cache_dir`.
        download: download missing files; else a missing file is ``FileNotFoundError``.
        mirrors: base URLs replacing the dataset's default mirrors.
        timeout: seconds per blocking socket operation.
        retries: extra attempts per mirror after a transient failure.
        backoff: seconds before the first retry, doubled for each further one.
        deadline: seconds for each file's download, every mirror and retry together.
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
        array, path, passed_over = _load_file(spec, file, dirs, download)
        if array is None:
            where = _not_found(spec, file, dirs, passed_over)
            if not download:
                raise FileNotFoundError(f"{where}, and download=False")
            try:
                path = download_file(
                    file,
                    dirs[-1],
                    spec.mirrors if mirrors is None else mirrors,
                    timeout=timeout,
                    retries=retries,
                    backoff=backoff,
                    deadline=deadline,
                    progress=progress,
                )
            except DownloadError as err:
                error = DownloadError(f"{err}\n{where}")
                error.file, error.dataset, error.passed_over = file, dataset, passed_over
                raise error from err
            array = read_idx(path, md5=file.md5, shape=file.shape)
        arrays.append(array)
        md5s.append(file.md5)
        paths.append(path)
    if arrays[0].shape[0] != arrays[1].shape[0] or arrays[2].shape[0] != arrays[3].shape[0]:
        raise IDXError(f"{dataset}: images and labels disagree in length")
    return LoadedDataset(*arrays, md5s=tuple(md5s), paths=tuple(paths))


def _not_found(spec: DatasetSpec, file: IDXFile, dirs: list[Path], passed_over: list[str]) -> str:
    """Which file was looked for, with which checksum, where, and which copies were passed over."""
    where = (
        f"{file.name}[.gz] of dataset {spec.name!r} (MD5 {file.md5} uncompressed) not found in "
        f"{', '.join(map(str, dirs))}"
    )
    return where + "".join(f"; {note}" for note in passed_over)


def _load_file(spec: DatasetSpec, file: IDXFile, dirs: list[Path], download: bool):
    """``(array, path, passed_over)``: the first verified copy of ``file`` in ``dirs``.

    ``array`` and ``path`` are ``None`` when there is none, and also when the copy in the
    download cache (``dirs[-1]``) fails to verify and ``download`` is true:
    :func:`download_file` then replaces it. ``passed_over`` says which copies held another
    registered dataset's file of the same name.
    """
    passed_over = []
    for directory in dirs:
        path = find_file(directory, file.name)
        if path is None:
            continue
        in_cache = directory == dirs[-1]
        hint = f"delete {path} (or pass download=True) to download it again" if in_cache else ""
        try:
            data = read_content(path, max_size=file.size)
        except IDXError as err:
            if in_cache and download:
                return None, None, passed_over
            raise IDXError(f"{err}; {hint}" if hint else str(err)) from err
        digest = content_md5(data)
        if digest != file.md5:
            owner = _owner(file, digest, spec.name)
            if owner is not None:  # a sibling dataset's file (MNIST where Fashion was looked for)
                passed_over.append(
                    f"{path} holds dataset {owner!r}'s {file.name} (MD5 {digest}), "
                    f"not {spec.name!r}'s"
                )
                continue
            if in_cache and download:
                return None, None, passed_over
            raise ChecksumError(
                path, file.md5, digest, hint or f"it is not dataset {spec.name!r}'s {file.name}"
            )
        array = parse_idx(data, name=str(path))
        if array.shape != tuple(file.shape):
            raise IDXError(f"{path}: wrong dims, holds {array.shape}, expected {file.shape}")
        return array, path, passed_over
    return None, None, passed_over
