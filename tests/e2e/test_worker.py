"""`openhorde worker` against a real `openhorde serve`: every job kind, seeds, LoRA, inpainting, crashes.

The worker serves the built-in tiny model exported as a real single-file checkpoint (loaded by the
same code as any `.safetensors` checkpoint), listed with its sha256 in a catalogue file, plus a LoRA
and a textual inversion from that catalogue. Images are 64–128 px with a few steps.
"""

from __future__ import annotations

import base64
import hashlib
import io
import os
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import yaml
from PIL import Image
from tests.adapter_files import make_lora, make_ti
from tests.e2e.conftest import LiveServer, WorkerProcess, openhorde_command

pytestmark = pytest.mark.e2e
# The worker does not care which database the server uses: SQLite (the default engine) keeps these tests light.

MODEL = "tiny-file"
SMALL = {"width": 64, "height": 64, "steps": 3, "sampler_name": "k_euler"}
DONE_TIMEOUT_S = 120.0


@dataclass
class Setup:
    """Files a volunteer would have: a checkpoint, its catalogue (with a LoRA and a TI), a model store."""

    catalogue: Path
    store: Path


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Setup:
    from openhorde.worker.models.checkpoint import export_tiny_model

    root = tmp_path_factory.mktemp("worker-files")
    store = root / "store"
    checkpoint, config_dir = export_tiny_model(store)
    lora = make_lora(store / "loras" / "shiny", seed=5)
    ti = make_ti(store / "emb.safetensors", seed=7)
    catalogue = {
        "models": [
            {
                "name": MODEL,
                "baseline": "stable diffusion 1",
                "file": checkpoint.name,
                "sha256": hashlib.sha256(checkpoint.read_bytes()).hexdigest(),
                "config": str(config_dir),
            }
        ],
        "loras": [{"name": "shiny", "file": str(lora.relative_to(store)), "triggers": ["shiny"]}],
        "textual_inversions": [{"name": "emb", "file": ti.name}],
    }
    path = root / "catalogue.yaml"
    path.write_text(yaml.safe_dump(catalogue))
    return Setup(catalogue=path, store=store)


class Horde:
    """A server, accounts on it, and the worker processes started against it."""

    def __init__(self, server: LiveServer, setup: Setup, tmp_path: Path) -> None:
        self.server, self.setup, self.tmp_path = server, setup, tmp_path
        self.client = httpx.Client(base_url=server.api_url + "v2", timeout=30)
        self.requester = self.register("requester")
        self.owner = self.register("volunteer")
        self.workers: list[WorkerProcess] = []

    def register(self, username: str) -> str:
        answer = self.client.post("/register", json={"username": username})
        assert answer.status_code == 201, answer.text
        return str(answer.json()["apikey"])

    def start_worker(self, name: str, *flags: str, env: dict[str, str] | None = None) -> WorkerProcess:
        log_path = self.tmp_path / f"{name}.log"
        command = [
            *openhorde_command(),
            "worker",
            "--url",
            self.server.url,
            "--api-key",
            self.owner,
            "--name",
            name,
            "--model",
            MODEL,
            "--catalogue",
            str(self.setup.catalogue),
            "--model-store",
            str(self.setup.store),
            "--device",
            "cpu",
            "--log-format",
            "json",
            *flags,
        ]
        environment = dict(os.environ, OMP_NUM_THREADS="1", **(env or {}))
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=environment, cwd=self.tmp_path)
        worker = WorkerProcess(name, log_path, proc)
        self.workers.append(worker)
        return worker

    def generate(self, prompt: str = "a lighthouse", **body: Any) -> str:
        body.setdefault("params", dict(SMALL))
        body.setdefault("models", [MODEL])
        answer = self.client.post(
            "/generate/async", headers={"apikey": self.requester}, json={"prompt": prompt, **body}
        )
        assert answer.status_code == 202, answer.text
        return str(answer.json()["id"])

    def wait_done(self, request_id: str, timeout: float = DONE_TIMEOUT_S) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            check = self.client.get(f"/generate/check/{request_id}").json()
            if check["done"] or check.get("faulted"):
                return dict(self.client.get(f"/generate/status/{request_id}").json())
            for worker in self.workers:
                if worker.proc.poll() is not None and worker.proc.returncode not in (0, -9):
                    pytest.fail(f"worker {worker.name} exited {worker.proc.returncode}:\n{worker.log_tail()}")
            time.sleep(0.2)
        logs = "\n".join(f"--- {worker.name}\n{worker.log_tail()}" for worker in self.workers)
        pytest.fail(f"request {request_id} not done in {timeout:.0f}s: {check}\n{logs}")

    def images(self, status: dict[str, Any]) -> list[Image.Image]:
        return [Image.open(io.BytesIO(httpx.get(g["img"], timeout=30).content)) for g in status["generations"]]

    def close(self) -> None:
        for worker in self.workers:
            worker.stop()
        self.client.close()


