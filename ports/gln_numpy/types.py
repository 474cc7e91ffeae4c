"""Config and state of the NumPy port: the reference's NamedTuples with NumPy leaves.

The port holds no randomness: a state comes from :func:`gln_jax.init` (or a checkpoint) and is
converted with :func:`from_reference`. Field names are the reference's, so one checkpoint format
serves every port.
"""

from __future__ import annotations

import numpy as np

from gln_jax.core.types import DTYPES as DTYPES
from gln_jax.core.types import Array as Array
from gln_jax.core.types import GLNConfig as GLNConfig
from gln_jax.core.types import GLNState as GLNState
from gln_jax.core.types import LayerState as LayerState
from gln_jax.core.types import make_config as make_config


def from_reference(state: GLNState, dtype=None) -> GLNState:
    """Copies a reference state (NumPy or JAX leaves) into a NumPy state.

    Args:
        state: a :class:`GLNState` whose leaves ``np.asarray`` can read.
        dtype: the float dtype of the weights and gating arrays; ``None`` keeps theirs.

    Returns:
        A :class:`GLNState` of fresh NumPy arrays (``step`` an int32 scalar) that shares no
        memory with ``state``.

    Example:
        >>> state = from_reference(gln_jax.init(jax.random.key(0), config))  # doctest: +SKIP
    """
    layers = tuple(
        LayerState(*(np.array(leaf, dtype=dtype, copy=True) for leaf in layer))
        for layer in state.layers
    )
    return GLNState(layers=layers, step=np.array(state.step, dtype=np.int32, copy=True))


def to_reference(state: GLNState) -> GLNState:
    """Copies a NumPy state into the reference layout (a :class:`GLNState` of NumPy arrays).

    Args:
        state: a NumPy state.

    Returns:
        Fresh copies of every array; ``step`` an int32 scalar.
    """
    return from_reference(state)
