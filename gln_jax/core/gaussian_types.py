"""Static configuration of a Gaussian GLN (Budden et al., 2020): a frozen, hashable dataclass.

The state is the Bernoulli family's :class:`~gln_jax.core.types.GLNState` (same field names,
so one checkpoint format and one gating module serve both families); only the config differs.
The leading axis of every state array runs over the ``C`` outputs of a multi-output regressor
(``config.num_models == num_outputs``).
"""

from __future__ import annotations

import dataclasses
import math
import warnings

import numpy as np

from gln_jax.core.types import (
    DEFAULT_CONTEXT_MAP_SIZE,
    DEFAULT_DTYPE,
    StaticConfig,
    _is_int,
    _is_real,
    _memory_limit_bytes,
    largest_finite,
    make_config,
    register_static_config,
    renamed_argument,
)

# Named defaults of the Gaussian family, for standardised features and targets (the paper's
# encoding: each feature a Gaussian of constant variance; three bias Gaussians at -1, 0, 1 of
# unit variance). The variance range [0.1, 10] of a standardised target keeps one pass stable
# at rates up to about 1e-2 (DeepMind's 1e5 upper bound let predictions diverge there).
DEFAULT_GAUSSIAN_LEARNING_RATE = 3e-3
DEFAULT_INPUT_SIGMA_SQ = 1.0
DEFAULT_BIAS_LEN = 3
DEFAULT_BIAS_MAX_MU = 1.0
DEFAULT_BIAS_SIGMA_SQ = 1.0
DEFAULT_MIN_SIGMA_SQ = 0.1
DEFAULT_MAX_SIGMA_SQ = 10.0
DEFAULT_GAUSSIAN_WEIGHT_CLIPPING = 1e3

# Ranges the facade and the estimator enforce. A rate above MAX_GAUSSIAN_LEARNING_RATE moves a
# neuron's precision across its whole range in one step on standardised data (one pass already
# diverges at 0.1 on scikit-learn's diabetes set); targets beyond TARGET_LIMIT_SIGMAS standard
# deviations of the widest predictive variance (plus the bias means) are raw, unstandardised
# targets, whose squared errors drive the update to divergence (diabetes' 25..346: RMSE 1e10).
MAX_GAUSSIAN_LEARNING_RATE = 1.0
TARGET_LIMIT_SIGMAS = 10.0


def magnitude_limit(dtype) -> float:
    """The largest precision ``1 / sigma^2``, variance and mean magnitude a model of ``dtype``
    takes: ``largest_finite(dtype) ** 0.25`` (about 1.4e9 for float32, 1.2e77 for float64).

    With precisions ``a`` and means ``mu`` both below it, the products of the update
    (``a^2 mu`` summed over inputs, ``mu^2 a``) stay below ``largest ** 0.75``: finite for any
    layer width.
    """
    return largest_finite(dtype) ** 0.25


def target_limit(config) -> float:
    """The largest target magnitude a model learns: ``TARGET_LIMIT_SIGMAS`` standard deviations
    of ``max_sigma_sq`` plus ``bias_max_mu`` (about 32.6 with the defaults)."""
    return TARGET_LIMIT_SIGMAS * math.sqrt(config.max_sigma_sq) + config.bias_max_mu


def check_gaussian_learning_rate(learning_rate) -> None:
    """Raises ``ValueError`` for a constant rate above ``MAX_GAUSSIAN_LEARNING_RATE`` (a
    schedule is checked by the caller per value)."""
    if callable(learning_rate) or not _is_real(learning_rate):
        return
    if float(learning_rate) > MAX_GAUSSIAN_LEARNING_RATE:
        raise ValueError(
            f"learning_rate must be in (0, {MAX_GAUSSIAN_LEARNING_RATE:g}] for a Gaussian GLN, "
            f"got {learning_rate}: larger steps move a neuron's precision across its whole "
            "range at once and diverge (rates of 1e-3..1e-2 suit standardised data)"
        )


