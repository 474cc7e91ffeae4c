"""Named, measured configurations: constructor arguments for :class:`gln_jax.GLN`.

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

from gln_jax.core.transforms import make_transform

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
    ``[pred_clipping, 1 - pred_clipping]`` (:mod:`gln_jax.core.transforms`, ``base_gain``).
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
