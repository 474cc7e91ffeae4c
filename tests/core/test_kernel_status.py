"""The kernel's status report, its one fallback warning, and its command line.

The kernel's state is per process, so the fallback checks run in subprocesses, each with its
own ``XDG_CACHE_HOME``.
"""

import json
import os
import platform
import shutil
import subprocess
import sys

import pytest

from gln_jax.core import kernel
from gln_jax.core.kernel import build, library

# two fits in a fresh process: the warnings they gave, their predictions, the status after
_TWO_FITS = """
import json, sys, warnings
import jax, numpy as np, gln_jax
from gln_jax import make_config
from gln_jax.core import kernel
config = make_config([3, 1], 6, num_classes=3, dtype="float32")
state = gln_jax.init(jax.random.key(0), config)
rng = np.random.default_rng(0)
x = rng.random((24, 6)).astype(np.float32)
y = rng.integers(0, 3, 24)
rates = np.full(24, 0.05, np.float32)
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")  # the process's own once-rule is what is checked
    state, first = gln_jax.fit_stream(state, x, x, y, rates, config=config)
    _, second = gln_jax.fit_stream(state, x, x, y, rates, config=config)
np.save(sys.argv[1], np.concatenate([np.asarray(first), np.asarray(second)]))
status = kernel.status()
print(json.dumps({
    "warnings": [[w.category.__name__, str(w.message), w.filename] for w in caught],
    "cause": status.cause,
    "in_use": status.in_use,
}))
"""


def _run(args, cache, **env):
    """``python args...`` in a fresh process with its own cache and ``env`` on top."""
    environment = dict(os.environ, XDG_CACHE_HOME=str(cache), PYTHONPATH=os.pathsep.join(sys.path))
    for name in (library.SWITCH, "CXX", build.EXTRA_FLAGS, build.TARGET):
        environment.pop(name, None)
    environment.update(env)
    return subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, env=environment, timeout=600
    )


def _fits(tmp_path, name, **env):
    script = tmp_path / "fits.py"
    script.write_text(_TWO_FITS)
    out = tmp_path / f"{name}.npy"
    proc = _run([str(script), str(out)], tmp_path / f"cache-{name}", **env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1]), out, script


def _fake_compiler(tmp_path, body):
    fake = tmp_path / "fake-c++"
    fake.write_text(
        f'#!/bin/sh\nif [ "$1" = "--version" ]; then echo fake 1.0; exit 0; fi\n{body}\n'
    )
    fake.chmod(0o755)
    return fake


@pytest.fixture
def fresh_library(monkeypatch):
    """The kernel's per-process state as in a fresh process (restored afterwards)."""
    for name, fresh in [("_status", None), ("_path", None), ("_failure", None)]:
        monkeypatch.setattr(library, name, fresh)
    monkeypatch.setattr(library, "_warned", False)
    monkeypatch.delenv(library.SWITCH, raising=False)


def _seed_cache(built, cache):
    """The built library and its record, copied into a fresh private cache under ``cache``."""
    folder = cache / "gln_jax" / "kernels"
    folder.mkdir(parents=True, mode=0o700)
    folder.chmod(0o700)
    shutil.copy2(built, folder / built.name)
    shutil.copy2(built.with_name(built.name + build.RECORD_SUFFIX), folder)
    return folder / built.name


def test_a_fit_without_a_compiler_warns_once_and_equals_the_pure_jax_path(tmp_path):
    import numpy as np

    missing, _, script = _fits(tmp_path, "missing", CXX="/nonexistent/c++")
    off, _, _ = _fits(tmp_path, "off", CXX="/nonexistent/c++", **{library.SWITCH: "0"})
    assert [w[0] for w in missing["warnings"]] == ["KernelFallbackWarning"]  # two fits, one
    message = missing["warnings"][0][1]
    assert "no C++ compiler found (tried $CXX=/nonexistent/c++)" in message
    assert "pure-JAX path runs instead" in message and "slower" in message
    assert f"{library.SWITCH}=0" in message
    assert missing["warnings"][0][2] == str(script)  # it points at the user's line
    assert (missing["cause"], missing["in_use"]) == (library.NO_COMPILER, False)
    assert off["warnings"] == []  # the pure-JAX path chosen on purpose
    assert off["cause"] == library.SWITCHED_OFF
    np.testing.assert_allclose(
        np.load(tmp_path / "missing.npy"), np.load(tmp_path / "off.npy"), rtol=1e-5, atol=1e-6
    )
    assert not list((tmp_path / "cache-missing").rglob("*.so"))


