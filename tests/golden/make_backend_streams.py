"""Writes ``backend_streams.npz`` and ``checkpoint_v2_*.npz``: what gln-jax 0.1.0 computes.

``backend_streams.npz`` holds, for every backend and both float dtypes, the predictions and the
final weights of fixed streams through the public facades (Bernoulli ``GLN`` with a side
information transform, online ``predict(..., target)`` calls and a batched ``fit``; Gaussian
``GaussianGLN``). ``tests/test_backend_streams.py`` replays the streams and compares: bit for
bit on the machine fingerprint recorded here, within float64 tolerance on other machines (the
fused kernel is built for the host CPU, and BLAS kernels differ by CPU, so float32 bits are a
property of one machine).

The ``checkpoint_v2_*.npz`` files are checkpoints written by this release, kept so that every
later release proves it still loads them. Run from the repository root, on CPU::

    JAX_PLATFORMS=cpu python tests/golden/make_backend_streams.py

and record the versions it prints in ``tests/golden/README.md``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).parent
STREAMS = HERE / "backend_streams.npz"
BACKENDS = ("jax", "numpy", "pytorch", "tf")
GAUSSIAN_BACKENDS = ("jax", "numpy", "pytorch", "tf")
DTYPES = ("float32", "float64")


def data():
    """The fixed inputs (drawn once here and stored with the results)."""
    rng = np.random.default_rng(20261205)
    x = rng.uniform(0.05, 0.95, size=(160, 12))
    side = rng.normal(size=(160, 7)) * 2.0 + 0.5
    y = rng.integers(0, 3, size=160)
    xg = rng.normal(size=(120, 5))
    yg = np.sin(xg[:, 0]) + 0.3 * xg[:, 1] - 0.2 * xg[:, 2] ** 2
    return {"x": x, "side": side, "y": y, "xg": xg, "yg": yg}


def bernoulli_run(backend: str, dtype: str, d: dict) -> dict:
    """The Bernoulli stream: online calls, a batched fit, then predictions and the weights."""
    from gln_jax import GLN

    model = GLN(
        backend,
        [6, 5, 1],
        12,
        context_map_size=3,
        num_classes=3,
        learning_rate=2e-3,
        seed=4,
        dtype=dtype,
        side_info_size=7,
        side_info_transform="standardize",
    )
    x, side, y = d["x"].astype(dtype), d["side"].astype(dtype), d["y"]
    online = [
        model.predict(x[i : i + 5], y[i : i + 5], return_probs=True, side_info=side[i : i + 5])
        for i in range(0, 60, 5)
    ]
    fitted = model.fit(x[60:140], y[60:140], batch_size=4, side_info=side[60:140])
    model.fit(x[60:100], y[60:100], side_info=side[60:100])
    probs = model.predict(x[140:], return_probs=True, side_info=side[140:])
    out = {
        "online": np.concatenate([np.asarray(p) for p in online]),
        "fitted": np.asarray(fitted),
        "probs": np.asarray(probs),
    }
    state = model.reference_state()
    for i, layer in enumerate(state.layers):
        out[f"weights{i}"] = np.asarray(layer.weights)
    return out


def gaussian_run(backend: str, dtype: str, d: dict) -> dict:
    """The Gaussian stream: an online fit, batched calls, then means, stds and the weights."""
    from gln_jax import GaussianGLN

    model = GaussianGLN(
        backend, [5, 4], 5, context_map_size=2, learning_rate=0.02, seed=3, dtype=dtype
    )
    xg, yg = d["xg"].astype(dtype), d["yg"].astype(dtype)
    fitted = model.fit(xg[:80], yg[:80])
    batched = model.fit(xg[80:100], yg[80:100], batch_size=3)
    mean, std = model.predict(xg[100:], return_std=True)
    out = {
        "fitted": np.asarray(fitted),
        "batched": np.asarray(batched),
        "mean": np.asarray(mean),
        "std": np.asarray(std),
    }
    for i, layer in enumerate(model.reference_state().layers):
        out[f"weights{i}"] = np.asarray(layer.weights)
    return out


def fingerprint() -> str:
    """What the bits depend on: CPU features the kernel and BLAS dispatch on, and versions."""
    import platform

    import jax

    flags, vendor = "", ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("vendor_id") and not vendor:
                vendor = line.split(":", 1)[1].strip()
            if line.startswith("flags") and not flags:
                wanted = ("avx512f", "avx2", "fma", "sse4_2")
                flags = ",".join(f for f in wanted if f" {f}" in line)
    except OSError:
        pass
    versions = f"jax {jax.__version__}|numpy {np.__version__}"
    return f"{platform.machine()}|{vendor}|{flags}|{versions}"


def main() -> int:
    import jax

    jax.config.update("jax_enable_x64", True)
    d = data()
    arrays = {f"data/{k}": v for k, v in d.items()}
    for backend in BACKENDS:
        for dtype in DTYPES:
            for key, value in bernoulli_run(backend, dtype, d).items():
                arrays[f"bernoulli/{backend}/{dtype}/{key}"] = value
    for backend in GAUSSIAN_BACKENDS:
        for dtype in DTYPES:
            for key, value in gaussian_run(backend, dtype, d).items():
                arrays[f"gaussian/{backend}/{dtype}/{key}"] = value
    arrays["fingerprint"] = np.asarray(fingerprint())
    np.savez_compressed(STREAMS, **arrays)

    from gln_jax import GLN, GaussianGLN

    bern = GLN(
        "numpy",
        [4, 1],
        12,
        num_classes=3,
        seed=2,
        side_info_size=7,
        side_info_transform="center",
        learning_rate=3e-3,
    )
    bern.fit(d["x"][:50].astype("float32"), d["y"][:50], side_info=d["side"][:50].astype("float32"))
    bern.save(HERE / "checkpoint_v2_bernoulli.npz")
    gauss = GaussianGLN("numpy", [3], 5, seed=1)
    gauss.fit(d["xg"][:40].astype("float32"), d["yg"][:40].astype("float32"))
    gauss.save(HERE / "checkpoint_v2_gaussian.npz")
    expected = {
        "bernoulli": np.asarray(
            bern.predict(
                d["x"][50:60].astype("float32"),
                return_probs=True,
                side_info=d["side"][50:60].astype("float32"),
            )
        ),
        "gaussian_mean": np.asarray(gauss.predict(d["xg"][40:50].astype("float32"))),
    }
    np.savez_compressed(HERE / "checkpoint_v2_expected.npz", **expected)
    print(json.dumps({"fingerprint": fingerprint(), "python": sys.version.split()[0]}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
