"""A loopback HTTP file server for download tests, and model reference files of the real format.

``FileServer`` serves ``files`` (path → bytes) with ``Range`` support, counts requests per path, records
the ``Range`` headers asked for, and can misbehave on purpose: ``failures`` answers that many requests
with a 503, ``cut_after[path]`` sends the full Content-Length but closes the connection after that many
bytes (once), ``ignore_range`` answers every request with the whole file, ``delay_s`` slows every answer.
"""

from __future__ import annotations

import hashlib
import http.server
import json
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


class FileServer(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.files: dict[str, bytes] = {}
        self.requests: Counter[str] = Counter()
        self.ranges: list[str | None] = []
        self.seen: list[str] = []
        """Every request's path with its query string."""
        self.failures = 0
        self.cut_after: dict[str, int] = {}
        self.ignore_range = False
        self.delay_s = 0.0
        self._lock = threading.Lock()

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def url(self, path: str) -> str:
        return f"{self.base}/{path.lstrip('/')}"

    def publish(self, path: str, body: bytes) -> str:
        """Serve ``body`` at ``path``; returns its URL."""
        self.files["/" + path.lstrip("/")] = body
        return self.url(path)


class _Handler(http.server.BaseHTTPRequestHandler):
    server: FileServer
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        server = self.server
        path = self.path.split("?", 1)[0]
        with server._lock:
            server.requests[path] += 1
            server.ranges.append(self.headers.get("Range"))
            server.seen.append(self.path)
            failing = server.failures > 0
            if failing:
                server.failures -= 1
            cut = server.cut_after.pop(path, None)
        if server.delay_s:
            time.sleep(server.delay_s)
        if failing:
            self._empty(503)
            return
        body = server.files.get(self.path, server.files.get(path))  # an exact query string wins
        if body is None:
            self._empty(404)
            return
        start = 0
        wanted = self.headers.get("Range")
        if wanted and not server.ignore_range:
            start = int(wanted.removeprefix("bytes=").split("-")[0])
            if start >= len(body):
                self._empty(416)
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(len(body) - start))
        self.end_headers()
        if cut is not None:
            self.wfile.write(body[start : start + cut])
            self.wfile.flush()
            self.close_connection = True
            return
        try:
            self.wfile.write(body[start:])
        except (BrokenPipeError, ConnectionResetError):  # the client stopped reading (a refused download)
            self.close_connection = True

    def _empty(self, status: int) -> None:
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:  # keep the test output quiet
        pass


@contextmanager
def serving() -> Iterator[FileServer]:
    """A running ``FileServer``, shut down afterwards."""
    server = FileServer()
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def sha256(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def reference_record(
    name: str,
    *,
    baseline: str = "stable diffusion 1",
    files: list[tuple[str, bytes, str]] | None = None,
    **fields: Any,
) -> dict[str, Any]:
    """One record of the AI Horde image model reference; ``files`` are (path, body, url) with sha256 sums.

    A path with a folder becomes ``file_path`` + ``file_name`` in the download list, as upstream writes it.
    """
    listed: list[dict[str, Any]] = []
    downloads: list[dict[str, Any]] = []
    for path, body, url in files or []:
        folder, _, file_name = path.rpartition("/")
        listed.append({"path": file_name, "sha256sum": sha256(body).upper()})
        downloads.append({"file_name": file_name, "file_path": folder, "file_url": url})
    # Upstream lists the LDM yaml config too, with no download: the reader must skip it.
    listed.append({"path": "v1-inference.yaml"})
    size = sum(len(body) for _, body, _ in files or [])
    record: dict[str, Any] = {
        "name": name,
        "baseline": baseline,
        "type": "ckpt",
        "inpainting": False,
        "description": f"{name} for tests.",
        "version": "1.0",
        "style": "generalist",
        "nsfw": False,
        "download_all": True,
        "config": {"files": listed, "download": downloads},
        "available": False,
        "size_on_disk_bytes": size,
    }
    record.update(fields)
    return record


def reference_json(*records: dict[str, Any]) -> bytes:
    return json.dumps({record["name"]: record for record in records}, indent=1).encode()


def tiny_model_files(folder: Path) -> list[tuple[str, bytes]]:
    """The tiny model as a reference publishes it: the checkpoint, and its diffusers config files in a folder."""
    from openhorde.worker.models.checkpoint import export_tiny_model

    checkpoint, config_dir = export_tiny_model(folder)
    files = [(f"tiny/{checkpoint.name}", checkpoint.read_bytes())]
    for path in sorted(config_dir.rglob("*.json")):
        files.append((f"tiny/config/{path.relative_to(config_dir).as_posix()}", path.read_bytes()))
    return files
