"""The facades' abstract bases: what every stateful GLN shares, written once.

Every class here is abstract and every concrete class built on them is final (equinox's rule):
a method is either abstract (a hook that each final class implements) or concrete and never
overridden. A facade is three parts by composition:

- a :class:`~gln_jax.api.runner.Runner`, which holds the state in one backend and runs it;
- a :class:`~gln_jax.api.side_info.SideInfoPipeline`, which turns one call's arguments into
  base predictions and side information;
- the shared behaviour below: locking, learning rates, ``predict``/``fit`` around the runner,
  ``save`` and the checks of ``load``.

:class:`GLNBase` serves both neuron families; :class:`BernoulliGLN` adds the classifier's
interface (``predict(input, target, return_probs)``); :class:`PortGLN` adds the constructor and
``load`` of a port's own ``GLN`` class (``gln_numpy.GLN``, ``gln_torch.GLN``, ``gln_tf.GLN``).
The final classes are :class:`gln_jax.GLN`, :class:`gln_jax.GaussianGLN` and the ports' ``GLN``.
"""

from __future__ import annotations

import abc
import threading
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from gln_jax.api import _streaming as streaming
from gln_jax.api import memory, schedules, validation
from gln_jax.api.build import build_model
from gln_jax.api.checkpoint import SideInfo, load_checkpoint, save_checkpoint
from gln_jax.api.runner import EngineRunner, Runner
from gln_jax.api.side_info import Prepared, SideInfoPipeline
from gln_jax.core import _transforms as transforms
from gln_jax.core.numerics import STEP_MAX
from gln_jax.core.stream import check_route
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
)


