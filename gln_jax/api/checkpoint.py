"""Portable checkpoints: one ``.npz`` file any backend can write and any backend can read.

:func:`save_checkpoint` writes the format of :mod:`gln_jax.api.checkpoint_schema` (version
:data:`FORMAT_VERSION`) atomically (:mod:`gln_jax.api.atomic_write`); :func:`load_checkpoint`
reads every version of :data:`READABLE_VERSIONS` through the hardened reader of
:mod:`gln_jax.api.npz_reader`, which trusts nothing in the file. Every bad file raises
:class:`CheckpointError`.

Example:
    >>> save_checkpoint("model.npz", config, state, learning_rate=1e-3)  # doctest: +SKIP
    >>> checkpoint = load_checkpoint("model.npz")  # doctest: +SKIP
    >>> checkpoint.config == config  # doctest: +SKIP
    True
"""

from __future__ import annotations

import zipfile

import numpy as np

from gln_jax.api import checkpoint_schema as schema
from gln_jax.api.atomic_write import write_atomically
from gln_jax.api.checkpoint_schema import (
    FORMAT_VERSION,
    READABLE_VERSIONS,
    Checkpoint,
    SideInfo,
)
from gln_jax.api.npz_reader import (
    CheckpointError,
    bad,
    list_members,
    open_archive,
    read_member,
)
from gln_jax.core.numerics import STEP_MAX
from gln_jax.core.types import GLNConfig, GLNState, LayerState

__all__ = [
    "FORMAT_VERSION",
    "READABLE_VERSIONS",
    "Checkpoint",
    "CheckpointError",
    "SideInfo",
    "load_checkpoint",
    "save_checkpoint",
]


def save_checkpoint(
    path,
    config: GLNConfig,
    state: GLNState,
    *,
    learning_rate: float | None = None,
    has_base_predictor: bool = False,
    side_info: SideInfo | None = None,
    step: int | None = None,
    std_scale: np.ndarray | None = None,
) -> None:
    """Writes a checkpoint atomically (a temporary file renamed into place).

    Args:
        path: destination file (written exactly there; no suffix is added).
        config: the model's config.
        state: the model's state in the reference layout, any array type ``np.asarray`` reads.
        learning_rate: the constant rate, or ``None`` for a schedule.
        has_base_predictor: whether the model used a ``base_predictor``.
        side_info: the facade's example width and side-information transform; ``None``:
            examples are the side information, no transform.
        step: the exact count of examples learned (a facade's ``step``), when it may exceed
            what ``state.step`` holds (``2**31 - 1``); ``None``: ``state.step``.
        std_scale: a Gaussian model's calibrated factor on its standard deviations, ``[C]``
            positive floats; ``None`` (default): not calibrated, nothing written.

    Example:
        >>> save_checkpoint("model.npz", model.config, model.state)  # doctest: +SKIP
    """
    text = schema.config_member(
        config,
        learning_rate=learning_rate,
        has_base_predictor=has_base_predictor,
        side_info=side_info,
    )
    if std_scale is not None and not schema.calibration_members(config):
        raise ValueError("std_scale is saved for Gaussian models only")
    members = schema.state_members(state, side_info, step, std_scale)
    arrays = {"config": np.array(text), **members}
    write_atomically(path, lambda handle: np.savez(handle, **arrays))


def load_checkpoint(path) -> Checkpoint:
    """Reads and verifies a checkpoint.

    Args:
        path: a file written by :func:`save_checkpoint` (from any backend).

    Returns:
        The :class:`Checkpoint`, with NumPy arrays in the reference layout.

    Raises:
        FileNotFoundError: no such file.
        CheckpointError: not a regular file; a truncated, corrupt or foreign file; an unknown
            ``format_version``; an unexpected member; a member whose dtype, shape or values do
            not match the stored config; a ``step`` outside ``[0, 2**63 - 1]``; side-information
            statistics out of range; a calibration scale that is not finite and positive.

    Example:
        >>> load_checkpoint("model.npz").state.step  # doctest: +SKIP
        array(1000, dtype=int32)
    """
    with open_archive(path) as archive:
        return _read_archive(path, archive)


def _read_archive(path, archive: zipfile.ZipFile) -> Checkpoint:
    members = list_members(path, archive)
    if "config" not in members or "step" not in members:
        raise bad(path, "it has no 'config' or 'step' entry")
    text = read_member(path, archive, members["config"], "config", schema.is_config, ())
    header = schema.read_header(path, str(text[()]))
    config = header.config
    expected = schema.expected_members(config)
    side = schema.side_info_members(config) if header.version >= 2 else {}
    calibration = schema.calibration_members(config) if header.version >= 3 else {}
    extra = set(members) - {"config", "step"} - set(expected) - set(side) - set(calibration)
    if extra:  # refused before reading anything else
        raise bad(path, f"unexpected entries {sorted(extra)}")
    step = read_member(path, archive, members["step"], "step", schema.is_step, ())
    step = schema.check_step(path, int(step[()]))  # exact: never wraps an int64 or uint64
    arrays = {}
    for key, (dtype, shape) in expected.items():
        if key not in members:
            raise bad(path, f"missing array {key!r}")
        array = read_member(path, archive, members[key], key, lambda d, t=dtype: d == t, shape)
        schema.check_layer(path, key, array, config)
        arrays[key] = array
    layers = tuple(
        LayerState(**{field: arrays[f"layers/{i}/{field}"] for field in LayerState._fields})
        for i in range(len(config.layer_sizes))
    )
    contents = {
        key: read_member(path, archive, members[key], key, dtype_ok, shape)
        for key, (dtype_ok, shape) in side.items()
        if key in members
    }
    side_info = schema.read_side_info(
        path, header.side_meta, contents, config, header.has_base_predictor
    )
    scale = {
        key: read_member(path, archive, members[key], key, dtype_ok, shape)
        for key, (dtype_ok, shape) in calibration.items()
        if key in members
    }
    std_scale = schema.read_std_scale(path, scale.get(schema.STD_SCALE_KEY))
    state = GLNState(layers=layers, step=np.asarray(min(step, STEP_MAX), np.int32))
    return Checkpoint(
        config, state, header.learning_rate, header.has_base_predictor, side_info, step, std_scale
    )
