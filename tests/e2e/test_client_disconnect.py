"""A worker that dies in the middle of uploading its image (the chaos suite's SIGKILL) leaves no 500 and no
traceback: the server answers ``ClientDisconnected`` to nobody and logs one line."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from urllib.parse import urlsplit

import httpx
import pytest
from tests.e2e.conftest import LiveServer

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize("db_backend", ["sqlite"], indirect=True)
def test_upload_cut_off_mid_body_is_not_a_server_error(live_server: Callable[..., LiveServer]) -> None:
    server = live_server()
    with httpx.Client(base_url=server.api_url + "v2/", timeout=10, trust_env=False) as client:
        apikey = client.post("register", json={"username": "cutoff"}).json()["apikey"]
        headers = {"apikey": apikey}
        queued = client.post(
            "generate/async", headers=headers, json={"prompt": "cut", "params": {"width": 64, "height": 64, "steps": 5}}
        )
        assert queued.status_code == 202, queued.text
        job = client.post(
            "generate/pop", headers=headers, json={"name": "cutoff-worker", "models": ["stable_diffusion"]}
        ).json()
        assert job["id"], job

    upload = urlsplit(job["r2_upload"])
    target = f"{upload.path}?{upload.query}"
    with socket.create_connection((upload.hostname, upload.port), timeout=5) as raw:
        raw.sendall(
            f"PUT {target} HTTP/1.1\r\nHost: {upload.netloc}\r\nContent-Type: image/webp\r\n"
            "Content-Length: 100000\r\n\r\n".encode()
            + b"RIFF"
            + b"\0" * 1000
        )
        time.sleep(0.3)  # the server is now reading the body; then the "worker" dies
    deadline = time.monotonic() + 10
    while "client disconnected during PUT" not in server.log_tail() and time.monotonic() < deadline:
        time.sleep(0.1)

    log = server.log_tail(60_000)
    assert "client disconnected during PUT /blobs/" in log, log
    assert "Traceback" not in log and " 500" not in log, log
