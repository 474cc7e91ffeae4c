"""Datasets: the MNIST-family loaders, the dataset registry, and the IDX file format.

:func:`get_mnist` returns flat float32 arrays in ``[0, 1]`` (deskewed by default, through a
checksum-keyed user cache). Files are looked up, one by one, in the ``data_dir`` argument,
then ``$GLN_JAX_DATA_DIR``, then the dataset's system folder, then the user cache
(``$XDG_CACHE_HOME/gln_jax/datasets/<dataset>``, beside the fused kernel's), and downloaded into
that cache from public mirrors when missing; every file is verified against
the MD5 of its uncompressed content. A new dataset is one :class:`DatasetSpec` passed to
:func:`register_dataset`; :func:`get_mnist` (``dataset=...``) and the command line then find
it.

Example:
    >>> from gln_jax import datasets
    >>> X_train, y_train, X_test, y_test = datasets.get_mnist()  # doctest: +SKIP
    >>> sorted(datasets.DATASETS)[:2]
    ['fashion', 'mnist']

This module re-exports :mod:`gln_jax.data.datasets`, :mod:`gln_jax.data.mnist` and
:mod:`gln_jax.data.deskew`.
"""

from gln_jax.data.datasets import DATASETS as DATASETS
from gln_jax.data.datasets import DEFAULT_BACKOFF as DEFAULT_BACKOFF
from gln_jax.data.datasets import DEFAULT_DEADLINE as DEFAULT_DEADLINE
from gln_jax.data.datasets import DEFAULT_RETRIES as DEFAULT_RETRIES
from gln_jax.data.datasets import DEFAULT_TIMEOUT as DEFAULT_TIMEOUT
from gln_jax.data.datasets import ENV_DATA_DIR as ENV_DATA_DIR
from gln_jax.data.datasets import ChecksumError as ChecksumError
from gln_jax.data.datasets import DatasetSpec as DatasetSpec
from gln_jax.data.datasets import DownloadError as DownloadError
from gln_jax.data.datasets import IDXError as IDXError
from gln_jax.data.datasets import IDXFile as IDXFile
from gln_jax.data.datasets import LoadedDataset as LoadedDataset
from gln_jax.data.datasets import content_md5 as content_md5
from gln_jax.data.datasets import decompress as decompress
from gln_jax.data.datasets import download_file as download_file
from gln_jax.data.datasets import find_file as find_file
from gln_jax.data.datasets import get_spec as get_spec
from gln_jax.data.datasets import load_dataset as load_dataset
from gln_jax.data.datasets import max_stored_size as max_stored_size
from gln_jax.data.datasets import parse_idx as parse_idx
from gln_jax.data.datasets import read_content as read_content
from gln_jax.data.datasets import read_idx as read_idx
from gln_jax.data.datasets import register_dataset as register_dataset
from gln_jax.data.datasets import search_dirs as search_dirs
from gln_jax.data.datasets import user_cache_dir as user_cache_dir
from gln_jax.data.deskew import deskew as deskew
from gln_jax.data.mnist import get_mnist as get_mnist

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
    "deskew",
    "download_file",
    "find_file",
    "get_mnist",
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
