"""A popped job: the pop answer checked field by field and turned into the engine's ``GenerationSpec``.

``parse_pop`` never raises for a bad payload: a job the worker cannot run still has ids the horde is
waiting on, so it comes back with ``fault`` set (naming the field and value) and the runner submits it as
faulted, which re-queues it for another worker at once.

Sources: a source image or mask that cannot be downloaded or decoded faults the job (with a
``source_image``/``source_mask`` ``download_failed``/``parse_failed`` entry) instead of running it without
its source as the AI Horde's worker does: an img2img or inpainting result made from noise is not the image
the requester asked (and pays) for, and another worker can most likely fetch the source.
"""

from __future__ import annotations

import io
import secrets
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Literal, TypeVar, cast

from PIL import Image

from openhorde.worker.controlnet.names import CONTROL_TYPES
from openhorde.worker.generation.spec import (
    GenerationSpec,
    HypernetworkSpec,
    LoraSpec,
    Metadata,
    SourceProcessing,
    TextualInversionSpec,
    split_prompt,
)
from openhorde.worker.horde_client import PopRequest, SourceUnavailable
from openhorde.worker.postprocess import names as pp
from openhorde.worker.settings import WorkerSettings

if TYPE_CHECKING:
    from openhorde.worker.generation.engine import Capabilities

SEED_MODULUS = 2**32
DEFAULT_TTL_SECONDS = 150.0
"""Lease assumed when a pop answer carries no ``ttl`` (the AI Horde's minimum)."""
SOURCE_PROCESSINGS: tuple[SourceProcessing, ...] = ("txt2img", "img2img", "inpainting", "outpainting")
UNSUPPORTED_FEATURES = ("workflow", "extra_texts")
"""Payload fields asking for features this worker does not have: a non-empty value faults the job."""

FetchImage = Callable[[str], Awaitable[bytes]]
T = TypeVar("T", int, float)


class PayloadError(ValueError):
    """A pop payload field this worker cannot honour; the message names the field and its value."""


@dataclass
class Job:
    """One popped job: its ids (one per image), their upload URLs, its lease and what to generate."""

    ids: list[str]
    r2_uploads: list[str | None]
    model: str
    ttl: float
    popped_at: float
    """``time.monotonic()`` when the pop answered: the lease runs from here."""
    payload: dict[str, Any]
    seed: int
    spec: GenerationSpec | None = None
    metadata: list[Metadata] = field(default_factory=list)
    """Entries for every image's submit (e.g. a source that could not be downloaded)."""
    fault: str | None = None
    """Why this job cannot run; set instead of ``spec``."""

    @property
    def id(self) -> str:
        """The first image's id, naming the job in logs."""
        return self.ids[0]

    @property
    def lease_deadline(self) -> float:
        """``time.monotonic()`` after which the horde hands the job to someone else."""
        return self.popped_at + self.ttl

    def describe(self) -> str:
        """``model 512x512 30 steps ×n`` (plus ``, ControlNet canny``) for status lines and logs."""
        if self.spec is None:
            return f"{self.model} (faulted)"
        spec = self.spec
        batch = f" ×{spec.n}" if spec.n > 1 else ""
        control = f", ControlNet {spec.control_type}" if spec.control_type else ""
        return f"{self.model} {spec.width}x{spec.height} {spec.steps} steps{batch}{control}"


def pop_request(settings: WorkerSettings, capabilities: Capabilities | None = None) -> PopRequest:
    """The pop body: the owner's settings, narrowed to what the engine can do (when its capabilities are given)."""
    caps = capabilities
    post_processing = settings.allow_post_processing and (caps is None or caps.post_processing)
    return PopRequest(
        name=settings.name,
        models=list(settings.models),
        nsfw=settings.nsfw,
        blacklist=list(settings.blacklist),
        priority_usernames=list(settings.priority_usernames),
        threads=settings.threads,
        amount=settings.max_batch,
        max_pixels=settings.resolved_max_pixels,
        allow_img2img=settings.allow_img2img and (caps is None or caps.img2img),
        allow_painting=settings.allow_painting and (caps is None or caps.painting),
        allow_post_processing=post_processing,
        post_processors=list(caps.post_processors) if post_processing and caps is not None else None,
        allow_controlnet=settings.allow_controlnet and caps is not None and caps.controlnet,
        allow_lora=settings.allow_lora and (caps is None or caps.lora),
        allow_hypernetworks=settings.allow_hypernetworks and (caps is None or caps.hypernetworks),
        require_upfront_kudos=settings.require_upfront_kudos,
        extra_slow_worker=settings.extra_slow_worker,
        limit_max_steps=settings.limit_max_steps,
        can_censor_nsfw=caps is not None and caps.can_censor,
    )


