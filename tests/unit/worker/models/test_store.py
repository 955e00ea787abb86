"""The model store: SHA-256 checks with a sidecar cache, and downloads from a loopback HTTP server."""

from __future__ import annotations

import hashlib
import http.server
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from openhorde.worker.models import download as download_module
from openhorde.worker.models import hashes as hashes_module
from openhorde.worker.models.catalogue import AdapterEntry, ModelEntry
from openhorde.worker.models.store import (
    ChecksumMismatch,
    DownloadFailed,
    ModelStore,
    ModelUnavailable,
    file_sha256,
)

PAYLOAD = os.urandom(3 * 1024 * 1024 + 17)
PAYLOAD_SHA = hashlib.sha256(PAYLOAD).hexdigest()


class FileServer(http.server.ThreadingHTTPServer):
    """Serves PAYLOAD at /model.safetensors; ``failures`` answers that many requests with a 503 first."""

    failures = 0
    requests = 0


class Handler(http.server.BaseHTTPRequestHandler):
    server: FileServer

    def do_GET(self) -> None:
        self.server.requests += 1
        if self.server.failures > 0:
            self.server.failures -= 1
            self.send_error(503)
            return
        if self.path != "/model.safetensors":
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(PAYLOAD)))
        self.end_headers()
        self.wfile.write(PAYLOAD)

    def log_message(self, format: str, *args: object) -> None:  # keep the test output quiet
        pass


@pytest.fixture
def server() -> Iterator[FileServer]:
    httpd = FileServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield httpd
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()


def url_of(server: FileServer, path: str = "/model.safetensors") -> str:
    return f"http://127.0.0.1:{server.server_address[1]}{path}"


def files_in(folder: Path) -> list[Path]:
    """The folder's entries but the download locks' folder (lock files stay by design)."""
    return [path for path in folder.iterdir() if path.name != ".locks"]


