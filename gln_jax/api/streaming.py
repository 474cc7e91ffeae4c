"""Deprecated: moved to :mod:`gln_jax.streaming`;
this module re-exports it for one release and warns when imported."""

from gln_jax._deprecated import warn_moved
from gln_jax.api._streaming import *  # noqa: F403

warn_moved("gln_jax.api.streaming", "gln_jax.streaming")
