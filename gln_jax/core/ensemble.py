"""Deprecated: moved to :mod:`gln_jax.ensemble`;
this module re-exports it for one release and warns when imported."""

from gln_jax._deprecated import warn_moved
from gln_jax.core._ensemble import *  # noqa: F403

warn_moved("gln_jax.core.ensemble", "gln_jax.ensemble")
