"""The ``gln-jax`` command line: train a GLN on MNIST in one pass, evaluate it, predict with it.

Three commands: ``train`` (the default, so ``gln-jax --layer-sizes 4 4 1`` trains),
``evaluate MODEL.npz`` (test accuracy of a saved model) and ``predict MODEL.npz --input X.npy``.
The parsers are built from the registries (backends and their pip extras, datasets) and the named
defaults without importing JAX or any framework, so ``gln-jax --help`` answers at once; the
frameworks are imported only when a run starts. Every user error (a bad option value, a
missing framework, an unusable ``--save`` path, data that cannot be found or fetched) is one
line on stderr and exit code 2, never a traceback.

Example:
    gln-jax --layer-sizes 4 4 1 --batch-size 1            # 10 classes, the JAX backend
    gln-jax --digit 3 --backend numpy --learning-rate 1e-3 --no-context-bias
    gln-jax --recipe mnist --save model.npz && gln-jax evaluate model.npz
    gln-jax predict model.npz --input X.npy --output labels.npy
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
import time

from gln_jax import utils
from gln_jax._version import __version__
from gln_jax.api import backends
from gln_jax.core.defaults import (
    DEFAULT_CONTEXT_MAP_SIZE,
    DEFAULT_LEARNING_RATE,
    MNIST_LAYER_SIZES,
)
from gln_jax.data import datasets

PROG = "gln-jax"
TRAIN_CHUNK = 2000  # examples per fit call: the progress bar's granularity
TEST_BATCH = 1000
COMMANDS = ("train", "evaluate", "predict")
#: Datasets deskewed unless --no-deskew: the documented Fashion-MNIST figures are undeskewed.
DESKEWED_BY_DEFAULT = ("mnist",)
#: The options a --recipe sets, with their defaults when there is no recipe.
RECIPE_OPTIONS = {
    "layer_sizes": list(MNIST_LAYER_SIZES),
    "context_map_size": DEFAULT_CONTEXT_MAP_SIZE,
    "learning_rate": DEFAULT_LEARNING_RATE,
}

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


def _data_epilog() -> str:
    return (
        "Data are looked up in --data-dir, then $GLN_JAX_DATA_DIR, then the dataset's system"
        f"\nfolder ({datasets.get_spec('fashion').system_dir} for fashion, from Debian's"
        "\ndataset-fashion-mnist), then the user cache ($XDG_CACHE_HOME/gln_jax/datasets or"
        "\n~/.cache/gln_jax/datasets), and downloaded into that cache when they are missing."
    )


def _add_data_options(parser: argparse.ArgumentParser) -> None:
    """The options that choose and prepare the data, shared by every command."""
    parser.add_argument(
        "--dataset", default="mnist", choices=sorted(datasets.DATASETS), help="dataset"
    )
    parser.add_argument(
        "--digit",
        type=int,
        default=None,
        help="a binary 'digit or not' task (default: 10 classes, one-vs-all)",
    )
    parser.add_argument(
        "--deskew",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="deskew the images first (default: on for "
        + ", ".join(DESKEWED_BY_DEFAULT)
        + ", off for fashion and any other dataset, as in the documented figures)",
    )
    parser.add_argument(
        "--data-dir",
        default=None,
        metavar="DIR",
        help="directory with the four IDX files (.gz or not); when not given: "
        "$GLN_JAX_DATA_DIR, then the system folder, then the user cache, then a download into "
        "it (default: not given)",
    )


def _add_model_options(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument(
        "model", metavar="MODEL.npz", help=f"a model saved by 'gln-jax --save' {what}"
    )
    parser.add_argument(
        "--backend",
        default="jax",
        choices=backends.backend_names(),
        help="framework that runs the model",
    )


def build_parser() -> argparse.ArgumentParser:
    """The parser of ``gln-jax [train]``; imports no JAX and no framework."""
    parser = _Parser(
        prog=PROG,
        description="Train a Gated Linear Network online on MNIST (one pass) and evaluate it."
        "\n\ncommands:"
        "\n  gln-jax [train] [options]      train, test and optionally --save (the default)"
        "\n  gln-jax evaluate MODEL.npz     test accuracy of a saved model"
        "\n  gln-jax predict MODEL.npz --input X.npy [--output Y.npy] [--probs]"
        "\n(see gln-jax evaluate --help, gln-jax predict --help)",
        formatter_class=_Formatter,
        epilog="backends:\n" + _backend_help() + "\n\n" + _data_epilog(),
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    parser.add_argument(
        "--backend",
        default="jax",
        choices=backends.backend_names(),
        help="framework that runs the model (see 'backends' below for the extras)",
    )
    parser.add_argument(
        "--recipe",
        default=None,
        metavar="NAME",
        help="a named configuration from gln_jax.recipes, e.g. mnist (train it with batch "
        "size 1, the default); it sets --layer-sizes, --context-map-size and --learning-rate, "
        "which may then not be given (default: none)",
    )
    parser.add_argument(
        "--layer-sizes",
        type=int,
        nargs="+",
        default=None,
        metavar="K",
        help="neurons per layer, a final 1 appended when missing (default: "
        + " ".join(map(str, MNIST_LAYER_SIZES))
        + ")",
    )
    parser.add_argument("--batch-size", type=int, default=1, help="examples per update")
    parser.add_argument("--epochs", type=int, default=1, help="passes over the training set")
    parser.add_argument(
        "--learning-rate",
        type=float,
        default=None,
        help=f"learning rate (default: {DEFAULT_LEARNING_RATE})",
    )
    parser.add_argument(
        "--context-map-size",
        type=int,
        default=None,
        help="gating hyperplanes per neuron (2**m weight rows) "
        f"(default: {DEFAULT_CONTEXT_MAP_SIZE})",
    )
    parser.add_argument(
        "--context-bias",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="random non-zero hyperplane offsets",
    )
    _add_data_options(parser)
    parser.add_argument("--seed", type=int, default=0, help="model and shuffling seed")
    _add_limits(parser, train=True)
    parser.add_argument(
        "--limit",
        type=int,
        default=None,
        metavar="N",
        help="deprecated: the same as --train-limit N --test-limit N (default: all)",
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


def _add_limits(parser: argparse.ArgumentParser, *, train: bool) -> None:
    if train:
        parser.add_argument(
            "--train-limit",
            type=int,
            default=None,
            metavar="N",
            help="train on the first N training examples after shuffling with --seed "
            "(default: all)",
        )
    parser.add_argument(
        "--test-limit",
        type=int,
        default=None,
        metavar="N",
        help="test on the first N test examples after shuffling with --seed, the same slice "
        "in train and evaluate (default: all)",
    )


def build_evaluate_parser() -> argparse.ArgumentParser:
    """The parser of ``gln-jax evaluate``; imports no JAX and no framework."""
    parser = _Parser(
        prog=f"{PROG} evaluate",
        description="Test accuracy of a saved model on the dataset's test split. Pass the "
        "--dataset, --digit and --deskew the model was trained with.",
        formatter_class=_Formatter,
        epilog=_data_epilog(),
    )
    _add_model_options(parser, "to test")
    _add_data_options(parser)
    parser.add_argument("--seed", type=int, default=0, help="shuffling seed of --test-limit")
    _add_limits(parser, train=False)
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    return parser


def build_predict_parser() -> argparse.ArgumentParser:
    """The parser of ``gln-jax predict``; imports no JAX and no framework."""
    parser = _Parser(
        prog=f"{PROG} predict",
        description="Classes (or probabilities) of a saved model for the examples in a .npy "
        "file: [B, input_size] (or one [input_size] example), preprocessed as in training "
        "(flat pixels in [0, 1], deskewed if the model was trained deskewed).",
        formatter_class=_Formatter,
    )
    _add_model_options(parser, "to predict with")
    parser.add_argument("--input", required=True, metavar="FILE.npy", help="the examples")
    parser.add_argument(
        "--output",
        default=None,
        metavar="FILE.npy",
        help="write the predictions there ([B] classes, or [B] / [B, classes] probabilities) "
        "(default: print them, one example a line)",
    )
    parser.add_argument(
        "--probs",
        action="store_true",
        help="probabilities instead of classes (one sigmoid per class, not normalised)",
    )
    return parser


def _option_names(message: str) -> str:
    """A library message with Python keywords replaced by the options that set them."""
    for keyword, option in _OPTIONS.items():
        message = message.replace(keyword, option)
    return message


def _check_positive(args, names) -> None:
    for name in names:
        value = getattr(args, name, None)
        if value is not None and value < 1:
            raise UserError(f"--{name.replace('_', '-')} must be positive, got {value}")


def _check_data_options(args) -> None:
    if args.digit is not None and not 0 <= args.digit <= 9:
        raise UserError(f"--digit must be in 0..9, got {args.digit}")
    if args.deskew is None:
        args.deskew = args.dataset in DESKEWED_BY_DEFAULT


def _check_backend(name: str) -> None:
    entry = backends.get_backend(name)
    if not backends.is_available(name):
        raise UserError(
            f"backend {name!r} needs {entry.framework}, which is not installed: "
            f"pip install 'gln-jax[{entry.extra}]'"
        )


def _check_arguments(args) -> None:
    """Checks what can be checked before anything is imported or loaded."""
    _check_data_options(args)
    _check_positive(args, ("batch_size", "epochs", "limit", "train_limit", "test_limit"))
    if args.limit is not None:
        if args.train_limit is not None or args.test_limit is not None:
            raise UserError(
                "--limit (deprecated) cannot be combined with --train-limit/--test-limit"
            )
        args.train_limit = args.test_limit = args.limit
    if args.recipe is not None:
        given = [name for name in RECIPE_OPTIONS if getattr(args, name) is not None]
        if given:
            options = ", ".join(_OPTIONS[name] for name in given)
            raise UserError(
                f"--recipe {args.recipe} sets {options}; leave it out, or drop --recipe"
            )
    else:
        for name, default in RECIPE_OPTIONS.items():
            if getattr(args, name) is None:
                setattr(args, name, default)
        if not (math.isfinite(args.learning_rate) and args.learning_rate > 0):
            raise UserError(
                f"--learning-rate must be positive and finite, got {args.learning_rate}"
            )
    _check_backend(args.backend)
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


def _data_error(err: Exception, data_dir: str | None) -> UserError:
    """The one-line message of a data error, in the command line's terms.

    A file that could not be downloaded is named with its checksum, with the copies passed
    over because they hold another dataset's file of the same name (MNIST's in a folder given
    for Fashion-MNIST) and, when --data-dir was given, the fact that it is missing there.
    """
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    head = lines[0].split("; pass ")[0].rstrip(":") if lines else type(err).__name__
    if isinstance(err, datasets.DownloadError):
        detail = ""
        if len(lines) > 1 and "data_dir" not in lines[1] and "not found in" not in lines[1]:
            detail = f" ({lines[1]})"
        file = getattr(err, "file", None)
        missing = ""
        if file is not None:
            place = f"--data-dir {data_dir}" if data_dir else "any data folder"
            missing = (
                f"; {file.name}[.gz] of dataset {err.dataset!r} (MD5 {file.md5} uncompressed) "
                f"is not in {place}"
            )
            missing += "".join(f"; {note}" for note in err.passed_over)
        return UserError(
            f"offline: {head}{detail}{missing}; put the four IDX files (.gz or not) in a "
            f"directory and pass --data-dir DIR, or set ${datasets.ENV_DATA_DIR} to it"
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
        raise _data_error(err, args.data_dir) from None


def _orders(seed: int, num_train: int, num_test: int):
    """The shuffled orders of the two splits: one generator permutes train, then test."""
    import numpy as np

    rng = np.random.default_rng(seed)
    return rng.permutation(num_train), rng.permutation(num_test)


def _recipe(name: str):
    """The function ``gln_jax.recipes.<name>`` (imports JAX)."""
    import inspect

    from gln_jax import recipes

    names = sorted(
        key
        for key, value in vars(recipes).items()
        if inspect.isfunction(value) and value.__module__ == recipes.__name__ and key[0] != "_"
    )
    if name not in names:
        raise UserError(f"--recipe: unknown recipe {name!r}; known: {', '.join(names)}")
    return getattr(recipes, name)


def _run(args) -> None:
    from tqdm.auto import tqdm

    from gln_jax.api.facade import GLN

    spec = datasets.get_spec(args.dataset)
    input_size = math.prod(spec.train_images.shape[1:])
    num_classes = 10 if args.digit is None else 2
    if args.recipe is not None:
        recipe = _recipe(args.recipe)(input_size=input_size, num_classes=num_classes)
    else:
        recipe = {
            "layer_sizes": args.layer_sizes,
            "input_size": input_size,
            "context_map_size": args.context_map_size,
            "num_classes": num_classes,
            "learning_rate": args.learning_rate,
        }

    def make_model():
        return GLN(args.backend, **recipe, context_bias=args.context_bias, seed=args.seed)

    try:  # every hyperparameter is checked here, before any data is read
        make_model()
    except (ValueError, TypeError) as err:
        raise UserError(f"bad hyperparameter: {_option_names(str(err))}") from None
    except ImportError as err:
        raise UserError(str(err)) from None
    if args.limit is not None:
        print(
            f"{PROG}: note: --limit is deprecated; it means --train-limit {args.limit} "
            f"--test-limit {args.limit}",
            file=sys.stderr,
        )

    X_train, y_train, X_test, y_test = _load(args)
    train, test = _orders(args.seed, len(X_train), len(X_test))
    train, test = train[: args.train_limit], test[: args.test_limit]
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
    begin = time.perf_counter()
    accuracy = _accuracy(model, X_test, y_test, args.quiet)
    test_s = time.perf_counter() - begin
    print(model)  # after training: its step is the number of examples learned from
    _print_task(args)
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


def _accuracy(model, X, y, quiet: bool) -> float:
    """Test accuracy (%) of ``model`` on ``X`` ``[B, input_size]``, ``y`` ``[B]``."""
    import numpy as np
    from tqdm.auto import tqdm

    preds = []
    with tqdm(total=len(X), desc="test", disable=quiet) as bar:
        for start in range(0, len(X), TEST_BATCH):
            preds.append(model.predict(X[start : start + TEST_BATCH]))
            bar.update(len(preds[-1]))
    return 100.0 * float(np.mean(np.concatenate(preds) == y))


def _print_task(args) -> None:
    task = f"digit {args.digit} vs rest" if args.digit is not None else "10 classes"
    print(f"dataset: {args.dataset} ({'deskewed' if args.deskew else 'raw'}), task: {task}")


def _load_model(path: str, backend: str):
    """``GLN.load(path, backend)``, its errors as one line naming the file."""
    if not os.path.isfile(path):
        raise UserError(f"model file {path!r} does not exist (save one with gln-jax --save)")
    from gln_jax.api.facade import GLN

    try:
        return GLN.load(path, backend)
    except (OSError, ValueError, TypeError, KeyError) as err:
        raise UserError(f"cannot load the model {path!r}: {err}") from None
    except ImportError as err:
        raise UserError(str(err)) from None


def _evaluate(args) -> None:
    model = _load_model(args.model, args.backend)
    spec = datasets.get_spec(args.dataset)
    width = math.prod(spec.test_images.shape[1:])
    if model.input_size != width:
        raise UserError(
            f"model {args.model!r} takes examples {model.input_size} wide; dataset "
            f"{args.dataset!r} has {width}"
        )
    binary = model.config.num_classes == 2
    if binary and args.digit is None:
        raise UserError(f"model {args.model!r} is binary: pass the --digit it was trained on")
    if not binary and args.digit is not None:
        raise UserError(
            f"model {args.model!r} has {model.config.num_classes} classes: leave out --digit"
        )
    X_train, _, X_test, y_test = _load(args)
    _, test = _orders(args.seed, len(X_train), len(X_test))
    test = test[: args.test_limit]
    X_test, y_test = X_test[test], y_test[test]
    if args.digit is not None:
        y_test = y_test == args.digit
    accuracy = _accuracy(model, X_test, y_test, args.quiet)
    print(model)
    _print_task(args)
    print(f"test accuracy: {accuracy:.2f}% ({len(y_test)} examples)")


def _predict(args) -> None:
    import numpy as np

    model = _load_model(args.model, args.backend)
    if not os.path.isfile(args.input):
        raise UserError(f"--input {args.input!r} does not exist")
    try:
        X = np.load(args.input, allow_pickle=False)
    except (OSError, ValueError) as err:
        raise UserError(f"--input {args.input!r} is not a .npy array ({err})") from None
    if X.ndim == 1:
        X = X[None]
    if X.ndim != 2 or X.shape[1] != model.input_size:
        raise UserError(
            f"--input {args.input!r} holds an array of shape {X.shape}; model {args.model!r} "
            f"expects [B, {model.input_size}] (examples {model.input_size} wide)"
        )
    if args.output is not None:
        _check_save_path(args.output)
    try:
        outputs = [
            np.asarray(model.predict(X[start : start + TEST_BATCH], return_probs=args.probs))
            for start in range(0, len(X), TEST_BATCH)
        ]
    except (ValueError, TypeError) as err:
        raise UserError(f"--input {args.input!r}: {err}") from None
    result = np.concatenate(outputs) if outputs else np.zeros((0,))
    if not args.probs:
        result = result.astype(np.int64)
    if args.output is None:
        for row in result:
            print(" ".join(f"{p:.6f}" for p in np.atleast_1d(row)) if args.probs else int(row))
        return
    try:
        np.save(args.output, result)
    except OSError as err:
        raise UserError(f"--output {args.output!r}: {err}") from None
    print(f"wrote {len(result)} predictions to {args.output}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    """Runs the command line; returns the exit code (0, or 2 for a user error).

    ``argv``'s first word picks the command: ``evaluate``, ``predict`` or ``train``; anything
    else (an option) is ``train``'s.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    command = argv.pop(0) if argv and argv[0] in COMMANDS else "train"
    try:
        if command == "evaluate":
            args = build_evaluate_parser().parse_args(argv)
            _check_data_options(args)
            _check_positive(args, ("test_limit",))
            _check_backend(args.backend)
            _evaluate(args)
        elif command == "predict":
            args = build_predict_parser().parse_args(argv)
            _check_backend(args.backend)
            _predict(args)
        else:
            args = build_parser().parse_args(argv)
            _check_arguments(args)
            _run(args)
    except UserError as err:
        print(f"{PROG}: {err}", file=sys.stderr)
        return 2
    return 0
