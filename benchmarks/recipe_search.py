"""The validation-split search behind :func:`gln_jax.recipes.mnist` (a measuring tool).

Deskewed MNIST, trained online on the first 50,000 training examples (batch 1, one pass, in
the dataset's order), validated on the last 10,000. Side information is transformed online:
example ``t`` is centred (and optionally standardised) with the running statistics of the
examples ``<= t`` (the stream's own past), then multiplied by ``scale``; validation uses the
statistics at the end of the pass. Base predictions are the pixels (``base="pixel"``), the
pixels squeezed into ``[a, 1 - a]`` (``base="squeeze"``, ``base_param=a``) or a sigmoid of the
transformed side information divided by its scale (``base="sigmoid"``, ``base_param`` the gain:
``sigmoid(gain * (x - running mean))`` when centring), or the pixels and that sigmoid side by
side (``base="both"``, twice as many base predictions). Each configuration tried is appended,
with its validation accuracy and time, to a JSON-lines file, so a search can be stopped and
resumed.

The ``paper`` phase is an ablation between the paper's configuration (:data:`PAPER`) and the
recipe (:data:`RECIPE`): one factor at a time from each towards the other; ``paper-combos``
gives the recipe's inputs the paper's width and depth, other context dimensions and other
schedule constants. Their rows carry a label, the training speed (examples per second of the
online pass, compilation included) and the process's peak resident memory during the run
(Python, JAX, the dataset and the model; with ``--isolate`` each variant runs in a fresh
process, so the figure is its own); ``--render --phase paper`` prints them.

Examples:
    python benchmarks/recipe_search.py --phase base --out benchmarks/recipe-search.jsonl
    python benchmarks/recipe_search.py --phase paper --isolate --out benchmarks/paper-ablation.jsonl
    python benchmarks/recipe_search.py --context-usage
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

import numpy as np

from gln_jax import utils
from gln_jax.core.types import make_config
from gln_jax.tools.benchmark import _machine
from gln_jax.tools.memory import current_peak_rss_mib, reset_peak_rss

BASE = {
    "layers": [16, 16, 1],
    "context_map_size": 4,
    "transform": "center",  # "none" | "center" | "standardize"
    "scale": 10.0,
    "pred_clipping": 1e-3,
    "weight_clipping": 5.0,
    "lr": 1e-3,
    "lr_b": None,  # rate min(lr, lr_b / (t + 1)) when set
    "normalize": False,  # rate divided by the first layer's |x|^2 / 785 when set
    "context_bias": True,
    "seeds": [0],  # more than one: an ensemble averaging the members' probabilities
    "base": "pixel",  # "pixel" | "squeeze" | "sigmoid": the base predictions
    "base_param": None,  # squeeze: the margin a; sigmoid: the gain
    "hyperplane_normalize": None,  # make_config's: None means context_bias
    "hyperplane_bias_scale": 1.0,  # standard deviation of the hyperplane offsets
}

#: The paper's MNIST configuration as quoted (Veness et al., Gated Linear Networks): raw
#: pixels for the gates and the base predictions, 128 neurons per hidden layer (two hidden
#: layers: the depth is not stated), context dimension 4, rate ``min(100 / t, 0.01)``,
#: normalised Gaussian normals with ``N(0, 1)`` offsets; weights start at ``1 / K`` as in
#: every configuration here.
PAPER = {
    **BASE,
    "layers": [128, 128, 1],
    "context_map_size": 4,
    "transform": "none",
    "scale": 1.0,
    "lr": 0.01,
    "lr_b": 100.0,
    "hyperplane_normalize": True,
    "hyperplane_bias_scale": 1.0,
}
#: :func:`gln_jax.recipes.mnist` in this tool's terms (the search's best row).
RECIPE = {
    **BASE,
    "layers": [32, 32, 1],
    "context_map_size": 6,
    "scale": 30.0,
    "base": "sigmoid",
    "base_param": 60.0,
}
#: The recipe's side information and base predictions together (one factor: the sharpened
#: base predictions are a function of the centred side information).
RECIPE_INPUTS = {"transform": "center", "scale": 30.0, "base": "sigmoid", "base_param": 60.0}
#: The paper's side information and base predictions: the raw pixels.
PAPER_INPUTS = {"transform": "none", "scale": 1.0, "base": "pixel", "base_param": None}

#: DeepMind's open-source MNIST example (``gated_linear_networks/examples/bernoulli_mnist.py``)
#: draws the hyperplane offsets from ``N(0, 0.05**2)`` ...
SMALL_OFFSETS = {"hyperplane_bias_scale": 0.05}
#: ... and uses the image standardised online as side information, its sigmoid as base
#: predictions (``eps`` 0.1 here, in pixel units of ``[0, 1]``).
EXAMPLE_INPUTS = {"transform": "standardize", "scale": 1.0, "base": "sigmoid", "base_param": 1.0}
#: The paper's configuration with the open-source example's inputs and offsets.
EXAMPLE = {**PAPER, **EXAMPLE_INPUTS, **SMALL_OFFSETS}


def ablation() -> list[dict]:
    """The paper's configuration, then one factor at a time from it towards the recipe, then
    the recipe and one factor at a time from it back towards the paper, then the hyperplane
    offsets and inputs of DeepMind's open-source example (each with a label)."""
    towards = [
        ("paper as written", {}),
        ("paper + the recipe's inputs (centred x30 gates, sharpened base)", RECIPE_INPUTS),
        ("paper + centred x30 gates only", {"transform": "center", "scale": 30.0}),
        ("paper + 64 contexts (dimension 6)", {"context_map_size": 6}),
        ("paper + constant rate 1e-3", {"lr": 1e-3, "lr_b": None}),
        ("paper + [32, 32, 1] neurons", {"layers": [32, 32, 1]}),
    ]
    back = [
        ("recipe", {}),
        ("recipe + the paper's inputs (raw pixels)", PAPER_INPUTS),
        ("recipe + 16 contexts (dimension 4)", {"context_map_size": 4}),
        ("recipe + rate min(100/t, 0.01)", {"lr": 0.01, "lr_b": 100.0}),
        ("recipe + [128, 128, 1] neurons", {"layers": [128, 128, 1]}),
        ("recipe + unnormalised normals", {"hyperplane_normalize": False}),
    ]
    last = [
        ("paper + offsets N(0, 0.05^2)", {**PAPER, **SMALL_OFFSETS}),
        (
            "paper + open-source example's inputs (standardised gates, sigmoid base), "
            "offsets N(0, 0.05^2)",
            EXAMPLE,
        ),
        ("recipe + offsets N(0, 0.05^2)", {**RECIPE, **SMALL_OFFSETS}),
    ]
    return (
        [{**PAPER, **change, "label": label} for label, change in towards]
        + [{**RECIPE, **change, "label": label} for label, change in back]
        + [{**row, "label": label} for label, row in last]
    )


