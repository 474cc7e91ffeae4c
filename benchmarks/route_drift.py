"""``python benchmarks/route_drift.py``: how far two exact implementations drift apart.

Two routes of the same online learning (the fused CPU kernel, ``fit_stream(route="kernel")``,
and XLA, ``route="xla"``), and a member of a vmapped ensemble against the same model trained
alone, compute the same updates with their float operations in another order. This tool
trains each pair on the first ``--examples`` MNIST training examples (deskewed, as
``get_mnist()`` gives them) and prints the largest
difference in predicted probability (the predictions made before each update) within the
first 100, 500, 1,000 and 2,000 examples, per dtype and learning rate, plus the online
accuracy of each. ``--json PATH`` writes the table with its machine and date.

Models: ``routes``, a binary ``[16, 16, 1]`` model (digit 0 against the rest, seed 0);
``ensemble``, a 10-class ``[4, 4, 1]`` model, member 0 of a 4-member ``jax.vmap`` of
``scan_update`` against ``scan_update`` of that member alone, and member 0 of
:func:`gln_jax.ensemble.fit_ensemble` against ``fit_stream`` of that member alone (seed 0).
"""

from __future__ import annotations

import argparse
import datetime
import functools
import json

import jax
import numpy as np

import gln_jax
from gln_jax import utils
from gln_jax.core import _ensemble as ensemble
from gln_jax.tools.benchmark import _machine

MARKS = (100, 500, 1000, 2000)


def _largest_by(p, q, marks) -> dict[str, float]:
    gap = np.max(np.abs(np.asarray(p, np.float64) - np.asarray(q, np.float64)), axis=-1)
    return {str(m): float(gap[:m].max()) for m in marks if m <= len(gap)}


def _accuracy(p, y, binary: bool) -> float:
    guess = (np.asarray(p)[:, 0] > 0.5) if binary else np.argmax(p, -1)
    return float(np.mean(guess == y))


def _row(compare: str, dtype: str, rate: float, p, q, y, binary: bool = False) -> dict:
    return {
        "compare": compare,
        "dtype": dtype,
        "rate": rate,
        "largest_difference_within": _largest_by(p, q, MARKS),
        "online_accuracy": [_accuracy(p, y, binary), _accuracy(q, y, binary)],
    }


def routes(X, y, dtype: str, rate: float) -> dict:
    target = (y == 0).astype(np.int32)
    config = gln_jax.make_config([16, 16, 1], 784, dtype=dtype)
    state = gln_jax.init(jax.random.key(0), config)
    X = X.astype(dtype)
    _, kernel_p = gln_jax.fit_stream(state, X, X, target, rate, config=config, route="kernel")
    _, xla_p = gln_jax.fit_stream(state, X, X, target, rate, config=config, route="xla")
    compare = "fit_stream route kernel vs xla, binary [16, 16, 1]"
    return _row(compare, dtype, rate, kernel_p, xla_p, target, binary=True)


def vmapped(X, y, dtype: str, rate: float) -> dict:
    config = gln_jax.make_config([4, 4, 1], 784, num_classes=10, dtype=dtype)
    states = ensemble.init_ensemble(jax.random.split(jax.random.key(0), 4), config)
    X = X.astype(dtype)
    rates = np.full(len(y), rate, dtype)
    scan = functools.partial(gln_jax.scan_update, config=config)
    together = jax.jit(jax.vmap(scan, in_axes=(0, None, None, None, None)))
    _, p_all = together(states, X, X, y, rates)
    alone_state = jax.tree.map(lambda a: a[0], states)
    _, p_alone = jax.jit(scan)(alone_state, X, X, y, rates)
    compare = "member 0 of jax.vmap(scan_update) vs scan_update alone, 10-class [4, 4, 1]"
    return _row(compare, dtype, rate, p_all[0], p_alone, y)


def members(X, y, dtype: str, rate: float) -> dict:
    config = gln_jax.make_config([4, 4, 1], 784, num_classes=10, dtype=dtype)
    states = ensemble.init_ensemble(jax.random.split(jax.random.key(0), 4), config)
    X = X.astype(dtype)
    _, p_all = ensemble.fit_ensemble(states, X, X, y, rate, config=config)
    alone_state = jax.tree.map(lambda a: a[0], states)
    _, p_alone = gln_jax.fit_stream(alone_state, X, X, y, rate, config=config)
    compare = "member 0 of fit_ensemble vs fit_stream alone, 10-class [4, 4, 1]"
    return _row(compare, dtype, rate, p_all[0], p_alone, y)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=2000)
    parser.add_argument("--json", default=None, help="write the rows here")
    args = parser.parse_args(argv)
    jax.config.update("jax_enable_x64", True)  # float64 rows; float32 rows stay float32
    X, y, _, _ = utils.get_mnist(progress=False)
    X, y = X[: args.examples], y[: args.examples].astype(np.int32)
    rows = []
    for measure in (routes, vmapped, members):
        for dtype in ("float32", "float64"):
            for rate in (1e-4, 1e-3):
                row = measure(X, y, dtype, rate)
                rows.append(row)
                print(
                    f"{row['compare']}: {dtype} rate {rate:g}: largest |dp| within "
                    + ", ".join(
                        f"{k}: {v:.2g}" for k, v in row["largest_difference_within"].items()
                    )
                    + f"; online accuracy {row['online_accuracy'][0]:.4f} / "
                    f"{row['online_accuracy'][1]:.4f}"
                )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(
                {
                    "command": "python benchmarks/route_drift.py --json " + args.json,
                    "machine": _machine(),
                    "date": datetime.date.today().isoformat(),
                    "examples": args.examples,
                    "rows": rows,
                },
                f,
                indent=1,
            )


if __name__ == "__main__":
    main()
