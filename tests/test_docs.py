"""The documentation site builds with warnings as errors, and its guides' code runs.

``sphinx-build -W --keep-going`` builds a copy of ``docs/`` (so nothing is written into the
checkout) against this repository (``GLN_JAX_DOCS_ROOT``). Every ```python block of the
getting-started page and of ``docs/guides/`` then runs, page by page, each page's blocks in
order in one fresh process sharing one namespace, as a reader pasting them would; MNIST comes
from the same small slice as the README's default test (:data:`tests.test_readme.SMALL_DATA`).
A block preceded by a MyST comment line ``% skip-test: <reason>`` (a GPU, the network, a
full-MNIST run) is not run. Marked ``docs``: ``python3 -m pytest -m docs -n 2``.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from frameworks import require  # noqa: E402
from test_readme import RUNNER, SMALL_DATA, why_not_runnable  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
GUIDES = [DOCS / "getting_started.md", *sorted((DOCS / "guides").glob("*.md"))]
FENCE = re.compile(r"^```(\w*)[^\n]*\n(.*?)^```", re.S | re.M)
SKIP = re.compile(r"^% skip-test: *(.+)\n\Z", re.M)

pytestmark = pytest.mark.docs


def runnable_blocks(text: str) -> list[tuple[int, str]]:
    """``(first line, code)`` of every ```python block not preceded by ``% skip-test:``."""
    blocks = []
    for match in FENCE.finditer(text):
        if match.group(1) != "python":
            continue
        before = text[: match.start()].rstrip("\n").rsplit("\n", 1)[-1] + "\n"
        if SKIP.match(before):
            continue
        blocks.append((text.count("\n", 0, match.start(2)) + 1, match.group(2)))
    return blocks


def test_runnable_blocks_skip_marked_blocks():
    text = "a\n```python\nx = 1\n```\n% skip-test: GPU\n```python\ny = 2\n```\n```bash\nls\n```\n"
    assert runnable_blocks(text) == [(3, "x = 1\n")]


@pytest.mark.timeout(600)
def test_site_builds_with_warnings_as_errors(tmp_path):
    if importlib.util.find_spec("sphinx") is None or importlib.util.find_spec("myst_nb") is None:
        pytest.skip("sphinx or myst-nb not installed: pip install 'gln-jax[docs]'")
    source = tmp_path / "docs"
    shutil.copytree(DOCS, source, ignore=shutil.ignore_patterns("_build", "generated", "notebooks"))
    shutil.copyfile(ROOT / "CHANGELOG.md", tmp_path / "CHANGELOG.md")  # docs/changelog.md's include
    env = dict(os.environ, GLN_JAX_DOCS_ROOT=str(ROOT), TF_CPP_MIN_LOG_LEVEL="2")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "sphinx",
            "-W",
            "--keep-going",
            "-q",
            "-b",
            "html",
            str(source),
            str(tmp_path / "html"),
            "-d",
            str(tmp_path / "doctrees"),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=580,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-6000:]
    html = tmp_path / "html"
    for page in (
        "index",
        "semantics",
        "benchmarks",
        "changelog",
        "contributing",
        "api/generated/gln_jax.GLN",
        "notebooks/01_quickstart",
    ):
        assert (html / f"{page}.html").is_file(), page
    assert (html / "benchmarks.html").read_text().count("<table") >= 6  # tables from the JSON


@pytest.mark.timeout(600)
@pytest.mark.parametrize("page", GUIDES, ids=lambda p: str(p.relative_to(DOCS)))
def test_guide_code_runs(page, tmp_path):
    text = page.read_text(encoding="utf-8")
    blocks = runnable_blocks(text)
    if not blocks:
        pytest.skip("no python blocks")
    if "get_mnist" in text:
        reason = why_not_runnable()
        if reason:
            pytest.skip(reason)
    code = "\n".join(block for _, block in blocks)
    require(*(name for name in ("gln_torch", "gln_tf", "flax") if name in code))
    payload = {"path": str(page), "prelude": SMALL_DATA, "blocks": blocks}
    path = os.pathsep.join([str(ROOT), str(ROOT / "ports"), os.environ.get("PYTHONPATH", "")])
    proc = subprocess.run(
        [sys.executable, "-W", "error::UserWarning", "-c", RUNNER],
        input=json.dumps(payload),
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=dict(os.environ, PYTHONPATH=path, TF_CPP_MIN_LOG_LEVEL="2"),
        timeout=580,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "README-BLOCKS-DONE" in proc.stdout
