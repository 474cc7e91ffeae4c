"""The kernel's cache loads only whole libraries that this user alone could have written.

Each check that could kill or compromise a process runs in a fresh subprocess with its own
``XDG_CACHE_HOME``.
"""

import os
import shutil
import stat
import subprocess
import sys
import time

import pytest

from gln_jax.core.kernel import build, library

# a fresh process: is the kernel available, and does a one-step fit run in it
_FIT = (
    "import warnings, jax, numpy as np, gln_jax; from gln_jax import make_config; "
    "from gln_jax.core import kernel; "
    "config = make_config([2, 1], 6, num_classes=3); "
    "state = gln_jax.init(jax.random.key(0), config); "
    "x = np.random.default_rng(0).random((4, 6), np.float32); "
    "ok = kernel.available(); "
    "_, p = gln_jax.fit_stream(state, x, x, np.array([0, 1, 2, 0]), np.full(4, 0.1, np.float32),"
    " config=config); "
    "print('available' if ok else 'unavailable', np.asarray(p).shape)"
)


def _run(script, cache, **env):
    environment = dict(
        os.environ, XDG_CACHE_HOME=str(cache), PYTHONPATH=os.pathsep.join(sys.path), **env
    )
    environment.pop(library.SWITCH, None)
    return subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        env=environment,
        timeout=600,
    )


def _seed_cache(built, cache):
    """The built library and its record, copied into a fresh private cache under ``cache``."""
    folder = cache / "gln_jax" / "kernels"
    folder.mkdir(parents=True, mode=0o700)
    folder.chmod(0o700)
    target = folder / built.name
    shutil.copy2(built, target)
    shutil.copy2(built.with_name(built.name + build.RECORD_SUFFIX), folder)
    return target


@pytest.mark.parametrize("damage", ["truncated", "empty", "random bytes"])
def test_a_damaged_library_is_rebuilt_not_loaded(built, tmp_path, damage):
    target = _seed_cache(built, tmp_path / "cache")
    size = target.stat().st_size
    with open(target, "r+b") as f:
        if damage == "truncated":
            f.truncate(60_000)
        elif damage == "empty":
            f.truncate(0)
        else:
            f.write(os.urandom(size))
    proc = _run(_FIT, tmp_path / "cache")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.split("\n")[-2] == "available (4, 3)"
    assert build.verified(target)
    assert target.stat().st_size == size
    names = sorted(p.name for p in target.parent.iterdir())
    assert names == sorted([build.LOCK_NAME, target.name, target.name + build.RECORD_SUFFIX])


def test_a_library_without_its_record_is_rebuilt(built, tmp_path):
    target = _seed_cache(built, tmp_path / "cache")
    target.with_name(target.name + build.RECORD_SUFFIX).unlink()
    proc = _run(_FIT, tmp_path / "cache")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.split("\n")[-2] == "available (4, 3)"
    assert build.verified(target)


def _planted_library(tmp_path, marker):
    """A shared library whose constructor creates ``marker``."""
    source = tmp_path / "planted.c"
    source.write_text(
        "#include <stdio.h>\n"
        "__attribute__((constructor)) static void planted(void) {\n"
        f'  FILE* f = fopen("{marker}", "w"); if (f) fclose(f);\n'
        "}\n"
    )
    out = tmp_path / "planted.so"
    subprocess.run(
        [build.find_compiler(), "-x", "c", "-shared", "-fPIC", str(source), "-o", str(out)],
        check=True,
        capture_output=True,
        timeout=120,
    )
    return out


@pytest.mark.parametrize("mode", [0o777, 0o775])
def test_a_cache_folder_others_can_write_is_never_loaded_from(built, tmp_path, mode):
    marker = tmp_path / "planted-code-ran"
    planted = _planted_library(tmp_path, marker)
    target = _seed_cache(built, tmp_path / "cache")
    shutil.copy2(planted, target)  # under the expected name, with a matching record
    record = target.with_name(target.name + build.RECORD_SUFFIX)
    record.write_text(build._describe(target) + "\n")
    target.parent.chmod(mode)
    proc = _run(_FIT, tmp_path / "cache")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.split("\n")[-2] == "unavailable (4, 3)"  # the pure-JAX fit ran
    assert "writable by others" in proc.stderr and "KernelFallbackWarning" in proc.stderr
    assert not marker.exists()


def test_a_library_others_can_write_is_replaced_not_loaded(built, tmp_path):
    marker = tmp_path / "planted-code-ran"
    planted = _planted_library(tmp_path, marker)
    target = _seed_cache(built, tmp_path / "cache")
    shutil.copy2(planted, target)
    record = target.with_name(target.name + build.RECORD_SUFFIX)
    record.write_text(build._describe(target) + "\n")
    target.chmod(0o666)
    proc = _run(_FIT, tmp_path / "cache")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.split("\n")[-2] == "available (4, 3)"
    assert not marker.exists()
    assert build.verified(target)
    assert stat.S_IMODE(target.stat().st_mode) & 0o022 == 0


def test_a_new_cache_folder_is_private(monkeypatch, tmp_path):
    monkeypatch.setenv("CXX", str(_fake_compiler(tmp_path, "echo 'error: broken' >&2; exit 1")))
    old = os.umask(0o002)
    try:
        with pytest.raises(build.BuildError, match="broken"):
            build.build(tmp_path / "cache" / "kernels")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "cache" / "kernels").stat().st_mode) == 0o700