def combinations() -> list[dict]:
    """The recipe's inputs with the paper's width and depth, context dimensions 4 to 8 and
    the schedule's constants ``min(c / t, m)``, then the open-source example's inputs and
    offsets on the paper's configuration with more contexts, other offsets, a sharper base,
    another schedule and the recipe's size (each with a label)."""
    wide = {**RECIPE, "layers": [128, 128, 1]}
    rows = [
        ("recipe + [128, 128, 128, 1] neurons", {**RECIPE, "layers": [128, 128, 128, 1]}),
        ("recipe + [32, 32, 32, 1] neurons", {**RECIPE, "layers": [32, 32, 32, 1]}),
    ]
    rows += [
        (f"recipe + {2**k} contexts (dimension {k})", {**RECIPE, "context_map_size": k})
        for k in (5, 7, 8)
    ]
    rows += [
        (
            f"recipe + [128, 128, 1], {2**k} contexts (dimension {k})",
            {**wide, "context_map_size": k},
        )
        for k in (4, 5, 7, 8)
    ]
    rows += [
        (f"recipe + rate min({c:g}/t, {m:g})", {**RECIPE, "lr": m, "lr_b": c})
        for c, m in ((30.0, 0.01), (100.0, 0.003), (300.0, 0.003), (50.0, 0.002))
    ]
    best_rate = {"lr": 0.002, "lr_b": 50.0}  # the best of those on validation
    rows += [
        (
            "recipe + 256 contexts, rate min(50/t, 0.002)",
            {**RECIPE, "context_map_size": 8, **best_rate},
        ),
        (
            "recipe + [128, 128, 1], 256 contexts, rate min(50/t, 0.002)",
            {**wide, "context_map_size": 8, **best_rate},
        ),
    ]
    example = "paper + example's inputs and offsets"
    rows += [
        (f"{example}, 64 contexts", {**EXAMPLE, "context_map_size": 6}),
        (f"{example}, 256 contexts", {**EXAMPLE, "context_map_size": 8}),
        (f"{example}, offsets N(0, 1)", {**EXAMPLE, "hyperplane_bias_scale": 1.0}),
        (f"{example}, base sigmoid(3 z)", {**EXAMPLE, "base_param": 3.0}),
        (f"{example}, rate min(50/t, 0.002)", {**EXAMPLE, **best_rate}),
        (
            f"{example}, [32, 32, 1], 64 contexts, rate 1e-3",
            {**EXAMPLE, "layers": [32, 32, 1], "context_map_size": 6, "lr": 1e-3, "lr_b": None},
        ),
    ]
    return [{**row, "label": label} for label, row in rows]


