"""The ``gln-jax`` command line: train and evaluate a GLN on MNIST in one pass.

The parser is built from the registries (backends and their pip extras, datasets) and the named
defaults without importing JAX or any framework, so ``gln-jax --help`` answers at once; the
frameworks are imported only when a run starts. Every user error (a bad option value, a
missing framework, an unusable ``--save`` path, data that cannot be found or fetched) is one
line on stderr and exit code 2, never a traceback.

Example:
    gln-jax --layer-sizes 4 4 1 --batch-size 1            # 10 classes, the JAX backend
    gln-jax --digit 3 --backend numpy --learning-rate 1e-3 --no-context-bias
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
import time

from gln_jax import utils
from gln_jax.api import backends
from gln_jax.core.types import (
    DEFAULT_CONTEXT_MAP_SIZE,
    DEFAULT_LEARNING_RATE,
    MNIST_LAYER_SIZES,
)
from gln_jax.data import datasets

PROG = "gln-jax"
TRAIN_CHUNK = 2000  # examples per fit call: the progress bar's granularity
TEST_BATCH = 1000

#: Python keyword -> command-line option, for messages raised by the library.
_OPTIONS = {
    "layer_sizes": "--layer-sizes",
    "learning_rate": "--learning-rate",
    "context_map_size": "--context-map-size",
    "batch_size": "--batch-size",
    "num_epochs": "--epochs",
    "seed": "--seed",
    "data_dir=...": "--data-dir DIR",
    "data_dir": "--data-dir",
}


class UserError(Exception):
    """A mistake of the user's, reported as one line on stderr with exit code 2."""


class _Parser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose errors are one line (no usage block), exit code 2."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


