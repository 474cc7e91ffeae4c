"""Deprecated: moved to :func:`gln_jax.saliency` and :class:`gln_jax.Saliency`;
this module re-exports it for one release and warns when imported."""

from gln_jax._deprecated import warn_moved
from gln_jax.core._saliency import *  # noqa: F403

warn_moved("gln_jax.core.saliency", "gln_jax (gln_jax.saliency, gln_jax.Saliency)")
