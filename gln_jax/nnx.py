"""A Flax NNX module of a Gated Linear Network, for use as a head over any Flax model.

:class:`GLN` holds the reference state in NNX variables of the module's own types:
:class:`GLNWeights` (the learned weight tables), :class:`GLNGating` (the fixed hyperplanes and
their offsets) and :class:`GLNStep` (the update counter). None of them is an ``nnx.Param``, so an
optimiser built on ``nnx.Param`` (``nnx.Optimizer(model, tx, wrt=nnx.Param)``) never touches
them: a GLN learns only through its own closed-form local update, :meth:`GLN.update`.

Every method is one call of the functional API (:func:`gln_jax.apply`,
:func:`gln_jax.batch_apply`, :func:`gln_jax.update`, :func:`gln_jax.batch_update`) on the state
read from the variables, so the module computes exactly what the functional API computes; it
works under ``nnx.jit``, ``nnx.scan``, ``nnx.split`` and ``nnx.merge``.

This module is ``gln_jax.nnx``; it imports Flax by absolute name (``from flax import nnx``).

Example (a GLN head over a Flax feature extractor, trained online under ``nnx.scan``):
    >>> class Model(nnx.Module):  # doctest: +SKIP
    ...     def __init__(self, rngs):
    ...         self.features = nnx.Linear(64, 32, rngs=rngs)
    ...         self.head = GLN([16, 1], 32, num_classes=10, rngs=rngs)
    ...     def learn(self, x, y, lr):
    ...         h = jnp.tanh(self.features(x))
    ...         return self.head.update(jax.nn.sigmoid(h), h, y, lr)
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from gln_jax.core.network import apply, batch_apply, batch_update, init, update
from gln_jax.core.types import (
    DEFAULT_CONTEXT_MAP_SIZE,
    DEFAULT_DTYPE,
    DEFAULT_NUM_CLASSES,
    DEFAULT_PRED_CLIPPING,
    DEFAULT_WEIGHT_CLIPPING,
    GLNConfig,
    GLNState,
    LayerState,
    make_config,
    renamed_argument,
)

__all__ = ["GLN", "GLNGating", "GLNStep", "GLNWeights"]


class GLNWeights(nnx.Variable):
    """Learned weight table of one layer, ``[C, K, R, I]``; changed only by :meth:`GLN.update`."""


class GLNGating(nnx.Variable):
    """Fixed gating of one layer: hyperplanes ``[C, K, H, N]`` or their offsets ``[C, K, H]``."""


class GLNStep(nnx.Variable):
    """Scalar int32: examples learned from so far."""


class GLN(nnx.Module):
    """Gated Linear Network as an NNX module (binary, or one-vs-all for ``num_classes > 2``).

    Args:
        layer_sizes: neurons per layer; the output neuron is appended when it does not end in 1.
        side_info_size: width ``N`` of the side information the gating looks at.
        context_map_size: hyperplanes per neuron.
        num_classes: 2 for a binary model, ``> 2`` for one-vs-all.
        base_prediction_size: width ``P`` of the base predictions; ``None`` means ``N``.
        bias, context_bias, pred_clipping, weight_clipping, dtype: as :func:`gln_jax.make_config`.
        rngs: ``nnx.Rngs``; the gating is drawn from its ``params`` stream (one key).
        state: instead of ``rngs``, a functional-API state of this configuration to start from
            (copied); see :meth:`from_state`.
        input_size: deprecated name of ``side_info_size`` (warns).

    Attributes:
        config: the static :class:`~gln_jax.GLNConfig`.
        weights: per layer a :class:`GLNWeights`.
        hyperplanes, hyperplane_bias: per layer a :class:`GLNGating`.
        step: a :class:`GLNStep`.

    Example:
        >>> head = GLN([8, 1], 32, num_classes=10, rngs=nnx.Rngs(0))  # doctest: +SKIP
        >>> p = head(jax.nn.sigmoid(h), h)  # [B, 10]  # doctest: +SKIP
    """

    def __init__(
        self,
        layer_sizes,
        side_info_size: int | None = None,
        *,
        context_map_size: int = DEFAULT_CONTEXT_MAP_SIZE,
        num_classes: int = DEFAULT_NUM_CLASSES,
        base_prediction_size: int | None = None,
        bias: bool = True,
        context_bias: bool = True,
        pred_clipping: float = DEFAULT_PRED_CLIPPING,
        weight_clipping: float = DEFAULT_WEIGHT_CLIPPING,
        dtype: str = DEFAULT_DTYPE,
        rngs: nnx.Rngs | None = None,
        state: GLNState | None = None,
        input_size: int | None = None,
    ):
        side_info_size = renamed_argument(
            side_info_size, input_size, "side_info_size", "input_size"
        )
        config = make_config(
            layer_sizes,
            side_info_size,
            context_map_size=context_map_size,
            num_classes=num_classes,
            base_prediction_size=base_prediction_size,
            bias=bias,
            context_bias=context_bias,
            pred_clipping=pred_clipping,
            weight_clipping=weight_clipping,
            dtype=dtype,
        )
        if (rngs is None) == (state is None):
            raise TypeError("GLN takes exactly one of rngs= (a fresh model) and state=")
        if state is None:
            if not isinstance(rngs, nnx.Rngs):
                # NNX's own layers (nnx.Linear, ...) take an nnx.Rngs only; an int here would
                # hide which stream the gating is drawn from.
                raise TypeError(
                    f"rngs must be an nnx.Rngs (e.g. rngs=nnx.Rngs({rngs!r}) for a seed), got "
                    f"{type(rngs).__name__}"
                )
            state = init(rngs.params(), config)
        else:
            expected = jax.eval_shape(lambda: init(jax.random.key(0), config))
            shapes = jax.tree.map(lambda a: (jnp.shape(a), jnp.result_type(a)), state)
            if shapes != jax.tree.map(lambda a: (a.shape, a.dtype), expected):
                raise ValueError("state does not match the configuration's shapes and dtypes")
            state = jax.tree.map(jnp.array, state)  # a copy: the module never aliases it
        self.config = config
        self.weights = nnx.List([GLNWeights(layer.weights) for layer in state.layers])
        self.hyperplanes = nnx.List([GLNGating(layer.hyperplanes) for layer in state.layers])
        self.hyperplane_bias = nnx.List(
            [GLNGating(layer.hyperplane_bias) for layer in state.layers]
        )
        self.step = GLNStep(jnp.asarray(state.step, jnp.int32))

    @classmethod
    def from_state(cls, config: GLNConfig, state: GLNState) -> GLN:
        """A module holding a copy of a functional-API ``state`` of ``config``.

        Example:
            >>> head = GLN.from_state(config, gln_jax.init(key, config))  # doctest: +SKIP
        """
        return cls(
            config.layer_sizes,
            config.side_info_size,
            context_map_size=config.context_map_size,
            num_classes=config.num_classes,
            base_prediction_size=config.base_prediction_size,
            bias=config.bias,
            context_bias=config.context_bias,
            pred_clipping=config.pred_clipping,
            weight_clipping=config.weight_clipping,
            dtype=config.dtype,
            state=state,
        )

    def state(self) -> GLNState:
        """The functional-API :class:`~gln_jax.GLNState` held by the variables (no copy)."""
        layers = tuple(
            LayerState(w.get_value(), h.get_value(), b.get_value())
            for w, h, b in zip(self.weights, self.hyperplanes, self.hyperplane_bias, strict=True)
        )
        return GLNState(layers=layers, step=self.step.get_value())

    def __call__(self, inputs: jax.Array, side_info: jax.Array) -> jax.Array:
        """Probabilities of one example or of a batch; changes nothing.

        Args:
            inputs: ``[P]`` or ``[B, P]`` base probabilities.
            side_info: ``[N]`` or ``[B, N]`` side information.

        Returns:
            ``[C]`` or ``[B, C]`` clipped probabilities (``C = config.num_models``).
        """
        fn = apply if jnp.ndim(inputs) == 1 else batch_apply
        return fn(self.state(), inputs, side_info, config=self.config)

    def update(
        self, inputs: jax.Array, side_info: jax.Array, target: jax.Array, learning_rate
    ) -> jax.Array:
        """Predicts, then learns in place with the closed-form GLN update.

        One example (``inputs [P]``, ``side_info [N]``, scalar ``target``) is one exact online
        step (:func:`gln_jax.update`); a batch (``[B, P]``, ``[B, N]``, ``[B]``) is one
        :func:`gln_jax.batch_update` with ``learning_rate`` broadcast to ``[B]``.

        Args:
            inputs: base probabilities.
            side_info: side information.
            target: class label(s) in ``[0, num_classes)``.
            learning_rate: scalar (or ``[B]``) rate; traced, so a new value never recompiles.

        Returns:
            The probabilities ``[C]`` (or ``[B, C]``) predicted before the update.
        """
        state = self.state()
        if jnp.ndim(inputs) == 1:
            state, p = update(state, inputs, side_info, target, learning_rate, config=self.config)
        else:
            rates = jnp.broadcast_to(
                jnp.asarray(learning_rate, self.config.dtype), jnp.shape(inputs)[:1]
            )
            state, p = batch_update(state, inputs, side_info, target, rates, config=self.config)
        for variable, layer in zip(self.weights, state.layers, strict=True):
            variable.set_value(layer.weights)
        self.step.set_value(state.step)
        return p
