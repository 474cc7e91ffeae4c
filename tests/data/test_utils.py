"""``gln_jax.utils``: deskewing, the deskew cache, ``get_mnist`` and ``evaluate_mnist``.

Real-MNIST checks use ``$GLN_JAX_DATA_DIR`` when it is set (CI points it at the shared copy) and
are skipped otherwise; checks that deskew all 70k images are marked ``slow``.
"""

import gzip
import hashlib
import os
import stat
import struct
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from scipy import ndimage

from gln_jax import GLN, utils
from gln_jax.data import datasets
from gln_jax.data import mnist as mnist_loader

MNIST_DIR = os.environ.get(datasets.ENV_DATA_DIR)  # read before the fixtures below unset it
needs_mnist = pytest.mark.skipif(
    not MNIST_DIR,
    reason=f"needs real MNIST: set ${datasets.ENV_DATA_DIR} to a directory holding the IDX files",
)
NAMES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)


def idx_bytes(array: np.ndarray) -> bytes:
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(np.uint8).tobytes()


def reference_deskew(image: np.ndarray) -> np.ndarray:
    """The moment-based shear written plainly, one image at a time: the oracle for ``deskew``."""
    rows, cols = np.mgrid[: image.shape[0], : image.shape[1]]
    total = image.sum()
    mu = np.array([(rows * image).sum(), (cols * image).sum()]) / total
    var_rows = ((rows - mu[0]) ** 2 * image).sum() / total
    cov = ((rows - mu[0]) * (cols - mu[1]) * image).sum() / total
    affine = np.array([[1.0, 0.0], [cov / var_rows, 1.0]])
    offset = mu - affine @ (np.array(image.shape) / 2.0)
    return np.clip(ndimage.affine_transform(image, affine, offset=offset), 0.0, 1.0)


def row_centres(image: np.ndarray):
    """Rows holding ink and the intensity-weighted column centre of each."""
    mass = image.sum(axis=1)
    rows = np.flatnonzero(mass > 0.5)
    return rows, (image[rows] @ np.arange(image.shape[1])) / mass[rows]


def slanted_bar(slope: float) -> np.ndarray:
    """A bar 3 pixels wide from row 4 to row 23 whose centre moves ``slope`` columns per row."""
    image = np.zeros((28, 28))
    cols = np.arange(28)
    for r in range(4, 24):
        centre = 13.5 + slope * (r - 13.5)
        image[r] = np.clip(2.0 - np.abs(cols - centre), 0.0, 1.0)
    return image


