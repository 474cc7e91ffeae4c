"""``python benchmarks/compare.py REV``: this checkout against a git revision, on one machine.

Both trees are timed by one version-agnostic script (:data:`CASE_SCRIPT`) that uses only the
public API every revision has (``gln_jax.GLN(backend, ...).fit/predict``, ``gln_numpy.GLN``,
``gln_torch.GLN``), run by the same interpreter with ``PYTHONPATH`` pointed at each tree (the
revision is checked out in a temporary ``git worktree``). Runs alternate between the trees
(old, new, old, new, ...) so that a shared or throttled machine slows both alike; each figure
is the median over the runs, and the ratio is new over old; the lowest and highest ratio of
one run's pair show how far the machine moved the figures.

Examples:
    python benchmarks/compare.py 8e9fb5e --runs 5
    python benchmarks/compare.py 8e9fb5e --cases "jax fit b1" --runs 3
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from gln_jax import utils

#: (name, backend, layer sizes, kind, examples, batch size): the cases of the comparison.
CASES = (
    ("jax fit b1 [4,4,1]", "jax", [4, 4, 1], "fit", 4096, 1),
    ("jax fit b1 [16,16,1]", "jax", [16, 16, 1], "fit", 2048, 1),
    ("jax fit b1 [128,128,1]", "jax", [128, 128, 1], "fit", 512, 1),
    ("jax fit b4 [4,4,1]", "jax", [4, 4, 1], "fit", 4096, 4),
    ("jax fit b32 [4,4,1]", "jax", [4, 4, 1], "fit", 4096, 32),
    # 2,000 calls a timing (about a quarter of a second here): 500 let a burst of a shared
    # machine's noise move single runs by up to 1.5x
    ("jax predict(x, target) loop [4,4,1]", "jax", [4, 4, 1], "loop", 2000, 1),
    ("jax batched inference [4,4,1]", "jax", [4, 4, 1], "infer", 10000, 1000),
    ("numpy fit b1 [4,4,1]", "numpy", [4, 4, 1], "fit", 512, 1),
    ("torch fit b1 [4,4,1]", "torch", [4, 4, 1], "fit", 512, 1),
)

#: Times every case on whatever tree ``PYTHONPATH`` points at; prints one JSON line.
CASE_SCRIPT = r"""
import json, sys, time
import numpy as np
spec = json.loads(sys.argv[1])
data = np.load(spec["data"])
X_all, y_all = data["X"], data["y"]

def build(backend, sizes):
    if backend == "jax":
        import gln_jax
        return gln_jax.GLN("jax", sizes, 784, num_classes=10, seed=0)
    module = __import__("gln_" + backend)
    return module.GLN(sizes, 784, num_classes=10, seed=0)

out = {}
for name, backend, sizes, kind, n, batch in spec["cases"]:
    X, y = X_all[:n], y_all[:n]
    warm = build(backend, sizes)
    if kind == "fit":
        warm.fit(X[: max(batch, min(n, 256))], y[: max(batch, min(n, 256))], batch_size=batch)
        warm.fit(X, y, batch_size=batch)  # every chunk shape of this stream compiled
    elif kind == "loop":
        for i in range(10):
            warm.predict(X[i], target=y[i : i + 1])
    else:
        warm.predict(X[:batch])
    best = 0.0
    for _ in range(spec.get("repeats", 1)):  # the best of a few: transient slowdowns drop out
        if kind == "fit":
            model = build(backend, sizes)
            start = time.perf_counter()
            model.fit(X, y, batch_size=batch)
        elif kind == "loop":
            start = time.perf_counter()
            for i in range(n):
                warm.predict(X[i], target=y[i : i + 1])
        else:
            start = time.perf_counter()
            for s in range(0, n, batch):
                warm.predict(X[s : s + batch])
        best = max(best, n / (time.perf_counter() - start))
    out[name] = best
