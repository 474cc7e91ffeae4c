"""``python -m gln_jax.tools.sklearn_compare``: GLNClassifier against scikit-learn's linear models.

On scikit-learn's bundled datasets (digits, breast cancer, wine, iris), 5-fold
``cross_val_score`` (stratified, unshuffled folds: scikit-learn's default) of
``GLNClassifier(random_state=0)`` with its default settings (one shuffled pass) against
``SGDClassifier``, ``Perceptron`` and ``LogisticRegression`` (each after a ``StandardScaler``,
as scikit-learn advises for them; the GLN standardises online by itself).

Times are wall-clock seconds of the whole ``cross_val_score`` call (5 fits and 5 scores). The
GLN is timed twice: ``cold`` includes JAX's compilation of each new shape, ``warm`` is the same
call again in the same process (compiled code reused, as when a model is refitted). The
baselines are timed once after one untimed warm-up call.

Examples:
    python -m gln_jax.tools.sklearn_compare --json benchmarks/sklearn-compare.json
    python -m gln_jax.tools.sklearn_compare --datasets iris wine
"""

from __future__ import annotations

import argparse
import json
import sys
import time

DATASETS = ("digits", "breast_cancer", "wine", "iris")
README_START, README_END = "<!-- sklearn-compare:start -->", "<!-- sklearn-compare:end -->"


def load(name):
    from sklearn import datasets

    return getattr(datasets, f"load_{name}")(return_X_y=True)


def estimators():
    """``name -> factory`` of the compared estimators (fresh, default settings)."""
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
        for name, factory in estimators().items():
            first_scores, first = timed_cv(factory, X, y)
            scores, warm = timed_cv(factory, X, y)
            if list(scores) != list(first_scores):
                raise RuntimeError(f"{name} on {dataset}: two identical runs scored differently")
            row = {
                "dataset": dataset,
                "samples": int(X.shape[0]),
                "features": int(X.shape[1]),
                "classes": int(len(set(y.tolist()))),
                "estimator": name,
                "accuracy_mean": float(scores.mean()),
                "accuracy_std": float(scores.std()),
                "fold_scores": [float(s) for s in scores],
                "seconds_warm": warm,
                "seconds_cold": first if name == "GLNClassifier" else None,
            }
            rows.append(row)
            print(json.dumps(row), file=sys.stderr, flush=True)
    return rows


def render(rows) -> str:
    lines = [
        "| dataset (samples x features, classes) | estimator | 5-fold accuracy | seconds |",
        "|---|---|---|---|",
    ]
    for r in rows:
        seconds = f"{r['seconds_warm']:.2f}"
        if r["seconds_cold"] is not None:
            seconds += f" ({r['seconds_cold']:.2f} cold)"
        lines.append(
            f"| {r['dataset']} ({r['samples']} x {r['features']}, {r['classes']}) "
            f"| {r['estimator']} | {100 * r['accuracy_mean']:.2f} +- "
            f"{100 * r['accuracy_std']:.2f} | {seconds} |"
        )
    return "\n".join(lines)


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
            "note": "shared 2-core machine (other jobs running): times are noisy",
        }
        with open(args.json, "w") as f:
            json.dump({"meta": meta, "rows": rows}, f, indent=1)
    print(render(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
