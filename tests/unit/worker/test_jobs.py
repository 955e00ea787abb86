"""Pop answers → jobs: prompt split, seed rules, sources, batches, defaults, faults; and the pop body."""

from __future__ import annotations

import base64
import io
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

from openhorde.domain.queue.seeds import parse_seed as server_parse_seed
from openhorde.worker.generation.engine import Capabilities
from openhorde.worker.generation.spec import HypernetworkSpec, split_prompt
from openhorde.worker.horde_client import HordeClient, SourceUnavailable
from openhorde.worker.jobs import DEFAULT_TTL_SECONDS, parse_pop, parse_seed, pop_request
from openhorde.worker.settings import WorkerSettings


def image_bytes(mode: str = "RGB", size: tuple[int, int] = (64, 64), fmt: str = "WEBP") -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, size, 128).save(buffer, format=fmt)
    return buffer.getvalue()


def answer(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": "job-1",
        "ids": ["job-1"],
        "model": "openhorde-tiny",
        "ttl": 200,
        "payload": {"prompt": "a lighthouse", "seed": "42", "width": 64, "height": 64, "ddim_steps": 4, "n_iter": 1},
        "r2_upload": "http://h/blobs/job-1.webp?sig=1",
        "r2_uploads": ["http://h/blobs/job-1.webp?sig=1"],
    }
    body.update(overrides)
    return body


async def no_fetch(source: str) -> bytes:
    raise AssertionError(f"nothing should be fetched, got {source[:30]}")


async def decode_inline(source: str) -> bytes:
    async with HordeClient("http://unused", "key") as client:
        return await client.download_image(source)


@pytest.mark.parametrize(
    ("prompt", "positive", "negative"),
    [
        ("a cat", "a cat", ""),
        ("a cat###ugly, blurry", "a cat", "ugly, blurry"),
        ("a cat ### ugly ### ignored", "a cat", "ugly"),
        ("###only negative", "", "only negative"),
    ],
)
def test_prompt_split(prompt: str, positive: str, negative: str) -> None:
    assert split_prompt(prompt) == (positive, negative)


@pytest.mark.parametrize(
    ("text", "seed"),
    [
        ("42", 42),
        (" 42 ", 42),
        ("4294967297", 1),
        (7, 7),
        ("The little seed that could", int.from_bytes(b"The little seed that could", "little") % 2**32),
        ("²", int.from_bytes("²".encode(), "little")),
    ],
)
def test_seed_rules(text: object, seed: int) -> None:
    assert parse_seed(text) == seed


@pytest.mark.parametrize("missing", [None, "", "   "])
def test_missing_seed_is_random(missing: str | None) -> None:
    seeds = {parse_seed(missing) for _ in range(20)}
    assert all(0 <= seed < 2**32 for seed in seeds)
    assert len(seeds) > 1


@given(st.text(min_size=1).filter(str.strip))
def test_seed_text_is_read_as_the_server_reads_it(text: str) -> None:
    assert parse_seed(text) == server_parse_seed(text)


async def test_txt2img_payload_becomes_a_spec() -> None:
    job = await parse_pop(
        answer(
            payload={
                "prompt": "a lighthouse###fog",
                "seed": "The little seed",
                "width": 128,
                "height": 64,
                "ddim_steps": 3,
                "cfg_scale": 5.5,
                "sampler_name": "k_dpmpp_2m",
                "karras": True,
                "clip_skip": 2,
                "tiling": True,
                "hires_fix": True,
                "hires_fix_denoising_strength": 0.5,
                "use_nsfw_censor": True,
                "loras": [{"name": "123", "model": 0.8, "clip": 0.5, "inject_trigger": "any", "is_version": True}],
                "tis": [{"name": "easynegative", "inject_ti": "negprompt", "strength": 0.7}],
            }
        ),
        no_fetch,
        popped_at=100.0,
    )
    assert job.fault is None and job.spec is not None
    spec = job.spec
    assert (spec.prompt, spec.negative_prompt) == ("a lighthouse", "fog")
    assert spec.seed == job.seed == int.from_bytes(b"The little seed", "little") % 2**32
    assert (spec.width, spec.height, spec.steps, spec.cfg_scale) == (128, 64, 3, 5.5)
    assert (spec.sampler_name, spec.karras, spec.clip_skip, spec.tiling) == ("k_dpmpp_2m", True, 2, True)
    assert (spec.hires_fix, spec.hires_fix_denoising_strength, spec.use_nsfw_censor) == (True, 0.5, True)
    assert spec.source_processing == "txt2img" and spec.source_image is None
    assert spec.loras[0].name == "123" and spec.loras[0].model == 0.8 and spec.loras[0].clip == 0.5
    assert spec.loras[0].inject_trigger == "any" and spec.loras[0].is_version
    assert spec.textual_inversions[0].inject == "negprompt" and spec.textual_inversions[0].strength == 0.7
    assert job.lease_deadline == 300.0
    assert job.describe() == "openhorde-tiny 128x64 3 steps"


