"""A GLN on your own NumPy arrays: scikit-learn's breast-cancer table, 30 real features.

A GLN's inputs are probabilities: each feature is a base prediction in ``[0, 1]``. Features of
any other scale are mapped into it first (here min-max scaling with the training part's
range, clipped, so that test values outside it stay valid). The gates look at side
information, by default the inputs themselves; any real features can serve instead, so here
they get the standardised features (``side_info=``), which put the random hyperplanes through
the data's middle::

    python examples/basics/your_own_data.py
    python examples/basics/your_own_data.py --epochs 1 --learning-rate 1e-3
"""

import argparse

import numpy as np
from sklearn.datasets import load_breast_cancer
from sklearn.model_selection import train_test_split

from gln_jax import GLN


def main(argv=None) -> float:
    """Trains on 75% of the table and prints the accuracy on the other 25%.

    Args:
        argv: command-line arguments (``None``: ``sys.argv[1:]``).

    Returns:
        The test accuracy, a fraction.
    """
    parser = argparse.ArgumentParser(description="A GLN on a NumPy table.")
    parser.add_argument("--epochs", type=int, default=3, help="passes over the training part")
    parser.add_argument("--learning-rate", type=float, default=1e-2)
    args = parser.parse_args(argv)

    X, y = load_breast_cancer(return_X_y=True)  # [569, 30] float64, labels 0/1
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=0.25, random_state=0, stratify=y
    )
    low, high = X_train.min(axis=0), X_train.max(axis=0)
    mean, std = X_train.mean(axis=0), X_train.std(axis=0)

    def probabilities(a):  # the inputs: [B, 30] in [0, 1]
        return np.clip((a - low) / (high - low), 0, 1).astype(np.float32)

    def side_info(a):  # what the gates look at: [B, 30], any real values
        return ((a - mean) / std).astype(np.float32)

    model = GLN("jax", [16, 8, 1], 30, learning_rate=args.learning_rate, seed=0)
    model.fit(probabilities(X_train), y_train, num_epochs=args.epochs, side_info=side_info(X_train))

    p = model.predict(probabilities(X_test), return_probs=True, side_info=side_info(X_test))
    accuracy = float(np.mean((p > 0.5) == y_test))
    print(f"trained on {len(y_train)} examples x {args.epochs} epochs ({model.step} updates)")
    print(f"P(benign) of the first test examples: {np.round(p[:5], 3)}, labels {y_test[:5]}")
    print(f"breast cancer: test accuracy {100 * accuracy:.2f}% on {len(y_test)} examples")
    print(f"majority-class baseline: {100 * max(y_test.mean(), 1 - y_test.mean()):.2f}%")
    return accuracy


if __name__ == "__main__":
    main()
