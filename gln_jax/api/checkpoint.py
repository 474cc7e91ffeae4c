"""Portable checkpoints: one ``.npz`` file any backend can write and any backend can read.

Layout (a zip archive of ``.npy`` members; nothing in it is ever executed or unpickled):

- ``config``: a JSON string with ``format_version``, ``family`` (version 2: ``"bernoulli"`` or
  ``"gaussian"``; absent means ``"bernoulli"``, as in every version-1 file), every field of the
  family's config (:class:`~gln_jax.GLNConfig` or
  :class:`~gln_jax.core.gaussian_types.GaussianConfig`), ``learning_rate`` (a float, or
  ``null`` when the model used a schedule) and ``has_base_predictor``;
- ``step``: the update counter, int64 scalar;
- ``layers/{i}/weights``, ``layers/{i}/hyperplanes``, ``layers/{i}/hyperplane_bias``.

A ``base_predictor`` or a learning-rate schedule is code, so it is not stored: pass it again
when loading.

Loading trusts nothing: only a regular file is opened; every member must be one the stored
config expects (:func:`expected_members`), anything else is refused unread; each member's
``.npy`` header is read and its dtype and shape checked before any data, and no more than the
expected number of bytes is ever decompressed.

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
with their keys renamed.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import stat
import time
import zipfile
from typing import NamedTuple

import numpy as np

from gln_jax.core import transforms
from gln_jax.core.gaussian_types import make_gaussian_config
from gln_jax.core.types import GLNConfig, GLNState, LayerState, make_config

FORMAT_VERSION = 3
#: Versions this gln-jax reads; version 1 predates the ``family`` field (always Bernoulli) and
#: the side-information block (defaults apply); versions 1 and 2 name the widths differently.
READABLE_VERSIONS = (1, 2, 3)
#: The neuron families a checkpoint may hold, with the function that rebuilds their config.
FAMILIES = {"bernoulli": make_config, "gaussian": make_gaussian_config}
_FIELDS = LayerState._fields
#: Longest ``config`` JSON accepted, in characters (a real one is well under 1,000).
MAX_CONFIG_CHARS = 1 << 16
#: Largest step a checkpoint may hold: the state's ``step`` is int32 in every backend.
MAX_STEP = np.iinfo(np.int32).max
#: A temporary file of ours (``.gln-*.npz.tmp``) untouched this long is a killed save's.
STALE_TEMPORARY_SECONDS = 15 * 60
_TEMPORARY = re.compile(r"\.gln-[A-Za-z0-9_]+\.npz\.tmp")


class SideInfo(NamedTuple):
    """The facade's side-information settings (format version 2 and later).

    Attributes:
        input_size: width of an example (``predict``'s input).
        transform: the transform's :class:`~gln_jax.core.transforms.TransformConfig`, or
            ``None``.
        transform_state: its :class:`~gln_jax.core.transforms.TransformState` (NumPy), or
            ``None``.
    """

    input_size: int
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
    """The side-information block, checked; defaults for a version-1 file."""
    input_size = meta.pop("input_size", config.side_info_size)
    settings = meta.pop("side_info_transform", None)
    if isinstance(input_size, bool) or not isinstance(input_size, int) or input_size < 1:
        raise _bad(path, f"input_size {input_size!r} is not a positive int")
    if not has_base_predictor and input_size != config.base_prediction_size:
        raise _bad(
            path,
            f"input_size {input_size} differs from base_prediction_size "
            f"{config.base_prediction_size} without a base_predictor",
        )
    present = [key for key in _SIDE_KEYS if key in contents]
    if settings is None:
        if present:
            raise _bad(path, f"entries {present} without a side_info_transform")
        return SideInfo(input_size)
    try:
        transform = transforms.make_transform(**settings)
    except (TypeError, ValueError) as err:
        raise _bad(path, f"its side_info_transform is invalid ({err})") from err
    if len(present) != len(_SIDE_KEYS):
        raise _bad(path, f"side_info_transform without all of {list(_SIDE_KEYS)}")
    count, mean, m2 = (contents[key] for key in _SIDE_KEYS)
    n = (config.side_info_size,)
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
    return SideInfo(input_size, transform, state)


class Checkpoint(NamedTuple):
    """What a checkpoint holds: the config, a NumPy state and the facade's extras."""

    config: GLNConfig
    state: GLNState
    learning_rate: float | None
    has_base_predictor: bool
    side_info: SideInfo | None = None


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
        field added to the format is one entry here (and one in :func:`save_checkpoint`).
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
        side_info: the facade's example width and side-information transform; ``None``:
            examples are the side information, no transform.
    """
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
    arrays = {"config": np.array(json.dumps(meta)), "step": np.array(int(state.step), np.int64)}
    arrays.update(_side_info_arrays(side_info))
    for i, layer in enumerate(state.layers):
        for field in _FIELDS:
            arrays[f"layers/{i}/{field}"] = np.asarray(getattr(layer, field))
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    _remove_stale_temporaries(directory)
    fd, tmp = _create_temporary(directory)
    try:
        with os.fdopen(fd, "wb") as handle:
            np.savez(handle, **arrays)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise
    _fsync_directory(directory)


def _create_temporary(directory: str) -> tuple[int, str]:
    """Creates ``directory/.gln-<random>.npz.tmp``; returns ``(descriptor, path)``.

    Opened with mode ``0o666`` so that the kernel applies the umask (and any default ACL), as a
    plain ``open`` would: ``tempfile.mkstemp`` would make every checkpoint ``0o600``.
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    for _ in range(100):
        tmp = os.path.join(directory, f".gln-{secrets.token_hex(8)}.npz.tmp")
        try:
            return os.open(tmp, flags, 0o666), tmp
        except FileExistsError:
            continue
    raise FileExistsError(f"could not create a temporary file in {directory!r}")


def _remove_stale_temporaries(directory: str) -> None:
    """Deletes our own temporaries (``.gln-*.npz.tmp``) left in ``directory`` by killed saves.

    Only regular files of this user, untouched for :data:`STALE_TEMPORARY_SECONDS`, so that a
    save in progress in another process is left alone. Failures are ignored: this is tidying.
    """
    now = time.time()
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return
    for entry in entries:
        if not _TEMPORARY.fullmatch(entry.name):
            continue
        try:
            info = entry.stat(follow_symlinks=False)
            if (
                stat.S_ISREG(info.st_mode)
                and (not hasattr(os, "getuid") or info.st_uid == os.getuid())
                and now - info.st_mtime > STALE_TEMPORARY_SECONDS
            ):
                os.unlink(entry.path)
        except OSError:
            continue


def _fsync_directory(directory: str) -> None:
    """Makes the rename durable (POSIX; a no-op where directories cannot be opened)."""
    try:
        fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


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
        ValueError: not a regular file; a truncated, corrupt or foreign file; an unknown
            ``format_version``; an unexpected member; a member whose dtype, shape or values do
            not match the stored config; a ``step`` outside ``[0, 2**31 - 1]``.
    """
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise FileNotFoundError(f"no checkpoint at {os.fspath(path)!r}") from None
    except OSError as err:
        raise _bad(path, f"cannot stat it ({err})") from err
    if not stat.S_ISREG(info.st_mode):
        raise _bad(path, "it is not a regular file (a directory, FIFO, socket or device)")
    try:  # O_NONBLOCK: should a FIFO replace the file meanwhile, open does not block on it
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    except OSError as err:
        raise _bad(path, f"cannot open it ({err})") from err
    with os.fdopen(fd, "rb") as handle:
        if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
            raise _bad(path, "it is not a regular file (a directory, FIFO, socket or device)")
        try:
            archive = zipfile.ZipFile(handle)
        except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, ValueError) as err:
            raise _bad(path, f"cannot read it as an .npz archive ({err})") from err
        with archive:
            return _read_archive(path, archive)


def _read_archive(path, archive: zipfile.ZipFile) -> Checkpoint:
    members = {}
    for item in archive.infolist():
        if not item.filename.endswith(".npy") or item.is_dir():
            raise _bad(path, f"member {item.filename!r} is not an .npy array")
        name = item.filename[: -len(".npy")]
        if name in members:
            raise _bad(path, f"member {item.filename!r} appears twice")
        members[name] = item
    if "config" not in members or "step" not in members:
        raise _bad(path, "it has no 'config' or 'step' entry")
    text = _read_member(path, archive, members["config"], "config", _is_config, ())
    meta = _parse_meta(path, str(text[()]))
    version = meta.pop("format_version")
    learning_rate = meta.pop("learning_rate")
    has_base_predictor = meta.pop("has_base_predictor")
    if isinstance(version, bool) or version not in READABLE_VERSIONS:
        raise _bad(
            path, f"format_version {version!r}; this gln-jax reads {list(READABLE_VERSIONS)}"
        )
    if not isinstance(has_base_predictor, bool):
        raise _bad(path, f"has_base_predictor {has_base_predictor!r} is not true or false")
    newer = sorted(k for k in ("family", "example_size", "side_info_transform") if k in meta)
    if version == 1 and newer:
        raise _bad(path, f"version-1 file with version-2 keys {newer}")
    if version == 3 and "example_size" in meta:
        raise _bad(path, "version-3 file with the version-2 key 'example_size'")
    meta = _renamed_widths(path, meta) if version < 3 else meta
    family = meta.pop("family", "bernoulli")
    if not isinstance(family, str) or family not in FAMILIES:
        raise _bad(path, f"unknown family {family!r}; known: {sorted(FAMILIES)}")
    side_keys = ("input_size", "side_info_transform")
    side_meta = {key: meta.pop(key) for key in side_keys if key in meta}
    try:
        config = FAMILIES[family](**meta)
    except (TypeError, ValueError, OverflowError) as err:
        raise _bad(path, f"its config is invalid ({err})") from err
    if learning_rate is not None and not (
        isinstance(learning_rate, (int, float))
        and not isinstance(learning_rate, bool)
        and np.isfinite(learning_rate)
        and learning_rate > 0
    ):
        raise _bad(path, f"learning_rate {learning_rate!r} is not a positive float")
    expected = expected_members(config)
    side = side_info_members(config) if version >= 2 else {}
    extra = set(members) - {"config", "step"} - set(expected) - set(side)
    if extra:  # refused before reading anything else
        raise _bad(path, f"unexpected entries {sorted(extra)}")
    step = _read_step(path, archive, members["step"])
    arrays = {}
    for key, (dtype, shape) in expected.items():
        if key not in members:
            raise _bad(path, f"missing array {key!r}")
        array = _read_member(path, archive, members[key], key, lambda d, t=dtype: d == t, shape)
        if not np.isfinite(array).all():
            raise _bad(path, f"{key!r} contains NaN or inf")
        if key.endswith("/weights") and np.abs(array).max() > config.weight_clipping:
            raise _bad(
                path,
                f"{key!r} holds weights outside [-weight_clipping, "
                f"weight_clipping] = ±{config.weight_clipping}",
            )
        arrays[key] = array
    layers = tuple(
        LayerState(**{field: arrays[f"layers/{i}/{field}"] for field in _FIELDS})
        for i in range(len(config.layer_sizes))
    )
    contents = {
        key: _read_member(path, archive, members[key], key, dtype_ok, shape)
        for key, (dtype_ok, shape) in side.items()
        if key in members
    }
    side_info = _read_side_info(path, side_meta, contents, config, has_base_predictor)
    state = GLNState(layers=layers, step=np.asarray(step, np.int32))
    return Checkpoint(config, state, learning_rate, has_base_predictor, side_info)


def _renamed_widths(path, meta: dict) -> dict:
    """A version-1 or -2 config with version 3's names: ``input_size`` (the side information's
    width then) becomes ``side_info_size``, ``example_size`` becomes ``input_size``."""
    if "side_info_size" in meta:
        raise _bad(path, "a version-1 or -2 file with the version-3 key 'side_info_size'")
    renamed = dict(meta)
    if "input_size" in renamed:
        renamed["side_info_size"] = renamed.pop("input_size")
    if "example_size" in renamed:
        renamed["input_size"] = renamed.pop("example_size")
    return renamed


def _is_config(dtype: np.dtype) -> bool:
    return dtype.kind == "U" and dtype.itemsize // 4 <= MAX_CONFIG_CHARS


def _parse_meta(path, text: str) -> dict:
    try:
        meta = json.loads(text)
    except (json.JSONDecodeError, RecursionError) as err:
        raise _bad(path, f"its config is not the expected JSON ({err})") from err
    if not isinstance(meta, dict):
        raise _bad(
            path, f"its config is not the expected JSON (an object; got {type(meta).__name__})"
        )
    needed = ("format_version", "learning_rate", "has_base_predictor")
    missing = [key for key in needed if key not in meta]
    if missing:
        raise _bad(path, f"its config is not the expected JSON (no {', '.join(missing)})")
    return meta


def _read_step(path, archive: zipfile.ZipFile, item: zipfile.ZipInfo) -> int:
    """The stored step as a Python int, range-checked before any conversion."""
    array = _read_member(
        path, archive, item, "step", lambda d: d.kind in "iu" and d.itemsize <= 8, ()
    )
    value = int(array[()])  # exact: a Python int of an int64 or uint64 never wraps
    if not 0 <= value <= MAX_STEP:
        raise _bad(path, f"'step' is {value}, outside [0, {MAX_STEP}]")
    return value


def _read_member(
    path, archive: zipfile.ZipFile, item: zipfile.ZipInfo, key: str, dtype_ok, shape
) -> np.ndarray:
    """One ``.npy`` member: header checked first, then at most the expected bytes read.

    Args:
        path: the checkpoint (for messages).
        archive: the open archive.
        item: the member.
        key: its name without ``.npy`` (for messages).
        dtype_ok: predicate on the header's dtype.
        shape: the shape the member must have.
    """
    try:
        with archive.open(item) as stream:
            version = np.lib.format.read_magic(stream)
            if version == (1, 0):
                header = np.lib.format.read_array_header_1_0(stream)
            elif version == (2, 0):
                header = np.lib.format.read_array_header_2_0(stream)
            else:
                raise ValueError(f"unsupported .npy version {version}")
            stored_shape, fortran_order, dtype = header
            if dtype.hasobject or not dtype_ok(dtype) or tuple(stored_shape) != tuple(shape):
                raise _bad(
                    path,
                    f"{key!r} has shape {tuple(stored_shape)} and dtype {dtype}, which its "
                    f"config does not allow (shape {tuple(shape)})",
                )
            nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
            if item.file_size > stream.tell() + nbytes:
                raise _bad(path, f"{key!r} holds more bytes than its shape and dtype need")
            data = stream.read(nbytes + 1)  # never decompresses more than one byte too many
    except ValueError as err:
        if "not a valid gln-jax checkpoint" in str(err):
            raise
        raise _bad(path, f"{key!r} is not a valid .npy array ({err})") from err
    except (zipfile.BadZipFile, OSError, EOFError, NotImplementedError) as err:
        raise _bad(path, f"cannot read {key!r} ({err})") from err
    if len(data) != nbytes:
        raise _bad(path, f"{key!r} holds {len(data)} bytes of data, its shape needs {nbytes}")
    array = np.frombuffer(data, dtype).reshape(shape, order="F" if fortran_order else "C")
    return np.array(array, dtype.newbyteorder("=") if dtype.kind in "iuf" else dtype)
