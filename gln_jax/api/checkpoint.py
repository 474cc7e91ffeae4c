"""Portable checkpoints: one ``.npz`` file any backend can write and any backend can read.

Layout (``np.load(path, allow_pickle=False)`` reads it; nothing in it is ever executed):

- ``config``: a JSON string with ``format_version``, ``family`` (version 2: ``"bernoulli"`` or
  ``"gaussian"``; absent means ``"bernoulli"``, as in every version-1 file), every field of the
  family's config (:class:`~gln_jax.GLNConfig` or
  :class:`~gln_jax.core.gaussian_types.GaussianConfig`), ``learning_rate`` (a float, or
  ``null`` when the model used a schedule) and ``has_base_predictor``;
- ``step``: the update counter, int64 scalar;
- ``layers/{i}/weights``, ``layers/{i}/hyperplanes``, ``layers/{i}/hyperplane_bias``.

A ``base_predictor`` or a learning-rate schedule is code, so it is not stored: pass it again
when loading.
"""

from __future__ import annotations

import json
import os
import tempfile
import zipfile
from typing import NamedTuple

import numpy as np

from gln_jax.core.gaussian_types import make_gaussian_config
from gln_jax.core.types import GLNConfig, GLNState, LayerState, make_config

FORMAT_VERSION = 2
#: Versions this gln-jax reads; version 1 predates the ``family`` field (always Bernoulli).
READABLE_VERSIONS = (1, 2)
#: The neuron families a checkpoint may hold, with the function that rebuilds their config.
FAMILIES = {"bernoulli": make_config, "gaussian": make_gaussian_config}
_FIELDS = LayerState._fields


class Checkpoint(NamedTuple):
    """What a checkpoint holds: the config, a NumPy state and the facade's extras."""

    config: GLNConfig
    state: GLNState
    learning_rate: float | None
    has_base_predictor: bool


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
) -> None:
    """Writes a checkpoint atomically (a temporary file renamed into place).

    Args:
        path: destination file (written exactly there; no suffix is added).
        config: the model's config.
        state: the model's state in the reference layout, any array type ``np.asarray`` reads.
        learning_rate: the constant rate, or ``None`` for a schedule.
        has_base_predictor: whether the model used a ``base_predictor``.
    """
    meta = dict(config._asdict(), layer_sizes=list(config.layer_sizes))
    meta.update(
        format_version=FORMAT_VERSION,
        family=getattr(config, "family", "bernoulli"),
        learning_rate=None if learning_rate is None else float(learning_rate),
        has_base_predictor=bool(has_base_predictor),
    )
    arrays = {"config": np.array(json.dumps(meta)), "step": np.array(int(state.step), np.int64)}
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
        raise _bad(
            path, f"format_version {version!r}; this gln-jax reads {list(READABLE_VERSIONS)}"
        )
    family = meta.pop("family", "bernoulli") if version >= 2 else "bernoulli"
    if family not in FAMILIES:
        raise _bad(path, f"unknown family {family!r}; known: {sorted(FAMILIES)}")
    try:
        config = FAMILIES[family](**meta)
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
    )
    if extra:
        raise _bad(path, f"unexpected entries {sorted(extra)}")
    state = GLNState(layers=tuple(layers), step=np.asarray(step, np.int32))
    return Checkpoint(config, state, learning_rate, has_base_predictor)