class GLNBase(abc.ABC):
    """What every facade shares; the final classes add a constructor and their family's calls.

    Every public call that reads or changes the state holds the model's lock, so a model
    shared by threads serialises its calls and loses no update.

    Attributes:
        backend: the backend's canonical name.
        config: the static config (its ``dtype`` follows the state's).
        state: the backend's state.
        base_predictor: the host-side base predictor, or ``None``.
        learning_rate: the constant rate or the schedule.
        input_size: width of an example.
    """

    #: The neuron family of the class (checked when loading a checkpoint).
    family: str

    @abc.abstractmethod
    def __init__(self, *args, **kwargs):
        """Each final class writes its constructor once."""

    # ----------------------------------------------------------------- family hooks
    @abc.abstractmethod
    def _check_targets(self, target, batch: int) -> np.ndarray:
        """The family's targets of a batch of ``batch`` examples, checked and converted."""

    @abc.abstractmethod
    def _output(self, outputs, flag: bool):
        """What ``predict`` returns for the runner's outputs (``flag``: the family's option)."""

    @abc.abstractmethod
    def _predictions(self, outputs):
        """What ``fit`` returns for the runner's outputs (classes, or means)."""

    @abc.abstractmethod
    def _checkpoint_extras(self) -> dict:
        """The family's own keyword arguments of ``save_checkpoint`` (``{}``: none)."""

    # ----------------------------------------------------------------- assembly
    def _assemble(
        self, runner: Runner, pipeline: SideInfoPipeline, learning_rate, step: int | None = None
    ) -> None:
        """Takes the parts of a model built by a constructor or by ``load`` (``step``: the
        exact count a checkpoint stored; ``None``: the state's)."""
        self._lock = threading.RLock()
        self._runner = runner
        # the exact count, a Python int, added to after each training call without reading
        # the backend's step (a device transfer); _current_step reconciles the two
        self._step = runner.step() if step is None else int(step)
        self._pipeline = pipeline
        self.learning_rate = learning_rate

    def __getstate__(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k != "_lock"}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._lock = threading.RLock()
        if "_step" not in state:  # pickled before the facade counted on the host
            self._step = self._runner.step()

    # ----------------------------------------------------------------- attributes
    @property
    def backend(self) -> str:
        """The backend's canonical name."""
        return self._runner.backend

    @property
    def config(self):
        """The static config of the model."""
        return self._runner.config

    @property
    def state(self):
        """The backend's state (a :class:`~gln_jax.GLNState` of its arrays, or its module's)."""
        return self._runner.state

    @state.setter
    def state(self, value) -> None:
        with self._lock:
            own = getattr(getattr(self._runner, "engine", None), "own", None)
            self._runner.state = value if own is None else own(value)
            self._step = self._runner.step()

    @property
    def step(self) -> int:
        """Number of examples learned from so far.

        Exact (a Python int that never wraps), and written to checkpoints: the state's own
        int32 ``step`` says it up to ``2**31 - 1``, where it stops, and the facade counts on
        the host from there. Assigning ``state`` (or loading a module's state from
        outside) sets it from that state's ``step``.
        """
        with self._lock:
            return self._current_step()

    def _current_step(self) -> int:
        """The exact count: the state's while it is below ``2**31 - 1`` (a module's state may
        have been loaded from outside), else the host's; the host's count follows it."""
        counted = self._runner.step()
        self._step = counted if counted < STEP_MAX else max(self._step, counted)
        return self._step

    @property
    def base_predictor(self) -> Callable | None:
        """The host-side base predictor, or ``None``."""
        return self._pipeline.base_predictor

    @property
    def input_size(self) -> int:
        """Width of an example (``predict``'s input)."""
        return self._pipeline.input_size

    @property
    def side_info_transform(self) -> transforms.TransformConfig | None:
        """The side-information transform's settings, or ``None``."""
        return self._pipeline.transform

    @property
    def side_info_state(self) -> transforms.TransformState | None:
        """The transform's running statistics (NumPy leaves), or ``None``."""
        return self._pipeline.transform_state

    @property
    def learning_rate(self) -> float | Callable:
        """The constant rate (a ``float``) or the schedule; assigning it checks it."""
        return self._learning_rate

    @learning_rate.setter
    def learning_rate(self, value: float | Callable) -> None:
        self._learning_rate = schedules.check_learning_rate(value, self.config)

    def reference_state(self) -> GLNState:
        """A NumPy copy of the state in the reference layout (whatever the backend)."""
        with self._lock:
            return self._runner.reference_state()

    def __repr__(self) -> str:
        c = self.config
        if c.family == "gaussian":
            size = f"num_outputs={c.num_outputs}"
        else:
            size = f"num_classes={c.num_classes}"
        return (
            f"{type(self).__name__}(backend={self.backend!r}, layer_sizes={list(c.layer_sizes)}, "
            f"input_size={self.input_size}, context_map_size={c.context_map_size}, {size}, "
            f"dtype={c.dtype!r}, step={self.step})"
        )

    # ----------------------------------------------------------------- shared behaviour
    def _prepare(self, input, target, side_info, learn: bool) -> Prepared:
        config = self.config
        limit = self._pipeline.side_info_limit(config, self._runner.reference_state)
        return self._pipeline.prepare(
            config,
            input,
            target,
            side_info,
            learn=learn,
            limit=limit,
            check_targets=self._check_targets,
        )

    def _rates(self, count: int, batch: int) -> np.ndarray:
        step = self._current_step() if callable(self.learning_rate) else 0
        return schedules.learning_rates(
            self.learning_rate, step, count, self.config.dtype, config=self.config, batch=batch
        )

    def _empty(self, flag: bool):
        """The answer to an empty batch, in the backend's arrays and dtypes (a one-example
        prediction, sliced to nothing)."""
        config = self.config
        outputs = self._runner.predict(
            np.full((1, config.base_prediction_size), 0.5, config.dtype),
            np.zeros((1, config.side_info_size), config.dtype),
        )
        return self._output(outputs[:0], flag)

    def _predict(self, input, target, flag: bool, side_info):
        """``predict``'s work: outputs of a batch and, with targets, one update."""
        with self._lock:
            prepared = self._prepare(input, target, side_info, learn=True)
            if prepared.inputs.shape[0] == 0:  # nothing to predict or learn
                return self._empty(flag)
            if prepared.targets is None:
                outputs = self._runner.predict(prepared.inputs, prepared.side_info)
            else:
                count = prepared.inputs.shape[0]
                outputs = self._runner.train(
                    prepared.inputs,
                    prepared.side_info,
                    prepared.targets,
                    self._rates(count, count),
                )
                self._pipeline.commit(prepared.transform_state)
                self._step += count
            return self._output(outputs, flag)

    def _fit(self, X, y, batch_size, num_epochs, side_info, route="auto"):
        """``fit``'s work on whole arrays: all or nothing."""
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
            prepared = self._prepare(X, y, side_info, learn=True)
            total, num_epochs = prepared.inputs.shape[0], int(num_epochs)
            if total == 0:
                return self._empty(False)
            batch_size = min(int(batch_size), total)
            memory.check_fit_size(self.config, total, num_epochs)
            rates = self._rates(total * num_epochs, batch_size)
            outputs = self._runner.fit(
                prepared.inputs,
                prepared.side_info,
                prepared.targets,
                rates,
                batch_size,
                num_epochs,
                **({} if route == "auto" else {"route": route}),
            )
            self._pipeline.commit(prepared.transform_state)
            self._step += total * num_epochs
            return self._predictions(outputs)

    def save(self, path) -> None:
        """Writes a portable checkpoint (one ``.npz``) that any backend can load.

        The constant learning rate is stored; a schedule or a ``base_predictor`` is code and is
        not: pass them again to ``load``.
        """
        with self._lock:
            save_checkpoint(
                path,
                self.config,
                self._runner.reference_state(),
                learning_rate=None if callable(self.learning_rate) else self.learning_rate,
                has_base_predictor=self.base_predictor is not None,
                side_info=SideInfo(self.input_size, self.side_info_transform, self.side_info_state),
                step=self._current_step(),
                **self._checkpoint_extras(),
            )

    @classmethod
    def _restore(cls, path, base_predictor, learning_rate, backend: str):
        """:meth:`_read_checkpoint` without the checkpoint itself: the 6-tuple."""
        return cls._read_checkpoint(path, base_predictor, learning_rate, backend)[0]

    @classmethod
    def _read_checkpoint(cls, path, base_predictor, learning_rate, backend: str):
        """Reads and checks a checkpoint for ``cls`` in ``backend``.

        The rate is checked in the checkpoint's dtype and the memory that building the model in
        ``backend`` takes must be available, as at construction.

        Returns:
            ``((config, state, base_predictor, learning_rate, side_info, step), checkpoint)``
            (``step`` the exact count; ``checkpoint`` the
            :class:`~gln_jax.api.checkpoint.Checkpoint` read, for a family's own fields).
        """
        checkpoint = load_checkpoint(path)
        config = checkpoint.config
        if config.family != cls.family:
            raise ValueError(
                f"{path!s} holds a {config.family}-family GLN; {cls.__name__} loads "
                f"{cls.family} models (use GaussianGLN.load for Gaussian ones, GLN.load for "
                "Bernoulli ones)"
            )
        input_size = checkpoint.side_info.input_size
        if checkpoint.has_base_predictor and base_predictor is None:
            raise ValueError(
                f"{path!s} was saved with a base_predictor, which is code and not stored; "
                "pass base_predictor= to load"
            )
        if base_predictor is not None:
            width = validation.check_base_predictor(base_predictor, input_size)
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
        learning_rate = schedules.check_learning_rate(learning_rate, config)
        memory.check_construction_memory(config, backend)
        restored = (
            config,
            checkpoint.state,
            base_predictor,
            learning_rate,
            checkpoint.side_info,
            checkpoint.step,
        )
        return restored, checkpoint


