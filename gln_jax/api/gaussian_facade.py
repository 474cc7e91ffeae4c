"""The Gaussian-family facade: :class:`GaussianGLN`, a regressor with the classic interface.

It shares :class:`~gln_jax.api.base.GLNBase`'s rates, locking, ``save`` and the checks of
``load``; its own are the targets (real numbers) and the outputs (means and standard
deviations).

Input encoding (the paper's): every feature of an example is the mean of a Gaussian input of
constant variance ``input_sigma_sq``, and the example itself is the side information of the
gates. Both assume standardised data: scale features and targets to zero mean and unit
variance (on the training data) before fitting, as the default variance range
``[min_sigma_sq, max_sigma_sq] = [0.1, 10]`` is meant for standardised targets.

What is checked (the model is unchanged by a call that raises): the hyperparameters' ranges
(:func:`~gln_jax.core.gaussian_types.make_gaussian_config`; a constant learning rate at most
``MAX_GAUSSIAN_LEARNING_RATE``); targets above
:func:`~gln_jax.core.gaussian_types.target_limit` (about 32.6 with the defaults: raw,
unstandardised targets, which diverge) and inputs above the dtype's
:func:`~gln_jax.core.gaussian_types.magnitude_limit` raise ``ValueError``; a call whose outputs
(or, for ``fit``, new weights) are NaN or inf raises ``FloatingPointError`` and keeps the
state from before the call. Targets are not standardised here (a standardisation would have to
be saved in checkpoints): :class:`gln_jax.sklearn.GLNRegressor` standardises them online.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from gln_jax.api import schedules, validation
from gln_jax.api.backends import get_backend, make_engine
from gln_jax.api.base import GLNBase
from gln_jax.api.build import draw_gaussian_state
from gln_jax.api.runner import EngineRunner
from gln_jax.api.side_info import SideInfoPipeline
from gln_jax.core.gaussian_types import (
    DEFAULT_BIAS_LEN,
    DEFAULT_BIAS_MAX_MU,
    DEFAULT_BIAS_SIGMA_SQ,
    DEFAULT_GAUSSIAN_LEARNING_RATE,
    DEFAULT_GAUSSIAN_WEIGHT_CLIPPING,
    DEFAULT_INPUT_SIGMA_SQ,
    DEFAULT_MAX_SIGMA_SQ,
    DEFAULT_MIN_SIGMA_SQ,
    check_gaussian_learning_rate,
    magnitude_limit,
    make_gaussian_config,
    target_limit,
)
from gln_jax.core.types import DEFAULT_CONTEXT_MAP_SIZE, DEFAULT_DTYPE


def check_regression_targets(
    value, *, batch: int, num_outputs: int, dtype, name="target", max_abs: float | None = None
):
    """Checks real targets: ``[batch]`` (one output) or ``[batch, num_outputs]``, all finite
    and (with ``max_abs``) of magnitude at most ``max_abs``.

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
    largest = float(np.abs(array).max()) if array.size else 0.0
    if max_abs is not None and largest > max_abs:
        raise ValueError(
            f"{name} has an entry of magnitude {largest:.4g}, above {max_abs:.4g}: the model "
            "is meant for standardised targets (zero mean, unit variance) and diverges on raw "
            "ones; standardise y (e.g. sklearn.preprocessing.StandardScaler on the training "
            "targets, mapping predictions back), use gln_jax.sklearn.GLNRegressor (which "
            "standardises online), or widen max_sigma_sq"
        )
    return array


