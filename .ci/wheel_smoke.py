"""Smoke test of an installed gln-jax wheel, run by ``.ci/check_wheel.sh`` with the Python of a
fresh virtual environment, from a folder outside the checkout (which must not be importable).

Usage: ``python wheel_smoke.py CHECKOUT`` with ``$GLN_JAX_DATA_DIR`` naming the MNIST IDX files.
It checks what a user of the wheel meets first: the package and the NumPy port import from the
environment; the fused kernel's C++ sources shipped (and, where a compiler is found, it builds);
a 10-class model learns 2,000 MNIST examples well above chance; a checkpoint round trip gives
identical predictions, and the NumPy port reads it.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

TRAIN, TEST = 2000, 1000
MIN_ACCURACY = 0.6  # chance is 0.1; the model reaches about 0.8 here


def inside(path: str | Path, folder: str | Path) -> bool:
    """Whether ``path`` lies in ``folder`` (both resolved)."""
    return Path(folder).resolve() in Path(path).resolve().parents


def check_origin(checkout: Path) -> None:
    """The packages come from this environment, never from the checkout."""
    import gln_numpy

    import gln_jax

    for module in (gln_jax, gln_numpy):
        print(f"{module.__name__} {getattr(module, '__version__', '')} from {module.__file__}")
        assert inside(module.__file__, sys.prefix), f"{module.__file__} is outside {sys.prefix}"
        assert not inside(module.__file__, checkout), f"{module.__file__} is in the checkout"
    for name in ("gln_torch", "gln_tf", "gln_common"):  # found, not imported (no torch or tf)
        spec = importlib.util.find_spec(name)
        assert spec is not None and inside(spec.origin, sys.prefix), f"{name} is not installed"


def check_kernel() -> None:
    """The kernel's sources shipped; where a compiler exists the kernel must build and load."""
    from gln_jax.core import kernel
    from gln_jax.core.kernel import build

    shipped = sorted(Path(build.__file__).parent.glob("*.[ch]*"))
    print("kernel sources shipped:", ", ".join(p.name for p in shipped))
    for path in (*build.SOURCES, *getattr(build, "HEADERS", ())):
        assert path.is_file(), f"the wheel lacks the kernel source {path.name} (package-data)"

    reasons: list[str] = []  # the debug record that says why the kernel is not used

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            reasons.append(record.getMessage())

    logger = logging.getLogger("gln_jax.kernel")
    logger.addHandler(Keep())
    logger.setLevel(logging.DEBUG)
    start = time.perf_counter()
    available = kernel.available()
    print(f"kernel.available(): {available} ({time.perf_counter() - start:.1f} s, build or load)")
    for reason in reasons:
        print("  gln_jax.kernel:", reason)
    if hasattr(kernel, "status"):
        print("kernel.status():", kernel.status())
    try:
        compiler = build.find_compiler()
    except build.BuildError as err:
        compiler = None
        print(f"no C++ compiler ({err}): the pure-JAX path is expected")
    if compiler and kernel.enabled():
        assert available, f"{compiler} is here but the kernel did not build: {reasons}"


def check_model(data_dir: str) -> None:
    """Fit, accuracy, checkpoint round trip, and the NumPy port on the same checkpoint."""
    import gln_numpy

    from gln_jax import GLN
    from gln_jax.utils import get_mnist

    X_train, y_train, X_test, y_test = get_mnist(
        deskewed=False, data_dir=data_dir, download=False, progress=False
    )
    assert X_train.dtype == np.float32 and 0.0 <= X_train.min() and X_train.max() <= 1.0
    X_train, y_train = X_train[:TRAIN], y_train[:TRAIN]
    X_test, y_test = X_test[:TEST], y_test[:TEST]

    model = GLN("jax", [4, 4, 1], 784, num_classes=10)
    start = time.perf_counter()
    model.fit(X_train, y_train)
    fit_seconds = time.perf_counter() - start
    predictions = model.predict(X_test)
    accuracy = float(np.mean(predictions == y_test))
    print(
        f"GLN('jax', [4, 4, 1], 784, num_classes=10): fit on {TRAIN} MNIST examples in "
        f"{fit_seconds:.1f} s, test accuracy {accuracy:.4f} on {TEST}"
    )
    assert accuracy > MIN_ACCURACY, f"accuracy {accuracy} is not clearly above chance"

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "model.npz"
        model.save(path)
        loaded = GLN.load(path)
        probs = model.predict(X_test, return_probs=True)
        assert np.array_equal(loaded.predict(X_test, return_probs=True), probs)
        assert np.array_equal(loaded.predict(X_test), predictions)
        print(f"checkpoint round trip: {path.stat().st_size} bytes, identical predictions")

        port = gln_numpy.GLN.load(path)
        port_probs = np.asarray(port.predict(X_test[:1], return_probs=True))
        np.testing.assert_allclose(port_probs, probs[:1], rtol=1e-4, atol=1e-6)
        print(
            f"gln_numpy.GLN.load: class {int(port.predict(X_test[:1])[0])} for the first test "
            f"example (label {int(y_test[0])}), probabilities as JAX's within 1e-4"
        )


def main() -> None:
    checkout = Path(sys.argv[1])
    data_dir = os.environ["GLN_JAX_DATA_DIR"]
    assert not inside(os.getcwd(), checkout) and Path.cwd() != checkout.resolve(), (
        "run from outside the checkout"
    )
    print(f"python {sys.version.split()[0]} at {sys.executable}; c++: {shutil.which('c++')}")
    check_origin(checkout)
    check_kernel()
    check_model(data_dir)
    print("wheel smoke test passed")


if __name__ == "__main__":
    main()
