"""Fixtures shared by the tests of the fused CPU kernel."""

import pytest

from gln_jax.core.kernel import build, library


@pytest.fixture(scope="module")
def compiled():
    """The kernel, built (or found in the cache); skips only where no compiler exists."""
    try:
        build.find_compiler()
    except build.BuildError as err:
        pytest.skip(f"no C++ compiler on this machine, the kernel cannot be built: {err}")
    assert library.load(), "a C++ compiler is present but the kernel did not build or load"


@pytest.fixture(scope="module")
def built():
    """The kernel's path in the user's cache (built once), or a skip where no compiler exists."""
    try:
        build.find_compiler()
    except build.BuildError as err:
        pytest.skip(f"no C++ compiler on this machine, the kernel cannot be built: {err}")
    path, _ = build.build()
    return path
