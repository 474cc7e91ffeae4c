"""Every script of ``examples/basics/`` runs, with small settings, and prints sensible results.

Each script runs in a fresh process, as a user would run it, from a temporary directory (so
nothing is written into the checkout). A script found by the glob without an entry in
:data:`CASES` still runs, with its defaults, and must exit cleanly. The MNIST scripts read the
data from ``$GLN_JAX_DATA_DIR`` (or the user cache) and are skipped where it would have to be
downloaded; the others need nothing but scikit-learn's bundled datasets.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from test_readme import mnist_missing

ROOT = Path(__file__).resolve().parent.parent
BASICS = ROOT / "examples" / "basics"
SCRIPTS = sorted(BASICS.glob("*.py"))
#: Port package -> the framework it needs.
FRAMEWORKS = {"gln_torch": "torch", "gln_tf": "tensorflow"}
NO_DESKEW = ["--no-deskew"]  # deskewing 70,000 images would dominate a cold run


def numbers(pattern: str, text: str) -> list[float]:
    """Every match of ``pattern`` (one group, a number) in ``text``, as floats."""
    return [float(value) for value in re.findall(pattern, text)]


def check_binary(out: str) -> None:
    (accuracy,) = numbers(r"vs rest: test accuracy (\d+\.\d+)%", out)
    (majority,) = numbers(r"majority-class baseline: (\d+\.\d+)%", out)
    assert accuracy > majority + 2


def check_multiclass(out: str) -> None:
    (accuracy,) = numbers(r"10 classes: test accuracy (\d+\.\d+)%", out)
    assert accuracy > 60  # chance is 10%


def check_own_data(out: str) -> None:
    (accuracy,) = numbers(r"breast cancer: test accuracy (\d+\.\d+)%", out)
    (majority,) = numbers(r"majority-class baseline: (\d+\.\d+)%", out)
    assert accuracy > majority + 10


def check_functional(out: str) -> None:
    assert len(numbers(r"model \d+: online accuracy (\d+\.\d+)%", out)) == 2
    (accuracy,) = numbers(r"ensemble of 2: test accuracy (\d+\.\d+)%", out)
    assert accuracy > 60  # chance is 10%


def check_pipeline(out: str) -> None:
    (accuracy,) = numbers(r"PCA \+ GLNClassifier: 3-fold accuracy (\d+\.\d+)%", out)
    assert accuracy > 60  # chance is 10%
    assert "LogisticRegression: 3-fold accuracy" in out


def check_regression(out: str) -> None:
    (spread,) = numbers(r"targets: std (\d+\.\d+)", out)
    rmses = numbers(r"test RMSE (\d+\.\d+)", out)
    coverages = numbers(r"90% interval coverage (\d+\.\d+)%", out)
    assert len(rmses) == len(coverages) == 2
    assert all(rmse < spread for rmse in rmses)  # better than predicting the mean
    assert all(60 < coverage <= 100 for coverage in coverages)


def check_checkpoints(out: str) -> None:
    loads = re.findall(r"same classes (\w+), max \|dp\| (\S+)", out)
    assert len(loads) == 7  # four facade backends and three ports
    assert all(same == "True" and float(dp) < 1e-4 for same, dp in loads)


#: Script name -> (small arguments, check of its output).
CASES = {
    "mnist_binary.py": (
        ["--train-limit", "1000", "--test-limit", "1000", *NO_DESKEW],
        check_binary,
    ),
    "mnist_multiclass.py": (
        ["--train-limit", "2000", "--test-limit", "1000", *NO_DESKEW],
        check_multiclass,
    ),
    "your_own_data.py": ([], check_own_data),
    "functional_jit_vmap.py": (["--models", "2"], check_functional),
    "sklearn_pipeline.py": (["--folds", "3", "--limit", "600"], check_pipeline),
    "regression_uncertainty.py": (
        ["--train-size", "1000", "--test-size", "500"],
        check_regression,
    ),
    "save_load_backends.py": (["--train-limit", "300"], check_checkpoints),
}


def test_the_examples_are_found():
    assert SCRIPTS, f"no scripts in {BASICS}"
    names = {script.name for script in SCRIPTS}
    assert set(CASES) <= names, f"cases without a script: {sorted(set(CASES) - names)}"


@pytest.mark.timeout(150)
@pytest.mark.parametrize("script", SCRIPTS, ids=lambda path: path.name)
def test_example_runs(script, tmp_path):
    source = script.read_text(encoding="utf-8")
    if "get_mnist" in source:
        reason = mnist_missing()
        if reason:
            pytest.skip(reason)
    for port, framework in FRAMEWORKS.items():
        if f"import {port}" in source and importlib.util.find_spec(framework) is None:
            pytest.skip(f"{framework} not installed (needed by {port})")
    arguments, check = CASES.get(script.name, ([], None))
    path = os.pathsep.join([str(ROOT), str(ROOT / "ports"), os.environ.get("PYTHONPATH", "")])
    proc = subprocess.run(
        [sys.executable, "-W", "error::UserWarning", str(script), *arguments],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=dict(os.environ, PYTHONPATH=path, TF_CPP_MIN_LOG_LEVEL="2"),
        timeout=140,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert proc.stdout.strip(), "the script printed nothing"
    if check is not None:
        check(proc.stdout)
