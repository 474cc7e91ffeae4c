"""The facades' input pipeline: one call's examples -> base predictions and side information.

A facade owns one :class:`SideInfoPipeline`. It knows the example width (``input_size``), the
base predictor and the optional online transform of the side information with its running
statistics; :meth:`SideInfoPipeline.prepare` checks one call's arguments and returns what the
engine takes (:class:`Prepared`), touching nothing: the transform's new statistics are part
of the answer and are committed by :meth:`SideInfoPipeline.commit` only once training has
succeeded.

Example:
    >>> prepared = pipeline.prepare(config, x, targets, learn=True)  # doctest: +SKIP
    >>> runner.train(prepared.inputs, prepared.side_info, prepared.targets, rates)  # +SKIP
    >>> pipeline.commit(prepared.transform_state)  # doctest: +SKIP
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from typing import NamedTuple

import jax
import numpy as np

from gln_jax.api import validation
from gln_jax.core import _transforms as transforms
from gln_jax.core.types import GLNConfig, GLNState


class Prepared(NamedTuple):
    """One call's arguments, checked and converted.

    Attributes:
        inputs: ``[B, P]`` base predictions in the config's dtype.
        side_info: ``[B, N]`` the side information the gating sees (transformed), or ``None``
            when it is the inputs themselves (no ``side_info=``, base predictor or transform).
        targets: the checked targets, or ``None`` (predict only).
        transform_state: the transform's statistics after this call's examples (``None``
            without a transform); commit them once the call has succeeded.
    """

    inputs: np.ndarray
    side_info: np.ndarray | None
    targets: np.ndarray | None
    transform_state: transforms.TransformState | None


class SideInfoPipeline:
    """The example width, base predictor and side-information transform of one model.

    Args:
        config: the model's config (``side_info_size`` ``N``, ``base_prediction_size`` ``P``).
        input_size: width of an example (``predict``'s input).
        base_predictor: host-side ``[B, input_size] -> [B, P]`` callable, or ``None`` (the
            examples are the base predictions).
        transform: ``None``, ``"center"``, ``"standardize"`` or a
            :class:`~gln_jax.core._transforms.TransformConfig`.
        transform_state: the transform's statistics to resume from (``None``: fresh).
        warn_range: warn once when default base predictions leave [0, 1] (the Bernoulli
            family, whose inputs are probabilities).
        side_info_allowed: whether calls may pass ``side_info=`` (the Gaussian family gates on
            its examples only).
        max_abs: a further bound on the side information's magnitude, besides what the
            gating takes (the Gaussian family's inputs: their precision-weighted sums).

    Raises:
        ValueError, TypeError: a transform that does not fit the model.
    """

    def __init__(
        self,
        config: GLNConfig,
        input_size: int,
        base_predictor: Callable | None = None,
        transform=None,
        transform_state: transforms.TransformState | None = None,
        *,
        warn_range: bool = True,
        side_info_allowed: bool = True,
        max_abs: float = math.inf,
    ):
        transform = validation.check_side_info_transform(transform)
        if transform is not None and transform.base_gain is not None:
            if base_predictor is not None:
                raise ValueError(
                    "a side_info_transform with base_gain gives the base predictions: "
                    "pass no base_predictor"
                )
            if config.base_prediction_size != config.side_info_size:
                raise ValueError(
                    "a side_info_transform with base_gain needs side information as wide as "
                    f"the examples ({config.base_prediction_size}), got side_info_size "
                    f"{config.side_info_size}"
                )
        self.input_size = int(input_size)
        self.base_predictor = base_predictor
        self.transform = transform
        if transform is None:
            self.transform_state = None
        elif transform_state is None:
            fresh = transforms.init(config.side_info_size, config.dtype)
            self.transform_state = jax.tree.map(np.asarray, fresh)
        else:
            self.transform_state = jax.tree.map(np.asarray, transform_state)
        self.warn_range = warn_range
        self.side_info_allowed = side_info_allowed
        self.max_abs = max_abs
        self._warned_range = False
        self._limit: tuple[str, float] | None = None  # (dtype, largest side information)

    @property
    def gates_on_examples(self) -> bool:
        """Whether the gating sees the examples themselves when no ``side_info=`` is given."""
        return self.transform is None or self.transform.base_gain is None

    def side_info_limit(self, config: GLNConfig, state: Callable[[], GLNState]) -> float:
        """The largest side-information magnitude the gating takes without overflow.

        Computed once per dtype from the fixed hyperplanes (see
        :func:`~gln_jax.api.validation.side_info_limit`); ``state`` gives the reference state
        when it must be computed.
        """
        if self._limit is None or self._limit[0] != config.dtype:
            layers = state().layers
            limit = validation.side_info_limit(
                config, [x.hyperplanes for x in layers], [x.hyperplane_bias for x in layers]
            )
            self._limit = (config.dtype, min(limit, self.max_abs))
        return self._limit[1]

    def prepare(
        self,
        config: GLNConfig,
        input,
        target=None,
        side_info=None,
        *,
        learn: bool,
        limit: float = math.inf,
        check_targets: Callable[[object, int], np.ndarray],
    ) -> Prepared:
        """Checks and converts one call's arguments; changes nothing.

        Args:
            config: the model's config (its current dtype).
            input: ``[B, input_size]`` examples (or one ``[input_size]`` example).
            target: optional targets, checked by ``check_targets(target, B)``.
            side_info: optional ``[B, N]`` side information.
            learn: whether the call trains (the transform's statistics then learn from each
                example before it is used; they are only applied otherwise).
            limit: the largest side-information magnitude allowed (:meth:`side_info_limit`),
                checked on the raw side information and, with a transform, on the transformed
                side information the gating sees.
            check_targets: the family's target check.

        Returns:
            The :class:`Prepared` arguments.

        Raises:
            ValueError, TypeError: naming the bad argument.
        """
        if side_info is not None and not self.side_info_allowed:
            raise ValueError(
                "this model gates on its (standardised) input: side_info= is not supported"
            )
        examples, _ = validation.check_examples(
            input,
            width=self.input_size,
            dtype=config.dtype,
            max_abs=limit if side_info is None else None,  # the examples are the side info
        )
        given = side_info is not None
        if not given:
            if self.input_size != config.side_info_size:
                raise ValueError(
                    f"this model's gating takes side information of width "
                    f"{config.side_info_size} (side_info_size) and its examples have width "
                    f"{self.input_size}: pass side_info="
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
        targets = None if target is None else check_targets(target, examples.shape[0])
        gating, transform_state = self._transform(raw, learn and targets is not None)
        if self.transform is not None:
            _check_transformed(gating, limit, config)
        if self.transform is not None and self.transform.base_gain is not None:
            inputs = np.asarray(transforms.base_predictions(gating, config=self.transform))
            inputs = inputs.astype(config.dtype, copy=False)
        self._warn_range(examples, config)  # only once every check has passed
        plain = not given and self.transform is None and self.base_predictor is None
        return Prepared(inputs, None if plain else gating, targets, transform_state)

    def commit(self, transform_state: transforms.TransformState | None) -> None:
        """Keeps the transform's statistics of a call that has succeeded."""
        if transform_state is not None:
            self.transform_state = transform_state

    def _transform(self, raw: np.ndarray, learn: bool):
        """Side information through the transform: online (``learn``) or with frozen statistics."""
        transform, state = self.transform, self.transform_state
        if transform is None:
            return raw, None
        if learn:
            state, gating = transforms.transform_stream(state, raw, config=transform)
            return gating, jax.tree.map(np.asarray, state)
        return transforms.apply_batch(state, raw, config=transform), state

    def _warn_range(self, examples: np.ndarray, config: GLNConfig) -> None:
        """Warns once per model when the default base predictions leave [0, 1].

        Without a ``base_predictor`` the inputs are the base predictions: values outside
        [0, 1] (raw ``uint8`` pixels, standardised features) are silently clipped to
        ``[eps, 1 - eps]``. Side information may be any real numbers and never warns.
        """
        if not self.warn_range or self.base_predictor is not None or self._warned_range:
            return
        if not examples.size:
            return
        low, high = float(examples.min()), float(examples.max())
        if low >= 0.0 and high <= 1.0:
            return
        self._warned_range = True
        eps = config.pred_clipping
        warnings.warn(
            f"inputs range from {low:g} to {high:g}, outside [0, 1]: they are the base "
            f"predictions, so they are clipped into [{eps:g}, {1 - eps:g}]; scale them into "
            "[0, 1] first (e.g. uint8 pixels / 255) or pass a base_predictor (warned once "
            "per model)",
            UserWarning,
            stacklevel=5,
        )


def _check_transformed(gating: np.ndarray, limit: float, config: GLNConfig) -> None:
    """Raises when the transformed side information leaves what the gating takes.

    A transform's ``scale`` (or a small standard deviation) can push side information that
    passed the raw check past ``limit``, or past the largest finite value of the dtype.
    """
    if not gating.size:
        return
    largest = float(np.max(np.abs(gating)))
    if not (largest <= limit and math.isfinite(largest)):  # also catches nan
        raise ValueError(
            f"the transformed side information reaches magnitude {largest:g}; above "
            f"{limit:.4g} this model's gating projections (side information times "
            f"hyperplanes) could overflow {config.dtype}: lower the side_info_transform's "
            "scale or rescale the side information"
        )