def test_a_failed_build_warns_with_the_compilers_first_error(tmp_path):
    fake = _fake_compiler(tmp_path, 'echo "x.cc:3:1: error: no such thing" >&2; exit 1')
    result, _, _ = _fits(tmp_path, "broken", CXX=str(fake))
    assert [w[0] for w in result["warnings"]] == ["KernelFallbackWarning"]
    assert "the build failed: x.cc:3:1: error: no such thing" in result["warnings"][0][1]
    assert result["cause"] == library.BUILD_FAILED


def test_the_fallback_warning_is_a_user_warning_given_once(fresh_library, monkeypatch, tmp_path):
    monkeypatch.setenv("CXX", str(tmp_path / "no-such-compiler"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert issubclass(kernel.KernelFallbackWarning, UserWarning)
    assert not kernel.available()  # asking does not warn (the suite turns warnings to errors)
    with pytest.warns(kernel.KernelFallbackWarning, match="no-such-compiler") as caught:
        library.warn_fallback()
        library.warn_fallback()
    assert len(caught) == 1


def test_the_target_chooses_the_instruction_set(monkeypatch):
    monkeypatch.delenv(build.TARGET, raising=False)
    compiler = build.find_compiler() if shutil.which("c++") else None
    assert build.target() == "native" and "-march=native" in build.flags()
    native = build.library_path(compiler) if compiler else None
    monkeypatch.setenv(build.TARGET, " x86-64-v2 ")
    assert build.target() == "x86-64-v2"
    assert "-march=x86-64-v2" in build.flags() and "-march=native" not in build.flags()
    if compiler:  # a library per target: one never stands in for another
        assert build.library_path(compiler) != native
    for bad in ("-O0", "x86 64", "native;rm -rf", "$(cc)", "a" * 65):
        monkeypatch.setenv(build.TARGET, bad)
        with pytest.raises(build.BuildError, match=r"\$GLN_JAX_KERNEL_TARGET=.* is not an"):
            build.flags()
    monkeypatch.setenv(build.TARGET, "")
    assert build.target() == "native"  # empty means unset


def test_an_invalid_target_is_a_failed_build_that_names_it(tmp_path):
    result, _, _ = _fits(tmp_path, "bad-target", **{build.TARGET: "not a cpu"})
    assert [w[0] for w in result["warnings"]] == ["KernelFallbackWarning"]
    assert "$GLN_JAX_KERNEL_TARGET='not a cpu' is not an" in result["warnings"][0][1]
    assert (result["cause"], result["in_use"]) == (library.BUILD_FAILED, False)


@pytest.mark.skipif(platform.machine() not in ("x86_64", "AMD64"), reason="x86-64 targets")
def test_builds_for_two_instruction_sets_give_the_same_bits(tmp_path, built):
    """The kernel's float operations and their order are fixed by its source, and fused
    multiply-adds are off: a baseline build (``x86-64-v2``, SSE4.2) computes bit for bit what a
    build for this CPU (``native``) computes (the process's exp and log are the same)."""
    import numpy as np

    baseline, _, _ = _fits(tmp_path, "v2", **{build.TARGET: "x86-64-v2"})
    native, _, _ = _fits(tmp_path, "native", **{build.TARGET: "native"})
    assert baseline["in_use"] and native["in_use"]
    np.testing.assert_array_equal(np.load(tmp_path / "v2.npy"), np.load(tmp_path / "native.npy"))


def test_cxx_is_honoured_first_and_alone(monkeypatch, tmp_path):
    fake = _fake_compiler(tmp_path, "exit 1")
    monkeypatch.setenv("CXX", str(fake))
    assert build.find_compiler() == str(fake)
    monkeypatch.setenv("CXX", "/nonexistent/c++")
    with pytest.raises(build.CompilerNotFoundError, match=r"\$CXX=/nonexistent/c\+\+"):
        build.find_compiler()  # never replaced by a c++ or g++ on the PATH
    monkeypatch.delenv("CXX")
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(build.CompilerNotFoundError, match=r"c\+\+, g\+\+, clang\+\+"):
        build.find_compiler()


def test_status_in_this_process(built):
    assert kernel.available()
    status = kernel.status()
    assert status.in_use and status.cause is None and status.reason is None
    assert status.built and status.library == built
    assert status.cache_dir == build.cache_dir() == built.parent
    assert status.compiler == build.find_compiler() and status.compiler_version
    assert status.flags == build.flags() and status.backend == "cpu"
    text = str(status)
    assert text.startswith("fused CPU kernel: in use\n")
    assert str(built) in text and "(built, loaded)" in text
    with pytest.raises(AttributeError):
        status.in_use = False  # frozen


def test_status_builds_nothing_unless_asked(fresh_library, monkeypatch, tmp_path, built):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "empty"))
    status = kernel.status()
    assert (status.in_use, status.cause, status.built) == (False, library.NOT_BUILT, False)
    assert "not built yet" in str(status) and "python -m gln_jax.core.kernel build" in str(status)
    assert not (tmp_path / "empty").exists()
    assert library._status is None  # nothing loaded either

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "seeded"))
    target = _seed_cache(built, tmp_path / "seeded")
    status = kernel.status()
    assert (status.cause, status.built, status.library) == (library.NOT_LOADED, True, target)
    assert library._status is None


