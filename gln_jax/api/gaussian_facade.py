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

Training on arrays is one online pass in the order given by default; ``fit(num_epochs=E,
shuffle_seed=s)`` makes ``E`` passes, each in its own permutation drawn from ``s``
(``epoch_order``). As in the Bernoulli facade, the gating may see side information of
its own (``side_info_size``, ``side_info=``) and an online transform of it
(``side_info_transform="standardize"``, whose running statistics are saved in checkpoints);
the Gaussian inputs stay the examples (or a ``base_predictor``'s output).

Calibration: ``calibrate(X, y)`` fits one factor per output on the standard deviations that
``predict(..., return_std=True)`` returns, the one that maximises the Gaussian log-likelihood
of held-out data (:func:`~gln_jax.gaussian.std_scale_of`, closed form); ``std_scale`` reads or
sets it, and checkpoints keep it. The means and the learning are unchanged.
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


def std_scale_of(targets, means, stds) -> np.ndarray:
    """The factor on the standard deviations that maximises the Gaussian log-likelihood of
    ``targets``, per output: ``sqrt(mean(((targets - means) / stds) ** 2))`` over the batch.

    For a factor ``s`` the mean log-likelihood is ``-log(s) - mean(log(std)) - mean(z**2) /
    (2 s**2)`` up to a constant (``z`` the standardised residuals), whose only stationary point
    is this maximum. Pure NumPy, float64.

    Args:
        targets, means, stds: ``[B, C]`` arrays (``B >= 1``; ``stds`` positive).

    Returns:
        ``[C]`` float64 factors.

    Raises:
        ValueError: no examples, shapes that differ, non-finite values, ``stds`` not positive,
            or an output whose residuals are all zero (no finite factor maximises it).

    Example:
        >>> std_scale_of(np.array([[2.0], [-2.0]]), np.zeros((2, 1)), np.ones((2, 1)))
        array([2.])
    """
    targets, means, stds = (np.asarray(a, np.float64) for a in (targets, means, stds))
    if targets.ndim != 2 or not targets.shape == means.shape == stds.shape:
        raise ValueError(
            "targets, means and stds must share one shape [B, C], got "
            f"{targets.shape}, {means.shape} and {stds.shape}"
        )
    if targets.shape[0] == 0:
        raise ValueError("calibration needs at least one example")
    if not all(np.isfinite(a).all() for a in (targets, means, stds)) or (stds <= 0).any():
        raise ValueError("calibration needs finite targets and means and positive stds")
    with np.errstate(over="ignore"):  # an overflow is refused below, by name
        mean_square = np.mean(np.square((targets - means) / stds), axis=0)
    if not (mean_square > 0).all():  # also refuses an underflow to 0
        raise ValueError(
            "calibration needs a non-zero residual for every output: predictions equal to "
            "every target leave the factor unbounded"
        )
    if not np.isfinite(mean_square).all():
        raise ValueError(
            "calibration overflowed: residuals of about 1e154 standard deviations or more"
        )
    return np.sqrt(mean_square)


def check_std_scale(value, num_outputs: int) -> np.ndarray:
    """A factor on the standard deviations: a positive finite float (every output) or
    ``[num_outputs]`` of them; returns ``[num_outputs]`` float64 (a copy).

    Raises:
        TypeError: not real numbers.
        ValueError: a wrong shape, or an entry that is not finite and positive.
    """
    array = validation.as_numpy(value, "std_scale")
    if array.dtype == object or array.dtype == bool or not np.issubdtype(array.dtype, np.number):
        raise TypeError(f"std_scale must hold real numbers, got dtype {array.dtype}")
    if np.issubdtype(array.dtype, np.complexfloating):
        raise TypeError(f"std_scale must hold real numbers, got dtype {array.dtype}")
    if array.ndim == 0:
        array = np.full(num_outputs, array)
    if array.shape != (num_outputs,):
        raise ValueError(
            f"std_scale must be a float or have shape [{num_outputs}], got shape {array.shape}"
        )
    array = np.array(array, np.float64)
    if not (np.isfinite(array).all() and (array > 0).all()):
        raise ValueError(f"std_scale must be finite and positive, got {array.tolist()}")
    return array


def epoch_order(count: int, num_epochs: int, shuffle_seed: int) -> np.ndarray:
    """The order of ``num_epochs`` shuffled passes over ``count`` examples.

    Pass ``e`` is ``numpy.random.default_rng([shuffle_seed, e]).permutation(count)``: each pass
    has its own permutation, and the first ``E`` passes are the same for any larger ``E``.

    Args:
        count: examples in one pass, non-negative.
        num_epochs: passes, positive.
        shuffle_seed: non-negative int.

    Returns:
        ``[num_epochs * count]`` int64 indices into the examples.

    Example:
        >>> sorted(epoch_order(3, 2, 0)[:3].tolist())
        [0, 1, 2]
    """
    for name, value in (
        ("count", count),
        ("num_epochs", num_epochs),
        ("shuffle_seed", shuffle_seed),
    ):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise TypeError(f"{name} must be an int, got {value!r}")
    if count < 0 or num_epochs < 1 or shuffle_seed < 0:
        raise ValueError(
            "epoch_order needs count >= 0, num_epochs >= 1 and shuffle_seed >= 0, got "
            f"{count}, {num_epochs} and {shuffle_seed}"
        )
    passes = [
        np.random.default_rng([int(shuffle_seed), epoch]).permutation(int(count))
        for epoch in range(int(num_epochs))
    ]
    return np.concatenate(passes).astype(np.int64)


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
        side_info_size: width ``N`` of side information passed to ``predict`` and ``fit`` as
            ``side_info=``; ``None`` (default) means ``input_size``, and the gating then sees
            the example itself unless ``side_info=`` is given.
        side_info_transform: ``None`` (default), ``"center"``, ``"standardize"`` or a
            :class:`gln_jax.core._transforms.TransformConfig` without ``base_gain``: an online,
            per-feature running mean (and scale) applied to what the gating sees, learned
            from every training example before it is used and saved in checkpoints. It does
            not change the Gaussian inputs (standardise those on the training data).

    :attr:`std_scale` is the ``[C]`` factor on the predicted standard deviations (1 until
    :meth:`calibrate` fits it or it is assigned).

    Example:
        >>> model = GaussianGLN("jax", [16, 16], 10)  # doctest: +SKIP
        >>> model.fit(x_train, y_train)  # doctest: +SKIP
        >>> model.calibrate(x_held_out, y_held_out)  # doctest: +SKIP
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
        side_info_size: int | None = None,
        side_info_transform=None,
    ):
        schedules.check_learning_rate(learning_rate)
        check_gaussian_learning_rate(learning_rate)
        validation.check_seed(seed)
        name = get_backend(backend).name
        input_size = validation.check_input_size(input_size)
        side_info_size = validation.check_side_info_size(side_info_size, input_size)
        side_info_transform = _check_transform(side_info_transform)
        config = make_gaussian_config(
            layer_sizes,
            side_info_size,
            context_map_size=context_map_size,
            num_outputs=num_outputs,
            base_prediction_size=(
                validation.check_base_predictor(base_predictor, input_size) or input_size
            ),
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
        pipeline = self._pipeline_of(config, input_size, base_predictor, side_info_transform)
        self._assemble(runner, pipeline, learning_rate)
        self._std_scale = np.ones(config.num_outputs)

    @staticmethod
    def _pipeline_of(
        config, input_size: int, base_predictor, transform=None, transform_state=None
    ) -> SideInfoPipeline:
        """The Gaussian family's input pipeline: the Gaussian inputs are the examples (or the
        base predictor's output); the gating sees the examples or ``side_info=``, through the
        optional transform."""
        return SideInfoPipeline(
            config,
            input_size,
            base_predictor,
            transform,
            transform_state,
            warn_range=False,
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
            The model, with predictions (and ``std_scale``) identical to the saved one's.

        Raises:
            ValueError: the file holds a Bernoulli-family model (or is not a checkpoint).
        """
        name = get_backend(backend).name
        restored, checkpoint = cls._read_checkpoint(path, base_predictor, learning_rate, name)
        config, state, predictor, rate, side, step = restored
        engine = make_engine(name, config)
        model = cls.__new__(cls)
        pipeline = cls._pipeline_of(
            config, side.input_size, predictor, side.transform, side.transform_state
        )
        model._assemble(EngineRunner(engine, engine.from_reference(state)), pipeline, rate, step)
        scale = checkpoint.std_scale
        model._std_scale = np.ones(config.num_outputs) if scale is None else np.array(scale)
        return model

    @property
    def std_scale(self) -> np.ndarray:
        """``[C]`` float64 factor on every predicted standard deviation (a copy).

        1 for a model that was never calibrated; :meth:`calibrate` fits it, assigning a
        positive float (every output) or ``[C]`` floats sets it, and assigning 1 undoes it.
        """
        with self._lock:
            return np.array(self._std_scale)

    @std_scale.setter
    def std_scale(self, value) -> None:
        scale = check_std_scale(value, self.config.num_outputs)
        with self._lock:
            self._std_scale = scale

    def calibrate(self, X, y, side_info=None) -> np.ndarray:
        """Fits :attr:`std_scale` on held-out data: the factor on the standard deviations that
        maximises the Gaussian log-likelihood of ``y`` (:func:`~gln_jax.gaussian.std_scale_of`).

        Pass data the model has not learned from (a validation split): on its own training
        data a model that has made several passes looks more certain than it is. The model
        predicts without learning; its means, weights and step are unchanged, and the factor
        replaces any earlier one (it is fitted to the uncalibrated standard deviations). To
        keep every example for training, fit the factor on a copy trained without a held-out
        part and assign it: ``model.std_scale = probe.calibrate(x_held_out, y_held_out)``.

        Args:
            X: ``[B, input_size]`` standardised held-out examples, ``B >= 1``.
            y: ``[B]`` (one output) or ``[B, C]`` their targets.
            side_info: optional ``[B, side_info_size]`` side information for the gating.

        Returns:
            The new ``std_scale``, ``[C]`` float64.

        Raises:
            ValueError, TypeError: bad inputs or targets (see :meth:`predict`), no examples, or
                an output predicted exactly on every example; the model is unchanged.
            FloatingPointError: the predictions are NaN or inf; the model is unchanged.

        Example:
            >>> model.calibrate(x_valid, y_valid)  # doctest: +SKIP
            array([1.73])
        """
        with self._lock:
            prepared = self._prepare(X, y, side_info, learn=False)
            if prepared.inputs.shape[0] == 0:
                raise ValueError("calibration needs at least one example")
            outputs = self._checked(
                lambda: self._runner.predict(prepared.inputs, prepared.side_info), False, False
            )
            outputs = np.asarray(outputs, np.float64)
            scale = std_scale_of(prepared.targets, outputs[..., 0], np.sqrt(outputs[..., 1]))
            self._std_scale = scale
            return np.array(scale)

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
            counted, statistics = self._step, self._pipeline.transform_state
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
                    self._step, self._pipeline.transform_state = counted, statistics
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
        scale = self._scale_of(std.dtype)
        if scale is not None:  # calibrated: in the outputs' dtype, which stays as it was
            std = std * scale
        return mean, (std[:, 0] if self.config.num_outputs == 1 else std)

    def _scale_of(self, dtype):
        """``std_scale`` in ``dtype``, or ``None`` when it is 1 (left out: the exact outputs
        of an uncalibrated model); a model pickled before calibration existed has none."""
        scale = getattr(self, "_std_scale", None)
        if scale is None or (scale == 1).all():
            return None
        return scale.astype(dtype)

    def _checkpoint_extras(self) -> dict:
        scale = getattr(self, "_std_scale", None)
        return {} if scale is None or (scale == 1).all() else {"std_scale": np.array(scale)}

    def predict(self, input, target=None, return_std: bool = False, side_info=None):
        """Predicts a batch and, given targets, learns from it online.

        Args:
            input: ``[B, input_size]`` standardised examples (or one example).
            target: optional real targets, ``[B]`` (one output) or ``[B, C]``.
            return_std: also return the predictive standard deviations.
            side_info: optional ``[B, side_info_size]`` side information for the gating
                (required when ``side_info_size`` differs from ``input_size``).

        Returns:
            Means ``[B]`` (one output) or ``[B, C]``, made before any update; with
            ``return_std`` the pair ``(means, stds)``.

        Raises:
            ValueError, TypeError: bad inputs or targets (NaN, wrong shape, raw targets beyond
                ``target_limit``); nothing changes.
            FloatingPointError: the outputs are NaN or inf; nothing changes.
        """
        return self._checked(
            lambda: self._predict(input, target, return_std, side_info), target is not None, False
        )

    def fit(
        self,
        X,
        y,
        batch_size: int = 1,
        num_epochs: int = 1,
        side_info=None,
        *,
        shuffle_seed: int | None = None,
    ):
        """Trains on whole arrays (batch size 1: exact online learning); all or nothing.

        Args:
            X: ``[T, input_size]`` examples (arrays, including ``np.memmap``); y: ``[T]`` or
                ``[T, C]`` targets.
            batch_size, num_epochs: positive ints.
            side_info: optional ``[T, side_info_size]`` side information for the gating.
            shuffle_seed: ``None`` (default): every pass in the order given; a non-negative
                int: pass ``e`` in the permutation
                :func:`~gln_jax.api.gaussian_facade.epoch_order` draws from
                ``(shuffle_seed, e)``.

        Returns:
            The means predicted before each update, ``[num_epochs * T]`` (or ``[..., C]``), in
            the order the examples were learned.

        Raises:
            ValueError, TypeError: bad arguments (see :meth:`predict`); nothing changes.
            FloatingPointError: the means or the new weights are NaN or inf; nothing changes.

        Example:
            >>> model.fit(x_train, y_train, num_epochs=40, shuffle_seed=0)  # doctest: +SKIP
        """
        if shuffle_seed is not None:
            X, y, side_info, num_epochs = _shuffled(X, y, side_info, num_epochs, shuffle_seed)
        return self._checked(lambda: self._fit(X, y, batch_size, num_epochs, side_info), True, True)


def _check_transform(transform):
    """A side-information transform the Gaussian family takes: one without ``base_gain``
    (which makes Bernoulli base probabilities)."""
    transform = validation.check_side_info_transform(transform)
    if transform is not None and transform.base_gain is not None:
        raise ValueError(
            "side_info_transform with base_gain gives Bernoulli base probabilities; a "
            "GaussianGLN takes a transform without base_gain (its inputs are Gaussian means)"
        )
    return transform


def _shuffled(X, y, side_info, num_epochs, shuffle_seed):
    """``num_epochs`` shuffled passes of ``(X, y, side_info)`` as one pass (copies)."""
    if isinstance(num_epochs, bool) or not isinstance(num_epochs, (int, np.integer)):
        raise ValueError(f"num_epochs must be a positive int, got {num_epochs!r}")
    if num_epochs < 1:
        raise ValueError(f"num_epochs must be a positive int, got {num_epochs!r}")
    if isinstance(shuffle_seed, bool) or not isinstance(shuffle_seed, (int, np.integer)):
        raise TypeError(f"shuffle_seed must be None or a non-negative int, got {shuffle_seed!r}")
    if shuffle_seed < 0:
        raise ValueError(f"shuffle_seed must be None or a non-negative int, got {shuffle_seed}")
    X = validation.as_numpy(X, "X")
    y = validation.as_numpy(y, "y")
    if X.ndim != 2 or y.ndim not in (1, 2) or y.shape[0] != X.shape[0]:
        raise ValueError(
            f"shuffling needs X of shape [T, input_size] and y of shape [T] or [T, C], got "
            f"{X.shape} and {y.shape}"
        )
    order = epoch_order(X.shape[0], int(num_epochs), int(shuffle_seed))
    if side_info is not None:
        side_info = validation.as_numpy(side_info, "side_info")
        if side_info.ndim != 2 or side_info.shape[0] != X.shape[0]:
            raise ValueError(
                f"side_info must have shape [{X.shape[0]}, side_info_size], got {side_info.shape}"
            )
        side_info = side_info[order]
    return X[order], y[order], side_info, 1
