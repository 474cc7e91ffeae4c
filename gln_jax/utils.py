"""User helpers in the spirit of the original pygln utilities: MNIST loading and evaluation.

``get_mnist`` returns the arrays of the original README flow; ``deskew`` straightens slanted
digits with the moment-based shear of the original utilities; ``evaluate_mnist`` trains a model
online through ``model.predict(batch, target=...)`` and reports its test accuracy.

Importing this module stays cheap: SciPy, tqdm and filelock are imported where they are used.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import warnings
import zipfile
from pathlib import Path

import numpy as np

from gln_jax import datasets

DESKEW_VERSION = 1  # part of the cache key: bump it whenever deskew's output changes


def deskew(images, *, progress: bool = False) -> np.ndarray:
    """Straightens images by the shear that makes their second-order moments upright.

    Per image, with row coordinate ``r`` and column coordinate ``c`` weighted by intensity:
    centre of mass ``mu``, ``alpha = cov(r, c) / var(r)``, ``affine = [[1, 0], [alpha, 1]]`` and
    ``offset = mu - affine @ (shape / 2)``; ``scipy.ndimage.affine_transform`` (cubic spline,
    zero outside) resamples the image, which is then clipped into ``[0, 1]``. The result is
    upright and centred on the image's centre. The moments of the whole batch are computed at
    once; only the resampling loops over images. Blank images are returned unchanged.

    Args:
        images: ``[N, H, W]`` (or one ``[H, W]``) intensities in ``[0, 1]``.
        progress: show a tqdm progress bar.

    Returns:
        float32 array of the same shape, in ``[0, 1]``.

    Example:
        >>> straight = deskew(X_train.reshape(-1, 28, 28)).reshape(-1, 784)  # doctest: +SKIP
    """
    from scipy import ndimage
    from tqdm import tqdm

    x = np.asarray(images, dtype=np.float64)
    single = x.ndim == 2
    if single:
        x = x[None]
    if x.ndim != 3:
        raise ValueError(f"images must have shape [N, H, W] or [H, W], got {x.shape}")
    matrices, offsets, blank = _shear_parameters(x)
    out = np.empty(x.shape, np.float32)
    for n in tqdm(range(x.shape[0]), desc="deskew", unit="img", disable=not progress):
        if blank[n]:
            out[n] = x[n]
        else:
            ndimage.affine_transform(x[n], matrices[n], offset=offsets[n], output=out[n])
    np.clip(out, 0.0, 1.0, out=out)
    return out[0] if single else out


def _shear_parameters(x: np.ndarray):
    """Vectorised moments: ``[N, 2, 2]`` matrices, ``[N, 2]`` offsets, ``[N]`` blank flags."""
    _, height, width = x.shape
    rows = np.arange(height, dtype=np.float64)
    cols = np.arange(width, dtype=np.float64)
    row_mass, col_mass = x.sum(axis=2), x.sum(axis=1)  # [N, H], [N, W]
    mass = row_mass.sum(axis=1)
    blank = mass <= 0
    mass = np.where(blank, 1.0, mass)
    mu_r, mu_c = row_mass @ rows / mass, col_mass @ cols / mass
    d_r, d_c = rows[None, :] - mu_r[:, None], cols[None, :] - mu_c[:, None]
    var_r = (row_mass * d_r**2).sum(axis=1) / mass
    cov = np.einsum("nhw,nh,nw->n", x, d_r, d_c) / mass
    alpha = np.where(var_r > 0, cov / np.where(var_r > 0, var_r, 1.0), 0.0)
    matrices = np.zeros((x.shape[0], 2, 2))
    matrices[:, 0, 0] = matrices[:, 1, 1] = 1.0
    matrices[:, 1, 0] = alpha
    centre = np.array([height / 2.0, width / 2.0])
    offsets = np.stack([mu_r, mu_c], axis=1) - matrices @ centre
    return matrices, offsets, blank


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
    progress: bool = True,
):
    """MNIST (or Fashion-MNIST) as flat float32 arrays, deskewed by default.

    The four IDX files are looked up in ``data_dir``, then ``$GLN_JAX_DATA_DIR``, then the user
    cache (downloaded there when missing) and verified against their canonical checksums; see
    :mod:`gln_jax.datasets`. Deskewed images are cached as ``.npz`` in the user cache, keyed
    by the dataset and its checksums, so only the first call pays for deskewing; nothing is
    ever written into a data directory.

    Args:
        deskewed: apply :func:`deskew` to every image.
        data_dir: directory holding the IDX files (``.gz`` or not); may be read-only.
        dataset: ``"mnist"`` or ``"fashion"`` (any name in ``datasets.DATASETS``).
        cache_dir: use this directory instead of the user cache (downloads and deskewed arrays).
        download: download missing files (else ``FileNotFoundError``).
        mirrors: base URLs replacing the dataset's default mirrors.
        timeout: seconds per blocking socket operation while downloading.
        retries: extra attempts per mirror after a transient failure.
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
    try:
        from filelock import FileLock

        cache.mkdir(parents=True, exist_ok=True)
        lock = FileLock(str(path) + ".lock")
        lock.acquire()
    except OSError as err:
        warnings.warn(
            f"cannot write the deskew cache in {cache} ({err}); deskewing without caching",
            RuntimeWarning,
            stacklevel=3,
        )
        return _compute(data, progress)
    try:
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
    finally:
        lock.release()


