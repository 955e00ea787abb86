"""Post-processor weights come from the reference files beside ``model_reference``, through ``download.fetch``."""

from __future__ import annotations

import io
import json
from pathlib import Path

import torch
from PIL import Image

from openhorde.worker.models.store import ModelStore
from openhorde.worker.postprocess.chain import PostProcessors
from openhorde.worker.postprocess.weights import fetch_post_processor_weights, sibling
from tests.file_server import serving, sha256
from tests.unit.worker.postprocess.weights import realesrgan_state


def pth_bytes(state: dict[str, torch.Tensor]) -> bytes:
    buffer = io.BytesIO()
    torch.save({"params_ema": state}, buffer)  # as BasicSR publishes Real-ESRGAN
    return buffer.getvalue()


def esrgan_reference(name: str, file_name: str, body: bytes, url: str) -> bytes:
    """An ``esrgan.json`` of the upstream shape (``type``, ``config.files`` with ``sha256sum``, ``config.download``)."""
    record = {
        "name": name,
        "type": "realesrgan",
        "description": "2x Upscaler",
        "version": "0.1.0",
        "style": "generalist",
        "config": {
            "files": [{"path": file_name, "sha256sum": sha256(body)}],
            "download": [{"file_name": file_name, "file_path": "", "file_url": url}],
        },
        "available": False,
    }
    return json.dumps({name: record}).encode()


def test_sibling_is_the_file_in_the_same_folder_of_a_url_or_a_path() -> None:
    assert sibling("https://h.test/ref/main/stable_diffusion.json?x=1", "esrgan.json") == (
        "https://h.test/ref/main/esrgan.json"
    )
    assert sibling("/srv/reference/stable_diffusion.json", "gfpgan.json") == "/srv/reference/gfpgan.json"


def test_a_missing_upscaler_is_downloaded_checked_and_then_loads(tmp_path: Path) -> None:
    body = pth_bytes(realesrgan_state(scale=2))
    store = ModelStore(tmp_path / "store", retry_delay_s=0)
    with serving() as server:
        url = server.publish("weights/RealESRGAN_x2plus.pth", body)
        server.publish("ref/esrgan.json", esrgan_reference("RealESRGAN_x2plus", "RealESRGAN_x2plus.pth", body, url))
        problems = fetch_post_processor_weights(["RealESRGAN_x2plus"], store, server.url("ref/stable_diffusion.json"))
        again = fetch_post_processor_weights(["RealESRGAN_x2plus"], store, server.url("ref/stable_diffusion.json"))
        downloads = server.requests["/weights/RealESRGAN_x2plus.pth"]
        reference_reads = server.requests["/ref/esrgan.json"]

    assert problems == {} and again == {}
    assert (store.root / "RealESRGAN_x2plus.pth").read_bytes() == body
    assert downloads == 1 and reference_reads == 1  # a file in the store needs no network on the next start
    loaded = PostProcessors.load(["RealESRGAN_x2plus"], store.root, torch.device("cpu"))
    assert loaded.apply(Image.new("RGB", (8, 6)), ["RealESRGAN_x2plus"]).size == (16, 12)


def test_a_download_with_the_wrong_digest_is_discarded_and_reported(tmp_path: Path) -> None:
    body = pth_bytes(realesrgan_state(scale=2))
    store = ModelStore(tmp_path / "store", retry_delay_s=0)
    with serving() as server:
        url = server.publish("RealESRGAN_x2plus.pth", body + b"tampered")
        server.publish("esrgan.json", esrgan_reference("RealESRGAN_x2plus", "RealESRGAN_x2plus.pth", body, url))
        problems = fetch_post_processor_weights(["RealESRGAN_x2plus"], store, server.url("stable_diffusion.json"))

    assert "SHA-256" in problems["RealESRGAN_x2plus"]
    assert not (store.root / "RealESRGAN_x2plus.pth").exists()


def test_names_the_reference_cannot_give_are_reported_and_the_others_still_come(tmp_path: Path) -> None:
    body = pth_bytes(realesrgan_state(scale=2))
    store = ModelStore(tmp_path / "store", retry_delay_s=0)
    with serving() as server:
        url = server.publish("RealESRGAN_x2plus.pth", body)
        server.publish("esrgan.json", esrgan_reference("RealESRGAN_x2plus", "RealESRGAN_x2plus.pth", body, url))
        # gfpgan.json is not served (404) and no reference lists rembg's u2net.onnx.
        problems = fetch_post_processor_weights(
            ["GFPGAN", "RealESRGAN_x4plus", "strip_background", "RealESRGAN_x2plus"],
            store,
            server.url("stable_diffusion.json"),
        )

    assert set(problems) == {"GFPGAN", "RealESRGAN_x4plus", "strip_background"}
    assert "RealESRGAN_x4plus.pth" in problems["RealESRGAN_x4plus"]
    assert "u2net.onnx" in problems["strip_background"]
    assert (store.root / "RealESRGAN_x2plus.pth").is_file()
