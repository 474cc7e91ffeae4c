"""Strict numerics for the whole test suite (never set in the library itself), and no skip for
a missing framework in CI."""

import fnmatch
import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import jax  # noqa: E402
import pytest  # noqa: E402
from hypothesis import HealthCheck, settings  # noqa: E402

jax.config.update("jax_numpy_rank_promotion", "raise")
jax.config.update("jax_numpy_dtype_promotion", "strict")

#: ``GLN_JAX_TYPECHECK=1``: every annotation of the functional API is checked at run time, by
#: jaxtyping's import hook with beartype, in every call the tests make (``.ci/run`` runs the
#: functional-API tests this way).
TYPECHECK = os.environ.get("GLN_JAX_TYPECHECK", "") == "1"
if TYPECHECK:
    from jaxtyping import install_import_hook  # noqa: E402

    from gln_jax.core.shapes import CHECKED_MODULES  # noqa: E402 - imports no checked module

    install_import_hook(CHECKED_MODULES, "beartype.beartype")

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

TESTS = Path(__file__).resolve().parent
#: Markers given by path: marker -> (description, ``fnmatch`` patterns of paths under tests/).
#: A test may also set one itself (``@pytest.mark.e2e``). The edit-test loop leaves them out,
#: with ``heavy`` and ``slow`` (which tests set themselves): every other test is marked
#: ``fast``, so ``python3 -m pytest -q -n 2 -m fast`` runs it.
MARKERS_BY_PATH = {
    "parity": ("the port harness, every port against the reference", ("ports/*",)),
    "docs": (
        "the README, the notebooks and the documentation, run as written",
        ("test_docs.py", "test_readme.py", "test_notebooks.py"),
    ),
    "kernel": (
        "the fused C++ kernel: builds, caches, equality with the reference",
        ("core/test_kernel*.py",),
    ),
    "e2e": (
        "end-to-end runs in fresh processes: the examples, the benchmark scripts, multi-device "
        "and multi-process workers",
        (
            "test_examples.py",
            "tools/test_accelerator.py",
            "tools/test_compare.py",
            "tools/test_learning_curve.py",
            "tools/test_recipe_search.py",
            "tools/test_regression.py",
            "tools/test_scripts.py",
            "tools/test_sklearn_compare.py",
            "tools/test_uci_regression.py",
        ),
    ),
}
#: ``@pytest.mark.heavy``, set by a test itself: a test that takes seconds on 2 CPU cores (a
#: property over many whole models, a fresh process, a learning run). The full suite runs it;
#: the edit-test loop leaves it out. Mark a new test heavy when ``--durations`` shows its call
#: at 1.5 s or more.
HEAVY = ("heavy", "takes seconds: the full suite runs it, the fast tier leaves it out")
#: Left out of the edit-test loop: the markers above, ``heavy`` and ``slow``.
NOT_FAST = frozenset(MARKERS_BY_PATH) | {HEAVY[0], "slow"}


def pytest_configure(config):
    """Registers the markers given by path here, next to the rule that gives them."""
    for marker, (description, _) in MARKERS_BY_PATH.items():
        config.addinivalue_line("markers", f"{marker}: {description}")
    config.addinivalue_line("markers", f"{HEAVY[0]}: {HEAVY[1]}")
    config.addinivalue_line(
        "markers", "fast: the edit-test loop, every test without " + ", ".join(sorted(NOT_FAST))
    )


def pytest_collection_modifyitems(config, items):
    """Marks every test by where it lives in tests/ (:data:`MARKERS_BY_PATH`)."""
    for item in items:
        try:
            path = item.path.resolve().relative_to(TESTS).as_posix()
        except ValueError:  # not under tests/
            continue
        for marker, (_, patterns) in MARKERS_BY_PATH.items():
            if any(fnmatch.fnmatchcase(path, pattern) for pattern in patterns):
                item.add_marker(marker)
        if not any(item.get_closest_marker(marker) for marker in NOT_FAST):
            item.add_marker("fast")


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
