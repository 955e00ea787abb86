"""The horde calls simulated users and workers make, each timed into the caller's ``Stats``.

Users register through ``POST /register``; a worker pops (``POST /generate/pop``), PUTs a prebuilt WebP to
the presigned ``r2_upload`` URL and submits with ``generation: "R2"``; a client queues
(``POST /generate/async``), checks (``GET /generate/check/{id}``) and reads the result
(``GET /generate/status/{id}``).
"""

from __future__ import annotations

import asyncio
import base64
import io
import math
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from PIL import Image

from harness.client import Api, Reply, TransportError, is_loopback

API = "/api/v2"
MODEL = "stable_diffusion"
# A catalogue model no benchmark request names: a worker serving only it has nothing waiting, ever. A
# catalogue model rather than a made-up one, so that no server setting (custom models) is needed.
IDLE_MODEL = "Deliberate"
BRIDGE_AGENT = "openhorde-bench:1:loopback"
MAX_PIXELS = 512 * 512  # what a simulated worker accepts: every request shape the benchmarks queue
PER_USER_REQUESTS = 25  # stays below the server's 30 queued images per user
WORKERS_PER_OWNER = 3  # untrusted users may only own a few workers
REGISTER_CONCURRENCY = 16
ARTIFACT_SIDE = 64


# --------------------------------------------------------------------------
# users


async def register_account(api: Api, username: str) -> tuple[int, str] | None:
    """Register a user; its id (for admin commands) and API key."""
    reply = await api.call("register", "POST", f"{API}/register", body={"username": username})
    if reply is None or not reply.ok:
        return None
    user_id, key = reply.get("id"), reply.get("apikey")
    return (user_id, key) if isinstance(user_id, int) and isinstance(key, str) else None


async def register(api: Api, username: str) -> str | None:
    """Register a user and return its API key."""
    account = await register_account(api, username)
    return None if account is None else account[1]


async def register_users(api: Api, prefix: str, count: int) -> list[str]:
    """Register ``count`` users concurrently; raise if any fails (nothing after this would mean anything)."""
    sem = asyncio.Semaphore(REGISTER_CONCURRENCY)

    async def one(i: int) -> str | None:
        async with sem:
            return await register(api, f"{prefix}-{i}")

    keys = await asyncio.gather(*(one(i) for i in range(count)))
    good = [k for k in keys if k is not None]
    if len(good) != count:
        raise RuntimeError(f"registered only {len(good)} of {count} users ({prefix})")
    return good


# --------------------------------------------------------------------------
# requests (the client side)


@dataclass(frozen=True)
class RequestShape:
    """What every request of a phase asks for: one image of this size."""

    width: int = 512
    height: int = 512
    steps: int = 20
    model: str = MODEL

    def body(self) -> dict[str, Any]:
        """The JSON body of ``POST /generate/async``."""
        params = {"width": self.width, "height": self.height, "steps": self.steps, "n": 1}
        return {"prompt": "bench", "params": params, "models": [self.model], "r2": True}


async def submit_request(api: Api, apikey: str, shape: RequestShape) -> Reply | None:
    """POST /generate/async; the Reply (its data holds the id when ok)."""
    return await api.call("async", "POST", f"{API}/generate/async", apikey=apikey, body=shape.body())


def request_id(reply: Reply | None) -> str | None:
    """The request id from an async answer, if it succeeded."""
    rid = reply.get("id") if reply is not None and reply.ok else None
    return rid if isinstance(rid, str) else None


async def check(api: Api, rid: str) -> Reply | None:
    """GET /generate/check: the progress a polling client sees."""
    return await api.call("check", "GET", f"{API}/generate/check/{rid}")


async def fetch_status(api: Api, rid: str) -> None:
    """GET /generate/status of a done request; count it as an error if it lacks its one image."""
    reply = await api.call("status", "GET", f"{API}/generate/status/{rid}")
    if reply is None or not reply.ok:
        return
    gens = reply.get("generations")
    if not (isinstance(gens, list) and len(gens) == 1 and isinstance(gens[0], dict) and gens[0].get("img")):
        api.stats.fail("status", "200 without-1-generation-with-img")


async def cancel_requests(api: Api, ids: list[str], concurrency: int) -> None:
    """DELETE requests, so that a phase does not leave its queue to the next one (or to a ``--url`` server)."""
    todo = iter(ids)

    async def canceller() -> None:
        for rid in todo:
            await api.call("cancel", "DELETE", f"{API}/generate/status/{rid}")

    await asyncio.gather(*(canceller() for _ in range(concurrency)))


async def queue_depth(api: Api) -> int | None:
    """``queued_requests`` from /status/performance, if the server has it."""
    reply = await api.call("performance", "GET", f"{API}/status/performance")
    depth = reply.get("queued_requests") if reply is not None and reply.ok else None
    return depth if isinstance(depth, int) else None


# --------------------------------------------------------------------------
# workers


