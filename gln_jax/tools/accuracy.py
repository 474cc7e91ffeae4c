"""``python -m gln_jax.accuracy``: the accuracy protocols, measured and tabulated.

Two protocols, both one pass over canonical (deskewed) MNIST with ``[4, 4, 1]``:

- ``digit3``: the original README loop: a binary "3 or not" model trained online one example at
  a time through ``predict(X[n:n+1], target=...)`` in the dataset's order, then tested in
  batches of 100;
- ``10class``: ``utils.evaluate_mnist(model, batch_size=4, seed=seed)`` (shuffled with the seed);
- ``recipe``: ``GLN(backend, **gln_jax.recipes.mnist(), seed=seed)`` trained by ``model.fit``
  (batch 1, one pass over the 60,000 training examples in the dataset's order, side information
  centred online and base predictions sharpened from it), then tested; the seed draws the
  gates. Its settings are the recipe's own.
  Each run also records the training pass's throughput (``samples_per_second``: training
  examples over the seconds of ``fit``, compilation excluded) and the process's peak resident
  memory (``peak_rss_mib``: ``resource.getrusage(RUSAGE_SELF).ru_maxrss`` after the pass, the
  whole process's high-water mark since it started: Python, JAX, the dataset and the model).

Each runs with the documented defaults (``learning_rate=1e-4, context_bias=True``) and with the
settings of the code behind the original README's figures (``learning_rate=1e-3,
context_bias=False``), for several seeds (the model's and the shuffling's).

Examples:
    python -m gln_jax.accuracy --json benchmarks/accuracy.json
    python -m gln_jax.accuracy --protocols digit3 --backends jax numpy pytorch tf --seeds 0
    python -m gln_jax.accuracy --protocols recipe --settings recipe --json benchmarks/recipe.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time

import numpy as np

from gln_jax import utils
from gln_jax.core.types import CHUNK_SIZE
from gln_jax.tools.memory import peak_rss_mib

SETTINGS = {
    "defaults": {},
    "original": {"learning_rate": 1e-3, "context_bias": False},
    "recipe": {},  # the recipe protocol's own settings (gln_jax.recipes.mnist())
}
LABELS = {
    "defaults": "documented defaults (`learning_rate=1e-4, context_bias=True`)",
    "original": "original code's settings (`learning_rate=1e-3, context_bias=False`)",
    "recipe": "`gln_jax.recipes.mnist()`",
}
PROTOCOL_SETTINGS = {"digit3": ("defaults", "original"), "10class": ("defaults", "original")}
PROTOCOL_SETTINGS["recipe"] = ("recipe",)


def digit3_readme_loop(
    data, *, backend="jax", seed=0, progress=False, layer_sizes=(4, 4, 1), **settings
):
    """The original README's digit-3 flow; returns ``(accuracy %, test predictions)``.

    ``layer_sizes`` and ``settings`` (GLN keyword arguments) change the model, e.g. to measure
    the degenerate baselines ``layer_sizes=(1,)`` or ``context_map_size=0``.
    """
    from tqdm.auto import tqdm

    from gln_jax.api.facade import GLN

    X_train, y_train, X_test, y_test = data
    y_train_3, y_test_3 = y_train == 3, y_test == 3
    model = GLN(backend, list(layer_sizes), X_train.shape[1], seed=seed, **settings)
    for n in tqdm(range(X_train.shape[0]), desc=f"digit3 {backend}", disable=not progress):
        model.predict(X_train[n : n + 1], target=y_train_3[n : n + 1])
    preds = np.concatenate(
        [model.predict(X_test[n : n + 100]) for n in range(0, X_test.shape[0], 100)]
    )
    return 100.0 * float(np.mean(preds == y_test_3)), preds


def ten_class_evaluate(
    data, *, backend="jax", seed=0, progress=False, layer_sizes=(4, 4, 1), **settings
):
    """``evaluate_mnist`` with 10 classes at batch size 4; returns the accuracy in %."""
    from gln_jax.api.facade import GLN

    model = GLN(backend, list(layer_sizes), data[0].shape[1], num_classes=10, seed=seed, **settings)
    return utils.evaluate_mnist(model, batch_size=4, seed=seed, data=data, progress=progress)


def recipe_fit(data, *, backend="jax", seed=0, progress=False):
    """The recipe, one online pass with ``fit``; returns ``(accuracy %, seconds of the pass)``."""
    from gln_jax import recipes
    from gln_jax.api.facade import GLN

    X_train, y_train, X_test, y_test = data
    # compile outside the timed pass, on a throwaway model: one chunk of the stream's shape
    model = GLN(backend, **recipes.mnist(input_size=X_train.shape[1]), seed=seed)
    warm = min(CHUNK_SIZE, X_train.shape[0])
    model.fit(X_train[:warm], y_train[:warm])
    model = GLN(backend, **recipes.mnist(input_size=X_train.shape[1]), seed=seed)
    start = time.perf_counter()
    model.fit(X_train, y_train)
    seconds = time.perf_counter() - start
    preds = np.concatenate(
        [model.predict(X_test[n : n + 1000]) for n in range(0, X_test.shape[0], 1000)]
    )
    return 100.0 * float(np.mean(preds == y_test)), seconds


def measure(
    protocols, settings, seeds, backends, dataset="mnist", progress=False, data_dir=None
) -> dict:
    """Runs every combination; returns a JSON-able dict of raw accuracies and agreement."""
    deskewed = dataset == "mnist"
    data = utils.get_mnist(deskewed, data_dir, dataset, progress=progress)
    runs = []
    agreement = {}
    for protocol in protocols:
        for name in [s for s in settings if s in PROTOCOL_SETTINGS[protocol]]:
            for backend in backends:
                for seed in seeds:
                    start = time.perf_counter()
                    pass_seconds = None
                    if protocol == "recipe":
                        accuracy, pass_seconds = recipe_fit(
                            data, backend=backend, seed=seed, progress=progress
                        )
                    elif protocol == "digit3":
                        accuracy, preds = digit3_readme_loop(
                            data,
                            backend=backend,
                            seed=seed,
                            progress=progress,
                            **SETTINGS[name],
                        )
                        agreement.setdefault((name, seed), {})[backend] = preds
                    else:
                        accuracy = ten_class_evaluate(
                            data,
                            backend=backend,
                            seed=seed,
                            progress=progress,
                            **SETTINGS[name],
                        )
                    runs.append(
                        {
                            "dataset": dataset,
                            "deskewed": deskewed,
                            "protocol": protocol,
                            "settings": name,
                            "backend": backend,
                            "seed": seed,
                            "accuracy": accuracy,
                            "seconds": round(time.perf_counter() - start, 1),
                        }
                    )
                    if pass_seconds is not None:
                        runs[-1]["pass_seconds"] = round(pass_seconds, 1)
                        runs[-1]["train_examples"] = int(data[0].shape[0])
                        runs[-1]["samples_per_second"] = round(data[0].shape[0] / pass_seconds, 1)
                        runs[-1]["peak_rss_mib"] = round(peak_rss_mib(), 1)
                    print(json.dumps(runs[-1]), file=sys.stderr, flush=True)
    shared = []
    for (name, seed), by_backend in agreement.items():
        if len(by_backend) > 1:
            stacked = np.stack(list(by_backend.values()))
            same = np.all(stacked == stacked[0], axis=0)
            shared.append(
                {
                    "settings": name,
                    "seed": seed,
                    "backends": list(by_backend),
                    "shared": int(same.sum()),
                    "total": int(same.size),
                }
            )
    return {"runs": runs, "agreement": shared}


def _measured(runs: list[dict], field: str) -> str:
    """A table cell: ``field``'s mean over the seeds that recorded it, naming them; or empty."""
    found = [run for run in runs if field in run]
    if not found:
        return ""
    seeds = ", ".join(str(run["seed"]) for run in found)
    value = statistics.mean(run[field] for run in found)
    return f"{value:,.0f} (seed{'s' if len(found) > 1 else ''} {seeds})"


