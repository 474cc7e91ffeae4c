"""Sphinx extension of the gln-jax docs: benchmark tables read from ``benchmarks/*.json`` at
build time, and a check that every documented public object has a docstring.

``benchmark-table`` renders a results file with the ``render`` function of the tool that
measured it (``gln_jax.tools.benchmark`` and ``gln_jax.tools.accuracy`` of the package, the
scripts of ``benchmarks/`` for the rest), followed by the command that produced the
file, the machine and the date, as the file records them::

    ```{benchmark-table} speed
    ```

Kinds: ``speed``, ``accuracy``, ``learning-curve``, ``recipe-search``, ``paper-ablation``,
``paper-combos``, ``sklearn``, ``scaling-classes``, ``recipe-timing``, and those of the UCI
regression and forgetting runs. A missing or unreadable file is a build warning (an error under
``-W``), never a silently empty table.
"""

from __future__ import annotations

import importlib.util
import json
import statistics
import subprocess
from pathlib import Path
from types import ModuleType

from docutils import nodes
from docutils.statemachine import StringList
from sphinx.util import logging
from sphinx.util.docutils import SphinxDirective

LOGGER = logging.getLogger(__name__)

ACCURACY_FILES = (
    "accuracy-jax.json",
    "accuracy-fashion.json",
    "accuracy-backends.json",
    "accuracy-recipe-seed0.json",
    "accuracy-recipe-seed1.json",
    "accuracy-recipe-seed2.json",
    "accuracy-recipe-fashion.json",
)
#: The machine of files that do not record their own (the project's measurement machine).
SHARED_MACHINE = "a 2-core Intel Xeon (AVX-512) with 23.6 GiB of memory"


def _committed(root: Path, *files: str) -> str:
    """The date the newest of ``files`` was committed, or a sentence saying it is not known."""
    try:
        out = subprocess.run(
            ["git", "log", "-1", "--format=%cs", "--", *(f"benchmarks/{f}" for f in files)],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        out = ""
    return f"committed {out}" if out else "date not recorded"


def _script(root: Path, name: str) -> ModuleType:
    """The measuring script ``benchmarks/<name>.py`` of the checkout, imported as a module
    (its ``render`` writes the table)."""
    path = root / "benchmarks" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"gln_benchmarks_{name}", path)
    if spec is None or spec.loader is None:
        raise OSError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _speed(root: Path) -> tuple[str, str]:
    from gln_jax.tools import benchmark

    data = json.loads((root / "benchmarks/results.json").read_text())
    m = data["machine"]
    note = (
        f"Command: `python -m gln_jax.benchmark --json benchmarks/results.json` "
        f"({data['wall_seconds']:.0f} s of measurements; {data['settings']['subset']:,} "
        f"examples, median of {data['settings']['repeats']} repeats). Machine: {m['cpu']}, "
        f"{m['cores']} cores, {m['memory_gib']} GiB, {m['platform']}. Date: {data['date']}."
    )
    return benchmark.render(data), note


def _accuracy(root: Path) -> tuple[str, str]:
    from gln_jax.tools import accuracy

    result: dict = {"runs": [], "agreement": []}
    for name in ACCURACY_FILES:
        earlier = json.loads((root / "benchmarks" / name).read_text())
        result["runs"] += earlier["runs"]
        result["agreement"] += earlier["agreement"]
    note = (
        "Command: `python -m gln_jax.accuracy` (per file: `--protocols`, `--settings`, "
        "`--seeds`, `--backends`, `--dataset` as listed in the table; "
        "`--json benchmarks/accuracy-*.json`), merged with `--merge`. "
        f"Machine: {SHARED_MACHINE}. Date: {_committed(root, *ACCURACY_FILES)}."
    )
    return accuracy.render(result), note


def _learning_curve(root: Path) -> tuple[str, str]:
    learning_curve = _script(root, "learning_curve")

    data = json.loads((root / "benchmarks/learning-curve.json").read_text())
    note = (
        "Command: `python benchmarks/learning_curve.py --json benchmarks/learning-curve.json` "
        f"({data['dataset']}, deskewed: {data['deskewed']}, seed {data['seed']}, tested on "
        f"{data['test_examples']:,} test examples after each point). Machine: {SHARED_MACHINE}. "
        f"Date: {_committed(root, 'learning-curve.json')}."
    )
    return learning_curve.render(data), note