def base_inputs(x: np.ndarray, side: np.ndarray, params: dict) -> np.ndarray:
    """Base predictions ``[T, N]`` of examples ``x`` whose side information is ``side``."""
    kind = params.get("base", "pixel")
    if kind == "pixel":
        return x
    if kind == "squeeze":
        margin = params["base_param"]
        return (margin + (1.0 - 2.0 * margin) * x).astype(np.float32)
    if kind in ("sigmoid", "both"):
        z = params["base_param"] * side.astype(np.float64) / params["scale"]
        sharp = (0.5 * (1.0 + np.tanh(0.5 * z))).astype(np.float32)
        return sharp if kind == "sigmoid" else np.concatenate([x, sharp], axis=-1)
    raise ValueError(f"unknown base {kind!r}; known: pixel, squeeze, sigmoid, both")


def online_side_info(x: np.ndarray, transform: str, scale: float, eps: float = 0.1):
    """Side information of a stream, each row transformed with the statistics of rows <= t."""
    if transform == "none":
        return x * scale, (np.zeros(x.shape[1]), np.ones(x.shape[1]))
    x64 = x.astype(np.float64)
    counts = np.arange(1, x.shape[0] + 1, dtype=np.float64)[:, None]
    means = np.cumsum(x64, axis=0) / counts
    out = x64 - means
    final_mean = means[-1]
    final_scale = np.ones(x.shape[1])
    if transform == "standardize":
        second = np.cumsum(x64 * x64, axis=0) / counts
        std = np.sqrt(np.maximum(second - means * means, 0.0))
        out = out / (std + eps)
        final_scale = 1.0 / (std[-1] + eps)
    return (out * scale).astype(np.float32), (final_mean, final_scale)


def config_of(params: dict, input_size: int):
    """The 10-class :class:`gln_jax.GLNConfig` of a configuration over ``input_size`` pixels."""
    return make_config(
        params["layers"],
        input_size,
        context_map_size=params["context_map_size"],
        num_classes=10,
        base_prediction_size=input_size * (2 if params.get("base") == "both" else 1),
        context_bias=params["context_bias"],
        pred_clipping=params["pred_clipping"],
        weight_clipping=params["weight_clipping"],
        hyperplane_normalize=params.get("hyperplane_normalize"),
        hyperplane_bias_scale=params.get("hyperplane_bias_scale", 1.0),
    )