@register_static_config
@dataclasses.dataclass(frozen=True)
class GaussianConfig(StaticConfig):
    """Static, hashable hyperparameters of a Gaussian GLN. Build it with :func:`make_config`.

    Attributes:
        layer_sizes: neurons per layer; always ends in 1.
        side_info_size: width ``N`` of the side information the gating looks at.
        context_map_size: hyperplanes per neuron ``H``; ``2**H`` rows per neuron.
        num_outputs: ``C``, regression targets per example (one GLN each, vmapped).
        base_prediction_size: width ``P`` of the input means fed to the first layer.
        input_sigma_sq: the constant variance given to every input mean.
        bias_len: bias Gaussians appended to every layer's inputs.
        bias_max_mu: their means are ``linspace(-bias_max_mu, bias_max_mu, bias_len)``.
        bias_sigma_sq: their variance.
        min_sigma_sq, max_sigma_sq: every neuron's output variance is kept in this range by
            projecting its active weight row.
        context_bias: random unit normals with ``N(0, 1)`` offsets if true; Gaussian normals
            with zero offsets if false.
        weight_clipping: weights are clipped into ``[-weight_clipping, weight_clipping]``.
        dtype: ``"float32"`` or ``"float64"``.
    """

    layer_sizes: tuple[int, ...]
    side_info_size: int
    context_map_size: int = DEFAULT_CONTEXT_MAP_SIZE
    num_outputs: int = 1
    base_prediction_size: int = 0
    input_sigma_sq: float = DEFAULT_INPUT_SIGMA_SQ
    bias_len: int = DEFAULT_BIAS_LEN
    bias_max_mu: float = DEFAULT_BIAS_MAX_MU
    bias_sigma_sq: float = DEFAULT_BIAS_SIGMA_SQ
    min_sigma_sq: float = DEFAULT_MIN_SIGMA_SQ
    max_sigma_sq: float = DEFAULT_MAX_SIGMA_SQ
    context_bias: bool = True
    weight_clipping: float = DEFAULT_GAUSSIAN_WEIGHT_CLIPPING
    dtype: str = DEFAULT_DTYPE

    @property
    def family(self) -> str:
        """The neuron family, as recorded in checkpoints."""
        return "gaussian"

    @property
    def input_size(self) -> int:
        """Deprecated name of :attr:`side_info_size`."""
        warnings.warn(
            "GaussianConfig.input_size is deprecated: the side information's width is "
            "GaussianConfig.side_info_size",
            DeprecationWarning,
            stacklevel=2,
        )
        return self.side_info_size

    @property
    def num_models(self) -> int:
        """Size of the leading axis of the state: one GLN per output."""
        return self.num_outputs

    @property
    def num_contexts(self) -> int:
        """Rows of each neuron's weight table, ``2**context_map_size``."""
        return 2**self.context_map_size

    def layer_input_sizes(self) -> tuple[int, ...]:
        """Inputs of each layer, the bias Gaussians included."""
        widths = (self.base_prediction_size, *self.layer_sizes[:-1])
        return tuple(w + self.bias_len for w in widths)

    def state_nbytes(self) -> int:
        """Bytes the state of this configuration occupies."""
        itemsize = np.dtype(self.dtype).itemsize
        total = 0
        for neurons, inputs in zip(self.layer_sizes, self.layer_input_sizes(), strict=True):
            rows = neurons * self.num_models
            total += rows * self.num_contexts * inputs
            total += rows * self.context_map_size * (self.side_info_size + 1)
        return total * itemsize


def _positive(name: str, value) -> float:
    if not _is_real(value):
        raise TypeError(f"{name} must be a positive float, got {value!r}")
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a positive finite float, got {value}")
    return float(value)