class BernoulliGLN(GLNBase):
    """The classifier's interface: ``predict(input, target, return_probs)`` and ``fit``.

    Abstract: :class:`gln_jax.GLN` and the ports' ``GLN`` classes are its final classes.
    """

    family = "bernoulli"

    def _check_targets(self, target, batch: int) -> np.ndarray:
        return validation.check_targets(target, batch=batch, num_classes=self.config.num_classes)

    def _output(self, probs, return_probs: bool | str):
        if not return_probs:
            return self._runner.classes(probs)
        if self.config.num_classes == 2:
            return probs[:, 0]
        return self._runner.normalize(probs) if return_probs == "normalized" else probs

    def _predictions(self, probs):
        return self._runner.classes(probs)

    def _checkpoint_extras(self) -> dict:
        return {}

    def predict(
        self,
        input,
        target=None,
        return_probs: bool = False,
        side_info=None,
        *,
        normalize: bool = False,
    ):
        """Predicts a batch and, given targets, learns from it online.

        Every prediction of a batch uses the weights from before the batch; with ``target``
        the batch then updates the model (a batch of one is exact online learning).

        Args:
            input: ``[B, input_size]`` examples with entries in [0, 1] (or one example,
                answered as a batch of one); NumPy, JAX or the backend's arrays. Without a
                ``base_predictor`` they are the base predictions: values outside [0, 1] are
                clipped, with a ``UserWarning`` once per model.
            target: optional ``[B]`` labels in ``[0, num_classes)`` (bools for a binary model).
            return_probs: return probabilities instead of classes.
            side_info: optional ``[B, side_info_size]`` side information for the gating;
                ``None`` means the input itself (only when ``side_info_size == input_size``).
                A ``side_info_transform`` is applied to it: with ``target`` its statistics
                first learn from each example in turn, without they are only applied.
            normalize: with ``return_probs``, divide a multi-class model's rows by their sum,
                so that each is a distribution over the classes (what ``predict_proba`` of
                :class:`gln_jax.sklearn.GLNClassifier` returns). The one-vs-all
                probabilities themselves are independent sigmoids whose rows sum to about 1,
                not exactly. A binary model's probability needs nothing.

        Returns:
            ``[B]`` classes (bools for a binary model), or probabilities: ``[B]`` for a binary
            model, ``[B, num_classes]`` (one sigmoid per class, rows normalised only with
            ``normalize``) else. NumPy for :class:`gln_jax.GLN`, the backend's tensors for the
            ports' own classes.

        Raises:
            ValueError, TypeError: bad inputs or targets (or ``normalize`` without
                ``return_probs``); nothing changes.
        """
        if not isinstance(normalize, (bool, np.bool_)):
            raise TypeError(f"normalize must be a bool, got {normalize!r}")
        if normalize and not return_probs:
            raise ValueError("normalize=True applies to probabilities: pass return_probs=True")
        flag = "normalized" if normalize else bool(return_probs)
        return self._predict(input, target, flag, side_info)

    def fit(
        self,
        X,
        y=None,
        batch_size: int = 1,
        num_epochs: int = 1,
        side_info=None,
        *,
        chunk_size: int | None = None,
        checkpoint_path=None,
        checkpoint_every: int | None = None,
        route: str = "auto",
    ):
        """Trains on whole arrays from the current state, in order (no shuffling), or on a
        stream larger than memory.

        Batch size 1 is exact online learning; a last partial batch is a smaller batch (a batch
        size above ``T`` is one batch of ``T``: memory follows the data, not the argument). On
        arrays the call is all or nothing: one that raises (or is interrupted) leaves the model
        as it was.

        A stream is an iterator of ``(X, y)`` chunks (``y`` left out) or ``np.memmap`` arrays,
        read at most ``chunk_size`` examples at a time (:func:`gln_jax.api._streaming.fit_model`;
        :class:`gln_jax.GLN` of any backend, and ``gln_numpy.GLN``). A stream cannot be
        rewound: a failure leaves the model at the last completed chunk and ``step`` says
        where; with ``checkpoint_every=N`` the model is also saved to ``checkpoint_path``
        whenever ``step`` reaches a multiple of N.

        Args:
            X: ``[T, input_size]`` examples with entries in [0, 1] (see :meth:`predict`), or a
                stream.
            y: ``[T]`` labels.
            batch_size: examples per update, positive.
            num_epochs: passes over the data, positive.
            side_info: optional ``[T, side_info_size]`` side information (see :meth:`predict`);
                a ``side_info_transform`` learns online from every example of every epoch.
            chunk_size, checkpoint_path, checkpoint_every: streams only (see above).
            route: ``"auto"`` (default), ``"kernel"`` or ``"xla"``: the implementation that
                trains (:func:`gln_jax.fit_stream`; the JAX backend on one device has both,
                a sharded model XLA only, the ports one). Routes agree to rounding at low
                rates and drift apart along the stream at high rates; see the semantics page.

        Returns:
            ``[num_epochs * T]`` class predictions made before each update.

        Raises:
            ValueError: an unknown ``route``, or one this backend does not have.
            RuntimeError: ``route="kernel"`` where the fused kernel cannot serve (the reason).
        """
        self._check_route(route)
        plain = (
            side_info is None
            and self.side_info_transform is None
            and self.input_size == self.config.side_info_size
        )
        streams = isinstance(self._runner, EngineRunner) and streaming.is_stream(X, y)
        stream_options = (chunk_size, checkpoint_path, checkpoint_every) != (None, None, None)
        if streams and y is not None and not plain and not stream_options:
            streams = False  # memmaps are arrays: a model that needs more than X learns in one go
        if not streams:
            if y is None:
                raise TypeError("fit needs labels y with arrays X (or an iterator of chunks)")
            if stream_options:
                raise ValueError(
                    "chunk_size and checkpoints apply to streams (iterators, memmaps), which "
                    "gln_jax.GLN of any backend and gln_numpy.GLN take"
                )
            return self._fit(X, y, batch_size, num_epochs, side_info, route)
        if not plain:
            raise ValueError(
                "fit on a stream feeds each example to the gating as it is: a model with "
                "side_info_size or side_info_transform trains on arrays (fit(X, y, side_info=))"
            )
        return streaming.fit_model(
            self,
            X,
            y,
            batch_size,
            num_epochs,
            chunk_size=chunk_size or streaming.CHUNK_SIZE,
            checkpoint_path=checkpoint_path,
            checkpoint_every=checkpoint_every,
            route=route,
        )

    def _check_route(self, route) -> None:
        """Raises ``ValueError`` for a route that is unknown or that this backend lacks."""
        check_route(route, function="fit")
        routes = getattr(self._runner, "routes", ("auto",))
        if route not in routes:
            raise ValueError(
                f"fit: route={route!r} is not available on the {self.backend} backend"
                f"{' of a sharded model' if 'xla' in routes else ''}, which takes "
                f"{' or '.join(repr(r) for r in routes)}"
            )


