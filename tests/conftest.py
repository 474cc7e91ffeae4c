"""Strict numerics for the whole test suite (never set in the library itself), and no skip for
a missing framework in CI."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import jax  # noqa: E402
import pytest  # noqa: E402
from hypothesis import HealthCheck, settings  # noqa: E402

jax.config.update("jax_numpy_rank_promotion", "raise")
jax.config.update("jax_numpy_dtype_promotion", "strict")

try:  # TF32 off wherever a framework could use it
    import torch

    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
except ImportError:
    pass

settings.register_profile(
    "default",
    max_examples=int(os.environ.get("GLN_HYPOTHESIS_EXAMPLES", "20")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.load_profile("default")


@pytest.fixture
def x64():
    """Runs a test with 64-bit JAX, restoring the previous setting afterwards."""
    previous = jax.config.jax_enable_x64
    jax.config.update("jax_enable_x64", True)
    try:
        yield
    finally:
        jax.config.update("jax_enable_x64", previous)


#: Phrases that every skip for a missing package uses (the port harness, the accuracy tests,
#: the notebook tests, ``pytest.importorskip``).
MISSING_PACKAGE_REASONS = ("not installed", "could not import", "No module named")


def in_ci() -> bool:
    """True where ``$CI`` says so (``.ci/run`` and hosted CI set ``CI=true``)."""
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """In CI, where every framework is installed, a skip for a missing package is a failure."""
    outcome = yield
    report = outcome.get_result()
    if not (in_ci() and report.skipped and not hasattr(report, "wasxfail")):
        return
    reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
    if any(phrase in reason for phrase in MISSING_PACKAGE_REASONS):
        report.outcome = "failed"
        report.longrepr = (
            f"skipped for a missing package although CI=true, where every framework is "
            f"installed: {reason}"
        )
