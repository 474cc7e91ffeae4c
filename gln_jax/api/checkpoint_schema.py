"""What a checkpoint holds: its members, their dtypes and shapes, and the format's versions.

Layout (a zip archive of ``.npy`` members; nothing in it is ever executed or unpickled):

- ``config``: a JSON string with ``format_version``, ``family`` (version 2: ``"bernoulli"`` or
  ``"gaussian"``; absent means ``"bernoulli"``, as in every version-1 file), every field of the
  family's config (:class:`~gln_jax.GLNConfig` or
  :class:`~gln_jax.core.gaussian_types.GaussianConfig`), ``learning_rate`` (a float, or
  ``null`` when the model used a schedule) and ``has_base_predictor``;
- ``step``: the update counter, int64 scalar;
- ``layers/{i}/weights``, ``layers/{i}/hyperplanes``, ``layers/{i}/hyperplane_bias``.

A ``base_predictor`` or a learning-rate schedule is code, so it is not stored: pass it again
when loading. Every member must be one the stored config expects (:func:`expected_members`,
:func:`side_info_members`); anything else is refused unread.

Version 2 adds, for side information (all optional; a version-1 file reads with the defaults):

- config key ``example_size``: the facade's example width (default: the side information's
  width, which version 1 always equals);
- config key ``side_info_transform``: the transform's settings as a JSON object, or ``null``
  (default ``null``);
- ``side_info/count``, ``side_info/mean``, ``side_info/m2``: its running statistics, present
  exactly when the transform is.

Version 3 gives each width one name, as the library does: the config key ``side_info_size`` is
the side information's width ``N`` (``input_size`` in versions 1 and 2) and ``input_size`` is
the facade's example width (``example_size`` in version 2). Files of versions 1 and 2 are read
with their keys renamed (:func:`renamed_widths`). Version 3 also adds, for a Gaussian model
whose predictive standard deviations were calibrated (optional; absent means a scale of 1):

- ``calibration/std_scale``: float64 ``[C]``, the positive factor on every output's standard
  deviation (:meth:`gln_jax.GaussianGLN.calibrate`).

The Bernoulli config keys ``hyperplane_normalize`` and ``hyperplane_bias_scale`` record how the
stored hyperplanes were drawn (:func:`~gln_jax.make_config`); they do not change what the state
means (the hyperplanes themselves are stored), so they need no new version. A file without
them, of any version, reads with their defaults (``hyperplane_normalize`` equal to
``context_bias``, ``hyperplane_bias_scale`` 1.0): how every earlier release drew its
hyperplanes. Releases before these keys refuse a file that holds them (an unknown config key).
"""

from __future__ import annotations

import json
from typing import NamedTuple

import numpy as np

from gln_jax.api.npz_reader import bad
from gln_jax.core import _transforms as transforms
from gln_jax.core.gaussian_types import make_gaussian_config
from gln_jax.core.numerics import STEP_MAX
from gln_jax.core.types import GLNConfig, GLNState, LayerState, make_config

FORMAT_VERSION = 3
#: Versions this gln-jax reads; version 1 predates the ``family`` field (always Bernoulli) and
#: the side-information block (defaults apply); versions 1 and 2 name the widths differently.
READABLE_VERSIONS = (1, 2, 3)
#: The neuron families a checkpoint may hold, with the function that rebuilds their config.
FAMILIES = {"bernoulli": make_config, "gaussian": make_gaussian_config}
#: Longest ``config`` JSON accepted, in characters (a real one is well under 1,000).
MAX_CONFIG_CHARS = 1 << 16
#: Largest step a checkpoint may hold (its int64 member). A state's int32 ``step`` saturates at
#: ``2**31 - 1``; the facades keep the exact count and write it here.
MAX_STEP = np.iinfo(np.int64).max
#: The side-information members, in the order of the transform state's fields.
SIDE_INFO_KEYS = tuple(f"side_info/{f}" for f in transforms.TransformState._fields)
#: The calibration member of a Gaussian model (version 3): its standard deviations' scale.
STD_SCALE_KEY = "calibration/std_scale"


