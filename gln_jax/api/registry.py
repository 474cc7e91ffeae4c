"""Deprecated: the backend registry is :mod:`gln_jax.api.backends` (``gln_jax.backend_names``
for the names); this module re-exports it for one release and warns when imported."""

import warnings

from gln_jax.api.backends import *  # noqa: F403

warnings.warn(
    "gln_jax.api.registry is deprecated: import gln_jax.api.backends (or use "
    "gln_jax.backend_names)",
    DeprecationWarning,
    stacklevel=2,
)
