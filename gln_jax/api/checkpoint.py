"""Portable checkpoints: one ``.npz`` file any backend can write and any backend can read.

Layout (``np.load(path, allow_pickle=False)`` reads it; nothing in it is ever executed):

- ``config``: a JSON string with ``format_version``, every :class:`~gln_jax.GLNConfig` field,
  ``learning_rate`` (a float, or ``null`` when the model used a schedule) and
  ``has_base_predictor``;
- ``step``: the update counter, int64 scalar;
- ``layers/{i}/weights``, ``layers/{i}/hyperplanes``, ``layers/{i}/hyperplane_bias``.

A ``base_predictor`` or a learning-rate schedule is code, so it is not stored: pass it again
when loading.

Version 2 adds, for side information (all optional; a version-1 file reads with the defaults):

- config key ``example_size``: the facade's example width (default: the config's
  ``input_size``, the gates' width, which version 1 always equals);
- config key ``side_info_transform``: the transform's settings as a JSON object, or ``null``
  (default ``null``);
- ``side_info/count``, ``side_info/mean``, ``side_info/m2``: its running statistics, present
  exactly when the transform is.
"""

from __future__ import annotations

import json
import os
import tempfile
import zipfile
from typing import NamedTuple

import numpy as np

from gln_jax.core import transforms
from gln_jax.core.types import GLNConfig, GLNState, LayerState, make_config

FORMAT_VERSION = 2
#: Versions this gln-jax reads.
READABLE_VERSIONS = (1, 2)
_FIELDS = LayerState._fields


class SideInfo(NamedTuple):
    """The facade's side-information settings (format version 2).

    Attributes:
        example_size: width of an example (``predict``'s input).
        transform: the transform's :class:`~gln_jax.core.transforms.TransformConfig`, or
            ``None``.
        transform_state: its :class:`~gln_jax.core.transforms.TransformState` (NumPy), or
            ``None``.
    """

    example_size: int
    transform: transforms.TransformConfig | None = None
    transform_state: transforms.TransformState | None = None


_SIDE_KEYS = tuple(f"side_info/{f}" for f in transforms.TransformState._fields)


def _side_info_arrays(side_info: SideInfo | None) -> dict:
    if side_info is None or side_info.transform is None:
        return {}
    state = side_info.transform_state
    return {key: np.asarray(value) for key, value in zip(_SIDE_KEYS, state, strict=True)}


def _read_side_info(
    path, meta: dict, contents: dict, config: GLNConfig, has_base_predictor: bool
) -> SideInfo:
    """The version-2 side-information block, checked; defaults for a version-1 file."""
    example_size = meta.pop("example_size", config.input_size)
    settings = meta.pop("side_info_transform", None)
    if isinstance(example_size, bool) or not isinstance(example_size, int) or example_size < 1:
        raise _bad(path, f"example_size {example_size!r} is not a positive int")
    if not has_base_predictor and example_size != config.base_prediction_size:
        raise _bad(
            path,
            f"example_size {example_size} differs from base_prediction_size "
            f"{config.base_prediction_size} without a base_predictor",
        )
    present = [key for key in _SIDE_KEYS if key in contents]
    if settings is None:
        if present:
            raise _bad(path, f"entries {present} without a side_info_transform")
        return SideInfo(example_size)
    try:
        transform = transforms.make_transform(**settings)
    except (TypeError, ValueError) as err:
        raise _bad(path, f"its side_info_transform is invalid ({err})") from err
    if len(present) != len(_SIDE_KEYS):
        raise _bad(path, f"side_info_transform without all of {list(_SIDE_KEYS)}")
    count, mean, m2 = (contents[key] for key in _SIDE_KEYS)
    n = (config.input_size,)
    if count.shape != () or not np.issubdtype(count.dtype, np.integer) or count < 0:
        raise _bad(path, "'side_info/count' is not a non-negative integer scalar")
    for key, array in (("side_info/mean", mean), ("side_info/m2", m2)):
        if array.shape != n or array.dtype != np.dtype(config.dtype):
            raise _bad(
                path,
                f"{key!r} has shape {array.shape} and dtype {array.dtype}, needs {n} "
                f"and {config.dtype}",
            )
        if not np.isfinite(array).all():
            raise _bad(path, f"{key!r} contains NaN or inf")
    if (m2 < 0).any():
        raise _bad(path, "'side_info/m2' has negative entries")
    state = transforms.TransformState(np.asarray(count, np.int32), mean, m2)
    return SideInfo(example_size, transform, state)


class Checkpoint(NamedTuple):
    """What a checkpoint holds: the config, a NumPy state and the facade's extras."""

    config: GLNConfig
    state: GLNState
    learning_rate: float | None
    has_base_predictor: bool
    side_info: SideInfo | None = None


def expected_shapes(config: GLNConfig) -> list[dict[str, tuple[int, ...]]]:
    """Shape of every state array of ``config``, per layer and field."""
    c, m, n = config.num_models, config.context_map_size, config.input_size
    return [
        {
            "weights": (c, k, config.num_contexts, inputs),
            "hyperplanes": (c, k, m, n),
            "hyperplane_bias": (c, k, m),
        }
        for k, inputs in zip(config.layer_sizes, config.layer_input_sizes(), strict=True)
    ]


