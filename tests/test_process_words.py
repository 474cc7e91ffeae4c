"""What users read speaks of the library, not of how it was developed.

README, changelog, docs, docstrings and comments of the library, the ports, the tests, the
examples and the notebooks, and the command line's output (its source) hold no issue numbers,
no commit-hash diaries, no "previous measurement" and no stories of what else was running on
the machine. A figure states its command, machine and date instead.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

#: Phrases of development-process talk, each with what it catches.
PATTERNS = {
    r"\bissues? #?\d+": "an issue number",
    r"\bthe issue'?s?\b(?! tracker)": "a reference to an issue",
    r"\bcommit [0-9a-f]{7,40}\b": "a commit hash",
    r"\b(on|at|since|against) [0-9a-f]{7}\b(?=[^\n]*\b(commit|tree|table|run)\b)": "a commit",
    r"\bprevious (measurement|stop|session|run of this)\b": "a development diary",
    r"\b(earlier|previous) (stop|session)\b": "a development diary",
    r"\bload average\b": "the machine's load",
    r"\bother (jobs|agents|sessions)\b": "what else ran on the machine",
    r"\bshared the machine\b": "what else ran on the machine",
}
COMPILED = [(re.compile(pattern, re.I), what) for pattern, what in PATTERNS.items()]

#: What users read: files by folder and suffix (data files such as JSON are results, not text).
SOURCES = [
    ("README.md", None),
    ("CHANGELOG.md", None),
    ("benchmarks/README.md", None),
    ("docs", (".md", ".py", ".rst")),
    ("gln_jax", (".py", ".cc", ".h")),
    ("ports", (".py",)),
    ("examples", (".py",)),
    ("notebooks", (".ipynb",)),
    ("tests", (".py", ".md")),
]
SKIP_PARTS = {"_build", "generated", "__pycache__"}


def _files() -> list[Path]:
    found = []
    for name, suffixes in SOURCES:
        path = ROOT / name
        if path.is_file():
            found.append(path)
        elif path.is_dir():
            found.extend(
                p
                for p in sorted(path.rglob("*"))
                if p.is_file()
                and p.suffix in suffixes
                and not SKIP_PARTS & set(p.relative_to(ROOT).parts)
                and p != Path(__file__).resolve()
            )
    return found


def offences(text: str) -> list[tuple[int, str, str]]:
    """``(line, phrase, what)`` of every process phrase in ``text``."""
    found = []
    for number, line in enumerate(text.splitlines(), 1):
        for pattern, what in COMPILED:
            match = pattern.search(line)
            if match:
                found.append((number, match.group(0), what))
    return found


@pytest.mark.parametrize(
    "text",
    [
        "as issue 11 asks",
        "the issue's target",
        "measured on commit 1ffdc10",
        "the previous measurement read 2x",
        "load average 3 to 5",
        "while two other agents' jobs ran",
        "other jobs shared the machine",
    ],
)
def test_the_patterns_catch_process_talk(text):
    assert offences(text)


@pytest.mark.parametrize(
    "text",
    [
        "python -m gln_jax.benchmark (2-core Intel Xeon, 2026-12-01)",
        "report an issue on the tracker",
        "the kernel's commit of a working copy",
        "a previous state is kept",
    ],
)
def test_the_patterns_leave_library_text_alone(text):
    assert not offences(text)


def test_no_development_process_talk_where_users_read():
    assert len(_files()) > 100  # the scan sees the tree
    problems = [
        f"{path.relative_to(ROOT)}:{line}: {what}: {phrase!r}"
        for path in _files()
        for line, phrase, what in offences(path.read_text(encoding="utf-8", errors="replace"))
    ]
    assert not problems, "development-process talk where users read:\n" + "\n".join(problems)