@pytest.fixture
def horde_factory(
    live_server: Callable[..., LiveServer], setup: Setup, tmp_path: Path
) -> Iterator[Callable[..., Horde]]:
    made: list[Horde] = []

    def make(**env: str) -> Horde:
        server = live_server(extra_env={"OPENHORDE_ALLOW_CUSTOM_MODELS": "true", **env})
        horde = Horde(server, setup, tmp_path)
        made.append(horde)
        return horde

    yield make
    for horde in made:
        horde.close()


def webp_b64(image: Image.Image) -> str:
    buffer = io.BytesIO()
    image.save(buffer, format="WEBP", lossless=True)
    return base64.b64encode(buffer.getvalue()).decode()


def gradient(width: int, height: int) -> Image.Image:
    """A smooth, clearly structured source image."""
    x = np.linspace(0, 255, width, dtype=np.float32)[None, :, None]
    y = np.linspace(0, 255, height, dtype=np.float32)[:, None, None]
    rgb = np.concatenate(
        [
            np.broadcast_to(x, (height, width, 1)),
            np.broadcast_to(y, (height, width, 1)),
            np.full((height, width, 1), 90, np.float32),
        ],
        axis=2,
    )
    return Image.fromarray(rgb.astype(np.uint8), "RGB")


def as_array(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("RGB")).astype(np.int16)


def test_every_job_kind_is_generated_at_the_requested_size_and_count(horde_factory: Callable[..., Horde]) -> None:
    horde = horde_factory()
    horde.start_worker("all-kinds", "--allow-lora", "--max-batch", "4")
    source = gradient(64, 64)
    mask = Image.new("L", (64, 64), 0)
    mask.paste(255, (16, 16, 48, 48))
    transparent_border = Image.new("RGBA", (128, 64), (0, 0, 0, 0))
    transparent_border.paste(source.convert("RGBA"), (32, 0))
    jobs: dict[str, tuple[str, int, tuple[int, int]]] = {}

    def queue(kind: str, count: int, size: tuple[int, int], prompt: str | None = None, **body: Any) -> None:
        jobs[kind] = (horde.generate(prompt or f"{kind} of a lighthouse", **body), count, size)

    queue("txt2img", 1, (64, 64))
    queue("wide", 1, (128, 64), params={**SMALL, "width": 128})
    queue("batch", 3, (64, 64), params={**SMALL, "n": 3})
    queue("negative", 1, (64, 64), prompt="a castle###fog, blur")
    queue("karras", 1, (64, 64), params={**SMALL, "sampler_name": "k_dpmpp_2m", "karras": True})
    queue("euler_a", 1, (64, 64), params={**SMALL, "sampler_name": "k_euler_a"})
    queue("clip_skip", 1, (64, 64), params={**SMALL, "clip_skip": 2, "cfg_scale": 5})
    queue("tiling", 1, (64, 64), params={**SMALL, "tiling": True})
    queue("hires_fix", 1, (128, 128), params={**SMALL, "width": 128, "height": 128, "hires_fix": True})
    queue("img2img", 1, (64, 64), source_image=webp_b64(source), params={**SMALL, "denoising_strength": 0.6})
    queue(
        "inpainting",
        1,
        (64, 64),
        source_image=webp_b64(source),
        source_mask=webp_b64(mask),
        source_processing="inpainting",
    )
    queue(
        "outpainting",
        1,
        (128, 64),
        source_image=webp_b64(transparent_border),
        source_processing="outpainting",
        params={**SMALL, "width": 128},
    )
    queue("lora", 1, (64, 64), params={**SMALL, "loras": [{"name": "shiny", "model": 0.8, "clip": 1.0}]})
    queue("textual_inversion", 1, (64, 64), params={**SMALL, "tis": [{"name": "emb", "inject_ti": "prompt"}]})

    for kind, (request_id, count, size) in jobs.items():
        status = horde.wait_done(request_id)
        assert status["done"] and not status["faulted"], (kind, status)
        images = horde.images(status)
        assert len(images) == count, kind
        assert all(image.size == size for image in images), (kind, [image.size for image in images])
        assert all(g["worker_name"] == "all-kinds" and g["state"] == "ok" for g in status["generations"]), kind
    volunteer = horde.client.get("/find_user", headers={"apikey": horde.owner}).json()
    assert volunteer["kudos"] > 0, "the worker's owner earned nothing"


