"""README-level accuracy on MNIST, and thresholds that tell a GLN from less.

Slow tests (select with ``-m slow``) run the README's protocols on canonical deskewed MNIST:
one pass, ``[4, 4, 1]``, mean of three seeds, with the documented defaults and with the
original code's settings (:mod:`gln_jax.tools.accuracy`). Every threshold lies between what
the GLN reaches and what two degenerate models reach, and the degenerate models are tested to
fall below it:

- no gating, ``context_map_size=0``: one weight vector per neuron, a stack of geometric
  mixtures that ignores the side information;
- one neuron per class, ``layer_sizes=[1]``: a single geometric mixture of the pixels.

Measured on the shared 2-core machine (jax 0.10.2, CPU) with ``accuracy.digit3_readme_loop`` and
``accuracy.ten_class_evaluate`` (``layer_sizes=(1,)`` or ``context_map_size=0`` passed through),
accuracy in %, seeds 0, 1, 2 (the GLN's figures are the README table's; dflt.: documented
defaults, orig.: the original code's settings):

| task, settings | GLN [4, 4, 1]            | no gating                | one neuron per class     |
|----------------|--------------------------|--------------------------|--------------------------|
| digit 3, dflt. | 98.68 98.49 98.30: 98.49 | 97.68 (every seed)       | 98.38 97.96 98.06: 98.13 |
| digit 3, orig. | 98.65 98.77 98.78: 98.73 | 96.44 (every seed)       | 97.87 97.30 97.50: 97.56 |
| 10 cl., dflt.  | 94.53 94.92 94.79: 94.75 | 93.57 93.86 94.19: 93.87 | 93.70 94.05 94.12: 93.96 |
| 10 cl., orig.  | 95.15 95.10 95.38: 95.21 | 86.48 91.18 90.58: 89.41 | 89.81 89.46 89.84: 89.70 |

Without gating the digit-3 loop does not depend on the seed (fixed data order, no hyperplanes).
The margins at the documented defaults are small (about 0.2 points for digit 3, 0.4 for ten
classes): one pass at ``learning_rate=1e-4`` leaves the gated model only a little ahead, so the
degenerate models are run with all three seeds there and with seed 0 where the gap is wide.

The default suite has a cheap sibling: a 5,000-example slice of raw MNIST (10 classes, the
original settings, where gating matters most early on), measured the same way.
"""

import os
import statistics

import numpy as np
import pytest

from gln_jax.api import backends
from gln_jax.tools import accuracy

MNIST_DIR = os.environ.get("GLN_JAX_DATA_DIR")
needs_mnist = pytest.mark.skipif(
    not MNIST_DIR,
    reason="needs real MNIST: set GLN_JAX_DATA_DIR to a directory holding the IDX files",
)
SEEDS = (0, 1, 2)
#: Mean accuracy (%) over ``SEEDS`` that the GLN reaches and the degenerate models do not.
THRESHOLDS = {
    ("digit3", "defaults"): 98.3,
    ("digit3", "original"): 98.4,
    ("10class", "defaults"): 94.4,
    ("10class", "original"): 94.9,
}
DEGENERATE = {
    "no_gating": {"context_map_size": 0},
    "one_neuron_per_class": {"layer_sizes": (1,)},
}
#: Seeds of the degenerate runs: all three where the margin is small, one where it is wide.
DEGENERATE_SEEDS = {"defaults": SEEDS, "original": (0,)}
PROTOCOLS = {
    "digit3": lambda data, **kw: accuracy.digit3_readme_loop(data, **kw)[0],
    "10class": accuracy.ten_class_evaluate,
}


@pytest.fixture(scope="module")
def mnist():
    from gln_jax import utils

    return utils.get_mnist(progress=False)


@pytest.mark.slow
@needs_mnist
@pytest.mark.parametrize(("protocol", "settings"), sorted(THRESHOLDS))
def test_the_gln_reaches_the_threshold(mnist, protocol, settings):
    runs = [PROTOCOLS[protocol](mnist, seed=seed, **accuracy.SETTINGS[settings]) for seed in SEEDS]
    assert statistics.mean(runs) >= THRESHOLDS[protocol, settings], runs


@pytest.mark.slow
@needs_mnist
@pytest.mark.parametrize("variant", sorted(DEGENERATE))
@pytest.mark.parametrize(("protocol", "settings"), sorted(THRESHOLDS))
def test_degenerate_models_fall_below_the_threshold(mnist, protocol, settings, variant):
    runs = [
        PROTOCOLS[protocol](mnist, seed=seed, **accuracy.SETTINGS[settings], **DEGENERATE[variant])
        for seed in DEGENERATE_SEEDS[settings]
    ]
    assert statistics.mean(runs) < THRESHOLDS[protocol, settings], runs


def _installed(name):
    try:
        backends.make_engine(name, None)
    except ImportError:
        return False
    except Exception:  # noqa: BLE001 - constructing with no config may fail after the import
        return True
    return True