def save_checkpoint(
    path,
    config: GLNConfig,
    state: GLNState,
    *,
    learning_rate: float | None = None,
    has_base_predictor: bool = False,
    side_info: SideInfo | None = None,
) -> None:
    """Writes a checkpoint atomically (a temporary file renamed into place).

    Args:
        path: destination file (written exactly there; no suffix is added).
        config: the model's config.
        state: the model's state in the reference layout, any array type ``np.asarray`` reads.
        learning_rate: the constant rate, or ``None`` for a schedule.
        has_base_predictor: whether the model used a ``base_predictor``.
        side_info: the facade's example width and side-information transform (version 2);
            ``None``: examples are the side information, no transform.
    """
    meta = dict(config._asdict(), layer_sizes=list(config.layer_sizes))
    meta.update(
        format_version=FORMAT_VERSION,
        learning_rate=None if learning_rate is None else float(learning_rate),
        has_base_predictor=bool(has_base_predictor),
    )
    if side_info is not None:
        meta["example_size"] = int(side_info.example_size)
        meta["side_info_transform"] = (
            None if side_info.transform is None else side_info.transform._asdict()
        )
    arrays = {"config": np.array(json.dumps(meta)), "step": np.array(int(state.step), np.int64)}
    arrays.update(_side_info_arrays(side_info))
    for i, layer in enumerate(state.layers):
        for field in _FIELDS:
            arrays[f"layers/{i}/{field}"] = np.asarray(getattr(layer, field))
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".gln-", suffix=".npz.tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as handle:
            np.savez(handle, **arrays)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def _bad(path, why: str) -> ValueError:
    return ValueError(f"{os.fspath(path)!r} is not a valid gln-jax checkpoint: {why}")


def load_checkpoint(path) -> Checkpoint:
    """Reads and verifies a checkpoint.

    Args:
        path: a file written by :func:`save_checkpoint` (from any backend).

    Returns:
        The :class:`Checkpoint`, with NumPy arrays in the reference layout.

    Raises:
        FileNotFoundError: no such file.
        ValueError: a truncated, corrupt or foreign file, an unknown ``format_version``, or
            arrays that do not match the stored config.
    """
    if not os.path.exists(path):
        raise FileNotFoundError(f"no checkpoint at {os.fspath(path)!r}")
    try:
        with open(path, "rb") as handle, np.load(handle, allow_pickle=False) as data:
            contents = {key: data[key] for key in data.files}
    except (zipfile.BadZipFile, ValueError, OSError, EOFError, KeyError) as err:
        raise _bad(path, f"cannot read it as an .npz archive ({err})") from err
    if "config" not in contents or "step" not in contents:
        raise _bad(path, "it has no 'config' or 'step' entry")
    try:
        meta = json.loads(str(contents["config"]))
        version = meta.pop("format_version")
        learning_rate = meta.pop("learning_rate")
        has_base_predictor = bool(meta.pop("has_base_predictor"))
    except (json.JSONDecodeError, KeyError, TypeError) as err:
        raise _bad(path, f"its config is not the expected JSON ({err})") from err
    if version not in READABLE_VERSIONS:
        raise _bad(path, f"format_version {version!r}; this gln-jax reads {READABLE_VERSIONS}")
    side_keys = ("example_size", "side_info_transform")
    side_meta = {key: meta.pop(key) for key in side_keys if key in meta}
    if version == 1 and side_meta:
        raise _bad(path, f"version-1 file with version-2 keys {sorted(side_meta)}")
    try:
        config = make_config(**meta)
    except (TypeError, ValueError) as err:
        raise _bad(path, f"its config is invalid ({err})") from err
    if learning_rate is not None and not (
        isinstance(learning_rate, (int, float)) and np.isfinite(learning_rate) and learning_rate > 0
    ):
        raise _bad(path, f"learning_rate {learning_rate!r} is not a positive float")
    step = contents["step"]
    if step.shape != () or not np.issubdtype(step.dtype, np.integer) or step < 0:
        raise _bad(path, "'step' is not a non-negative integer scalar")
    layers = []
    for i, shapes in enumerate(expected_shapes(config)):
        fields = {}
        for field, shape in shapes.items():
            key = f"layers/{i}/{field}"
            if key not in contents:
                raise _bad(path, f"missing array {key!r}")
            array = contents[key]
            if array.shape != shape or array.dtype != np.dtype(config.dtype):
                raise _bad(
                    path,
                    f"{key!r} has shape {array.shape} and dtype {array.dtype}, its config needs "
                    f"{shape} and {config.dtype}",
                )
            if not np.isfinite(array).all():
                raise _bad(path, f"{key!r} contains NaN or inf")
            if field == "weights" and np.abs(array).max() > config.weight_clipping:
                raise _bad(
                    path,
                    f"{key!r} holds weights outside [-weight_clipping, "
                    f"weight_clipping] = ±{config.weight_clipping}",
                )
            fields[field] = array
        layers.append(LayerState(**fields))
    extra = (
        set(contents)
        - {"config", "step"}
        - {f"layers/{i}/{f}" for i in range(len(layers)) for f in _FIELDS}
        - (set(_SIDE_KEYS) if version >= 2 else set())
    )
    if extra:
        raise _bad(path, f"unexpected entries {sorted(extra)}")
    side_info = _read_side_info(path, side_meta, contents, config, has_base_predictor)
    state = GLNState(layers=tuple(layers), step=np.asarray(step, np.int32))
    return Checkpoint(config, state, learning_rate, has_base_predictor, side_info)
