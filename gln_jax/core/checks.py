"""Argument checks of the functional API against the config, run while tracing.

Shapes and dtypes are static under ``jit``, so these checks run once, when a function is
traced, and cost nothing per call afterwards. Each error names the argument, what the config
expects and what came. Values (labels, rates) are not checked here: they are traced; the host
drivers (:func:`gln_jax.fit_stream`, the facades) check them.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from gln_jax.core.types import GLNConfig, GLNState, LayerState


def _shape(value: Any) -> tuple[int, ...]:
    shape = getattr(value, "shape", None)  # arrays, tracers, jax.ShapeDtypeStruct
    return tuple(shape) if shape is not None else tuple(np.shape(value))


def _dtype(value: Any):
    dtype = getattr(value, "dtype", None)
    return np.dtype(dtype) if dtype is not None else np.asarray(value).dtype


def check_config(config: Any, *, function: str, families: tuple[type, ...] = (GLNConfig,)) -> None:
    """Raises ``TypeError`` unless ``config`` is one of ``families`` (a :class:`GLNConfig`)."""
    if not isinstance(config, families):
        raise TypeError(
            f"{function}: config must be a GLNConfig (gln_jax.make_config), got "
            f"{type(config).__name__}"
        )


def check_state(state: Any, config: GLNConfig, *, function: str, name: str = "state") -> None:
    """Checks a :class:`GLNState` against ``config``: layers, every leaf's shape and dtype.

    Raises:
        TypeError: not a ``GLNState``, or a leaf whose dtype is not ``config.dtype`` (the
            step: not an integer scalar).
        ValueError: a different number of layers, or a leaf whose shape differs from the
            config's (the class axis is named: a 10-class state under a binary config).
    """
    check_config(config, function=function)
    if not isinstance(state, GLNState):
        raise TypeError(
            f"{function}: {name} must be a GLNState (gln_jax.init), got {type(state).__name__}"
        )
    layers = state.layers
    if not isinstance(layers, tuple) or len(layers) != len(config.layer_sizes):
        count = len(layers) if isinstance(layers, (tuple, list)) else type(layers).__name__
        raise ValueError(
            f"{function}: {name} has {count} layers, the config "
            f"{len(config.layer_sizes)} (layer_sizes={config.layer_sizes})"
        )
    models, rows = config.num_models, config.num_contexts
    planes, width = config.context_map_size, config.side_info_size
    dtype = np.dtype(config.dtype)
    for index, (layer, neurons, inputs) in enumerate(
        zip(layers, config.layer_sizes, config.layer_input_sizes(), strict=True)
    ):
        if not isinstance(layer, LayerState):
            raise TypeError(
                f"{function}: {name}.layers[{index}] must be a LayerState, got "
                f"{type(layer).__name__}"
            )
        for field, expected in (
            ("weights", (models, neurons, rows, inputs)),
            ("hyperplanes", (models, neurons, planes, width)),
            ("hyperplane_bias", (models, neurons, planes)),
        ):
            leaf = getattr(layer, field)
            shape = _shape(leaf)
            where = f"{name}.layers[{index}].{field}"
            if len(shape) == len(expected) and shape[:1] != expected[:1]:
                raise ValueError(
                    f"{function}: {where} holds {shape[0]} one-vs-all models (its leading "
                    f"axis), the config {models} (num_classes={config.num_classes}): pass the "
                    "config the state was built with"
                )
            if shape != expected:
                raise ValueError(
                    f"{function}: {where} must have shape {expected} for this config, got "
                    f"{shape}: pass the config the state was built with"
                )
            if _dtype(leaf) != dtype:
                raise TypeError(
                    f"{function}: {where} has dtype {_dtype(leaf).name}, the config's dtype is "
                    f"{dtype.name}: a state keeps the config's dtype (cast it back, or build a "
                    "config with that dtype)"
                )
    step = state.step
    if _shape(step) != () or not np.issubdtype(_dtype(step), np.integer):
        raise TypeError(
            f"{function}: {name}.step must be an integer scalar, got shape {_shape(step)} "
            f"dtype {_dtype(step).name}"
        )


def check_array(
    value: Any,
    expected: tuple[int | None, ...],
    letters: str,
    *,
    function: str,
    name: str,
    hint: str = "",
) -> None:
    """Checks the shape of an array argument; ``None`` in ``expected`` is any length.

    Args:
        value: the argument.
        expected: its shape, ``None`` where any length goes (a batch, a stream).
        letters: the shape in letters, such as ``"[B, N]"``, for the message.
        function: the public function's name.
        name: the argument's name.
        hint: a sentence added to the message.

    Raises:
        TypeError: not numeric (strings, objects, complex numbers).
        ValueError: another rank or another length where one is fixed.
    """
    shape = _shape(value)
    dtype = _dtype(value)
    if not (np.issubdtype(dtype, np.number) or dtype == np.bool_) or np.issubdtype(
        dtype, np.complexfloating
    ):
        raise TypeError(f"{function}: {name} must hold real numbers, got dtype {dtype}")
    if len(shape) != len(expected) or any(
        e is not None and s != e for s, e in zip(shape, expected, strict=False)
    ):
        fixed = ", ".join("*" if e is None else str(e) for e in expected)
        fixed += "," if len(expected) == 1 else ""
        raise ValueError(
            f"{function}: {name} must have shape {letters} = ({fixed}), got shape {shape}"
            f"{'; ' + hint if hint else ''}"
        )


def check_lengths(function: str, **lengths: int) -> None:
    """Raises ``ValueError`` unless every named leading length is the same."""
    values = set(lengths.values())
    if len(values) > 1:
        listed = ", ".join(f"{name} {length}" for name, length in lengths.items())
        raise ValueError(f"{function}: the leading axes disagree: {listed}")


def check_rates(value: Any, length: int | None, *, function: str, name: str, letters: str) -> None:
    """Checks learning rates: a scalar, or an array of shape ``[length]`` (``None``: scalar only).

    Raises:
        TypeError: not real numbers.
        ValueError: another shape.
    """
    shape = _shape(value)
    dtype = _dtype(value)
    if not np.issubdtype(dtype, np.number) or np.issubdtype(dtype, np.complexfloating):
        raise TypeError(
            f"{function}: {name} must be real numbers or a schedule (a callable of the step), "
            f"got dtype {dtype}"
        )
    if shape == () or (length is not None and shape == (length,)):
        return
    wanted = "a scalar" if length is None else f"a scalar or shape {letters} = ({length},)"
    raise ValueError(f"{function}: {name} must be {wanted}, got shape {shape}")
