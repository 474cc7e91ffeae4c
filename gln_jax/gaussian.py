"""The functional API of the Gaussian family: ``init``, ``apply``, ``update`` and their drivers.

A Gaussian GLN predicts a real target as a Gaussian (a mean and a variance per output). Its
state is a :class:`gln_jax.GLNState` (the same fields as the Bernoulli family) with a leading
axis over the ``C`` outputs; its config is a :class:`gln_jax.GaussianConfig` from
:func:`gln_jax.make_gaussian_config`. Inputs are ``P`` input means (by default the
standardised example itself), each a Gaussian of variance ``input_sigma_sq``; every prediction
is ``[..., C, 2]``, the mean and the variance of each output. The functions are pure, so
``jax.jit`` (with the config static), ``jax.vmap`` and ``lax.scan`` apply as for the Bernoulli
family; :class:`gln_jax.GaussianGLN` is the stateful facade over them.

Example:
    >>> import jax, numpy as np
    >>> from gln_jax import gaussian, make_gaussian_config
    >>> config = make_gaussian_config([8, 1], 3)
    >>> state = gaussian.init(jax.random.key(0), config)
    >>> x = np.array([0.5, -1.0, 2.0], np.float32)
    >>> state, prediction = gaussian.update(state, x, x, 1.5, 0.01, config=config)
    >>> prediction.shape  # the mean and variance of the one output, before the update
    (1, 2)

See :doc:`/guides/gaussian`.
"""

from gln_jax.api.gaussian_facade import epoch_order as epoch_order
from gln_jax.api.gaussian_facade import std_scale_of as std_scale_of
from gln_jax.core.gaussian_network import apply as apply
from gln_jax.core.gaussian_network import batch_apply as batch_apply
from gln_jax.core.gaussian_network import batch_update as batch_update
from gln_jax.core.gaussian_network import fit_stream as fit_stream
from gln_jax.core.gaussian_network import init as init
from gln_jax.core.gaussian_network import scan_batch_update as scan_batch_update
from gln_jax.core.gaussian_network import scan_update as scan_update
from gln_jax.core.gaussian_network import update as update

__all__ = [
    "apply",
    "batch_apply",
    "batch_update",
    "epoch_order",
    "fit_stream",
    "init",
    "scan_batch_update",
    "scan_update",
    "std_scale_of",
    "update",
]
