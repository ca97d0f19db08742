"""Tests for napari_sam2.weights against a real HTTP server on 127.0.0.1 (no mocks, offline)."""

from __future__ import annotations

import hashlib
import http.server
import os
import shutil
import socket
import subprocess
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from napari_sam2 import weights
from napari_sam2.weights import Checkpoint, CheckpointError, cache_dir, fetch_checkpoint

NAME = "sam2.1_hiera_tiny"
FILENAME = "sam2.1_hiera_tiny.pt"
SIZE = 300_000
PAYLOAD = os.urandom(SIZE)
SHA = hashlib.sha256(PAYLOAD).hexdigest()


@dataclass
class Server:
    """A running local HTTP server; ``routes`` maps a path to a handler behaviour."""

    base_url: str
    routes: dict[str, Callable[[http.server.BaseHTTPRequestHandler], None]] = field(default_factory=dict)
    requests: list[str] = field(default_factory=list)
    stop: Callable[[], None] = lambda: None
    release: threading.Event = field(default_factory=threading.Event)


def serve_bytes(data: bytes) -> Callable[[http.server.BaseHTTPRequestHandler], None]:
    """Behaviour: a normal 200 response carrying ``data``."""

    def handle(h: http.server.BaseHTTPRequestHandler) -> None:
        h.send_response(200)
        h.send_header("Content-Type", "application/octet-stream")
        h.send_header("Content-Length", str(len(data)))
        h.end_headers()
        h.wfile.write(data)

    return handle


