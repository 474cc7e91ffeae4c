"""``GLNClassifier`` as a scikit-learn estimator: a ``Pipeline`` scored by ``cross_val_score``.

:class:`gln_jax.sklearn.GLNClassifier` standardises its features online and learns in one
shuffled online pass (``max_iter=1``), so it takes features of any scale and fits in any
scikit-learn tool. Here PCA feeds it, and logistic regression (many passes, solved to
convergence) is the yardstick; data: scikit-learn's 8x8 digits::

    python examples/basics/sklearn_pipeline.py
    python examples/basics/sklearn_pipeline.py --folds 10 --components 64
"""

import argparse

from sklearn.datasets import load_digits
from sklearn.decomposition import PCA
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from gln_jax.sklearn import GLNClassifier


def main(argv=None) -> float:
    """Cross-validates a PCA + GLN pipeline and a logistic regression; prints both.

    Args:
        argv: command-line arguments (``None``: ``sys.argv[1:]``).

    Returns:
        The GLN pipeline's mean cross-validated accuracy, a fraction.
    """
    parser = argparse.ArgumentParser(description="GLNClassifier in a scikit-learn Pipeline.")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--components", type=int, default=32, help="PCA components")
    parser.add_argument("--limit", type=int, help="use the first N examples")
    args = parser.parse_args(argv)

    X, y = load_digits(return_X_y=True)  # [1797, 64] pixels 0..16, labels 0..9
    X, y = X[: args.limit], y[: args.limit]
    folds = StratifiedKFold(args.folds, shuffle=True, random_state=0)
    pipelines = {
        "PCA + GLNClassifier": make_pipeline(
            PCA(args.components, random_state=0), GLNClassifier(random_state=0)
        ),
        "LogisticRegression": make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)),
    }
    scores = {name: cross_val_score(pipe, X, y, cv=folds) for name, pipe in pipelines.items()}
    for name, score in scores.items():
        mean, std = 100 * score.mean(), 100 * score.std()
        print(f"{name}: {args.folds}-fold accuracy {mean:.2f}% (std {std:.2f})")
    return float(scores["PCA + GLNClassifier"].mean())


if __name__ == "__main__":
    main()