def parse_seed(value: object) -> int:
    """The integer seed of the payload's seed text, the way the horde server reads it; random when absent.

    ASCII digits are a number; any other text is the little-endian integer of its UTF-8 bytes; both wrap
    below 2³².
    """
    if isinstance(value, int) and not isinstance(value, bool):
        return value % SEED_MODULUS
    text = str(value).strip() if value is not None else ""
    if not text:
        return secrets.randbelow(SEED_MODULUS)
    if text.isascii() and text.isdigit():
        return int(text) % SEED_MODULUS
    return int.from_bytes(text.encode(), "little") % SEED_MODULUS


async def parse_pop(answer: Mapping[str, Any], fetch_image: FetchImage, popped_at: float | None = None) -> Job:
    """The job in a pop answer that has one, with its sources fetched; ``fault`` set when it cannot run."""
    ids = [str(i) for i in answer.get("ids") or ([answer["id"]] if answer.get("id") else [])]
    if not ids:
        raise ValueError("the pop answer holds no job")
    payload = answer.get("payload") or {}
    job = Job(
        ids=ids,
        r2_uploads=_uploads(answer, len(ids)),
        model=str(answer.get("model") or ""),
        ttl=float(answer.get("ttl") or DEFAULT_TTL_SECONDS),
        popped_at=time.monotonic() if popped_at is None else popped_at,
        payload=dict(payload) if isinstance(payload, Mapping) else {},
        seed=parse_seed(payload.get("seed") if isinstance(payload, Mapping) else None),
    )
    try:
        job.spec = await _build_spec(answer, job, fetch_image)
    except PayloadError as exc:
        job.fault = str(exc)
    return job


def _uploads(answer: Mapping[str, Any], count: int) -> list[str | None]:
    """Upload URLs aligned with the ids; a missing one means "submit the image as base64"."""
    urls = list(answer.get("r2_uploads") or ([answer["r2_upload"]] if answer.get("r2_upload") else []))
    return [str(url) if url else None for url in urls[:count]] + [None] * (count - len(urls))


async def _build_spec(answer: Mapping[str, Any], job: Job, fetch_image: FetchImage) -> GenerationSpec:
    """The whole payload checked first, then the sources fetched (a bad field costs no download)."""
    if not isinstance(answer.get("payload"), Mapping):
        raise PayloadError("payload is missing or not an object")
    if not job.model:
        raise PayloadError("model is missing")
    payload = job.payload
    _refuse_unsupported(answer, payload)
    prompt, negative = split_prompt(_text(payload, "prompt", ""))
    processing = _source_processing(answer)
    spec = GenerationSpec(
        model=job.model,
        prompt=prompt,
        negative_prompt=negative,
        seed=job.seed,
        width=_dimension(payload, "width"),
        height=_dimension(payload, "height"),
        steps=_number(payload, "ddim_steps", int, 30, 1, 500),
        cfg_scale=_number(payload, "cfg_scale", float, 7.5, 0.0, 100.0),
        sampler_name=_text(payload, "sampler_name", "k_euler_a"),
        karras=_flag(payload, "karras", False),
        clip_skip=_number(payload, "clip_skip", int, 1, 1, 12),
        tiling=_flag(payload, "tiling", False),
        hires_fix=_flag(payload, "hires_fix", False),
        hires_fix_denoising_strength=_number(payload, "hires_fix_denoising_strength", float, 0.65, 0.01, 1.0),
        denoising_strength=_number(payload, "denoising_strength", float, 0.75, 0.01, 1.0),
        n=len(job.ids),
        source_processing=processing,
        loras=_loras(payload),
        textual_inversions=_tis(payload),
        hypernetworks=_hypernetworks(payload),
        use_nsfw_censor=_flag(payload, "use_nsfw_censor", False),
        post_processing=_post_processing(payload),
        post_processing_order=_post_processing_order(payload),
        facefixer_strength=_number(payload, "facefixer_strength", float, pp.DEFAULT_FACEFIXER_STRENGTH, 0.0, 1.0),
        control_type=_control_type(payload),
        image_is_control=_flag(payload, "image_is_control", False),
        return_control_map=_flag(payload, "return_control_map", False),
    )
    if spec.control_type is not None and processing == "txt2img":
        raise PayloadError(f"payload.control_type={spec.control_type!r} needs a source_image")
    if processing == "txt2img":
        return spec
    source = await _fetch_source(answer, "source_image", fetch_image, job)
    mask = await _fetch_source(answer, "source_mask", fetch_image, job)
    return replace(spec, source_image=source, source_mask=mask)


