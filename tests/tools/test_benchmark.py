"""The benchmark driver: one real case on a slice of MNIST, rendering, README update."""

import json
import os

import numpy as np
import pytest

from gln_jax.tools import benchmark


@pytest.mark.skipif(
    not os.environ.get("GLN_JAX_DATA_DIR"),
    reason="needs real MNIST: set GLN_JAX_DATA_DIR to a directory holding the IDX files",
)
def test_one_case_measures_everything():
    spec = {
        "backend": "jax",
        "task": "10class",
        "layer_sizes": [2, 1],
        "subset": 300,
        "repeats": 1,
        "loop_calls": 50,
        "batches": [1, 4],
        "seed": 0,
        "accuracy": True,
        "accuracy_subset": 300,
    }
    records = benchmark.run_case(spec)
    cases = {r["case"]: r for r in records}
    assert set(cases) == {
        "compile",
        "train_b1",
        "train_b4",
        "predict_loop",
        "infer",
        "accuracy",
        "peak_memory",
    }
    assert all(r["value"] > 0 for r in records)
    assert cases["train_b1"]["unit"] == "samples/s" and cases["accuracy"]["value"] <= 100


def test_render_and_update_readme(tmp_path):
    data = {
        "date": "2026-01-01",
        "mode": "full",
        "device": "cpu",
        "machine": {"cpu": "Test CPU", "cores": 2, "memory_gib": 24.0, "platform": "x"},
        "versions": {"jax": "0"},
        "results": [
            {
                "backend": "numpy",
                "task": "digit3",
                "layer_sizes": [4, 4, 1],
                "case": "infer",
                "value": 12345.6,
                "unit": "samples/s",
            },
            {
                "backend": "numpy",
                "task": "digit3",
                "layer_sizes": [4, 4, 1],
                "case": "accuracy",
                "value": 98.5,
                "unit": "%",
            },
        ],
        "failures": [],
        "not_measured": ["GPU"],
    }
    table = benchmark.render(data)
    assert "Test CPU, 2 cores" in table and "12,346" in table and "98.50" in table
    assert "GPU: not measured." in table
    readme = tmp_path / "README.md"
    readme.write_text(f"a\n{benchmark.README_START}\nold\n{benchmark.README_END}\nb\n")
    benchmark.update_readme(str(readme), table)
    text = readme.read_text()
    assert "old" not in text and "12,346" in text
    assert text.startswith("a\n") and text.endswith("b\n")
    path = tmp_path / "r.json"
    path.write_text(json.dumps(data))
    assert benchmark.main(["--render", str(path)]) == 0


def test_plan_quick_and_full():
    parser_args = type("A", (), {"quick": True, "backends": ["jax"], "sizes": ["4,4,1"]})
    quick = benchmark.plan(parser_args)
    assert len(quick) == 1 and quick[0]["subset"] == 2000
    parser_args.quick = False
    full = benchmark.plan(parser_args)
    assert {s["task"] for s in full} == {"10class", "digit3"}
    assert [128, 128, 1] in [s["layer_sizes"] for s in full]  # the width sweep


def test_compare_script_times_every_kind_of_case_on_a_tree(tmp_path):
    from pathlib import Path

    import numpy as np

    from gln_jax.tools import compare

    rng = np.random.default_rng(0)
    data = tmp_path / "data.npz"
    np.savez(data, X=rng.random((40, 784)).astype(np.float32), y=rng.integers(0, 10, 40))
    cases = [
        ["numpy fit", "numpy", [2, 1], "fit", 32, 1],
        ["numpy fit b4", "numpy", [2, 1], "fit", 32, 4],
        ["numpy loop", "numpy", [2, 1], "loop", 12, 1],
        ["numpy infer", "numpy", [2, 1], "infer", 40, 20],
    ]
    root = Path(compare.__file__).resolve().parents[2]
    rates = compare._run(root, {"data": str(data), "cases": cases, "repeats": 2})
    assert set(rates) == {case[0] for case in cases}
    assert all(rate > 0 for rate in rates.values())


@pytest.mark.slow
def test_compare_against_head_prints_ratios(capsys):
    import io

    from gln_jax.tools import compare

    out = io.StringIO()
    rates = compare.compare("HEAD", runs=1, cases=(compare.CASES[-2],), out=out)
    name = compare.CASES[-2][0]
    assert len(rates[name]["old"]) == len(rates[name]["new"]) == 1
    assert name in out.getvalue() and "x" in out.getvalue().splitlines()[-1]


def test_compare_prints_medians_and_the_spread_of_paired_runs(monkeypatch):
    """Two alternated runs (old, new, old, new): medians, their ratio, and the lowest and
    highest ratio of one run's pair (the timing script itself is stubbed)."""
    import io

    from gln_jax.tools import compare

    case = compare.CASES[0]
    figures = iter([100.0, 150.0, 200.0, 500.0])  # old, new of run 1, then of run 2
    monkeypatch.setattr(compare, "_run", lambda root, spec: {case[0]: next(figures)})
    monkeypatch.setattr(compare, "_mnist", lambda n: (np.zeros((n, 784), np.float32), np.zeros(n)))
    out = io.StringIO()
    rates = compare.compare("HEAD", runs=2, cases=(case,), out=out)
    assert rates[case[0]] == {"old": [100.0, 200.0], "new": [150.0, 500.0]}
    line = out.getvalue().splitlines()[-1].split()
    assert line[-4:] == ["150", "325", "2.17x", "1.50-2.50x"]


def test_compare_cases_option_selects_by_name(monkeypatch):
    from gln_jax.tools import compare

    seen = {}

    def fake(rev, runs, cases, repeats):
        seen.update(rev=rev, runs=runs, repeats=repeats, names=[case[0] for case in cases])

    monkeypatch.setattr(compare, "compare", fake)
    assert benchmark.main(["--compare", "abc123", "--runs", "1", "--cases", "b32", "loop"]) == 0
    assert seen["rev"] == "abc123" and seen["runs"] == 1 and seen["repeats"] == 3
    assert seen["names"] == [c[0] for c in compare.CASES if "b32" in c[0] or "loop" in c[0]]
    assert seen["names"]
    with pytest.raises(SystemExit):
        benchmark.main(["--compare", "abc123", "--cases", "no such case"])
    assert benchmark.main(["--compare", "abc123", "--repeats", "5", "--cases", "loop"]) == 0
    assert seen["repeats"] == 5
    for bad in (["--repeats", "0"], ["--runs", "0"]):
        with pytest.raises(SystemExit):
            benchmark.main(["--compare", "abc123", *bad])


@pytest.mark.parametrize("runs, repeats", [(0, 3), (3, 0)])
def test_compare_refuses_fewer_than_one_run_or_repeat(runs, repeats):
    from gln_jax.tools import compare

    with pytest.raises(ValueError, match="at least 1"):  # before any worktree is made
        compare.compare("HEAD", runs=runs, repeats=repeats)


def test_compare_only_refuses_a_filter_that_matches_no_case():
    from gln_jax.tools import benchmark

    with pytest.raises(SystemExit):
        benchmark.main(["--compare", "HEAD", "--only", "no such case"])