def run(params: dict, data) -> dict:
    import jax
    import jax.numpy as jnp

    from gln_jax.core.network import batch_apply, init
    from gln_jax.core.stream import fit_stream

    X_train, y_train = data
    Xt, yt, Xv, yv = X_train[:50000], y_train[:50000], X_train[50000:], y_train[50000:]
    config = config_of(params, Xt.shape[1])
    side, (mean, inv) = online_side_info(Xt, params["transform"], params["scale"])
    side_v = ((Xv - mean) * inv * params["scale"]).astype(np.float32)
    if params["transform"] == "none":
        side_v = (Xv * params["scale"]).astype(np.float32)
    base_t, base_v = base_inputs(Xt, side, params), base_inputs(Xv, side_v, params)
    t = np.arange(Xt.shape[0], dtype=np.float64)
    rates = np.full(Xt.shape[0], params["lr"])
    if params["lr_b"] is not None:
        rates = np.minimum(rates, params["lr_b"] / (t + 1))
    if params["normalize"]:
        eps = params["pred_clipping"]
        p = np.clip(Xt.astype(np.float64), eps, 1 - eps)
        norms = np.sum(np.log(p / (1 - p)) ** 2, axis=1) + 1.0
        rates = rates * (Xt.shape[1] + 1) / norms
    reset_peak_rss()
    start = time.perf_counter()
    fit_seconds = 0.0
    probs = []
    for seed in params["seeds"]:
        state = init(jax.random.key(seed), config)
        fit_start = time.perf_counter()
        state, _ = fit_stream(state, base_t, side, yt, rates.astype(np.float32), config=config)
        jax.block_until_ready(state)
        fit_seconds += time.perf_counter() - fit_start
        apply = jax.jit(lambda s, a, b: batch_apply(s, a, b, config=config))
        p = np.concatenate(
            [
                np.asarray(apply(state, jnp.asarray(base_v[i : i + 1000]), side_v[i : i + 1000]))
                for i in range(0, Xv.shape[0], 1000)
            ]
        )
        probs.append(p)
    seconds = time.perf_counter() - start
    accuracy = 100.0 * float(np.mean(np.mean(probs, axis=0).argmax(-1) == yv))
    singles = [100.0 * float(np.mean(p.argmax(-1) == yv)) for p in probs]
    machine = _machine()
    return {
        **params,
        "val_accuracy": accuracy,
        "member_accuracy": singles,
        "seconds": seconds,
        "examples_per_second": len(params["seeds"]) * Xt.shape[0] / fit_seconds,
        "peak_rss_mib": current_peak_rss_mib(),
        "machine": f"{machine['cores']}-core {machine['cpu']}",
        "date": time.strftime("%Y-%m-%d", time.gmtime()),
    }


def variants(phase: str) -> list[dict]:
    """The configurations of one search phase, as changes to :data:`BASE`."""
    if phase == "base":
        return [
            {},
            {"transform": "none", "scale": 1.0},
            {"scale": 3.0},
            {"scale": 30.0},
            {"transform": "standardize", "scale": 1.0},
            {"lr": 3e-3},
            {"lr": 3e-4},
            {"pred_clipping": 1e-2},
            {"pred_clipping": 5e-2},
            {"context_map_size": 6},
            {"context_map_size": 2},
            {"lr": 1e-2, "lr_b": 50.0},
            {"normalize": True, "lr": 3e-3},
        ]
    if phase == "clip":
        return [
            {"pred_clipping": 1e-4},
            {"pred_clipping": 1e-5},
            {"context_map_size": 8},
            {"weight_clipping": 10.0},
            {"weight_clipping": 2.0},
            {"context_map_size": 6, "scale": 30.0},
        ]
    if phase == "wide":
        return [
            {"layers": [32, 32, 1], "context_map_size": 6, "scale": 30.0},
            {"context_map_size": 6, "scale": 30.0, "seeds": [0, 1, 2]},
        ]
    recipe = {"layers": [32, 32, 1], "context_map_size": 6, "scale": 30.0}
    if phase == "base-predictions":  # around the recipe (row 20 of the rendered table)
        return [
            {**recipe, "base": "squeeze", "base_param": 0.05},
            {**recipe, "base": "sigmoid", "base_param": 3.0},
            {**recipe, "base": "sigmoid", "base_param": 8.0},
        ]
    if phase == "schedules":
        return [
            {**recipe, "lr": 3e-3, "lr_b": 30.0},
            {**recipe, "lr": 1e-2, "lr_b": 50.0},
            {**recipe, "lr": 1e-3, "lr_b": 20.0},
        ]
    if phase == "size":
        return [
            {**recipe, "layers": [32, 32, 32, 1]},
            {**recipe, "seeds": [0, 1, 2]},
            {**recipe, "layers": [64, 64, 1]},
        ]
    if phase == "gates":
        return [
            {**recipe, "scale": 100.0},
            {**recipe, "context_bias": False},  # offsets zero: hyperplanes through the mean
        ]
    sharp = {**recipe, "base": "sigmoid", "base_param": 8.0}
    if phase == "sharpen":  # the sigmoid of the centred pixel at larger gains
        return [{**recipe, "base": "sigmoid", "base_param": gain} for gain in (16.0, 30.0)]
    if phase == "sharpen-2":
        return [
            {**recipe, "base": "sigmoid", "base_param": 5.0},
            {**sharp, "lr": 3e-3, "lr_b": 30.0},
        ]
    if phase == "sharpen-3":
        return [{**recipe, "base": "sigmoid", "base_param": 60.0}]
    sharpest = {**recipe, "base": "sigmoid", "base_param": 60.0}  # the recipe since then
    if phase == "sharp-combos":
        return [
            {**sharpest, "lr": 3e-3, "lr_b": 30.0},
            {**sharpest, "layers": [64, 64, 1]},
            {**sharpest, "seeds": [0, 1, 2]},
        ]
    if phase == "sharp-more":
        return [
            {**sharpest, "base_param": 120.0},
            {**sharpest, "pred_clipping": 1e-2},
            {**sharpest, "base": "both"},
            {**sharpest, "pred_clipping": 1e-4},
        ]
    if phase == "sharp-rates":
        return [
            {**sharpest, "lr": 2e-3},
            {**sharpest, "lr": 5e-4},
            {**sharpest, "context_map_size": 7},
        ]
    if phase == "sharp-gates":
        return [
            {**sharpest, "scale": 10.0},
            {**sharpest, "scale": 100.0},
            {**sharpest, "transform": "standardize", "scale": 3.0, "base_param": 10.0},
        ]
    if phase == "paper":
        return ablation()
    if phase == "paper-combos":
        return combinations()
    known = (
        "paper, paper-combos, base, clip, wide, base-predictions, schedules, size, gates, sharpen, "
    )
    known += "sharpen-2, sharpen-3, sharp-combos, sharp-more, sharp-rates, sharp-gates"
    raise ValueError(f"unknown phase {phase!r}; known: {known}")