@pytest.fixture
def count_hashing(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    hashed: list[Path] = []
    real = hashes_module._hash_file

    def counting(path: Path, algorithm: hashes_module.Algorithm = "sha256") -> str:
        hashed.append(path)
        return real(path, algorithm)

    monkeypatch.setattr(hashes_module, "_hash_file", counting)
    return hashed


def test_a_present_file_with_the_right_hash_passes(tmp_path: Path) -> None:
    path = tmp_path / "model.safetensors"
    path.write_bytes(PAYLOAD)
    entry = ModelEntry(name="m", baseline="sd1", file="model.safetensors", sha256=PAYLOAD_SHA)
    assert ModelStore(tmp_path).ensure(entry, progress=False) == path


def test_a_corrupted_file_raises_checksum_mismatch(tmp_path: Path) -> None:
    path = tmp_path / "model.safetensors"
    path.write_bytes(PAYLOAD[:-1] + b"x")
    entry = ModelEntry(name="m", baseline="sd1", file=str(path), sha256=PAYLOAD_SHA)
    with pytest.raises(ChecksumMismatch) as caught:
        ModelStore(tmp_path / "elsewhere").ensure(entry, progress=False)
    assert caught.value.expected == PAYLOAD_SHA
    assert caught.value.actual == hashlib.sha256(path.read_bytes()).hexdigest()
    assert PAYLOAD_SHA in str(caught.value) and caught.value.actual in str(caught.value)
    assert path.exists()  # the user's own file is not deleted


def test_the_sidecar_spares_rehashing_until_the_file_changes(tmp_path: Path, count_hashing: list[Path]) -> None:
    path = tmp_path / "model.safetensors"
    path.write_bytes(PAYLOAD)
    store = ModelStore(tmp_path)
    for _ in range(3):
        store.ensure_file(path, None, PAYLOAD_SHA)
    assert count_hashing == [path]
    assert (tmp_path / "model.safetensors.sha256").is_file()

    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    store.ensure_file(path, None, PAYLOAD_SHA)
    assert count_hashing == [path, path]

    # New content (here also a new size) is hashed again and caught.
    path.write_bytes(PAYLOAD + b"!")
    with pytest.raises(ChecksumMismatch):
        store.ensure_file(path, None, PAYLOAD_SHA)
    assert len(count_hashing) == 3


def test_a_garbled_sidecar_is_ignored(tmp_path: Path, count_hashing: list[Path]) -> None:
    path = tmp_path / "model.safetensors"
    path.write_bytes(PAYLOAD)
    (tmp_path / "model.safetensors.sha256").write_text(PAYLOAD_SHA)  # another tool's plain-text sidecar
    assert file_sha256(path) == PAYLOAD_SHA
    assert file_sha256(path) == PAYLOAD_SHA
    assert len(count_hashing) == 1


def test_a_missing_file_without_url_is_unavailable(tmp_path: Path) -> None:
    entry = ModelEntry(name="Deliberate", baseline="sd1", file="deliberate.safetensors")
    with pytest.raises(
        ModelUnavailable, match=r"Model 'Deliberate'.*deliberate.safetensors does not exist.*no download URL"
    ):
        ModelStore(tmp_path).ensure(entry)


def test_a_missing_adapter_is_named_as_such(tmp_path: Path) -> None:
    entry = AdapterEntry(name="easynegative", kind="ti", file="ti/easynegative.safetensors")
    with pytest.raises(ModelUnavailable, match=r"^Textual inversion 'easynegative': .*does not exist"):
        ModelStore(tmp_path).ensure(entry)


def test_a_missing_folder_is_unavailable(tmp_path: Path) -> None:
    entry = ModelEntry(name="f", baseline="sd1", file="folder")
    with pytest.raises(ModelUnavailable, match="diffusers folder"):
        ModelStore(tmp_path).ensure(entry)
    (tmp_path / "folder").mkdir()
    assert ModelStore(tmp_path).ensure(entry) == tmp_path / "folder"


def test_resolve_is_relative_to_the_root_unless_absolute(tmp_path: Path) -> None:
    store = ModelStore(tmp_path)
    assert store.resolve(ModelEntry(name="m", baseline="sd1", file="a/b.safetensors")) == tmp_path / "a/b.safetensors"
    assert store.resolve(AdapterEntry(name="l", kind="lora", file="/x/l.safetensors")) == Path("/x/l.safetensors")
    with pytest.raises(ModelUnavailable, match="no file"):
        store.resolve(ModelEntry(name="h", baseline="sd1", hub_id="a/b"))


def test_a_missing_file_is_downloaded_and_verified(
    tmp_path: Path, server: FileServer, count_hashing: list[Path]
) -> None:
    entry = ModelEntry(
        name="m", baseline="sd1", file="sub/model.safetensors", url=url_of(server), sha256=PAYLOAD_SHA.upper()
    )
    path = ModelStore(tmp_path).ensure(entry, progress=False)
    assert path == tmp_path / "sub" / "model.safetensors"
    assert path.read_bytes() == PAYLOAD
    assert not (tmp_path / "sub" / "model.safetensors.partial").exists()
    # The hash taken while downloading is recorded, so the next start does not read the file again.
    assert ModelStore(tmp_path).ensure(entry, progress=False) == path
    assert count_hashing == []
    assert server.requests == 1


def test_a_download_with_the_wrong_hash_leaves_nothing_behind(tmp_path: Path, server: FileServer) -> None:
    lora = AdapterEntry(name="l", kind="lora", file="loras/l.safetensors", url=url_of(server), sha256="0" * 64)
    with pytest.raises(ChecksumMismatch, match="discarded") as caught:
        ModelStore(tmp_path).ensure(lora, progress=False)
    assert caught.value.actual == PAYLOAD_SHA
    assert files_in(tmp_path / "loras") == []


def test_server_errors_are_retried_with_backoff(
    tmp_path: Path, server: FileServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    sleeps: list[float] = []
    monkeypatch.setattr(download_module.time, "sleep", sleeps.append)
    server.failures = 2
    path = ModelStore(tmp_path, retry_delay_s=1.0).ensure_file(tmp_path / "m.safetensors", url_of(server), None)
    assert path.read_bytes() == PAYLOAD
    assert sleeps == [1.0, 2.0]
    assert server.requests == 3


def test_a_download_that_keeps_failing_gives_up(
    tmp_path: Path, server: FileServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(download_module.time, "sleep", lambda _: None)
    server.failures = 10
    with pytest.raises(DownloadFailed, match=r"failed 3 times.*503"):
        ModelStore(tmp_path).ensure_file(tmp_path / "m.safetensors", url_of(server), None)
    assert server.requests == 3
    assert files_in(tmp_path) == []


def test_a_client_error_is_not_retried(tmp_path: Path, server: FileServer) -> None:
    with pytest.raises(DownloadFailed, match="HTTP 404"):
        ModelStore(tmp_path).ensure_file(tmp_path / "m.safetensors", url_of(server, "/nothing"), None)
    assert server.requests == 1
    assert files_in(tmp_path) == []


def test_an_unreachable_server_is_a_download_failure(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(download_module.time, "sleep", lambda _: None)
    httpd = FileServer(("127.0.0.1", 0), Handler)
    port = httpd.server_address[1]
    httpd.server_close()  # nothing listens on this port any more
    with pytest.raises(DownloadFailed, match="failed 3 times"):
        ModelStore(tmp_path).ensure_file(tmp_path / "m.safetensors", f"http://127.0.0.1:{port}/m.safetensors", None)
