"""Save a model trained in one backend and load it in every other one.

``model.save(path)`` writes one portable ``.npz`` file (no pickles). ``gln_jax.GLN.load(path,
backend=...)`` restores it into any backend of the facade, and each port's own class
(``gln_numpy.GLN``, ``gln_torch.GLN``, ``gln_tf.GLN``) loads the same file. All of them then
predict the same classes, with probabilities equal up to float32 rounding. Data:
scikit-learn's 8x8 digits, pixels scaled into [0, 1]. Needs PyTorch and TensorFlow
(``pip install 'gln-jax[torch,tf]'``)::

    python examples/basics/save_load_backends.py
    python examples/basics/save_load_backends.py --backend numpy
"""

import argparse
import os
import tempfile

import gln_numpy
import gln_tf
import gln_torch
import numpy as np
from sklearn.datasets import load_digits

import gln_jax


def main(argv=None) -> float:
    """Trains, saves, reloads in every backend and prints how the predictions compare.

    Args:
        argv: command-line arguments (``None``: ``sys.argv[1:]``).

    Returns:
        The largest difference of a probability from the trained model's, over all loads.
    """
    parser = argparse.ArgumentParser(description="One checkpoint, every backend.")
    parser.add_argument("--backend", default="jax", choices=gln_jax.backend_names())
    parser.add_argument("--train-limit", type=int, default=1400, help="at most 1400")
    args = parser.parse_args(argv)

    X, y = load_digits(return_X_y=True)
    X = (X / 16).astype(np.float32)  # [1797, 64] in [0, 1]
    limit = min(args.train_limit, 1400)  # the last 397 examples are the test set
    X_train, y_train, X_test = X[:limit], y[:limit], X[1400:]
    model = gln_jax.GLN(args.backend, [16, 8, 1], 64, num_classes=10, learning_rate=1e-2, seed=0)
    model.fit(X_train, y_train)
    classes, probs = model.predict(X_test), model.predict(X_test, return_probs=True)

    with tempfile.TemporaryDirectory() as directory:
        path = os.path.join(directory, "digits.npz")
        model.save(path)
        size = os.path.getsize(path)
        print(f"trained in {args.backend} on {model.step} examples; checkpoint {size} bytes")
        loaded = {
            f"GLN.load(backend={name!r})": gln_jax.GLN.load(path, backend=name)
            for name in ("jax", "numpy", "pytorch", "tf")
        }
        for port in (gln_numpy, gln_torch, gln_tf):
            loaded[f"{port.__name__}.GLN.load"] = port.GLN.load(path)

    worst = 0.0
    for name, restored in loaded.items():
        same = np.array_equal(np.asarray(restored.predict(X_test)), classes)
        restored_probs = np.asarray(restored.predict(X_test, return_probs=True))
        difference = float(np.abs(restored_probs - probs).max())
        worst = max(worst, difference)
        print(f"{name}: step {restored.step}, same classes {same}, max |dp| {difference:.1e}")
    return worst


if __name__ == "__main__":
    main()
