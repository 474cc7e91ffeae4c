"""Deprecated: moved to :mod:`gln_jax.sharding`;
this module re-exports it for one release and warns when imported."""

from gln_jax._deprecated import warn_moved
from gln_jax.core._sharding import *  # noqa: F403

warn_moved("gln_jax.core.sharding", "gln_jax.sharding")
