"""Portable checkpoints: round trip, and clear errors for anything that is not one."""

import io
import json
import os
import stat
import time
import tracemalloc
import zipfile

import jax
import numpy as np
import pytest

from gln_jax import GLN
from gln_jax.api.checkpoint import FORMAT_VERSION, CheckpointError, load_checkpoint


@pytest.fixture
def saved(tmp_path):
    rng = np.random.default_rng(0)
    X, y = rng.random((50, 9), dtype=np.float32), rng.integers(0, 3, 50)
    model = GLN("jax", [3, 1], 9, num_classes=3, learning_rate=0.05)
    model.fit(X, y)
    path = tmp_path / "model.npz"
    model.save(path)
    return model, path, X


def rewrite(path, change):
    with np.load(path, allow_pickle=False) as data:
        contents = {k: data[k] for k in data.files}
    change(contents)
    with open(path, "wb") as handle:
        np.savez(handle, **contents)


def test_round_trip_is_exact(saved):
    model, path, X = saved
    loaded = GLN.load(path)
    np.testing.assert_array_equal(
        loaded.predict(X, return_probs=True), model.predict(X, return_probs=True)
    )
    assert loaded.step == model.step == 50 and loaded.learning_rate == 0.05
    with np.load(path, allow_pickle=False) as data:
        meta = json.loads(str(data["config"]))
        files = sorted(data.files)
    assert meta["format_version"] == FORMAT_VERSION
    assert files[:3] == ["config", "layers/0/hyperplane_bias", "layers/0/hyperplanes"]


def test_schedule_and_base_predictor_must_be_passed_again(tmp_path):
    model = GLN(
        "jax",
        [2, 1],
        4,
        learning_rate=lambda step: 0.01,
        base_predictor=lambda x: np.concatenate([x, 1 - x], axis=1),
    )
    path = tmp_path / "m.npz"
    model.save(path)
    with pytest.raises(ValueError, match="base_predictor"):
        GLN.load(path, learning_rate=0.1)
    with pytest.raises(ValueError, match="schedule"):
        GLN.load(path, base_predictor=lambda x: np.concatenate([x, 1 - x], axis=1))
    with pytest.raises(ValueError, match="returns 4 base predictions"):
        GLN.load(path, base_predictor=lambda x: x, learning_rate=0.1)
    loaded = GLN.load(
        path, base_predictor=lambda x: np.concatenate([x, 1 - x], axis=1), learning_rate=0.1
    )
    assert loaded.config.base_prediction_size == 8


def test_truncated_file(saved):
    _, path, _ = saved
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="not a valid gln-jax checkpoint"):
        GLN.load(path)


def test_foreign_files(tmp_path):
    text = tmp_path / "notes.npz"
    text.write_text("hello")
    with pytest.raises(CheckpointError, match="not a valid gln-jax checkpoint"):
        load_checkpoint(text)
    other = tmp_path / "other.npz"
    np.savez(other, a=np.zeros(3))
    with pytest.raises(CheckpointError, match="no 'config'"):
        load_checkpoint(other)
    pickled = tmp_path / "pickled.npz"
    with zipfile.ZipFile(pickled, "w") as archive:  # an object array would need pickle
        with archive.open("config.npy", "w") as handle:
            np.lib.format.write_array(handle, np.array([{"x": 1}], dtype=object))
        with archive.open("step.npy", "w") as handle:
            np.lib.format.write_array(handle, np.array(0))
    with pytest.raises(CheckpointError, match="not a valid gln-jax checkpoint"):
        load_checkpoint(pickled)
    with pytest.raises(FileNotFoundError):
        load_checkpoint(tmp_path / "missing.npz")


@pytest.mark.parametrize(
    ("change", "match"),
    [
        (lambda c: c.__setitem__("layers/0/weights", c["layers/0/weights"][:, :2]), "shape"),
        (
            lambda c: c.__setitem__(
                "layers/1/hyperplanes", c["layers/1/hyperplanes"].astype(np.float64)
            ),
            "dtype",
        ),
        (lambda c: c.pop("layers/1/hyperplane_bias"), "missing array"),
        (lambda c: c.__setitem__("extra", np.zeros(1)), "unexpected entries"),
        (lambda c: c.__setitem__("step", np.array(-3)), "step"),
        (lambda c: c["layers/0/weights"].__setitem__((0, 0, 0, 0), np.nan), "NaN"),
        (lambda c: c["layers/0/weights"].__setitem__((0, 0, 0, 0), 9.0), "outside"),
        (lambda c: c.__setitem__("config", np.array("{not json")), "JSON"),
        (
            lambda c: c.__setitem__(
                "config",
                np.array(json.dumps(dict(json.loads(str(c["config"])), format_version=99))),
            ),
            "format_version 99",
        ),
        (
            lambda c: c.__setitem__(
                "config", np.array(json.dumps(dict(json.loads(str(c["config"])), num_classes=1)))
            ),
            "num_classes",
        ),
    ],
)
def test_inconsistent_contents(saved, change, match):
    _, path, _ = saved
    rewrite(path, change)
    with pytest.raises(ValueError, match=match):
        GLN.load(path)


