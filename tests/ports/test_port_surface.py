"""Every port mirrors the reference module by module: same modules, names and signatures."""

from __future__ import annotations

import inspect
import os
import subprocess
import sys
from pathlib import Path

import pytest

import gln_jax

from .port_harness import PORTS, params

#: The reference modules whose public functions every port reproduces.
MIRRORED_MODULES = ("gating", "network", "multiclass", "scan", "stream")


def _reference_functions() -> list[tuple[str, str]]:
    """``(module, name)`` of every function in ``gln_jax.__all__`` from a mirrored module,
    ``init`` excepted (ports hold no randomness)."""
    found = []
    for name in gln_jax.__all__:
        value = getattr(gln_jax, name)
        if not inspect.isfunction(value) or name == "init":
            continue
        module = value.__module__.rpartition(".")[2]
        if module in MIRRORED_MODULES:
            found.append((module, name))
    return found


FUNCTIONS = _reference_functions()


def test_the_mirrored_surface_is_found():
    """The discovery sees the core of the reference (and every later addition with it)."""
    names = {name for _, name in FUNCTIONS}
    core = {"apply", "update", "batch_update", "context_indices", "scan_update", "fit_stream"}
    assert core <= names
    assert "init" not in names


def _parameters(fn) -> list[tuple[str, object, object]]:
    return [(p.name, p.kind, p.default) for p in inspect.signature(fn).parameters.values()]


@pytest.mark.parametrize(("module", "name"), FUNCTIONS, ids=[n for _, n in FUNCTIONS])
@pytest.mark.parametrize("backend", params(PORTS))
def test_port_function_has_the_reference_signature(backend, module, name):
    reference = getattr(gln_jax, name)
    port_module = backend.module(module)
    assert hasattr(port_module, name), f"{backend.package}.{module} has no {name}"
    port = getattr(port_module, name)
    assert callable(port)
    assert _parameters(port) == _parameters(reference)
    assert getattr(backend.module(), name) is port, f"{backend.package} does not re-export {name}"


@pytest.mark.parametrize("backend", params(PORTS))
def test_port_has_no_randomness_and_shares_the_state_types(backend):
    package = backend.module()
    assert not hasattr(backend.module("network"), "init")
    assert not hasattr(package, "init")
    assert package.GLNState is gln_jax.GLNState
    assert package.LayerState is gln_jax.LayerState
    assert package.make_config is gln_jax.make_config


HIDDEN_FRAMEWORK = """
import sys
sys.modules[{framework!r}] = None  # the framework is hidden, installed or not
for statement in ("import {package}", "import gln_jax; gln_jax.GLN({backend!r}, [2], 3)"):
    try:
        exec(statement)
    except ImportError as err:
        print(type(err).__name__, err.name, "|", err)
    else:
        print("imported")
"""


@pytest.mark.parametrize(
    ("package", "framework", "backend", "extra"),
    [("gln_torch", "torch", "pytorch", "torch"), ("gln_tf", "tensorflow", "tf", "tf")],
)
def test_a_port_without_its_framework_names_the_extra(package, framework, backend, extra):
    root = Path(__file__).resolve().parents[2]
    code = HIDDEN_FRAMEWORK.format(framework=framework, package=package, backend=backend)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(root), str(root / "ports"), env.get("PYTHONPATH", "")])
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300
    )
    assert proc.returncode == 0, proc.stderr
    port, facade = proc.stdout.strip().splitlines()
    assert port.startswith(f"ImportError {framework} | {package} needs ")
    for line in (port, facade):
        assert line.endswith(f"pip install 'gln-jax[{extra}]'"), line
    assert facade.startswith(f"ImportError {framework} | backend '{backend}' needs a framework")
