"""Drive a live OpenHorde server with the independent client library `horde-sdk`.

Run with the interpreter of `.venv-sdk` (see `scripts/setup_sdk_venv.sh`), never imported by pytest:

    .venv-sdk/bin/python tests/e2e/sdk_driver.py http://127.0.0.1:7001/api/

The API base URL comes from argv[1], else `AI_HORDE_URL`, and must end in `/api/` style with a trailing slash
(one is added if missing). The scenario:

1. registers a requester and a worker owner over plain HTTP (`POST /api/v2/register`),
2. starts a simulated image worker in a thread, built only from horde-sdk request/response models and
   its manual API client: it pops `stable_diffusion` jobs, paints a small lossless WebP with PIL, PUTs it
   to the pop's `r2_upload(s)` URL and submits `generation: "R2"`,
3. the requester uses horde-sdk's simple clients (sync `AIHordeAPISimpleClient`, n=2, then async
   `AIHordeAPIAsyncSimpleClient`, n=1) to request images and wait; the SDK downloads each image from its
   URL and the driver checks it decodes, has the requested size and carries the colour the worker painted
   for that id,
4. exercises heartbeat, find_user, dry run, status/models, workers list/single and users/{id},
5. and /generate/check, /stats/img/*, /documents/*, news (an admin's key publishes a piece), image styles and
   collections (a customizer's key creates them), and an interrogation a scripted alchemist serves.

Optional argv[2] and argv[3]: the API keys of an admin and of a customizer (the news, style and collection
checks need them and are left out without them).

Prints human-readable progress on stderr, and on stdout one line `SDK_SUMMARY {json}`. Exit code 0 when
every check passed, 1 when any failed (each failure is named on stderr), 2 on bad usage.
"""

from __future__ import annotations

import asyncio
import collections
import io
import json
import os
import secrets
import sys
import threading
import time
import traceback
import urllib.error
import urllib.request
from enum import StrEnum
from typing import Any

GEN_MODEL = "stable_diffusion"
SYNC_N = 2
ASYNC_N = 1
WIDTH = HEIGHT = 64
STEPS = 5
GENERATION_TIMEOUT_S = 120
COLOR_TOLERANCE = 12


def _api_url_from_args() -> str:
    url = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("AI_HORDE_URL", "")
    if not url:
        print(
            "usage: sdk_driver.py http://HOST:PORT/api/ [ADMIN_KEY [CUSTOMIZER_KEY]]  (or set AI_HORDE_URL)",
            file=sys.stderr,
        )
        sys.exit(2)
    if not url.endswith("/"):
        url += "/"
    return url


API_URL = _api_url_from_args()
# Optional keys of users the test gave roles (`openhorde admin set-role`): an admin (publishes news) and a
# customizer (creates styles). Without them the checks that need them are skipped, not failed.
ADMIN_KEY = sys.argv[2] if len(sys.argv) > 2 else ""
CUSTOMIZER_KEY = sys.argv[3] if len(sys.argv) > 3 else ""
# horde_sdk reads these at import time: point it at our server and keep developer overrides out.
os.environ["AI_HORDE_URL"] = API_URL
for _var in ("AI_HORDE_DEV_URL", "AI_HORDE_DEV_APIKEY", "TESTS_ONGOING", "HORDE_SDK_TELEMETRY"):
    os.environ.pop(_var, None)

os.environ.setdefault("LOGFIRE_IGNORE_NO_CONFIG", "1")

from loguru import logger  # noqa: E402  (a horde-sdk dependency)

logger.remove()
logger.add(sys.stderr, level=os.environ.get("SDK_DRIVER_LOG_LEVEL", "INFO"))

import aiohttp  # noqa: E402
import horde_sdk  # noqa: E402
import PIL.Image  # noqa: E402
import requests  # noqa: E402
from horde_sdk.ai_horde_api.ai_horde_clients import (  # noqa: E402
    AIHordeAPIAsyncSimpleClient,
    AIHordeAPIManualClient,
    AIHordeAPISimpleClient,
)
from horde_sdk.ai_horde_api.apimodels import (  # noqa: E402
    AIHordeGetPrivacyPolicyRequest,
    AIHordeGetSponsorsRequest,
    AIHordeGetTermsRequest,
    AlchemyAsyncRequest,
    AlchemyAsyncRequestFormItem,
    AlchemyAsyncResponse,
    AlchemyJobPopResponse,
    AlchemyJobSubmitRequest,
    AlchemyJobSubmitResponse,
    AlchemyPopRequest,
    AlchemyStatusRequest,
    AlchemyStatusResponse,
    AllCollectionsRequest,
    AllCollectionsResponse,
    AllStylesImageRequest,
    AllStylesImageResponse,
    CollectionByIDRequest,
    CollectionByNameRequest,
    CreateCollectionRequest,
    CreateCollectionResponse,
    CreateStyleImageRequest,
    FindUserRequest,
    HordeDocument,
    ImageGenerateAsyncRequest,
    ImageGenerateCheckRequest,
    ImageGenerateCheckResponse,
    ImageGenerateJobPopRequest,
    ImageGenerateJobPopResponse,
    ImageGenerationInputPayload,
    ImageGenerationJobSubmitRequest,
    ImageStatsModelsRequest,
    ImageStatsModelsResponse,
    ImageStatsModelsTotalRequest,
    ImageStatsModelsTotalResponse,
    JobSubmitResponse,
    ModelStyleInputParamsStable,
    ModifyStyleImageResponse,
    NewsRequest,
    NewsResponse,
    ResponseModelCollection,
    SingleStyleImageByIDRequest,
    SingleStyleImageByNameRequest,
    SingleUserDetailsRequest,
    StyleStable,
    UserDetailsResponse,
)
from horde_sdk.ai_horde_api.endpoints import AI_HORDE_BASE_URL  # noqa: E402
from horde_sdk.ai_horde_api.metadata import AIHordePathData  # noqa: E402
from horde_sdk.generic_api import generic_clients  # noqa: E402
from horde_sdk.generic_api.apimodels import RequestErrorResponse  # noqa: E402