@pytest.mark.heavy
def test_float64_checkpoint_into_jax_needs_x64(tmp_path, x64):
    model = GLN("jax", [2, 1], 4, dtype="float64")
    path = tmp_path / "m64.npz"
    model.save(path)
    jax.config.update("jax_enable_x64", False)
    with pytest.raises(ValueError, match="jax_enable_x64"):
        GLN.load(path)
    jax.config.update("jax_enable_x64", True)
    assert GLN.load(path).reference_state().layers[0].weights.dtype == np.float64


# --- hostile files --------------------------------------------------------------------------------


def write_members(path, members, *, compression=zipfile.ZIP_DEFLATED):
    """A zip of raw members ``{name: bytes or (header dict, payload bytes or chunk iterator)}``.

    Headers are written with NumPy's own ``.npy`` header writer, so they may claim anything.
    """
    with zipfile.ZipFile(path, "w", compression=compression) as archive:
        for name, content in members.items():
            with archive.open(name, "w", force_zip64=True) as handle:
                if isinstance(content, bytes):
                    handle.write(content)
                    continue
                header, payload = content
                np.lib.format.write_array_header_1_0(handle, header)
                for chunk in [payload] if isinstance(payload, bytes) else payload:
                    handle.write(chunk)


def npy_bytes(array) -> bytes:
    stream = io.BytesIO()
    np.lib.format.write_array(stream, np.asarray(array), allow_pickle=False)
    return stream.getvalue()


def members_of(path) -> dict:
    """The members of a saved checkpoint as raw ``.npy`` bytes."""
    with zipfile.ZipFile(path) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def zeros(total: int, chunk: int = 1 << 22):
    """``total`` zero bytes in chunks (a compression bomb's payload, never held at once)."""
    block = bytes(chunk)
    for start in range(0, total, chunk):
        yield block[: min(chunk, total - start)]


def refused(path, match):
    """Loads ``path`` expecting a CheckpointError (a ValueError) matching ``match``; the file is
    left as it was."""
    assert issubclass(CheckpointError, ValueError)
    before = path.read_bytes() if path.is_file() else None
    with pytest.raises(CheckpointError, match=match) as info:
        GLN.load(path)
    assert "not a valid gln-jax checkpoint" in str(info.value)
    if before is not None:
        assert path.read_bytes() == before
    return info.value


@pytest.mark.parametrize("config", ["3", "null", '"text"', "[1, 2]", "{}"])
def test_a_config_that_is_not_a_json_object_is_refused(saved, config):
    _, path, _ = saved
    rewrite(path, lambda c: c.__setitem__("config", np.array(config)))
    refused(path, "config is not the expected JSON")


def test_members_that_are_not_npy_arrays_or_archives_that_are_not_npz_are_refused(saved, tmp_path):
    _, path, _ = saved
    members = members_of(path)
    members["notes.txt"] = b"hello"
    write_members(path, members)
    refused(path, r"member 'notes.txt' is not an .npy array")
    plain = tmp_path / "plain.npz"
    np.save(plain.with_suffix(".npy"), np.zeros(3))
    plain.with_suffix(".npy").rename(plain)
    refused(plain, "cannot read it as an .npz archive")


@pytest.mark.parametrize("key", ["config", "step", "layers/0/weights"])
def test_a_header_claiming_a_huge_shape_is_refused_before_any_data(saved, key):
    _, path, _ = saved
    members = members_of(path)
    members[f"{key}.npy"] = (
        {"descr": "<f4", "fortran_order": False, "shape": (2**40,)},
        bytes(1024),
    )
    write_members(path, members)
    refused(path, rf"'{key}' has shape \(1099511627776,\)")


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this platform")
@pytest.mark.timeout(20)
def test_a_fifo_or_a_directory_is_refused_without_opening_it(tmp_path):
    fifo = tmp_path / "model.npz"
    os.mkfifo(fifo)
    start = time.monotonic()
    refused(fifo, "not a regular file")
    assert time.monotonic() - start < 5.0  # would block forever waiting for a writer
    refused(tmp_path, "not a regular file")


@pytest.mark.parametrize(
    ("step", "shown"),
    [
        (np.array(2**63, np.uint64), str(2**63)),
        (np.array(np.iinfo(np.uint64).max, np.uint64), str(2**64 - 1)),
        (np.array(-1, np.int64), "-1"),
        (np.array(-(2**63), np.int64), str(-(2**63))),
    ],
)
def test_a_step_outside_int64_is_refused_not_wrapped(saved, step, shown):
    _, path, _ = saved
    rewrite(path, lambda c: c.__setitem__("step", step))
    refused(path, rf"'step' is {shown}, outside \[0, 9223372036854775807\]")