def serve_truncated(data: bytes) -> Callable[[http.server.BaseHTTPRequestHandler], None]:
    """Behaviour: announce the full Content-Length, send half the bytes, close the connection."""

    def handle(h: http.server.BaseHTTPRequestHandler) -> None:
        h.send_response(200)
        h.send_header("Content-Length", str(len(data)))
        h.end_headers()
        h.wfile.write(data[: len(data) // 2])
        h.wfile.flush()
        h.close_connection = True

    return handle


@pytest.fixture
def server() -> Iterator[Server]:
    """Start a ThreadingHTTPServer on a free port for one test; shut it down afterwards."""
    state: Server

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server API)
            state.requests.append(self.path)
            route = state.routes.get(self.path)
            if route is None:
                self.send_error(404, "Not Found")
            else:
                route(self)

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            pass  # keep test output quiet

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    stopped = False

    def stop() -> None:
        nonlocal stopped
        if not stopped:
            stopped = True
            state.release.set()
            httpd.shutdown()
            httpd.server_close()
            thread.join(timeout=5)

    state = Server(base_url=f"http://127.0.0.1:{httpd.server_address[1]}/mirror/", stop=stop)
    try:
        yield state
    finally:
        stop()


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point the cache at tmp_path and make the registry entry describe the small test payload."""
    folder = tmp_path / "cache"
    monkeypatch.setenv("NAPARI_SAM2_CACHE", str(folder))
    monkeypatch.delenv("NAPARI_SAM2_BASE_URL", raising=False)
    monkeypatch.setitem(weights.CHECKPOINTS, NAME,
                        Checkpoint(weights.CHECKPOINTS[NAME].url, SIZE, SHA))
    return folder


class Recorder:
    """A tqdm-like progress object that records what it was told."""

    def __init__(self) -> None:
        self.total: int | None = None
        self.updates: list[int] = []
        self.closed = False

    def update(self, n: int) -> None:
        self.updates.append(n)

    def close(self) -> None:
        self.closed = True


def leftovers(folder: Path) -> list[str]:
    """Names of all files in the cache folder (temporary files included)."""
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_registry_is_complete() -> None:
    assert len(weights.CHECKPOINTS) == 9
    for name, ckpt in weights.CHECKPOINTS.items():
        assert ckpt.filename == f"{name}.pt"
        if name == "edgetam":  # a blob of Meta's EdgeTAM repository, pinned to a commit
            assert ckpt.url.startswith("https://github.com/facebookresearch/EdgeTAM/raw/")
            assert ckpt.sha256 is None and ckpt.git_blob is not None and len(ckpt.git_blob) == 40
            continue
        assert ckpt.url.startswith("https://dl.fbaipublicfiles.com/segment_anything_2/")
        assert ckpt.sha256 is not None and len(ckpt.sha256) == 64 and int(ckpt.sha256, 16) >= 0
    assert weights.CHECKPOINTS["sam2_hiera_small"].size is None


def git_hash_object(path: Path) -> str:
    """The object id git itself gives the file (the reference for napari-sam2's own computation)."""
    git = shutil.which("git")
    if git is None:
        pytest.skip("git is not installed")
    return subprocess.run([git, "hash-object", str(path)], check=True, capture_output=True,
                          text=True).stdout.strip()


def test_a_git_blob_checksum_accepts_that_file_and_refuses_another(server: Server, cache: Path, tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    source = tmp_path / "edgetam.pt"
    source.write_bytes(PAYLOAD)
    blob = git_hash_object(source)
    assert weights.git_blob_id(source) == blob
    monkeypatch.setitem(weights.CHECKPOINTS, "edgetam",
                        Checkpoint(weights.CHECKPOINTS["edgetam"].url, None, None, git_blob=blob))
    other = PAYLOAD[:-1] + bytes([PAYLOAD[-1] ^ 1])
    server.routes["/mirror/edgetam.pt"] = serve_bytes(other)
    with pytest.raises(CheckpointError) as info:
        fetch_checkpoint("edgetam", progress=False, base_url=server.base_url)
    assert "git object id" in str(info.value) and blob in str(info.value)
    assert leftovers(cache) == []

    server.routes["/mirror/edgetam.pt"] = serve_bytes(PAYLOAD)
    path = fetch_checkpoint("edgetam", progress=False, base_url=server.base_url)
    assert path == cache / "edgetam.pt" and path.read_bytes() == PAYLOAD
    with pytest.raises(ValueError, match="exactly one checksum"):
        Checkpoint("https://example.org/x.pt", None, SHA, git_blob=blob)


def test_download_then_cached(server: Server, cache: Path) -> None:
    server.routes[f"/mirror/{FILENAME}"] = serve_bytes(PAYLOAD)
    rec = Recorder()
    path = fetch_checkpoint(NAME, progress=rec, base_url=server.base_url)
    assert path == cache / FILENAME
    assert path.read_bytes() == PAYLOAD
    assert rec.total == SIZE and sum(rec.updates) == SIZE and rec.closed
    assert leftovers(cache) == [FILENAME]
    assert server.requests == [f"/mirror/{FILENAME}"]

    # Second call: no new request, even with the server gone.
    server.stop()
    assert fetch_checkpoint(NAME, progress=False, base_url=server.base_url) == path
    assert fetch_checkpoint(NAME + ".pt", progress=False) == path
    assert len(server.requests) == 1


def test_base_url_from_env_and_default_bar(server: Server, cache: Path,
                                           monkeypatch: pytest.MonkeyPatch,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    server.routes[f"/mirror/{FILENAME}"] = serve_bytes(PAYLOAD)
    monkeypatch.setenv("NAPARI_SAM2_BASE_URL", server.base_url)
    path = fetch_checkpoint(NAME)  # progress=None -> tqdm on stderr
    assert path.read_bytes() == PAYLOAD
    assert FILENAME in capsys.readouterr().err


def test_wrong_size_file_in_cache_is_replaced(server: Server, cache: Path) -> None:
    server.routes[f"/mirror/{FILENAME}"] = serve_bytes(PAYLOAD)
    cache.mkdir(parents=True)
    (cache / FILENAME).write_bytes(b"stale")
    path = fetch_checkpoint(NAME, progress=False, base_url=server.base_url)
    assert path.read_bytes() == PAYLOAD and len(server.requests) == 1
    assert leftovers(cache) == [FILENAME]


def test_interrupted_transfer(server: Server, cache: Path) -> None:
    server.routes[f"/mirror/{FILENAME}"] = serve_truncated(PAYLOAD)
    rec = Recorder()
    with pytest.raises(CheckpointError, match="interrupted") as info:
        fetch_checkpoint(NAME, progress=rec, base_url=server.base_url)
    assert f"of {SIZE} bytes" in str(info.value)
    assert info.value.__cause__ is not None  # chained, not swallowed
    assert rec.closed
    assert leftovers(cache) == []


def test_interrupted_transfer_unknown_size(server: Server, cache: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(weights.CHECKPOINTS, NAME, Checkpoint(weights.CHECKPOINTS[NAME].url, None, SHA))
    server.routes[f"/mirror/{FILENAME}"] = serve_truncated(PAYLOAD)
    with pytest.raises(CheckpointError, match="interrupted"):
        fetch_checkpoint(NAME, progress=False, base_url=server.base_url)
    assert leftovers(cache) == []


def test_wrong_checksum(server: Server, cache: Path) -> None:
    other = bytes(b ^ 0xFF for b in PAYLOAD[:16]) + PAYLOAD[16:]
    server.routes[f"/mirror/{FILENAME}"] = serve_bytes(other)
    with pytest.raises(CheckpointError) as info:
        fetch_checkpoint(NAME, progress=False, base_url=server.base_url)
    msg = str(info.value)
    assert SHA in msg and hashlib.sha256(other).hexdigest() in msg
    assert "discarded" in msg and "load_model" in msg
    assert leftovers(cache) == []


def test_http_404(server: Server, cache: Path) -> None:
    with pytest.raises(CheckpointError, match="404") as info:
        fetch_checkpoint(NAME, progress=False, base_url=server.base_url)
    assert str(cache / FILENAME) in str(info.value)
    assert leftovers(cache) == []


def test_read_timeout(server: Server, cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def hang(h: http.server.BaseHTTPRequestHandler) -> None:
        server.release.wait(timeout=5)  # bounded; released at teardown

    server.routes[f"/mirror/{FILENAME}"] = hang
    monkeypatch.setattr(weights, "TIMEOUT", (2.0, 0.3))
    with pytest.raises(CheckpointError, match="could not be downloaded") as info:
        fetch_checkpoint(NAME, progress=False, base_url=server.base_url)
    assert "Timeout" in str(info.value)
    assert leftovers(cache) == []


def test_connection_refused(cache: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(CheckpointError) as info:
        fetch_checkpoint(NAME, progress=False, base_url=f"http://127.0.0.1:{port}")
    msg = str(info.value)
    assert f"http://127.0.0.1:{port}/{FILENAME}" in msg
    assert str(cache / FILENAME) in msg and "load_model" in msg and "NAPARI_SAM2_BASE_URL" in msg
    assert info.value.__cause__ is not None
    assert leftovers(cache) == []


def test_unknown_name(cache: Path) -> None:
    with pytest.raises(CheckpointError) as info:
        fetch_checkpoint("sam3_hiera_huge", progress=False)
    msg = str(info.value)
    assert "sam3_hiera_huge" in msg and "path" in msg
    assert all(name in msg for name in weights.CHECKPOINTS)


def test_cache_dir_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NAPARI_SAM2_CACHE", str(tmp_path / "x"))
    assert cache_dir() == tmp_path / "x"
    monkeypatch.delenv("NAPARI_SAM2_CACHE")
    default = cache_dir()
    assert default.name == "checkpoints" and "napari-sam2" in str(default)
