"""Building a model: the constructors' argument checks and the initial reference state.

Every facade builds its model here, so one seed gives the same model in every backend: the
state is always the reference's ``init(jax.random.key(seed), config)``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence

import jax
import numpy as np

from gln_jax.api import memory, schedules, validation
from gln_jax.api.backends import get_backend
from gln_jax.core import gaussian_network
from gln_jax.core.gaussian_types import GaussianConfig
from gln_jax.core.network import init
from gln_jax.core.types import (
    DEFAULT_CONTEXT_MAP_SIZE,
    DEFAULT_DTYPE,
    DEFAULT_HYPERPLANE_BIAS_SCALE,
    DEFAULT_LEARNING_RATE,
    DEFAULT_NUM_CLASSES,
    DEFAULT_PRED_CLIPPING,
    DEFAULT_WEIGHT_CLIPPING,
    GLNConfig,
    GLNState,
    make_config,
)


def reference_precision(dtype):
    """A context in which the reference can draw a state of ``dtype`` for a port.

    ``float64`` states need 64-bit JAX: it is turned on for the ``with`` block only (JAX's
    scoped ``jax.enable_x64``), so a port user never touches JAX's global config. Any other
    value (``float32``, or something invalid that ``make_config`` then rejects) changes nothing.
    """
    try:
        wide = np.dtype(dtype) == np.float64
    except TypeError:
        wide = False
    return jax.enable_x64(True) if wide else contextlib.nullcontext()


def build_model(
    layer_sizes: Sequence[int],
    input_size: int,
    context_map_size: int = DEFAULT_CONTEXT_MAP_SIZE,
    num_classes: int = DEFAULT_NUM_CLASSES,
    base_predictor: Callable | None = None,
    learning_rate: float | Callable = DEFAULT_LEARNING_RATE,
    pred_clipping: float = DEFAULT_PRED_CLIPPING,
    weight_clipping: float = DEFAULT_WEIGHT_CLIPPING,
    bias: bool = True,
    context_bias: bool = True,
    *,
    seed: int = 0,
    dtype: str = DEFAULT_DTYPE,
    scoped_x64: bool = False,
    backend: str | None = None,
    side_info_size: int | None = None,
    hyperplane_normalize: bool | None = None,
    hyperplane_bias_scale: float = DEFAULT_HYPERPLANE_BIAS_SCALE,
    draw: bool = True,
) -> tuple[GLNConfig, GLNState | None]:
    """Checks the constructor's arguments and draws the initial reference state.

    Every facade calls this, so one seed gives the same model in every backend.

    Args:
        layer_sizes, input_size, context_map_size, num_classes, base_predictor, learning_rate,
            pred_clipping, weight_clipping, bias, context_bias, seed, dtype: as
            :class:`gln_jax.GLN`.
        scoped_x64: draw a ``float64`` state with 64-bit JAX enabled for this call only (the
            ports); the JAX backend instead requires the user to have enabled it.
        backend: the backend the model is built for: the memory its construction takes
            (:func:`~gln_jax.api.memory.check_construction_memory`) must be available.
        side_info_size: width ``N`` of the side information the gating sees; ``None`` means
            ``input_size`` (the example itself). The config's ``base_prediction_size`` is the
            base predictor's width or else ``input_size``.
        hyperplane_normalize, hyperplane_bias_scale: how the gating hyperplanes are drawn, as
            :func:`~gln_jax.make_config`.
        draw: draw the reference state (``False``: the caller draws it itself, for example
            straight onto a device mesh, and ``state`` is ``None``).

    Returns:
        ``(config, state)`` with the state's leaves JAX arrays (``None`` when not ``draw``).

    Raises:
        ValueError, TypeError: naming the bad argument.
    """
    schedules.check_learning_rate(learning_rate)
    validation.check_seed(seed)
    if backend is not None:
        get_backend(backend)  # an unknown backend is named before anything is built
    side_width = validation.check_side_info_size(side_info_size, input_size)
    base_width = validation.check_base_predictor(base_predictor, input_size)
    config = make_config(
        layer_sizes,
        side_width,
        context_map_size=context_map_size,
        num_classes=num_classes,
        base_prediction_size=input_size if base_width is None else base_width,
        bias=bias,
        context_bias=context_bias,
        pred_clipping=pred_clipping,
        weight_clipping=weight_clipping,
        dtype=dtype,
        hyperplane_normalize=hyperplane_normalize,
        hyperplane_bias_scale=hyperplane_bias_scale,
    )
    schedules.check_learning_rate(learning_rate, config)
    if backend is not None:
        memory.check_construction_memory(config, backend)
    if not draw:
        return config, None
    with reference_precision(config.dtype) if scoped_x64 else contextlib.nullcontext():
        state = init(jax.random.key(int(seed)), config)
    return config, state


def draw_gaussian_state(config: GaussianConfig, seed: int, *, scoped_x64: bool) -> GLNState:
    """The initial state of a Gaussian model (``scoped_x64``: as in :func:`build_model`)."""
    scoped = reference_precision(config.dtype) if scoped_x64 else contextlib.nullcontext()
    with scoped:
        return gaussian_network.init(jax.random.key(int(seed)), config)
