"""Ten-class MNIST with ``GLN(..., num_classes=10).fit(X, y)``: one online pass, then a test.

A multi-class GLN is one binary GLN per class (one-vs-all); ``fit`` runs the whole pass in a
compiled ``lax.scan`` (batch size 1 is exact online learning) and returns the class predicted
for each example before it was learnt, so its mean error is an online (progressive) error.
``--recipe`` uses :func:`gln_jax.recipes.mnist`, a larger measured configuration with centred
side information::

    python examples/basics/mnist_multiclass.py
    python examples/basics/mnist_multiclass.py --recipe

MNIST is read from ``$GLN_JAX_DATA_DIR`` or the user cache (downloaded there on first use).
"""

import argparse
import time

import numpy as np

from gln_jax import GLN, backend_names, recipes, utils


def main(argv=None) -> float:
    """Trains one pass over the training set and prints the test accuracy.

    Args:
        argv: command-line arguments (``None``: ``sys.argv[1:]``).

    Returns:
        The test accuracy, a fraction.
    """
    parser = argparse.ArgumentParser(description="Ten-class MNIST, one online pass.")
    parser.add_argument("--recipe", action="store_true", help="use gln_jax.recipes.mnist()")
    parser.add_argument("--backend", default="jax", choices=backend_names())
    parser.add_argument("--train-limit", type=int, help="use the first N training examples")
    parser.add_argument("--test-limit", type=int, help="use the first N test examples")
    parser.add_argument("--no-deskew", action="store_true", help="raw pixels, not deskewed")
    args = parser.parse_args(argv)

    X_train, y_train, X_test, y_test = utils.get_mnist(not args.no_deskew, progress=False)
    X_train, y_train = X_train[: args.train_limit], y_train[: args.train_limit]
    X_test, y_test = X_test[: args.test_limit], y_test[: args.test_limit]

    if args.recipe:
        model = GLN(args.backend, **recipes.mnist(), seed=0)
    else:
        model = GLN(args.backend, [4, 4, 1], 784, num_classes=10, seed=0)
    start = time.perf_counter()
    before = model.fit(X_train, y_train)  # [T] classes, each predicted before its update
    seconds = time.perf_counter() - start

    accuracy = float(np.mean(model.predict(X_test) == y_test))
    print(
        f"one pass over {len(y_train)} examples: {seconds:.1f} s with compilation ({args.backend})"
    )
    print(f"online accuracy during the pass: {100 * np.mean(before == y_train):.2f}%")
    print(f"10 classes: test accuracy {100 * accuracy:.2f}% on {len(y_test)} examples")
    return accuracy


if __name__ == "__main__":
    main()
