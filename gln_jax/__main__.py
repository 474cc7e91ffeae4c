"""``gln-jax`` / ``python -m gln_jax``: train and evaluate a GLN on MNIST in one pass.

Example:
    gln-jax --layer-sizes 4 4 1 --batch-size 1            # 10 classes, the JAX backend
    gln-jax --digit 3 --backend numpy --learning-rate 1e-3 --no-context-bias
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

from gln_jax.api.registry import backend_names

TRAIN_CHUNK = 2000  # examples per fit call: the progress bar's granularity
TEST_BATCH = 1000


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gln-jax",
        description="Train a Gated Linear Network online on MNIST (one pass) and evaluate it.",
    )
    parser.add_argument("--backend", default="jax", choices=backend_names())
    parser.add_argument("--layer-sizes", type=int, nargs="+", default=[4, 4, 1])
    parser.add_argument(
        "--digit", type=int, default=None, help="train a binary 'digit or not' model"
    )
    parser.add_argument("--dataset", default="mnist", choices=["mnist", "fashion"])
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--learning-rate", type=float, default=1e-4)
    parser.add_argument("--context-map-size", type=int, default=4)
    parser.add_argument(
        "--context-bias",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="random non-zero gating thresholds (default: on)",
    )
    parser.add_argument(
        "--deskew",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="deskew the images first (default: on)",
    )
    parser.add_argument("--data-dir", default=None, help="directory with the IDX files")
    parser.add_argument("--seed", type=int, default=0, help="model and shuffling seed")
    parser.add_argument("--limit", type=int, default=None, help="use the first N examples")
    parser.add_argument("--save", default=None, metavar="PATH", help="save the model (.npz)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.digit is not None and not 0 <= args.digit <= 9:
        parser.error(f"--digit must be in 0..9, got {args.digit}")
    for name in ("batch_size", "epochs", "limit"):
        value = getattr(args, name)
        if value is not None and value < 1:
            parser.error(f"--{name.replace('_', '-')} must be positive, got {value}")
    from tqdm.auto import tqdm

    from gln_jax import GLN, utils
    from gln_jax.data import registry as datasets

    try:
        X_train, y_train, X_test, y_test = utils.get_mnist(
            deskewed=args.deskew,
            data_dir=args.data_dir,
            dataset=args.dataset,
            progress=not args.quiet,
        )
    except (OSError, ValueError) as err:  # missing, unreachable or corrupt data files
        kind = "cannot load data" if not isinstance(err, datasets.DownloadError) else "offline"
        print(f"gln-jax: {kind}: {err}", file=sys.stderr)
        return 2
    rng = np.random.default_rng(args.seed)
    train, test = rng.permutation(len(X_train)), rng.permutation(len(X_test))
    if args.limit is not None:
        train, test = train[: args.limit], test[: args.limit]
    X_train, y_train, X_test, y_test = X_train[train], y_train[train], X_test[test], y_test[test]
    num_classes = 10
    if args.digit is not None:
        y_train, y_test, num_classes = y_train == args.digit, y_test == args.digit, 2

    def make_model():
        return GLN(
            args.backend,
            args.layer_sizes,
            X_train.shape[1],
            context_map_size=args.context_map_size,
            num_classes=num_classes,
            learning_rate=args.learning_rate,
            context_bias=args.context_bias,
            seed=args.seed,
        )

    # Compile (or trace) on a throwaway twin with the shapes of the run, so that the
    # throughputs below measure the steady state; the time is reported as the first call's.
    begin = time.perf_counter()
    warm = make_model()
    warm.fit(X_train[:TRAIN_CHUNK], y_train[:TRAIN_CHUNK], batch_size=args.batch_size)
    warm.predict(X_test[:TEST_BATCH])
    compile_s = time.perf_counter() - begin
    model = make_model()
    print(model)

    train_s = 0.0
    with tqdm(total=args.epochs * len(X_train), desc="train", disable=args.quiet) as bar:
        for _ in range(args.epochs):
            for start in range(0, len(X_train), TRAIN_CHUNK):
                chunk = slice(start, start + TRAIN_CHUNK)
                begin = time.perf_counter()
                model.fit(X_train[chunk], y_train[chunk], batch_size=args.batch_size)
                train_s += time.perf_counter() - begin
                bar.update(len(X_train[chunk]))
    preds = []
    begin = time.perf_counter()
    for start in tqdm(range(0, len(X_test), TEST_BATCH), desc="test", disable=args.quiet):
        preds.append(model.predict(X_test[start : start + TEST_BATCH]))
    test_s = time.perf_counter() - begin
    accuracy = 100.0 * float(np.mean(np.concatenate(preds) == y_test))
    task = f"digit {args.digit} vs rest" if args.digit is not None else "10 classes"
    print(f"dataset: {args.dataset} ({'deskewed' if args.deskew else 'raw'}), task: {task}")
    print(f"test accuracy: {accuracy:.2f}%")
    print(
        f"training: {args.epochs * len(X_train) / train_s:,.0f} samples/s "
        f"(batch size {args.batch_size}); inference: {len(X_test) / test_s:,.0f} samples/s; "
        f"warm-up (compile and first {min(TRAIN_CHUNK, len(X_train))} examples): {compile_s:.2f} s"
    )
    if args.save:
        model.save(args.save)
        print(f"saved to {args.save}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
