"""A scripted HTTP worker for the chaos suite: pop, PUT a small WebP to ``r2_upload``, submit.

Run as its own OS process (``python -m tests.chaos.scripted_worker``) so the suite can SIGKILL it mid-job.
It spreads its calls over every server given and retries connection errors and 5xx answers (servers
restart during the suite). Each step is appended to ``--events`` as one JSON line, flushed at once:
``{"e": "popped", "job": ...}`` before the simulated work, then ``submitted`` or ``refused`` (with the rc).

``--stall S``: pop one job, sleep S seconds (past the lease), then upload and submit it late, and exit.
"""

from __future__ import annotations

import argparse
import io
import json
import random
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
from PIL import Image

RETRY_SLEEP_S = 0.3
MAX_ATTEMPTS = 200  # about a minute of retries: longer than any restart in the suite


def webp() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 64), (200, 60, 10)).save(buffer, format="WEBP")
    return buffer.getvalue()


class Horde:
    """Calls spread over several servers of one horde, retried on connection errors and 5xx."""

    def __init__(self, bases: list[str], apikey: str) -> None:
        self.bases = bases
        self.apikey = apikey
        self.turn = random.randrange(len(bases))
        self.client = httpx.Client(timeout=15, trust_env=False)

    def _next_base(self) -> str:
        self.turn = (self.turn + 1) % len(self.bases)
        return self.bases[self.turn]

    def call(self, method: str, path: str, body: dict[str, Any]) -> httpx.Response:
        for _ in range(MAX_ATTEMPTS):
            try:
                answer = self.client.request(
                    method, f"{self._next_base()}/api/v2/{path}", json=body, headers={"apikey": self.apikey}
                )
            except httpx.TransportError:
                time.sleep(RETRY_SLEEP_S)
                continue
            if answer.status_code < 500:
                return answer
            time.sleep(RETRY_SLEEP_S)
        raise RuntimeError(f"{method} {path}: no server answered")

    def upload(self, url: str, data: bytes) -> None:
        """PUT to the presigned URL, or to the same path on another server (they share one blob store)."""
        parts = urlsplit(url)
        for attempt in range(MAX_ATTEMPTS):
            base = urlsplit(self.bases[attempt % len(self.bases)]) if attempt else parts
            target = urlunsplit((parts.scheme, base.netloc, parts.path, parts.query, ""))
            try:
                answer = self.client.put(target, content=data)
            except httpx.TransportError:
                time.sleep(RETRY_SLEEP_S)
                continue
            if answer.status_code < 500:
                answer.raise_for_status()
                return
            time.sleep(RETRY_SLEEP_S)
        raise RuntimeError("upload: no server answered")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--servers", required=True, help="comma-separated base URLs")
    parser.add_argument("--apikey", required=True)
    parser.add_argument("--name", required=True)
    parser.add_argument("--events", type=Path, required=True)
    parser.add_argument("--work", type=float, default=0.4, help="seconds of simulated work per job (up to 2x)")
    parser.add_argument("--stall", type=float, default=None)
    args = parser.parse_args()
    horde = Horde(args.servers.split(","), args.apikey)
    image = webp()
    pop = {"name": args.name, "models": ["stable_diffusion"], "max_pixels": 64 * 64 * 4, "amount": 1}
    with args.events.open("a") as events:

        def emit(**fields: Any) -> None:
            events.write(json.dumps(fields) + "\n")
            events.flush()

        while True:
            job = horde.call("POST", "generate/pop", pop).json()
            if not job.get("id"):
                time.sleep(0.2)
                continue
            emit(e="popped", job=job["id"], at=time.time())
            time.sleep(args.stall if args.stall is not None else args.work * (1 + random.random()))
            horde.upload(job["r2_upload"], image)
            answer = horde.call("POST", "generate/submit", {"id": job["id"], "generation": "R2", "seed": 7})
            if answer.status_code == 200:
                emit(e="submitted", job=job["id"], reward=answer.json().get("reward"))
            else:
                emit(e="refused", job=job["id"], status=answer.status_code, rc=answer.json().get("rc"))
            if args.stall is not None:
                return


if __name__ == "__main__":
    main()
