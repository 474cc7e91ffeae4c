"""Imports point down: no cycles, no module importing its package's ``__init__``, and only
the listed function-level imports of library modules (each with the reason it is lazy).

The checks read the source with :mod:`ast`, so they need none of the ports' frameworks.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

_LAZY_CLI = "lazy JAX: `gln-jax --help` answers without importing JAX"
_LAZY_TOOL = "lazy JAX: the tool's parser and `--help` work without importing JAX"

#: ``(file, imported module) -> reason`` for every function-level import of a library module
#: that stays. A cycle is never a reason: move the shared code into a module both import.
#: Delete an entry once its import moves to the top of its file (a stale entry fails).
FUNCTION_LEVEL_IMPORTS: dict[tuple[str, str], str] = {
    ("gln_jax/api/validation.py", "gln_jax.core._transforms"): (
        "lazy JAX: api.validation, and api.engine which the NumPy, PyTorch and TensorFlow "
        "engines import, stay free of JAX"
    ),
    ("gln_jax/cli.py", "gln_jax.api.facade"): _LAZY_CLI,
    ("gln_jax/cli.py", "gln_jax.recipes"): _LAZY_CLI,
    ("gln_jax/tools/accuracy.py", "gln_jax.api.facade"): _LAZY_TOOL,
    ("gln_jax/tools/accuracy.py", "gln_jax.recipes"): _LAZY_TOOL,
    ("gln_jax/tools/benchmark.py", "gln_jax.api.facade"): _LAZY_TOOL,
    ("gln_jax/tools/benchmark.py", "gln_jax.core.stream"): _LAZY_TOOL,
}

#: Files other than a package's own ``__init__`` that may import names from it (none).
PACKAGE_INIT_IMPORTS: dict[str, str] = {}

#: Package -> its source folder: the library and every package under ``ports/``.
PACKAGES = {
    "gln_jax": ROOT / "gln_jax",
    **{
        folder.name: folder
        for folder in sorted((ROOT / "ports").iterdir())
        if (folder / "__init__.py").is_file()
    },
}

#: Subpackage -> the packages and modules its files may import (at any level): imports point
#: down, from the host side to the maths, never the reverse.
LAYERS = {
    "gln_jax.core": ("gln_jax.core", "gln_jax._cache", "gln_jax._deprecated"),
    "gln_jax.data": ("gln_jax.data", "gln_jax._version", "gln_jax._cache", "gln_jax._deprecated"),
    "gln_jax.api": (
        "gln_jax.api",
        "gln_jax.core",
        "gln_jax.data",
        "gln_jax._version",
        "gln_jax._deprecated",
    ),
}


def _modules() -> dict[str, Path]:
    """Dotted module name -> source file, for every module of :data:`PACKAGES`."""
    modules = {}
    for package, folder in PACKAGES.items():
        for path in sorted(folder.rglob("*.py")):
            parts = (package, *path.relative_to(folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            modules[".".join(parts)] = path
    return modules


MODULES = _modules()


def _relative(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def _is_type_checking(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)


def _imports(tree: ast.Module):
    """``(import node, at module level)`` for every import, skipping ``TYPE_CHECKING`` blocks.

    Module level includes the bodies of top-level ``if`` and ``try`` statements (they run at
    import time); anything inside a function or class body is not at module level.
    """

    def visit(node, top):
        for child in ast.iter_child_nodes(node):
            if _is_type_checking(child):
                continue
            if isinstance(child, (ast.Import, ast.ImportFrom)):
                yield child, top
            else:
                scope = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
                yield from visit(child, top and not isinstance(child, scope))

    yield from visit(tree, True)


def _targets(module: str, node: ast.Import | ast.ImportFrom) -> list[tuple[str, str | None]]:
    """``(imported module, name taken from it or None)`` for each alias of an import node."""
    if isinstance(node, ast.Import):
        return [(alias.name, None) for alias in node.names]
    base = node.module or ""
    if node.level:  # relative: resolve against this module's package
        is_package = MODULES[module].name == "__init__.py"
        package = module.split(".") if is_package else module.split(".")[:-1]
        package = package[: len(package) - (node.level - 1)]
        base = ".".join([*package, base] if base else package)
    return [
        (f"{base}.{alias.name}", None) if f"{base}.{alias.name}" in MODULES else (base, alias.name)
        for alias in node.names
    ]


def _parsed():
    for module, path in MODULES.items():
        yield module, path, ast.parse(path.read_text(), filename=str(path))


def test_no_module_imports_its_package_init():
    """``from gln_jax import X`` (X not a submodule) and ``import gln_jax`` used for its
    attributes reach the package ``__init__``, which sits above every module: they are allowed
    only in the ``__init__`` itself."""
    found = []
    for module, path, tree in _parsed():
        file = _relative(path)
        if module in PACKAGES or file in PACKAGE_INIT_IMPORTS:
            continue
        bound = set()  # packages bound by a plain ``import gln_jax.core.x``
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                for target, name in _targets(module, node):
                    if target in PACKAGES and (name is not None or isinstance(node, ast.Import)):
                        what = f"from {target} import {name}" if name else f"import {target}"
                        found.append(f"{file}:{node.lineno}: {what}")
                if isinstance(node, ast.Import):
                    bound |= {a.name.split(".")[0] for a in node.names if a.asname is None}
        for node in ast.walk(tree):  # ``gln_jax.name`` where ``name`` is no submodule
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id in bound & set(PACKAGES)
                and f"{node.value.id}.{node.attr}" not in MODULES
            ):
                found.append(f"{file}:{node.lineno}: {node.value.id}.{node.attr}")
    assert not found, "import the defining module instead of the package __init__:\n" + (
        "\n".join(found)
    )


def _function_level_imports() -> dict[tuple[str, str], list[int]]:
    """``(file, imported library module) -> line numbers`` of imports inside functions."""
    found: dict[tuple[str, str], list[int]] = {}
    for module, path, tree in _parsed():
        for node, top in _imports(tree):
            if top:
                continue
            for target, _ in _targets(module, node):
                if target.split(".")[0] in PACKAGES:
                    found.setdefault((_relative(path), target), []).append(node.lineno)
    return found


def test_function_level_imports_are_the_listed_lazy_ones():
    """An import of a library module inside a function hides a cycle unless it keeps JAX or an
    optional framework from loading early; those are listed in FUNCTION_LEVEL_IMPORTS."""
    unlisted = [
        f"{file}:{lines[0]}: {target}"
        for (file, target), lines in sorted(_function_level_imports().items())
        if (file, target) not in FUNCTION_LEVEL_IMPORTS
    ]
    assert not unlisted, (
        "function-level imports of library modules; move them to the top of the file (a cycle: "
        "move what both modules need into a module of its own), or list them with the reason "
        "they are lazy:\n" + "\n".join(unlisted)
    )


def test_function_level_import_list_has_no_stale_entries():
    stale = sorted(set(FUNCTION_LEVEL_IMPORTS) - set(_function_level_imports()))
    assert not stale, (
        f"these imports are gone; delete their FUNCTION_LEVEL_IMPORTS entries: {stale}"
    )


def test_module_level_imports_have_no_cycles():
    graph = {}
    for module, _, tree in _parsed():
        graph[module] = {
            target
            for node, top in _imports(tree)
            if top
            for target, _ in _targets(module, node)
            if target in MODULES and target != module
        }
    state: dict[str, int] = {}  # 1 on the path, 2 done
    path: list[str] = []
    cycles = []

    def visit(module):
        state[module] = 1
        path.append(module)
        for target in sorted(graph[module]):
            if state.get(target) == 1:
                cycles.append(" -> ".join([*path[path.index(target) :], target]))
            elif target not in state:
                visit(target)
        path.pop()
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module)
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


@pytest.mark.parametrize("layer", sorted(LAYERS))
def test_imports_point_down(layer):
    allowed = LAYERS[layer]
    upward = []
    for module, path, tree in _parsed():
        if module != layer and not module.startswith(layer + "."):
            continue
        for node, _ in _imports(tree):
            for target, _ in _targets(module, node):
                inside = any(target == a or target.startswith(a + ".") for a in allowed)
                if target.split(".")[0] == "gln_jax" and not inside:
                    upward.append(f"{_relative(path)}:{node.lineno}: {target}")
    assert not upward, f"{layer} may import only {allowed}:\n" + "\n".join(upward)


@pytest.mark.heavy
@pytest.mark.parametrize(
    "modules",
    [
        "gln_jax.core.stream, gln_jax.core.chunked",
        "gln_jax.core.chunked, gln_jax.core.stream",
        "gln_jax.core.scan, gln_jax.core.stream",
        "gln_jax.data.download, gln_jax.data",
        "gln_jax.data.mnist, gln_jax.data.datasets",
    ],
)
def test_modules_import_first_in_a_fresh_process(modules):
    subprocess.run([sys.executable, "-c", f"import {modules}"], check=True, cwd=ROOT)


@pytest.mark.heavy
@pytest.mark.parametrize(
    ("old", "new", "name", "hint"),
    [
        ("gln_jax.api.registry", "gln_jax.api.backends", "get_backend", "gln_jax.backend_names"),
        ("gln_jax.data.registry", "gln_jax.datasets", "get_spec", "import gln_jax.datasets"),
        ("gln_jax.core.transforms", "gln_jax.transforms", "make_transform", "gln_jax.transforms"),
        ("gln_jax.core.ensemble", "gln_jax.ensemble", "fit_ensemble", "gln_jax.ensemble"),
        ("gln_jax.core.sharding", "gln_jax.sharding", "fit_sharded", "gln_jax.sharding"),
        ("gln_jax.api.streaming", "gln_jax.streaming", "fit_chunks", "gln_jax.streaming"),
        ("gln_jax.core.saliency", "gln_jax", "saliency", "gln_jax.saliency"),
    ],
)
def test_renamed_modules_keep_working_with_a_deprecation_warning(old, new, name, hint):
    code = (
        "import importlib, warnings\n"
        "with warnings.catch_warnings(record=True) as caught:\n"
        "    warnings.simplefilter('always')\n"
        f"    old = importlib.import_module({old!r})\n"
        f"new = importlib.import_module({new!r})\n"
        f"assert getattr(old, {name!r}) is getattr(new, {name!r})\n"
        "assert any(issubclass(w.category, DeprecationWarning) and "
        f"{hint!r} in str(w.message) for w in caught), caught\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


@pytest.mark.heavy
def test_a_moved_module_warns_a_script_under_the_default_filters(tmp_path):
    """The warning names the script's import line, so Python's default filters show it."""
    script = tmp_path / "old_paths.py"
    script.write_text(
        "from gln_jax.core.transforms import make_transform\n"
        "from gln_jax.transforms import make_transform as public\n"
        "assert make_transform is public\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONWARNINGS"}
    env["PYTHONPATH"] = str(ROOT)
    result = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, check=True, env=env
    )
    assert f"{script}:1: DeprecationWarning: gln_jax.core.transforms is deprecated" in (
        result.stderr
    ), result.stderr
    assert "import gln_jax.transforms" in result.stderr


@pytest.mark.heavy
def test_the_library_imports_no_deprecated_path():
    """Importing every public module and using the facade raises no DeprecationWarning."""
    code = (
        "import warnings\n"
        "warnings.simplefilter('error', DeprecationWarning)\n"
        "import gln_jax\n"
        "from gln_jax import ensemble, sharding, streaming, transforms, gaussian, recipes\n"
        "gln_jax.saliency, gln_jax.Saliency, gln_jax.backend_names()\n"
        "model = gln_jax.GLN('jax', [4, 1], 8, side_info_transform='center')\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)