def read_results(path) -> list[dict]:
    """The rows of a JSON-lines results file, in the order written."""
    with open(path) as handle:
        return [json.loads(line) for line in handle if line.strip()]


def render(path) -> str:
    """Markdown table of every configuration in a results file, in the order tried."""
    lines = [
        "| # | layers | contexts | side info | scale | base | pred_clipping | weight_clipping "
        "| rate | seeds | validation (%) | s |",
        "|---:|---|---:|---|---:|---|---:|---:|---|---|---:|---:|",
    ]
    for i, r in enumerate(read_results(path), 1):
        rate = f"{r['lr']:g}"
        if r["lr_b"] is not None:
            rate = f"min({r['lr']:g}, {r['lr_b']:g}/t)"
        if r["normalize"]:
            rate += " normalised"
        seeds = ",".join(map(str, r["seeds"]))
        if len(r["seeds"]) > 1:
            members = ", ".join(f"{a:.2f}" for a in r["member_accuracy"])
            seeds += f" (ensemble; members {members})"
        side = r["transform"] + ("" if r["context_bias"] else ", zero offsets")
        base = r.get("base", "pixel")
        if base != "pixel":
            base += f" {r['base_param']:g}"
        lines.append(
            f"| {i} | {r['layers']} | {2 ** r['context_map_size']} | {side} "
            f"| {r['scale']:g} | {base} | {r['pred_clipping']:g} | {r['weight_clipping']:g} "
            f"| {rate} "
            f"| {seeds} | {r['val_accuracy']:.2f} | {r['seconds']:.0f} |"
        )
    return "\n".join(lines)


def context_usage(params: dict, X_train: np.ndarray, neurons: int = 256) -> dict:
    """How the first layer's hyperplanes cut the validation-split training stream.

    Draws the hyperplanes of ``params`` (seed 0) as :func:`gln_jax.init` does, applies them to
    the side information of the last 10,000 of the first 50,000 training examples (online
    transform, as in :func:`run`) and reports, over the first ``neurons`` neurons of layer 1:
    the share of hyperplanes that put fewer than 1% of those examples on one side, and the mean
    number of contexts that hold at least 1% of them.
    """
    import jax

    from gln_jax.core.network import init

    k = params["context_map_size"]
    config = config_of(params, X_train.shape[1])
    side, _ = online_side_info(X_train[:50000], params["transform"], params["scale"])
    side = side[-10000:].astype(np.float64)
    layer = init(jax.random.key(0), config).layers[0]
    planes = np.asarray(layer.hyperplanes, np.float64).reshape(-1, k, side.shape[1])[:neurons]
    offsets = np.asarray(layer.hyperplane_bias, np.float64).reshape(-1, k)[:neurons]
    bits = np.einsum("nkd,td->ntk", planes, side) > offsets[:, None, :]
    share = bits.mean(axis=1)
    index = (bits * (2 ** np.arange(k))).sum(-1)
    counts = np.stack([np.bincount(row, minlength=2**k) for row in index]) / index.shape[1]
    return {
        "label": params["label"],
        "contexts": 2**k,
        "constant_hyperplanes": float(np.mean((share < 0.01) | (share > 0.99))),
        "contexts_used": float(np.mean(np.sum(counts >= 0.01, axis=1))),
    }


