"""The comparison of this checkout against a git revision (``benchmarks/compare.py``)."""

import io
from pathlib import Path

import compare
import numpy as np
import pytest


def test_compare_script_times_every_kind_of_case_on_a_tree(tmp_path):
    rng = np.random.default_rng(0)
    data = tmp_path / "data.npz"
    np.savez(data, X=rng.random((40, 784)).astype(np.float32), y=rng.integers(0, 10, 40))
    cases = [
        ["numpy fit", "numpy", [2, 1], "fit", 32, 1],
        ["numpy fit b4", "numpy", [2, 1], "fit", 32, 4],
        ["numpy loop", "numpy", [2, 1], "loop", 12, 1],
        ["numpy infer", "numpy", [2, 1], "infer", 40, 20],
    ]
    root = Path(compare.__file__).resolve().parents[1]
    rates = compare._run(root, {"data": str(data), "cases": cases, "repeats": 2})
    assert set(rates) == {case[0] for case in cases}
    assert all(rate > 0 for rate in rates.values())


@pytest.mark.slow
def test_compare_against_head_prints_ratios(capsys):
    out = io.StringIO()
    rates = compare.compare("HEAD", runs=1, cases=(compare.CASES[-2],), out=out)
    name = compare.CASES[-2][0]
    assert len(rates[name]["old"]) == len(rates[name]["new"]) == 1
    assert name in out.getvalue() and "x" in out.getvalue().splitlines()[-1]


def test_compare_prints_medians_and_the_spread_of_paired_runs(monkeypatch):
    """Two alternated runs (old, new, old, new): medians, their ratio, and the lowest and
    highest ratio of one run's pair (the timing script itself is stubbed)."""
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
    seen = {}

    def fake(rev, runs, cases, repeats):
        seen.update(rev=rev, runs=runs, repeats=repeats, names=[case[0] for case in cases])

    monkeypatch.setattr(compare, "compare", fake)
    assert compare.main(["abc123", "--runs", "1", "--cases", "b32", "loop"]) == 0
    assert seen["rev"] == "abc123" and seen["runs"] == 1 and seen["repeats"] == 3
    assert seen["names"] == [c[0] for c in compare.CASES if "b32" in c[0] or "loop" in c[0]]
    assert seen["names"]
    with pytest.raises(SystemExit):
        compare.main(["abc123", "--cases", "no such case"])
    assert compare.main(["abc123", "--repeats", "5", "--cases", "loop"]) == 0
    assert seen["repeats"] == 5
    for bad in (["--repeats", "0"], ["--runs", "0"]):
        with pytest.raises(SystemExit):
            compare.main(["abc123", *bad])


@pytest.mark.parametrize("runs, repeats", [(0, 3), (3, 0)])
def test_compare_refuses_fewer_than_one_run_or_repeat(runs, repeats):
    with pytest.raises(ValueError, match="at least 1"):  # before any worktree is made
        compare.compare("HEAD", runs=runs, repeats=repeats)


def test_compare_only_refuses_a_filter_that_matches_no_case():
    with pytest.raises(SystemExit):
        compare.main(["HEAD", "--only", "no such case"])
