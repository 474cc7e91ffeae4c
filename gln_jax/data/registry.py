"""Deprecated: the dataset registry is :mod:`gln_jax.datasets`; this module re-exports it for
one release and warns when imported."""

import warnings

from gln_jax.data.datasets import *  # noqa: F403
from gln_jax.data.datasets import __all__ as __all__  # noqa: F401

warnings.warn(
    "gln_jax.data.registry is deprecated: import gln_jax.datasets",
    DeprecationWarning,
    stacklevel=2,
)
