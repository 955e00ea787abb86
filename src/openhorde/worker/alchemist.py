"""The alchemist: serves ``/interrogate`` forms: ``caption`` (BLIP), ``interrogation`` (CLIP ranking of term lists),
``nsfw`` (the safety checker) and the post-processing forms (upscaling, face fixing, background removal of an
image a client sends), each with the model the worker has loaded for it.

One form at a time: pop, download the source, run the model in a thread, then submit. A post-processed image
goes as WebP to the form's ``r2_upload`` URL (or inline when there is none) and is submitted as ``{name: "R2"}``;
the other forms submit their result itself (``{"caption": text}``, ``{"nsfw": flag}``, ``{"interrogation":
{category: [{text, confidence}]}}``). A form that cannot be done (an unreadable source, a failure in the model)
is submitted as ``faulted`` so the horde re-queues it at once.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import io
import logging
import random
import signal
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PIL import Image

from openhorde.worker.generation.devices import resolve_placement
from openhorde.worker.horde_client import (
    AuthenticationFailed,
    HordeClient,
    HordeClientError,
    JobGone,
    bridge_agent,
)
from openhorde.worker.logs import log_event
from openhorde.worker.models.store import ModelStore
from openhorde.worker.postprocess.chain import PostProcessors
from openhorde.worker.postprocess.weights import fetch_post_processor_weights
from openhorde.worker.runner import WorkerStopped, encode_webp
from openhorde.worker.settings import WorkerSettings

if TYPE_CHECKING:
    from openhorde.worker.alchemy.caption import Captioner
    from openhorde.worker.alchemy.interrogation import Interrogator
    from openhorde.worker.generation.safety import SafetyChecker

log = logging.getLogger(__name__)
NSFW_FORM = "nsfw"
CAPTION_FORM = "caption"
INTERROGATION_FORM = "interrogation"

FORM_LEASE_SECONDS = 3 * 60
"""The horde takes a popped form back after this long (the AI Horde's form TTL)."""


class Alchemist:
    """Pops post-processing forms and serves them until stopped (``max_forms`` bounds it for tests)."""

    def __init__(
        self,
        settings: WorkerSettings,
        post_processors: PostProcessors,
        client: HordeClient,
        safety: SafetyChecker | None = None,
        captioner: Captioner | None = None,
        interrogator: Interrogator | None = None,
        *,
        name: str | None = None,
        gate: Callable[[], Awaitable[bool]] | None = None,
    ) -> None:
        self.settings = settings
        self.name = name or settings.name
        """The horde knows an alchemist by a name of its own: an image worker's name cannot pop forms."""
        self.gate = gate
        """Awaited before each pop: beside image generation, it returns once no image job is in hand (False: stop)."""
        self.post_processors = post_processors
        self.client = client
        self.safety = safety
        self.captioner = captioner
        self.interrogator = interrogator
        self.served = 0
        self.faulted = 0
        self._stopping = asyncio.Event()

    @property
    def forms(self) -> list[str]:
        """The forms this alchemist serves: one for each model it has loaded."""
        models = ((CAPTION_FORM, self.captioner), (INTERROGATION_FORM, self.interrogator), (NSFW_FORM, self.safety))
        return [form for form, model in models if model is not None] + self.post_processors.names

    def pop_body(self) -> dict[str, Any]:
        """The ``/interrogate/pop`` body: this worker's name and the forms it offers."""
        return {
            "name": self.name,
            "forms": self.forms,
            "priority_usernames": list(self.settings.priority_usernames),
            "amount": 1,
            "threads": 1,
            "bridge_agent": bridge_agent(),
        }

    def request_stop(self) -> None:
        """Finish the form in hand, then stop."""
        self._stopping.set()

    async def run(self, max_forms: int | None = None) -> None:
        """Serve forms until stopped or ``max_forms`` were handled; raises ``WorkerStopped`` on a fatal refusal."""
        if not self.forms:
            raise WorkerStopped(
                "the alchemist has no form to serve: set caption_model, interrogation_model, safety_model or "
                "post_processors (with their files)"
            )
        while not self._stopping.is_set() and (max_forms is None or self.served + self.faulted < max_forms):
            if self.gate is not None and not await self.gate():
                break
            try:
                answer = await self.client.interrogation_pop(self.pop_body())
            except AuthenticationFailed as exc:
                raise WorkerStopped(f"the horde refuses this worker: {exc}") from exc
            except HordeClientError as exc:
                log.warning("Alchemy pop failed: %s", exc)
                await self._sleep(self.settings.error_backoff_seconds)
                continue
            forms = answer.get("forms") or []
            if not forms:
                wait = random.uniform(self.settings.idle_pop_min_seconds, self.settings.idle_pop_max_seconds)
                await self._sleep(wait)
                continue
            for form in forms:
                await self._serve(form)

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._stopping.wait()

    async def _serve(self, form: dict[str, Any]) -> None:
        """One form: post-process its source, deliver the image, submit; a failure is submitted as faulted."""
        deadline = time.monotonic() + FORM_LEASE_SECONDS
        form_id, name = str(form.get("id")), str(form.get("form"))
        try:
            if name in (NSFW_FORM, CAPTION_FORM, INTERROGATION_FORM):
                result: dict[str, Any] = {name: await self._analyse(form, name)}
            else:
                webp = await self._process(form, name)
                result = await self._deliver(form, name, webp, deadline)
        except JobGone as exc:
            log.warning("Form %s (%s) is no longer ours: %s", form_id, name, exc)
            self.faulted += 1
            return
        except Exception as exc:  # a broken source, model or upload: hand the form back for another alchemist
            log.warning("Form %s (%s) failed: %s: %s", form_id, name, type(exc).__name__, exc)
            await self._submit(form_id, None, "faulted", deadline)
            self.faulted += 1
            return
        await self._submit(form_id, result, "ok", deadline)
        self.served += 1

    async def _analyse(self, form: dict[str, Any], name: str) -> Any:
        """The result of a form that describes the source: a caption, a ranking of terms, or an NSFW verdict."""
        raw = await self.client.download_image(str(form.get("source_image") or ""))

        def work() -> Any:
            with Image.open(io.BytesIO(raw)) as opened:
                opened.load()
                image = opened.convert("RGB")
            if name == CAPTION_FORM and self.captioner is not None:
                return self.captioner.caption(image)
            if name == INTERROGATION_FORM and self.interrogator is not None:
                return self.interrogator.interrogate(image)
            if name == NSFW_FORM and self.safety is not None:
                return self.safety.check([image])[0]
            raise LookupError(f"form {name} is not served by this alchemist")

        return await asyncio.to_thread(work)

    async def _process(self, form: dict[str, Any], name: str) -> bytes:
        """The source image post-processed, as WebP bytes."""
        raw = await self.client.download_image(str(form.get("source_image") or ""))
        payload = form.get("payload") or {}
        strength = float(payload.get("facefixer_strength", 1.0)) if isinstance(payload, dict) else 1.0

        def work() -> bytes:
            with Image.open(io.BytesIO(raw)) as opened:
                opened.load()
                image = opened.convert("RGBA" if "A" in opened.getbands() else "RGB")
            processed = self.post_processors.apply(image, [name], "custom", strength)
            return encode_webp(processed)

        return await asyncio.to_thread(work)

    async def _deliver(self, form: dict[str, Any], name: str, webp: bytes, deadline: float) -> dict[str, str]:
        """Upload to the form's ``r2_upload`` and answer ``R2``; without one, the image goes inline as base64."""
        upload = form.get("r2_upload")
        if upload:
            await self.client.upload(str(upload), webp, deadline=deadline)
            return {name: "R2"}
        return {name: base64.b64encode(webp).decode("ascii")}

    async def _submit(self, form_id: str, result: dict[str, Any] | None, state: str, deadline: float) -> None:
        try:
            reward = await self.client.interrogation_submit(form_id, result=result, state=state, deadline=deadline)
        except HordeClientError as exc:
            log.warning("Submitting form %s failed: %s", form_id, exc)
            return
        log.info("Form %s %s (%.2f kudos)", form_id, state, reward)


ALCHEMIST_NAME_SUFFIX = "-alchemist"


def alchemist_name(settings: WorkerSettings) -> str:
    """The name the alchemist pops under beside image generation: the worker's, with a suffix (100 characters)."""
    return settings.name[: 100 - len(ALCHEMIST_NAME_SUFFIX)] + ALCHEMIST_NAME_SUFFIX


class AlchemyStartupError(RuntimeError):
    """An alchemy model that is configured cannot be loaded; the message names the option."""


@dataclass
class AlchemyModels:
    """The models an alchemist serves forms with."""

    post_processors: PostProcessors = field(default_factory=PostProcessors)
    safety: SafetyChecker | None = None
    captioner: Captioner | None = None
    interrogator: Interrogator | None = None

    def alchemist(self, settings: WorkerSettings, client: HordeClient, **options: Any) -> Alchemist:
        """An ``Alchemist`` serving these models."""
        return Alchemist(
            settings, self.post_processors, client, self.safety, self.captioner, self.interrogator, **options
        )


def load_alchemy_models(
    settings: WorkerSettings,
    device: Any,
    safety: SafetyChecker | None = None,
    post_processors: PostProcessors | None = None,
) -> AlchemyModels:
    """The configured models: post-processors (fetched when missing), safety checker, BLIP, CLIP.

    ``safety`` and ``post_processors`` are the image worker's when it has them, shared rather than loaded twice.
    """
    from openhorde.worker.alchemy.loading import AlchemyModelError

    store = ModelStore(settings.model_store, budget_bytes=settings.disk_budget_bytes)
    if post_processors is None:
        fetch_post_processor_weights(settings.post_processors, store, settings.model_reference)
        post_processors = PostProcessors.load(settings.post_processors, store.root, device)
    models = AlchemyModels(post_processors, safety)
    try:
        if models.safety is None and settings.safety_model is not None:
            from openhorde.worker.generation.safety import SafetyChecker

            try:
                models.safety = SafetyChecker.from_pretrained(settings.safety_model, device)
            except (OSError, ValueError) as exc:
                raise AlchemyModelError(f"safety_model {settings.safety_model}: {exc}") from exc
        if settings.caption_model is not None:
            from openhorde.worker.alchemy.caption import Captioner

            models.captioner = Captioner.from_pretrained(_in_store(store, settings.caption_model), device)
        if settings.interrogation_model is not None:
            from openhorde.worker.alchemy.interrogation import Interrogator

            models.interrogator = Interrogator.from_pretrained(_in_store(store, settings.interrogation_model), device)
    except (OSError, ValueError, AlchemyModelError) as exc:
        raise AlchemyStartupError(str(exc)) from exc
    return models


def _in_store(store: ModelStore, folder: Path) -> Path:
    return store.path_for(str(folder))


def run_alchemist(settings: WorkerSettings) -> int:
    """Load the alchemy models and serve their forms until stopped (no image generation); the exit code."""

    try:
        device = resolve_placement(settings.device, None).device
        models = load_alchemy_models(settings, device)
    except (ValueError, RuntimeError) as exc:
        log_event(log, logging.ERROR, "startup_failed", str(exc))
        return 1

    async def main() -> None:
        async with HordeClient(settings.api_url, settings.api_key) as client:
            alchemist = models.alchemist(settings, client)
            summary = f"Alchemist '{alchemist.name}' → {settings.horde_url} | forms: {', '.join(alchemist.forms)}"
            log_event(log, logging.INFO, "started", summary)
            loop = asyncio.get_running_loop()
            loop.add_signal_handler(signal.SIGINT, alchemist.request_stop)
            loop.add_signal_handler(signal.SIGTERM, alchemist.request_stop)
            await alchemist.run()
            log_event(log, logging.INFO, "stopped", f"Stopped: {alchemist.served} forms done, {alchemist.faulted} not")

    try:
        asyncio.run(main())
    except WorkerStopped as exc:
        log_event(log, logging.ERROR, "stopped", str(exc))
        return 1
    return 0