def _recipe_search(root: Path) -> tuple[str, str]:
    recipe_search = _script(root, "recipe_search")

    note = (
        "Command: `python benchmarks/recipe_search.py --phase PHASE --out "
        "benchmarks/recipe-search.jsonl` (one row per configuration, in the order tried; "
        "render with `--render`). Validation: trained online on the first 50,000 training "
        "examples, tested on the last 10,000, deskewed MNIST, 10 classes, batch 1, one pass. "
        f"Machine: {SHARED_MACHINE}; up to three searches ran at once, so the seconds compare "
        f"poorly across rows. Date: {_committed(root, 'recipe-search.jsonl')}."
    )
    return recipe_search.render(root / "benchmarks/recipe-search.jsonl"), note


def _paper_ablation(root: Path, phase: str, file: str) -> tuple[str, str]:
    recipe_search = _script(root, "recipe_search")

    rows = recipe_search.read_results(root / "benchmarks" / file)
    machines = sorted({row["machine"] for row in rows})
    dates = sorted({row["date"] for row in rows})
    note = (
        f"Command: `python benchmarks/recipe_search.py --phase {phase} --isolate --out "
        f"benchmarks/{file}` (render with `--render --phase {phase}`). Validation: trained "
        "online on the first 50,000 training examples, tested on the last 10,000, deskewed "
        "MNIST, 10 classes, batch 1, one pass, seed 0; each configuration alone, in a fresh "
        f"process. Machine: {'; '.join(machines)}, no GPU. Date: {', '.join(dates)}."
    )
    return recipe_search.render_ablation(rows), note


def _sklearn(root: Path) -> tuple[str, str]:
    sklearn_compare = _script(root, "sklearn_compare")

    data = json.loads((root / "benchmarks/sklearn-compare.json").read_text())
    meta = data.get("meta", {})
    machine = meta.get("machine") or SHARED_MACHINE
    if isinstance(machine, dict):
        machine = ", ".join(f"{k} {v}" for k, v in machine.items())
    date = meta.get("date") or _committed(root, "sklearn-compare.json")
    note = (
        "Command: `python benchmarks/sklearn_compare.py --json benchmarks/sklearn-compare.json`"
        f". Machine: {machine}. Date: {date}."
    )
    return sklearn_compare.render(data["rows"]), note


def _scaling_classes(root: Path) -> tuple[str, str]:
    d = json.loads((root / "benchmarks/scaling-classes.json").read_text())
    rows = [
        ("devices (forced host devices)", f"{d['devices']}"),
        ("classes (padded)", f"{d['classes']:,} ({d['padded_classes']:,})"),
        ("examples, dtype, chunk", f"{d['examples']:,}, {d['dtype']}, {d['chunk_size']}"),
        ("state (MiB)", f"{d['state_mib']:.0f}"),
        (
            "share of layer 0's weights per device",
            ", ".join(map(str, d["shard_of_layer0_weights"])),
        ),
        ("training outputs, max difference", f"{d['train_outputs_max_diff']:.1e}"),
        ("predictions, max difference", f"{d['predict_max_diff']:.1e}"),
        ("state, max difference", f"{d['state_max_diff']:.1e}"),
        (
            "`init_sharded` against `init`, max difference",
            f"{d['init_sharded_vs_init_max_diff']:.1e}",
        ),
        ("argmax agreement", f"{d['argmax_agreement']:.3f}"),
        ("sharded run, with compilation (s)", f"{d['sharded_seconds_with_compile']:.0f}"),
        ("one-device run, with compilation (s)", f"{d['single_seconds_with_compile']:.0f}"),
    ]
    for stage, what in (
        ("init", "`init_sharded`"),
        ("fit", "`fit_sharded`"),
        ("predict", "`predict_sharded`"),
    ):
        rss = d["sharded_stages"][stage]
        rows.append(
            (
                f"{what}: resident before, peak during (MiB)",
                f"{rss['rss_before_mib']:,.0f}, {rss['peak_mib']:,.0f}",
            )
        )
    rows += [
        ("peak RSS of the sharded run (MiB)", f"{d['peak_rss_mib_sharded_run']:,.0f}"),
        (
            "one-device run: resident before, peak during (MiB)",
            f"{d['rss_mib_before_single_run']:,.0f}, {d['peak_rss_mib_single_run']:,.0f}",
        ),
    ]
    table = "\n".join(["| quantity | value |", "|---|---:|"] + [f"| {a} | {b} |" for a, b in rows])
    note = (
        "Command: `XLA_FLAGS=--xla_force_host_platform_device_count=8 python "
        "benchmarks/scaling.py classes --dtype float64 --examples 1000` (`[16, 16, 1]`, 64 "
        f"features). Machine: {SHARED_MACHINE}. "
        f"Date: {_committed(root, 'scaling-classes.json')}."
    )
    return table, note


