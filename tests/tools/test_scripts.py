"""Every measuring script of ``benchmarks/`` runs as a script (``python benchmarks/NAME.py``)
and none ships in the package."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = sorted(path.name for path in (ROOT / "benchmarks").glob("*.py"))


def test_the_scripts_are_there():
    assert {"accelerator.py", "compare.py", "recipe_search.py", "scaling.py"} <= set(SCRIPTS)


@pytest.mark.parametrize("name", SCRIPTS)
def test_script_answers_help(name):
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / name), "--help"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "usage:" in proc.stdout


def test_the_package_holds_only_the_user_tools():
    tools = {path.name for path in (ROOT / "gln_jax" / "tools").glob("*.py")}
    assert tools == {"__init__.py", "accuracy.py", "benchmark.py", "memory.py"}
