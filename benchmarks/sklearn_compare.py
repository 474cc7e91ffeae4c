"""``python benchmarks/sklearn_compare.py``: GLN estimators against scikit-learn's linear models.

Classification, on scikit-learn's bundled datasets (digits, breast cancer, wine, iris): 5-fold
``cross_val_score`` (stratified, unshuffled folds: scikit-learn's default) of
``GLNClassifier(random_state=0)`` with its default settings (one shuffled pass) against
``SGDClassifier``, ``Perceptron`` and ``LogisticRegression`` (each after a ``StandardScaler``,
as scikit-learn advises for them; the GLN standardises online by itself).

Regression, on diabetes (bundled) and ``make_friedman1(2000, noise=1.0, random_state=0)``:
5-fold ``cross_val_score`` (R^2, unshuffled ``KFold``: scikit-learn's default) of
``GLNRegressor(random_state=0)`` (one shuffled pass) against ``SGDRegressor`` (after a
``StandardScaler``; one pass, ``max_iter=1``, and its default of up to 1000 passes) and
``LinearRegression``.

Times are wall-clock seconds of the whole ``cross_val_score`` call (5 fits and 5 scores). The
GLN is timed twice: ``cold`` includes JAX's compilation of each new shape, ``warm`` is the same
call again in the same process (compiled code reused, as when a model is refitted). The
baselines are timed once after one untimed warm-up call.

Examples:
    python benchmarks/sklearn_compare.py --json benchmarks/sklearn-compare.json
    python benchmarks/sklearn_compare.py --datasets iris wine
"""

from __future__ import annotations

import argparse
import json
import sys
import time

CLASSIFICATION = ("digits", "breast_cancer", "wine", "iris")
REGRESSION = ("diabetes", "friedman1")
DATASETS = CLASSIFICATION + REGRESSION


def load(name):
    from sklearn import datasets

    if name == "friedman1":
        return datasets.make_friedman1(n_samples=2000, noise=1.0, random_state=0)
    return getattr(datasets, f"load_{name}")(return_X_y=True)


def task(dataset: str) -> str:
    return "regression" if dataset in REGRESSION else "classification"


def regressors():
    """``name -> factory`` of the compared regressors (fresh, default settings)."""
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LinearRegression, SGDRegressor
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from gln_jax.sklearn import GLNRegressor

    # one pass of SGD is the GLN's budget; scikit-learn warns that it did not converge
    warnings.filterwarnings("ignore", category=ConvergenceWarning, module="sklearn")
    return {
        "GLNRegressor": lambda: GLNRegressor(random_state=0),
        "SGDRegressor (1 pass)": lambda: make_pipeline(
            StandardScaler(), SGDRegressor(max_iter=1, tol=None, random_state=0)
        ),
        "SGDRegressor": lambda: make_pipeline(StandardScaler(), SGDRegressor(random_state=0)),
        "LinearRegression": lambda: LinearRegression(),
    }


def estimators():
    """``name -> factory`` of the compared classifiers (fresh, default settings)."""
    from sklearn.linear_model import LogisticRegression, Perceptron, SGDClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from gln_jax.sklearn import GLNClassifier

    return {
        "GLNClassifier": lambda: GLNClassifier(random_state=0),
        "SGDClassifier": lambda: make_pipeline(StandardScaler(), SGDClassifier(random_state=0)),
        "Perceptron": lambda: make_pipeline(StandardScaler(), Perceptron(random_state=0)),
        "LogisticRegression": lambda: make_pipeline(
            StandardScaler(), LogisticRegression(max_iter=1000)
        ),
    }


def timed_cv(factory, X, y):
    from sklearn.model_selection import cross_val_score

    start = time.perf_counter()
    scores = cross_val_score(factory(), X, y, cv=5)
    return scores, time.perf_counter() - start


def run(names=DATASETS):
    rows = []
    for dataset in names:
        X, y = load(dataset)
        regression = task(dataset) == "regression"
        for name, factory in (regressors() if regression else estimators()).items():
            first_scores, first = timed_cv(factory, X, y)
            scores, warm = timed_cv(factory, X, y)
            if list(scores) != list(first_scores):
                raise RuntimeError(f"{name} on {dataset}: two identical runs scored differently")
            row = {
                "dataset": dataset,
                "task": task(dataset),
                "samples": int(X.shape[0]),
                "features": int(X.shape[1]),
                "estimator": name,
                "fold_scores": [float(s) for s in scores],
                "seconds_warm": warm,
                "seconds_cold": first if name.startswith("GLN") else None,
            }
            if regression:
                row.update(r2_mean=float(scores.mean()), r2_std=float(scores.std()))
            else:
                row.update(
                    classes=int(len(set(y.tolist()))),
                    accuracy_mean=float(scores.mean()),
                    accuracy_std=float(scores.std()),
                )
            rows.append(row)
            print(json.dumps(row), file=sys.stderr, flush=True)
    return rows


def render(rows) -> str:
    """The classification table, then (if any) the regression table, as Markdown."""
    classification = [r for r in rows if r.get("task", "classification") == "classification"]
    regression = [r for r in rows if r.get("task") == "regression"]
    tables = []
    if classification:
        lines = [
            "| dataset (samples x features, classes) | estimator | 5-fold accuracy | seconds |",
            "|---|---|---|---|",
        ]
        for r in classification:
            lines.append(
                f"| {r['dataset']} ({r['samples']} x {r['features']}, {r['classes']}) "
                f"| {r['estimator']} | {100 * r['accuracy_mean']:.2f} +- "
                f"{100 * r['accuracy_std']:.2f} | {_seconds(r)} |"
            )
        tables.append("\n".join(lines))
    if regression:
        lines = [
            "| dataset (samples x features) | estimator | 5-fold R^2 | seconds |",
            "|---|---|---|---|",
        ]
        for r in regression:
            lines.append(
                f"| {r['dataset']} ({r['samples']} x {r['features']}) | {r['estimator']} "
                f"| {r['r2_mean']:.3f} +- {r['r2_std']:.3f} | {_seconds(r)} |"
            )
        tables.append("\n".join(lines))
    return "\n\n".join(tables)


def _seconds(row) -> str:
    seconds = f"{row['seconds_warm']:.2f}"
    if row["seconds_cold"] is not None:
        seconds += f" ({row['seconds_cold']:.2f} cold)"
    return seconds


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", choices=DATASETS, default=list(DATASETS))
    parser.add_argument("--json", help="write the rows to this file")
    parser.add_argument("--render", help="print the table of a saved JSON file and exit")
    args = parser.parse_args(argv)
    if args.render:
        with open(args.render) as f:
            print(render(json.load(f)["rows"]))
        return 0
    rows = run(args.datasets)
    if args.json:
        import platform

        import jax
        import sklearn

        meta = {
            "python": platform.python_version(),
            "jax": jax.__version__,
            "sklearn": sklearn.__version__,
            "machine": platform.machine(),
            "note": "2-core machine: times move between runs; compare rows of one run",
        }
        with open(args.json, "w") as f:
            json.dump({"meta": meta, "rows": rows}, f, indent=1)
    print(render(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