def _recipe_timing(root: Path) -> tuple[str, str]:
    d = json.loads((root / "benchmarks/recipe-timing-ab.json").read_text())
    prev, cur = d["previous_recipe_seconds"], d["current_recipe_seconds"]
    table = "\n".join(
        [
            "| recipe | seconds per round | median (s) |",
            "|---|---|---:|",
            f"| pixels as base predictions | {', '.join(map(str, prev))} | "
            f"{statistics.median(prev):.2f} |",
            f"| `recipes.mnist()` (`base_gain=60.0`) | {', '.join(map(str, cur))} | "
            f"{statistics.median(cur):.2f} |",
        ]
    )
    note = (
        f"What: {d['what']}. Machine: {d['machine']}. "
        f"Date: {_committed(root, 'recipe-timing-ab.json')}."
    )
    return table, note


def _provenance(meta: dict) -> str:
    """A table's note: the command, machine and date its JSON records."""
    return f"Command: `{meta['command']}`. Machine: {meta['machine']}. Date: {meta['date']}."


def _uci(root: Path, file: str, render: str) -> tuple[str, str]:
    uci_regression = _script(root, "uci_regression")
    data = json.loads((root / "benchmarks" / file).read_text())
    return getattr(uci_regression, render)(data), _provenance(data["meta"])


def _uci_members(root: Path) -> tuple[str, str]:
    """The five-member ensemble (a ``--members 5`` run) beside the recipe's
    (``uci-regression.json``)."""
    uci_regression = _script(root, "uci_regression")
    data = json.loads((root / "benchmarks" / "uci-regression-five-members.json").read_text())
    recipe = json.loads((root / "benchmarks" / "uci-regression.json").read_text())
    return uci_regression.render_members(data, recipe), _provenance(data["meta"])


def _forgetting(root: Path, file: str) -> tuple[str, str]:
    data = json.loads((root / "benchmarks" / file).read_text())
    return _script(root, "forgetting").render(data), _provenance(data)


KINDS = {
    "speed": _speed,
    "accuracy": _accuracy,
    "learning-curve": _learning_curve,
    "recipe-search": _recipe_search,
    "paper-ablation": lambda root: _paper_ablation(root, "paper", "paper-ablation.jsonl"),
    "paper-combos": lambda root: _paper_ablation(root, "paper-combos", "paper-combos.jsonl"),
    "sklearn": _sklearn,
    "scaling-classes": _scaling_classes,
    "recipe-timing": _recipe_timing,
    "uci-regression": lambda root: _uci(root, "uci-regression.json", "render"),
    "uci-reference": lambda root: _uci(root, "uci-regression-reference.json", "render_reference"),
    "uci-search": lambda root: _uci(root, "uci-regression-search.json", "render_search"),
    "uci-search-2": lambda root: _uci(root, "uci-regression-search-2.json", "render_search"),
    "uci-search-3": lambda root: _uci(root, "uci-regression-search-3.json", "render_search"),
    "uci-search-4": lambda root: _uci(root, "uci-regression-search-4.json", "render_search"),
    "uci-search-5": lambda root: _uci(root, "uci-regression-search-5.json", "render_search"),
    "uci-search-6": lambda root: _uci(root, "uci-regression-search-6.json", "render_search"),
    "uci-members": _uci_members,
    "forgetting": lambda root: _forgetting(root, "forgetting.json"),
    "forgetting-permuted": lambda root: _forgetting(root, "forgetting-permuted.json"),
}


