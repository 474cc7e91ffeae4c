"""Test accuracy against examples seen, for the MNIST recipe and the defaults (a measuring tool).

One online pass (batch 1, ``fit``, the training set in the dataset's order) per model over
deskewed MNIST; after the first ``n`` examples, for about a dozen log-spaced ``n``, the model
predicts the 10,000 test examples (:func:`gln_jax.api.evaluation.learning_curve`). Models:

- ``defaults``: ``GLN("jax", [4, 4, 1], 784, num_classes=10, seed=seed)``, the documented defaults;
- ``recipe``: ``GLN("jax", **gln_jax.recipes.mnist(), seed=seed)``.

The JSON it writes holds the points, each model's accuracies and the seconds of its whole run
(training and the test passes); ``--render`` prints them as a Markdown table.

Examples:
    python benchmarks/learning_curve.py --json benchmarks/learning-curve.json
    python benchmarks/learning_curve.py --render benchmarks/learning-curve.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from gln_jax import utils
from gln_jax.api.evaluation import learning_curve, log_spaced_points

LABELS = {"defaults": "defaults `[4, 4, 1]`", "recipe": "`recipes.mnist()`"}


def make_model(name: str, input_size: int, seed: int):
    """A fresh model of one of the curve's configurations (see the module docstring)."""
    from gln_jax import recipes
    from gln_jax.api.facade import GLN

    if name == "defaults":
        return GLN("jax", [4, 4, 1], input_size, num_classes=10, seed=seed)
    if name == "recipe":
        return GLN("jax", **recipes.mnist(input_size=input_size), seed=seed)
    raise ValueError(f"unknown model {name!r}; known: {', '.join(LABELS)}")


def measure(models, *, count: int = 12, first: int = 100, seed: int = 0, data_dir=None) -> dict:
    """One pass per model with test accuracy at ``count`` log-spaced points; a JSON-able dict."""
    X_train, y_train, X_test, y_test = utils.get_mnist(True, data_dir, progress=False)
    points = log_spaced_points(X_train.shape[0], count=count, first=first)
    result = {
        "dataset": "mnist",
        "deskewed": True,
        "seed": seed,
        "test_examples": int(X_test.shape[0]),
        "points": points,
        "curves": {},
    }
    for name in models:
        start = time.perf_counter()
        model = make_model(name, X_train.shape[1], seed)
        accuracy = learning_curve(model, X_train, y_train, X_test, y_test, points)
        result["curves"][name] = {
            "accuracy": [round(float(value), 2) for value in accuracy],
            "seconds": round(time.perf_counter() - start, 1),
        }
        print(json.dumps({name: result["curves"][name]}), file=sys.stderr, flush=True)
    return result


def render(result: dict) -> str:
    """Markdown table: one row per point, one column of test accuracy (%) per model."""
    names = list(result["curves"])
    lines = [
        "| examples seen | " + " | ".join(f"{LABELS[name]} (%)" for name in names) + " |",
        "|---:|" + "---:|" * len(names),
    ]
    for i, point in enumerate(result["points"]):
        cells = " | ".join(f"{result['curves'][name]['accuracy'][i]:.2f}" for name in names)
        lines.append(f"| {point:,} | {cells} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python benchmarks/learning_curve.py")
    parser.add_argument("--models", nargs="+", default=["defaults", "recipe"], choices=LABELS)
    parser.add_argument("--count", type=int, default=12, help="points (log-spaced)")
    parser.add_argument("--first", type=int, default=100, help="the first point")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--json", default=None, help="write the curves here")
    parser.add_argument("--render", default=None, help="render this JSON file, measure nothing")
    args = parser.parse_args(argv)
    if args.render:
        with open(args.render) as handle:
            result = json.load(handle)
    else:
        result = measure(
            args.models, count=args.count, first=args.first, seed=args.seed, data_dir=args.data_dir
        )
        if args.json:
            with open(args.json, "w") as handle:
                json.dump(result, handle, indent=1)
    print(render(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
