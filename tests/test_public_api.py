"""A snapshot of the public API: every public module's ``__all__`` and the facades' signatures.

The snapshot is ``tests/public_api.json``. A name that disappears or a constructor signature
that changes fails here until the snapshot is updated on purpose, with

    python tests/test_public_api.py --update

(and a line in CHANGELOG.md). A port whose framework is missing is skipped (in CI a failure,
by ``tests/conftest.py``).
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import json
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SNAPSHOT = Path(__file__).resolve().parent / "public_api.json"
UPDATE = "python tests/test_public_api.py --update"

MODULES = (
    "gln_jax",
    "gln_jax.transforms",
    "gln_jax.gaussian",
    "gln_jax.streaming",
    "gln_jax.ensemble",
    "gln_jax.continual",
    "gln_jax.sharding",
    "gln_jax.kernel",
    "gln_jax.sklearn",
    "gln_jax.nnx",
    "gln_jax.datasets",
    "gln_jax.utils",
    "gln_numpy",
    "gln_torch",
    "gln_tf",
)
#: Modules whose import needs an optional framework, and the framework.
NEEDS = {
    "gln_jax.sklearn": "sklearn",
    "gln_jax.nnx": "flax",
    "gln_torch": "torch",
    "gln_tf": "tensorflow",
}
FACADES = {
    "gln_jax.GLN": ("gln_jax", "GLN"),
    "gln_jax.GaussianGLN": ("gln_jax", "GaussianGLN"),
    "gln_numpy.GLN": ("gln_numpy", "GLN"),
    "gln_torch.GLN": ("gln_torch", "GLN"),
    "gln_tf.GLN": ("gln_tf", "GLN"),
}


def _import(name: str):
    framework = NEEDS.get(name)
    if framework and importlib.util.find_spec(framework) is None:
        pytest.skip(f"{framework} not installed: {name} needs it")
    return importlib.import_module(name)


def current_names(name: str) -> list[str]:
    return sorted(_import(name).__all__)


def current_signature(key: str) -> str:
    module, attribute = FACADES[key]
    return str(inspect.signature(getattr(_import(module), attribute)))


def snapshot() -> dict:
    return json.loads(SNAPSHOT.read_text(encoding="utf-8"))


@pytest.mark.parametrize("name", MODULES)
def test_public_names_match_the_snapshot(name):
    expected = snapshot()["modules"][name]
    actual = current_names(name)
    missing, added = sorted(set(expected) - set(actual)), sorted(set(actual) - set(expected))
    assert not missing and not added, (
        f"{name}.__all__ changed: removed {missing}, added {added}. If intended, run `{UPDATE}` "
        "and note it in CHANGELOG.md."
    )


@pytest.mark.parametrize("key", FACADES)
def test_facade_signatures_match_the_snapshot(key):
    expected = snapshot()["signatures"][key]
    actual = current_signature(key)
    assert actual == expected, (
        f"the signature of {key} changed:\n  was {expected}\n  now {actual}\n"
        f"If intended, run `{UPDATE}` and note it in CHANGELOG.md."
    )


def test_every_public_name_resolves():
    for name in MODULES:
        if NEEDS.get(name) and importlib.util.find_spec(NEEDS[name]) is None:
            continue
        module = importlib.import_module(name)
        for item in module.__all__:
            assert getattr(module, item) is not None, f"{name}.{item}"


#: An import of an implementation module (``gln_jax.core``, ``.api``, ``.data``, ``.tools``).
INTERNAL_IMPORT = re.compile(r"^\s*(?:from|import)\s+gln_jax\.(?:core|api|data|tools)\b", re.M)


def _user_code() -> dict[str, str]:
    """The code a user reads and copies: README, guides, examples and notebooks' code cells."""
    files = [ROOT / "README.md", *sorted((ROOT / "examples").glob("*.py"))]
    files += [
        path
        for path in sorted((ROOT / "docs").rglob("*.md"))
        if path.name not in ("changelog.md", "contributing.md")
    ]
    code = {str(path.relative_to(ROOT)): path.read_text(encoding="utf-8") for path in files}
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
        code[str(path.relative_to(ROOT))] = "\n".join(
            "".join(cell["source"]) for cell in cells if cell["cell_type"] == "code"
        )
    return code


def test_user_facing_code_imports_public_modules_only():
    """What the docs teach is importable from a public module (implementation modules move)."""
    code = _user_code()
    assert len(code) > 10, "the README, guides, examples and notebooks were not found"
    found = {}
    for name, text in code.items():
        lines = [line.strip() for line in text.splitlines() if INTERNAL_IMPORT.match(line)]
        if lines:
            found[name] = lines
    assert not found, f"user-facing code imports implementation modules: {found}"


def _update() -> None:
    """Rewrites the snapshot from this checkout (every framework must be installed)."""
    sys.path[:0] = [str(ROOT), str(ROOT / "ports")]
    data = {
        "modules": {name: sorted(importlib.import_module(name).__all__) for name in MODULES},
        "signatures": {
            key: str(inspect.signature(getattr(importlib.import_module(m), a)))
            for key, (m, a) in FACADES.items()
        },
    }
    SNAPSHOT.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    print(f"wrote {SNAPSHOT}")


if __name__ == "__main__":
    if sys.argv[1:] != ["--update"]:
        raise SystemExit(f"usage: {UPDATE}")
    _update()
