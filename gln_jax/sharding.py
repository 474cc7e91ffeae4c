"""The one-vs-all class axis on a device mesh.

The classes of a one-vs-all model are independent models, so they can live on different
devices. :func:`class_sharding` pads the class axis to a multiple of the mesh size,
:func:`init_sharded` draws the state straight onto the mesh, :func:`shard_state` and
:func:`unshard_state` move a state on and off it, and :func:`fit_sharded` /
:func:`predict_sharded` run the stream drivers on each device's classes with the stream
replicated. Padded classes always have target 0 and are sliced off every output. The facade
does the same with ``GLN("jax", ..., devices=8)`` or ``mesh=``.

Example:
    >>> import jax, gln_jax
    >>> from gln_jax import sharding
    >>> config = gln_jax.make_config([4, 4, 1], 64, num_classes=12)
    >>> mesh = sharding.make_mesh(jax.devices()[:1])
    >>> state, layout = sharding.init_sharded(jax.random.key(0), config, mesh)  # doctest: +SKIP

See :doc:`/guides/scale`.
"""

from gln_jax.core._sharding import CLASS_AXIS as CLASS_AXIS
from gln_jax.core._sharding import PREDICT_BLOCK as PREDICT_BLOCK
from gln_jax.core._sharding import TEMPORARY_BYTES as TEMPORARY_BYTES
from gln_jax.core._sharding import ClassSharding as ClassSharding
from gln_jax.core._sharding import class_sharding as class_sharding
from gln_jax.core._sharding import fit_sharded as fit_sharded
from gln_jax.core._sharding import init_sharded as init_sharded
from gln_jax.core._sharding import make_mesh as make_mesh
from gln_jax.core._sharding import predict_sharded as predict_sharded
from gln_jax.core._sharding import rows_per_call as rows_per_call
from gln_jax.core._sharding import shard_state as shard_state
from gln_jax.core._sharding import state_shardings as state_shardings
from gln_jax.core._sharding import to_host as to_host
from gln_jax.core._sharding import unshard_state as unshard_state

__all__ = [
    "CLASS_AXIS",
    "PREDICT_BLOCK",
    "TEMPORARY_BYTES",
    "ClassSharding",
    "class_sharding",
    "fit_sharded",
    "init_sharded",
    "make_mesh",
    "predict_sharded",
    "rows_per_call",
    "shard_state",
    "state_shardings",
    "to_host",
    "unshard_state",
]
