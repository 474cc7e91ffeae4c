"""The Gaussian family's regression protocols (``python benchmarks/regression.py``).

Both need scikit-learn (the ``tests`` extra). One online pass (batch size 1) of a
:class:`~gln_jax.GaussianGLN` in float32, against scikit-learn baselines on the same split:

- ``diabetes``: sklearn's bundled diabetes data, 80/20 split with ``random_state=0``, features
  and target standardised on the training part; baseline an offline ``LinearRegression``.
- ``friedman``: ``make_friedman1(n_samples, noise=1.0, random_state=0)``, the first 80% for one
  pass, the last 20% for test, standardised on the training part; baseline a one-pass
  ``SGDRegressor(max_iter=1, tol=None, shuffle=False)`` on the same order.

RMSEs are reported on the original target scale.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

#: The model of both protocols (defaults otherwise: learning rate 3e-3, variance in [0.1, 10]).
LAYER_SIZES = (32, 32)
CONTEXT_MAP_SIZE = 4


def _standardise(train, test):
    mean, std = train.mean(axis=0), train.std(axis=0)
    return (train - mean) / std, (test - mean) / std, mean, std


def _gln_rmse(x_train, y_train, x_test, y_test, y_mean, y_std, backend, seed):
    from gln_jax.api.gaussian_facade import GaussianGLN

    model = GaussianGLN(
        backend, list(LAYER_SIZES), x_train.shape[1], context_map_size=CONTEXT_MAP_SIZE, seed=seed
    )
    start = time.perf_counter()
    model.fit(x_train, y_train)
    seconds = time.perf_counter() - start
    pred = model.predict(x_test) * y_std + y_mean
    return float(np.sqrt(np.mean((pred - y_test) ** 2))), seconds


def diabetes(backend: str = "jax", seed: int = 0) -> dict:
    """RMSE of the GLN after one pass and of an offline linear regression on diabetes."""
    from sklearn.datasets import load_diabetes
    from sklearn.linear_model import LinearRegression
    from sklearn.model_selection import train_test_split

    x, y = load_diabetes(return_X_y=True)
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.2, random_state=0)
    x_train, x_test, _, _ = _standardise(x_train, x_test)
    y_mean, y_std = y_train.mean(), y_train.std()
    baseline = LinearRegression().fit(x_train, (y_train - y_mean) / y_std)
    base_pred = baseline.predict(x_test) * y_std + y_mean
    gln, seconds = _gln_rmse(
        x_train, (y_train - y_mean) / y_std, x_test, y_test, y_mean, y_std, backend, seed
    )
    return {
        "gln_rmse": gln,
        "baseline_rmse": float(np.sqrt(np.mean((base_pred - y_test) ** 2))),
        "fit_seconds": seconds,
    }


def friedman(n_samples: int = 25000, backend: str = "jax", seed: int = 0) -> dict:
    """RMSE of the GLN and of a one-pass SGDRegressor on make_friedman1."""
    from sklearn.datasets import make_friedman1
    from sklearn.linear_model import SGDRegressor

    x, y = make_friedman1(n_samples=n_samples, noise=1.0, random_state=0)
    split = n_samples * 4 // 5
    x_train, x_test, _, _ = _standardise(x[:split], x[split:])
    y_train, y_test = y[:split], y[split:]
    y_mean, y_std = y_train.mean(), y_train.std()
    sgd = SGDRegressor(max_iter=1, tol=None, shuffle=False, random_state=0)
    sgd.fit(x_train, (y_train - y_mean) / y_std)
    base_pred = sgd.predict(x_test) * y_std + y_mean
    gln, seconds = _gln_rmse(
        x_train, (y_train - y_mean) / y_std, x_test, y_test, y_mean, y_std, backend, seed
    )
    return {
        "gln_rmse": gln,
        "baseline_rmse": float(np.sqrt(np.mean((base_pred - y_test) ** 2))),
        "fit_seconds": seconds,
    }


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default="jax")
    parser.add_argument("--friedman-samples", type=int, default=25000)
    args = parser.parse_args(argv)
    d = diabetes(args.backend)
    f = friedman(args.friedman_samples, args.backend)
    print(
        f"diabetes: GLN RMSE {d['gln_rmse']:.2f}, LinearRegression {d['baseline_rmse']:.2f} "
        f"(ratio {d['gln_rmse'] / d['baseline_rmse']:.3f})"
    )
    print(
        f"friedman1 ({args.friedman_samples}): GLN RMSE {f['gln_rmse']:.3f}, one-pass "
        f"SGDRegressor {f['baseline_rmse']:.3f} (fit {f['fit_seconds']:.1f} s)"
    )


if __name__ == "__main__":
    main()
