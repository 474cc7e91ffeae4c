"""Static configuration and state pytrees of a Gated Linear Network, and the project's glossary.

The config is a frozen dataclass of Python scalars that JAX sees as static (hashable, no pytree
leaves: a static argument of every jitted function); the state is a NamedTuple pytree of
arrays, registered for :mod:`jax.export` serialisation. Field names are shared verbatim by every
port, so one checkpoint format serves all of them.

Glossary (one word per concept, in code, kernel and docs):

- **example** and **input size**: what the user passes to a facade's ``predict`` and ``fit``,
  ``input_size`` wide (the facade's argument).
- **base predictions** (width ``P``, ``base_prediction_size``): the probabilities the first
  layer mixes; the clipped example itself unless a base predictor gives them.
- **side information** (width ``N``, ``side_info_size``): the vector the gating looks at; the
  example itself unless ``side_info=`` is given, after the optional online transform.
- **hyperplane**: each neuron owns ``H = context_map_size`` fixed random hyperplanes over the
  side information, normals ``hyperplanes`` and offsets ``hyperplane_bias``; bit ``h`` of a
  neuron is ``hyperplanes[h] . side_info > hyperplane_bias[h]``.
- **context map**: a neuron's ``H`` hyperplanes; **context**: the integer in ``[0, R)`` their
  bits form, which picks the neuron's active weight row. **Gating** is the mechanism as a whole
  (:mod:`gln_jax.core.gating`).
- **class axis** (``C``): the leading axis of every state leaf: one binary GLN per class for a
  one-vs-all model, one for a binary model.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import numbers
import os
import warnings
from typing import Any, ClassVar, NamedTuple

import jax
import numpy as np

from gln_jax.core.defaults import (
    DEFAULT_CONTEXT_MAP_SIZE as DEFAULT_CONTEXT_MAP_SIZE,
)
from gln_jax.core.defaults import DEFAULT_DTYPE as DEFAULT_DTYPE
from gln_jax.core.defaults import (
    DEFAULT_HYPERPLANE_BIAS_SCALE as DEFAULT_HYPERPLANE_BIAS_SCALE,
)
from gln_jax.core.defaults import DEFAULT_LEARNING_RATE as DEFAULT_LEARNING_RATE
from gln_jax.core.defaults import DEFAULT_NUM_CLASSES as DEFAULT_NUM_CLASSES
from gln_jax.core.defaults import DEFAULT_PRED_CLIPPING as DEFAULT_PRED_CLIPPING
from gln_jax.core.defaults import DEFAULT_WEIGHT_CLIPPING as DEFAULT_WEIGHT_CLIPPING
from gln_jax.core.defaults import DTYPES as DTYPES
from gln_jax.core.defaults import ESTIMATOR_LAYER_SIZES as ESTIMATOR_LAYER_SIZES
from gln_jax.core.defaults import MNIST_LAYER_SIZES as MNIST_LAYER_SIZES

Array = Any  # jax.Array in the reference; numpy/torch/tf arrays in the ports.
PRNGKey = Any

# Shape letters, one meaning each everywhere in the code, the kernel and the docstrings:
#   C  one-vs-all models (``config.num_models``: 1 for a binary model, else ``num_classes``)
#   K  neurons of a layer                 R  weight rows per neuron, ``2**context_map_size``
#   H  hyperplanes per neuron (``context_map_size``)
#   I  inputs of a neuron (bias counted)  N  side-information width (``side_info_size``)
#   P  base predictions (``base_prediction_size``)
#   E  members of an ensemble             B  examples of a batch
#   T  examples of a stream

#: Up to this many rows per neuron, a batch scores every row of a layer with one matrix product
#: and then picks the active one; above it, it gathers the active rows (see :func:`dense_scoring`).
DENSE_ROWS_MAX = 64
#: Smallest batch that scores every row densely; a single example gathers its active rows.
DENSE_BATCH_MIN = 2
#: Most examples per compiled chunk of a stream driver (bounds device memory).
CHUNK_SIZE = 8192
#: Exact online learning runs in Gram chunks (:mod:`gln_jax.core.chunked`) up to this many rows
#: per neuron; above it, one example per scan step (the dense scoring wastes ``R`` times).
CHUNKED_ROWS_MAX = 64
#: Examples per Gram chunk of exact online learning.
GRAM_CHUNK = 64


def dense_scoring(rows: int, batch: int | None = None) -> bool:
    """The one switch rule between dense scoring and gathering active rows, for every backend.

    Dense scoring multiplies a batch by every row of a layer (``R`` rows per neuron) in one
    matrix product and picks the active sums; gathering reads one row per neuron and example.
    Both cost in proportion to the width ``I`` of a row (``B K R I`` multiply-adds against
    ``B K I`` gathered elements), so the width cancels out of the rule: dense wins while ``R``
    is below the cost of gathering one element in multiply-adds. Measured on CPU (XLA, 10
    classes, MNIST, ``[4, 4, 1]`` and wider): a gathered element costs about as much as 50-100
    multiply-adds of a matrix product, so dense wins up to :data:`DENSE_ROWS_MAX` rows; a
    single example reads the whole table to use one row of each neuron, so it gathers (below
    :data:`DENSE_BATCH_MIN`).

    Args:
        rows: rows per neuron ``R`` (``2**context_map_size``).
        batch: examples scored at once, or ``None`` for a batch of unknown size (dense).

    Returns:
        True for the dense route.

    Example:
        >>> dense_scoring(16, 32), dense_scoring(16, 1), dense_scoring(128, 32)
        (True, False, False)
    """
    return rows <= DENSE_ROWS_MAX and (batch is None or batch >= DENSE_BATCH_MIN)


def dense_rows(config: GLNConfig, batch: int | None = None) -> bool:
    """:func:`dense_scoring` of a config's rows per neuron (batched inference and batch updates).

    Args:
        config: the network's config.
        batch: examples scored at once (``None``: unknown, at least two).

    Returns:
        True for the dense route.
    """
    return dense_scoring(config.num_contexts, batch)


class LayerState(NamedTuple):
    """State of one layer of a (one-vs-all) GLN.

    Attributes:
        weights: ``[classes, neurons, 2**context_map_size, inputs]`` learned weight tables;
            ``inputs`` counts the bias input (appended last) when ``config.bias``.
        hyperplanes: ``[C, K, H, N]`` fixed normals of the hyperplanes over the side
            information.
        hyperplane_bias: ``[C, K, H]`` fixed offsets of the hyperplanes.
    """

    weights: Array
    hyperplanes: Array
    hyperplane_bias: Array


class GLNState(NamedTuple):
    """State of a GLN: one :class:`LayerState` per layer plus the update counter.

    Attributes:
        layers: tuple of :class:`LayerState`, first layer first.
        step: scalar int32, the number of examples learned from so far; it stops at
            ``2**31 - 1`` instead of wrapping (the facades keep the exact count on the host
            and write it to checkpoints).
    """

    layers: tuple[LayerState, ...]
    step: Array


class StaticConfig:
    """Base of the hyperparameter configs: frozen dataclasses that JAX sees as static.

    A config holds Python scalars only. It is hashable (a ``static_argnames`` argument of a
    jitted function) and registered with :func:`jax.tree_util.register_static`: it has no
    pytree leaves, so ``jax.tree.map`` passes it by and a pytree that holds one (a module, a
    dict of state and config) goes through ``jax.jit`` with the config as structure. Sequences
    become tuples on construction, so a config built from JSON (lists) is hashable and equal to
    the original; :func:`make_config` validates, the constructor only normalises.
    ``_replace``, ``_asdict`` and ``_fields`` keep the NamedTuple spelling of earlier releases.
    """

    _fields: ClassVar[tuple[str, ...]] = ()

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if isinstance(value, (list, tuple)):
                value = tuple(int(v) if isinstance(v, numbers.Integral) else v for v in value)
            elif isinstance(value, np.generic):
                value = value.item()
            elif field.name == "dtype" and not isinstance(value, str):
                try:
                    value = np.dtype(value).name
                except TypeError:
                    pass
            object.__setattr__(self, field.name, value)

    def _replace(self, **changes):
        """A copy with ``changes`` applied (``dataclasses.replace``); not validated."""
        return dataclasses.replace(self, **changes)

    def _asdict(self) -> dict[str, Any]:
        """The fields as a dict (tuples stay tuples), in declaration order."""
        return {name: getattr(self, name) for name in self._fields}

    def to_json(self) -> str:
        """The config as a JSON object; ``type(config).from_json`` rebuilds an equal config."""
        return json.dumps(self._asdict())

    @classmethod
    def from_json(cls, text: str):
        """The config that :meth:`to_json` wrote (fields it does not know are refused).

        Raises:
            TypeError: unknown or missing fields.
        """
        return cls(**json.loads(text))


def register_static_config(cls):
    """Registers a :class:`StaticConfig` dataclass with JAX: static pytree, export name.

    The serialised name ``gln_jax.<Class>`` lets an exported function whose arguments hold a
    config be deserialised in another process.
    """
    cls._fields = tuple(field.name for field in dataclasses.fields(cls))
    jax.tree_util.register_static(cls)
    jax.export.register_pytree_node_serialization(
        cls,
        serialized_name=f"gln_jax.{cls.__name__}",
        serialize_auxdata=lambda config: config.to_json().encode(),
        deserialize_auxdata=lambda data: cls.from_json(data.decode()),
        from_children=lambda config, children: config,
    )
    return cls


jax.export.register_namedtuple_serialization(LayerState, serialized_name="gln_jax.LayerState")
jax.export.register_namedtuple_serialization(GLNState, serialized_name="gln_jax.GLNState")


@register_static_config
@dataclasses.dataclass(frozen=True)
class GLNConfig(StaticConfig):
    """Static, hashable hyperparameters of a GLN. Build it with :func:`make_config`.

    Attributes:
        layer_sizes: neurons per layer; always ends in 1 (see :func:`make_config`).
        side_info_size: width ``N`` of the side information the gating looks at.
        context_map_size: hyperplanes per neuron ``H``; each neuron has ``2**H`` weight rows.
        num_classes: 2 for a binary model, ``> 2`` for one-vs-all.
        base_prediction_size: width ``P`` of the base predictions fed to the first layer.
        bias: whether every layer gets a constant extra input whose logit is 1.0.
        context_bias: random hyperplane offsets ``N(0, hyperplane_bias_scale**2)`` if true,
            zero offsets if false.
        pred_clipping: ``eps``; every probability is clipped into ``[eps, 1 - eps]``.
        weight_clipping: weights are clipped into ``[-weight_clipping, weight_clipping]``.
        dtype: ``"float32"`` or ``"float64"``.
        hyperplane_normalize: hyperplane normals of unit norm (a Gaussian vector divided by its
            norm) if true, standard Gaussian vectors if false. ``None`` (the constructor's
            default) becomes ``context_bias``, the coupling of earlier releases, so a config
            always holds a bool.
        hyperplane_bias_scale: standard deviation of the random offsets (only with
            ``context_bias``; 1.0 otherwise).

    :func:`init` is the only reader of the last two and of ``context_bias``: they say how the
    fixed hyperplanes were drawn, which the state then holds.
    """

    layer_sizes: tuple[int, ...]
    side_info_size: int
    context_map_size: int = DEFAULT_CONTEXT_MAP_SIZE
    num_classes: int = DEFAULT_NUM_CLASSES
    base_prediction_size: int = 0
    bias: bool = True
    context_bias: bool = True
    pred_clipping: float = DEFAULT_PRED_CLIPPING
    weight_clipping: float = DEFAULT_WEIGHT_CLIPPING
    dtype: str = DEFAULT_DTYPE
    hyperplane_normalize: bool | None = None
    hyperplane_bias_scale: float = DEFAULT_HYPERPLANE_BIAS_SCALE

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.hyperplane_normalize is None:  # a config always says how it was drawn
            object.__setattr__(self, "hyperplane_normalize", bool(self.context_bias))

    @property
    def family(self) -> str:
        """The neuron family, ``"bernoulli"`` (checkpoints and engines dispatch on it)."""
        return "bernoulli"

    @property
    def input_size(self) -> int:
        """Deprecated name of :attr:`side_info_size`."""
        warnings.warn(
            "GLNConfig.input_size is deprecated: the side information's width is "
            "GLNConfig.side_info_size",
            DeprecationWarning,
            stacklevel=2,
        )
        return self.side_info_size

    @property
    def num_models(self) -> int:
        """Size of the leading class axis: 1 for a binary model, else ``num_classes``."""
        return 1 if self.num_classes == 2 else self.num_classes

    @property
    def num_contexts(self) -> int:
        """Rows of each neuron's weight table, ``2**context_map_size``."""
        return 2**self.context_map_size

    def layer_input_sizes(self) -> tuple[int, ...]:
        """Inputs of each layer, the bias input included."""
        extra = 1 if self.bias else 0
        widths = (self.base_prediction_size, *self.layer_sizes[:-1])
        return tuple(w + extra for w in widths)

    def state_nbytes(self) -> int:
        """Bytes the state of this configuration occupies."""
        itemsize = np.dtype(self.dtype).itemsize
        total = 0
        for neurons, inputs in zip(self.layer_sizes, self.layer_input_sizes(), strict=True):
            rows = neurons * self.num_models
            total += rows * self.num_contexts * inputs  # weights
            total += rows * self.context_map_size * (self.side_info_size + 1)  # gating
        return total * itemsize