print(json.dumps(out))
"""


def _tree_env(root: Path) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(root), str(root / "ports")])
    env.setdefault("JAX_PLATFORMS", "cpu")
    return env


def _run(root: Path, spec: dict) -> dict:
    proc = subprocess.run(
        [sys.executable, "-c", CASE_SCRIPT, json.dumps(spec)],
        cwd=root,
        env=_tree_env(root),
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"timing in {root} failed:\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _mnist(examples: int) -> tuple[np.ndarray, np.ndarray]:
    X, y, _, _ = utils.get_mnist(deskewed=False)
    order = np.random.default_rng(0).permutation(len(X))[:examples]
    return np.ascontiguousarray(X[order], np.float32), y[order].astype(np.int64)


def compare(rev: str, runs: int = 3, cases=CASES, out=sys.stdout, repeats: int = 3) -> dict:
    """Times this checkout against git revision ``rev``, alternated; prints medians and ratios.

    Each run is one process per tree that warms every case up (compiles), then times it
    ``repeats`` times and keeps the best rate: a transient slowdown of the machine (another
    process, a frequency change) then moves a figure far less than when each case is timed
    once. The table gives the median over the runs of those best rates.

    Args:
        rev: a git revision of this repository (for example ``8e9fb5e``).
        runs: timed runs per tree (alternated, old first).
        cases: the cases to time (see :data:`CASES`).
        out: where the table goes.
        repeats: timings of each case within a run (the best is kept); at least 1.

    Returns:
        ``{case: {"old": [rates], "new": [rates]}}``, one best rate per run.

    Raises:
        ValueError: when ``runs`` or ``repeats`` is below 1.
    """
    if runs < 1 or repeats < 1:
        raise ValueError(f"runs and repeats must be at least 1, got {runs} and {repeats}")
    here = Path(__file__).resolve().parents[1]  # the checkout: benchmarks/..
    top = subprocess.run(
        ["git", "rev-parse", "--show-toplevel"], cwd=here, capture_output=True, text=True
    )
    if top.returncode != 0:
        raise RuntimeError("the comparison needs a git checkout of gln-jax")
    with tempfile.TemporaryDirectory(prefix="gln-compare-") as tmp:
        old_root = Path(tmp) / "old"
        subprocess.run(
            ["git", "worktree", "add", "--detach", str(old_root), rev],
            cwd=here,
            check=True,
            capture_output=True,
        )
        try:
            X, y = _mnist(max(case[4] for case in cases))
            data = Path(tmp) / "mnist.npz"
            np.savez(data, X=X, y=y)
            spec = {
                "data": str(data),
                "cases": [list(case) for case in cases],
                "repeats": repeats,
            }
            rates = {case[0]: {"old": [], "new": []} for case in cases}
            for run in range(runs):
                for label, root in (("old", old_root), ("new", here)):
                    print(f"run {run + 1}/{runs}: {label} ...", file=sys.stderr, flush=True)
                    for name, rate in _run(root, spec).items():
                        rates[name][label].append(rate)
        finally:
            subprocess.run(
                ["git", "worktree", "remove", "--force", str(old_root)],
                cwd=here,
                check=False,
                capture_output=True,
            )
    print(
        f"best of {repeats} timings within each run, median of {runs} alternated runs; "
        "rates per second; ratio = new / old; runs: the lowest and highest ratio of one run's "
        "pair (old, then new)",
        file=out,
    )
    print(f"{'case':<40}{rev:>12}{'this tree':>12}{'ratio':>8}{'runs':>16}", file=out)
    for name, both in rates.items():
        old, new = statistics.median(both["old"]), statistics.median(both["new"])
        pairs = [n / o for o, n in zip(both["old"], both["new"], strict=True)]
        spread = f"{min(pairs):.2f}-{max(pairs):.2f}x"
        print(f"{name:<40}{old:>12.0f}{new:>12.0f}{new / old:>7.2f}x{spread:>16}", file=out)
    return rates


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python benchmarks/compare.py", description=__doc__)
    parser.add_argument("rev", metavar="REV", help="the git revision to time this checkout against")
    parser.add_argument("--runs", type=int, default=3, help="runs per tree, alternated")
    parser.add_argument(
        "--repeats",
        type=int,
        default=3,
        help="timings of each case within a run (the best is kept)",
    )
    parser.add_argument(
        "--cases",
        "--only",
        dest="cases",
        nargs="+",
        default=None,
        metavar="TEXT",
        help="only the cases whose name contains one of these (e.g. 'fit b1')",
    )
    args = parser.parse_args(argv)
    cases = CASES
    if args.cases:
        cases = tuple(c for c in cases if any(text in c[0] for text in args.cases))
        if not cases:
            parser.error(f"--cases {args.cases} matches none of {[c[0] for c in CASES]}")
    if args.runs < 1 or args.repeats < 1:
        parser.error("--runs and --repeats must be at least 1")
    compare(args.rev, runs=args.runs, cases=cases, repeats=args.repeats)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
