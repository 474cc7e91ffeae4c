"""One digit against the rest on MNIST, learnt online with the PyGLN-compatible ``GLN``.

``model.predict(x, target=y)`` predicts a batch and then learns from it, as in the original
PyGLN flow; ``model.predict(x)`` without a target only predicts. The same code runs in every
backend (``--backend numpy``, ``pytorch``, ``tf``)::

    python examples/basics/mnist_binary.py
    python examples/basics/mnist_binary.py --digit 3 --backend numpy --train-limit 5000

MNIST is read from ``$GLN_JAX_DATA_DIR`` or the user cache (downloaded there on first use).
"""

import argparse

import numpy as np

from gln_jax import GLN, backend_names, utils


def main(argv=None) -> float:
    """Trains one pass over the training set and prints the test accuracy.

    Args:
        argv: command-line arguments (``None``: ``sys.argv[1:]``).

    Returns:
        The test accuracy, a fraction.
    """
    parser = argparse.ArgumentParser(description="One MNIST digit against the rest.")
    parser.add_argument("--digit", type=int, default=0, help="the positive class")
    parser.add_argument("--backend", default="jax", choices=backend_names())
    parser.add_argument("--batch-size", type=int, default=1, help="examples per update")
    parser.add_argument("--train-limit", type=int, help="use the first N training examples")
    parser.add_argument("--test-limit", type=int, help="use the first N test examples")
    parser.add_argument("--no-deskew", action="store_true", help="raw pixels, not deskewed")
    args = parser.parse_args(argv)

    X_train, y_train, X_test, y_test = utils.get_mnist(not args.no_deskew, progress=False)
    X_train, y_train = X_train[: args.train_limit], y_train[: args.train_limit] == args.digit
    X_test, y_test = X_test[: args.test_limit], y_test[: args.test_limit] == args.digit

    # Pixels in [0, 1] are the base predictions and, by default, the gates' side information.
    model = GLN(args.backend, layer_sizes=[4, 4, 1], input_size=784, seed=0)
    for start in range(0, len(X_train), args.batch_size):
        batch = slice(start, start + args.batch_size)
        model.predict(X_train[batch], target=y_train[batch])  # predict, then learn

    accuracy = float(np.mean(model.predict(X_test) == y_test))
    majority = max(y_test.mean(), 1 - y_test.mean())  # always answering the larger class
    print(f"trained on {model.step} examples ({args.backend}, batch size {args.batch_size})")
    print(f"digit {args.digit} vs rest: test accuracy {100 * accuracy:.2f}%")
    print(f"majority-class baseline: {100 * majority:.2f}%")
    return accuracy


if __name__ == "__main__":
    main()
