"""The named defaults of the classic interface, importable without JAX.

The command line's parser reads them to show its defaults before any framework is imported;
:mod:`gln_jax.core.types` re-exports every name.
"""

from __future__ import annotations

#: The dtypes a GLN may hold its weights and probabilities in.
DTYPES = ("float32", "float64")

# Named defaults: the one place where the classic interface's defaults are written.
DEFAULT_CONTEXT_MAP_SIZE = 4
DEFAULT_NUM_CLASSES = 2
DEFAULT_LEARNING_RATE = 1e-4
DEFAULT_PRED_CLIPPING = 1e-3
DEFAULT_WEIGHT_CLIPPING = 5.0
DEFAULT_DTYPE = "float32"
#: Standard deviation of the gating hyperplanes' random offsets (``context_bias=True``).
DEFAULT_HYPERPLANE_BIAS_SCALE = 1.0
# Two default architectures, for two kinds of data:
#: The command line's default layers: the classic README's MNIST model (two hidden layers of
#: four neurons), a pass of MNIST in seconds.
MNIST_LAYER_SIZES = (4, 4, 1)
#: The scikit-learn estimators' default layers: tabular problems of tens of features and a few
#: hundred examples need wider layers than MNIST's pixels to learn in one pass.
ESTIMATOR_LAYER_SIZES = (32, 16, 1)
