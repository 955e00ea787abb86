"""`openhorde serve --workers 2`: two server processes on one database serve one horde."""

from __future__ import annotations

import io
import os
import subprocess
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from PIL import Image
from tests.e2e.conftest import LiveServer, openhorde_command

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]  # several server processes share one PostgreSQL

REQUESTS = 12


def _children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(child) for child in (task / "children").read_text().split()]
    return found


def _webp() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 64), (10, 120, 200)).save(buffer, format="WEBP")
    return buffer.getvalue()


def _work(api: str, apikey: str, name: str) -> list[str]:
    """Pop, upload and submit until a pop comes back empty twice; the job ids this worker finished."""
    done: list[str] = []
    empty = 0
    with httpx.Client(timeout=30) as client:
        while empty < 2:
            job = client.post(
                f"{api}v2/generate/pop", headers={"apikey": apikey}, json={"name": name, "models": ["stable_diffusion"]}
            ).json()
            if not job["ids"]:
                empty += 1
                continue
            assert client.put(job["r2_upload"], content=_webp()).status_code == 200
            answer = client.post(
                f"{api}v2/generate/submit",
                headers={"apikey": apikey},
                json={"id": job["id"], "generation": "R2", "seed": 1},
            )
            assert answer.status_code == 200, answer.text
            done.append(job["id"])
    return done


def test_two_processes_share_one_horde(
    live_server: Callable[..., LiveServer], db_backend: tuple[str, str | None]
) -> None:
    if db_backend[0] != "postgres":
        pytest.skip("several server processes are meant for PostgreSQL")
    server = live_server(extra_args=["--workers", "2"])
    assert len(_children(server.proc.pid)) >= 2
    api = server.api_url
    with httpx.Client(timeout=30) as client:
        requester = client.post(f"{api}v2/register", json={"username": "asker"}).json()["apikey"]
        owner = client.post(f"{api}v2/register", json={"username": "owner"}).json()["apikey"]
        ids = [
            client.post(
                f"{api}v2/generate/async",
                headers={"apikey": requester},
                json={"prompt": "two", "params": {"width": 64, "height": 64}},
            ).json()["id"]
            for _ in range(REQUESTS)
        ]
        with ThreadPoolExecutor(max_workers=4) as pool:
            finished = [job for jobs in pool.map(lambda i: _work(api, owner, f"worker-{i}"), range(4)) for job in jobs]
        assert len(finished) == len(set(finished)) == REQUESTS
        for request_id in ids:
            status = client.get(f"{api}v2/generate/status/{request_id}").json()
            assert status["done"] and len(status["generations"]) == 1
    server.stop()
    env = dict(os.environ, OPENHORDE_DATABASE_URL=db_backend[1] or "")
    ledger = subprocess.run(
        [*openhorde_command(), "admin", "check-ledger", "--data-dir", str(server.data_dir)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert ledger.returncode == 0, ledger.stdout + ledger.stderr
