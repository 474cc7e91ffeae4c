"""The benchmark driver: one real case on a slice of MNIST, rendering, the plan."""

import json
import os

import pytest

from gln_jax.tools import benchmark


@pytest.mark.heavy
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


def test_render_and_the_render_option(tmp_path, capsys):
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
    path = tmp_path / "r.json"
    path.write_text(json.dumps(data))
    assert benchmark.main(["--render", str(path)]) == 0
    assert "12,346" in capsys.readouterr().out


def test_plan_quick_and_full():
    parser_args = type("A", (), {"quick": True, "backends": ["jax"], "sizes": ["4,4,1"]})
    quick = benchmark.plan(parser_args)
    assert len(quick) == 1 and quick[0]["subset"] == 2000
    parser_args.quick = False
    full = benchmark.plan(parser_args)
    assert {s["task"] for s in full} == {"10class", "digit3"}
    assert [128, 128, 1] in [s["layer_sizes"] for s in full]  # the width sweep