class GaussianGLN(GLNBase):
    """Gaussian Gated Linear Network (Budden et al., 2020) for (multi-output) regression.

    Args:
        backend: ``"jax"``, ``"numpy"``, ``"pytorch"`` or ``"tf"``.
        layer_sizes: neurons per layer; a one-neuron output layer is appended when the list does
            not end in 1.
        input_size: width of an example (standardised features); the gating looks at the
            example itself, so it is also the side information's width ``N``.
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

    family = "gaussian"

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
        schedules.check_learning_rate(learning_rate)
        check_gaussian_learning_rate(learning_rate)
        validation.check_seed(seed)
        name = get_backend(backend).name
        input_size = validation.check_input_size(input_size)
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
        engine = make_engine(name, config)
        state = draw_gaussian_state(config, seed, scoped_x64=name != "jax")
        runner = EngineRunner(engine, engine.from_reference(state))
        self._assemble(runner, self._pipeline_of(config, input_size, base_predictor), learning_rate)

    @staticmethod
    def _pipeline_of(config, input_size: int, base_predictor) -> SideInfoPipeline:
        """The Gaussian family's input pipeline: the gating sees the (standardised) examples."""
        return SideInfoPipeline(
            config,
            input_size,
            base_predictor,
            warn_range=False,
            side_info_allowed=False,
            max_abs=magnitude_limit(config.dtype),  # the precision-weighted sums stay finite
        )

    @classmethod
    def load(cls, path, backend: str = "jax", *, base_predictor=None, learning_rate=None):
        """Restores a Gaussian model saved by any backend into ``backend``.

        Args:
            path: a file written by :meth:`save` of any backend.
            backend: the backend to load into.
            base_predictor: required when the saved model had one (it is not stored).
            learning_rate: overrides the stored rate; required when the saved model used a
                schedule.

        Returns:
            The model, with predictions identical to the saved one's.

        Raises:
            ValueError: the file holds a Bernoulli-family model (or is not a checkpoint).
        """
        name = get_backend(backend).name
        config, state, predictor, rate, side, step = cls._restore(
            path, base_predictor, learning_rate, name
        )
        engine = make_engine(name, config)
        model = cls.__new__(cls)
        pipeline = cls._pipeline_of(config, side.input_size, predictor)
        model._assemble(EngineRunner(engine, engine.from_reference(state)), pipeline, rate, step)
        return model

    # ----------------------------------------------------------------- family hooks
    def _check_targets(self, target, batch: int) -> np.ndarray:
        config = self.config
        return check_regression_targets(
            target,
            batch=batch,
            num_outputs=config.num_outputs,
            dtype=config.dtype,
            max_abs=target_limit(config),
        )

    def _checked(self, call, learns: bool, check_state: bool):
        """Runs ``call()`` (which returns means, or ``(means, stds)``); a non-finite answer or,
        with ``check_state``, new weights restore the state from before it and raise."""
        if learns:
            check_gaussian_learning_rate(self.learning_rate)
        with self._lock:
            before = self._runner.state  # functional states: the old one is never written
            result = call()
            arrays = result if isinstance(result, tuple) else (result,)
            finite = all(np.isfinite(np.asarray(a)).all() for a in arrays)
            if finite and learns and check_state:
                layers = self._runner.reference_state().layers
                finite = all(np.isfinite(layer.weights).all() for layer in layers)
            if not finite:
                # fit's passes never write into the state they start from, so it comes back;
                # predict's outputs come from the state before its update, already non-finite
                restored = learns and check_state
                if restored:
                    self._runner.state = before
                raise FloatingPointError(
                    "the Gaussian GLN produced NaN or inf"
                    + (" (the model is unchanged)" if restored else "")
                    + ": standardise inputs and targets, lower learning_rate, or keep the "
                    "variances (input_sigma_sq, min_sigma_sq, bias_sigma_sq) nearer 1"
                )
            return result

    def _predictions(self, outputs):
        """The point predictions (means) of ``[B, C, 2]`` outputs: ``[B]`` or ``[B, C]``."""
        mean = outputs[..., 0]
        return mean[:, 0] if self.config.num_outputs == 1 else mean

    def _output(self, outputs, return_std: bool):
        mean = self._predictions(outputs)
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
            ValueError, TypeError: bad inputs or targets (NaN, wrong shape, raw targets beyond
                ``target_limit``); nothing changes.
            FloatingPointError: the outputs are NaN or inf; nothing changes.
        """
        return self._checked(
            lambda: self._predict(input, target, return_std, None), target is not None, False
        )

    def fit(self, X, y, batch_size: int = 1, num_epochs: int = 1):
        """Trains on whole arrays in order (batch size 1: exact online learning).

        Args:
            X: ``[T, N]`` examples (arrays, including ``np.memmap``); y: ``[T]`` or ``[T, C]``
                targets.
            batch_size, num_epochs: positive ints.

        Returns:
            The means predicted before each update, ``[num_epochs * T]`` (or ``[..., C]``).

        Raises:
            ValueError, TypeError: bad arguments (see :meth:`predict`); nothing changes.
            FloatingPointError: the means or the new weights are NaN or inf; nothing changes.
        """
        return self._checked(lambda: self._fit(X, y, batch_size, num_epochs, None), True, True)