class PortGLN(BernoulliGLN):
    """The constructor and ``load`` of a port's own ``GLN`` (``gln_numpy``, ``gln_torch``,
    ``gln_tf``): :class:`gln_jax.GLN`'s interface without ``backend``.

    Abstract: each port's final class says how it holds a state (:meth:`_make_runner`).
    """

    #: The port's backend name (checked when loading, for the memory a model takes).
    port_backend: str

    @classmethod
    @abc.abstractmethod
    def _make_runner(cls, config: GLNConfig, state: GLNState) -> Runner:
        """The port's runner holding ``state`` (NumPy or JAX leaves, reference layout)."""

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
        hyperplane_normalize: bool | None = None,
        hyperplane_bias_scale: float = DEFAULT_HYPERPLANE_BIAS_SCALE,
    ):
        """Builds the model; the arguments are :class:`gln_jax.GLN`'s without ``backend``.

        The initial state is the reference's ``gln_jax.init(jax.random.key(seed), config)``
        (a ``float64`` one drawn with 64-bit JAX enabled for that call only), so one seed gives
        the same model in every backend.
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
            scoped_x64=True,
            backend=self.port_backend,
            side_info_size=side_info_size,
            hyperplane_normalize=hyperplane_normalize,
            hyperplane_bias_scale=hyperplane_bias_scale,
        )
        pipeline = SideInfoPipeline(config, input_size, base_predictor, side_info_transform)
        self._assemble(self._make_runner(config, state), pipeline, learning_rate)

    @classmethod
    def load(
        cls,
        path,
        *,
        base_predictor: Callable | None = None,
        learning_rate: float | Callable | None = None,
    ) -> Any:
        """Restores a model saved by any backend.

        Args:
            path: a file written by ``save`` of any backend.
            base_predictor: required when the saved model had one (it is not stored).
            learning_rate: overrides the stored rate; required when the saved model used a
                schedule.

        Returns:
            The model, with predictions identical to the saved one's.
        """
        config, state, predictor, rate, side, step = cls._restore(
            path, base_predictor, learning_rate, cls.port_backend
        )
        model = cls.__new__(cls)
        pipeline = SideInfoPipeline(
            config, side.input_size, predictor, side.transform, side.transform_state
        )
        model._assemble(cls._make_runner(config, state), pipeline, rate, step)
        return model
