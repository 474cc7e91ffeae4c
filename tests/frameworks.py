"""Skips for tests that need an optional framework, naming the package and its extra.

Outside CI a missing PyTorch, TensorFlow or Flax skips the tests that need it (``.[tests]``
alone runs the suite); in CI, ``conftest.py`` turns such a skip into a failure.
"""

from __future__ import annotations

import importlib.util

import pytest

#: Backend, port or package name -> (the module it needs, the pip extra that installs it).
NEEDS = {
    "pytorch": ("torch", "torch"),
    "torch": ("torch", "torch"),
    "gln_torch": ("torch", "torch"),
    "tf": ("tensorflow", "tf-cpu"),
    "tensorflow": ("tensorflow", "tf-cpu"),
    "gln_tf": ("tensorflow", "tf-cpu"),
    "flax": ("flax", "flax"),
}


def require(*names: str) -> None:
    """Skips the calling test when a framework that one of ``names`` needs is missing."""
    for name in names:
        if name not in NEEDS:
            continue
        module, extra = NEEDS[name]
        if importlib.util.find_spec(module) is None:
            pytest.skip(
                f"{name!r} needs {module}, which is not installed (pip install 'gln-jax[{extra}]')"
            )