@pytest.mark.slow
@needs_mnist
@pytest.mark.parametrize("backend", backends.canonical_names()[1:])
def test_digit3_every_backend_agrees_with_the_reference(mnist, backend):
    if not _installed(backend):  # a failure in CI (tests/conftest.py)
        extra = backends.get_backend(backend).extra
        pytest.skip(f"backend {backend!r} is not installed: pip install 'gln-jax[{extra}]'")
    reference, ref_preds = accuracy.digit3_readme_loop(mnist, seed=0)
    value, preds = accuracy.digit3_readme_loop(mnist, backend=backend, seed=0)
    assert value == reference >= THRESHOLDS["digit3", "defaults"]
    # The README: "Digit-3 test predictions shared by jax, numpy, pytorch, tf: 10,000 of 10,000".
    assert preds.shape == ref_preds.shape == (10000,)
    np.testing.assert_array_equal(preds, ref_preds)


# --- the default-suite sibling: a 5,000-example slice -----------------------------------------

#: Measured with :func:`slice_accuracy` (seeds 0, 1, 2): GLN 87.45, 87.90, 85.20; no gating
#: 71.25 (every seed: without gating the seed changes nothing); one neuron per class 70.55,
#: 72.25, 69.00. The test runs seed 0 only.
SLICE_THRESHOLD = 80.0


def _slice(data):
    """Indices of the slice: 5,000 training and 2,000 test examples, ``default_rng(0)``."""
    rng = np.random.default_rng(0)
    return rng.permutation(len(data[0]))[:5000], rng.permutation(len(data[2]))[:2000]


def slice_accuracy(data, seed: int = 0, layer_sizes=(4, 4, 1), **settings) -> float:
    """10 classes, original settings, ``fit`` at batch 4 on 5,000 shuffled training examples,
    tested on 2,000 shuffled test examples (shuffled with ``default_rng(0)``); in %."""
    from gln_jax import GLN

    X_train, y_train, X_test, y_test = data
    train, test = _slice(data)
    model = GLN(
        "jax",
        list(layer_sizes),
        X_train.shape[1],
        num_classes=10,
        seed=seed,
        **dict(accuracy.SETTINGS["original"], **settings),
    )
    model.fit(X_train[train], y_train[train], batch_size=4)
    return 100.0 * float(np.mean(model.predict(X_test[test]) == y_test[test]))


@pytest.mark.heavy
@needs_mnist
def test_a_slice_tells_a_gln_from_degenerate_models():
    from gln_jax import utils

    data = utils.get_mnist(False, MNIST_DIR, progress=False)
    gln = slice_accuracy(data)
    degenerate = {name: slice_accuracy(data, **kwargs) for name, kwargs in DEGENERATE.items()}
    assert gln >= SLICE_THRESHOLD, gln
    assert all(value < SLICE_THRESHOLD for value in degenerate.values()), degenerate
    y_test = data[3][_slice(data)[1]]
    majority = 100.0 * np.mean(y_test == np.bincount(y_test).argmax())
    assert min(degenerate.values()) > majority + 40.0  # the baselines themselves learn


# --- what the tool records and renders (no training: the recipe pass is replaced) ------------


def test_recipe_runs_record_throughput_and_peak_memory(monkeypatch):
    from gln_jax import utils

    rng = np.random.default_rng(0)
    data = (rng.uniform(size=(300, 4)), np.zeros(300, int), rng.uniform(size=(20, 4)), None)
    monkeypatch.setattr(utils, "get_mnist", lambda *args, **kwargs: data)
    monkeypatch.setattr(accuracy, "recipe_fit", lambda data, **kwargs: (91.5, 2.5))
    (run,) = accuracy.measure(["recipe"], ["recipe"], [4], ["jax"])["runs"]
    assert run["accuracy"] == 91.5 and run["pass_seconds"] == 2.5 and run["seed"] == 4
    assert run["train_examples"] == 300 and run["samples_per_second"] == 120.0
    assert 10.0 < run["peak_rss_mib"] == pytest.approx(accuracy.peak_rss_mib(), abs=64.0)


def test_render_shows_throughput_and_memory_where_recorded():
    common = {"dataset": "mnist", "deskewed": True, "backend": "jax"}
    runs = [
        {**common, "protocol": "recipe", "settings": "recipe", "seed": 0, "accuracy": 96.0},
        {**common, "protocol": "recipe", "settings": "recipe", "seed": 1, "accuracy": 97.0},
        {**common, "protocol": "10class", "settings": "defaults", "seed": 0, "accuracy": 94.0},
    ]
    runs[1].update(pass_seconds=500.0, samples_per_second=120.0, peak_rss_mib=1500.4)
    lines = accuracy.render({"runs": runs, "agreement": []}).splitlines()
    assert lines[0].endswith("| training pass (examples/s) | peak RSS (MiB) |")
    recipe, defaults = lines[2].split(" | "), lines[3].split(" | ")
    assert recipe[4:] == [
        "96.50",
        "96.00 (seed 0), 97.00 (seed 1, pass 500 s)",
        "120 (seed 1)",
        "1,500 (seed 1) |",
    ]
    assert defaults[-2:] == ["", " |"]
