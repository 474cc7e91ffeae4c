"""Forgetting: the task-free continual-learning protocols, one command (a measuring tool).

Runs :func:`gln_jax.continual.run_protocol` for every method on every protocol and seed, on
deskewed MNIST, and writes the accuracy matrices, final accuracies and forgetting with the
machine, date and command line. Methods (:mod:`gln_jax.continual`):

- ``pool``: the pool of GLNs mixed by a switching mixture (:class:`~gln_jax.continual.PoolLearner`);
- ``gln``: one plain GLN of the pool's member configuration, batch 1;
- ``mlp``: an MLP (two hidden layers of 256) trained online with Adam, batches of 10;
- ``logistic``: logistic regression trained online with Adam, batches of 10.

Examples:
    python benchmarks/forgetting.py --protocols split-mnist,permuted-mnist \
        --json benchmarks/forgetting.json
    python benchmarks/forgetting.py --render benchmarks/forgetting.json
"""

from __future__ import annotations

import argparse
import datetime
import json
import shlex
import sys

from gln_jax import continual

METHODS = ("pool", "gln", "mlp", "logistic")
#: The member GLN of the pool and the plain GLN: small, so a pool of members stays fast.
MEMBER_LAYERS = (16, 16, 1)
MEMBER_CONTEXT_MAP_SIZE = 4
LEARNING_RATE = 1e-2
#: The pool's options (chosen on split MNIST's stream, see the continual-learning guide).
POOL_OPTIONS = {
    "capacity": 10,
    "switch_rate": 1e-6,
    "prior_strength": 100.0,
    "novelty_scale": 2.0,
    "projection_size": 64,
    "rate_scale": 3.0,
}
MLP_HIDDEN = (256, 256)
MLP_BATCH = 10


def make_learner(method: str, input_size: int, num_classes: int, seed: int):
    """A fresh learner of one method (see the module docstring)."""
    import gln_jax

    member = gln_jax.make_config(
        MEMBER_LAYERS,
        input_size,
        context_map_size=MEMBER_CONTEXT_MAP_SIZE,
        num_classes=num_classes,
    )
    if method == "pool":
        config = continual.make_pool_config(member, **POOL_OPTIONS)
        return continual.PoolLearner(config, LEARNING_RATE, seed=seed)
    if method == "gln":
        return continual.GLNLearner(member, LEARNING_RATE, seed=seed)
    if method == "mlp":
        return continual.MLPLearner(
            input_size, num_classes, hidden=MLP_HIDDEN, batch_size=MLP_BATCH, seed=seed
        )
    if method == "logistic":
        return continual.MLPLearner(
            input_size, num_classes, hidden=(), batch_size=MLP_BATCH, seed=seed
        )
    raise ValueError(f"unknown method {method!r}; known: {', '.join(METHODS)}")


def measure(
    protocols,
    methods,
    data,
    *,
    seeds=(0,),
    train_per_task=None,
    test_per_task=None,
    evals_per_task: int = 1,
) -> dict:
    """Every method on every protocol and seed; a JSON-able dict (``runs`` keyed by name)."""
    runs = {}
    for protocol in protocols:
        num_classes = continual.PROTOCOLS[protocol][1]
        for seed in seeds:
            options = {"train_per_task": train_per_task, "test_per_task": test_per_task}
            if protocol == "permuted-mnist":
                options["seed"] = seed
            tasks = continual.make_protocol(protocol, data, **options)
            for method in methods:
                learner = make_learner(method, tasks[0].x_train.shape[1], num_classes, seed)
                result = continual.run_protocol(learner, tasks, evals_per_task=evals_per_task)
                if method == "pool":
                    result["members_in_use"] = learner.members_in_use()
                result["state_bytes"] = continual.state_nbytes(
                    learner.params if method in ("mlp", "logistic") else learner.state
                )
                runs[f"{protocol}/{method}/seed{seed}"] = result
                summary = {k: result[k] for k in ("average_accuracy", "average_forgetting")}
                print(json.dumps({f"{protocol}/{method}/seed{seed}": summary}), flush=True)
    return {"protocols": list(protocols), "methods": list(methods), "runs": runs}


def render(result: dict) -> str:
    """Markdown table: protocol, method, mean final accuracy and forgetting over the seeds."""
    lines = [
        "| protocol | method | seeds | average final accuracy (%) | average forgetting (%) |",
        "|---|---|---:|---:|---:|",
    ]
    for protocol in result["protocols"]:
        for method in result["methods"]:
            runs = [
                run
                for name, run in result["runs"].items()
                if name.startswith(f"{protocol}/{method}/")
            ]
            if not runs:
                continue
            accuracy = sum(run["average_accuracy"] for run in runs) / len(runs)
            lost = sum(run["average_forgetting"] for run in runs) / len(runs)
            lines.append(f"| {protocol} | {method} | {len(runs)} | {accuracy:.2f} | {lost:.2f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python benchmarks/forgetting.py")
    parser.add_argument("--protocols", default="split-mnist,permuted-mnist")
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--seeds", default="0", help="comma-separated seeds")
    parser.add_argument("--train-per-task", type=int, default=None)
    parser.add_argument("--test-per-task", type=int, default=None)
    parser.add_argument("--evals-per-task", type=int, default=4)
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--json", default=None, help="write the results here")
    parser.add_argument("--render", default=None, help="render this JSON file, measure nothing")
    args = parser.parse_args(argv)
    if args.render:
        with open(args.render) as handle:
            result = json.load(handle)
        print(render(result))
        return 0
    protocols = [name for name in args.protocols.split(",") if name]
    methods = [name for name in args.methods.split(",") if name]
    for name in protocols:
        if name not in continual.PROTOCOLS:
            parser.error(f"unknown protocol {name!r}; known: {', '.join(continual.PROTOCOLS)}")
    for name in methods:
        if name not in METHODS:
            parser.error(f"unknown method {name!r}; known: {', '.join(METHODS)}")
    from gln_jax import utils
    from gln_jax.tools.benchmark import _machine

    data = utils.get_mnist(True, args.data_dir, progress=False)
    result = measure(
        protocols,
        methods,
        data,
        seeds=[int(seed) for seed in args.seeds.split(",")],
        train_per_task=args.train_per_task,
        test_per_task=args.test_per_task,
        evals_per_task=args.evals_per_task,
    )
    result["settings"] = {
        "dataset": "mnist (deskewed)",
        "member_layers": list(MEMBER_LAYERS),
        "member_context_map_size": MEMBER_CONTEXT_MAP_SIZE,
        "learning_rate": LEARNING_RATE,
        "pool": POOL_OPTIONS,
        "mlp_hidden": list(MLP_HIDDEN),
        "mlp_batch": MLP_BATCH,
        "train_per_task": args.train_per_task,
        "test_per_task": args.test_per_task,
        "evals_per_task": args.evals_per_task,
    }
    result["machine"] = _machine()
    result["date"] = datetime.date.today().isoformat()
    result["command"] = "python benchmarks/forgetting.py " + shlex.join(
        sys.argv[1:] if argv is None else argv
    )
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(result, handle, indent=1)
    print(render(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
