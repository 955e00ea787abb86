"""Conformance: the published client library horde-client (PyPI, 1.0.3), unmodified, against a live OpenHorde.

horde-client pins langchain 0.0.291, pydantic 2.3.0 and requests 2.27.1, so it lives in `.venv-horde-client`
(`scripts/setup_client_venvs.sh`) and `horde_client_driver.py` runs there. Its pydantic models are strict where
ours could be loose: ``kudos`` must be a whole number in the async, check and status answers, every field of
check and of `/status/models` must be there, a generation's ``seed`` must read as an integer and its ``state``
be ``ok`` or ``censored``.

One server, and one `openhorde-tiny` worker with ``--max-power 1`` (at most 181×181 pixels: the tiny model
needs minutes per step at 512×512 on a CPU). The library's default request (512×512, 20 steps) is served by a
worker this test plays over HTTP, as `sdk_driver.py` does for horde-sdk.
"""

from __future__ import annotations

import base64
import concurrent.futures
import io
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from tests.e2e.published_clients import MODEL, Account, ClientHorde, client_python, start_horde

pytestmark = pytest.mark.e2e

DRIVER = Path(__file__).resolve().parent / "horde_client_driver.py"
SMALL_WORKER = "tiny-small"
HAND_WORKER = "hand-512"
POLL_SECONDS = 12  # horde_client.config.REQUEST_RETRY_TIMEOUT
DEFAULT_PIXELS = 512 * 512


@pytest.fixture(scope="module")
def python() -> Path:
    return client_python(".venv-horde-client")


@pytest.fixture(scope="module")
def horde(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClientHorde]:
    horde = start_horde(tmp_path_factory.mktemp("horde-client"))
    try:
        owner = horde.register("volunteer")
        horde.start_worker(SMALL_WORKER, owner, horde.server.url, "--max-power", "1")
        yield horde
    finally:
        horde.close()


@pytest.fixture(scope="module")
def requester(horde: ClientHorde) -> Account:
    return horde.register("requester")


def run(horde: ClientHorde, python: Path, case: str, key: str, *args: str) -> dict[str, Any]:
    return horde.run_driver(python, DRIVER, case, horde.server.api_url, key, *args)


def webp_b64(width: int, height: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (30, 120, 200)).save(buffer, format="WEBP", lossless=True)
    return buffer.getvalue()


def decoded(img: str) -> Image.Image:
    image = Image.open(io.BytesIO(base64.b64decode(img, validate=True)))
    image.load()
    return image


def test_list_models_parses_status_models(horde: ClientHorde, python: Path, requester: Account) -> None:
    result = run(horde, python, "models", requester.apikey)
    models = {m["name"]: m for m in result["by_performance"]}
    assert models[MODEL]["count"] >= 1 and models[MODEL]["type"] == "image", result
    assert result["by_name"] == sorted(result["by_name"]), result


def test_image_gen_round_trip_with_the_library_defaults_at_a_small_size(
    horde: ClientHorde, python: Path, requester: Account
) -> None:
    result = run(horde, python, "generate", requester.apikey, MODEL, "64", "64", "4")
    sent, answer = result["sent"], result["answer"]
    # Everything but the size and steps is the library's default, unknown fields included.
    assert sent["params"]["seed"] == "" and sent["use_default_badwordsids"] is True and sent["workers"] == []
    assert sent["censor_nsfw"] is True and sent["nsfw"] is False and sent["r2"] is False
    assert answer["done"] is True and answer["faulted"] is False and answer["is_possible"] is True, result
    [generation] = answer["generations"]
    assert generation["state"] == "ok" and generation["model"] == MODEL, result
    assert generation["worker_name"] == SMALL_WORKER and generation["seed"] > 0, result
    # r2 false: the image comes inline, base64 of a WebP.
    image = decoded(generation["img"])
    assert image.format == "WEBP" and image.size == (64, 64)


def test_image_gen_returns_at_once_when_no_worker_can_serve(
    horde: ClientHorde, python: Path, requester: Account
) -> None:
    """The library's 512×512 default is more than the only online worker takes: check says ``is_possible:
    false`` at the first poll, so image_gen returns instead of polling every 12 s for ever."""
    result = run(horde, python, "generate", requester.apikey, MODEL)
    answer = result["answer"]
    assert answer["is_possible"] is False and answer["done"] is False and answer["generations"] == [], result
    assert result["seconds"] < POLL_SECONDS, result


def test_image_gen_round_trip_with_every_library_default(horde: ClientHorde, python: Path, requester: Account) -> None:
    """512×512, 20 steps, empty seed, censoring asked: served by a worker played here over HTTP."""
    owner = horde.register("hand-owner")
    headers = {"apikey": owner.apikey}
    pop_body = {"name": HAND_WORKER, "models": [MODEL], "max_pixels": DEFAULT_PIXELS, "can_censor_nsfw": True}
    first = horde.api.post("/generate/pop", json=pop_body, headers=headers)
    assert first.status_code == 200, first.text  # now online: the request below is possible from the start
    served: list[dict[str, Any]] = []
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        driver = pool.submit(run, horde, python, "generate", requester.apikey, MODEL)
        try:
            # Serve whatever this worker is given (an earlier test's 512×512 request may still be queued).
            while not driver.done():
                job = horde.api.post("/generate/pop", json=pop_body, headers=headers).json()
                if not job.get("ids"):
                    time.sleep(0.5)
                    continue
                payload = job["payload"]
                size = (payload["width"], payload["height"])
                put = horde.api.put(job["r2_uploads"][0], content=webp_b64(*size))
                assert put.status_code == 200, put.text
                submit = {"id": job["ids"][0], "generation": "R2", "state": "ok", "seed": int(payload["seed"])}
                assert horde.api.post("/generate/submit", json=submit, headers=headers).status_code == 200
                served.append(payload)
            result = driver.result()
        finally:
            worker_id = next(w["id"] for w in horde.api.get("/workers").json() if w["name"] == HAND_WORKER)
            # Out of the other tests' way: a worker in maintenance is offered nothing.
            horde.api.put(f"/workers/{worker_id}", json={"maintenance": True}, headers=headers)
    answer = result["answer"]
    assert answer["done"] is True and answer["is_possible"] is True, result
    [generation] = answer["generations"]
    assert generation["worker_name"] == HAND_WORKER and generation["state"] == "ok", result
    assert decoded(generation["img"]).size == (512, 512)
    payload = next(p for p in served if str(generation["seed"]) == p["seed"])
    assert payload["ddim_steps"] == 20 and payload["use_nsfw_censor"] is True, payload
    assert payload["sampler_name"] == "k_euler_a" and payload["cfg_scale"] == 7.0, payload
