"""``GLNModule``: a GLN state held as ``tf.Variable``\\ s, with compiled prediction and training.

The variables follow the checkpoint layout (``layers[i].weights``, ``.hyperplanes``,
``.hyperplane_bias`` and ``step``), so ``tf.train.Checkpoint(model=module)`` and
``module.variables`` work as for any ``tf.Module``.

The compiled functions belong to the configuration, not to the module (:func:`compiled`): each
has an input signature with unknown batch and stream lengths, so it is traced once per config,
whatever lengths it is later called with and however many models of that config are built.

Training is transactional: a batch update computes the new weights and then assigns them; a
stream is learned in place into working-copy variables (one set per config, under a lock) that
are copied into the model's variables only after the whole stream has been learned.
"""

from __future__ import annotations

import functools
import threading

import tensorflow as tf

from gln_jax.core.types import CHUNK_SIZE
from gln_tf import numerics
from gln_tf.network import Tables, batch_apply, batch_step, flatten, online_step, unflatten
from gln_tf.scan import batch_loop, online_loop, prepare, state_signature, stream_signature
from gln_tf.types import GLNConfig, GLNState, LayerState, from_reference, tf_dtype

#: Most examples per call of the compiled prediction (bounds its intermediate buffers).
PREDICT_BLOCK = 4096


class Compiled:
    """The ``tf.function``\\ s of one config, shared by every :class:`GLNModule` of it.

    Args:
        config: the config.

    Attributes:
        predict: ``(state, inputs [B, P], side_info [B, N]) -> probs [B, C]``.
        train: ``(state, inputs, side_info, targets [B], rates [B]) -> (weights, probs)``:
            one batch update (the exact online step when ``B == 1``), pure.
        online: ``(state, inputs [T, P], side_info [T, N], targets, rates) -> probs [T, C]``:
            exact online learning into :attr:`work` in place.
        batches: as ``online`` with a scalar ``batch_size``: consecutive batch updates.
        work: per layer a ``[C*K*R, I]`` working-copy variable.
        lock: held while :attr:`work` is in use.
    """

    def __init__(self, config: GLNConfig):
        self.config = config
        dtype = tf_dtype(config)
        state = state_signature(config)
        flat = stream_signature(config, None)
        self.work = [
            tf.Variable(
                tf.zeros([config.num_models * k * config.num_contexts, i], dtype),
                trainable=False,
                name=f"work_{layer}",
            )
            for layer, (k, i) in enumerate(
                zip(config.layer_sizes, config.layer_input_sizes(), strict=True)
            )
        ]
        self.lock = threading.Lock()
        self.predict = tf.function(self._predict, input_signature=[state, *flat[:2]])
        self.train = tf.function(self._train, input_signature=[state, *flat])
        self.online = tf.function(self._online, input_signature=[state, *flat])
        self.batches = tf.function(
            self._batches, input_signature=[state, *flat, tf.TensorSpec([], tf.int32)]
        )

    def functions(self) -> dict:
        """The compiled functions by name (``experimental_get_tracing_count`` shows each is
        traced once)."""
        return {
            "predict": self.predict,
            "train": self.train,
            "online": self.online,
            "batches": self.batches,
        }

    def _predict(self, state, inputs, side_info):
        return batch_apply(state, inputs, side_info, config=self.config)

    def _train(self, state, inputs, side_info, targets, rates):
        config = self.config
        x0, rows, target_rows = prepare(state, inputs, side_info, targets, config)
        tables = flatten([layer.weights for layer in state.layers])

        def single():
            store = Tables(tables)
            first = [tf.reshape(r[0], [-1]) for r in rows]
            p = online_step(store, x0[0], first, target_rows[0][:, None], rates[0], config)
            return [*store.tables, p[None]]

        def batch():
            store = Tables(tables)
            p = batch_step(store, x0, rows, target_rows, rates, config)
            return [*store.tables, p]

        *new_tables, p = tf.cond(tf.shape(x0)[0] == 1, single, batch)
        return unflatten(new_tables, config), p

    def _online(self, state, inputs, side_info, targets, rates):
        x0, rows, target_rows = prepare(state, inputs, side_info, targets, self.config)
        _, p = online_loop(
            self.work, x0, rows, target_rows, rates, config=self.config, in_place=True
        )
        return p

    def _batches(self, state, inputs, side_info, targets, rates, batch_size):
        x0, rows, target_rows = prepare(state, inputs, side_info, targets, self.config)
        _, p = batch_loop(
            self.work, x0, rows, target_rows, rates, batch_size, config=self.config, in_place=True
        )
        return p


@functools.lru_cache(maxsize=32)
def compiled(config: GLNConfig) -> Compiled:
    """The (cached) compiled functions of ``config``."""
    return Compiled(config)


class _LayerVariables(tf.Module):
    """One layer's state as three variables (only the weights are ever written)."""

    def __init__(self, layer: LayerState, index: int):
        super().__init__(name=f"layer_{index}")
        self.weights = tf.Variable(layer.weights, trainable=False, name="weights")
        self.hyperplanes = tf.Variable(layer.hyperplanes, trainable=False, name="hyperplanes")
        self.hyperplane_bias = tf.Variable(
            layer.hyperplane_bias, trainable=False, name="hyperplane_bias"
        )

    def state(self) -> LayerState:
        return LayerState(self.weights, self.hyperplanes, self.hyperplane_bias)


