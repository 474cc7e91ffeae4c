"""The Gaussian-family facade: :class:`GaussianGLN`, a regressor with the classic interface.

It shares :class:`~gln_jax.api.facade.GLNBase`'s rates, ``save``/``load`` and the engine plumbing
of :class:`~gln_jax.api.facade.EngineGLN`; only the target checks and the outputs differ (real
targets in, means and standard deviations out).

Input encoding (the paper's): every feature of an example is the mean of a Gaussian input of
constant variance ``input_sigma_sq``, and the example itself is the side information of the
gates. Both assume standardised data: scale features and targets to zero mean and unit
variance (on the training data) before fitting, as the default variance range
``[min_sigma_sq, max_sigma_sq] = [0.1, 10]`` is meant for standardised targets.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence

import jax
import numpy as np

from gln_jax.api import validation
from gln_jax.api.backends import get_backend, make_engine
from gln_jax.api.facade import EngineGLN, reference_precision
from gln_jax.core import gaussian_network
from gln_jax.core.gaussian_types import (
    DEFAULT_BIAS_LEN,
    DEFAULT_BIAS_MAX_MU,
    DEFAULT_BIAS_SIGMA_SQ,
    DEFAULT_GAUSSIAN_LEARNING_RATE,
    DEFAULT_GAUSSIAN_WEIGHT_CLIPPING,
    DEFAULT_INPUT_SIGMA_SQ,
    DEFAULT_MAX_SIGMA_SQ,
    DEFAULT_MIN_SIGMA_SQ,
    make_gaussian_config,
)
from gln_jax.core.types import DEFAULT_CONTEXT_MAP_SIZE, DEFAULT_DTYPE


def check_regression_targets(value, *, batch: int, num_outputs: int, dtype, name="target"):
    """Checks real targets: ``[batch]`` (one output) or ``[batch, num_outputs]``, all finite.

    Returns:
        ``[batch, num_outputs]`` in ``dtype``.

    Raises:
        TypeError: non-numeric targets.
        ValueError: a wrong shape, NaN or inf.
    """
    array = validation.as_numpy(value, name)
    if array.dtype == object or not np.issubdtype(array.dtype, np.number):
        raise TypeError(f"{name} must hold real numbers, got dtype {array.dtype}")
    if np.issubdtype(array.dtype, np.complexfloating):
        raise TypeError(f"{name} must hold real numbers, got dtype {array.dtype}")
    if array.ndim == 0 and batch == 1:
        array = array[None]
    if array.ndim == 1 and num_outputs == 1:
        array = array[:, None]
    if array.shape != (batch, num_outputs):
        expected = f"[{batch}]" if num_outputs == 1 else f"[{batch}, {num_outputs}]"
        raise ValueError(f"{name} must have shape {expected}, got shape {array.shape}")
    array = np.asarray(array, dtype)
    if not np.isfinite(array).all():
        raise ValueError(f"{name} contains NaN or inf")
    return array


class GaussianGLN(EngineGLN):
    """Gaussian Gated Linear Network (Budden et al., 2020) for (multi-output) regression.

    Args:
        backend: ``"jax"`` or ``"numpy"`` (the backends with a Gaussian engine).
        layer_sizes: neurons per layer; a one-neuron output layer is appended when the list does
            not end in 1.
        input_size: width ``N`` of an example (standardised features).
        context_map_size: hyperplanes per neuron (``2**context_map_size`` weight rows).
        num_outputs: targets per example; each output is its own GLN (vmapped).
        learning_rate: positive float, or a schedule ``step -> rate``, stepped per example.
        input_sigma_sq: the variance given to every input feature.
        bias_len, bias_max_mu, bias_sigma_sq: the bias Gaussians of every layer.
        min_sigma_sq, max_sigma_sq: range of every neuron's predicted variance.
        weight_clipping: weights are clipped into ``[-w, w]`` after every update.
        context_bias: random non-zero offsets for the gating hyperplanes.
        base_predictor: optional host-side callable ``[B, N] -> [B, P]`` giving the input means
            instead of the example itself.
        seed: integer seed of the gating hyperplanes.
        dtype: ``"float32"`` (default) or ``"float64"`` (needs ``jax_enable_x64`` on ``"jax"``).

    Example:
        >>> model = GaussianGLN("jax", [16, 16], 10)  # doctest: +SKIP
        >>> model.fit(x_train, y_train)  # doctest: +SKIP
        >>> mean, std = model.predict(x_test, return_std=True)  # doctest: +SKIP
    """

    _family = "gaussian"

    def __init__(
        self,
        backend: str,
        layer_sizes: Sequence[int],
        input_size: int,
        context_map_size: int = DEFAULT_CONTEXT_MAP_SIZE,
        num_outputs: int = 1,
        learning_rate: float | Callable = DEFAULT_GAUSSIAN_LEARNING_RATE,
        input_sigma_sq: float = DEFAULT_INPUT_SIGMA_SQ,
        bias_len: int = DEFAULT_BIAS_LEN,
        bias_max_mu: float = DEFAULT_BIAS_MAX_MU,
        bias_sigma_sq: float = DEFAULT_BIAS_SIGMA_SQ,
        min_sigma_sq: float = DEFAULT_MIN_SIGMA_SQ,
        max_sigma_sq: float = DEFAULT_MAX_SIGMA_SQ,
        weight_clipping: float = DEFAULT_GAUSSIAN_WEIGHT_CLIPPING,
        context_bias: bool = True,
        base_predictor: Callable | None = None,
        *,
        seed: int = 0,
        dtype: str = DEFAULT_DTYPE,
    ):
        validation.check_learning_rate(learning_rate)
        validation.check_seed(seed)
        config = make_gaussian_config(
            layer_sizes,
            input_size,
            context_map_size=context_map_size,
            num_outputs=num_outputs,
            base_prediction_size=validation.check_base_predictor(base_predictor, input_size),
            input_sigma_sq=input_sigma_sq,
            bias_len=bias_len,
            bias_max_mu=bias_max_mu,
            bias_sigma_sq=bias_sigma_sq,
            min_sigma_sq=min_sigma_sq,
            max_sigma_sq=max_sigma_sq,
            context_bias=context_bias,
            weight_clipping=weight_clipping,
            dtype=dtype,
        )
        engine = make_engine(backend, config)
        scoped = reference_precision(config.dtype) if backend != "jax" else contextlib.nullcontext()
        with scoped:
            state = gaussian_network.init(jax.random.key(int(seed)), config)
        self._bind(engine, config, engine.from_reference(state), base_predictor, learning_rate)

    def _adopt(self, config, state, base_predictor, learning_rate, backend="jax") -> None:
        engine = make_engine(backend, config)
        self._bind(engine, config, engine.from_reference(state), base_predictor, learning_rate)

    @classmethod
    def load(cls, path, backend: str = "jax", *, base_predictor=None, learning_rate=None):
        """Restores a Gaussian model saved by any backend into ``backend``.

        Raises:
            ValueError: the file holds a Bernoulli-family model (or is not a checkpoint).
        """
        parts, _ = cls._restore(path, base_predictor, learning_rate, get_backend(backend).name)
        return cls._from_reference(*parts, backend=backend)

    # ----------------------------------------------------------------- family hooks
    def _prepare(self, input, target, side_info=None, learn=False):
        """Checks one call's arguments; returns ``(inputs, side_info, targets, None)``."""
        if side_info is not None:
            raise ValueError(
                "GaussianGLN gates on its (standardised) input: side_info= is not supported"
            )
        config = self.config
        side_info, _ = validation.check_examples(
            input, width=config.side_info_size, dtype=config.dtype, max_abs=self._side_info_limit()
        )
        inputs = validation.base_predictions(self.base_predictor, side_info, config)
        targets = None
        if target is not None:
            targets = check_regression_targets(
                target, batch=side_info.shape[0], num_outputs=config.num_outputs, dtype=config.dtype
            )
        return inputs, side_info, targets, None

    def _classes(self, outputs):
        """The point predictions (means) of ``[B, C, 2]`` outputs: ``[B]`` or ``[B, C]``."""
        mean = outputs[..., 0]
        return mean[:, 0] if self.config.num_outputs == 1 else mean

    def _output(self, outputs, return_std: bool):
        mean = self._classes(outputs)
        if not return_std:
            return mean
        std = np.sqrt(outputs[..., 1])
        return mean, (std[:, 0] if self.config.num_outputs == 1 else std)

    def predict(self, input, target=None, return_std: bool = False):
        """Predicts a batch and, given targets, learns from it online.

        Args:
            input: ``[B, N]`` standardised examples (or one ``[N]`` example).
            target: optional real targets, ``[B]`` (one output) or ``[B, C]``.
            return_std: also return the predictive standard deviations.

        Returns:
            Means ``[B]`` (one output) or ``[B, C]``, made before any update; with
            ``return_std`` the pair ``(means, stds)``.

        Raises:
            ValueError, TypeError: bad inputs or targets (NaN, wrong shape); nothing changes.
        """
        return super().predict(input, target, return_std)

    def fit(self, X, y, batch_size: int = 1, num_epochs: int = 1):
        """Trains on whole arrays in order (batch size 1: exact online learning).

        Args:
            X: ``[T, N]`` examples; y: ``[T]`` or ``[T, C]`` targets.
            batch_size, num_epochs: positive ints.

        Returns:
            The means predicted before each update, ``[num_epochs * T]`` (or ``[..., C]``).
        """
        return super().fit(X, y, batch_size, num_epochs)

    def __repr__(self) -> str:
        c = self.config
        return (
            f"{type(self).__name__}(backend={self.backend!r}, layer_sizes={list(c.layer_sizes)}, "
            f"input_size={self.input_size}, context_map_size={c.context_map_size}, "
            f"num_outputs={c.num_outputs}, dtype={c.dtype!r}, step={self.step})"
        )