def _refuse_unsupported(answer: Mapping[str, Any], payload: Mapping[str, Any]) -> None:
    for name in UNSUPPORTED_FEATURES:
        if payload.get(name):
            raise PayloadError(f"payload.{name}={payload[name]!r} is not supported by this worker")
    if payload.get("transparent"):
        raise PayloadError("payload.transparent=True is not supported by this worker")
    if answer.get("extra_source_images"):
        raise PayloadError("extra_source_images are not supported by this worker")


def _post_processing(payload: Mapping[str, Any]) -> tuple[str, ...]:
    """The post-processor names, each known and unique, with at most one upscaler (the horde's rules)."""
    value = payload.get("post_processing") or []
    if not isinstance(value, list) or not all(isinstance(name, str) for name in value):
        raise PayloadError(f"payload.post_processing={value!r} is not a list of names")
    for name in value:
        if name not in pp.POST_PROCESSOR_FILES:
            raise PayloadError(f"payload.post_processing={value!r}: {name!r} is not a post-processor")
    if len(set(value)) != len(value):
        raise PayloadError(f"payload.post_processing={value!r} names a post-processor twice")
    if sum(1 for name in value if name in pp.UPSCALER_FILES) > 1:
        raise PayloadError(f"payload.post_processing={value!r} asks for more than one upscaler")
    return tuple(value)


def _control_type(payload: Mapping[str, Any]) -> str | None:
    value = payload.get("control_type") or None
    if value is not None and value not in CONTROL_TYPES:
        raise PayloadError(f"payload.control_type={value!r} is not one of {', '.join(CONTROL_TYPES)}")
    return cast(str | None, value)


def _post_processing_order(payload: Mapping[str, Any]) -> pp.PostProcessingOrder:
    value = payload.get("post_processing_order") or pp.DEFAULT_ORDER
    if value not in pp.ORDERS:
        raise PayloadError(f"payload.post_processing_order={value!r} is not one of {', '.join(pp.ORDERS)}")
    return cast(pp.PostProcessingOrder, value)


def _source_processing(answer: Mapping[str, Any]) -> SourceProcessing:
    """``txt2img`` without a source image, else the answer's ``source_processing`` (``img2img`` when absent)."""
    if not answer.get("source_image"):
        return "txt2img"
    value = answer.get("source_processing") or "img2img"
    if value not in SOURCE_PROCESSINGS:
        raise PayloadError(f"source_processing={value!r} is not supported by this worker")
    return cast(SourceProcessing, value)


async def _fetch_source(
    answer: Mapping[str, Any], key: Literal["source_image", "source_mask"], fetch_image: FetchImage, job: Job
) -> Image.Image | None:
    """A source image or mask, downloaded (URL) or decoded (base64); failures are recorded, then fault the job."""
    text = answer.get(key)
    if not text:
        return None
    try:
        raw = await fetch_image(str(text))
    except SourceUnavailable as exc:
        job.metadata.append(Metadata(type=key, value="download_failed", ref=str(exc)))
        raise PayloadError(f"{key} could not be downloaded: {exc}") from exc
    try:
        image = Image.open(io.BytesIO(raw))
        image.load()
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        job.metadata.append(Metadata(type=key, value="parse_failed", ref=str(exc)))
        raise PayloadError(f"{key} is not a readable image: {exc}") from exc
    if key == "source_mask":
        return image.convert("L")
    has_alpha = "A" in image.getbands() or "transparency" in image.info
    return image.convert("RGBA" if has_alpha else "RGB")