@dataclass(frozen=True)
class WorkerSpec:
    """A simulated worker: name, owner's key and capabilities."""

    name: str
    apikey: str
    max_pixels: int = MAX_PIXELS
    models: tuple[str, ...] = (MODEL,)

    def pop_body(self) -> dict[str, Any]:
        """The JSON body of this worker's pop."""
        return {
            "name": self.name,
            "models": list(self.models),
            "max_pixels": self.max_pixels,
            "amount": 1,
            "bridge_agent": BRIDGE_AGENT,
        }


def worker_specs(prefix: str, count: int, owners: list[str]) -> list[WorkerSpec]:
    """``count`` workers, spread over owners (WORKERS_PER_OWNER each)."""
    return [WorkerSpec(f"{prefix}-{i}", owners[i // WORKERS_PER_OWNER]) for i in range(count)]


def owners_needed(workers: int) -> int:
    """Owner users needed for that many workers."""
    return math.ceil(workers / WORKERS_PER_OWNER)


@dataclass(frozen=True)
class Job:
    """One job handed out by a pop."""

    id: str
    upload_url: str | None
    seed: int


@dataclass(frozen=True)
class Artifact:
    """The result every simulated worker uploads: built once, so the driver spends no CPU on images."""

    webp: bytes
    b64: str


def make_artifact() -> Artifact:
    """A small WebP."""
    buf = io.BytesIO()
    Image.new("RGB", (ARTIFACT_SIDE, ARTIFACT_SIDE), (40, 120, 200)).save(buf, format="WEBP", quality=50)
    data = buf.getvalue()
    return Artifact(data, base64.b64encode(data).decode("ascii"))


def seed_as_int(value: Any) -> int:
    """The payload seed as an int (the server sends a string or an int)."""
    if isinstance(value, bool):
        return 0
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return 0


def parse_jobs(data: Any) -> list[Job]:
    """Jobs in a pop answer; empty when ``id`` is null."""
    if not isinstance(data, dict) or not data.get("id"):
        return []
    ids = data.get("ids") or [data["id"]]
    uploads = data.get("r2_uploads") or [data.get("r2_upload")]
    payload = data.get("payload")
    seed = seed_as_int(payload.get("seed") if isinstance(payload, dict) else None)
    jobs = []
    for k, job_id in enumerate(ids):
        url = uploads[k] if k < len(uploads) else None
        jobs.append(Job(str(job_id), url if isinstance(url, str) and url else None, seed))
    return jobs


async def pop_once(api: Api, spec: WorkerSpec) -> list[Job] | None:
    """One pop, timed as ``pop(job)`` or ``pop(empty)``; None on error, else the jobs (possibly none)."""
    reply = await api.call("pop", "POST", f"{API}/generate/pop", apikey=spec.apikey, body=spec.pop_body(), record=False)
    if reply is None or not reply.ok:
        return None
    jobs = parse_jobs(reply.data)
    api.stats.add("pop(job)" if jobs else "pop(empty)", reply.ms)
    return jobs


async def upload(api: Api, job: Job, art: Artifact) -> bool:
    """PUT the result to the job's presigned URL (loopback only)."""
    if job.upload_url is None:
        return False
    if urlsplit(job.upload_url).scheme and not is_loopback(job.upload_url):
        api.stats.fail("upload", "non-loopback-url")
        return False
    reply = await api.call("upload", "PUT", job.upload_url, content=art.webp, content_type="image/webp")
    return reply is not None and reply.ok


async def complete_job(api: Api, spec: WorkerSpec, job: Job, art: Artifact) -> None:
    """Upload (falling back to inline base64) and submit one job; count it when the submit succeeds."""
    generation = "R2" if await upload(api, job, art) else art.b64
    body = {"id": job.id, "generation": generation, "state": "ok", "seed": job.seed}
    reply = await api.call("submit", "POST", f"{API}/generate/submit", apikey=spec.apikey, body=body)
    if reply is not None and reply.ok:
        api.stats.job_done()


async def pop_and_complete(api: Api, spec: WorkerSpec, art: Artifact) -> int | None:
    """Pop once and finish what came back at once; number of jobs, None on error."""
    jobs = await pop_once(api, spec)
    if jobs is None:
        return None
    for job in jobs:
        await complete_job(api, spec, job, art)
    return len(jobs)


async def image_roundtrip(api: Api, rid: str | None, art: Artifact) -> bool | None:
    """Does the status of a finished request link to (or inline) the very WebP uploaded?"""
    if rid is None:
        return None
    reply = await api.call("status", "GET", f"{API}/generate/status/{rid}", record=False)
    gens = reply.get("generations") if reply is not None and reply.ok else None
    first = gens[0] if isinstance(gens, list) and gens else None
    img = first.get("img") if isinstance(first, dict) else None
    if not isinstance(img, str):
        return False
    if not img.startswith(("/", "http")):  # inline base64 (r2 false)
        try:
            return base64.b64decode(img, validate=True) == art.webp
        except ValueError:
            return False
    if not (img.startswith("/") or is_loopback(img)):
        api.stats.fail("image", "non-loopback-url")
        return False
    try:
        status, raw = await api.http.request("GET", img)
    except TransportError as exc:
        api.stats.fail("image", f"exc {exc}")
        return False
    return status == 200 and raw == art.webp
