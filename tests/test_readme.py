"""Every ```python block of the README runs as written, in order, in one fresh process.

The blocks share one namespace (a later block uses the data an earlier one loaded), as a reader
pasting them into one session would. Signatures are ```text blocks and shell commands ```bash
blocks, so neither is run. The blocks need MNIST: without it (``$GLN_JAX_DATA_DIR`` or the user
cache; the tests never download) they skip, saying what to set. The full run (60,000 training
examples, as written) is ``slow``; the default suite runs the same blocks on a slice of the
data, so an undefined name or a wrong call still fails in seconds.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from gln_jax.data import datasets

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
FENCE = re.compile(r"^```(\w*)[^\n]*\n(.*?)^```", re.S | re.M)

# Runs the blocks given as JSON on stdin; each block is compiled against README.md with its own
# line numbers, so a traceback points at the README line that failed.
RUNNER = """
import json, sys
blocks = json.load(sys.stdin)
namespace = {"__name__": "__main__"}
exec(blocks.pop("prelude"), namespace)
for line, code in blocks["blocks"]:
    exec(compile("\\n" * (line - 1) + code, blocks["path"], "exec"), namespace)
print("README-BLOCKS-DONE")
"""

# The default suite's slice: the README's loaders, on 1,000 training and 500 test examples,
# raw (no deskew cache to build); everything else runs as written.
SMALL_DATA = """
import gln_jax.api.evaluation, gln_jax.utils
_get_mnist = gln_jax.utils.get_mnist
def _small(deskewed=True, *args, **kwargs):
    X_train, y_train, X_test, y_test = _get_mnist(False, *args, **kwargs)
    return X_train[:1000], y_train[:1000], X_test[:500], y_test[:500]
gln_jax.utils.get_mnist = gln_jax.api.evaluation.get_mnist = _small
"""


def python_blocks(text: str) -> list[tuple[int, str]]:
    """``(first line, code)`` of every ```python block of a Markdown text, in order."""
    return [
        (text.count("\n", 0, match.start(2)) + 1, match.group(2))
        for match in FENCE.finditer(text)
        if match.group(1) == "python"
    ]


def why_not_runnable() -> str | None:
    """Why the README blocks cannot run here without a download, or ``None``."""
    if importlib.util.find_spec("torch") is None:
        return "the README's ports block needs PyTorch: pip install 'gln-jax[torch]'"
    return mnist_missing()


def mnist_missing() -> str | None:
    """Why MNIST cannot be read here without a download, or ``None``."""
    hint = (
        f"needs MNIST without downloading it: set ${datasets.ENV_DATA_DIR} to a directory "
        "holding the four IDX files (or run gln-jax once to fill the user cache)"
    )
    try:
        dirs = datasets.search_dirs("mnist")
    except FileNotFoundError:
        return f"${datasets.ENV_DATA_DIR} names no directory; {hint}"
    for file in datasets.get_spec("mnist").files:
        if not any(datasets.find_file(directory, file.name) for directory in dirs):
            return hint
    return None


def run_blocks(tmp_path: Path, prelude: str, timeout: int) -> subprocess.CompletedProcess:
    payload = {
        "path": str(README),
        "prelude": prelude,
        "blocks": python_blocks(README.read_text(encoding="utf-8")),
    }
    path = os.pathsep.join([str(ROOT), str(ROOT / "ports"), os.environ.get("PYTHONPATH", "")])
    return subprocess.run(
        [sys.executable, "-W", "error::UserWarning", "-c", RUNNER],
        input=json.dumps(payload),
        capture_output=True,
        text=True,
        cwd=tmp_path,  # whatever a block writes lands here, not in the checkout
        env=dict(os.environ, PYTHONPATH=path, TF_CPP_MIN_LOG_LEVEL="2"),
        timeout=timeout,
        check=False,
    )


def test_readme_fences_python_only_where_it_runs():
    text = README.read_text(encoding="utf-8")
    blocks = python_blocks(text)
    assert len(blocks) >= 4
    for line, code in blocks:
        compile(code, f"README.md:{line}", "exec")  # signatures belong in ```text blocks
        assert "cuda" not in code or "is_available" in code, f"block at line {line} needs a GPU"
    languages = {match.group(1) for match in FENCE.finditer(text)}
    assert languages <= {"python", "bash", "text"}, languages


def test_python_blocks_finds_blocks_with_their_lines():
    text = "intro\n```python\nx = 1\n```\n```text\nf(a, b)\n```\n```python\ny = x\n```\n"
    assert python_blocks(text) == [(3, "x = 1\n"), (9, "y = x\n")]


def test_readme_blocks_run_in_order_on_a_slice(tmp_path):
    reason = why_not_runnable()
    if reason:
        pytest.skip(reason)
    proc = run_blocks(tmp_path, SMALL_DATA, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "README-BLOCKS-DONE" in proc.stdout
    assert re.search(r"digit 3: \d+\.\d\d% test accuracy", proc.stdout)
    assert re.search(r"\d+\.\d\d% on the test set", proc.stdout)
    assert "(5, 10)" in proc.stdout  # the functional API's vmapped predictions


@pytest.mark.slow
def test_readme_blocks_run_in_order_as_written(tmp_path):
    reason = why_not_runnable()
    if reason:
        pytest.skip(reason)
    proc = run_blocks(tmp_path, "", timeout=1800)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "README-BLOCKS-DONE" in proc.stdout
    accuracy = float(re.search(r"digit 3: (\d+\.\d\d)% test accuracy", proc.stdout).group(1))
    assert accuracy > 97.0  # the README loop's 98.5% (mean of three seeds), with margin
    recipe = float(re.search(r"(\d+\.\d\d)% on the test set", proc.stdout).group(1))
    assert recipe > 96.8  # recipes.mnist(): 97.31% (mean of three seeds), with margin


def test_readme_is_a_short_product_page_that_starts_with_the_set_up_commands():
    """At most 200 lines; the first block runs the main job, then the tests, as CI does."""
    text = README.read_text(encoding="utf-8")
    assert len(text.splitlines()) <= 200
    first = next(FENCE.finditer(text))
    assert first.group(1) == "bash"
    commands = [line for line in first.group(2).splitlines() if line.strip()]
    assert commands[0].startswith("pip install -e . && gln-jax")
    assert "python3 -m pytest" in commands[1]
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    test_command = commands[1].split("&&", 1)[1].split("#", 1)[0].strip()
    assert test_command in ci, "CI must call the README's test command verbatim"
