"""IDX parsing, the checksum registry and the lookup order of ``gln_jax.data.datasets``.

Everything but the real-data checks runs on small IDX files generated here, registered under a
test-only dataset name (``monkeypatch.setitem`` on the registry, undone after each test).
"""

import gzip
import hashlib
import os
import re
import struct
from pathlib import Path

import numpy as np
import pytest

from gln_jax.data import datasets

MNIST_DIR = os.environ.get(datasets.ENV_DATA_DIR)  # read before the fixtures below unset it
FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")
# The project's shared MNIST copy carries a README.md listing the published checksums.
SHARED_README = Path(MNIST_DIR) / "README.md" if MNIST_DIR else None
NEEDS_MNIST = (
    f"needs real MNIST: set ${datasets.ENV_DATA_DIR} to a directory holding the four IDX files"
)
NEEDS_FASHION = (
    "needs Fashion-MNIST from Debian's dataset-fashion-mnist package "
    "(apt-get install dataset-fashion-mnist)"
)
_CODES = {"u1": 0x08, "i1": 0x09, "i2": 0x0B, "i4": 0x0C, "f4": 0x0D, "f8": 0x0E}


def idx_bytes(array: np.ndarray) -> bytes:
    """An IDX file's bytes, written independently of the parser under test."""
    array = np.asarray(array)
    code = _CODES[array.dtype.str[1:]]
    header = bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def tiny_arrays(seed: int = 0, n_train: int = 12, n_test: int = 6):
    rng = np.random.default_rng(seed)
    return (
        rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        rng.integers(0, 10, n_train, dtype=np.uint8),
        rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        rng.integers(0, 10, n_test, dtype=np.uint8),
    )


NAMES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)


def tiny_spec(name: str, arrays) -> datasets.DatasetSpec:
    files = [
        datasets.IDXFile(n, md5(idx_bytes(a)), a.shape) for n, a in zip(NAMES, arrays, strict=True)
    ]
    return datasets.DatasetSpec(name, *files, mirrors=("http://127.0.0.1:9/",), provenance="test")


def write_files(directory: Path, arrays, *, gz: bool = True) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for name, array in zip(NAMES, arrays, strict=True):
        data = idx_bytes(array)
        if gz:
            (directory / f"{name}.gz").write_bytes(gzip.compress(data))
        else:
            (directory / name).write_bytes(data)
    return directory