def test_fixed_seed_reproduces_and_lora_changes_the_image(horde_factory: Callable[..., Horde]) -> None:
    horde = horde_factory()
    horde.start_worker("seeds", "--allow-lora")
    params = {**SMALL, "seed": "1234"}
    first = horde.generate("a red bicycle", params=params)
    again = horde.generate("a red bicycle", params=params)
    other_seed = horde.generate("a red bicycle", params={**params, "seed": "999"})
    with_lora = horde.generate("a red bicycle", params={**params, "loras": [{"name": "shiny"}]})
    images = {
        name: horde.images(horde.wait_done(rid))[0]
        for name, rid in [("first", first), ("again", again), ("other_seed", other_seed), ("with_lora", with_lora)]
    }
    assert np.array_equal(as_array(images["first"]), as_array(images["again"]))
    assert np.abs(as_array(images["first"]) - as_array(images["other_seed"])).mean() > 2
    assert np.abs(as_array(images["first"]) - as_array(images["with_lora"])).mean() > 2


def test_inpainting_keeps_the_unmasked_region(horde_factory: Callable[..., Horde]) -> None:
    horde = horde_factory()
    horde.start_worker("painter")
    source = gradient(64, 64)
    mask = Image.new("L", (64, 64), 0)
    mask.paste(255, (20, 20, 44, 44))
    request_id = horde.generate(
        "a bird", source_image=webp_b64(source), source_mask=webp_b64(mask), source_processing="inpainting"
    )
    result = as_array(horde.images(horde.wait_done(request_id))[0])
    original = as_array(source)
    keep = np.asarray(mask) == 0
    keep[16:48, 16:48] = False  # leave the feathered edge of the mask out of the comparison
    outside = np.abs(result - original)[keep].mean()
    inside = np.abs(result - original)[24:40, 24:40].mean()
    assert outside < 8, f"unmasked region changed by {outside:.1f} on average"
    assert inside > outside + 10, f"masked region barely changed ({inside:.1f} vs {outside:.1f})"


def test_a_killed_workers_job_is_finished_by_another_worker(horde_factory: Callable[..., Horde]) -> None:
    horde = horde_factory(OPENHORDE_JOB_LEASE_SECONDS="15", OPENHORDE_MAINTENANCE_INTERVAL_SECONDS="0.5")
    first = horde.start_worker("doomed", "--queue-size", "0")
    # Big enough that the first worker is still generating when it is killed, and small enough that the rescuer
    # finishes well inside its 15 s lease while other tests load the machine (pytest-xdist): 20 steps took 10 s on
    # a busy core, and a run where the request faulted (two more expired leases) was seen.
    request_id = horde.generate("a slow one", params={**SMALL, "width": 128, "height": 128, "steps": 10})
    deadline = time.monotonic() + 90
    while horde.client.get(f"/generate/check/{request_id}").json()["processing"] == 0:
        assert time.monotonic() < deadline, first.log_tail()
        time.sleep(0.1)
    first.proc.kill()
    first.proc.wait(timeout=10)
    horde.start_worker("rescuer")
    status = horde.wait_done(request_id, timeout=180)
    assert status["done"] and not status["faulted"]
    assert [g["worker_name"] for g in status["generations"]] == ["rescuer"]


def test_a_job_with_an_unsupported_feature_never_reaches_the_worker(horde_factory: Callable[..., Horde]) -> None:
    horde = horde_factory()
    horde.start_worker("plain", "--no-allow-lora", "--no-allow-painting")
    lora = horde.generate("styled", params={**SMALL, "loras": [{"name": "shiny"}]})
    upscale = horde.generate("upscaled", params={**SMALL, "post_processing": ["RealESRGAN_x4plus"]})
    source, mask = gradient(64, 64), Image.new("L", (64, 64), 255)
    paint = horde.generate(
        "painted", source_image=webp_b64(source), source_mask=webp_b64(mask), source_processing="inpainting"
    )
    plain = horde.generate("plain")
    assert horde.wait_done(plain)["done"]
    time.sleep(1.5)  # several more pops
    for request_id in (lora, upscale, paint):
        check = horde.client.get(f"/generate/check/{request_id}").json()
        assert (check["waiting"], check["processing"], check["finished"], check["faulted"]) == (1, 0, 0, False)
        horde.client.delete(f"/generate/status/{request_id}")


def test_post_processing_is_served_only_with_the_post_processors_the_worker_has(
    horde_factory: Callable[..., Horde], setup: Setup
) -> None:
    """A worker without post-processing never gets such a job: test_a_job_with_an_unsupported_feature_…"""
    from tests.unit.worker.postprocess import weights

    # A Real-ESRGAN ×2 file in the model reference's layout, under its file name, small enough to run at once.
    weights.write_pth(setup.store / "RealESRGAN_x2plus.pth", weights.realesrgan_state(2), wrap="params_ema")
    horde = horde_factory()
    # GFPGAN's file is not in the store: the worker loads only the upscaler and lists only it in its pops.
    horde.start_worker(
        "upscaler", "--allow-post-processing", "--post-processor", "RealESRGAN_x2plus", "--post-processor", "GFPGAN"
    )
    face = horde.generate("a face", params={**SMALL, "post_processing": ["GFPGAN"]})
    upscaled = horde.generate("upscaled", params={**SMALL, "n": 2, "post_processing": ["RealESRGAN_x2plus"]})
    status = horde.wait_done(upscaled)
    assert [g["worker_name"] for g in status["generations"]] == ["upscaler", "upscaler"]
    assert [image.size for image in horde.images(status)] == [(128, 128), (128, 128)]
    time.sleep(1.5)  # several more pops
    check = horde.client.get(f"/generate/check/{face}").json()
    assert (check["waiting"], check["processing"], check["finished"], check["faulted"]) == (1, 0, 0, False)
    horde.client.delete(f"/generate/status/{face}")