try:
    from importlib.metadata import version as _pkg_version

    SDK_VERSION = _pkg_version("horde-sdk")
except Exception:  # pragma: no cover
    SDK_VERSION = getattr(horde_sdk, "__version__", "unknown")

# ------------------------------------------------------------------------------------------------
# Diagnostics: remember each SDK exchange so a failure can show the exact request and the server's raw answer.
# This only observes; the SDK's own behaviour is unchanged.
# ------------------------------------------------------------------------------------------------
_tls = threading.local()
EXCHANGES: collections.deque[str] = collections.deque(maxlen=60)
BAD_RESPONSES: list[str] = []

_orig_prepare = generic_clients.BaseHordeAPIClient._validate_and_prepare_request
_orig_after = generic_clients.BaseHordeAPIClient._after_request_handling


def _short(value: Any, limit: int = 1500) -> str:
    text = json.dumps(value, default=str) if not isinstance(value, str) else value
    return text if len(text) <= limit else text[:limit] + f"...(+{len(text) - limit} chars)"


def _observing_prepare(self: Any, api_request: Any) -> Any:
    parsed = _orig_prepare(self, api_request)
    _tls.last = (
        api_request.get_http_method().value,
        parsed.endpoint_no_query,
        parsed.request_queries,
        parsed.request_body,
        type(api_request).__name__,
    )
    return parsed


def _observing_after(
    self: Any, *, raw_response_json: Any, returned_status_code: int, expected_response_type: Any
) -> Any:
    result = _orig_after(
        self,
        raw_response_json=raw_response_json,
        returned_status_code=returned_status_code,
        expected_response_type=expected_response_type,
    )
    method, url, queries, body, req_type = getattr(_tls, "last", ("?", "?", {}, None, "?"))
    line = f"{method} {url} q={_short(queries, 200)} body={_short(body, 400)} -> {returned_status_code}"
    empty_pop = (
        isinstance(raw_response_json, dict) and raw_response_json.get("ids") == [] and (returned_status_code == 200)
    )
    if not empty_pop:  # the worker polls often; keep the transcript readable
        EXCHANGES.append(f"[{threading.current_thread().name}] {line} {_short(raw_response_json, 300)}")
    if isinstance(result, RequestErrorResponse):
        detail = ""
        if isinstance(result.object_data, dict) and "exception" in result.object_data:
            detail = f"\n    pydantic: {result.object_data['exception']}"
        report = (
            f"{req_type}: {line}\n    expected {expected_response_type.__name__}, got error "
            f"message={result.message!r} rc={result.rc!r}{detail}\n    raw response: "
            f"{_short(raw_response_json)}"
        )
        BAD_RESPONSES.append(report)
        print(f"[sdk-driver] SDK got an error/unparseable response:\n  {report}", file=sys.stderr)
    return result


generic_clients.BaseHordeAPIClient._validate_and_prepare_request = _observing_prepare  # type: ignore[method-assign]
generic_clients.BaseHordeAPIClient._after_request_handling = _observing_after  # type: ignore[method-assign]


def log(msg: str) -> None:
    print(f"[sdk-driver] {msg}", file=sys.stderr, flush=True)


# ------------------------------------------------------------------------------------------------
# Checks bookkeeping
# ------------------------------------------------------------------------------------------------
CHECKS: dict[str, str] = {}