class _Formatter(argparse.RawDescriptionHelpFormatter):
    """Shows every default (unless the help already says it), keeps the epilog's line breaks."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if "(default" in text or any(default is v for v in (None, False, argparse.SUPPRESS)):
            return text
        return text + " (default: %(default)s)"


def _backend_help() -> str:
    """One line per backend: its names and what it needs, read from the registry."""
    lines = []
    for entry in backends.BACKENDS:
        names = entry.name + (f" (alias {', '.join(entry.aliases)})" if entry.aliases else "")
        need = (
            f"needs {entry.framework}: pip install 'gln-jax[{entry.extra}]'"
            if entry.extra
            else "built in"
        )
        lines.append(f"  {names}: {need}")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    """The command line's parser; imports no JAX and no framework."""
    parser = _Parser(
        prog=PROG,
        description="Train a Gated Linear Network online on MNIST (one pass) and evaluate it.",
        formatter_class=_Formatter,
        epilog=(
            "backends:\n"
            + _backend_help()
            + "\n\nMNIST is looked up in --data-dir, then $GLN_JAX_DATA_DIR, then the user cache"
            "\n($XDG_CACHE_HOME/gln-jax or ~/.cache/gln-jax), and downloaded into that cache "
            "when it is missing."
        ),
    )
    parser.add_argument(
        "--backend",
        default="jax",
        choices=backends.backend_names(),
        help="framework that runs the model (see 'backends' below for the extras)",
    )
    parser.add_argument(
        "--layer-sizes",
        type=int,
        nargs="+",
        default=list(MNIST_LAYER_SIZES),
        metavar="K",
        help="neurons per layer, a final 1 appended when missing (default: "
        + " ".join(map(str, MNIST_LAYER_SIZES))
        + ")",
    )
    parser.add_argument(
        "--digit",
        type=int,
        default=None,
        help="train a binary 'digit or not' model (default: 10 classes, one-vs-all)",
    )
    parser.add_argument(
        "--dataset", default="mnist", choices=sorted(datasets.DATASETS), help="dataset"
    )
    parser.add_argument("--batch-size", type=int, default=1, help="examples per update")
    parser.add_argument("--epochs", type=int, default=1, help="passes over the training set")
    parser.add_argument(
        "--learning-rate", type=float, default=DEFAULT_LEARNING_RATE, help="learning rate"
    )
    parser.add_argument(
        "--context-map-size",
        type=int,
        default=DEFAULT_CONTEXT_MAP_SIZE,
        help="gating hyperplanes per neuron (2**m weight rows)",
    )
    parser.add_argument(
        "--context-bias",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="random non-zero hyperplane offsets",
    )
    parser.add_argument(
        "--deskew",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="deskew the images first",
    )
    parser.add_argument(
        "--data-dir",
        default=None,
        metavar="DIR",
        help="directory with the four IDX files (.gz or not); when not given: "
        "$GLN_JAX_DATA_DIR, then the user cache, then a download into it (default: not given)",
    )
    parser.add_argument("--seed", type=int, default=0, help="model and shuffling seed")
    parser.add_argument(
        "--limit",
        type=int,
        default=None,
        metavar="N",
        help="train and test on a shuffled subset: the first N examples of each split after "
        "shuffling with --seed (default: all)",
    )
    parser.add_argument(
        "--save",
        default=None,
        metavar="PATH",
        help="save the trained model (.npz) there; its folder must exist and be writable "
        "(default: not saved)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    return parser


def _option_names(message: str) -> str:
    """A library message with Python keywords replaced by the options that set them."""
    for keyword, option in _OPTIONS.items():
        message = message.replace(keyword, option)
    return message


def _check_arguments(args) -> None:
    """Checks what can be checked before anything is imported or loaded."""
    if args.digit is not None and not 0 <= args.digit <= 9:
        raise UserError(f"--digit must be in 0..9, got {args.digit}")
    for name in ("batch_size", "epochs", "limit"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise UserError(f"--{name.replace('_', '-')} must be positive, got {value}")
    if not (math.isfinite(args.learning_rate) and args.learning_rate > 0):
        raise UserError(f"--learning-rate must be positive and finite, got {args.learning_rate}")
    entry = backends.get_backend(args.backend)
    if not backends.is_available(args.backend):
        raise UserError(
            f"backend {args.backend!r} needs {entry.framework}, which is not installed: "
            f"pip install 'gln-jax[{entry.extra}]'"
        )
    if args.save is not None:
        _check_save_path(args.save)


def _check_save_path(path: str) -> None:
    """``path``'s folder exists and takes a new file (tried, so read-only mounts count)."""
    folder = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        raise UserError(f"--save {path!r} is a directory; give a file name such as model.npz")
    if not os.path.isdir(folder):
        raise UserError(f"--save {path!r}: folder {folder!r} does not exist")
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as err:
        raise UserError(f"--save {path!r}: folder {folder!r} is not writable ({err})") from None


def _data_error(err: Exception) -> UserError:
    """The one-line message of a data error, in the command line's terms."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    head = lines[0].split("; pass ")[0].rstrip(":") if lines else type(err).__name__
    if isinstance(err, datasets.DownloadError):
        detail = f" ({lines[1]})" if len(lines) > 1 and "data_dir" not in lines[1] else ""
        return UserError(
            f"offline: {head}{detail}; put the four IDX files (.gz or not) in a directory and "
            f"pass --data-dir DIR, or set ${datasets.ENV_DATA_DIR} to it"
        )
    return UserError(f"cannot load data: {_option_names(head)}")


def _load(args):
    try:
        return utils.get_mnist(
            deskewed=args.deskew,
            data_dir=args.data_dir,
            dataset=args.dataset,
            progress=not args.quiet,
        )
    except (OSError, ValueError) as err:  # missing, unreachable or corrupt data files
        raise _data_error(err) from None


def _run(args) -> None:
    import numpy as np
    from tqdm.auto import tqdm

    from gln_jax.api.facade import GLN

    spec = datasets.get_spec(args.dataset)
    input_size = math.prod(spec.train_images.shape[1:])
    num_classes = 10 if args.digit is None else 2

    def make_model():
        return GLN(
            args.backend,
            args.layer_sizes,
            input_size,
            context_map_size=args.context_map_size,
            num_classes=num_classes,
            learning_rate=args.learning_rate,
            context_bias=args.context_bias,
            seed=args.seed,
        )

    try:  # every hyperparameter is checked here, before any data is read
        make_model()
    except (ValueError, TypeError) as err:
        raise UserError(f"bad hyperparameter: {_option_names(str(err))}") from None
    except ImportError as err:
        raise UserError(str(err)) from None

    X_train, y_train, X_test, y_test = _load(args)
    rng = np.random.default_rng(args.seed)
    train, test = rng.permutation(len(X_train)), rng.permutation(len(X_test))
    if args.limit is not None:
        train, test = train[: args.limit], test[: args.limit]
    X_train, y_train, X_test, y_test = X_train[train], y_train[train], X_test[test], y_test[test]
    if args.digit is not None:
        y_train, y_test = y_train == args.digit, y_test == args.digit

    # Compile (or trace) on a throwaway twin with the shapes of the run, so that the
    # throughputs below measure the steady state; the time is reported as the first call's.
    begin = time.perf_counter()
    warm = make_model()
    warm.fit(X_train[:TRAIN_CHUNK], y_train[:TRAIN_CHUNK], batch_size=args.batch_size)
    warm.predict(X_test[:TEST_BATCH])
    compile_s = time.perf_counter() - begin
    model = make_model()

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
    with tqdm(total=len(X_test), desc="test", disable=args.quiet) as bar:
        for start in range(0, len(X_test), TEST_BATCH):
            preds.append(model.predict(X_test[start : start + TEST_BATCH]))
            bar.update(len(preds[-1]))
    test_s = time.perf_counter() - begin
    accuracy = 100.0 * float(np.mean(np.concatenate(preds) == y_test))
    task = f"digit {args.digit} vs rest" if args.digit is not None else "10 classes"
    print(model)  # after training: its step is the number of examples learned from
    print(f"dataset: {args.dataset} ({'deskewed' if args.deskew else 'raw'}), task: {task}")
    print(f"test accuracy: {accuracy:.2f}%")
    print(
        f"training: {args.epochs * len(X_train) / train_s:,.0f} samples/s "
        f"(batch size {args.batch_size}); inference: {len(X_test) / test_s:,.0f} samples/s; "
        f"warm-up (compile and first {min(TRAIN_CHUNK, len(X_train))} examples): {compile_s:.2f} s"
    )
    if args.save:
        try:
            model.save(args.save)
        except OSError as err:
            raise UserError(f"--save {args.save!r}: {err}") from None
        print(f"saved to {args.save}")


def main(argv: list[str] | None = None) -> int:
    """Runs the command line; returns the exit code (0, or 2 for a user error)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        _check_arguments(args)
        _run(args)
    except UserError as err:
        print(f"{PROG}: {err}", file=sys.stderr)
        return 2
    return 0
