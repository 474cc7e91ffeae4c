"""``GLN``: a thin stateful facade with the classic interface; no maths lives here."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import jax
import numpy as np

from gln_jax import _validation, multiclass
from gln_jax._types import GLNConfig, GLNState, make_config
from gln_jax.backends import make_engine
from gln_jax.checkpoint import load_checkpoint, save_checkpoint
from gln_jax.network import init


class GLN:
    """Gated Linear Network with the classic ``predict(input, target)`` interface.

    Args:
        backend: ``"jax"`` (see :func:`gln_jax.backends.backend_names` for all names).
        layer_sizes: neurons per layer; a final one-neuron layer is appended when the list does
            not end in 1.
        input_size: width ``N`` of an example.
        context_map_size: halfspaces per neuron (``2**context_map_size`` weight rows).
        num_classes: 2 for a binary classifier; ``> 2`` trains one binary GLN per class
            (one-vs-all) and predicts the argmax.
        base_predictor: optional host-side NumPy callable ``[B, N] -> [B, K]`` giving the base
            predictions (clipped into ``[pred_clipping, 1 - pred_clipping]``) instead of the
            clipped input itself.
        learning_rate: positive float, or a schedule ``step -> rate`` (optax schedules work),
            stepped once per example.
        pred_clipping: probabilities are clipped into ``[p, 1 - p]`` at every layer.
        weight_clipping: weights are clipped into ``[-w, w]`` after every update.
        bias: add a constant bias input (logit 1.0) to every layer.
        context_bias: random non-zero thresholds for the gating halfspaces.
        seed: integer seed of the gating hyperplanes (explicit; no global random state).
        dtype: ``"float32"`` (default) or ``"float64"`` (needs ``jax_enable_x64``).

    Attributes:
        config: the static :class:`~gln_jax.GLNConfig`.
        state: the backend's state (for ``"jax"`` a :class:`~gln_jax.GLNState` of jax arrays).
            Training donates the previous state's buffers: copy it
            (``jax.tree.map(jnp.copy, model.state)``) to keep a snapshot.

    Example:
        >>> model = GLN("jax", [4, 4, 1], 784, num_classes=10)  # doctest: +SKIP
        >>> model.predict(x_batch, target=y_batch)  # doctest: +SKIP
    """

    def __init__(
        self,
        backend: str,
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
        _validation.check_learning_rate(learning_rate)
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
            raise TypeError(f"seed must be an int, got {seed!r}")
        config = make_config(
            layer_sizes,
            input_size,
            context_map_size=context_map_size,
            num_classes=num_classes,
            base_prediction_size=_validation.check_base_predictor(base_predictor, input_size),
            bias=bias,
            context_bias=context_bias,
            pred_clipping=pred_clipping,
            weight_clipping=weight_clipping,
            dtype=dtype,
        )
        engine = make_engine(backend, config)
        reference = init(jax.random.key(int(seed)), config)
        self._setup(engine, config, engine.from_reference(reference), base_predictor, learning_rate)

    def _setup(self, engine, config: GLNConfig, state, base_predictor, learning_rate) -> None:
        self.backend = engine.name
        self.config = config
        self.state = state
        self.base_predictor = base_predictor
        self.learning_rate = learning_rate
        self._engine = engine

    @property
    def step(self) -> int:
        """Number of examples learned from so far."""
        return self._engine.step(self.state)

    def reference_state(self) -> GLNState:
        """A NumPy copy of the state in the reference layout (whatever the backend)."""
        return self._engine.to_reference(self.state)

    def _prepare(self, input, target):
        """Checks and converts one call's arguments; touches no state."""
        config = self.config
        side_info, single = _validation.check_examples(
            input, width=config.input_size, dtype=config.dtype
        )
        inputs = _validation.base_predictions(self.base_predictor, side_info, config)
        targets = None
        if target is not None:
            targets = _validation.check_targets(
                target, batch=side_info.shape[0], num_classes=config.num_classes
            )
        return inputs, side_info, targets, single

    def _rates(self, count: int) -> np.ndarray:
        step = self.step if callable(self.learning_rate) else 0
        return _validation.learning_rates(self.learning_rate, step, count, self.config.dtype)

    def predict(self, input, target=None, return_probs: bool = False) -> np.ndarray:
        """Predicts a batch and, given targets, learns from it online.

        Every prediction of a batch uses the weights from before the batch; with ``target``
        the batch then updates the model (a batch of one is exact online learning).

        Args:
            input: ``[B, N]`` examples (or one ``[N]`` example, answered as a batch of one);
                NumPy, JAX or the backend's arrays.
            target: optional ``[B]`` labels in ``[0, num_classes)`` (bools for a binary model).
            return_probs: return probabilities instead of classes.

        Returns:
            NumPy ``[B]`` classes (bools for a binary model), or probabilities: ``[B]`` for a
            binary model, ``[B, num_classes]`` (one sigmoid per class, not normalised) else.
        """
        inputs, side_info, targets, _ = self._prepare(input, target)
        if targets is None:
            probs = self._engine.predict(self.state, inputs, side_info)
        else:
            rates = self._rates(inputs.shape[0])
            self.state, probs = self._engine.train(self.state, inputs, side_info, targets, rates)
        return self._output(probs, return_probs)

    def _output(self, probs: np.ndarray, return_probs: bool) -> np.ndarray:
        if not return_probs:
            return np.asarray(multiclass.predict_classes(probs, config=self.config))
        return probs[:, 0] if self.config.num_classes == 2 else probs

    def fit(self, X, y, batch_size: int = 1, num_epochs: int = 1) -> np.ndarray:
        """Trains on whole arrays from the current state, in order (no shuffling).

        Batch size 1 is exact online learning through the ``lax.scan`` driver; a last partial
        batch is a smaller batch.

        Args:
            X: ``[N, input_size]`` examples.
            y: ``[N]`` labels.
            batch_size: examples per update, positive.
            num_epochs: passes over the data, positive.

        Returns:
            NumPy ``[num_epochs * N]`` class predictions made before each update.
        """
        for name, value in (("batch_size", batch_size), ("num_epochs", num_epochs)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        inputs, side_info, targets, _ = self._prepare(X, y)
        n = inputs.shape[0]
        rates = self._rates(n * num_epochs)
        state, outputs = self.state, []
        for epoch in range(num_epochs):
            epoch_rates = rates[epoch * n : (epoch + 1) * n]
            state, probs = self._engine.fit(
                state, inputs, side_info, targets, epoch_rates, int(batch_size)
            )
            outputs.append(np.asarray(multiclass.predict_classes(probs, config=self.config)))
        self.state = state
        return np.concatenate(outputs)

    def save(self, path) -> None:
        """Writes a portable checkpoint (one ``.npz``) that any backend can load.

        The constant learning rate is stored; a schedule or a ``base_predictor`` is code and is
        not: pass them again to :meth:`load`.
        """
        save_checkpoint(
            path,
            self.config,
            self.reference_state(),
            learning_rate=None if callable(self.learning_rate) else self.learning_rate,
            has_base_predictor=self.base_predictor is not None,
        )

    @classmethod
    def load(
        cls,
        path,
        backend: str = "jax",
        *,
        base_predictor: Callable | None = None,
        learning_rate: float | Callable | None = None,
    ) -> GLN:
        """Restores a model saved by any backend into ``backend``.

        Args:
            path: a file written by :meth:`save`.
            backend: the backend to load into.
            base_predictor: required when the saved model had one (it is not stored).
            learning_rate: overrides the stored rate; required when the saved model used a
                schedule.

        Returns:
            The model, with predictions identical to the saved one's.
        """
        checkpoint = load_checkpoint(path)
        config = checkpoint.config
        if checkpoint.has_base_predictor and base_predictor is None:
            raise ValueError(
                f"{path!s} was saved with a base_predictor, which is code and not stored; "
                "pass base_predictor= to load"
            )
        if base_predictor is not None:
            width = _validation.check_base_predictor(base_predictor, config.input_size)
            if width != config.base_prediction_size:
                raise ValueError(
                    f"base_predictor returns {width} base predictions, the checkpoint's model "
                    f"takes {config.base_prediction_size}"
                )
        if learning_rate is None:
            learning_rate = checkpoint.learning_rate
        if learning_rate is None:
            raise ValueError(
                f"{path!s} was saved with a learning-rate schedule, which is code and not "
                "stored; pass learning_rate= to load"
            )
        _validation.check_learning_rate(learning_rate)
        engine = make_engine(backend, config)
        model = cls.__new__(cls)
        model._setup(
            engine, config, engine.from_reference(checkpoint.state), base_predictor, learning_rate
        )
        return model

    def __repr__(self) -> str:
        c = self.config
        return (
            f"GLN(backend={self.backend!r}, layer_sizes={list(c.layer_sizes)}, "
            f"input_size={c.input_size}, context_map_size={c.context_map_size}, "
            f"num_classes={c.num_classes}, dtype={c.dtype!r}, step={self.step})"
        )
