"""Online side-information transforms: a running per-feature mean (and scale), by Welford.

The gates of a GLN compare the side information with fixed random hyperplanes, so where the
side information sits matters; these transforms centre (or standardise) it online, from the
stream itself. Example ``t`` is transformed with the statistics of examples ``0..t`` (itself
included, nothing later). The facade takes the same transform as
``GLN(..., side_info_transform=make_transform(...))``; the functions below are the pure form
(``init`` / ``update`` / ``apply``, a ``lax.scan`` of them, a chunked host driver) for the
functional API.

Example:
    >>> from gln_jax import transforms
    >>> config = transforms.make_transform("center", scale=30.0, base_gain=60.0)
    >>> state = transforms.init(784)
    >>> state, zs = transforms.scan(state, X_train[:100], config=config)  # doctest: +SKIP

See :doc:`/guides/side_info`.
"""

from gln_jax.core._transforms import DEFAULT_STD_EPS as DEFAULT_STD_EPS
from gln_jax.core._transforms import KINDS as KINDS
from gln_jax.core._transforms import TransformConfig as TransformConfig
from gln_jax.core._transforms import TransformState as TransformState
from gln_jax.core._transforms import apply as apply
from gln_jax.core._transforms import apply_batch as apply_batch
from gln_jax.core._transforms import base_predictions as base_predictions
from gln_jax.core._transforms import feature_limit as feature_limit
from gln_jax.core._transforms import init as init
from gln_jax.core._transforms import make_transform as make_transform
from gln_jax.core._transforms import scan as scan
from gln_jax.core._transforms import transform_stream as transform_stream
from gln_jax.core._transforms import update as update
from gln_jax.core._transforms import update_apply as update_apply

__all__ = [
    "DEFAULT_STD_EPS",
    "KINDS",
    "TransformConfig",
    "TransformState",
    "apply",
    "apply_batch",
    "base_predictions",
    "feature_limit",
    "init",
    "make_transform",
    "scan",
    "transform_stream",
    "update",
    "update_apply",
]
