"""The prepared accelerator run works end to end on the CPU (toy sizes) and keeps its budget."""

import json

import accelerator


def test_smoke_run_fills_every_case(tmp_path, capsys):
    path = tmp_path / "accelerator.json"
    assert accelerator.main(["--smoke", "--json", str(path)]) == 0
    result = json.loads(path.read_text())
    assert json.loads(capsys.readouterr().out) == result
    assert result["environment"]["backend"] == "cpu" and result["smoke"]
    cases = result["cases"]
    assert list(cases) == [name for name, _ in accelerator.CASES]
    assert set(cases["fit"]) == {"4,4,1 b1", "4,4,1 b32", "case_seconds"}
    for name in ("4,4,1 b1", "4,4,1 b32"):
        assert cases["fit"][name]["per_s"] > 0
    assert cases["infer"]["per_s"] > 0 and cases["predict_loop"]["per_s"] > 0
    for name, shared in (("ensemble", False), ("sweep", True)):
        assert cases[name]["speedup_separate_over_one_scan"] > 0
        assert cases[name]["shared_gates"] is shared
        assert cases[name]["max_diff_one_scan_vs_separate"] < 1e-6  # members = separate fits
    sharded = cases["sharding"]  # scaling.classes (benchmarks/), one device here
    assert sharded["classes"] == 12 and sharded["padded_classes"] >= 12
    assert sharded["init_sharded_vs_init_max_diff"] < 1e-6
    assert sharded["train_outputs_max_diff"] < 1e-5 and sharded["predict_max_diff"] < 1e-5
    assert sharded["argmax_agreement"] == 1.0
    assert set(sharded["sharded_stages"]) == {"init", "fit", "predict"}
    assert sharded["peak_rss_mib_sharded_run"] == max(
        stage["peak_mib"] for stage in sharded["sharded_stages"].values()
    )
    assert sharded["peak_rss_mib_single_run"] > 0


def test_cases_past_the_budget_are_skipped():
    result = accelerator.run(budget_s=0.0, smoke=True)
    assert all("skipped" in case for case in result["cases"].values())