def test_controlnet_is_served_only_by_a_worker_that_has_every_control_type(
    horde_factory: Callable[..., Horde], setup: Setup
) -> None:
    from tests.unit.worker.controlnet import weights

    from openhorde.worker.controlnet.annotators import canny
    from openhorde.worker.models.tiny import build_tiny_pipeline

    # The reference's nine SD 1 ControlNets for the tiny model's UNet, and every annotator's weights, in the store.
    reference = weights.write_store(setup.store, build_tiny_pipeline().unet)
    horde = horde_factory()
    horde.start_worker("plain")
    drawing = Image.new("RGB", (64, 64), "black")
    drawing.paste((255, 255, 255), (16, 16, 48, 48))
    controlled = horde.generate("edges", source_image=webp_b64(drawing), params={**SMALL, "control_type": "canny"})
    plain = horde.generate("plain")
    assert horde.wait_done(plain)["done"]
    time.sleep(1.5)  # several more pops
    check = horde.client.get(f"/generate/check/{controlled}").json()
    assert (check["waiting"], check["processing"], check["finished"], check["faulted"]) == (1, 0, 0, False)

    horde.start_worker(
        "controller", "--allow-controlnet", env={"OPENHORDE_WORKER_CONTROLNET_REFERENCE": str(reference)}
    )
    status = horde.wait_done(controlled, timeout=240)
    assert [g["worker_name"] for g in status["generations"]] == ["controller"]
    assert horde.images(status)[0].size == (64, 64)
    params = {**SMALL, "control_type": "canny", "return_control_map": True}
    control_map = horde.images(horde.wait_done(horde.generate("map", source_image=webp_b64(drawing), params=params)))
    difference = np.abs(np.asarray(control_map[0].convert("L"), int) - np.asarray(canny(drawing).convert("L"), int))
    assert difference.mean() < 8  # the canny map itself, through the WebP the worker submits


def test_a_worker_with_a_safety_model_censors_what_it_flags(
    horde_factory: Callable[..., Horde], tmp_path: Path
) -> None:
    from openhorde.worker.generation.safety import build_tiny_safety_checker

    checker = build_tiny_safety_checker(flag_everything=True)
    folder = tmp_path / "safety"
    checker.model.save_pretrained(folder)
    checker.processor.save_pretrained(folder)
    horde = horde_factory()
    horde.start_worker("careful", "--safety-model", str(folder), "--no-nsfw")
    censored = horde.generate("anything", censor_nsfw=True)
    status = horde.wait_done(censored)
    assert [g["censored"] for g in status["generations"]] == [True]
    assert horde.images(status)[0].size == (64, 64)


def test_an_alchemist_beside_image_generation_serves_both_from_one_process(
    horde_factory: Callable[..., Horde], setup: Setup
) -> None:
    from openhorde.worker.alchemy.tiny import save_tiny_blip

    save_tiny_blip(setup.store / "blip-caption")
    horde = horde_factory()
    # --model (given by start_worker) with --alchemist: images and forms in one process.
    worker = horde.start_worker("both", "--alchemist", "--caption-model", "blip-caption")
    source = webp_b64(gradient(64, 48))
    answer = horde.client.post(
        "/interrogate/async",
        headers={"apikey": horde.requester},
        json={"forms": [{"name": "caption"}], "source_image": source},
    )
    assert answer.status_code == 202, answer.text
    status = horde.wait_done(horde.generate())
    assert [g["worker_name"] for g in status["generations"]] == ["both"]
    deadline = time.monotonic() + DONE_TIMEOUT_S
    while (form := horde.client.get(f"/interrogate/status/{answer.json()['id']}").json())["state"] != "done":
        assert time.monotonic() < deadline, f"{form}\n{worker.log_tail()}"
        time.sleep(0.2)
    assert form["forms"][0]["result"]["caption"]
    alchemists = horde.client.get("/workers", params={"type": "interrogation"}).json()
    assert [a["name"] for a in alchemists] == ["both-alchemist"]
    worker.stop()
    assert worker.proc.returncode == 0, worker.log_tail()