class GLNModule(tf.Module):
    """A GLN state as variables, with compiled prediction and training.

    Args:
        config: the model's config.
        state: a state with NumPy, JAX or TF leaves (copied into new variables).
        name: the module's name.

    Attributes:
        config: the :class:`~gln_jax.GLNConfig`.
        layers: one ``tf.Module`` per layer holding ``weights``, ``hyperplanes`` and
            ``hyperplane_bias`` variables.
        step: int64 variable, the number of examples learned from.

    Example:
        >>> module = GLNModule(config, gln_jax.init(jax.random.key(0), config))
        ... # doctest: +SKIP
        >>> probs = module.predict_probabilities(inputs, side_info)  # doctest: +SKIP
    """

    def __init__(self, config: GLNConfig, state: GLNState, name: str | None = None):
        super().__init__(name=name)
        self.config = config
        tensors = from_reference(state, dtype=tf_dtype(config))
        self.layers = [_LayerVariables(layer, i) for i, layer in enumerate(tensors.layers)]
        self.step = tf.Variable(int(tensors.step), dtype=tf.int64, trainable=False, name="step")

    @property
    def state(self) -> GLNState:
        """The state as a :class:`~gln_jax.GLNState` of the module's variables (``step`` read
        as an int32 tensor, saturated at ``2**31 - 1``; the module's own counter is int64)."""
        return GLNState(
            layers=tuple(layer.state() for layer in self.layers),
            step=numerics.advance_step(self.step, 0),  # the int64 count, saturated
        )

    @property
    def compiled(self) -> Compiled:
        """The compiled functions of this module's config."""
        return compiled(self.config)

    def _tensors(self, inputs, side_info, targets=None, rates=None):
        dtype = tf_dtype(self.config)
        out = [tf.convert_to_tensor(inputs, dtype), tf.convert_to_tensor(side_info, dtype)]
        if targets is not None:
            out += [tf.convert_to_tensor(targets, tf.int32), tf.convert_to_tensor(rates, dtype)]
        return out

    def predict_probabilities(self, inputs, side_info) -> tf.Tensor:
        """Probabilities ``[B, C]`` of a batch (``[B, P]`` base predictions, ``[B, N]`` side
        information), in blocks of :data:`PREDICT_BLOCK` examples."""
        inputs, side_info = self._tensors(inputs, side_info)
        predict, state = self.compiled.predict, self.state
        total = int(inputs.shape[0])
        if total <= PREDICT_BLOCK:
            return predict(state, inputs, side_info)
        return tf.concat(
            [
                predict(state, inputs[i : i + PREDICT_BLOCK], side_info[i : i + PREDICT_BLOCK])
                for i in range(0, total, PREDICT_BLOCK)
            ],
            axis=0,
        )

    def train(self, inputs, side_info, targets, rates) -> tf.Tensor:
        """One batch update of ``B`` examples (exact online learning for one); returns the
        predictions ``[B, C]`` made before it."""
        args = self._tensors(inputs, side_info, targets, rates)
        weights, p = self.compiled.train(self.state, *args)
        for layer, new in zip(self.layers, weights, strict=True):  # all computed: now assign
            layer.weights.assign(new)
        self.step.assign_add(int(args[0].shape[0]))
        return p

    def fit(
        self,
        inputs,
        side_info,
        targets,
        rates,
        batch_size: int = 1,
        epochs: int = 1,
        chunk_size: int | None = None,
    ) -> tf.Tensor:
        """Learns a stream in order (``epochs`` passes), committing only at the end.

        Args:
            inputs: ``[T, P]`` base probabilities.
            side_info: ``[T, N]`` raw examples.
            targets: ``[T]`` labels.
            rates: ``[epochs * T]`` learning rates, one per example and pass.
            batch_size: examples per update (1 is exact online learning; a last partial batch
                is a smaller batch).
            epochs: passes over the stream.
            chunk_size: most examples per call of the compiled loop (default
                :data:`CHUNK_SIZE`).

        Returns:
            ``[epochs * T, C]`` predictions made before each update.
        """
        chunk_size = CHUNK_SIZE if chunk_size is None else chunk_size
        inputs, side_info, targets, rates = self._tensors(inputs, side_info, targets, rates)
        functions = self.compiled
        total = int(targets.shape[0])
        length = batch_size * max(1, chunk_size // batch_size)
        size = tf.constant(batch_size, tf.int32)
        state = self.state
        outputs = []
        with functions.lock:
            for work, layer in zip(functions.work, self.layers, strict=True):
                work.assign(tf.reshape(layer.weights, work.shape))
            for epoch in range(epochs):
                for start in range(0, total, length):
                    stop = min(start + length, total)
                    chunk = (inputs[start:stop], side_info[start:stop], targets[start:stop])
                    chunk_rates = rates[epoch * total + start : epoch * total + stop]
                    if batch_size == 1:
                        outputs.append(functions.online(state, *chunk, chunk_rates))
                    else:
                        outputs.append(functions.batches(state, *chunk, chunk_rates, size))
            for work, layer in zip(functions.work, self.layers, strict=True):  # commit
                layer.weights.assign(tf.reshape(work, layer.weights.shape))
            self.step.assign_add(total * epochs)
        if not outputs:
            return tf.zeros([0, self.config.num_models], tf_dtype(self.config))
        return tf.concat(outputs, axis=0)

    def __repr__(self) -> str:
        c = self.config
        return (
            f"{type(self).__name__}(layer_sizes={list(c.layer_sizes)}, "
            f"side_info_size={c.side_info_size}, context_map_size={c.context_map_size}, "
            f"num_classes={c.num_classes}, dtype={c.dtype!r}, step={int(self.step.numpy())})"
        )
