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
