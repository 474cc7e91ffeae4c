"""The downloader of ``gln_jax.data.datasets`` against a loopback HTTP server started by each test.

Nothing here reaches beyond 127.0.0.1; every server runs in a daemon thread and is shut down and
closed by its fixture, and every wait is bounded.
"""

import gzip
import hashlib
import http.server
import os
import socket
import stat
import struct
import subprocess
import sys
import threading
import time
import tracemalloc
import zlib
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from gln_jax import utils
from gln_jax.data import datasets

ROOT = Path(__file__).resolve().parents[2]
NAMES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)
FAST = {"timeout": 5.0, "retries": 2, "backoff": 0.01, "progress": False}


def idx_bytes(array: np.ndarray) -> bytes:
    """An uint8 IDX file's bytes, written independently of the parser under test."""
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(np.uint8).tobytes()


def tiny_arrays(seed: int = 0):
    rng = np.random.default_rng(seed)
    return (
        rng.integers(0, 256, (8, 28, 28), dtype=np.uint8),
        rng.integers(0, 10, 8, dtype=np.uint8),
        rng.integers(0, 256, (4, 28, 28), dtype=np.uint8),
        rng.integers(0, 10, 4, dtype=np.uint8),
    )


class Server:
    """A loopback HTTP server serving ``routes[path] = (behaviour, payload)`` and counting hits.

    Behaviours: ``"ok"`` (200 with Content-Length), ``"slow"`` (the body in 8 parts, 0.1 s
    apart), ``"truncated"`` (announces the full length, sends half, closes), ``"hang"`` (sleeps
    past the client's timeout), ``"flaky"`` (500 for the first ``payload[0]`` hits, then
    ``payload[1]``), ``"trickle"`` (announces the full length, then one byte every 0.3 s),
    ``"endless"`` (no Content-Length, 64 KiB chunks until the client leaves), ``"oversized"``
    (announces and sends ``payload`` followed by 64 MiB of zeros) and an int (that HTTP
    status). Every body ends within :data:`Server.SEND_LIMIT_S` seconds; the bytes sent per
    path are counted in ``sent``.
    """

    SEND_LIMIT_S = 20.0

    def __init__(self):
        self.routes, self.hits, self.lock = {}, Counter(), threading.Lock()
        self.sent = Counter()
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                with owner.lock:
                    owner.hits[self.path] += 1
                    count = owner.hits[self.path]
                behaviour, payload = owner.routes.get(self.path, (404, None))
                try:
                    owner.respond(self, behaviour, payload, count)
                except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError):
                    pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def write(self, handler, data: bytes) -> None:
        handler.wfile.write(data)
        handler.wfile.flush()
        with self.lock:
            self.sent[handler.path] += len(data)

    def respond(self, handler, behaviour, payload, count):
        stop = time.monotonic() + self.SEND_LIMIT_S
        if behaviour == "trickle":
            handler.send_response(200)
            handler.send_header("Content-Length", str(len(payload)))
            handler.end_headers()
            for byte in range(len(payload)):
                if time.monotonic() > stop:
                    break
                self.write(handler, payload[byte : byte + 1])
                time.sleep(0.3)
            return
        if behaviour == "endless":
            handler.send_response(200)
            handler.end_headers()  # no Content-Length: the body ends when the server closes
            chunk = bytes(range(256)) * 256
            while time.monotonic() < stop:
                self.write(handler, chunk)
            return
        if behaviour == "oversized":
            body = payload + bytes(64 << 20)
            handler.send_response(200)
            handler.send_header("Content-Length", str(len(body)))
            handler.end_headers()
            for start in range(0, len(body), 1 << 16):
                if time.monotonic() > stop:
                    break
                self.write(handler, body[start : start + (1 << 16)])
            return
        if behaviour == "flaky":
            failures, payload = payload
            behaviour = 500 if count <= failures else "ok"
        if isinstance(behaviour, int):
            handler.send_error(behaviour)
            return
        if behaviour == "hang":
            time.sleep(1.0)
            return
        handler.send_response(200)
        handler.send_header("Content-Length", str(len(payload)))
        handler.end_headers()
        if behaviour == "ok":
            handler.wfile.write(payload)
        elif behaviour == "truncated":
            handler.wfile.write(payload[: len(payload) // 2])
            handler.close_connection = True
        elif behaviour == "slow":
            step = -(-len(payload) // 8)
            for start in range(0, len(payload), step):
                handler.wfile.write(payload[start : start + step])
                handler.wfile.flush()
                time.sleep(0.1)

    def serve(self, prefix: str, name: str, behaviour, payload=None) -> str:
        """Routes ``/prefix/name.gz``; returns the mirror's base URL."""
        self.routes[f"/{prefix}/{name}.gz"] = (behaviour, payload)
        return f"{self.base}/{prefix}/"


@pytest.fixture
def server():
    running = Server()
    running.thread.start()
    try:
        yield running
    finally:
        running.httpd.shutdown()
        running.httpd.server_close()
        running.thread.join(timeout=5)


@pytest.fixture(autouse=True)
def isolated_env(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv(datasets.ENV_DATA_DIR, raising=False)
    for proxy in ("http_proxy", "https_proxy", "all_proxy"):  # loopback must be reached directly
        monkeypatch.delenv(proxy, raising=False)
        monkeypatch.delenv(proxy.upper(), raising=False)


@pytest.fixture
def labels():
    """A small labels file: ``(IDXFile, uncompressed bytes)``."""
    data = idx_bytes(np.arange(200, dtype=np.uint8) % 10)
    return datasets.IDXFile("t10k-labels-idx1-ubyte", hashlib.md5(data).hexdigest(), (200,)), data


def leftovers(directory: Path) -> list[str]:
    """Every file left in ``directory``: data, partial downloads, lock files."""
    if not directory.exists():
        return []
    return sorted(p.name for p in directory.iterdir())


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_a_good_download_is_verified_and_renamed_into_place(server, labels, tmp_path):
    file, data = labels
    mirror = server.serve("m", file.name, "ok", gzip.compress(data))
    path = datasets.download_file(file, tmp_path / "cache", [mirror], **FAST)
    assert path == tmp_path / "cache" / f"{file.name}.gz"
    assert leftovers(tmp_path / "cache") == [path.name]
    np.testing.assert_array_equal(datasets.read_idx(path, md5=file.md5), np.arange(200) % 10)
    assert datasets.download_file(file, tmp_path / "cache", [mirror], **FAST) == path
    assert server.hits[f"/m/{file.name}.gz"] == 1  # the second call reused the verified file


def test_a_plain_file_from_a_mirror_is_kept_uncompressed(server, labels, tmp_path):
    file, data = labels
    path = datasets.download_file(
        file, tmp_path, [server.serve("m", file.name, "ok", data)], **FAST
    )
    assert path.name == file.name and path.read_bytes() == data


def test_a_truncated_download_is_retried_then_refused_and_removed(server, labels, tmp_path):
    file, data = labels
    mirror = server.serve("m", file.name, "truncated", gzip.compress(data))
    with pytest.raises(datasets.DownloadError, match="truncated download, received") as info:
        datasets.download_file(file, tmp_path, [mirror], **FAST)
    assert "attempt 3/3" in str(info.value)
    assert server.hits[f"/m/{file.name}.gz"] == 3
    assert leftovers(tmp_path) == []


def test_a_corrupt_download_names_the_file_and_both_digests(server, labels, tmp_path):
    file, data = labels
    wrong = data[:-1] + b"\x00"  # the last label was 9
    mirror = server.serve("m", file.name, "ok", gzip.compress(wrong))
    with pytest.raises(datasets.ChecksumError) as info:
        datasets.download_file(file, tmp_path, [mirror], **FAST)
    message = str(info.value)
    assert f"{mirror}{file.name}.gz" in message
    assert file.md5 in message and hashlib.md5(wrong).hexdigest() in message
    assert server.hits[f"/m/{file.name}.gz"] == 1  # bad content is not retried
    assert leftovers(tmp_path) == []


def test_a_broken_gzip_stream_moves_on_to_the_next_mirror(server, labels, tmp_path):
    file, data = labels
    broken = server.serve("broken", file.name, "ok", gzip.compress(data)[:-12])
    good = server.serve("good", file.name, "ok", gzip.compress(data))
    path = datasets.download_file(file, tmp_path, [broken, good], **FAST)
    assert datasets.read_idx(path, md5=file.md5).shape == (200,)
    with pytest.raises(datasets.DownloadError, match="broken or truncated gzip"):
        datasets.download_file(file, tmp_path / "other", [broken], **FAST)


def test_server_errors_are_retried_then_the_next_mirror_is_used(server, labels, tmp_path):
    file, data = labels
    failing = server.serve("failing", file.name, 500)
    good = server.serve("good", file.name, "ok", gzip.compress(data))
    path = datasets.download_file(file, tmp_path, [failing, good], **FAST)
    assert datasets.read_idx(path, md5=file.md5).shape == (200,)
    assert server.hits[f"/failing/{file.name}.gz"] == 3
    assert server.hits[f"/good/{file.name}.gz"] == 1


def test_a_transient_error_is_retried_on_the_same_mirror(server, labels, tmp_path):
    file, data = labels
    mirror = server.serve("m", file.name, "flaky", (1, gzip.compress(data)))
    path = datasets.download_file(file, tmp_path, [mirror], **FAST)
    assert datasets.read_idx(path, md5=file.md5).shape == (200,)
    assert server.hits[f"/m/{file.name}.gz"] == 2


def test_a_missing_file_is_not_retried(server, labels, tmp_path):
    file, data = labels
    missing = f"{server.base}/nothing/"
    with pytest.raises(datasets.DownloadError, match="HTTP 404") as info:
        datasets.download_file(file, tmp_path, [missing], **FAST)
    assert "data_dir" in str(info.value) and "GLN_JAX_DATA_DIR" in str(info.value)
    assert server.hits[f"/nothing/{file.name}.gz"] == 1
    good = server.serve("good", file.name, "ok", gzip.compress(data))
    assert datasets.download_file(file, tmp_path, [missing, good], **FAST).is_file()


def test_an_uncreatable_cache_is_a_download_error_with_instructions(labels, tmp_path):
    file, _ = labels
    (tmp_path / "blocker").write_text("a file where the cache directory should be")
    with pytest.raises(datasets.DownloadError, match="cannot create the download cache.*data_dir"):
        datasets.download_file(file, tmp_path / "blocker" / "cache", ["http://127.0.0.1:9/"])


def test_a_timeout_is_retried_and_bounded(server, labels, tmp_path):
    file, _ = labels
    mirror = server.serve("m", file.name, "hang")
    start = time.monotonic()
    with pytest.raises(datasets.DownloadError, match="timed out"):
        datasets.download_file(
            file, tmp_path, [mirror], timeout=0.2, retries=1, backoff=0.01, progress=False
        )
    assert time.monotonic() - start < 3.0
    deadline = time.monotonic() + 2.0  # the server thread may count the request a bit later
    while server.hits[f"/m/{file.name}.gz"] < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert server.hits[f"/m/{file.name}.gz"] == 2
    assert leftovers(tmp_path) == []


def test_offline_fails_fast_with_instructions_and_leaves_nothing(tiny_spec_registered, tmp_path):
    offline = [f"http://127.0.0.1:{closed_port()}/a/", f"http://127.0.0.1:{closed_port()}/b/"]
    start = time.monotonic()
    with pytest.raises(datasets.DownloadError) as info:
        # retries and backoff large enough to notice if an unreachable mirror were retried
        utils.get_mnist(False, dataset="tiny", mirrors=offline, retries=3, progress=False)
    assert time.monotonic() - start < 3.0
    message = str(info.value)
    assert "unreachable" in message and "data_dir" in message and "GLN_JAX_DATA_DIR" in message
    assert all(url in message for url in offline)
    assert leftovers(datasets.user_cache_dir("tiny")) == []


@pytest.fixture
def tiny_spec_registered(monkeypatch):
    arrays = tiny_arrays()
    files = [
        datasets.IDXFile(n, hashlib.md5(idx_bytes(a)).hexdigest(), a.shape)
        for n, a in zip(NAMES, arrays, strict=True)
    ]
    spec = datasets.DatasetSpec("tiny", *files, mirrors=("http://127.0.0.1:9/",), provenance="t")
    monkeypatch.setitem(datasets.DATASETS, "tiny", spec)
    return arrays


def test_get_mnist_downloads_into_the_cache_never_into_a_read_only_data_dir(
    server, tiny_spec_registered, tmp_path
):
    arrays = tiny_spec_registered
    for name, array in zip(NAMES, arrays, strict=True):
        mirror = server.serve("m", name, "ok", gzip.compress(idx_bytes(array)))
    data_dir = tmp_path / "readonly"
    data_dir.mkdir()
    data_dir.chmod(stat.S_IRUSR | stat.S_IXUSR)
    try:
        X_train, y_train, X_test, y_test = utils.get_mnist(
            False, data_dir, "tiny", mirrors=[mirror], progress=False
        )
        assert list(data_dir.iterdir()) == []  # root could write there: check, not trust
    finally:
        data_dir.chmod(stat.S_IRWXU)
    np.testing.assert_array_equal(X_train, arrays[0].reshape(8, 784) / np.float32(255))
    assert X_train.dtype == np.float32 and y_train.dtype == np.int64
    np.testing.assert_array_equal(y_test, arrays[3])
    assert leftovers(datasets.user_cache_dir("tiny")) == sorted(f"{n}.gz" for n in NAMES)
    before = sum(server.hits.values())
    utils.get_mnist(False, data_dir, "tiny", mirrors=[mirror], progress=False)
    assert sum(server.hits.values()) == before  # the second call is served by the cache


_WORKER = """
import sys, time
from pathlib import Path
from gln_jax.data import datasets
base, cache, ready, me, name, md5 = sys.argv[1:]
Path(ready, me).touch()
deadline = time.monotonic() + 60
while len(list(Path(ready).iterdir())) < 2 and time.monotonic() < deadline:
    time.sleep(0.01)
file = datasets.IDXFile(name, md5, (200,))
print(datasets.download_file(file, cache, [base], timeout=10, retries=0, progress=False))
"""


def test_two_processes_downloading_at_once_share_one_download(server, labels, tmp_path):
    file, data = labels
    mirror = server.serve("m", file.name, "slow", gzip.compress(data))
    ready, cache = tmp_path / "ready", tmp_path / "cache"
    ready.mkdir()
    env = dict(os.environ, PYTHONPATH=str(ROOT), JAX_PLATFORMS="cpu")
    args = [mirror, str(cache), str(ready), "", file.name, file.md5]
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", _WORKER, *args[:3], str(i), *args[4:]],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(2)
    ]
    outputs = [worker.communicate(timeout=120) for worker in workers]
    for worker, (out, err) in zip(workers, outputs, strict=True):
        assert worker.returncode == 0, err
        assert out.strip() == str(cache / f"{file.name}.gz")
    assert server.hits[f"/m/{file.name}.gz"] == 1  # the second process waited and reused it
    assert leftovers(cache) == [f"{file.name}.gz"]
    assert datasets.read_idx(cache / f"{file.name}.gz", md5=file.md5).shape == (200,)


# --- hostile servers and files --------------------------------------------------------------------


def test_an_endless_body_is_cut_off_at_the_size_the_file_can_take(server, labels, tmp_path):
    file, _ = labels
    mirror = server.serve("m", file.name, "endless")
    cap = datasets.max_stored_size(file.size)
    start = time.monotonic()
    with pytest.raises(datasets.DownloadError, match=f"longer than the {cap} bytes") as info:
        datasets.download_file(file, tmp_path, [mirror], **FAST)
    assert time.monotonic() - start < 5.0
    assert "stopped reading" in str(info.value)
    assert server.hits[f"/m/{file.name}.gz"] == 1  # not retried: the mirror is passed over
    assert leftovers(tmp_path) == []


def test_an_announced_oversized_body_is_refused_before_reading_it(server, labels, tmp_path):
    file, data = labels
    mirror = server.serve("m", file.name, "oversized", gzip.compress(data))
    with pytest.raises(datasets.DownloadError, match="the server announces .* more than") as info:
        datasets.download_file(file, tmp_path, [mirror], **FAST)
    assert str(file.size) in str(info.value)
    assert server.hits[f"/m/{file.name}.gz"] == 1
    assert leftovers(tmp_path) == []


@pytest.mark.heavy
def test_a_trickling_server_is_stopped_by_the_overall_deadline(server, labels, tmp_path):
    file, data = labels
    mirror = server.serve("m", file.name, "trickle", gzip.compress(data))
    start = time.monotonic()
    with pytest.raises(datasets.DownloadError, match=r"within the deadline of 1.5 s"):
        datasets.download_file(
            file,
            tmp_path,
            [mirror],
            timeout=1.0,
            retries=3,
            backoff=0.01,
            deadline=1.5,
            progress=False,
        )
    elapsed = time.monotonic() - start
    assert elapsed < 3.0, elapsed  # deadline plus at most one read's timeout
    assert server.hits[f"/m/{file.name}.gz"] == 1  # no retry after the deadline
    assert leftovers(tmp_path) == []
    with pytest.raises(ValueError, match="deadline must be a positive number"):
        datasets.download_file(file, tmp_path, [mirror], deadline=0)


def test_a_gzip_bomb_from_a_mirror_is_not_inflated_past_the_expected_size(server, labels, tmp_path):
    file, data = labels
    bomb = gzip.compress(data + bytes(48 << 20), compresslevel=9)  # within the download cap
    assert len(bomb) < datasets.max_stored_size(file.size)
    mirror = server.serve("m", file.name, "ok", bomb)
    tracemalloc.start()
    try:
        with pytest.raises(datasets.DownloadError, match="content longer than the"):
            datasets.download_file(file, tmp_path, [mirror], **FAST)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8 << 20, peak
    assert leftovers(tmp_path) == []


def test_a_corrupt_cached_file_is_downloaded_again(server, tiny_spec_registered, tmp_path):
    arrays = tiny_spec_registered
    for name, array in zip(NAMES, arrays, strict=True):
        mirror = server.serve("m", name, "ok", gzip.compress(idx_bytes(array)))
    cache = datasets.user_cache_dir("tiny")
    cache.mkdir(parents=True)
    for name, array in zip(NAMES, arrays, strict=True):
        (cache / f"{name}.gz").write_bytes(gzip.compress(idx_bytes(array)))
    (cache / f"{NAMES[1]}.gz").write_bytes(gzip.compress(idx_bytes(arrays[1][::-1])))
    (cache / f"{NAMES[2]}.gz").write_bytes(gzip.compress(idx_bytes(arrays[2]))[:-20])
    data = datasets.load_dataset("tiny", mirrors=[mirror], **FAST)
    np.testing.assert_array_equal(data.train_labels, arrays[1])
    np.testing.assert_array_equal(data.test_images, arrays[2])
    assert server.hits == Counter({f"/m/{NAMES[1]}.gz": 1, f"/m/{NAMES[2]}.gz": 1})
    assert leftovers(cache) == sorted(f"{n}.gz" for n in NAMES)
    for file in datasets.DATASETS["tiny"].files:  # the cache now verifies
        datasets.read_idx(cache / f"{file.name}.gz", md5=file.md5, shape=file.shape)


def test_a_corrupt_file_in_a_data_dir_is_never_replaced(server, tiny_spec_registered, tmp_path):
    arrays = tiny_spec_registered
    for name, array in zip(NAMES, arrays, strict=True):
        mirror = server.serve("m", name, "ok", gzip.compress(idx_bytes(array)))
        (tmp_path / f"{name}.gz").write_bytes(gzip.compress(idx_bytes(array)))
    bad = tmp_path / f"{NAMES[1]}.gz"
    bad.write_bytes(gzip.compress(idx_bytes(arrays[1][::-1])))
    before = bad.read_bytes()
    with pytest.raises(datasets.ChecksumError, match=str(bad)):
        datasets.load_dataset("tiny", tmp_path, mirrors=[mirror], **FAST)
    assert bad.read_bytes() == before and sum(server.hits.values()) == 0


@pytest.mark.parametrize(
    ("mebibytes", "match"),
    [(48, "content longer than the {size} bytes expected"), (96, "bytes on disk, more than")],
)
def test_a_gzip_bomb_in_a_data_dir_is_refused_without_inflating_it(
    tiny_spec_registered, tmp_path, mebibytes, match
):
    arrays = tiny_spec_registered
    for name, array in zip(NAMES, arrays, strict=True):
        (tmp_path / f"{name}.gz").write_bytes(gzip.compress(idx_bytes(array)))
    squeeze = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    parts = [squeeze.compress(idx_bytes(arrays[0]))]
    parts += [squeeze.compress(bytes(1 << 20)) for _ in range(mebibytes)]  # zeros
    bomb = tmp_path / f"{NAMES[0]}.gz"
    bomb.write_bytes(b"".join(parts) + squeeze.flush())
    file = datasets.DATASETS["tiny"].train_images
    assert bomb.stat().st_size < 1 << 20
    tracemalloc.start()
    try:
        with pytest.raises(datasets.IDXError, match=match.format(size=file.size)) as info:
            datasets.load_dataset("tiny", tmp_path, download=False)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert str(bomb) in str(info.value)
    assert peak < 8 << 20, peak  # the old reader inflated all of it


def test_offline_get_mnist_leaves_no_lock_file(tiny_spec_registered, tmp_path):
    offline = [f"http://127.0.0.1:{closed_port()}/a/"]
    for deskewed in (False, True):
        with pytest.raises(datasets.DownloadError):
            utils.get_mnist(deskewed, dataset="tiny", mirrors=offline, progress=False)
        assert leftovers(datasets.user_cache_dir("tiny")) == []


def test_a_lock_is_exclusive_and_its_file_is_removed(tmp_path):
    from gln_jax.data.download import cache_lock

    path = tmp_path / "x.lock"
    order = []

    def second():
        with cache_lock(path):
            order.append("second")

    with cache_lock(path):
        assert path.exists()
        worker = threading.Thread(target=second)
        worker.start()
        worker.join(timeout=0.3)
        assert worker.is_alive()  # waits for the first holder
        order.append("first")
    worker.join(timeout=5)
    assert order == ["first", "second"] and not path.exists()