def render(result: dict) -> str:
    """Markdown table: mean (and each seed) per dataset, protocol, settings and backend."""
    groups: dict[tuple, dict] = {}
    for run in result["runs"]:  # a seed measured twice (merged files) counts once, the last
        key = (run["dataset"], run["protocol"], run["settings"], run["backend"])
        groups.setdefault(key, {})[run["seed"]] = run
    groups = {key: list(by_seed.values()) for key, by_seed in groups.items()}
    lines = [
        "| data | task | settings | backend | mean accuracy (%) | per seed "
        "| training pass (examples/s) | peak RSS (MiB) |",
        "|---|---|---|---|---:|---|---:|---:|",
    ]
    for (dataset, protocol, name, backend), runs in groups.items():
        task = {
            "digit3": "digit 3, README loop (batch 1)",
            "10class": "10 classes, `evaluate_mnist` batch 4",
            "recipe": "10 classes, `fit` batch 1",
        }[protocol]
        data_name = dataset + (" (deskewed)" if runs[0]["deskewed"] else " (raw)")
        mean = statistics.mean(r["accuracy"] for r in runs)
        seeds = ", ".join(
            f"{r['accuracy']:.2f} (seed {r['seed']}"
            + (f", pass {r['pass_seconds']:.0f} s)" if "pass_seconds" in r else ")")
            for r in runs
        )
        throughput, memory = _measured(runs, "samples_per_second"), _measured(runs, "peak_rss_mib")
        lines.append(
            f"| {data_name} | {task} | {LABELS[name]} | {backend} | {mean:.2f} | {seeds} "
            f"| {throughput} | {memory} |"
        )
    for item in result.get("agreement", []):
        lines.append(
            f"\nDigit-3 test predictions shared by {', '.join(item['backends'])} "
            f"({item['settings']}, seed {item['seed']}): {item['shared']:,} of "
            f"{item['total']:,} ({100.0 * item['shared'] / item['total']:.2f}%)."
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gln_jax.accuracy", description=__doc__)
    parser.add_argument(
        "--protocols",
        nargs="+",
        default=["digit3", "10class"],
        choices=["digit3", "10class", "recipe"],
    )
    parser.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=list(SETTINGS))
    parser.add_argument("--seeds", nargs="*", type=int, default=[0, 1, 2])
    parser.add_argument("--backends", nargs="+", default=["jax"])
    parser.add_argument("--dataset", default="mnist", choices=["mnist", "fashion"])
    parser.add_argument("--data-dir", default=None, help="directory with the IDX files")
    parser.add_argument("--json", default=None, help="write raw results here")
    parser.add_argument("--merge", nargs="*", default=[], help="earlier JSON results to include")
    parser.add_argument("--progress", action="store_true")
    args = parser.parse_args(argv)

    result = {"runs": [], "agreement": []}
    for path in args.merge:
        with open(path) as handle:
            earlier = json.load(handle)
        result["runs"] += earlier["runs"]
        result["agreement"] += earlier["agreement"]
    if args.seeds:
        new = measure(
            args.protocols,
            args.settings,
            args.seeds,
            args.backends,
            args.dataset,
            args.progress,
            args.data_dir,
        )
        result["runs"] += new["runs"]
        result["agreement"] += new["agreement"]
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(result, handle, indent=1)
    print(render(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