class BenchmarkTable(SphinxDirective):
    """``{benchmark-table} KIND``: a table rendered from ``benchmarks/``, with its provenance."""

    required_arguments = 1
    has_content = False

    def run(self) -> list[nodes.Node]:
        kind = self.arguments[0]
        root = Path(self.config.gln_root)
        if kind not in KINDS:
            raise self.error(f"unknown benchmark table {kind!r}; known: {sorted(KINDS)}")
        try:
            table, note = KINDS[kind](root)
        except (OSError, KeyError, ValueError) as error:
            raise self.error(f"benchmark table {kind!r}: {type(error).__name__}: {error}") from None
        for path in (root / "benchmarks").glob("*.json*"):
            self.env.note_dependency(str(path))
        text = f"{table}\n\n{note}\n"
        container = nodes.container(classes=["benchmark-table"])
        self.state.nested_parse(
            StringList(text.splitlines(), source=f"benchmarks:{kind}"),
            self.content_offset,
            container,
        )
        return [container]


def _check_docstring(app, what, name, obj, options, lines) -> None:
    """Warns (an error under ``-W``) when a documented public object has no docstring."""
    if what in ("module", "class", "function", "exception") and not any(s.strip() for s in lines):
        LOGGER.warning("%s %s has no docstring", what, name, type="gln", subtype="docstring")


def _prepare_docstring(app, what, name, obj, options, lines) -> None:
    """Runs before napoleon: keeps data docstrings free of napoleon's inline ``type: text``
    split (a constant's comment "Scale of x: ..." is prose, not a type), and joins an ``Args``
    entry whose comma-separated names wrap onto a second line."""
    if what in ("data", "attribute"):
        _PROSE[name] = list(lines)
    for i in range(len(lines) - 2, -1, -1):
        line, following = lines[i], lines[i + 1]
        indent = len(line) - len(line.lstrip())
        if (
            line.rstrip().endswith(",")
            and following.strip()
            and len(following) - len(following.lstrip()) > indent
            and ":" not in line
        ):
            lines[i] = f"{line.rstrip()} {following.strip()}"
            del lines[i + 1]


_PROSE: dict[str, list[str]] = {}


def _restore_prose(app, what, name, obj, options, lines) -> None:
    """Runs after napoleon: a constant's docstring is shown as written."""
    if name in _PROSE:
        lines[:] = _PROSE.pop(name)


#: Implementation module -> the public module that re-exports its names.
PUBLIC_HOME = {
    "gln_jax.core._transforms": "gln_jax.transforms",
    "gln_jax.api._streaming": "gln_jax.streaming",
    "gln_jax.core._ensemble": "gln_jax.ensemble",
    "gln_jax.core._sharding": "gln_jax.sharding",
    "gln_jax.core.kernel": "gln_jax.kernel",
    "gln_jax.data.datasets": "gln_jax.datasets",
    "gln_jax.data.mnist": "gln_jax.datasets",
}


def _missing_reference(app, env, node, contnode):
    """Resolves a reference that a docstring of an implementation module makes by a bare or
    internal name (``:func:`init```, ``:func:`gln_jax.core.network.init```) to the same name's
    public home, when the reference documents one; anything else stays unresolved."""
    if node.get("refdomain") != "py":
        return None
    target = node["reftarget"].lstrip(".~")
    context = node.get("py:module") or ""
    tail = target.rsplit(".", 1)[-1] if target.startswith("gln_jax.") else target
    homes = [PUBLIC_HOME.get(context), context, "gln_jax", *dict.fromkeys(PUBLIC_HOME.values())]
    domain = env.get_domain("py")
    for home in filter(None, homes):
        candidate = f"{home}.{tail}"
        if candidate in domain.objects:
            return domain.resolve_xref(
                env, node["refdoc"], app.builder, node["reftype"], candidate, node, contnode
            )
    return None


def setup(app):
    app.connect("missing-reference", _missing_reference)
    app.connect("autodoc-process-docstring", _prepare_docstring, priority=400)
    app.connect("autodoc-process-docstring", _restore_prose, priority=600)
    app.add_directive("benchmark-table", BenchmarkTable)
    app.connect("autodoc-process-docstring", _check_docstring)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
