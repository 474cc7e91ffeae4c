"""The README's regression targets of the Gaussian family (scikit-learn baselines)."""

import pytest

pytest.importorskip("sklearn")

import regression  # noqa: E402


def test_diabetes_within_ten_percent_of_linear_regression():
    result = regression.diabetes()
    assert result["gln_rmse"] < 1.10 * result["baseline_rmse"]
    assert 40 < result["baseline_rmse"] < 80  # the known scale of this split (58.5)


def test_friedman_small_beats_one_pass_sgd():
    """The cheap sibling of the slow test: 6,250 samples (5,000 for the pass)."""
    result = regression.friedman(6250)
    assert result["gln_rmse"] < result["baseline_rmse"]


@pytest.mark.slow
def test_friedman_beats_one_pass_sgd():
    """The README's protocol: 25,000 samples, 20,000 for one online pass, 5,000 for test."""
    result = regression.friedman(25000)
    assert result["gln_rmse"] < result["baseline_rmse"]
