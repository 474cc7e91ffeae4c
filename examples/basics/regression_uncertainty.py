"""Regression with predictive uncertainty: ``GaussianGLN`` and ``GLNRegressor``.

Every neuron of a Gaussian GLN outputs a Gaussian, so each prediction comes with a standard
deviation. :class:`gln_jax.GaussianGLN` expects standardised features and targets (it refuses
targets beyond about 32.6); :class:`gln_jax.sklearn.GLNRegressor` standardises both online
and answers on the targets' own scale. Data: scikit-learn's Friedman #1 problem with noise of
standard deviation 1, learnt in one online pass::

    python examples/basics/regression_uncertainty.py
    python examples/basics/regression_uncertainty.py --train-size 2000
"""

import argparse

import numpy as np
from sklearn.datasets import make_friedman1

from gln_jax import GaussianGLN
from gln_jax.sklearn import GLNRegressor


def report(name: str, y, mean, std) -> float:
    """Prints the RMSE, the mean predictive std and the coverage of the 90% intervals."""
    rmse = float(np.sqrt(np.mean((mean - y) ** 2)))
    covered = np.mean(np.abs(y - mean) <= 1.645 * std)  # mean +- 1.645 std: a 90% interval
    print(f"{name}: test RMSE {rmse:.3f}, mean predictive std {std.mean():.3f}, ", end="")
    print(f"90% interval coverage {100 * covered:.1f}%")
    return rmse


def main(argv=None) -> float:
    """Trains both models on the same data and prints their test results.

    Args:
        argv: command-line arguments (``None``: ``sys.argv[1:]``).

    Returns:
        The test RMSE of the ``GaussianGLN``.
    """
    parser = argparse.ArgumentParser(description="Gaussian GLN regression with uncertainty.")
    parser.add_argument("--train-size", type=int, default=20000)
    parser.add_argument("--test-size", type=int, default=2000)
    args = parser.parse_args(argv)

    X, y = make_friedman1(args.train_size + args.test_size, noise=1.0, random_state=0)
    X_train, y_train = X[: args.train_size], y[: args.train_size]
    X_test, y_test = X[args.train_size :], y[args.train_size :]
    print(f"targets: std {y_test.std():.3f} (the RMSE of predicting the mean), noise std 1")

    # Standardise with the training part's statistics; map predictions back afterwards.
    x_mean, x_std = X_train.mean(axis=0), X_train.std(axis=0)
    y_mean, y_std = y_train.mean(), y_train.std()
    model = GaussianGLN("jax", [32, 32], X.shape[1], seed=0)
    model.fit((X_train - x_mean) / x_std, (y_train - y_mean) / y_std)  # one pass, in order
    mean, std = model.predict((X_test - x_mean) / x_std, return_std=True)
    rmse = report("GaussianGLN", y_test, y_mean + y_std * mean, y_std * std)

    regressor = GLNRegressor(layer_sizes=(32, 32, 1), random_state=0).fit(X_train, y_train)
    mean, std = regressor.predict(X_test, return_std=True)  # already on the targets' scale
    report("GLNRegressor", y_test, mean, std)
    return rmse


if __name__ == "__main__":
    main()