def _fake_compiler(tmp_path, body):
    fake = tmp_path / "fake-c++"
    fake.write_text(
        f'#!/bin/sh\nif [ "$1" = "--version" ]; then echo fake 1.0; exit 0; fi\n{body}\n'
    )
    fake.chmod(0o755)
    return fake


def test_a_compiler_that_writes_nothing_is_a_failed_build(monkeypatch, tmp_path):
    monkeypatch.setenv("CXX", str(_fake_compiler(tmp_path, "exit 0")))
    with pytest.raises(build.BuildError, match="wrote no shared library"):
        build.build(tmp_path / "cache")
    assert [p.name for p in (tmp_path / "cache").iterdir()] == [build.LOCK_NAME]


def test_temporaries_of_killed_builds_are_removed(monkeypatch, tmp_path):
    monkeypatch.setenv("CXX", str(_fake_compiler(tmp_path, "exit 1")))
    folder = tmp_path / "cache"
    folder.mkdir(mode=0o700)
    stale, fresh = folder / "gln_online_x.abc.tmp", folder / "gln_online_x.def.tmp"
    stale.write_bytes(b"half a library")
    fresh.write_bytes(b"a build under way")
    old = time.time() - build.BUILD_TIMEOUT - 3600
    os.utime(stale, (old, old))
    with pytest.raises(build.BuildError):
        build.build(folder)
    assert not stale.exists() and fresh.exists()
    assert sorted(p.name for p in folder.iterdir()) == sorted([build.LOCK_NAME, fresh.name])


def _start_build(cache):
    """``python -m gln_jax.core.kernel build`` started (not waited for) with its own cache."""
    environment = dict(os.environ, XDG_CACHE_HOME=str(cache), PYTHONPATH=os.pathsep.join(sys.path))
    environment.pop(library.SWITCH, None)
    return subprocess.Popen(
        [sys.executable, "-m", "gln_jax.core.kernel", "build"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=environment,
    )


def test_two_processes_building_at_once_compile_once(built, tmp_path):
    cache = tmp_path / "cache"
    first, second = _start_build(cache), _start_build(cache)
    said = [process.communicate(timeout=600) for process in (first, second)]
    assert [process.returncode for process in (first, second)] == [0, 0], said
    heads = sorted(out.split()[0] for out, _ in said)
    assert heads == ["already", "built"]  # the lock made the second wait, then find it built
    folder = cache / "gln_jax" / "kernels"
    libraries = list(folder.glob("*.so"))
    assert len(libraries) == 1 and build.verified(libraries[0])
    assert not list(folder.glob("*.tmp"))
    proc = _run(_FIT, cache)
    assert proc.returncode == 0 and proc.stdout.split()[0] == "available", proc.stderr[-2000:]


# a process that loads the kernel, fits, says so, waits for a go file, then fits again many
# times and checks every result equals the first
_FIT_THROUGH_A_REBUILD = """
import pathlib, sys, time
import jax, numpy as np, gln_jax
from gln_jax import make_config
from gln_jax.core import kernel
config = make_config([4, 1], 6, num_classes=3)
state = gln_jax.init(jax.random.key(0), config)
x = np.random.default_rng(0).random((64, 6), np.float32)
y = np.arange(64) % 3
rates = np.full(64, 0.1, np.float32)
first = np.asarray(gln_jax.fit_stream(state, x, x, y, rates, config=config)[1])
assert kernel.available()
print("ready", flush=True)
go = pathlib.Path(sys.argv[1])
deadline = time.time() + 300
while not go.exists() and time.time() < deadline:
    time.sleep(0.05)
for _ in range(20):
    again = np.asarray(gln_jax.fit_stream(state, x, x, y, rates, config=config)[1])
    assert np.array_equal(again, first)
print("same", kernel.status().library, flush=True)
"""


def test_a_process_keeps_its_kernel_while_another_rebuilds_it(built, tmp_path):
    """A rebuild writes a new file and renames it into place: a process that has the old one
    loaded keeps it mapped, unchanged, and goes on computing the same results."""
    cache = tmp_path / "cache"
    target = _seed_cache(built, cache)
    go = tmp_path / "go"
    environment = dict(os.environ, XDG_CACHE_HOME=str(cache), PYTHONPATH=os.pathsep.join(sys.path))
    environment.pop(library.SWITCH, None)
    user = subprocess.Popen(
        [sys.executable, "-c", _FIT_THROUGH_A_REBUILD, str(go)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=environment,
    )
    try:
        assert user.stdout.readline().strip() == "ready", user.stderr.read()[-2000:]
        loaded = os.stat(target).st_ino
        target.with_name(target.name + build.RECORD_SUFFIX).unlink()  # forces a rebuild
        rebuilder = _start_build(cache)
        out, err = rebuilder.communicate(timeout=600)
        assert rebuilder.returncode == 0 and out.startswith("built "), err[-2000:]
        assert os.stat(target).st_ino != loaded and build.verified(target)  # a new file
    finally:
        go.touch()
    out, err = user.communicate(timeout=600)
    assert user.returncode == 0, err[-2000:]
    assert out.split()[0] == "same"
