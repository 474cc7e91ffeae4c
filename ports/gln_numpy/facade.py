"""``GLN``: the facade's classic interface on the NumPy port (NumPy in, NumPy out)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence

import jax
import numpy as np

from gln_jax.facade import GLN as _ReferenceGLN


def reference_precision(dtype):
    """A context in which the reference can draw a state of ``dtype``.

    ``float64`` states need 64-bit JAX: it is turned on for the ``with`` block only (JAX's
    scoped ``jax.enable_x64``), so a port user never touches JAX's global config. Any other
    value (``float32``, or something invalid that ``make_config`` then rejects) changes nothing.
    """
    try:
        wide = np.dtype(dtype) == np.float64
    except TypeError:
        wide = False
    return jax.enable_x64(True) if wide else contextlib.nullcontext()


class GLN(_ReferenceGLN):
    """Gated Linear Network trained by the NumPy port.

    The interface is :class:`gln_jax.GLN`'s without ``backend``: ``predict``, ``fit``, ``save``
    and ``load`` take and return NumPy arrays, and ``state`` is a :class:`~gln_jax.GLNState` of
    NumPy arrays. The initial state is the reference's ``gln_jax.init(jax.random.key(seed),
    config)``, so one seed gives the same model in every backend (``float64`` is drawn with
    64-bit JAX enabled for that call only).

    Args:
        layer_sizes: neurons per layer; a final one-neuron layer is appended when needed.
        input_size: width ``N`` of an example.
        context_map_size: halfspaces per neuron.
        num_classes: 2 for binary, ``> 2`` for one-vs-all.
        base_predictor: optional callable ``[B, N] -> [B, K]`` giving the base predictions.
        learning_rate: positive float or a schedule ``step -> rate`` (stepped per example).
        pred_clipping: probabilities are clipped into ``[p, 1 - p]``.
        weight_clipping: weights are clipped into ``[-w, w]``.
        bias: add a constant bias input (logit 1.0) to every layer.
        context_bias: random non-zero gating thresholds.
        seed: integer seed of the gating hyperplanes.
        dtype: ``"float32"`` or ``"float64"``.

    Example:
        >>> model = GLN([4, 4, 1], 784, num_classes=10)  # doctest: +SKIP
        >>> model.fit(x_train, y_train)  # doctest: +SKIP
    """

    def __init__(
        self,
        layer_sizes: Sequence[int],
        input_size: int,
        context_map_size: int = 4,
        num_classes: int = 2,
        base_predictor: Callable | None = None,
        learning_rate: float | Callable = 1e-4,
        pred_clipping: float = 1e-3,
        weight_clipping: float = 5.0,
        bias: bool = True,
        context_bias: bool = True,
        *,
        seed: int = 0,
        dtype: str = "float32",
    ):
        with reference_precision(dtype):
            super().__init__(
                "numpy",
                layer_sizes,
                input_size,
                context_map_size=context_map_size,
                num_classes=num_classes,
                base_predictor=base_predictor,
                learning_rate=learning_rate,
                pred_clipping=pred_clipping,
                weight_clipping=weight_clipping,
                bias=bias,
                context_bias=context_bias,
                seed=seed,
                dtype=dtype,
            )

    @classmethod
    def load(
        cls,
        path,
        *,
        base_predictor: Callable | None = None,
        learning_rate: float | Callable | None = None,
    ) -> GLN:
        """Restores a model saved by any backend (see :meth:`gln_jax.GLN.load`).

        Args:
            path: a file written by ``save`` of any backend.
            base_predictor: required when the saved model had one.
            learning_rate: overrides the stored rate; required after a schedule.

        Returns:
            The NumPy-port model, with predictions identical to the saved one's.
        """
        return super().load(
            path, "numpy", base_predictor=base_predictor, learning_rate=learning_rate
        )