class SideInfo(NamedTuple):
    """The facade's side-information settings (format version 2 and later).

    Attributes:
        input_size: width of an example (``predict``'s input).
        transform: the transform's :class:`~gln_jax.core._transforms.TransformConfig`, or
            ``None``.
        transform_state: its :class:`~gln_jax.core._transforms.TransformState` (NumPy), or
            ``None``.
    """

    input_size: int
    transform: transforms.TransformConfig | None = None
    transform_state: transforms.TransformState | None = None


class Checkpoint(NamedTuple):
    """What a checkpoint holds: the config, a NumPy state and the facade's extras."""

    config: GLNConfig
    state: GLNState
    learning_rate: float | None
    has_base_predictor: bool
    side_info: SideInfo | None = None
    #: The exact count of examples learned (``state.step`` stops at ``2**31 - 1``).
    step: int = 0
    #: A Gaussian model's factor on its standard deviations, float64 ``[C]``, or ``None``
    #: (not calibrated: a scale of 1).
    std_scale: np.ndarray | None = None


class Header(NamedTuple):
    """The ``config`` member, checked: the config and the facade's settings stored with it.

    Attributes:
        version: the file's ``format_version``.
        config: the rebuilt config.
        learning_rate: the constant rate, or ``None`` (a schedule).
        has_base_predictor: whether the model used a ``base_predictor``.
        side_meta: the side-information keys (``input_size``, ``side_info_transform``) found.
    """

    version: int
    config: GLNConfig
    learning_rate: float | None
    has_base_predictor: bool
    side_meta: dict


def expected_shapes(config: GLNConfig) -> list[dict[str, tuple[int, ...]]]:
    """Shape of every state array of ``config``, per layer and field."""
    c, m, n = config.num_models, config.context_map_size, config.side_info_size
    return [
        {
            "weights": (c, k, config.num_contexts, inputs),
            "hyperplanes": (c, k, m, n),
            "hyperplane_bias": (c, k, m),
        }
        for k, inputs in zip(config.layer_sizes, config.layer_input_sizes(), strict=True)
    ]


def expected_members(config: GLNConfig) -> dict[str, tuple[np.dtype, tuple[int, ...]]]:
    """Every array member a checkpoint of ``config`` holds besides ``config`` and ``step``.

    Returns:
        ``{member name: (dtype, shape)}``; a member not listed here is refused unread, so a
        field added to the format is one entry here (and one in :func:`state_members`).
    """
    dtype = np.dtype(config.dtype)
    return {
        f"layers/{i}/{field}": (dtype, shape)
        for i, shapes in enumerate(expected_shapes(config))
        for field, shape in shapes.items()
    }


def side_info_members(config: GLNConfig) -> dict:
    """The optional side-information members (version 2): ``{name: (dtype check, shape)}``."""
    dtype = np.dtype(config.dtype)
    n = (config.side_info_size,)
    return {
        "side_info/count": (lambda d: d.kind in "iu" and d.itemsize <= 8, ()),
        "side_info/mean": (lambda d, t=dtype: d == t, n),
        "side_info/m2": (lambda d, t=dtype: d == t, n),
    }


def calibration_members(config: GLNConfig) -> dict:
    """The optional calibration member of a Gaussian model (version 3):
    ``{name: (dtype check, shape)}``; none for the Bernoulli family."""
    if config.family != "gaussian":
        return {}
    return {STD_SCALE_KEY: (lambda d: d == np.dtype(np.float64), (config.num_outputs,))}


def read_std_scale(path, array: np.ndarray | None) -> np.ndarray | None:
    """The calibration member, checked: finite and positive (``None`` when absent)."""
    if array is None:
        return None
    if not (np.isfinite(array).all() and (array > 0).all()):
        raise bad(path, f"{STD_SCALE_KEY!r} holds entries that are not finite and positive")
    return array


def is_config(dtype: np.dtype) -> bool:
    """Whether ``dtype`` may hold the ``config`` member (a short enough unicode string)."""
    return dtype.kind == "U" and dtype.itemsize // 4 <= MAX_CONFIG_CHARS


def is_step(dtype: np.dtype) -> bool:
    """Whether ``dtype`` may hold the ``step`` member (an integer of at most 64 bits)."""
    return dtype.kind in "iu" and dtype.itemsize <= 8