async def test_defaults_for_a_bare_payload() -> None:
    job = await parse_pop(answer(payload={"prompt": "x"}, ttl=None), no_fetch)
    spec = job.spec
    assert spec is not None
    assert (spec.width, spec.height, spec.steps, spec.cfg_scale) == (512, 512, 30, 7.5)
    assert (spec.sampler_name, spec.karras, spec.clip_skip, spec.n) == ("k_euler_a", False, 1, 1)
    assert spec.loras == () and spec.textual_inversions == ()
    assert job.ttl == DEFAULT_TTL_SECONDS
    assert 0 <= job.seed < 2**32


async def test_batch_ids_and_uploads_stay_aligned() -> None:
    ids = ["a", "b", "c"]
    uploads = [f"http://h/blobs/{i}.webp?sig=x" for i in ids]
    job = await parse_pop(answer(ids=ids, id="a", r2_uploads=uploads, payload={"prompt": "x", "n_iter": 3}), no_fetch)
    assert job.ids == ids and job.r2_uploads == uploads
    assert job.spec is not None and job.spec.n == 3
    assert job.describe().endswith("×3")


async def test_missing_upload_urls_mean_inline_submits() -> None:
    job = await parse_pop(answer(ids=["a", "b"], r2_uploads=None, r2_upload=None), no_fetch)
    assert job.r2_uploads == [None, None]
    single = await parse_pop(answer(ids=None, id="solo", r2_uploads=None, r2_upload="http://h/u"), no_fetch)
    assert single.ids == ["solo"] and single.r2_uploads == ["http://h/u"]


async def test_an_answer_without_a_job_is_an_error() -> None:
    with pytest.raises(ValueError, match="no job"):
        await parse_pop({"payload": {}, "ids": [], "skipped": {}}, no_fetch)


async def test_base64_source_and_mask_are_decoded() -> None:
    source = base64.b64encode(image_bytes("RGBA", fmt="PNG")).decode()
    mask = "data:image/webp;base64," + base64.b64encode(image_bytes("RGB")).decode()
    job = await parse_pop(answer(source_image=source, source_mask=mask, source_processing="inpainting"), decode_inline)
    assert job.fault is None and job.spec is not None
    assert job.spec.source_processing == "inpainting"
    assert job.spec.source_image is not None and job.spec.source_image.mode == "RGBA"
    assert job.spec.source_mask is not None and job.spec.source_mask.mode == "L"


async def test_source_without_processing_is_img2img() -> None:
    source = base64.b64encode(image_bytes()).decode()
    job = await parse_pop(answer(source_image=source, source_processing=None), decode_inline)
    assert job.spec is not None and job.spec.source_processing == "img2img"
    assert job.spec.source_image is not None and job.spec.source_image.mode == "RGB"


async def test_processing_without_a_source_is_txt2img() -> None:
    job = await parse_pop(answer(source_processing="img2img"), no_fetch)
    assert job.spec is not None and job.spec.source_processing == "txt2img"


async def test_a_source_that_cannot_be_downloaded_faults_the_job() -> None:
    async def failing(source: str) -> bytes:
        raise SourceUnavailable("GET http://h/src answered HTTP 404")

    job = await parse_pop(answer(source_image="http://h/src.webp", source_processing="img2img"), failing)
    assert job.spec is None
    assert job.fault is not None and "source_image could not be downloaded" in job.fault
    assert [(m.type, m.value) for m in job.metadata] == [("source_image", "download_failed")]


