"""Deprecated: the backend registry is internal; :func:`gln_jax.backend_names` lists the
backends. This module re-exports the registry for one release and warns when imported."""

from gln_jax._deprecated import warn_moved
from gln_jax.api.backends import *  # noqa: F403

warn_moved("gln_jax.api.registry", "gln_jax (gln_jax.backend_names)")
