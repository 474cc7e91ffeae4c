"""Deprecated: the dataset registry is :mod:`gln_jax.datasets`; this module re-exports it for
one release and warns when imported."""

from gln_jax._deprecated import warn_moved
from gln_jax.data.datasets import *  # noqa: F403
from gln_jax.data.datasets import __all__ as __all__  # noqa: F401

warn_moved("gln_jax.data.registry", "gln_jax.datasets")
