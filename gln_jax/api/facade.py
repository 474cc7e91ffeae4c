"""The stateful facades: one abstract base holding everything shared, one final class per backend.

:class:`GLNBase` holds the classic interface once: argument checks, learning rates, ``predict``,
``fit``, ``save`` and ``load``. A final class only converts arrays and owns state, through the
hooks ``_predict_probs``, ``_train_probs``, ``_fit_probs``, ``_classes``, ``_step_count``,
``reference_state`` and ``_from_reference``. :class:`GLN` (this module) reaches every backend
through an :class:`~gln_jax.api.engine.Engine`; ``gln_numpy.GLN``, ``gln_torch.GLN`` (an
``nn.Module``) and ``gln_tf.GLN`` (a ``tf.Module``) are the ports' own final classes.
"""

from __future__ import annotations

import abc
import contextlib
import inspect
import threading
import warnings
from collections.abc import Callable, Sequence

import jax
import numpy as np

from gln_jax.api import streaming, validation
from gln_jax.api.backends import get_backend
from gln_jax.api.checkpoint import SideInfo, load_checkpoint, save_checkpoint
from gln_jax.api.sharded_engine import make_facade_engine
from gln_jax.core import multiclass
from gln_jax.core import transforms as side_transforms
from gln_jax.core.network import init
from gln_jax.core.types import (
    DEFAULT_CONTEXT_MAP_SIZE,
    DEFAULT_DTYPE,
    DEFAULT_LEARNING_RATE,
    DEFAULT_NUM_CLASSES,
    DEFAULT_PRED_CLIPPING,
    DEFAULT_WEIGHT_CLIPPING,
    GLNConfig,
    GLNState,
    make_config,
)

#: Guards the lazy creation of each model's lock.
_LOCK_GUARD = threading.Lock()


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
    draw: bool = True,
) -> tuple[GLNConfig, GLNState | None]:
    """Checks the constructor's arguments and draws the initial reference state.

    Every facade calls this, so one seed gives the same model in every backend.

    Args:
        layer_sizes, input_size, context_map_size, num_classes, base_predictor, learning_rate,
            pred_clipping, weight_clipping, bias, context_bias, seed, dtype: as :class:`GLN`.
        scoped_x64: draw a ``float64`` state with 64-bit JAX enabled for this call only (the
            ports); the JAX backend instead requires the user to have enabled it.
        backend: the backend the model is built for: the memory its construction takes
            (:func:`~gln_jax.api.validation.check_construction_memory`) must be available.
        side_info_size: width ``N`` of the side information the gates see; ``None`` means
            ``input_size`` (the example itself). The config's ``input_size`` is ``N`` and its
            ``base_prediction_size`` is the base predictor's width or else ``input_size``.
        draw: draw the reference state (``False``: the caller draws it itself, for example
            straight onto a device mesh, and ``state`` is ``None``).

    Returns:
        ``(config, state)`` with the state's leaves JAX arrays (``None`` when not ``draw``).

    Raises:
        ValueError, TypeError: naming the bad argument.
    """
    validation.check_learning_rate(learning_rate)
    validation.check_seed(seed)
    if backend is not None:
        get_backend(backend)  # an unknown backend is named before anything is built
    gate_width = validation.check_side_info_size(side_info_size, input_size)
    base_width = validation.check_base_predictor(base_predictor, input_size)
    config = make_config(
        layer_sizes,
        gate_width,
        context_map_size=context_map_size,
        num_classes=num_classes,
        base_prediction_size=input_size if base_width is None else base_width,
        bias=bias,
        context_bias=context_bias,
        pred_clipping=pred_clipping,
        weight_clipping=weight_clipping,
        dtype=dtype,
    )
    validation.check_learning_rate(learning_rate, config)
    if backend is not None:
        validation.check_construction_memory(config, backend)
    if not draw:
        return config, None
    with reference_precision(config.dtype) if scoped_x64 else contextlib.nullcontext():
        state = init(jax.random.key(int(seed)), config)
    return config, state


