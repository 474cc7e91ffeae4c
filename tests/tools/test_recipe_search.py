"""The recipe search's pieces that need no training: side information, base predictions, table."""

import json

import numpy as np
import pytest
import recipe_search


def test_online_side_info_uses_only_the_past():
    x = np.array([[1.0, 0.0], [3.0, 2.0], [2.0, 4.0]], np.float32)
    side, (mean, scale) = recipe_search.online_side_info(x, "center", 10.0)
    expected = 10.0 * np.array([[0.0, 0.0], [1.0, 1.0], [0.0, 2.0]])  # x_t - mean(x_0..x_t)
    np.testing.assert_allclose(side, expected, rtol=1e-6)
    np.testing.assert_allclose(mean, [2.0, 2.0])
    np.testing.assert_array_equal(scale, [1.0, 1.0])


def test_base_inputs():
    x = np.array([[0.0, 0.5, 1.0]], np.float32)
    side = np.array([[-30.0, 0.0, 15.0]], np.float32)  # centred pixels times scale 30
    params = {**recipe_search.BASE, "scale": 30.0}
    assert recipe_search.base_inputs(x, side, params) is x
    squeezed = recipe_search.base_inputs(x, side, {**params, "base": "squeeze", "base_param": 0.05})
    np.testing.assert_allclose(squeezed, [[0.05, 0.5, 0.95]], rtol=1e-6)
    sig = recipe_search.base_inputs(x, side, {**params, "base": "sigmoid", "base_param": 4.0})
    np.testing.assert_allclose(sig, 1.0 / (1.0 + np.exp(-4.0 * np.array([[-1.0, 0.0, 0.5]]))))
    both = recipe_search.base_inputs(x, side, {**params, "base": "both", "base_param": 4.0})
    np.testing.assert_array_equal(both, np.concatenate([x, sig.astype(np.float32)], axis=1))
    with pytest.raises(ValueError, match="unknown base 'cube'"):
        recipe_search.base_inputs(x, side, {**params, "base": "cube"})


def test_render_reads_rows_with_and_without_a_base(tmp_path):
    row = {**recipe_search.BASE, "val_accuracy": 96.5, "member_accuracy": [96.5], "seconds": 3.0}
    old = {key: value for key, value in row.items() if key not in ("base", "base_param")}
    ensemble = {**row, "base": "sigmoid", "base_param": 3.0, "seeds": [0, 1], "context_bias": False}
    ensemble.update(lr_b=50.0, member_accuracy=[96.0, 96.25])
    path = tmp_path / "search.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in (old, ensemble)))
    lines = recipe_search.render(path).splitlines()
    assert lines[2] == (
        "| 1 | [16, 16, 1] | 16 | center | 10 | pixel | 0.001 | 5 | 0.001 | 0 | 96.50 | 3 |"
    )
    assert lines[3] == (
        "| 2 | [16, 16, 1] | 16 | center, zero offsets | 10 | sigmoid 3 | 0.001 | 5 "
        "| min(0.001, 50/t) "
        "| 0,1 (ensemble; members 96.00, 96.25) | 96.50 | 3 |"
    )
    assert recipe_search.variants("size")[1]["seeds"] == [0, 1, 2]
    with pytest.raises(ValueError, match="unknown phase"):
        recipe_search.variants("nope")


def test_ablation_moves_one_factor_at_a_time_between_the_paper_and_the_recipe():
    rows = recipe_search.variants("paper")
    labels = [row["label"] for row in rows]
    assert len(set(labels)) == len(labels)
    paper, recipe = rows[labels.index("paper as written")], rows[labels.index("recipe")]
    assert paper["layers"] == [128, 128, 1] and paper["context_map_size"] == 4
    assert (paper["lr"], paper["lr_b"], paper["transform"], paper["base"]) == (
        0.01,
        100.0,
        "none",
        "pixel",
    )
    assert paper["hyperplane_normalize"] is True and paper["hyperplane_bias_scale"] == 1.0
    assert recipe["base_param"] == 60.0 and recipe["layers"] == [32, 32, 1]
    keys = set(recipe_search.BASE) | {"label"}
    for row in rows:
        assert set(row) == keys
        start = paper if row["label"].startswith("paper") else recipe
        changed = {key for key in keys - {"label"} if row[key] != start[key]}
        # one factor: the inputs move together (the sharpened base is a function of the gates)
        inputs = {"transform", "scale", "base", "base_param"}
        # the open-source example's row moves the inputs and the offsets together
        one_factor = changed <= inputs | {"hyperplane_bias_scale"} or changed in (
            {"context_map_size"},
            {"lr", "lr_b"},
            {"layers"},
            {"hyperplane_normalize"},
        )
        assert one_factor, (row["label"], changed)


def test_combinations_start_from_the_recipe_and_are_labelled():
    rows = recipe_search.variants("paper-combos")
    labels = [row["label"] for row in rows]
    assert len(set(labels)) == len(labels)
    for row in rows:
        if row["label"].startswith("recipe + "):
            expected = {"transform": "center", "scale": 30.0, "base": "sigmoid", "base_param": 60.0}
        else:
            assert row["label"].startswith("paper + example's inputs and offsets, ")
            expected = {"transform": "standardize", "scale": 1.0, "base": "sigmoid"}
        assert {key: row[key] for key in expected} == expected, row["label"]
    assert {row["context_map_size"] for row in rows} == {4, 5, 6, 7, 8}
    assert [128, 128, 128, 1] in [row["layers"] for row in rows]


def test_render_ablation(tmp_path):
    row = {**recipe_search.PAPER, "label": "paper as written", "val_accuracy": 95.125}
    row.update(member_accuracy=[95.125], seconds=10.0, examples_per_second=4321.6)
    row["peak_rss_mib"] = 812.4
    other = {**row, **recipe_search.RECIPE_INPUTS, "label": "x", "lr_b": None}
    other["hyperplane_normalize"] = False
    path = tmp_path / "ablation.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in (row, other)))
    lines = recipe_search.render_ablation(recipe_search.read_results(path)).splitlines()
    assert lines[2] == (
        "| paper as written | [128, 128, 1] | 16 | raw pixels | pixel | min(100/t, 0.01) "
        "| 95.12 | 4322 | 812 |"
    )
    assert lines[3] == (
        "| x | [128, 128, 1] | 16 | center x30, unnormalised | sigmoid 60 | 0.01 | 95.12 "
        "| 4322 | 812 |"
    )


def test_context_usage_counts_constant_hyperplanes_and_used_contexts():
    rng = np.random.default_rng(0)
    blank = np.zeros((12000, 784), np.float32)  # every projection 0: the offsets decide alone
    paper = {**recipe_search.PAPER, "layers": [2, 1], "label": "blank"}
    found = recipe_search.context_usage(paper, blank, neurons=20)
    assert found == {
        "label": "blank",
        "contexts": 16,
        "constant_hyperplanes": 1.0,
        "contexts_used": 1.0,
    }
    noise = rng.standard_normal((12000, 784)).astype(np.float32)
    centred = {**recipe_search.RECIPE, "layers": [2, 1], "label": "noise"}
    found = recipe_search.context_usage(centred, noise, neurons=20)
    assert found["constant_hyperplanes"] == 0.0 and found["contexts_used"] == 64.0
