"""The MNIST recipe: its arguments, a cheap check on a slice, and its three-seed accuracy (slow).

The thresholds are measured (README, "Accuracy"), a little below the figures, never above.
"""

import os

import numpy as np
import pytest

from gln_jax import GLN, recipes, utils
from gln_jax.core._transforms import TransformConfig
from gln_jax.tools.accuracy import recipe_fit

needs_mnist = pytest.mark.skipif(
    not os.environ.get("GLN_JAX_DATA_DIR"), reason="GLN_JAX_DATA_DIR (local MNIST) is not set"
)

#: One seed, trained on the first 10,000 training examples, tested on the first 2,000 test
#: examples: measured 95.35% (seed 0; 92.95% before the base predictions came from the transform).
SLICE_THRESHOLD = 94.5
#: Mean of seeds 0, 1, 2 after one pass over all 60,000 (README): measured 97.31% (96.72% before
#: the base predictions came from the transform).
RECIPE_THRESHOLD = 97.2


@pytest.fixture(scope="module")
def mnist():
    return utils.get_mnist(progress=False)


@pytest.mark.heavy
def test_recipe_arguments_build_a_model_in_every_facade():
    recipe = recipes.mnist()
    assert isinstance(recipe["side_info_transform"], TransformConfig)
    model = GLN("numpy", **recipe, seed=3)
    assert model.config.side_info_size == 784 and model.config.num_classes == 10
    assert model.side_info_transform.kind == "center"
    assert model.side_info_transform.base_gain == recipes.MNIST_BASE_GAIN == 60.0
    assert recipes.mnist(input_size=10, num_classes=3)["input_size"] == 10


@pytest.mark.heavy
@needs_mnist
def test_recipe_on_a_slice(mnist):
    X_train, y_train, X_test, y_test = mnist
    model = GLN("jax", **recipes.mnist(), seed=0)
    model.fit(X_train[:10000], y_train[:10000])
    accuracy = 100.0 * np.mean(model.predict(X_test[:2000]) == y_test[:2000])
    assert accuracy >= SLICE_THRESHOLD


@pytest.mark.slow
@needs_mnist
def test_recipe_three_seeds(mnist):
    accuracies = [recipe_fit(mnist, seed=seed)[0] for seed in (0, 1, 2)]
    assert np.mean(accuracies) >= RECIPE_THRESHOLD