async def test_a_source_that_does_not_decode_faults_the_job() -> None:
    garbage = base64.b64encode(b"definitely not an image").decode()
    job = await parse_pop(answer(source_image=garbage), decode_inline)
    assert job.fault is not None and "source_image is not a readable image" in job.fault
    assert [(m.type, m.value) for m in job.metadata] == [("source_image", "parse_failed")]


async def test_invalid_base64_is_a_download_failure() -> None:
    job = await parse_pop(answer(source_image="%%% not base64 %%%"), decode_inline)
    assert job.fault is not None and "source_image" in job.fault
    assert job.metadata[0].value == "download_failed"


@pytest.mark.parametrize(
    ("payload", "named"),
    [
        ({"width": 100}, "payload.width=100"),
        ({"height": 4096}, "payload.height=4096"),
        ({"ddim_steps": "many"}, "payload.ddim_steps='many'"),
        ({"ddim_steps": 2.5}, "payload.ddim_steps=2.5"),
        ({"cfg_scale": True}, "payload.cfg_scale=True"),
        ({"karras": "yes"}, "payload.karras='yes'"),
        ({"prompt": 12}, "payload.prompt=12"),
        ({"post_processing": ["GFPGAN", "GFPGAN"]}, "payload.post_processing=['GFPGAN', 'GFPGAN']"),
        ({"post_processing": ["RealESRGAN_x8"]}, "'RealESRGAN_x8' is not a post-processor"),
        ({"post_processing": ["NMKD_Siax", "4x_AnimeSharp"]}, "more than one upscaler"),
        ({"post_processing": "GFPGAN"}, "payload.post_processing='GFPGAN' is not a list"),
        ({"post_processing_order": "random"}, "payload.post_processing_order='random'"),
        ({"facefixer_strength": 1.5}, "payload.facefixer_strength=1.5"),
        ({"control_type": "canny"}, "payload.control_type='canny'"),
        ({"loras": [{"model": 1}]}, "payload.loras[0].name=None"),
        ({"tis": [{"name": "x", "inject_ti": "middle"}]}, "payload.tis[0].inject_ti='middle'"),
        ({"hypernetworks": [{"strength": 1}]}, "payload.hypernetworks[0].name=None"),
        ({"hypernetworks": [{"name": "h", "strength": 9}]}, "payload.strength=9 is outside"),
        ({"hypernetworks": {"name": "h"}}, "payload.hypernetworks={'name': 'h'} is not a list"),
    ],
)
async def test_bad_fields_fault_the_job_naming_field_and_value(payload: dict[str, Any], named: str) -> None:
    job = await parse_pop(answer(payload={"prompt": "x", **payload}), no_fetch)
    assert job.spec is None
    assert job.fault is not None and named in job.fault


async def test_post_processing_fields_reach_the_spec() -> None:
    payload = {
        "prompt": "x",
        "post_processing": ["strip_background", "RealESRGAN_x2plus", "CodeFormers"],
        "post_processing_order": "custom",
        "facefixer_strength": 0.25,
    }
    job = await parse_pop(answer(payload=payload), no_fetch)
    assert job.spec is not None
    assert job.spec.post_processing == ("strip_background", "RealESRGAN_x2plus", "CodeFormers")
    assert job.spec.post_processing_order == "custom"
    assert job.spec.facefixer_strength == 0.25


async def test_post_processing_defaults() -> None:
    job = await parse_pop(answer(payload={"prompt": "x"}), no_fetch)
    assert job.spec is not None
    assert (job.spec.post_processing, job.spec.post_processing_order, job.spec.facefixer_strength) == (
        (),
        "facefixers_first",
        1.0,
    )


async def test_missing_model_or_payload_faults_the_job() -> None:
    assert (await parse_pop(answer(model=None), no_fetch)).fault == "model is missing"
    assert (await parse_pop(answer(payload=None), no_fetch)).fault == "payload is missing or not an object"


async def test_unknown_source_processing_faults_the_job() -> None:
    job = await parse_pop(answer(source_image="aGk=", source_processing="remix"), no_fetch)
    assert job.fault is not None and "source_processing='remix'" in job.fault