@pytest.fixture(autouse=True)
def isolated_env(tmp_path, monkeypatch):
    """No test sees the real cache, a data dir from the environment or a system folder."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv(datasets.ENV_DATA_DIR, raising=False)
    fashion = datasets.DATASETS["fashion"]
    monkeypatch.setitem(
        datasets.DATASETS, "fashion", fashion._replace(system_dir=str(tmp_path / "no-system"))
    )


@pytest.fixture
def tiny(monkeypatch):
    arrays = tiny_arrays()
    spec = tiny_spec("tiny", arrays)
    monkeypatch.setitem(datasets.DATASETS, "tiny", spec)
    return spec, arrays


# --- IDX format -----------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", ["u1", "i1", ">i2", ">i4", ">f4", ">f8"])
@pytest.mark.parametrize("shape", [(5,), (3, 4), (2, 3, 4)])
def test_parse_idx_round_trips_every_type(dtype, shape):
    rng = np.random.default_rng(1)
    array = (rng.normal(size=shape) * 50).astype(dtype)
    parsed = datasets.parse_idx(idx_bytes(array))
    assert parsed.shape == shape
    assert parsed.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(parsed, array)


def test_read_idx_reads_gzipped_and_raw_files_alike(tmp_path):
    array = tiny_arrays()[0]
    (tmp_path / "raw").write_bytes(idx_bytes(array))
    (tmp_path / "packed.gz").write_bytes(gzip.compress(idx_bytes(array)))
    np.testing.assert_array_equal(datasets.read_idx(tmp_path / "raw"), array)
    np.testing.assert_array_equal(datasets.read_idx(tmp_path / "packed.gz"), array)


@pytest.mark.parametrize(
    "header", [b"\x01\x00\x08\x01", b"\x00\x01\x08\x01", b"\x00\x00\x07\x01", b"\x00\x00\x08\x00"]
)
def test_wrong_magic_number_is_rejected(header):
    data = header + struct.pack(">I", 2) + b"\x01\x02"
    with pytest.raises(datasets.IDXError, match=f"bad magic number 0x{header.hex()}"):
        datasets.parse_idx(data, name="f.idx")


def test_truncated_files_are_rejected():
    data = idx_bytes(np.arange(24, dtype=np.uint8).reshape(2, 3, 4))
    with pytest.raises(datasets.IDXError, match=r"f\.idx: truncated IDX file, 39 bytes .*need 40"):
        datasets.parse_idx(data[:-1], name="f.idx")
    with pytest.raises(datasets.IDXError, match="truncated IDX header"):
        datasets.parse_idx(data[:10], name="f.idx")
    with pytest.raises(datasets.IDXError, match="shorter than a header"):
        datasets.parse_idx(data[:3], name="f.idx")


def test_trailing_bytes_and_wrong_dims_are_rejected(tmp_path):
    array = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    with pytest.raises(datasets.IDXError, match=r"1 bytes after the data of dims \(2, 3, 4\)"):
        datasets.parse_idx(idx_bytes(array) + b"\x00")
    path = tmp_path / "f.idx"
    path.write_bytes(idx_bytes(array))
    with pytest.raises(
        datasets.IDXError, match=r"wrong dims, holds \(2, 3, 4\), expected \(2, 12\)"
    ):
        datasets.read_idx(path, shape=(2, 12))


def test_truncated_gzip_is_an_idx_error(tmp_path):
    path = tmp_path / "f.gz"
    path.write_bytes(gzip.compress(idx_bytes(tiny_arrays()[0]))[:-20])
    with pytest.raises(datasets.IDXError, match="broken or truncated gzip"):
        datasets.read_idx(path)


def test_checksum_failure_names_the_file_and_both_digests(tmp_path):
    data = idx_bytes(tiny_arrays()[1])
    path = tmp_path / "labels.gz"
    path.write_bytes(gzip.compress(data))
    wrong = "0" * 32
    with pytest.raises(datasets.ChecksumError) as info:
        datasets.read_idx(path, md5=wrong)
    message = str(info.value)
    assert str(path) in message and wrong in message and md5(data) in message
    assert (info.value.expected, info.value.actual) == (wrong, md5(data))


# --- registry -------------------------------------------------------------------------------


def test_mnist_checksums_are_the_ones_published_in_the_shared_readme():
    if SHARED_README is None or not SHARED_README.is_file():
        pytest.skip(
            f"needs the checksum table of the project's MNIST copy: set ${datasets.ENV_DATA_DIR} "
            "to shared/data/mnist, whose README.md lists the published MD5s"
        )
    table = dict(
        re.findall(r"\| ([\w-]+)\.gz \| [^|]+ \| ([0-9a-f]{32}) \|", SHARED_README.read_text())
    )
    spec = datasets.DATASETS["mnist"]
    assert {f.name: f.md5 for f in spec.files} == table


def test_registry_rejects_a_duplicate_name(tiny):
    spec, _ = tiny
    with pytest.raises(ValueError, match="already registered"):
        datasets.register_dataset(spec)
    with pytest.raises(ValueError, match="unknown dataset 'nope'"):
        datasets.get_spec("nope")


@pytest.mark.skipif(not MNIST_DIR, reason=NEEDS_MNIST)
def test_real_mnist_verifies_and_has_the_published_label_counts():
    data = datasets.load_dataset("mnist", MNIST_DIR, download=False)
    assert data.train_images.shape == (60000, 28, 28) and data.train_images.dtype == np.uint8
    assert np.bincount(data.train_labels).tolist() == [
        5923,
        6742,
        5958,
        6131,
        5842,
        5421,
        5918,
        6265,
        5851,
        5949,
    ]
    assert np.bincount(data.test_labels).tolist() == [
        980,
        1135,
        1032,
        1010,
        982,
        892,
        958,
        1028,
        974,
        1009,
    ]


@pytest.mark.skipif(not FASHION_DIR.is_dir(), reason=NEEDS_FASHION)
def test_fashion_from_the_debian_package_verifies_and_is_balanced():
    data = datasets.load_dataset("fashion", FASHION_DIR, download=False)
    assert data.train_images.shape == (60000, 28, 28) and data.test_images.shape == (10000, 28, 28)
    assert np.bincount(data.train_labels).tolist() == [6000] * 10
    assert np.bincount(data.test_labels).tolist() == [1000] * 10
    assert all(p.parent == FASHION_DIR for p in data.paths)


@pytest.mark.skipif(
    not (MNIST_DIR and FASHION_DIR.is_dir()), reason=f"{NEEDS_MNIST}; {NEEDS_FASHION}"
)
def test_mnist_files_are_passed_over_when_looking_for_fashion(monkeypatch):
    monkeypatch.setenv(datasets.ENV_DATA_DIR, MNIST_DIR)
    data = datasets.load_dataset("fashion", FASHION_DIR, download=False)
    assert data.paths[0].parent == FASHION_DIR
    with pytest.raises(FileNotFoundError, match="fashion"):  # MNIST's files are not Fashion's
        datasets.load_dataset("fashion", download=False)


# --- lookup order ---------------------------------------------------------------------------


def test_user_cache_dir_follows_xdg_then_home(tmp_path, monkeypatch):
    assert datasets.user_cache_dir("mnist") == tmp_path / "xdg" / "gln_jax" / "datasets" / "mnist"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    home = tmp_path / "home" / ".cache" / "gln_jax"
    assert datasets.user_cache_dir("fashion") == home / "datasets" / "fashion"


def test_one_cache_root_for_datasets_and_the_kernel():
    from gln_jax.core.kernel import build

    root = datasets.user_cache_dir("mnist").parent.parent
    assert build.cache_dir().parent == root and root.name == "gln_jax"


def test_files_downloaded_by_the_earlier_cache_folder_are_still_found(tiny, tmp_path):
    spec, arrays = tiny
    assert datasets.legacy_cache_dir("tiny") not in datasets.search_dirs("tiny")  # not there
    legacy = write_files(tmp_path / "xdg" / "gln-jax" / "tiny", arrays)
    assert datasets.search_dirs("tiny")[-2:] == [legacy, datasets.user_cache_dir("tiny")]
    data = datasets.load_dataset("tiny", download=False)
    assert {p.parent for p in data.paths} == {legacy}
    assert not datasets.user_cache_dir("tiny").exists()  # read only: nothing copied or written


def test_lookup_order_is_argument_then_environment_then_cache(tiny, tmp_path, monkeypatch):
    spec, arrays = tiny
    argument = write_files(tmp_path / "arg", arrays)
    environment = write_files(tmp_path / "env", arrays, gz=False)
    cache = write_files(datasets.user_cache_dir("tiny"), arrays)
    monkeypatch.setenv(datasets.ENV_DATA_DIR, str(environment))

    def sources(**kwargs):
        data = datasets.load_dataset("tiny", download=False, **kwargs)
        for got, want in zip(data[:4], arrays, strict=True):
            np.testing.assert_array_equal(got, want)
        return {p.parent for p in data.paths}

    assert sources(data_dir=argument) == {argument}
    assert sources() == {environment}
    monkeypatch.delenv(datasets.ENV_DATA_DIR)
    assert sources() == {cache}
    (argument / f"{NAMES[0]}.gz").unlink()  # a file missing from data_dir comes from the cache
    data = datasets.load_dataset("tiny", argument, download=False)
    assert data.paths[0].parent == cache and data.paths[1].parent == argument


def test_the_system_folder_comes_after_the_environment_and_before_the_cache(
    tiny, tmp_path, monkeypatch
):
    spec, arrays = tiny
    system = write_files(tmp_path / "system", arrays)
    monkeypatch.setitem(datasets.DATASETS, "tiny", spec._replace(system_dir=str(system)))
    environment = write_files(tmp_path / "env", arrays, gz=False)
    write_files(datasets.user_cache_dir("tiny"), arrays)
    assert datasets.search_dirs("tiny")[-2:] == [system, datasets.user_cache_dir("tiny")]
    monkeypatch.setenv(datasets.ENV_DATA_DIR, str(environment))
    assert {p.parent for p in datasets.load_dataset("tiny", download=False).paths} == {environment}
    monkeypatch.delenv(datasets.ENV_DATA_DIR)
    assert {p.parent for p in datasets.load_dataset("tiny", download=False).paths} == {system}


def test_fashion_has_debians_folder_as_its_system_folder():
    assert datasets.FASHION_SYSTEM_DIR == "/usr/share/datasets/fashion-mnist"
    assert datasets.get_spec("mnist").system_dir is None


def test_a_missing_file_is_named_with_its_checksum(tiny, tmp_path):
    spec, arrays = tiny
    folder = write_files(tmp_path / "data", arrays)
    (folder / f"{NAMES[3]}.gz").unlink()
    with pytest.raises(FileNotFoundError) as info:
        datasets.load_dataset("tiny", folder, download=False)
    message = str(info.value)
    assert message.startswith(f"{NAMES[3]}[.gz] of dataset 'tiny' (MD5 {spec.test_labels.md5}")
    assert str(folder) in message


def test_another_datasets_files_are_named_when_the_download_fails(tiny, tmp_path, monkeypatch):
    spec, arrays = tiny
    other = tiny_arrays(seed=1)
    monkeypatch.setitem(datasets.DATASETS, "other", tiny_spec("other", other))
    folder = write_files(tmp_path / "data", other)
    nowhere = (tmp_path / "no-mirror").as_uri() + "/"
    with pytest.raises(datasets.DownloadError) as info:
        datasets.load_dataset("tiny", folder, mirrors=(nowhere,), retries=0, progress=False)
    error = info.value
    assert error.file == spec.train_images and error.dataset == "tiny"
    note = f"{folder / NAMES[0]}.gz holds dataset 'other''s {NAMES[0]}"
    assert error.passed_over and error.passed_over[0].startswith(note)
    assert note in str(error) and spec.train_images.md5 in str(error)


def test_an_unknown_checksum_names_the_file_the_digest_and_the_dataset(tiny, tmp_path):
    spec, arrays = tiny
    folder = write_files(tmp_path / "data", tiny_arrays(seed=2))
    with pytest.raises(datasets.ChecksumError) as info:
        datasets.load_dataset("tiny", folder, download=False)
    message = str(info.value)
    assert f"{folder / NAMES[0]}.gz" in message and spec.train_images.md5 in message
    assert "not dataset 'tiny''s train-images-idx3-ubyte" in message


def test_a_root_directory_with_one_folder_per_dataset_is_searched(tiny, tmp_path, monkeypatch):
    _, arrays = tiny
    write_files(tmp_path / "root" / "tiny", arrays)
    monkeypatch.setenv(datasets.ENV_DATA_DIR, str(tmp_path / "root"))
    data = datasets.load_dataset("tiny", download=False)
    assert {p.parent for p in data.paths} == {tmp_path / "root" / "tiny"}


def test_missing_files_without_download_list_the_searched_dirs(tiny, tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="train-images-idx3-ubyte.*download=False") as info:
        datasets.load_dataset("tiny", tmp_path / "empty", download=False)
    assert str(tmp_path / "empty") in str(info.value)
    assert str(datasets.user_cache_dir("tiny")) in str(info.value)


def test_a_data_dir_that_does_not_exist_is_an_error(tiny, tmp_path, monkeypatch):
    with pytest.raises(FileNotFoundError, match="data_dir .*nowhere"):
        datasets.load_dataset("tiny", tmp_path / "nowhere")
    monkeypatch.setenv(datasets.ENV_DATA_DIR, str(tmp_path / "nowhere"))
    with pytest.raises(FileNotFoundError, match="GLN_JAX_DATA_DIR .*nowhere"):
        datasets.load_dataset("tiny")


def test_a_corrupt_file_is_an_error_not_a_fallthrough(tiny, tmp_path):
    spec, arrays = tiny
    argument = write_files(tmp_path / "arg", arrays)
    write_files(datasets.user_cache_dir("tiny"), arrays)
    broken = arrays[1].copy()
    broken[0] ^= 1
    (argument / f"{NAMES[1]}.gz").write_bytes(gzip.compress(idx_bytes(broken)))
    with pytest.raises(datasets.ChecksumError, match=re.escape(str(argument / NAMES[1]))) as info:
        datasets.load_dataset("tiny", argument, download=False)
    assert info.value.expected == spec.train_labels.md5
    assert info.value.actual == md5(idx_bytes(broken))


@pytest.mark.parametrize("damage", ["wrong content", "broken gzip"])
def test_a_corrupt_cached_file_offline_names_it_and_says_to_delete_it(tiny, damage):
    _, arrays = tiny
    cache = write_files(datasets.user_cache_dir("tiny"), arrays)
    bad = cache / f"{NAMES[3]}.gz"
    packed = gzip.compress(idx_bytes(arrays[3]))
    bad.write_bytes(
        gzip.compress(idx_bytes(arrays[3][:-1])) if damage == "wrong content" else packed[:-9]
    )
    before = bad.read_bytes()
    error = datasets.ChecksumError if damage == "wrong content" else datasets.IDXError
    with pytest.raises(error) as info:
        datasets.load_dataset("tiny", download=False)
    assert f"delete {bad} (or pass download=True) to download it again" in str(info.value)
    assert bad.read_bytes() == before  # offline, nothing is touched


def test_a_sibling_datasets_file_is_passed_over(tiny, tmp_path, monkeypatch):
    _, arrays = tiny
    other = tiny_arrays(seed=7)
    monkeypatch.setitem(datasets.DATASETS, "tiny2", tiny_spec("tiny2", other))
    monkeypatch.setenv(datasets.ENV_DATA_DIR, str(write_files(tmp_path / "other", other)))
    cache = write_files(datasets.user_cache_dir("tiny"), arrays)
    data = datasets.load_dataset("tiny", download=False)
    assert {p.parent for p in data.paths} == {cache}
    np.testing.assert_array_equal(data.train_images, arrays[0])


def test_wrong_dims_in_a_registered_file_are_reported(tiny, tmp_path, monkeypatch):
    _, arrays = tiny
    flat = [arrays[0].reshape(12, 784), *arrays[1:]]
    spec = tiny_spec("tiny", flat)._replace(
        train_images=datasets.IDXFile(NAMES[0], md5(idx_bytes(flat[0])), (12, 28, 28))
    )
    monkeypatch.setitem(datasets.DATASETS, "tiny", spec)
    write_files(tmp_path / "arg", flat)
    with pytest.raises(
        datasets.IDXError, match=r"wrong dims, holds \(12, 784\), expected \(12, 28, 28\)"
    ):
        datasets.load_dataset("tiny", tmp_path / "arg", download=False)
