"""The scikit-learn comparison tool: a real (small) run, rendering, and --render of saved rows."""

import json

import pytest

pytest.importorskip("sklearn")

import sklearn_compare  # noqa: E402
from sklearn.linear_model import Perceptron  # noqa: E402

from gln_jax.sklearn import GLNClassifier  # noqa: E402


def test_run_and_render_on_iris(monkeypatch, tmp_path, capsys):
    small = {
        "GLNClassifier": lambda: GLNClassifier(
            layer_sizes=(4, 1), context_map_size=2, backend="numpy", random_state=0
        ),
        "Perceptron": lambda: Perceptron(random_state=0),
    }
    monkeypatch.setattr(sklearn_compare, "estimators", lambda: small)
    rows = sklearn_compare.run(["iris"])
    assert [r["estimator"] for r in rows] == ["GLNClassifier", "Perceptron"]
    for row in rows:
        assert (row["samples"], row["features"], row["classes"]) == (150, 4, 3)
        assert len(row["fold_scores"]) == 5
        assert abs(sum(row["fold_scores"]) / 5 - row["accuracy_mean"]) < 1e-12
        assert row["accuracy_mean"] > 0.5
    assert rows[0]["seconds_cold"] is not None and rows[1]["seconds_cold"] is None
    table = sklearn_compare.render(rows)
    lines = table.splitlines()
    assert len(lines) == 4 and lines[2].startswith("| iris (150 x 4, 3) | GLNClassifier | ")
    assert "cold)" in lines[2] and "cold" not in lines[3]
    saved = tmp_path / "rows.json"
    saved.write_text(json.dumps({"meta": {}, "rows": rows}))
    capsys.readouterr()
    assert sklearn_compare.main(["--render", str(saved)]) == 0
    assert capsys.readouterr().out.strip() == table


def test_regression_rows_and_table(monkeypatch):
    from sklearn.linear_model import LinearRegression

    from gln_jax.sklearn import GLNRegressor

    small = {
        "GLNRegressor": lambda: GLNRegressor(
            layer_sizes=(4, 1), context_map_size=2, backend="numpy", random_state=0
        ),
        "LinearRegression": LinearRegression,
    }
    monkeypatch.setattr(sklearn_compare, "regressors", lambda: small)
    rows = sklearn_compare.run(["diabetes"])
    assert [r["estimator"] for r in rows] == ["GLNRegressor", "LinearRegression"]
    for row in rows:
        assert (row["task"], row["samples"], row["features"]) == ("regression", 442, 10)
        assert abs(sum(row["fold_scores"]) / 5 - row["r2_mean"]) < 1e-12
        assert "accuracy_mean" not in row
    assert rows[1]["r2_mean"] > 0.4  # ordinary least squares on diabetes: about 0.48
    lines = sklearn_compare.render(rows).splitlines()
    assert lines[0] == "| dataset (samples x features) | estimator | 5-fold R^2 | seconds |"
    assert lines[2].startswith("| diabetes (442 x 10) | GLNRegressor | ")
    r2 = f"{rows[1]['r2_mean']:.3f}"
    assert lines[3].startswith(f"| diabetes (442 x 10) | LinearRegression | {r2} +- ")