@pytest.fixture(autouse=True)
def isolated_env(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv(datasets.ENV_DATA_DIR, raising=False)


@pytest.fixture
def tiny(tmp_path, monkeypatch):
    """A registered 28x28 dataset (10 train, 5 test) in a read-only data dir."""
    rng = np.random.default_rng(0)
    images = np.stack([slanted_bar(s) for s in rng.uniform(-0.6, 0.6, 15)])
    images = (images * 255).astype(np.uint8)
    labels = rng.integers(0, 10, 15, dtype=np.uint8)
    arrays = (images[:10], labels[:10], images[10:], labels[10:])
    files = [
        datasets.IDXFile(n, hashlib.md5(idx_bytes(a)).hexdigest(), a.shape)
        for n, a in zip(NAMES, arrays, strict=True)
    ]
    spec = datasets.DatasetSpec("tiny", *files, mirrors=("http://127.0.0.1:9/",), provenance="t")
    monkeypatch.setitem(datasets.DATASETS, "tiny", spec)
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    for name, array in zip(NAMES, arrays, strict=True):
        (data_dir / f"{name}.gz").write_bytes(gzip.compress(idx_bytes(array)))
    data_dir.chmod(stat.S_IRUSR | stat.S_IXUSR)
    yield SimpleNamespace(arrays=arrays, data_dir=data_dir, listing=sorted(os.listdir(data_dir)))
    data_dir.chmod(stat.S_IRWXU)


@pytest.fixture
def count_deskew(monkeypatch):
    calls = []
    original = utils.deskew

    def counting(images, **kwargs):
        calls.append(len(images))
        return original(images, **kwargs)

    monkeypatch.setattr(mnist_loader, "deskew", counting)
    return calls


# --- deskew ---------------------------------------------------------------------------------


def test_deskew_makes_a_slanted_bar_upright_and_centred():
    bar = slanted_bar(0.5)
    rows, centres = row_centres(bar)
    assert np.polyfit(rows, centres, 1)[0] == pytest.approx(0.5, abs=0.01)
    assert np.ptp(centres) > 9.0
    straight = utils.deskew(bar)
    assert straight.dtype == np.float32 and straight.shape == (28, 28)
    rows, centres = row_centres(straight)
    assert len(rows) >= 18
    assert abs(np.polyfit(rows, centres, 1)[0]) < 0.02
    assert np.ptp(centres[1:-1]) < 0.15  # the obliquely cut ends resample a little unevenly
    mass = straight.sum()
    centre = [(straight.sum(1) @ np.arange(28)) / mass, (straight.sum(0) @ np.arange(28)) / mass]
    np.testing.assert_allclose(centre, [14.0, 14.0], atol=0.3)
    assert straight.max() > 0.9  # the bar is moved, not smeared away


def test_deskew_matches_the_per_image_reference():
    rng = np.random.default_rng(3)
    images = np.stack([slanted_bar(s) for s in rng.uniform(-0.8, 0.8, 6)])
    images = np.concatenate([images, rng.uniform(0, 1, (4, 28, 28)) ** 4])
    got = utils.deskew(images)
    assert got.shape == images.shape and got.dtype == np.float32
    assert got.min() >= 0.0 and got.max() <= 1.0
    for image, result in zip(images, got, strict=True):
        np.testing.assert_allclose(result, reference_deskew(image), atol=1e-6)


@needs_mnist
def test_deskew_matches_the_reference_on_real_digits():
    images = datasets.load_dataset("mnist", MNIST_DIR, download=False).test_images[:300] / 255.0
    got = utils.deskew(images)
    expected = np.stack([reference_deskew(image) for image in images])
    np.testing.assert_allclose(got, expected, atol=1e-6)


def test_deskew_keeps_blank_images_and_checks_shapes():
    images = np.zeros((2, 28, 28))
    images[1] = slanted_bar(0.3)
    got = utils.deskew(images)
    np.testing.assert_array_equal(got[0], 0.0)
    assert np.isfinite(got).all()
    with pytest.raises(ValueError, match=r"\[N, H, W\]"):
        utils.deskew(np.zeros(784))


# --- get_mnist and its cache ----------------------------------------------------------------


def test_get_mnist_scales_to_float32_and_flattens(tiny):
    X_train, y_train, X_test, y_test = utils.get_mnist(False, tiny.data_dir, "tiny")
    assert X_train.shape == (10, 784) and X_test.shape == (5, 784)
    assert X_train.dtype == X_test.dtype == np.float32 and y_train.dtype == np.int64
    np.testing.assert_array_equal(X_test, tiny.arrays[2].reshape(5, 784) / np.float32(255))
    np.testing.assert_array_equal(y_train, tiny.arrays[1])


def test_deskewed_arrays_are_cached_outside_the_data_dir(tiny, count_deskew):
    first = utils.get_mnist(True, tiny.data_dir, "tiny", progress=False)
    assert count_deskew == [15]
    cache = datasets.user_cache_dir("tiny")
    cached = sorted(p.name for p in cache.glob("deskewed-*.npz"))
    assert len(cached) == 1 and not list(cache.glob("*.part"))
    second = utils.get_mnist(True, tiny.data_dir, "tiny", progress=False)
    assert count_deskew == [15]  # served by the cache
    for a, b in zip(first, second, strict=True):
        np.testing.assert_array_equal(a, b)
    assert sorted(os.listdir(tiny.data_dir)) == tiny.listing
    expected = utils.deskew(tiny.arrays[0].astype(np.float32) / 255).reshape(10, 784)
    np.testing.assert_array_equal(first[0], expected)


@pytest.mark.parametrize(("umask", "mode"), [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_the_deskew_cache_file_honours_the_umask(tiny, umask, mode):
    previous = os.umask(umask)
    try:
        utils.get_mnist(True, tiny.data_dir, "tiny", progress=False)
    finally:
        os.umask(previous)
    (cached,) = datasets.user_cache_dir("tiny").glob("deskewed-*.npz")
    assert stat.S_IMODE(cached.stat().st_mode) == mode


def test_the_deskew_cache_is_keyed_by_the_data(tiny, count_deskew, tmp_path, monkeypatch):
    utils.get_mnist(True, tiny.data_dir, "tiny", progress=False)
    changed = tiny.arrays[3].copy()
    changed[0] = (changed[0] + 1) % 10
    spec = datasets.DATASETS["tiny"]
    other = tmp_path / "other"
    other.mkdir()
    for name, array in zip(NAMES, (*tiny.arrays[:3], changed), strict=True):
        (other / f"{name}.gz").write_bytes(gzip.compress(idx_bytes(array)))
    new_labels = spec.test_labels._replace(md5=hashlib.md5(idx_bytes(changed)).hexdigest())
    monkeypatch.setitem(datasets.DATASETS, "tiny", spec._replace(test_labels=new_labels))
    utils.get_mnist(True, other, "tiny", progress=False)
    assert count_deskew == [15, 15]
    assert len(list(datasets.user_cache_dir("tiny").glob("deskewed-*.npz"))) == 2


def test_a_corrupt_cache_file_is_recomputed(tiny, count_deskew):
    first = utils.get_mnist(True, tiny.data_dir, "tiny", progress=False)
    (path,) = datasets.user_cache_dir("tiny").glob("deskewed-*.npz")
    path.write_bytes(b"not an npz")
    second = utils.get_mnist(True, tiny.data_dir, "tiny", progress=False)
    assert count_deskew == [15, 15]
    np.testing.assert_array_equal(first[2], second[2])
    utils.get_mnist(True, tiny.data_dir, "tiny", progress=False)
    assert count_deskew == [15, 15]  # and rewritten intact


@pytest.mark.parametrize("poison", [np.nan, 7.0, -0.5, np.inf])
def test_a_cache_with_values_outside_0_1_is_rebuilt(tiny, count_deskew, poison):
    first = utils.get_mnist(True, tiny.data_dir, "tiny", progress=False)
    cache = datasets.user_cache_dir("tiny")
    (path,) = cache.glob("deskewed-*.npz")
    with np.load(path) as archive:
        X_train, X_test = archive["X_train"].copy(), archive["X_test"]
    X_train[3, 400] = poison  # right shapes and dtype, impossible value
    with open(path, "wb") as handle:
        np.savez(handle, X_train=X_train, X_test=X_test)
    second = utils.get_mnist(True, tiny.data_dir, "tiny", progress=False)
    assert count_deskew == [15, 15]
    np.testing.assert_array_equal(second[0], first[0])
    assert 0.0 <= second[0].min() and second[0].max() <= 1.0
    utils.get_mnist(True, tiny.data_dir, "tiny", progress=False)
    assert count_deskew == [15, 15]  # and rewritten intact
    assert sorted(p.name for p in cache.iterdir()) == [path.name]  # no lock file left


def test_an_unwritable_cache_warns_and_still_returns(tiny, tmp_path):
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where the cache directory should be")
    with pytest.warns(RuntimeWarning, match="cannot write the deskew cache"):
        X_train, *_ = utils.get_mnist(
            True, tiny.data_dir, "tiny", cache_dir=blocker / "cache", progress=False
        )
    assert X_train.shape == (10, 784)


def test_a_failed_cache_write_warns_and_leaves_no_partial_file(tiny, count_deskew, monkeypatch):
    def full_disk(path, arrays):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(mnist_loader, "_write_cache", full_disk)
    with pytest.warns(RuntimeWarning, match="No space left on device"):
        X_train, *_ = utils.get_mnist(True, tiny.data_dir, "tiny", progress=False)
    assert X_train.shape == (10, 784) and count_deskew == [15]
    cache = datasets.user_cache_dir("tiny")
    assert list(cache.iterdir()) == []  # neither a partial file nor a lock file


def test_importing_the_utilities_stays_cheap():
    code = (
        "import sys, gln_jax.utils, gln_jax.data.datasets; "
        "print(sorted(m for m in ('scipy.ndimage', 'tqdm') if m in sys.modules))"
    )
    root = Path(__file__).resolve().parents[2]
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        env=dict(os.environ, PYTHONPATH=str(root)),
        check=True,
    )
    assert out.stdout.strip() == "[]"


# --- evaluate_mnist -------------------------------------------------------------------------


class Recorder:
    """A stand-in model that records what it is fed and always predicts ``answer``."""

    def __init__(self, num_classes: int, answer=0, input_size: int = 3):
        self.config = SimpleNamespace(num_classes=num_classes, input_size=input_size)
        self.answer, self.train, self.targets, self.test = answer, [], [], []

    def predict(self, input, target=None, return_probs=False):
        if target is None:
            self.test.append(np.array(input))
        else:
            self.train.append(np.array(input))
            self.targets.append(np.array(target))
        return np.full(len(input), self.answer)


def indexed_data(n_train: int = 23, n_test: int = 11):
    """Examples whose first feature is their index; labels ``index % 10``."""
    rng = np.random.default_rng(5)
    X_train = np.zeros((n_train, 3), np.float32)
    X_train[:, 0] = np.arange(n_train)
    X_test = np.zeros((n_test, 3), np.float32)
    X_test[:, 0] = np.arange(n_test)
    return X_train, np.arange(n_train) % 10, X_test, rng.permutation(np.arange(n_test) % 10)


def test_evaluate_mnist_shuffles_with_the_seed_and_batches_every_epoch():
    data = indexed_data()
    model = Recorder(num_classes=10)
    accuracies = utils.evaluate_mnist(
        model, batch_size=5, num_epochs=2, seed=42, data=data, progress=False
    )
    rng = np.random.default_rng(42)
    train_order, test_order = rng.permutation(23), rng.permutation(11)
    assert [len(batch) for batch in model.train] == [5, 5, 5, 5, 3] * 2
    seen = np.concatenate([batch[:, 0] for batch in model.train])
    np.testing.assert_array_equal(seen, np.tile(train_order, 2))
    np.testing.assert_array_equal(np.concatenate(model.targets), np.tile(train_order % 10, 2))
    np.testing.assert_array_equal(np.concatenate(model.test)[:11, 0], test_order)
    expected = 100.0 * np.mean(data[3][test_order] == 0)
    assert accuracies == [pytest.approx(expected)] * 2


def test_evaluate_mnist_progress_bars_count_examples(monkeypatch):
    bars = []

    class Bar:
        def __init__(self, iterable=None, *, total=None, desc=None, disable=False, **kwargs):
            assert iterable is None, "a bar over batches counts batches"
            self.desc, self.total, self.count = desc, total, 0
            bars.append(self)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def update(self, n=1):
            self.count += n

    monkeypatch.setattr("tqdm.tqdm", Bar)
    utils.evaluate_mnist(Recorder(num_classes=10), batch_size=5, data=indexed_data())
    assert [(b.desc, b.total, b.count) for b in bars] == [("train", 23, 23), ("test", 11, 11)]


def test_evaluate_mnist_binary_task_and_limit():
    data = indexed_data()
    model = Recorder(num_classes=2, answer=False)
    accuracy = utils.evaluate_mnist(
        model, batch_size=4, mnist_class=3, seed=1, data=data, limit=(9, 7), progress=False
    )
    rng = np.random.default_rng(1)
    train_order, test_order = rng.permutation(23)[:9], rng.permutation(11)[:7]
    targets = np.concatenate(model.targets)
    assert targets.dtype == bool
    np.testing.assert_array_equal(targets, train_order % 10 == 3)
    assert sum(len(b) for b in model.test) == 7
    assert isinstance(accuracy, float)
    assert accuracy == pytest.approx(100.0 * np.mean(data[3][test_order] != 3))


def test_evaluate_mnist_rejects_a_model_that_does_not_fit_the_task():
    data = indexed_data()
    with pytest.raises(ValueError, match="binary task.*num_classes=10.*num_classes=2"):
        utils.evaluate_mnist(Recorder(10), mnist_class=3, data=data, progress=False)
    with pytest.raises(ValueError, match="num_classes=2; pass mnist_class"):
        utils.evaluate_mnist(Recorder(2), data=data, progress=False)
    with pytest.raises(ValueError, match="takes 784 inputs, the data has 3"):
        utils.evaluate_mnist(Recorder(10, input_size=784), data=data, progress=False)
    with pytest.raises(ValueError, match=r"mnist_class must be in \[0, 10\)"):
        utils.evaluate_mnist(Recorder(2), mnist_class=10, data=data, progress=False)
    with pytest.raises(ValueError, match="batch_size must be a positive int"):
        utils.evaluate_mnist(Recorder(10), batch_size=0, data=data, progress=False)
    with pytest.raises(ValueError, match="limit must be a positive int"):
        utils.evaluate_mnist(Recorder(10), limit=(5, -1), data=data, progress=False)
    with pytest.raises(ValueError, match=r"limit must be an int or a \(train, test\) pair"):
        utils.evaluate_mnist(Recorder(10), limit=(1, 2, 3), data=data, progress=False)


@pytest.mark.heavy
@needs_mnist
def test_evaluate_mnist_learns_on_a_slice_of_real_mnist():
    data = utils.get_mnist(False, MNIST_DIR, progress=False)
    model = GLN("jax", [4, 4, 1], 784, num_classes=10, learning_rate=1e-3)
    accuracy = utils.evaluate_mnist(
        model, batch_size=10, data=data, limit=(1000, 500), progress=False
    )
    # Measured (seed 0): GLN 69.0%, one neuron per class (layer_sizes=[1]) 49.6%, majority
    # class about 11%. No gating (context_map_size=0) reaches 68.4% on 1,000 examples: that
    # gating matters is tested in tests/tools/test_accuracy.py, on more data.
    assert accuracy > 60.0
    binary = GLN("jax", [4, 4, 1], 784, learning_rate=1e-3)
    accuracy = utils.evaluate_mnist(
        binary, batch_size=10, mnist_class=3, data=data, limit=(1000, 500), progress=False
    )
    rng = np.random.default_rng(0)  # evaluate_mnist's draws: train order, then test order
    rng.permutation(60000)
    majority = 100.0 * np.mean(data[3][rng.permutation(10000)[:500]] != 3)
    assert accuracy > majority + 2.0  # better than always answering "not 3"


# --- the full dataset (slow) ----------------------------------------------------------------


@pytest.mark.slow
@needs_mnist
def test_full_mnist_deskews_once_and_the_readme_flow_runs(count_deskew, monkeypatch):
    from gln_jax import GLN as ReadmeGLN  # the README's imports
    from gln_jax import utils as readme_utils

    monkeypatch.setenv(datasets.ENV_DATA_DIR, MNIST_DIR)
    start = time.perf_counter()
    X_train, y_train, X_test, y_test = readme_utils.get_mnist(progress=False)
    cold = time.perf_counter() - start
    start = time.perf_counter()
    again = readme_utils.get_mnist(progress=False)
    warm = time.perf_counter() - start
    assert count_deskew == [70000]
    assert warm < cold / 3, (cold, warm)
    np.testing.assert_array_equal(again[0], X_train)
    assert X_train.shape == (60000, 784) and X_test.shape == (10000, 784)
    assert X_train.dtype == np.float32 and 0.0 <= X_train.min() and X_train.max() <= 1.0
    np.testing.assert_allclose(
        X_test[:50].reshape(-1, 28, 28),
        np.stack(
            [
                reference_deskew(image)
                for image in datasets.load_dataset("mnist", download=False).test_images[:50] / 255.0
            ]
        ),
        atol=1e-6,
    )
    model_3 = ReadmeGLN(backend="jax", layer_sizes=[4, 4, 1], input_size=X_train.shape[1])
    for n in range(0, 2000, 10):
        model_3.predict(X_train[n : n + 10], target=y_train[n : n + 10] == 3)
    preds = np.concatenate([model_3.predict(X_test[n : n + 100]) for n in range(0, 1000, 100)])
    # Measured: 0.961; always "not 3" scores 0.893, one neuron (layer_sizes=[1]) 0.946. No
    # gating scores 0.966 after 2,000 examples (tests/tools/test_accuracy.py tests gating).
    majority = np.mean(y_test[:1000] != 3)
    accuracy = np.mean(preds == (y_test[:1000] == 3))
    assert accuracy > max(0.955, majority + 0.05), (accuracy, majority)
