"""The facades compute what gln-jax 0.1.0 computed: fixed streams through every backend.

``tests/golden/backend_streams.npz`` stores the predictions and final weights of fixed streams
(``tests/golden/make_backend_streams.py``): a Bernoulli ``GLN`` with side information and its
online standardiser, trained by ``predict(..., target)`` calls and by batched and online
``fit``; a ``GaussianGLN`` trained by online and batched ``fit``. On the machine the file was
written on (same CPU features, JAX and NumPy) every array must be equal bit for bit, in float32
and float64. On another machine the fused kernel and BLAS sum in another order, so float64
arrays must agree within 1e-9 relative (these streams are short and their rates low, so rounding
differences stay near float64's epsilon) and float32 ones within 1e-4.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
from frameworks import require

GOLDEN = Path(__file__).parent / "golden"
_spec = importlib.util.spec_from_file_location(
    "make_backend_streams", GOLDEN / "make_backend_streams.py"
)
streams = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(streams)

STORED = np.load(GOLDEN / "backend_streams.npz")
SAME_MACHINE = str(STORED["fingerprint"]) == streams.fingerprint()
DATA = {k.split("/", 1)[1]: STORED[k] for k in STORED.files if k.startswith("data/")}


def _compare(prefix: str, got: dict, dtype: str) -> None:
    expected = {k[len(prefix) :]: STORED[k] for k in STORED.files if k.startswith(prefix)}
    assert sorted(got) == sorted(expected)
    for key, value in got.items():
        assert value.dtype == expected[key].dtype, key
        if SAME_MACHINE:
            np.testing.assert_array_equal(value, expected[key], err_msg=f"{prefix}{key}")
        elif dtype == "float64":
            np.testing.assert_allclose(value, expected[key], rtol=1e-9, atol=1e-12, err_msg=key)
        else:
            np.testing.assert_allclose(value, expected[key], rtol=1e-4, atol=1e-5, err_msg=key)


@pytest.mark.heavy
@pytest.mark.parametrize("dtype", streams.DTYPES)
@pytest.mark.parametrize("backend", streams.BACKENDS)
def test_bernoulli_stream_unchanged(backend, dtype, x64):
    require(backend)
    _compare(f"bernoulli/{backend}/{dtype}/", streams.bernoulli_run(backend, dtype, DATA), dtype)


@pytest.mark.heavy
@pytest.mark.parametrize("dtype", streams.DTYPES)
@pytest.mark.parametrize("backend", streams.GAUSSIAN_BACKENDS)
def test_gaussian_stream_unchanged(backend, dtype, x64):
    require(backend)
    _compare(f"gaussian/{backend}/{dtype}/", streams.gaussian_run(backend, dtype, DATA), dtype)


def test_release_checkpoints_still_load():
    """Checkpoints written by gln-jax 0.1.0 (format version 2) load and predict as they did."""
    require("pytorch", "tf")
    from gln_jax import GLN, GaussianGLN

    expected = np.load(GOLDEN / "checkpoint_v2_expected.npz")
    x, side = DATA["x"][50:60].astype("float32"), DATA["side"][50:60].astype("float32")
    for backend in streams.BACKENDS:
        model = GLN.load(GOLDEN / "checkpoint_v2_bernoulli.npz", backend)
        probs = np.asarray(model.predict(x, return_probs=True, side_info=side))
        np.testing.assert_allclose(probs, expected["bernoulli"], rtol=1e-6, atol=1e-7)
        gauss = GaussianGLN.load(GOLDEN / "checkpoint_v2_gaussian.npz", backend)
        mean = np.asarray(gauss.predict(DATA["xg"][40:50].astype("float32")))
        np.testing.assert_allclose(mean, expected["gaussian_mean"], rtol=1e-6, atol=1e-7)