def config_member(
    config: GLNConfig,
    *,
    learning_rate: float | None,
    has_base_predictor: bool,
    side_info: SideInfo | None,
) -> str:
    """The ``config`` member that :func:`read_header` reads back, as JSON."""
    meta = dict(config._asdict(), layer_sizes=list(config.layer_sizes))
    meta.update(
        format_version=FORMAT_VERSION,
        family=config.family,
        learning_rate=None if learning_rate is None else float(learning_rate),
        has_base_predictor=bool(has_base_predictor),
    )
    if side_info is not None:
        meta["input_size"] = int(side_info.input_size)
        meta["side_info_transform"] = (
            None if side_info.transform is None else side_info.transform._asdict()
        )
    return json.dumps(meta)


def state_members(
    state: GLNState,
    side_info: SideInfo | None,
    step: int | None = None,
    std_scale: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """The array members of a checkpoint: ``step`` (``step``, else the state's), every layer's
    fields, side information and a Gaussian model's ``std_scale`` (when not ``None``)."""
    step = int(state.step) if step is None else int(step)
    if not 0 <= step <= MAX_STEP:
        raise ValueError(f"step {step} is outside [0, {MAX_STEP}]")
    arrays = {"step": np.array(step, np.int64)}
    if std_scale is not None:
        arrays[STD_SCALE_KEY] = np.asarray(std_scale, np.float64)
    if side_info is not None and side_info.transform is not None:
        arrays.update(
            (key, np.asarray(value))
            for key, value in zip(SIDE_INFO_KEYS, side_info.transform_state, strict=True)
        )
    for i, layer in enumerate(state.layers):
        for field in LayerState._fields:
            arrays[f"layers/{i}/{field}"] = np.asarray(getattr(layer, field))
    return arrays


def read_header(path, text: str) -> Header:
    """Parses and checks the ``config`` member; renames the widths of versions 1 and 2.

    Raises:
        CheckpointError: not the expected JSON, an unknown version or family, keys of another
            version, an invalid config, or a learning rate that is not a positive float.
    """
    meta = _parse_meta(path, text)
    version = meta.pop("format_version")
    learning_rate = meta.pop("learning_rate")
    has_base_predictor = meta.pop("has_base_predictor")
    if isinstance(version, bool) or version not in READABLE_VERSIONS:
        raise bad(path, f"format_version {version!r}; this gln-jax reads {list(READABLE_VERSIONS)}")
    if not isinstance(has_base_predictor, bool):
        raise bad(path, f"has_base_predictor {has_base_predictor!r} is not true or false")
    newer = sorted(k for k in ("family", "example_size", "side_info_transform") if k in meta)
    if version == 1 and newer:
        raise bad(path, f"version-1 file with version-2 keys {newer}")
    if version == 3 and "example_size" in meta:
        raise bad(path, "version-3 file with the version-2 key 'example_size'")
    meta = renamed_widths(path, meta) if version < 3 else meta
    family = meta.pop("family", "bernoulli")
    if not isinstance(family, str) or family not in FAMILIES:
        raise bad(path, f"unknown family {family!r}; known: {sorted(FAMILIES)}")
    side_keys = ("input_size", "side_info_transform")
    side_meta = {key: meta.pop(key) for key in side_keys if key in meta}
    try:
        config = FAMILIES[family](**meta)
    except (TypeError, ValueError, OverflowError) as err:
        raise bad(path, f"its config is invalid ({err})") from err
    if learning_rate is not None and not (
        isinstance(learning_rate, (int, float))
        and not isinstance(learning_rate, bool)
        and np.isfinite(learning_rate)
        and learning_rate > 0
    ):
        raise bad(path, f"learning_rate {learning_rate!r} is not a positive float")
    return Header(version, config, learning_rate, has_base_predictor, side_meta)


def renamed_widths(path, meta: dict) -> dict:
    """A version-1 or -2 config with version 3's names: ``input_size`` (the side information's
    width then) becomes ``side_info_size``, ``example_size`` becomes ``input_size``."""
    if "side_info_size" in meta:
        raise bad(path, "a version-1 or -2 file with the version-3 key 'side_info_size'")
    renamed = dict(meta)
    if "input_size" in renamed:
        renamed["side_info_size"] = renamed.pop("input_size")
    if "example_size" in renamed:
        renamed["input_size"] = renamed.pop("example_size")
    return renamed


def _parse_meta(path, text: str) -> dict:
    try:
        meta = json.loads(text)
    except (json.JSONDecodeError, RecursionError) as err:
        raise bad(path, f"its config is not the expected JSON ({err})") from err
    if not isinstance(meta, dict):
        raise bad(
            path, f"its config is not the expected JSON (an object; got {type(meta).__name__})"
        )
    needed = ("format_version", "learning_rate", "has_base_predictor")
    missing = [key for key in needed if key not in meta]
    if missing:
        raise bad(path, f"its config is not the expected JSON (no {', '.join(missing)})")
    return meta


def check_layer(path, key: str, array: np.ndarray, config: GLNConfig) -> None:
    """A layer member's values: finite, and weights within ``weight_clipping``."""
    if not np.isfinite(array).all():
        raise bad(path, f"{key!r} contains NaN or inf")
    if key.endswith("/weights") and np.abs(array).max() > config.weight_clipping:
        raise bad(
            path,
            f"{key!r} holds weights outside [-weight_clipping, "
            f"weight_clipping] = ±{config.weight_clipping}",
        )


def check_step(path, value: int) -> int:
    """The stored step, which must be a non-negative int64."""
    if not 0 <= value <= MAX_STEP:
        raise bad(path, f"'step' is {value}, outside [0, {MAX_STEP}]")
    return value


def read_side_info(
    path, side_meta: dict, contents: dict, config: GLNConfig, has_base_predictor: bool
) -> SideInfo:
    """The side-information block, checked; defaults for a version-1 file.

    Args:
        path: the checkpoint (for messages).
        side_meta: the config's side-information keys (:attr:`Header.side_meta`).
        contents: the side-information members read (a subset of :data:`SIDE_INFO_KEYS`).
        config: the checkpoint's config.
        has_base_predictor: whether the model used a ``base_predictor``.
    """
    meta = dict(side_meta)
    input_size = meta.pop("input_size", config.side_info_size)
    settings = meta.pop("side_info_transform", None)
    if isinstance(input_size, bool) or not isinstance(input_size, int) or input_size < 1:
        raise bad(path, f"input_size {input_size!r} is not a positive int")
    if not has_base_predictor and input_size != config.base_prediction_size:
        raise bad(
            path,
            f"input_size {input_size} differs from base_prediction_size "
            f"{config.base_prediction_size} without a base_predictor",
        )
    present = [key for key in SIDE_INFO_KEYS if key in contents]
    if settings is None:
        if present:
            raise bad(path, f"entries {present} without a side_info_transform")
        return SideInfo(input_size)
    try:
        transform = transforms.make_transform(**settings)
    except (TypeError, ValueError) as err:
        raise bad(path, f"its side_info_transform is invalid ({err})") from err
    if len(present) != len(SIDE_INFO_KEYS):
        raise bad(path, f"side_info_transform without all of {list(SIDE_INFO_KEYS)}")
    count, mean, m2 = (contents[key] for key in SIDE_INFO_KEYS)
    n = (config.side_info_size,)
    if count.shape != () or not np.issubdtype(count.dtype, np.integer):
        raise bad(path, "'side_info/count' is not an integer scalar")
    if not 0 <= int(count) <= STEP_MAX:  # exact: compared as Python ints, never cast first
        raise bad(path, f"'side_info/count' is {int(count)}, outside [0, {STEP_MAX}]")
    for key, array in (("side_info/mean", mean), ("side_info/m2", m2)):
        if array.shape != n or array.dtype != np.dtype(config.dtype):
            raise bad(
                path,
                f"{key!r} has shape {array.shape} and dtype {array.dtype}, needs {n} "
                f"and {config.dtype}",
            )
        if not np.isfinite(array).all():
            raise bad(path, f"{key!r} contains NaN or inf")
    if (m2 < 0).any():
        raise bad(path, "'side_info/m2' has negative entries")
    limit = transforms.feature_limit(mean.dtype)
    if (np.abs(mean) > limit * (1 + 2**-10)).any():  # a running mean of checked features
        raise bad(path, f"'side_info/mean' has entries beyond the features' limit {limit:.3g}")
    if int(count) == 0 and (mean.any() or m2.any()):
        raise bad(path, "'side_info/count' is 0 but the mean or m2 is not")
    state = transforms.TransformState(np.asarray(count, np.int32), mean, m2)
    return SideInfo(input_size, transform, state)