def test_pop_request_follows_settings_and_capabilities() -> None:
    settings = WorkerSettings(
        name="w1", models=["m"], max_power=16, max_batch=4, allow_lora=True, blacklist=["b"], nsfw=False
    )
    plain = pop_request(settings).to_wire()
    assert plain["name"] == "w1" and plain["models"] == ["m"] and plain["amount"] == 4
    assert plain["max_pixels"] == 16 * 8 * 64 * 64 and plain["blacklist"] == ["b"] and plain["nsfw"] is False
    assert plain["can_censor_nsfw"] is False
    assert plain["bridge_agent"].startswith("OpenHorde Worker:")
    limited = SimpleNamespace(img2img=False, painting=True, lora=False, post_processing=False, can_censor=True)
    body = pop_request(settings, limited).to_wire()  # type: ignore[arg-type]
    assert body["allow_img2img"] is False and body["allow_lora"] is False and body["allow_painting"] is True
    assert body["can_censor_nsfw"] is True


async def test_hypernetworks_reach_the_spec() -> None:
    payload = {"prompt": "x", "hypernetworks": [{"name": " anime ", "strength": 0.4}, {"name": "ink"}]}
    job = await parse_pop(answer(payload=payload), no_fetch)
    assert job.spec is not None
    assert job.spec.hypernetworks == (HypernetworkSpec("anime", 0.4), HypernetworkSpec("ink", 1.0))


def test_the_pop_advertises_hypernetworks_when_allowed_and_the_engine_can() -> None:
    allowed = WorkerSettings(name="w1", models=["m"], allow_hypernetworks=True)
    assert pop_request(allowed, Capabilities(hypernetworks=True)).to_wire()["allow_hypernetworks"] is True
    assert pop_request(allowed, Capabilities(hypernetworks=False)).to_wire()["allow_hypernetworks"] is False
    not_allowed = WorkerSettings(name="w1", models=["m"])
    assert pop_request(not_allowed, Capabilities(hypernetworks=True)).to_wire()["allow_hypernetworks"] is False


def test_the_pop_advertises_post_processing_only_with_some_loaded_and_lists_them() -> None:
    settings = WorkerSettings(name="w1", models=["m"], allow_post_processing=True, post_processors=["GFPGAN"])
    with_some = Capabilities(post_processing=True, post_processors=("GFPGAN", "strip_background"))
    body = pop_request(settings, with_some).to_wire()
    assert body["allow_post_processing"] is True
    assert body["post_processors"] == ["GFPGAN", "strip_background"]

    none_loaded = pop_request(settings, Capabilities()).to_wire()
    assert none_loaded["allow_post_processing"] is False and none_loaded["post_processors"] is None

    owner_said_no = pop_request(WorkerSettings(name="w1", models=["m"]), with_some).to_wire()
    assert owner_said_no["allow_post_processing"] is False and owner_said_no["post_processors"] is None


async def test_controlnet_fields_reach_the_spec_with_the_source_as_the_control_image() -> None:
    source = base64.b64encode(image_bytes()).decode()
    payload = {"prompt": "x", "control_type": "depth", "image_is_control": True, "return_control_map": True}
    job = await parse_pop(answer(payload=payload, source_image=source), decode_inline)
    assert job.spec is not None and job.spec.source_image is not None
    assert (job.spec.control_type, job.spec.image_is_control, job.spec.return_control_map) == ("depth", True, True)
    assert job.describe() == "openhorde-tiny 512x512 30 steps, ControlNet depth"

    plain = await parse_pop(answer(payload={"prompt": "x"}), no_fetch)
    assert plain.spec is not None
    assert (plain.spec.control_type, plain.spec.image_is_control, plain.spec.return_control_map) == (None, False, False)


async def test_an_unknown_control_type_faults_the_job() -> None:
    source = base64.b64encode(image_bytes()).decode()
    job = await parse_pop(answer(payload={"prompt": "x", "control_type": "mlsd"}, source_image=source), no_fetch)
    assert job.fault is not None and "payload.control_type='mlsd' is not one of canny" in job.fault


def test_the_pop_advertises_controlnet_only_when_the_owner_allows_it_and_the_engine_has_it() -> None:
    allowed = WorkerSettings(name="w1", models=["m"], allow_controlnet=True)
    has_it = Capabilities(controlnet=True, controlnet_baselines=("sd1",))
    assert pop_request(allowed, has_it).to_wire()["allow_controlnet"] is True
    assert pop_request(allowed, Capabilities()).to_wire()["allow_controlnet"] is False
    assert pop_request(WorkerSettings(name="w1", models=["m"]), has_it).to_wire()["allow_controlnet"] is False