def render_ablation(results: list[dict]) -> str:
    """Markdown table of ablation rows (:func:`read_results`), one per labelled configuration."""
    lines = [
        "| configuration | neurons | contexts | gates | base | rate | validation (%) "
        "| examples/s | peak memory (MiB) |",
        "|---|---|---:|---|---|---|---:|---:|---:|",
    ]
    for r in results:
        rate = f"{r['lr']:g}" if r["lr_b"] is None else f"min({r['lr_b']:g}/t, {r['lr']:g})"
        gates = "raw pixels" if r["transform"] == "none" else f"{r['transform']} x{r['scale']:g}"
        if r.get("hyperplane_normalize") is False:
            gates += ", unnormalised"
        base = r["base"] if r["base"] == "pixel" else f"{r['base']} {r['base_param']:g}"
        lines.append(
            f"| {r['label']} | {r['layers']} | {2 ** r['context_map_size']} | {gates} | {base} "
            f"| {rate} | {r['val_accuracy']:.2f} | {r['examples_per_second']:.0f} "
            f"| {r['peak_rss_mib']:.0f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python benchmarks/recipe_search.py")
    parser.add_argument("--phase", default="base")
    parser.add_argument("--set", default="{}", help="JSON dict of overrides for every variant")
    parser.add_argument("--variants", default=None, help="JSON list of variants (else --phase)")
    parser.add_argument("--out", default=None, help="JSON-lines file the results go to")
    parser.add_argument("--render", action="store_true", help="print --out as a table, stop")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument(
        "--isolate",
        action="store_true",
        help="run each variant in a fresh process, so that each row's peak memory is its own",
    )
    parser.add_argument("--index", type=int, default=None, help="run only this variant")
    parser.add_argument(
        "--context-usage",
        action="store_true",
        help="print how the first layer's hyperplanes of the paper, the open-source example "
        "and the recipe cut the training stream, then stop",
    )
    args = parser.parse_args(argv)
    labelled = args.phase in ("paper", "paper-combos")
    if args.render and args.out is None:
        parser.error("--render needs --out, the results file to print")
    if args.render:
        print(render_ablation(read_results(args.out)) if labelled else render(args.out))
        return 0
    if args.context_usage:
        X_train, _, _, _ = utils.get_mnist(True, args.data_dir, progress=False)
        print("| configuration | hyperplanes cutting < 1% off | contexts used (>= 1%) |")
        print("|---|---:|---:|")
        for params in (
            {**PAPER, "label": "paper as written"},
            {**EXAMPLE, "label": "paper + example's inputs and offsets"},
            {**RECIPE, "label": "recipe"},
        ):
            found = context_usage(params, X_train)
            print(
                f"| {found['label']} | {100 * found['constant_hyperplanes']:.1f}% "
                f"| {found['contexts_used']:.1f} of {found['contexts']} |"
            )
        return 0
    if args.out is None:
        parser.error("--out is required (except with --context-usage)")
    found = json.loads(args.variants) if args.variants else variants(args.phase)
    if args.isolate and args.index is None:
        rest = [a for a in (sys.argv[1:] if argv is None else argv) if a != "--isolate"]
        for index in range(len(found)):
            subprocess.run([sys.executable, __file__, *rest, "--index", str(index)], check=True)
        return 0
    if args.index is not None:
        found = [found[args.index]]
    X_train, y_train, _, _ = utils.get_mnist(True, args.data_dir, progress=False)
    data = (X_train, y_train)
    for change in found:
        params = {**BASE, **json.loads(args.set), **change}
        result = run(params, data)
        line = json.dumps(result)
        print(line, flush=True)
        with open(args.out, "a") as handle:
            handle.write(line + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
