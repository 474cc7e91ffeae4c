"""Named, measured configurations: constructor arguments for :class:`gln_jax.GLN` and
:class:`gln_jax.GaussianGLN`.

A recipe is plain data (a dict of keyword arguments), so it works with every backend and
every facade (``gln_numpy.GLN(**recipe)`` too, without ``backend``). How each recipe was chosen
(a search on a validation split, never on the test set) and what it measures is on the
documentation's Benchmarks page; the search itself is ``benchmarks/recipe_search.py`` of the
source repository and its raw results ``benchmarks/recipe-search.jsonl``.

Example:
    >>> from gln_jax import GLN, recipes
    >>> model = GLN("jax", **recipes.mnist(), seed=0)  # doctest: +SKIP
    >>> model.fit(X_train, y_train)  # one online pass, batch 1  # doctest: +SKIP
"""

from __future__ import annotations

from gln_jax.core._transforms import make_transform

#: Scale of the centred side information: a larger scale makes the hyperplanes' random offsets
#: (``N(0, 1)``) small next to the projections, so the hyperplanes cut through the data's mean.
MNIST_SIDE_INFO_SCALE = 30.0
#: Gain of the base predictions ``sigmoid(gain * (x - running mean))``: a pixel at its mean
#: predicts 1/2 (logit 0, nothing added to a neuron's mixture); one well above or below it
#: predicts near 1 or 0 (clipped at ``pred_clipping``).
MNIST_BASE_GAIN = 60.0


def mnist(*, input_size: int = 784, num_classes: int = 10) -> dict:
    """The one-pass MNIST recipe: online-centred pixels for the gates and the base predictions.

    The gates see the pixels minus their running per-pixel mean over the examples learned so
    far (itself included), times :data:`MNIST_SIDE_INFO_SCALE`; the base predictions are the
    same deviations sharpened, ``sigmoid(MNIST_BASE_GAIN * (x - running mean))``, clipped into
    ``[pred_clipping, 1 - pred_clipping]`` (:mod:`gln_jax.core._transforms`, ``base_gain``).
    ``[32, 32, 1]`` neurons with 64 contexts each, rate 1e-3; everything else is a default.
    Train with batch size 1, one pass (``model.fit(X, y)``).

    Args:
        input_size: width of an example (784 for MNIST-family images).
        num_classes: number of classes.

    Returns:
        Keyword arguments for :class:`gln_jax.GLN` (add ``backend`` and ``seed``).
    """
    return {
        "layer_sizes": [32, 32, 1],
        "input_size": input_size,
        "context_map_size": 6,
        "num_classes": num_classes,
        "learning_rate": 1e-3,
        "side_info_transform": make_transform(
            "center", scale=MNIST_SIDE_INFO_SCALE, base_gain=MNIST_BASE_GAIN
        ),
    }


#: Passes over the training data of :func:`uci_regression` (the paper's budget: 40 epochs).
UCI_REGRESSION_EPOCHS = 40
#: Members of the :func:`uci_regression` ensemble: models of different seeds whose Gaussians
#: are combined by their precision-weighted mixture, moment-matched (see :func:`uci_regression`).
#: Each fold's ensemble of the calibration has as many.
UCI_REGRESSION_MEMBERS = 10
#: Standardised features of the :func:`uci_regression` ensemble are clipped into this many
#: training standard deviations either side of the mean.
UCI_REGRESSION_INPUT_CLIP = 3.0
#: Folds of the out-of-fold predictions that calibrate the :func:`uci_regression` ensemble's
#: variance.
UCI_REGRESSION_FOLDS = 5


def uci_regression(input_size: int) -> dict:
    """The multi-epoch recipe of the Gaussian family for small tabular regression sets.

    Chosen by cross-validation inside the training splits of the UCI protocol (Boston and
    Concrete, an inner 80/20 split of each of the first 5 training splits; the lowest mean
    validation RMSE; ``benchmarks/uci_regression.py --search``, stages 1 and 2):
    ``[64, 64, 1]`` neurons with 64 contexts each (``context_map_size=6``), rate 3e-3, and
    weights clipped into ``[-1, 1]``, which keeps test predictions from blowing up over many
    passes (with the family's default bound of 1e3, 11 of 20 Boston test splits reach an RMSE
    above 10). Everything else is a default. Standardise features and targets on the training
    data, then train :data:`UCI_REGRESSION_EPOCHS` shuffled passes at batch size 1::

        model.fit(x, y, num_epochs=recipes.UCI_REGRESSION_EPOCHS, shuffle_seed=0)

    A single model now and then extrapolates wildly on a test example; an ensemble does not.
    The cross-validation's stage 4 chose an ensemble of models of different seeds, trained on
    features clipped into ``+-UCI_REGRESSION_INPUT_CLIP`` standard deviations, and their
    precision-weighted mean (that of the geometric mixture, what a Gaussian GLN neuron
    computes with every weight ``1 / M``), by validation RMSE. Stage 5, by validation
    log-likelihood, chose the spread around it: the mixture of the members' Gaussians weighted
    by their precisions, moment-matched, whose variance has two parts, the members' own (the
    geometric mixture's) and their disagreement, each with a weight fitted on out-of-fold
    predictions of the training data: cut into :data:`UCI_REGRESSION_FOLDS` folds, each fold
    predicted by an ensemble of as many members trained on the other folds, the weights
    ``(a, b)`` those that maximise the Gaussian log-likelihood of the out-of-fold predictions
    (no closed form: two parameters, by L-BFGS-B). Stage 6, by validation log-likelihood too,
    chose :data:`UCI_REGRESSION_MEMBERS` members over five, with as many in each fold's
    ensemble (weights fitted on five members' disagreement score worse on ten members). With
    ``models`` the members trained on all of the training data::

        c = recipes.UCI_REGRESSION_INPUT_CLIP
        x, x_test = np.clip(x, -c, c), np.clip(x_test, -c, c)  # before training the M models
        means, stds = map(np.array, zip(*(m.predict(x_test, return_std=True) for m in models)))
        precisions = 1 / np.square(stds)                   # means, stds: [M, B]
        weights = precisions / precisions.sum(axis=0)
        mean = (weights * means).sum(axis=0)
        noise = 1 / precisions.mean(axis=0)
        disagreement = (weights * np.square(means - mean)).sum(axis=0)
        std = np.sqrt(a * noise + b * disagreement)

    (the :doc:`Gaussian guide </guides/gaussian>` has the code that fits ``a`` and ``b``).

    Args:
        input_size: width of an example.

    Returns:
        Keyword arguments for :class:`gln_jax.GaussianGLN` (add ``backend`` and ``seed``).

    Example:
        >>> from gln_jax import GaussianGLN, recipes
        >>> model = GaussianGLN("jax", **recipes.uci_regression(13), seed=0)  # doctest: +SKIP
    """
    return {
        "layer_sizes": [64, 64, 1],
        "input_size": input_size,
        "context_map_size": 6,
        "learning_rate": 3e-3,
        "weight_clipping": 1.0,
    }