def renamed_argument(value, old_value, name: str, old_name: str):
    """The value of an argument that ``old_name`` used to name (warns when the old name is used).

    Raises:
        TypeError: both names given, or neither.
    """
    if old_value is None:
        if value is None:
            raise TypeError(f"missing required argument {name!r}")
        return value
    if value is not None:
        raise TypeError(f"pass {name}= only ({old_name}= is its deprecated name)")
    warnings.warn(
        f"{old_name}= is deprecated here: it is now called {name}=",
        DeprecationWarning,
        stacklevel=3,
    )
    return old_value


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_real(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _memory_limit_bytes() -> int:
    """Physical memory of this host, the most a state may take."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # pragma: no cover - non-POSIX hosts
        return 2**40


@functools.cache
def largest_finite(dtype) -> float:
    """The largest finite value of ``dtype`` (kept per dtype: per-call checks ask for it)."""
    return float(np.finfo(dtype).max)


def smallest_pred_clipping(dtype) -> float:
    """The smallest ``pred_clipping`` a model of ``dtype`` can hold.

    It is the spacing of ``dtype`` just below 1 (``np.finfo(dtype).epsneg``: about 5.96e-8 for
    float32, 1.11e-16 for float64): from there up, ``1 - eps`` is a ``dtype`` value below 1, so
    ``eps < 1 - eps`` and both logits are finite. Below it ``1 - eps`` may round to 1, whose
    logit is infinite, and the first update writes NaN.
    """
    return float(np.finfo(dtype).epsneg)


def max_logit(config: GLNConfig) -> float:
    """The largest magnitude of a neuron input's logit: ``log((1 - eps) / eps)``, or the bias
    input's 1.0 when that is larger."""
    eps = config.pred_clipping
    largest = math.log((1.0 - eps) / eps)
    return max(largest, 1.0) if config.bias else largest


#: The largest magnitude, in standard deviations, that a standard normal draw of :func:`init`
#: is allowed to reach when :func:`make_config` checks that scaled offsets stay finite.
_NORMAL_DRAW_BOUND = 16.0


def _check_bias_scale(scale, context_bias: bool, dtype: str) -> float:
    """The checked ``hyperplane_bias_scale`` of :func:`make_config`, as a Python float."""
    if not _is_real(scale):
        raise TypeError(f"hyperplane_bias_scale must be a non-negative float, got {scale!r}")
    try:
        value = float(scale)
    except OverflowError:  # an int beyond every float
        value = math.inf
    if not (math.isfinite(value) and value >= 0):
        raise ValueError(f"hyperplane_bias_scale must be non-negative and finite, got {scale}")
    if not context_bias and value != DEFAULT_HYPERPLANE_BIAS_SCALE:
        raise ValueError(
            f"hyperplane_bias_scale={scale} has no effect with context_bias=False (the offsets "
            "are then zero): pass context_bias=True to draw scaled offsets"
        )
    if not value * _NORMAL_DRAW_BOUND < largest_finite(dtype):
        raise ValueError(
            f"hyperplane_bias_scale={scale} is too large for {dtype}: offsets of "
            f"{_NORMAL_DRAW_BOUND:g} standard deviations must stay finite"
        )
    return value


def make_config(
    layer_sizes,
    side_info_size=None,
    context_map_size=DEFAULT_CONTEXT_MAP_SIZE,
    num_classes=DEFAULT_NUM_CLASSES,
    base_prediction_size=None,
    bias=True,
    context_bias=True,
    pred_clipping=DEFAULT_PRED_CLIPPING,
    weight_clipping=DEFAULT_WEIGHT_CLIPPING,
    dtype=DEFAULT_DTYPE,
    *,
    hyperplane_normalize=None,
    hyperplane_bias_scale=DEFAULT_HYPERPLANE_BIAS_SCALE,
    input_size=None,
) -> GLNConfig:
    """Validates hyperparameters and builds a :class:`GLNConfig`.

    The last layer of a GLN has exactly one neuron (its output); if ``layer_sizes`` does not end
    in 1, one output neuron is appended.

    Args:
        layer_sizes: sequence of positive ints, neurons per layer.
        side_info_size: positive int, width ``N`` of the side information.
        context_map_size: non-negative int, hyperplanes per neuron.
        num_classes: int >= 2.
        base_prediction_size: width of the base predictions; ``None`` means
            ``side_info_size``.
        bias: add a constant bias input to every layer.
        context_bias: random non-zero hyperplane offsets, ``N(0, hyperplane_bias_scale**2)``;
            zero offsets if false.
        pred_clipping: float in (0, 0.5), at least :func:`smallest_pred_clipping` of ``dtype``.
        weight_clipping: positive float, a normal number of ``dtype`` (at least
            ``np.finfo(dtype).tiny``); a neuron's largest weighted sum,
            ``weight_clipping * inputs * max_logit``, must be finite in ``dtype``.
        dtype: "float32" or "float64" (or the numpy dtype).
        hyperplane_normalize: bool, unit-norm hyperplane normals (normalised Gaussian vectors)
            instead of standard Gaussian ones; ``None`` (default) means ``context_bias``, as in
            earlier releases.
        hyperplane_bias_scale: non-negative finite float, the standard deviation of the
            offsets (default 1.0); a value other than 1.0 needs ``context_bias=True``, and
            ``16 * hyperplane_bias_scale`` must be finite in ``dtype``.
        input_size: deprecated name of ``side_info_size`` (warns).

    Returns:
        The validated config.

    Raises:
        ValueError, TypeError: naming the argument and what was expected.

    Example:
        >>> make_config([4, 4], 784).layer_sizes
        (4, 4, 1)
    """
    if isinstance(layer_sizes, (str, bytes)) or not hasattr(layer_sizes, "__iter__"):
        raise TypeError(f"layer_sizes must be a sequence of positive ints, got {layer_sizes!r}")
    sizes = tuple(layer_sizes)
    if not sizes:
        raise ValueError("layer_sizes must not be empty")
    for size in sizes:
        if not _is_int(size):
            raise TypeError(f"layer_sizes must hold ints, got {size!r} in {sizes!r}")
        if size < 1:
            raise ValueError(f"layer_sizes must be positive, got {size} in {sizes!r}")
    sizes = tuple(int(s) for s in sizes)
    if sizes[-1] != 1:
        sizes = (*sizes, 1)
    side_info_size = renamed_argument(side_info_size, input_size, "side_info_size", "input_size")
    if not _is_int(side_info_size):
        raise TypeError(f"side_info_size must be an int, got {side_info_size!r}")
    if side_info_size < 1:
        raise ValueError(f"side_info_size must be positive, got {side_info_size}")
    if not _is_int(context_map_size):
        raise TypeError(f"context_map_size must be an int, got {context_map_size!r}")
    if context_map_size < 0:
        raise ValueError(f"context_map_size must be non-negative, got {context_map_size}")
    if context_map_size > 40:
        raise ValueError(
            f"context_map_size={context_map_size} gives 2**{context_map_size} weight rows per "
            "neuron, far more than fits in memory"
        )
    if not _is_int(num_classes):
        raise TypeError(f"num_classes must be an int, got {num_classes!r}")
    if num_classes < 2:
        raise ValueError(f"num_classes must be at least 2, got {num_classes}")
    if base_prediction_size is None:
        base_prediction_size = side_info_size
    if not _is_int(base_prediction_size) or base_prediction_size < 1:
        raise ValueError(
            f"base_prediction_size must be a positive int, got {base_prediction_size!r}"
        )
    for name, flag in (("bias", bias), ("context_bias", context_bias)):
        if not isinstance(flag, (bool, np.bool_)):
            raise TypeError(f"{name} must be a bool, got {flag!r}")
    if hyperplane_normalize is not None and not isinstance(hyperplane_normalize, (bool, np.bool_)):
        raise TypeError(
            f"hyperplane_normalize must be a bool or None, got {hyperplane_normalize!r}"
        )
    try:
        dtype_name = np.dtype(dtype).name
    except TypeError as err:
        raise TypeError(f"dtype must be one of {DTYPES}, got {dtype!r}") from err
    if dtype_name not in DTYPES:
        raise ValueError(f"dtype must be one of {DTYPES}, got {dtype_name!r}")
    if not _is_real(pred_clipping) or not math.isfinite(pred_clipping):
        raise TypeError(f"pred_clipping must be a float in (0, 0.5), got {pred_clipping!r}")
    if not 0.0 < pred_clipping < 0.5:
        raise ValueError(f"pred_clipping must be in (0, 0.5), got {pred_clipping}")
    smallest = smallest_pred_clipping(dtype_name)
    if pred_clipping < smallest:
        raise ValueError(
            f"pred_clipping={pred_clipping} is too small for {dtype_name}: 1 - pred_clipping "
            f"must stay a {dtype_name} below 1 with a finite logit; the smallest allowed value "
            f"for {dtype_name} is {smallest:.6g} (np.finfo({dtype_name}).epsneg)"
        )
    if not _is_real(weight_clipping):
        raise TypeError(f"weight_clipping must be a positive float, got {weight_clipping!r}")
    if not (math.isfinite(weight_clipping) and weight_clipping > 0):
        raise ValueError(f"weight_clipping must be a positive finite float, got {weight_clipping}")
    tiny = float(np.finfo(dtype_name).tiny)
    if weight_clipping < tiny:
        raise ValueError(
            f"weight_clipping={weight_clipping} is subnormal in {dtype_name}: CPUs flush it to "
            f"zero, which would clip every weight to 0; the smallest allowed value is "
            f"{tiny:.6g} (np.finfo({dtype_name}).tiny)"
        )
    bias_scale = _check_bias_scale(hyperplane_bias_scale, bool(context_bias), dtype_name)
    config = GLNConfig(
        layer_sizes=sizes,
        side_info_size=int(side_info_size),
        context_map_size=int(context_map_size),
        num_classes=int(num_classes),
        base_prediction_size=int(base_prediction_size),
        bias=bool(bias),
        context_bias=bool(context_bias),
        pred_clipping=float(pred_clipping),
        weight_clipping=float(weight_clipping),
        dtype=dtype_name,
        hyperplane_normalize=None if hyperplane_normalize is None else bool(hyperplane_normalize),
        hyperplane_bias_scale=bias_scale,
    )
    largest_sum = config.weight_clipping * max(config.layer_input_sizes()) * max_logit(config)
    if not (config.weight_clipping < largest_finite(dtype_name) > largest_sum):
        raise ValueError(
            f"weight_clipping={weight_clipping} is too large for {dtype_name}: a neuron's "
            f"weighted sum of up to {max(config.layer_input_sizes())} logits of magnitude up to "
            f"{max_logit(config):.4g} would reach {largest_sum:.4g}, beyond the largest "
            f"{dtype_name} ({largest_finite(dtype_name):.4g})"
        )
    needed = config.state_nbytes()
    limit = _memory_limit_bytes()
    if needed > limit:
        raise ValueError(
            f"this configuration needs {needed / 2**30:.1f} GiB for its state, more than the "
            f"{limit / 2**30:.1f} GiB of memory on this host; reduce context_map_size "
            "(each step doubles the weight tables), layer_sizes or num_classes"
        )
    return config