def test_status_when_switched_off_and_when_the_cache_is_not_private(
    fresh_library, monkeypatch, tmp_path, built
):
    monkeypatch.setenv(library.SWITCH, "0")
    status = kernel.status(build=True)  # switched off: asked to build, it still does not
    assert (status.in_use, status.cause) == (False, library.SWITCHED_OFF)
    assert "GLN_JAX_KERNEL=0" in str(status) and library._status is None
    monkeypatch.delenv(library.SWITCH)
    folder = tmp_path / "cache" / "gln_jax" / "kernels"
    folder.mkdir(parents=True)
    folder.chmod(0o777)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    status = kernel.status()
    assert status.cause == library.CACHE_NOT_PRIVATE and "writable by others" in status.reason
    assert "pure-JAX path runs instead" in str(status)


def test_status_after_a_failed_build(fresh_library, monkeypatch, tmp_path):
    fake = _fake_compiler(tmp_path, 'echo "x.cc:3:1: error: no such thing" >&2; exit 1')
    monkeypatch.setenv("CXX", str(fake))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    status = kernel.status(build=True)
    assert (status.in_use, status.cause) == (False, library.BUILD_FAILED)
    assert status.reason == "the build failed: x.cc:3:1: error: no such thing"
    assert status.compiler == str(fake) and status.compiler_version == "fake 1.0"
    assert not status.built
    monkeypatch.setenv("CXX", "/nonexistent/c++")
    monkeypatch.setattr(library, "_status", None)
    status = kernel.status()
    assert (status.cause, status.compiler, status.library) == (library.NO_COMPILER, None, None)
    assert "compiler: none" in str(status)


def test_the_command_line_builds_ahead_of_time(built, tmp_path):
    proc = _run(["-m", "gln_jax.core.kernel", "build"], tmp_path / "cache")
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.splitlines()
    assert lines[0] == f"built {tmp_path / 'cache' / 'gln_jax' / 'kernels' / built.name}"
    assert lines[1] == "fused CPU kernel: in use"
    assert build.verified(tmp_path / "cache" / "gln_jax" / "kernels" / built.name)
    again = _run(["-m", "gln_jax.core.kernel", "build"], tmp_path / "cache")
    assert again.returncode == 0 and again.stdout.startswith("already built ")
    status = _run(["-m", "gln_jax.core.kernel", "status"], tmp_path / "cache")
    assert status.returncode == 0
    assert status.stdout.startswith("fused CPU kernel: not in use yet (built;")


def test_the_command_line_reports_a_failed_build(tmp_path):
    fake = _fake_compiler(tmp_path, 'echo "x.cc:3:1: error: no such thing" >&2; exit 1')
    proc = _run(["-m", "gln_jax.core.kernel", "build"], tmp_path / "cache", CXX=str(fake))
    assert proc.returncode == 1
    assert "could not be built" in proc.stderr and "error: no such thing" in proc.stderr
    proc = _run(["-m", "gln_jax.core.kernel", "build"], tmp_path / "c", CXX="/nonexistent/c++")
    assert proc.returncode == 1 and "no C++ compiler found" in proc.stderr
    proc = _run(["-m", "gln_jax.core.kernel", "status"], tmp_path / "c", CXX="/nonexistent/c++")
    assert proc.returncode == 0 and "not in use (no compiler)" in proc.stdout
    assert not (tmp_path / "c").exists()
