"""``GLN``: the facade's classic interface on the NumPy port (NumPy in, NumPy out)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from gln_jax.api.facade import EngineGLN, build_model
from gln_jax.core.types import (
    DEFAULT_CONTEXT_MAP_SIZE,
    DEFAULT_DTYPE,
    DEFAULT_LEARNING_RATE,
    DEFAULT_NUM_CLASSES,
    DEFAULT_PRED_CLIPPING,
    DEFAULT_WEIGHT_CLIPPING,
)
from gln_numpy.engine import NumpyEngine


class GLN(EngineGLN):
    """Gated Linear Network trained by the NumPy port.

    The interface is :class:`gln_jax.GLN`'s without ``backend``: ``predict``, ``fit``, ``save``
    and ``load`` take and return NumPy arrays, and ``state`` is a :class:`~gln_jax.GLNState` of
    NumPy arrays. The initial state is the reference's ``gln_jax.init(jax.random.key(seed),
    config)``, so one seed gives the same model in every backend (``float64`` is drawn with
    64-bit JAX enabled for that call only).

    Args:
        layer_sizes: neurons per layer; a final one-neuron layer is appended when needed.
        input_size: width ``N`` of an example (entries expected in [0, 1]).
        context_map_size: halfspaces per neuron.
        num_classes: 2 for binary, ``> 2`` for one-vs-all.
        base_predictor: optional host-side NumPy callable ``[B, N] -> [B, P]``.
        learning_rate: positive float or a schedule ``step -> rate`` (stepped per example).
        pred_clipping: probabilities are clipped into ``[p, 1 - p]``.
        weight_clipping: weights are clipped into ``[-w, w]``.
        bias: add a constant bias input (logit 1.0) to every layer.
        context_bias: random non-zero gating thresholds.
        seed: integer seed of the gating hyperplanes.
        dtype: ``"float32"`` or ``"float64"``.
        side_info_size: width of the gates' side information (``None``: ``input_size``).
        side_info_transform: ``None``, ``"center"``, ``"standardize"`` or a ``TransformConfig``
            (see :class:`gln_jax.GLN`).

    Example:
        >>> model = GLN([4, 4, 1], 784, num_classes=10)  # doctest: +SKIP
        >>> model.fit(x_train, y_train)  # doctest: +SKIP
    """

    backend = "numpy"

    def __init__(
        self,
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
        side_info_size: int | None = None,
        side_info_transform=None,
    ):
        config, state = build_model(
            layer_sizes,
            input_size,
            context_map_size,
            num_classes,
            base_predictor,
            learning_rate,
            pred_clipping,
            weight_clipping,
            bias,
            context_bias,
            seed=seed,
            dtype=dtype,
            scoped_x64=True,
            backend="numpy",
            side_info_size=side_info_size,
        )
        engine = NumpyEngine(config)
        self._bind(engine, config, engine.from_reference(state), base_predictor, learning_rate)
        self._bind_side_info(input_size, side_info_transform)

    @classmethod
    def _from_reference(cls, config, state, base_predictor, learning_rate) -> GLN:
        engine = NumpyEngine(config)
        model = cls.__new__(cls)
        model._bind(engine, config, engine.from_reference(state), base_predictor, learning_rate)
        return model