def _text(payload: Mapping[str, Any], name: str, default: str) -> str:
    value = payload.get(name, default)
    if value is None:
        return default
    if not isinstance(value, str):
        raise PayloadError(f"payload.{name}={value!r} is not a string")
    return value


def _flag(payload: Mapping[str, Any], name: str, default: bool) -> bool:
    value = payload.get(name, default)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise PayloadError(f"payload.{name}={value!r} is not true or false")
    return value


def _number(payload: Mapping[str, Any], name: str, kind: type[T], default: T, low: T, high: T) -> T:
    value = payload.get(name, default)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float) or (kind is int and value != int(value)):
        raise PayloadError(f"payload.{name}={value!r} is not {'an integer' if kind is int else 'a number'}")
    number = kind(value)
    if not low <= number <= high:
        raise PayloadError(f"payload.{name}={value!r} is outside {low}..{high}")
    return number


def _dimension(payload: Mapping[str, Any], name: str) -> int:
    value = _number(payload, name, int, 512, 64, 3072)
    if value % 64:
        raise PayloadError(f"payload.{name}={value!r} is not a multiple of 64")
    return value


def _objects(payload: Mapping[str, Any], name: str) -> list[Mapping[str, Any]]:
    value = payload.get(name) or []
    if not isinstance(value, list) or not all(isinstance(item, Mapping) for item in value):
        raise PayloadError(f"payload.{name}={value!r} is not a list of objects")
    return value


def _loras(payload: Mapping[str, Any]) -> tuple[LoraSpec, ...]:
    loras = []
    for index, item in enumerate(_objects(payload, "loras")):
        where = f"loras[{index}]"
        name = item.get("name")
        if not isinstance(name, str | int) or isinstance(name, bool) or not str(name).strip():
            raise PayloadError(f"payload.{where}.name={name!r} is not a name")
        loras.append(
            LoraSpec(
                name=str(name).strip(),
                model=_number(item, "model", float, 1.0, -5.0, 5.0),
                clip=_number(item, "clip", float, 1.0, -5.0, 5.0),
                inject_trigger=_text(item, "inject_trigger", "") or None,
                is_version=_flag(item, "is_version", False),
            )
        )
    return tuple(loras)


def _hypernetworks(payload: Mapping[str, Any]) -> tuple[HypernetworkSpec, ...]:
    """``hypernetworks`` (an OpenHorde extension): names and strengths, within the server's bounds."""
    found = []
    for index, item in enumerate(_objects(payload, "hypernetworks")):
        name = item.get("name")
        if not isinstance(name, str) or not name.strip():
            raise PayloadError(f"payload.hypernetworks[{index}].name={name!r} is not a name")
        found.append(HypernetworkSpec(name.strip(), _number(item, "strength", float, 1.0, -5.0, 5.0)))
    return tuple(found)


def _tis(payload: Mapping[str, Any]) -> tuple[TextualInversionSpec, ...]:
    tis = []
    for index, item in enumerate(_objects(payload, "tis")):
        name = item.get("name")
        if not isinstance(name, str | int) or isinstance(name, bool) or not str(name).strip():
            raise PayloadError(f"payload.tis[{index}].name={name!r} is not a name")
        inject = item.get("inject_ti")
        if inject not in (None, "prompt", "negprompt"):
            raise PayloadError(f"payload.tis[{index}].inject_ti={inject!r} is not prompt or negprompt")
        tis.append(
            TextualInversionSpec(
                name=str(name).strip(),
                inject=cast(Literal["prompt", "negprompt"] | None, inject),
                strength=_number(item, "strength", float, 1.0, -5.0, 5.0),
            )
        )
    return tuple(tis)
