"""Ensembles and learning-rate sweeps: ``E`` members trained on one stream in one computation.

A member is one whole model (every class); the members' states are stacked on a leading
member axis ``E``. :func:`init_ensemble` draws members from ``E`` keys, :func:`init_sweep`
copies one draw ``E`` times for a learning-rate sweep (its members share their gates), and
:func:`fit_ensemble` trains all members with ``[T]`` or ``[E, T]`` rates; each member equals a
separate :func:`gln_jax.fit_stream` of it. :func:`shard_ensemble` puts the member axis on a
device mesh.

Example:
    >>> import jax, gln_jax
    >>> from gln_jax import ensemble
    >>> config = gln_jax.make_config([4, 4, 1], 784, num_classes=10)
    >>> states = ensemble.init_ensemble(jax.random.split(jax.random.key(0), 4), config)
    >>> ensemble.num_members(states)
    4

See :doc:`/guides/scale`.
"""

from gln_jax.core._ensemble import MEMBER_AXIS as MEMBER_AXIS
from gln_jax.core._ensemble import MemberSharding as MemberSharding
from gln_jax.core._ensemble import fit_ensemble as fit_ensemble
from gln_jax.core._ensemble import init_ensemble as init_ensemble
from gln_jax.core._ensemble import init_sweep as init_sweep
from gln_jax.core._ensemble import mean_logit_probabilities as mean_logit_probabilities
from gln_jax.core._ensemble import num_members as num_members
from gln_jax.core._ensemble import predict_ensemble as predict_ensemble
from gln_jax.core._ensemble import predict_members as predict_members
from gln_jax.core._ensemble import shard_ensemble as shard_ensemble
from gln_jax.core._ensemble import shares_gates as shares_gates
from gln_jax.core._ensemble import unshard_ensemble as unshard_ensemble

__all__ = [
    "MEMBER_AXIS",
    "MemberSharding",
    "fit_ensemble",
    "init_ensemble",
    "init_sweep",
    "mean_logit_probabilities",
    "num_members",
    "predict_ensemble",
    "predict_members",
    "shard_ensemble",
    "shares_gates",
    "unshard_ensemble",
]