class GLNBase(abc.ABC):
    """What every facade shares: the classic ``predict(input, target)`` interface and its checks.

    Subclasses are final per backend: they own the state and convert arrays, nothing else.
    Every public call that reads or changes the state holds the model's lock (:attr:`_lock`),
    so a model shared by threads serialises their calls.

    Attributes:
        backend: the backend's canonical name.
        config: the static :class:`~gln_jax.GLNConfig`.
        base_predictor: the host-side base predictor, or ``None``.
        learning_rate: the constant rate or the schedule.
    """

    backend: str
    config: GLNConfig
    base_predictor: Callable | None
    _warned_input_range: bool = False  # set on the instance once it has warned

    #: Draw a ``float64`` state with 64-bit JAX enabled for that call only (the ports); the JAX
    #: backend instead needs the user to have enabled it.
    _scoped_x64 = True

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
        """Checks every argument, draws the initial reference state and adopts it.

        One seed gives the same model in every backend: the state is always the reference's
        ``gln_jax.init(jax.random.key(seed), config)``. Inputs are expected in [0, 1]: by
        default they are the base predictions themselves (clipped into ``[pred_clipping,
        1 - pred_clipping]``) and also what the gates look at; scale raw ``uint8`` pixels by
        1/255 first (inputs outside [0, 1] without a ``base_predictor`` warn once per model).

        Args:
            layer_sizes: neurons per layer; a final one-neuron layer is appended when the list
                does not end in 1.
            input_size: width of an example (entries expected in [0, 1]).
            context_map_size: hyperplanes per neuron (``2**context_map_size`` weight rows).
            num_classes: 2 for a binary classifier; ``> 2`` trains one binary GLN per class
                (one-vs-all) and predicts the argmax.
            base_predictor: optional host-side NumPy callable ``[B, input_size] -> [B, P]``
                giving the base predictions (clipped into ``[pred_clipping, 1 -
                pred_clipping]``) instead of the clipped input itself.
            learning_rate: positive float, or a schedule ``step -> rate`` (optax schedules
                work), stepped once per example.
            pred_clipping: probabilities are clipped into ``[p, 1 - p]`` at every layer.
            weight_clipping: weights are clipped into ``[-w, w]`` after every update.
            bias: add a constant bias input (logit 1.0) to every layer.
            context_bias: random non-zero offsets for the gating hyperplanes.
            seed: integer seed of the gating hyperplanes (explicit; no global random state).
            dtype: ``"float32"`` (default) or ``"float64"`` (the JAX backend needs
                ``jax_enable_x64``).
            side_info_size: width ``N`` of the side information the gates see, passed to
                ``predict`` and ``fit`` as ``side_info=``; ``None`` (default) means
                ``input_size``, and the gates then see the input itself unless ``side_info=``
                is given.
            side_info_transform: ``None`` (default), ``"center"``, ``"standardize"`` or a
                :class:`gln_jax.core.transforms.TransformConfig` (``make_transform``): an
                online, per-feature running mean (and scale) applied to the side information;
                its statistics learn from each training example before it is used
                (:mod:`gln_jax.core.transforms`) and are saved in checkpoints. With its
                ``base_gain`` set it also gives the base predictions,
                ``sigmoid(base_gain * transformed side information / scale)`` (then no
                ``base_predictor``, and ``side_info_size`` equal to the examples' width).

        Raises:
            ValueError, TypeError: naming the bad argument.
        """
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
            scoped_x64=self._scoped_x64,
            backend=self._construction_backend(),
            side_info_size=side_info_size,
            draw=self._draws_reference_state(),
        )
        self._adopt(config, state, base_predictor, learning_rate, **self._adopt_options(seed))
        self._bind_side_info(input_size, side_info_transform)

    def _construction_backend(self) -> str:
        """The backend whose construction memory is checked (the class's own)."""
        return self.backend

    def _draws_reference_state(self) -> bool:
        """Whether construction draws the reference state and adopts it (else ``_adopt`` gets
        ``state=None`` and the seed, and draws the state itself, e.g. onto a device mesh)."""
        return True

    def _adopt_options(self, seed: int) -> dict:
        """Backend options of :meth:`_adopt` chosen at construction (none for the ports)."""
        return {}

    # ----------------------------------------------------------------- shared plumbing
    @property
    def _lock(self) -> threading.RLock:
        """The model's lock: every call that reads or changes the state holds it, so one model
        shared by threads serialises their calls and loses no update.

        Created on first use and kept out of ``__getstate__`` (pickles and deep copies get a
        fresh one); set with ``object.__setattr__`` so that neither ``nn.Module`` nor
        ``tf.Module`` attribute tracking sees it.
        """
        lock = self.__dict__.get("_gln_lock")
        if lock is None:
            with _LOCK_GUARD:
                lock = self.__dict__.get("_gln_lock")
                if lock is None:
                    lock = threading.RLock()
                    object.__setattr__(self, "_gln_lock", lock)
        return lock

    def __getstate__(self):
        state = super().__getstate__()
        if isinstance(state, dict) and "_gln_lock" in state:
            state = {k: v for k, v in state.items() if k != "_gln_lock"}
        return state

    @property
    def learning_rate(self) -> float | Callable:
        """The constant rate (a ``float``) or the schedule; assigning it checks it."""
        return self.__dict__.get("_gln_learning_rate")

    @learning_rate.setter
    def learning_rate(self, value: float | Callable) -> None:
        value = validation.check_learning_rate(value, getattr(self, "config", None))
        object.__setattr__(self, "_gln_learning_rate", value)

    def _side_info_limit(self) -> float:
        """The largest side-information magnitude the gates take without overflow (computed
        once per dtype from the fixed hyperplanes; see :func:`validation.side_info_limit`)."""
        cached = self.__dict__.get("_gln_side_info_limit")
        if cached is None or cached[0] != self.config.dtype:
            layers = self._reference_state().layers
            limit = validation.side_info_limit(
                self.config, [x.hyperplanes for x in layers], [x.hyperplane_bias for x in layers]
            )
            cached = (self.config.dtype, limit)
            object.__setattr__(self, "_gln_side_info_limit", cached)
        return cached[1]

    #: The neuron family this class serves (checked when loading a checkpoint).
    _family = "bernoulli"
    #: Width of an example (``predict``'s ``input``); ``None`` until bound.
    input_size: int | None = None
    #: The side-information transform's settings, or ``None`` (the side information as given).
    side_info_transform: side_transforms.TransformConfig | None = None
    #: Its running statistics (NumPy leaves), or ``None``.
    side_info_state: side_transforms.TransformState | None = None

    # ----------------------------------------------------------------- backend hooks
    @abc.abstractmethod
    def _step_count(self) -> int:
        """Number of examples learned from so far."""

    @abc.abstractmethod
    def _reference_state(self) -> GLNState:
        """A NumPy copy of the state in the reference layout (whatever the backend)."""

    @abc.abstractmethod
    def _predict_probs(self, inputs: np.ndarray, side_info: np.ndarray):
        """Probabilities ``[B, C]`` (backend arrays); changes nothing."""

    @abc.abstractmethod
    def _train_probs(self, inputs, side_info, targets, rates):
        """One batch update committed to the state; returns the probabilities ``[B, C]``."""

    @abc.abstractmethod
    def _fit_probs(self, inputs, side_info, targets, rates, batch_size: int, num_epochs: int):
        """``num_epochs`` passes committed all at once; returns ``[num_epochs * T, C]``."""

    @abc.abstractmethod
    def _classes(self, probs):
        """Predicted classes of probabilities ``[B, C]`` (backend arrays)."""

    @abc.abstractmethod
    def _adopt(self, config: GLNConfig, state: GLNState, base_predictor, learning_rate) -> None:
        """Takes ``state`` (NumPy or JAX leaves, reference layout) as this model's own state."""

    @classmethod
    def _from_reference(
        cls, config: GLNConfig, state: GLNState, base_predictor, learning_rate, **options
    ):
        """A model of this class holding ``state`` (``options``: the backend's own, if any)."""
        model = cls.__new__(cls)
        model._adopt(config, state, base_predictor, learning_rate, **options)
        return model

    # ----------------------------------------------------------------- shared behaviour
    def reference_state(self) -> GLNState:
        """A NumPy copy of the state in the reference layout (whatever the backend)."""
        with self._lock:
            return self._reference_state()

    def _warn_input_range(self, base_inputs: np.ndarray) -> None:
        """Warns once per model when the default base predictions leave [0, 1].

        Without a ``base_predictor`` the inputs are the base predictions: values outside
        [0, 1] (raw ``uint8`` pixels, standardised features) are silently clipped to
        ``[eps, 1 - eps]``. Side information may be any real numbers and never warns.
        """
        if self.base_predictor is not None or self._warned_input_range or not base_inputs.size:
            return
        low, high = float(base_inputs.min()), float(base_inputs.max())
        if low >= 0.0 and high <= 1.0:
            return
        self._warned_input_range = True
        eps = self.config.pred_clipping
        warnings.warn(
            f"inputs range from {low:g} to {high:g}, outside [0, 1]: they are the base "
            f"predictions, so they are clipped into [{eps:g}, {1 - eps:g}]; scale them into "
            "[0, 1] first (e.g. uint8 pixels / 255) or pass a base_predictor (warned once "
            "per model)",
            UserWarning,
            stacklevel=4,
        )

    def _bind_side_info(self, input_size: int, transform=None, transform_state=None) -> None:
        """Records the example width and the side-information transform (and its statistics).

        Every facade calls this after building or restoring its state.
        """
        transform = validation.check_side_info_transform(transform)
        if transform is not None and transform.base_gain is not None:
            if self.base_predictor is not None:
                raise ValueError(
                    "a side_info_transform with base_gain gives the base predictions: "
                    "pass no base_predictor"
                )
            if self.config.base_prediction_size != self.config.side_info_size:
                raise ValueError(
                    "a side_info_transform with base_gain needs side information as wide as "
                    f"the examples ({self.config.base_prediction_size}), got side_info_size "
                    f"{self.config.side_info_size}"
                )
        self.input_size = int(input_size)
        self.side_info_transform = transform
        if self.side_info_transform is None:
            self.side_info_state = None
        elif transform_state is None:
            fresh = side_transforms.init(self.config.side_info_size, self.config.dtype)
            self.side_info_state = jax.tree.map(np.asarray, fresh)
        else:
            self.side_info_state = jax.tree.map(np.asarray, transform_state)

    def _example_size(self) -> int:
        return self.config.side_info_size if self.input_size is None else self.input_size

    def _prepare(self, input, target, side_info=None, learn=False):
        """Checks and converts one call's arguments; touches no state.

        Returns:
            ``(inputs, side_info, targets, transform_state)``: base predictions, the side
            information the gates see (transformed), labels, and the transform's statistics
            after this call's examples (to commit once training has succeeded).
        """
        config = self.config
        limit = self._side_info_limit()
        examples, _ = validation.check_examples(
            input,
            width=self._example_size(),
            dtype=config.dtype,
            max_abs=limit if side_info is None else None,  # the examples are the side info
        )
        if side_info is None:
            if self._example_size() != config.side_info_size:
                raise ValueError(
                    f"this model's gates take side information of width {config.side_info_size} "
                    f"(side_info_size) and its examples have width {self._example_size()}: "
                    "pass side_info="
                )
            raw = examples
        else:
            raw, _ = validation.check_examples(
                side_info,
                width=config.side_info_size,
                dtype=config.dtype,
                name="side_info",
                max_abs=limit,
            )
            if raw.shape[0] != examples.shape[0]:
                raise ValueError(
                    f"side_info has {raw.shape[0]} rows but the input has {examples.shape[0]} "
                    "examples"
                )
        inputs = validation.base_predictions(self.base_predictor, examples, config)
        targets = None
        if target is not None:
            targets = validation.check_targets(
                target, batch=examples.shape[0], num_classes=config.num_classes
            )
        gates, transform_state = self._transform_side_info(raw, learn and targets is not None)
        transform = self.side_info_transform
        if transform is not None and transform.base_gain is not None:  # sharpened deviations
            inputs = np.asarray(side_transforms.base_predictions(gates, config=transform))
            inputs = inputs.astype(config.dtype, copy=False)
        self._warn_input_range(examples)  # only once every check has passed
        return inputs, gates, targets, transform_state

    def _transform_side_info(self, raw: np.ndarray, learn: bool):
        """Side information through the transform: online (``learn``) or with frozen statistics."""
        transform, state = self.side_info_transform, self.side_info_state
        if transform is None:
            return raw, None
        if learn:
            state, gates = side_transforms.transform_stream(state, raw, config=transform)
            return gates, jax.tree.map(np.asarray, state)
        return side_transforms.apply_batch(state, raw, config=transform), state

    def _rates(self, count: int, batch: int) -> np.ndarray:
        step = self._step_count() if callable(self.learning_rate) else 0
        return validation.learning_rates(
            self.learning_rate, step, count, self.config.dtype, config=self.config, batch=batch
        )

    def _empty(self, return_probs: bool):
        """The answer to an empty batch: ``[0]`` classes or ``[0(, C)]`` probabilities in the
        backend's arrays and dtypes (a one-example prediction, sliced to nothing)."""
        config = self.config
        probs = self._predict_probs(
            np.full((1, config.base_prediction_size), 0.5, config.dtype),
            np.zeros((1, config.side_info_size), config.dtype),
        )
        return self._output(probs[:0], return_probs)

    def _output(self, probs, return_probs: bool):
        if not return_probs:
            return self._classes(probs)
        return probs[:, 0] if self.config.num_classes == 2 else probs

    def predict(self, input, target=None, return_probs: bool = False, side_info=None):
        """Predicts a batch and, given targets, learns from it online.

        Every prediction of a batch uses the weights from before the batch; with ``target``
        the batch then updates the model (a batch of one is exact online learning).

        Args:
            input: ``[B, N]`` examples with entries in [0, 1] (or one ``[N]`` example, answered
                as a batch of one); NumPy, JAX or the backend's arrays. Without a
                ``base_predictor`` they are the base predictions: values outside [0, 1] are
                clipped, with a ``UserWarning`` once per model.
            target: optional ``[B]`` labels in ``[0, num_classes)`` (bools for a binary model).
            return_probs: return probabilities instead of classes.
            side_info: optional ``[B, side_info_size]`` side information for the gates;
                ``None`` means the input itself (only when ``side_info_size == input_size``).
                A ``side_info_transform`` is applied to it: with ``target`` its statistics
                first learn from each example in turn, without they are only applied.

        Returns:
            ``[B]`` classes (bools for a binary model), or probabilities: ``[B]`` for a binary
            model, ``[B, num_classes]`` (one sigmoid per class, not normalised) else. NumPy
            for the reference facade, the backend's tensors for the ports' own classes.
        """
        with self._lock:
            inputs, gates, targets, transform_state = self._prepare(
                input, target, side_info, learn=True
            )
            if inputs.shape[0] == 0:  # nothing to predict or learn: the state is untouched
                return self._empty(return_probs)
            if targets is None:
                probs = self._predict_probs(inputs, gates)
            else:
                count = inputs.shape[0]
                probs = self._train_probs(inputs, gates, targets, self._rates(count, count))
                self.side_info_state = transform_state
            return self._output(probs, return_probs)

    def fit(self, X, y, batch_size: int = 1, num_epochs: int = 1, side_info=None):
        """Trains on whole arrays from the current state, in order (no shuffling).

        Batch size 1 is exact online learning; a last partial batch is a smaller batch (a batch
        size above ``T`` is one batch of ``T``: memory follows the data, not the argument). All
        or nothing on every backend: a call that raises (or is interrupted) leaves the model as
        it was.

        Args:
            X: ``[T, input_size]`` examples with entries in [0, 1] (see :meth:`predict`).
            y: ``[T]`` labels.
            batch_size: examples per update, positive.
            num_epochs: passes over the data, positive.
            side_info: optional ``[T, side_info_size]`` side information (see :meth:`predict`);
                a ``side_info_transform`` learns online from every example of every epoch.

        Returns:
            ``[num_epochs * T]`` class predictions made before each update.
        """
        for name, value in (("batch_size", batch_size), ("num_epochs", num_epochs)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        with self._lock:
            if self.side_info_transform is not None and num_epochs > 1:
                # the transform keeps learning across epochs: one stream of the repeated data
                X = np.concatenate([np.asarray(X)] * num_epochs)
                y = np.tile(np.asarray(y), num_epochs)
                if side_info is not None:
                    side_info = np.concatenate([np.asarray(side_info)] * num_epochs)
                num_epochs = 1
            inputs, gates, targets, transform_state = self._prepare(X, y, side_info, learn=True)
            total, num_epochs = inputs.shape[0], int(num_epochs)
            if total == 0:
                return self._empty(False)
            batch_size = min(int(batch_size), total)
            validation.check_fit_size(self.config, total, num_epochs)
            rates = self._rates(total * num_epochs, batch_size)
            probs = self._fit_probs(inputs, gates, targets, rates, batch_size, num_epochs)
            if transform_state is not None:
                self.side_info_state = transform_state
            return self._classes(probs)

    def save(self, path) -> None:
        """Writes a portable checkpoint (one ``.npz``) that any backend can load.

        The constant learning rate is stored; a schedule or a ``base_predictor`` is code and is
        not: pass them again to :meth:`load`.
        """
        with self._lock:
            save_checkpoint(
                path,
                self.config,
                self._reference_state(),
                learning_rate=None if callable(self.learning_rate) else self.learning_rate,
                has_base_predictor=self.base_predictor is not None,
                side_info=SideInfo(
                    self._example_size(), self.side_info_transform, self.side_info_state
                ),
            )

    @classmethod
    def _restore(cls, path, base_predictor, learning_rate, backend: str):
        """Reads and checks a checkpoint; returns ``(config, state, base_predictor, rate)``.

        The rate is checked in the checkpoint's dtype and the memory that building the model in
        ``backend`` takes must be available, as at construction.
        """
        checkpoint = load_checkpoint(path)
        config = checkpoint.config
        family = config.family
        if family != cls._family:
            raise ValueError(
                f"{path!s} holds a {family}-family GLN; {cls.__name__} loads {cls._family} "
                "models (use GaussianGLN.load for Gaussian ones, GLN.load for Bernoulli ones)"
            )
        example_size = checkpoint.side_info.input_size
        if checkpoint.has_base_predictor and base_predictor is None:
            raise ValueError(
                f"{path!s} was saved with a base_predictor, which is code and not stored; "
                "pass base_predictor= to load"
            )
        if base_predictor is not None:
            width = validation.check_base_predictor(base_predictor, example_size)
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
        learning_rate = validation.check_learning_rate(learning_rate, config)
        validation.check_construction_memory(config, backend)
        return (config, checkpoint.state, base_predictor, learning_rate), checkpoint.side_info

    @classmethod
    def load(
        cls,
        path,
        *,
        base_predictor: Callable | None = None,
        learning_rate: float | Callable | None = None,
    ):
        """Restores a model saved by any backend.

        Args:
            path: a file written by :meth:`save` of any backend.
            base_predictor: required when the saved model had one (it is not stored).
            learning_rate: overrides the stored rate; required when the saved model used a
                schedule.

        Returns:
            The model, with predictions identical to the saved one's.
        """
        parts, side_info = cls._restore(path, base_predictor, learning_rate, cls.backend)
        model = cls._from_reference(*parts)
        model._bind_side_info(*side_info)
        return model


class EngineGLN(GLNBase):
    """A facade whose state is an engine's (functional) state: the JAX and NumPy backends.

    Training never writes into the previous state: it computes a new one and rebinds
    ``self.state`` once everything has succeeded.
    """

    _engine = None
    state = None

    def _bind(self, engine, config: GLNConfig, state, base_predictor, learning_rate) -> None:
        self.backend = engine.name
        self.config = config
        self.state = state
        self.base_predictor = base_predictor
        self.learning_rate = learning_rate
        self._engine = engine

    @property
    def step(self) -> int:
        """Number of examples learned from so far."""
        with self._lock:
            return self._step_count()

    def _step_count(self) -> int:
        return self._engine.step(self.state)

    def _reference_state(self) -> GLNState:
        return self._engine.to_reference(self.state)

    def _predict_probs(self, inputs, side_info):
        return self._engine.predict(self.state, inputs, side_info)

    def _train_probs(self, inputs, side_info, targets, rates):
        self.state, probs = self._engine.train(self.state, inputs, side_info, targets, rates)
        return probs

    def _fit_probs(self, inputs, side_info, targets, rates, batch_size, num_epochs):
        self.state, probs = self._engine.fit(
            self.state, inputs, side_info, targets, rates, batch_size, num_epochs
        )
        return probs

    def _classes(self, probs):
        return np.asarray(multiclass.predict_classes(probs, config=self.config))

    def fit(
        self,
        X,
        y=None,
        *args,
        chunk_size=None,
        checkpoint_path=None,
        checkpoint_every=None,
        **kwargs,
    ):
        """Trains on arrays (see :meth:`GLNBase.fit`) or on a stream larger than memory.

        A stream is an iterator of ``(X, y)`` chunks (``y`` left out) or ``np.memmap`` arrays,
        read at most ``chunk_size`` examples at a time (:func:`gln_jax.api.streaming.fit_model`).
        Unlike a fit on arrays (all or nothing), a stream cannot be rewound: a failure leaves the
        model at the last completed chunk and ``step`` says where; with ``checkpoint_every=N``
        the model is also saved to ``checkpoint_path`` whenever ``step`` reaches a multiple of N.
        """
        if not streaming.is_stream(X, y):
            if y is None:
                raise TypeError("fit needs labels y with arrays X (or an iterator of chunks)")
            if (chunk_size, checkpoint_path, checkpoint_every) != (None, None, None):
                raise ValueError("chunk_size and checkpoints apply to streams (iterators, memmaps)")
            return super().fit(X, y, *args, **kwargs)
        if (
            self.side_info_transform is not None
            or self._example_size() != self.config.side_info_size
        ):
            raise ValueError(
                "fit on a stream feeds each example to the gates as it is: a model with "
                "side_info_size or side_info_transform trains on arrays (fit(X, y, side_info=))"
            )
        return streaming.fit_model(
            self,
            X,
            y,
            *args,
            chunk_size=chunk_size or streaming.CHUNK_SIZE,
            checkpoint_path=checkpoint_path,
            checkpoint_every=checkpoint_every,
            **kwargs,
        )

    def __repr__(self) -> str:
        c = self.config
        return (
            f"{type(self).__name__}(backend={self.backend!r}, layer_sizes={list(c.layer_sizes)}, "
            f"input_size={self.input_size}, context_map_size={c.context_map_size}, "
            f"num_classes={c.num_classes}, dtype={c.dtype!r}, step={self.step})"
        )


class GLN(EngineGLN):
    """Gated Linear Network with the classic ``predict(input, target)`` interface, any backend.

    ``GLN(backend, layer_sizes, input_size, ...)``: ``backend`` first, then every argument of
    :meth:`GLNBase.__init` (see ``help(GLNBase.__init__)``: layer sizes, input size, context
    map size, classes, base predictor, learning rate, clipping, biases, seed, dtype, side
    information), plus two keywords of the JAX backend.

    Args:
        backend: ``"jax"``, ``"numpy"``, ``"pytorch"`` or ``"tf"`` (see
            :func:`gln_jax.backend_names` for aliases).
        *args, **kwargs: the arguments of :meth:`GLNBase.__init__`.
        devices: ``"jax"`` backend only: a device count or list of devices; the one-vs-all
            classes are sharded over them (:mod:`gln_jax.core.sharding`).
        mesh: ``"jax"`` backend only: a one-axis ``jax.sharding.Mesh`` to shard the classes
            over (instead of ``devices``).

    Attributes:
        config: the static :class:`~gln_jax.GLNConfig`.
        state: the backend's state (for ``"jax"`` a :class:`~gln_jax.GLNState` of jax arrays).
            Training donates the previous state's buffers: copy it
            (``jax.tree.map(jnp.copy, model.state)``) to keep a snapshot.

    Example:
        >>> model = GLN("jax", [4, 4, 1], 784, num_classes=10)  # doctest: +SKIP
        >>> model.predict(x_batch, target=y_batch)  # doctest: +SKIP
    """

    def __init__(self, backend: str, *args, devices=None, mesh=None, **kwargs):
        name = get_backend(backend).name  # an unknown backend is named before anything is built
        self._options = {"backend": name, "devices": devices, "mesh": mesh}
        self._scoped_x64 = name != "jax"
        super().__init__(*args, **kwargs)

    def _construction_backend(self) -> str:
        return self._options["backend"]

    def _draws_reference_state(self) -> bool:
        # a sharded model is drawn straight onto its mesh: never whole on one device
        return self._options["devices"] is None and self._options["mesh"] is None

    def _adopt_options(self, seed: int) -> dict:
        return {**self.__dict__.pop("_options"), "seed": seed}

    def _adopt(
        self,
        config,
        state,
        base_predictor,
        learning_rate,
        backend="jax",
        devices=None,
        mesh=None,
        seed=None,
    ) -> None:
        engine = make_facade_engine(backend, config, devices, mesh)
        if state is None:  # construction of a sharded model: the engine draws it on the mesh
            state = engine.init(jax.random.key(int(seed)))
        else:
            state = engine.from_reference(state)
        self._bind(engine, config, state, base_predictor, learning_rate)

    @classmethod
    def load(
        cls,
        path,
        backend: str = "jax",
        *,
        base_predictor: Callable | None = None,
        learning_rate: float | Callable | None = None,
        devices=None,
        mesh=None,
    ) -> GLN:
        """Restores a model saved by any backend into ``backend``.

        Args:
            path: a file written by :meth:`save` of any backend.
            backend: the backend to load into.
            base_predictor: required when the saved model had one (it is not stored).
            learning_rate: overrides the stored rate; required when the saved model used a
                schedule.
            devices, mesh: shard the classes of the loaded model (``"jax"`` only), as in
                :class:`GLN`.

        Returns:
            The model, with predictions identical to the saved one's.
        """
        parts, side_info = cls._restore(
            path, base_predictor, learning_rate, get_backend(backend).name
        )
        model = cls._from_reference(*parts, backend=backend, devices=devices, mesh=mesh)
        model._bind_side_info(*side_info)
        return model


def _gln_signature() -> inspect.Signature:
    """``GLN.__init__``'s full signature for ``help`` and IDEs: ``backend``, then
    :meth:`GLNBase.__init__`'s parameters, then ``devices`` and ``mesh``."""
    base = list(inspect.signature(GLNBase.__init__).parameters.values())
    keyword = inspect.Parameter.KEYWORD_ONLY
    return inspect.Signature(
        [
            base[0],
            inspect.Parameter("backend", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation="str"),
            *base[1:],
            inspect.Parameter("devices", keyword, default=None),
            inspect.Parameter("mesh", keyword, default=None),
        ]
    )


GLN.__init__.__signature__ = _gln_signature()