def check(name: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
    """Run one named check; record 'ok' or the failure, never raise."""
    try:
        result = fn(*args, **kwargs)
    except Exception as e:
        CHECKS[name] = f"FAIL: {type(e).__name__}: {e}"
        log(f"CHECK {name}: FAIL: {type(e).__name__}: {e}")
        traceback.print_exc(file=sys.stderr)
        return None
    CHECKS[name] = "ok"
    log(f"CHECK {name}: ok")
    return result


def expect(cond: bool, message: str) -> None:
    if not cond:
        raise AssertionError(message)


# ------------------------------------------------------------------------------------------------
# Plain-HTTP registration (not part of the SDK)
# ------------------------------------------------------------------------------------------------
def register(username: str) -> dict[str, Any]:
    url = API_URL + "v2/register"
    req = urllib.request.Request(
        url,
        data=json.dumps({"username": username}).encode(),
        method="POST",
        headers={"Content-Type": "application/json", "Accept": "application/json"},
    )
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            status, raw = resp.status, resp.read()
    except urllib.error.HTTPError as e:
        raise AssertionError(f"POST {url} {{'username': {username!r}}} -> {e.code}: {e.read()[:500]!r}") from e
    data = json.loads(raw)
    expect(status in (200, 201), f"POST {url} -> {status}: {data}")
    for key in ("id", "username", "apikey"):
        expect(key in data, f"register response lacks {key!r}: {data}")
    expect(
        isinstance(data["apikey"], str) and len(data["apikey"]) == 22,
        f"register apikey must be a 22-char string (horde-sdk validates this), got {data['apikey']!r}",
    )
    expect(isinstance(data["id"], int), f"register id must be an int, got {data['id']!r}")
    return data


# ------------------------------------------------------------------------------------------------
# The simulated worker
# ------------------------------------------------------------------------------------------------
def _color_for(index: int) -> tuple[int, int, int]:
    palette = [(220, 40, 40), (40, 180, 60), (40, 70, 220), (230, 200, 30), (160, 40, 200), (20, 200, 200)]
    return palette[index % len(palette)]


def make_webp(width: int, height: int, color: tuple[int, int, int]) -> bytes:
    img = PIL.Image.new("RGB", (width, height), color)
    buf = io.BytesIO()
    img.save(buf, format="WEBP", lossless=True)
    return buf.getvalue()


class SimulatedWorker(threading.Thread):
    def __init__(self, apikey: str, name: str, deadline: float) -> None:
        super().__init__(name="sdk-worker", daemon=True)
        self.apikey = apikey
        self.worker_name = name
        self.deadline = deadline
        self.stop_event = threading.Event()
        self.first_pop = threading.Event()
        self.client = AIHordeAPIManualClient()
        self.pops = 0
        self.empty_pops = 0
        self.colors: dict[str, tuple[int, int, int]] = {}
        self.rewards: list[float] = []
        self.errors: list[str] = []
        self.upload_statuses: list[int] = []
        self.last_skipped: dict[str, Any] = {}

    def run(self) -> None:
        while not self.stop_event.is_set() and time.time() < self.deadline:
            try:
                got_job = self.pop_once()
            except Exception as e:
                self.errors.append(f"{type(e).__name__}: {e}")
                log(f"worker error: {type(e).__name__}: {e}")
                traceback.print_exc(file=sys.stderr)
                got_job = False
                self.stop_event.wait(1.0)
            finally:
                self.first_pop.set()
            if not got_job:
                self.stop_event.wait(0.5)

    def pop_once(self) -> bool:
        pop_request = ImageGenerateJobPopRequest(
            apikey=self.apikey,
            name=self.worker_name,
            models=[GEN_MODEL],
            bridge_agent="OpenHorde horde-sdk e2e worker:1:https://example.invalid/openhorde",
            max_pixels=512 * 512,
            nsfw=True,
            threads=1,
            amount=1,
        )
        response = self.client.submit_request(pop_request, ImageGenerateJobPopResponse)
        self.pops += 1
        if isinstance(response, RequestErrorResponse):
            raise AssertionError(f"pop returned an error: {response.message!r} rc={response.rc!r}")
        expect(isinstance(response, ImageGenerateJobPopResponse), f"pop returned {type(response).__name__}")
        self.last_skipped = response.skipped.model_dump(by_alias=True, exclude_unset=True)
        ids = [str(i) for i in response.ids]
        if response.id_ is not None and not ids:
            ids = [str(response.id_)]
        if not ids:
            self.empty_pops += 1
            return False
        payload = response.payload
        log(
            f"worker popped {ids} model={response.model} size={payload.width}x{payload.height} "
            f"steps={payload.ddim_steps} seed={payload.seed!r} r2_upload={response.r2_upload!r} "
            f"r2_uploads={response.r2_uploads!r}"
        )
        expect(
            response.model == GEN_MODEL,
            f"pop gave model {response.model!r}, worker only offers {GEN_MODEL!r}",
        )

        uploads: list[tuple[str, str | None]]
        if response.r2_uploads:
            expect(
                len(response.r2_uploads) == len(ids),
                f"r2_uploads has {len(response.r2_uploads)} entries for {len(ids)} ids",
            )
            uploads = list(zip(ids, response.r2_uploads, strict=True))
        elif response.r2_upload:
            uploads = [(str(response.id_) if response.id_ is not None else ids[0], response.r2_upload)]
            uploads += [(i, None) for i in ids if i != uploads[0][0]]
        else:
            uploads = [(i, None) for i in ids]

        for gen_id, upload_url in uploads:
            color = _color_for(len(self.colors))
            self.colors[gen_id] = color
            webp = make_webp(payload.width, payload.height, color)
            generation = "R2"
            if upload_url is None:
                # Record the protocol problem but still finish the job (base64) so the run can go on.
                self.errors.append(f"pop response for {gen_id} had no r2_upload/r2_uploads URL")
                import base64

                generation = base64.b64encode(webp).decode()
            else:
                put = requests.put(upload_url, data=webp, headers={"Content-Type": "image/webp"}, timeout=30)
                self.upload_statuses.append(put.status_code)
                expect(
                    200 <= put.status_code < 300,
                    f"PUT {upload_url} ({len(webp)} bytes webp) -> {put.status_code}: {put.text[:300]!r}",
                )
            try:
                seed = int(payload.seed) if payload.seed is not None else 0
            except ValueError:
                self.errors.append(f"payload.seed {payload.seed!r} is not numeric")
                seed = 0
            submit = ImageGenerationJobSubmitRequest(
                apikey=self.apikey,
                id=gen_id,
                generation=generation,
                state="ok",
                seed=seed,
            )
            submit_response = self.client.submit_request(submit, JobSubmitResponse)
            if isinstance(submit_response, RequestErrorResponse):
                raise AssertionError(
                    f"submit {gen_id} returned an error: {submit_response.message!r} rc={submit_response.rc!r}"
                )
            self.rewards.append(submit_response.reward)
            log(
                f"worker submitted {gen_id} (R2 upload {'yes' if upload_url else 'NO'}) reward={submit_response.reward}"
            )
        return True


# ------------------------------------------------------------------------------------------------
# Requester side
# ------------------------------------------------------------------------------------------------
def _color_close(a: tuple[int, ...], b: tuple[int, ...]) -> bool:
    return all(abs(x - y) <= COLOR_TOLERANCE for x, y in zip(a, b, strict=False))


def verify_image(img: PIL.Image.Image, gen: Any, worker: SimulatedWorker) -> dict[str, Any]:
    img.load()  # forces a full decode
    gen_id = str(gen.id_)
    info = {
        "id": gen_id,
        "size": list(img.size),
        "format": img.format,
        "worker_name": gen.worker_name,
        "model": gen.model,
        "seed": gen.seed,
        "state": str(gen.state),
        "img_is_url": gen.img.startswith(("http://", "https://")),
    }
    expect(img.size == (WIDTH, HEIGHT), f"image {gen_id} is {img.size}, requested {(WIDTH, HEIGHT)}")
    expect(
        gen_id in worker.colors,
        f"generation id {gen_id} was never handed to our worker (worker saw {sorted(worker.colors)})",
    )
    pixel = img.convert("RGB").getpixel((WIDTH // 2, HEIGHT // 2))
    expect(
        _color_close(pixel, worker.colors[gen_id]),
        f"image {gen_id} centre pixel {pixel} != colour {worker.colors[gen_id]} the worker uploaded for it",
    )
    expect(gen.worker_name == worker.worker_name, f"generation worker_name {gen.worker_name!r}")
    expect(gen.model == GEN_MODEL, f"generation model {gen.model!r}")
    return info


def sync_generation(apikey: str, worker: SimulatedWorker) -> dict[str, Any]:
    client = AIHordeAPISimpleClient()
    request = ImageGenerateAsyncRequest(
        apikey=apikey,
        prompt="a lighthouse on a cliff, conformance test",
        models=[GEN_MODEL],
        params=ImageGenerationInputPayload(width=WIDTH, height=HEIGHT, steps=STEPS, n=SYNC_N),
    )
    status, job_id = client.image_generate_request(request, timeout=GENERATION_TIMEOUT_S)
    log(f"sync request {job_id} done={status.done} finished={status.finished} gens={len(status.generations)}")
    expect(
        status.done,
        f"status for {job_id} not done after {GENERATION_TIMEOUT_S}s: {status.log_safe_model_dump()}",
    )
    expect(len(status.generations) == SYNC_N, f"expected {SYNC_N} generations, got {len(status.generations)}")
    images = []
    for gen in status.generations:
        expect(
            gen.img.startswith(("http://", "https://")),
            f"generation {gen.id_} img is not an http(s) URL (r2 is the SDK default): {gen.img[:80]!r}",
        )
        img = client.download_image_from_generation(gen)
        images.append(verify_image(img, gen, worker))
    return {"job_id": str(job_id), "kudos": status.kudos, "images": images}


async def _async_generation(apikey: str, worker: SimulatedWorker) -> dict[str, Any]:
    async with aiohttp.ClientSession() as session:
        client = AIHordeAPIAsyncSimpleClient(aiohttp_session=session, apikey=apikey)
        heartbeat = await client.heartbeat_request()
        expect(bool(heartbeat.version), "async heartbeat has no version")
        request = ImageGenerateAsyncRequest(
            apikey=apikey,
            prompt="a small red fox, conformance test (async)",
            models=[GEN_MODEL],
            params=ImageGenerationInputPayload(width=WIDTH, height=HEIGHT, steps=STEPS, n=ASYNC_N),
        )
        status, job_id = await client.image_generate_request(request, timeout=GENERATION_TIMEOUT_S)
        expect(status.done, f"async status for {job_id} not done: {status.log_safe_model_dump()}")
        expect(
            len(status.generations) == ASYNC_N,
            f"expected {ASYNC_N} generations, got {len(status.generations)}",
        )
        images = []
        for gen in status.generations:
            img, gen_id = await client.download_image_from_generation(gen)
            expect(str(gen_id) == str(gen.id_), "download returned another generation id")
            images.append(verify_image(img, gen, worker))
        return {"job_id": str(job_id), "images": images}


def async_generation(apikey: str, worker: SimulatedWorker) -> dict[str, Any]:
    return asyncio.run(_async_generation(apikey, worker))


def manual(request: Any, response_type: Any) -> Any:
    response = AIHordeAPIManualClient().submit_request(request, response_type)
    if isinstance(response, RequestErrorResponse):
        raise AssertionError(f"{type(request).__name__} -> error {response.message!r} rc={response.rc!r}")
    return response


# ------------------------------------------------------------------------------------------------
# News, stats, documents, styles, collections, alchemy and /generate/check (issue 14), all through the
# SDK's manual client; plain HTTP only where the SDK has no request (publishing news is a route of ours).
# ------------------------------------------------------------------------------------------------
STATS_WAIT_S = 30
ALCHEMY_FORM = "caption"
ALCHEMY_CAPTION = "a red square, conformance test"


def post_json(path: str, body: dict[str, Any], apikey: str) -> dict[str, Any]:
    url = API_URL + path
    req = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        method="POST",
        headers={"Content-Type": "application/json", "Accept": "application/json", "apikey": apikey},
    )
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return json.loads(resp.read())  # type: ignore[no-any-return]
    except urllib.error.HTTPError as e:
        raise AssertionError(f"POST {url} -> {e.code}: {e.read()[:500]!r}") from e


def check_news(admin_key: str, tag: str) -> str:
    title = f"SDK conformance {tag}"
    post_json(
        "v2/status/news", {"title": title, "newspiece": "Posted by sdk_driver.", "importance": "Information"}, admin_key
    )
    pieces = manual(NewsRequest(), NewsResponse)
    mine = [p for p in pieces if p.title == title]
    expect(len(mine) == 1, f"/v2/status/news lacks the piece the admin posted: {[p.title for p in pieces]}")
    expect(mine[0].newspiece == "Posted by sdk_driver.", f"newspiece {mine[0].newspiece!r}")
    expect(mine[0].importance == "Information", f"importance {mine[0].importance!r}")
    expect(bool(mine[0].date_published), "the piece has no date_published")
    expect(pieces[0].title == title, f"the newest piece is not first: {pieces[0].title!r}")
    return title


def check_stats(expected_images: int) -> dict[str, Any]:
    # Finished images reach the figures through the maintenance loop, so wait a little for them.
    deadline = time.time() + STATS_WAIT_S
    while True:
        totals = manual(ImageStatsModelsTotalRequest(), ImageStatsModelsTotalResponse)
        models = manual(ImageStatsModelsRequest(), ImageStatsModelsResponse)
        total_images = totals.total.images if totals.total else None
        if (total_images or 0) >= expected_images and models.total.get(GEN_MODEL, 0) >= expected_images:
            break
        expect(
            time.time() < deadline,
            f"after {STATS_WAIT_S}s stats show {total_images} images in all and {models.total} per model; "
            f"{expected_images} were made",
        )
        time.sleep(1)
    for period in ("minute", "hour", "day", "month"):
        figure = getattr(totals, period)
        expect(figure is not None and figure.images is not None, f"stats/img/totals lacks {period}")
        expect((figure.ps or 0) > 0 or figure.images == 0, f"{period}: {figure.images} images but ps {figure.ps}")
    expect(models.day.get(GEN_MODEL, 0) >= expected_images, f"stats/img/models day: {models.day}")
    expect(models.month.get(GEN_MODEL, 0) >= expected_images, f"stats/img/models month: {models.month}")
    return {"total_images": total_images, "day": models.day}


# Work-arounds for horde-sdk 0.33 bugs (tests/e2e/HORDE_SDK_NOTES.md), each a GET the SDK cannot send as is:
# the documents' `format` and the collections list's `type_` are not declared as query fields, so the SDK puts
# them in a body and refuses the GET; `collection_name` is missing from its path fields, so the by-name URL keeps
# its `{collection_name}` placeholder. The subclasses and the client below declare what the SDK forgot.
class _TermsRequest(AIHordeGetTermsRequest):
    @classmethod
    def get_query_fields(cls) -> list[str]:
        return ["format"]


class _PrivacyRequest(AIHordeGetPrivacyPolicyRequest):
    @classmethod
    def get_query_fields(cls) -> list[str]:
        return ["format"]


class _SponsorsRequest(AIHordeGetSponsorsRequest):
    @classmethod
    def get_query_fields(cls) -> list[str]:
        return ["format"]


class _AllCollectionsRequest(AllCollectionsRequest):
    @classmethod
    def get_query_fields(cls) -> list[str]:
        return ["sort", "page", "type_"]  # the SDK strips the trailing underscore: `?type=`


_PathFieldsWithCollectionName = StrEnum(  # type: ignore[misc]
    "_PathFieldsWithCollectionName",
    {**{m.name: m.value for m in AIHordePathData}, "collection_name": "collection_name"},
)


def manual_by_collection_name(request: Any, response_type: Any) -> Any:
    client = AIHordeAPIManualClient()
    client._path_field_keys = _PathFieldsWithCollectionName  # type: ignore[assignment]
    response = client.submit_request(request, response_type)
    if isinstance(response, RequestErrorResponse):
        raise AssertionError(f"{type(request).__name__} -> error {response.message!r} rc={response.rc!r}")
    return response


def check_documents() -> dict[str, int]:
    sizes = {}
    for name, request_type in (
        ("terms", _TermsRequest),
        ("privacy", _PrivacyRequest),
        ("sponsors", _SponsorsRequest),
    ):
        html = manual(request_type(format="html"), HordeDocument)
        expect(bool(html.html) and html.markdown is None, f"{name} as html: {html.log_safe_model_dump()}")
        markdown = manual(request_type(format="markdown"), HordeDocument)
        expect(bool(markdown.markdown) and markdown.html is None, f"{name} as markdown: {markdown}")
        sizes[name] = len(markdown.markdown or "")
    return sizes


def check_styles(customizer_key: str, tag: str) -> str:
    name = f"sdk-noir-{tag}"
    created = manual(
        CreateStyleImageRequest(
            apikey=customizer_key,
            name=name,
            info="film noir, from sdk_driver",
            prompt="{p}, film noir###{np}, colour",
            params=ModelStyleInputParamsStable(steps=STEPS, width=WIDTH, height=HEIGHT, cfg_scale=6.5),
            tags=["mono"],
            models=[GEN_MODEL],
        ),
        ModifyStyleImageResponse,
    )
    style_id = str(created.id_)
    by_id = manual(SingleStyleImageByIDRequest(style_id=style_id), StyleStable)
    expect(by_id.name == name and by_id.prompt == "{p}, film noir###{np}, colour", f"style {style_id}: {by_id}")
    expect(by_id.models == [GEN_MODEL] and by_id.tags == ["mono"], f"style {style_id}: {by_id}")
    expect(by_id.params is not None and by_id.params.steps == STEPS, f"style params {by_id.params}")
    by_name = manual(SingleStyleImageByNameRequest(style_name=name), StyleStable)
    expect(str(by_name.id_) == style_id, f"image_by_name/{name} gave {by_name.id_}, not {style_id}")
    listed = manual(AllStylesImageRequest(sort="age"), AllStylesImageResponse)
    expect(style_id in [str(s.id_) for s in listed.root], f"/v2/styles/image?sort=age lacks {style_id}")
    return style_id


def check_collections(customizer_key: str, style_id: str, tag: str) -> str:
    name = f"sdk-collection-{tag}"
    created = manual(
        CreateCollectionRequest(apikey=customizer_key, name=name, info="from sdk_driver", styles=[style_id]),
        CreateCollectionResponse,
    )
    collection_id = str(created.id_)
    by_id = manual(CollectionByIDRequest(collection_id=collection_id), ResponseModelCollection)
    expect(by_id.name == name and by_id.type == "image", f"collection {collection_id}: {by_id}")
    expect([str(s.id_) for s in by_id.styles] == [style_id], f"collection styles {by_id.styles}")
    by_name = manual_by_collection_name(CollectionByNameRequest(collection_name=name), ResponseModelCollection)
    expect(str(by_name.id) == collection_id, f"collection_by_name/{name} gave {by_name.id}")
    listed = manual(_AllCollectionsRequest(sort="age"), AllCollectionsResponse)
    expect(collection_id in [str(c.id) for c in listed.root], f"/v2/collections lacks {collection_id}")
    return collection_id


def check_alchemy(requester_key: str, alchemist_key: str, tag: str) -> str:
    import base64

    source = base64.b64encode(make_webp(WIDTH, HEIGHT, (200, 30, 30))).decode()
    queued = manual(
        AlchemyAsyncRequest(
            apikey=requester_key,
            forms=[AlchemyAsyncRequestFormItem(name=ALCHEMY_FORM)],
            source_image=source,
        ),
        AlchemyAsyncResponse,
    )
    interrogation_id = str(queued.id_)
    waiting = manual(AlchemyStatusRequest(id=interrogation_id), AlchemyStatusResponse)
    expect(str(waiting.state) == "waiting", f"new interrogation state {waiting.state}")
    expect([str(f.form) for f in waiting.forms] == [ALCHEMY_FORM], f"forms {waiting.forms}")

    popped = manual(
        AlchemyPopRequest(
            apikey=alchemist_key,
            name=f"sdk-e2e-alchemist-{tag}",
            priority_usernames=[],
            forms=[ALCHEMY_FORM],
            amount=1,
            bridge_agent="OpenHorde horde-sdk e2e alchemist:1:https://example.invalid/openhorde",
        ),
        AlchemyJobPopResponse,
    )
    forms = popped.forms or []
    expect(len(forms) == 1 and str(forms[0].form) == ALCHEMY_FORM, f"alchemist popped {forms}")
    expect(bool(forms[0].source_image), "the popped form has no source_image")
    submitted = manual(
        AlchemyJobSubmitRequest(
            apikey=alchemist_key, id=forms[0].id_, result={ALCHEMY_FORM: ALCHEMY_CAPTION}, state="ok"
        ),
        AlchemyJobSubmitResponse,
    )
    expect(submitted.reward > 0, f"alchemy reward {submitted.reward}")

    done = manual(AlchemyStatusRequest(id=interrogation_id), AlchemyStatusResponse)
    expect(str(done.state) == "done", f"interrogation state after submit {done.state}")
    captions = [f.result.caption for f in done.forms if hasattr(f.result, "caption")]
    expect(captions == [ALCHEMY_CAPTION], f"status forms {done.forms}")
    return interrogation_id


def check_generate_check(job_id: str, images: int) -> None:
    checked = manual(ImageGenerateCheckRequest(id=job_id), ImageGenerateCheckResponse)
    expect(checked.done and checked.finished == images, f"/generate/check/{job_id}: {checked}")
    expect(checked.waiting == 0 and checked.processing == 0, f"/generate/check/{job_id}: {checked}")
    expect(checked.is_possible, f"/generate/check/{job_id} is_possible {checked.is_possible}")


def main() -> int:
    started = time.time()
    log(f"horde-sdk {SDK_VERSION}, AI_HORDE_BASE_URL={AI_HORDE_BASE_URL}")
    expect(AI_HORDE_BASE_URL == API_URL, f"horde_sdk picked up {AI_HORDE_BASE_URL}, not {API_URL}")
    summary: dict[str, Any] = {"sdk_version": SDK_VERSION, "api_url": API_URL}
    tag = secrets.token_hex(3)

    requester = check("register_requester", register, f"sdk_requester_{tag}")
    owner = check("register_worker_owner", register, f"sdk_worker_owner_{tag}")
    if requester is None or owner is None:
        return finish(summary, started)
    summary["users"] = {"requester": requester["username"], "worker_owner": owner["username"]}

    simple = AIHordeAPISimpleClient()
    heartbeat = check("heartbeat", simple.heartbeat_request)
    if heartbeat is not None:
        summary["server_version"] = heartbeat.version

    def _find_user(key: str, who: dict[str, Any]) -> UserDetailsResponse:
        user = manual(FindUserRequest(apikey=key), UserDetailsResponse)
        expect(user.username == who["username"], f"find_user username {user.username!r} != {who['username']!r}")
        expect(user.id_ == who["id"], f"find_user id {user.id_!r} != {who['id']!r}")
        return user

    check("find_user", _find_user, requester["apikey"], requester)

    worker = SimulatedWorker(owner["apikey"], f"sdk-e2e-worker-{tag}", deadline=time.time() + 240)
    worker.start()
    if not worker.first_pop.wait(30):
        CHECKS["worker_first_pop"] = "FAIL: the worker's first pop did not return within 30 s"
    summary["worker"] = {"name": worker.worker_name}

    def _dry_run() -> float:
        request = ImageGenerateAsyncRequest(
            apikey=requester["apikey"],
            prompt="dry run",
            models=[GEN_MODEL],
            dry_run=True,
            params=ImageGenerationInputPayload(width=WIDTH, height=HEIGHT, steps=STEPS, n=1),
        )
        response = simple.image_generate_request_dry_run(request)
        expect(response.kudos >= 0, f"dry run kudos {response.kudos}")
        return response.kudos

    summary["dry_run_kudos"] = check("dry_run", _dry_run)
    summary["sync_generation"] = check("sync_generation_r2", sync_generation, requester["apikey"], worker)
    summary["async_generation"] = check("async_generation_r2", async_generation, requester["apikey"], worker)

    def _status_models() -> list[str]:
        models = simple.image_status_models_all()
        names = [m.name for m in models]
        expect(GEN_MODEL in names, f"{GEN_MODEL} not in /v2/status/models?type=image: {names}")
        entry = next(m for m in models if m.name == GEN_MODEL)
        expect((entry.count or 0) >= 1, f"{GEN_MODEL} count {entry.count}, our worker serves it")
        single = simple.image_status_models_single(GEN_MODEL)
        expect(len(single.root) == 1 and single.root[0].name == GEN_MODEL, f"status/models/{GEN_MODEL}: {single}")
        return names

    check("status_models", _status_models)

    def _workers_list() -> str:
        workers = simple.workers_all_details(api_key=owner["apikey"])
        mine = [w for w in workers if w.name == worker.worker_name]
        names = [w.name for w in workers]
        expect(len(mine) == 1, f"worker {worker.worker_name!r} not in /v2/workers: {names}")
        expect(mine[0].type_ == "image", f"worker type {mine[0].type_!r}")
        return str(mine[0].id_)

    worker_id = check("workers_list", _workers_list)

    def _owner_details() -> list[str]:
        user = _find_user(owner["apikey"], owner)
        ids = list(user.worker_ids or [])
        if worker_id is not None:
            expect(worker_id in ids, f"owner's worker_ids {ids!r} lacks {worker_id}")
        else:
            expect(len(ids) == 1, f"owner registered one worker, find_user worker_ids is {ids!r}")
        public = manual(SingleUserDetailsRequest(user_id=str(owner["id"])), UserDetailsResponse)
        expect(public.username == owner["username"], f"/v2/users/{owner['id']} username {public.username!r}")
        return ids

    owner_worker_ids = check("owner_user_details", _owner_details)
    if worker_id is None and owner_worker_ids:
        worker_id = owner_worker_ids[0]
    summary["worker"]["id"] = worker_id

    def _worker_details() -> None:
        expect(worker_id is not None, "no worker id known (both /v2/workers and find_user failed)")
        single = simple.worker_details(str(worker_id), api_key=owner["apikey"])
        expect(single.name == worker.worker_name, f"/v2/workers/{worker_id} name {single.name!r}")
        expect(GEN_MODEL in (single.models or []), f"/v2/workers/{worker_id} models {single.models!r}")

    check("worker_details", _worker_details)

    sync_job = summary["sync_generation"]
    if sync_job is not None:
        check("generate_check", check_generate_check, sync_job["job_id"], SYNC_N)
    check("stats_img", check_stats, SYNC_N + ASYNC_N)
    check("documents", check_documents)
    if ADMIN_KEY:
        check("news", check_news, ADMIN_KEY, tag)
    if CUSTOMIZER_KEY:
        style_id = check("styles_image", check_styles, CUSTOMIZER_KEY, tag)
        if style_id is not None:
            check("collections", check_collections, CUSTOMIZER_KEY, style_id, tag)
    check("alchemy", check_alchemy, requester["apikey"], owner["apikey"], tag)

    worker.stop_event.set()
    worker.join(15)
    summary["worker"].update(
        {
            "pops": worker.pops,
            "empty_pops": worker.empty_pops,
            "jobs": len(worker.colors),
            "rewards": worker.rewards,
            "upload_statuses": worker.upload_statuses,
            "errors": worker.errors,
            "last_skipped": worker.last_skipped,
        }
    )
    CHECKS["worker_clean"] = "ok" if not worker.errors else f"FAIL: worker errors: {worker.errors}"
    return finish(summary, started)


def finish(summary: dict[str, Any], started: float) -> int:
    failed = {k: v for k, v in CHECKS.items() if v != "ok"}
    summary["checks"] = CHECKS
    summary["ok"] = not failed
    summary["elapsed_s"] = round(time.time() - started, 1)
    if failed:
        print("\n[sdk-driver] FAILED checks:", file=sys.stderr)
        for name, why in failed.items():
            print(f"  - {name}: {why}", file=sys.stderr)
        if BAD_RESPONSES:
            print("[sdk-driver] responses the SDK rejected or got as errors:", file=sys.stderr)
            for bad in BAD_RESPONSES:
                print(f"  * {bad}", file=sys.stderr)
        print("[sdk-driver] last SDK exchanges:", file=sys.stderr)
        for line in EXCHANGES:
            print(f"  {line}", file=sys.stderr)
    print("SDK_SUMMARY " + json.dumps(summary, default=str), flush=True)
    return 0 if not failed else 1


if __name__ == "__main__":
    try:
        code = main()
    except Exception as exc:
        traceback.print_exc()
        print(
            "SDK_SUMMARY " + json.dumps({"ok": False, "fatal": f"{type(exc).__name__}: {exc}", "checks": CHECKS}),
            flush=True,
        )
        code = 1
    sys.exit(code)