@pytest.mark.parametrize("step", [2**31, 2**32 + 5, 2**63 - 1])
def test_a_step_beyond_int32_loads_exactly_with_the_state_step_saturated(saved, step):
    model, path, X = saved
    rewrite(path, lambda c: c.__setitem__("step", np.array(step, np.int64)))
    assert load_checkpoint(path).step == step
    loaded = GLN.load(path)
    assert loaded.step == step and int(loaded.state.step) == 2**31 - 1
    np.testing.assert_array_equal(
        loaded.predict(X, return_probs=True), model.predict(X, return_probs=True)
    )


@pytest.mark.parametrize(
    "step", [np.array(3.0), np.array(True), np.array([3], np.int64), np.array("3")]
)
def test_a_step_of_another_dtype_or_shape_is_refused(saved, step):
    _, path, _ = saved
    rewrite(path, lambda c: c.__setitem__("step", step))
    refused(path, "'step' has shape")


def test_the_largest_int32_step_loads(saved):
    _, path, _ = saved
    rewrite(path, lambda c: c.__setitem__("step", np.array(2**31 - 1, np.uint64)))
    assert GLN.load(path).step == 2**31 - 1


BOMB = 64 << 20  # 64 MiB of zeros: about 64 KiB compressed


@pytest.mark.parametrize("where", ["unexpected member", "wrong shape", "trailing data"])
def test_a_compression_bomb_is_refused_without_decompressing_it(saved, where):
    _, path, _ = saved
    members = members_of(path)
    weights = np.lib.format.read_array(io.BytesIO(members["layers/0/weights.npy"]))
    header = np.lib.format.header_data_from_array_1_0(weights)
    if where == "unexpected member":
        members["layers/9/weights.npy"] = (dict(header, shape=(BOMB // 4,)), zeros(BOMB))
        match = "unexpected entries"
    elif where == "wrong shape":
        members["layers/0/weights.npy"] = (dict(header, shape=(BOMB // 4,)), zeros(BOMB))
        match = "'layers/0/weights' has shape"
    else:
        data = weights.tobytes()
        members["layers/0/weights.npy"] = (header, iter([data, *zeros(BOMB)]))
        match = "holds more bytes than its shape and dtype need"
    write_members(path, members)
    assert path.stat().st_size < 2 << 20
    tracemalloc.start()
    try:
        refused(path, match)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8 << 20, peak  # the old loader decompressed all 64 MiB first


def test_save_honours_the_umask(tmp_path):
    model = GLN("jax", [2, 1], 4)
    for mask, mode in ((0o022, 0o644), (0o077, 0o600), (0o002, 0o664)):
        previous = os.umask(mask)
        try:
            model.save(tmp_path / "m.npz")
        finally:
            os.umask(previous)
        assert stat.S_IMODE((tmp_path / "m.npz").stat().st_mode) == mode, oct(mask)


def test_save_removes_only_stale_temporaries_of_its_own_naming(tmp_path):
    old = time.time() - 3600
    stale = [tmp_path / ".gln-abc123xy.npz.tmp", tmp_path / ".gln-0123456789abcdef.npz.tmp"]
    kept = [
        tmp_path / ".gln-fresh123.npz.tmp",  # a save in progress elsewhere
        tmp_path / "gln-abc.npz.tmp",  # not our naming
        tmp_path / ".gln-abc.npz.tmp.keep",
        tmp_path / ".other-abc.npz.tmp",
    ]
    for path in stale + kept:
        path.write_bytes(b"partial")
        if path.name != ".gln-fresh123.npz.tmp":
            os.utime(path, (old, old))
    (tmp_path / ".gln-dir.npz.tmp").mkdir()  # not a regular file
    os.utime(tmp_path / ".gln-dir.npz.tmp", (old, old))
    GLN("jax", [2, 1], 4).save(tmp_path / "m.npz")
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == sorted([p.name for p in kept] + [".gln-dir.npz.tmp", "m.npz"])


def test_save_fsyncs_the_file_before_the_rename_and_the_directory_after(tmp_path, monkeypatch):
    events = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        kind = "directory" if stat.S_ISDIR(os.fstat(fd).st_mode) else "file"
        events.append(f"fsync {kind}")
        real_fsync(fd)

    def replace(src, dst):
        events.append("rename")
        real_replace(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    GLN("jax", [2, 1], 4).save(tmp_path / "m.npz")
    assert events == ["fsync file", "rename", "fsync directory"]


def test_a_failed_save_leaves_the_old_file_and_no_temporary(tmp_path, monkeypatch):
    path = tmp_path / "m.npz"
    GLN("jax", [2, 1], 4, seed=1).save(path)
    before = path.read_bytes()

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", broken)
    with pytest.raises(OSError, match="disk full"):
        GLN("jax", [2, 1], 4, seed=2).save(path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["m.npz"]