def make_gaussian_config(
    layer_sizes,
    side_info_size=None,
    context_map_size=DEFAULT_CONTEXT_MAP_SIZE,
    num_outputs=1,
    base_prediction_size=None,
    input_sigma_sq=DEFAULT_INPUT_SIGMA_SQ,
    bias_len=DEFAULT_BIAS_LEN,
    bias_max_mu=DEFAULT_BIAS_MAX_MU,
    bias_sigma_sq=DEFAULT_BIAS_SIGMA_SQ,
    min_sigma_sq=DEFAULT_MIN_SIGMA_SQ,
    max_sigma_sq=DEFAULT_MAX_SIGMA_SQ,
    context_bias=True,
    weight_clipping=DEFAULT_GAUSSIAN_WEIGHT_CLIPPING,
    dtype=DEFAULT_DTYPE,
    *,
    input_size=None,
) -> GaussianConfig:
    """Validates hyperparameters and builds a :class:`GaussianConfig`.

    The fields shared with the Bernoulli family (layer sizes, widths, gating, clipping, dtype)
    are checked by :func:`gln_jax.make_config`; the Gaussian ones here.

    Args:
        layer_sizes: sequence of positive ints; a one-neuron output layer is appended when it
            does not end in 1.
        side_info_size: positive int, width ``N`` of the side information (the example).
        context_map_size: non-negative int, hyperplanes per neuron.
        num_outputs: positive int, targets per example.
        base_prediction_size: width of the input means; ``None`` means ``side_info_size``.
        input_sigma_sq, bias_sigma_sq: positive floats (see the attributes), in
            ``[1 / L, L]`` with ``L = magnitude_limit(dtype)`` (1.4e9 for float32).
        bias_max_mu: positive float, at most ``L``.
        bias_len: non-negative int.
        min_sigma_sq, max_sigma_sq: floats in ``[1 / L, L]``, ``min_sigma_sq < max_sigma_sq``.
        context_bias: random non-zero hyperplane offsets.
        weight_clipping: positive float.
        dtype: "float32" or "float64".
        input_size: deprecated name of ``side_info_size`` (warns).

    Returns:
        The validated config.

    Raises:
        ValueError, TypeError: naming the argument and what was expected.

    Example:
        >>> make_gaussian_config([8, 8], 10).layer_sizes
        (8, 8, 1)
    """
    side_info_size = renamed_argument(side_info_size, input_size, "side_info_size", "input_size")
    shared = make_config(
        layer_sizes,
        side_info_size,
        context_map_size=context_map_size,
        base_prediction_size=base_prediction_size,
        context_bias=context_bias,
        weight_clipping=weight_clipping,
        dtype=dtype,
    )
    if not _is_int(num_outputs):
        raise TypeError(f"num_outputs must be an int, got {num_outputs!r}")
    if num_outputs < 1:
        raise ValueError(f"num_outputs must be positive, got {num_outputs}")
    if not _is_int(bias_len):
        raise TypeError(f"bias_len must be an int, got {bias_len!r}")
    if bias_len < 0:
        raise ValueError(f"bias_len must be non-negative, got {bias_len}")
    floats = {
        name: _positive(name, value)
        for name, value in (
            ("input_sigma_sq", input_sigma_sq),
            ("bias_max_mu", bias_max_mu),
            ("bias_sigma_sq", bias_sigma_sq),
            ("min_sigma_sq", min_sigma_sq),
            ("max_sigma_sq", max_sigma_sq),
        )
    }
    limit = magnitude_limit(shared.dtype)
    for name in ("input_sigma_sq", "bias_sigma_sq", "min_sigma_sq", "max_sigma_sq"):
        if not 1.0 / limit <= floats[name] <= limit:
            raise ValueError(
                f"{name} must be in [{1.0 / limit:.3g}, {limit:.3g}] for {shared.dtype} (its "
                f"reciprocal, squared and summed, must stay finite), got {floats[name]}"
            )
    if floats["bias_max_mu"] > limit:
        raise ValueError(
            f"bias_max_mu must be in (0, {limit:.3g}] for {shared.dtype}, got {bias_max_mu}"
        )
    if not floats["min_sigma_sq"] < floats["max_sigma_sq"]:
        raise ValueError(
            f"min_sigma_sq must be below max_sigma_sq, got {min_sigma_sq} and {max_sigma_sq}"
        )
    config = GaussianConfig(
        layer_sizes=shared.layer_sizes,
        side_info_size=shared.side_info_size,
        context_map_size=shared.context_map_size,
        num_outputs=int(num_outputs),
        base_prediction_size=shared.base_prediction_size,
        bias_len=int(bias_len),
        context_bias=shared.context_bias,
        weight_clipping=shared.weight_clipping,
        dtype=shared.dtype,
        **floats,
    )
    needed = config.state_nbytes()
    limit = _memory_limit_bytes()
    if needed > limit:
        raise ValueError(
            f"this configuration needs {needed / 2**30:.1f} GiB for its state, more than the "
            f"{limit / 2**30:.1f} GiB of memory on this host; reduce context_map_size, "
            "layer_sizes or num_outputs"
        )
    return config
