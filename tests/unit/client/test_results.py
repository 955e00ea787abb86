"""Delivered images written with their sidecars; base64 images are decoded, unusable ones refused."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import httpx
import pytest

from openhorde.client.payload import ImageRequest
from openhorde.client.results import save_generations
from openhorde.client.sdk import ApiError, HordeClient
from openhorde.client.wire import Generation


def offline_client() -> HordeClient:
    def nothing(request: httpx.Request) -> httpx.Response:
        raise AssertionError(f"no HTTP expected, got {request.url}")

    return HordeClient("http://horde.test", transport=httpx.MockTransport(nothing))


def test_base64_images_are_written_with_their_settings(tmp_path: Path) -> None:
    request = ImageRequest(prompt="a cat###dogs", models=("m1",), seed="abc", count=1)
    generation = Generation(
        id="g1", img=base64.b64encode(b"WEBP").decode(), seed="123", model="m1", worker_id="w", worker_name="box",
        censored=False, gen_metadata=({"type": "lora", "value": "download_failed"},),
    )  # fmt: skip
    with offline_client() as client:
        [saved] = save_generations(client, request, "req", (generation,), tmp_path / "new" / "folder")
    assert saved.path == tmp_path / "new" / "folder" / "req-0.webp" and saved.path.read_bytes() == b"WEBP"
    notes = json.loads(saved.sidecar.read_text())
    assert (notes["prompt"], notes["negative"]) == ("a cat", "dogs")
    assert notes["seed"] == notes["params"]["seed"] == "123"
    assert (notes["model"], notes["worker_name"], notes["index"]) == ("m1", "box", 0)
    assert notes["server"] == "http://horde.test"
    assert notes["gen_metadata"] == [{"type": "lora", "value": "download_failed"}]
    assert notes["source_processing"] is None


def test_an_unusable_image_is_an_error_naming_the_generation(tmp_path: Path) -> None:
    generation = Generation(id="g1", img="N/A", seed="1", model="m", worker_id="", worker_name="", censored=False)
    with offline_client() as client, pytest.raises(ApiError, match="generation g1"):
        save_generations(client, ImageRequest(prompt="x"), "req", (generation,), tmp_path)