def _write_cache(path: Path, arrays) -> None:
    """Writes ``(X_train, X_test)`` atomically: a temporary file renamed into place."""
    handle, partial = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    try:
        with os.fdopen(handle, "wb") as sink:
            np.savez(sink, X_train=arrays[0], X_test=arrays[1])
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
    """The cached ``(X_train, X_test)`` if ``path`` holds them intact, else ``None``."""
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = archive["X_train"], archive["X_test"]
    except (OSError, KeyError, ValueError, zipfile.BadZipFile, EOFError):
        return None
    if [a.shape for a in arrays] != shapes or any(a.dtype != np.float32 for a in arrays):
        return None
    return arrays


def _num_classes(model) -> int | None:
    config = getattr(model, "config", None)
    value = getattr(config, "num_classes", None) or getattr(model, "num_classes", None)
    return None if value is None else int(value)


def _positive_int(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return int(value)


def evaluate_mnist(
    model,
    deskewed: bool = True,
    batch_size: int = 1,
    num_epochs: int = 1,
    mnist_class: int | None = None,
    seed: int = 0,
    dataset: str = "mnist",
    data_dir=None,
    *,
    data=None,
    limit=None,
    progress: bool = True,
):
    """Trains ``model`` online on (shuffled) MNIST, then reports its test accuracy.

    Train and test sets are shuffled once with ``np.random.default_rng(seed)``. Each epoch
    feeds the training set through ``model.predict(batch, target=...)`` in batches, then
    predicts the test set in batches, with tqdm progress bars.

    Args:
        model: a :class:`~gln_jax.GLN` (or anything with the same ``predict``); binary when
            ``mnist_class`` is given, else with one class per label.
        deskewed: use deskewed images (see :func:`get_mnist`).
        batch_size: examples per ``predict`` call, positive.
        num_epochs: passes over the training set, positive.
        mnist_class: if given, a binary task, "is it digit ``mnist_class``?".
        seed: seed of the shuffling generator.
        dataset: ``"mnist"`` or ``"fashion"``.
        data_dir: where the IDX files are (see :func:`get_mnist`).
        data: pre-loaded ``(X_train [N, D], y_train [N], X_test [M, D], y_test [M])`` used
            instead of :func:`get_mnist` (``deskewed``, ``dataset`` and ``data_dir`` are then
            ignored).
        limit: keep only the first ``limit`` shuffled training and test examples, or
            ``(train_limit, test_limit)``; ``None`` keeps all.
        progress: show tqdm progress bars.

    Returns:
        Test accuracy in percent (a float), or a list of one accuracy per epoch when
        ``num_epochs > 1``.

    Example:
        >>> model = GLN("jax", [4, 4, 1], 784)  # doctest: +SKIP
        >>> evaluate_mnist(model, mnist_class=3, batch_size=4)  # doctest: +SKIP
        98.6
    """
    from tqdm import tqdm

    batch_size = _positive_int("batch_size", batch_size)
    num_epochs = _positive_int("num_epochs", num_epochs)
    if data is None:
        data = get_mnist(deskewed, data_dir, dataset, progress=progress)
    X_train, y_train, X_test, y_test = (np.asarray(a) for a in data)
    if len(X_train) != len(y_train) or len(X_test) != len(y_test):
        raise ValueError("data: inputs and labels must have the same number of examples")
    num_labels = int(max(y_train.max(), y_test.max())) + 1
    _check_model(model, X_train.shape[1], num_labels, mnist_class)

    train_limit, test_limit = _limits(limit)
    rng = np.random.default_rng(seed)
    train_order, test_order = rng.permutation(len(X_train)), rng.permutation(len(X_test))
    train_order, test_order = train_order[:train_limit], test_order[:test_limit]
    X_train, y_train = X_train[train_order], y_train[train_order]
    X_test, y_test = X_test[test_order], y_test[test_order]
    if mnist_class is not None:
        y_train, y_test = y_train == mnist_class, y_test == mnist_class

    accuracies = []
    for epoch in range(num_epochs):
        desc = f"train {epoch + 1}/{num_epochs}" if num_epochs > 1 else "train"
        for start in tqdm(range(0, len(X_train), batch_size), desc=desc, disable=not progress):
            model.predict(
                X_train[start : start + batch_size], target=y_train[start : start + batch_size]
            )
        predictions = [
            np.reshape(model.predict(X_test[start : start + batch_size]), -1)
            for start in tqdm(range(0, len(X_test), batch_size), desc="test", disable=not progress)
        ]
        accuracies.append(float(100.0 * np.mean(np.concatenate(predictions) == y_test)))
    return accuracies if num_epochs > 1 else accuracies[0]


def _limits(limit) -> tuple[int | None, int | None]:
    """``limit`` as ``(train_limit, test_limit)``, each ``None`` or a positive int."""
    pair = tuple(limit) if isinstance(limit, (tuple, list)) else (limit, limit)
    if len(pair) != 2:
        raise ValueError(f"limit must be an int or a (train, test) pair, got {limit!r}")
    return tuple(None if value is None else _positive_int("limit", value) for value in pair)


def _check_model(model, input_size: int, num_labels: int, mnist_class) -> None:
    """Clear errors for a model that cannot learn the requested task."""
    config = getattr(model, "config", None)
    model_input = getattr(config, "input_size", None)
    if model_input is not None and model_input != input_size:
        raise ValueError(f"the model takes {model_input} inputs, the data has {input_size}")
    num_classes = _num_classes(model)
    if mnist_class is not None:
        if isinstance(mnist_class, bool) or not isinstance(mnist_class, (int, np.integer)):
            raise TypeError(f"mnist_class must be an int label, got {mnist_class!r}")
        if not 0 <= mnist_class < num_labels:
            raise ValueError(f"mnist_class must be in [0, {num_labels}), got {mnist_class}")
        if num_classes is not None and num_classes != 2:
            raise ValueError(
                f"mnist_class={mnist_class} is a binary task ('{mnist_class} or not'), but the "
                f"model has num_classes={num_classes}; build it with num_classes=2"
            )
    elif num_classes is not None and num_classes < num_labels:
        hint = "; pass mnist_class=k for a binary 'k or not' task" if num_classes == 2 else ""
        raise ValueError(
            f"the data has {num_labels} classes but the model has num_classes={num_classes}" + hint
        )
