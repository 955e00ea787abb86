"""What a worker builds before it pops: its model plan, its engine, and the capabilities it advertises.

Torch and diffusers are imported inside the functions, as in ``cli.py``, so importing this module stays light.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from openhorde.worker.logs import log_event
from openhorde.worker.settings import WorkerSettings

if TYPE_CHECKING:
    from openhorde.worker.generation.adapters import AdapterFile, AdapterLookup
    from openhorde.worker.generation.engine import Capabilities, Engine
    from openhorde.worker.models.catalogue import ModelEntry
    from openhorde.worker.models.selection import ModelPlan
    from openhorde.worker.models.store import ModelStore

log = logging.getLogger("openhorde.worker")


class StartupError(RuntimeError):
    """The worker cannot start (model missing, device unavailable…); the message says what to fix."""


def model_store(settings: WorkerSettings) -> ModelStore:
    """The settings' model store (its folder and disk budget)."""
    from openhorde.worker.models.store import ModelStore

    return ModelStore(settings.model_store, budget_bytes=settings.disk_budget_bytes)


def plan_models(settings: WorkerSettings) -> ModelPlan:
    """The models to serve: names and selectors resolved against the catalogue and the model reference.

    Reads the reference only when ``models`` names something the local catalogue lacks; asks the horde for
    its model stats only for ``top N`` and ``ALL`` selectors. Refuses (``StartupError``) an unknown name, an
    unreadable reference without a cached copy, and files that would not fit the disk budget.
    """
    from openhorde.worker.models.catalogue import CatalogueError, UnknownModel, load_catalogue
    from openhorde.worker.models.download import ModelUnavailable
    from openhorde.worker.models.selection import plan_models as plan

    try:
        catalogue = load_catalogue(settings.catalogue)
        reference = settings.model_reference.strip() or None
        result = plan(settings.models, catalogue, model_store(settings), reference, lambda: horde_popularity(settings))
    except (CatalogueError, UnknownModel, ModelUnavailable) as exc:
        raise StartupError(str(exc).strip("'\"")) from exc
    if result.reference is not None:
        log_event(
            log,
            logging.INFO,
            "model_reference",
            f"Model reference {result.reference.source} ({len(result.reference.models)} models, "
            f"fetched {result.reference.fetched_at:%Y-%m-%d %H:%M} UTC)",
            cached=result.reference.from_cache,
        )
    for name, why in result.left_out.items():
        log_event(log, logging.WARNING, "model_left_out", f"Left out {name}: {why}", model=name)
    if not settings.nsfw:
        # A worker that refuses NSFW requests does not serve models the reference marks as made for NSFW.
        nsfw = [
            name
            for name in result.names
            if result.catalogue.model(name).source == "reference" and result.catalogue.model(name).nsfw
        ]
        for name in nsfw:
            log_event(
                log, logging.WARNING, "model_left_out", f"Left out {name}: an NSFW model (nsfw: false)", model=name
            )
        result.names = [name for name in result.names if name not in nsfw]
        if not result.names:
            raise StartupError("Every model selected is an NSFW model, and this worker has nsfw: false.")
    return result


def horde_popularity(settings: WorkerSettings) -> dict[str, int]:
    """Images requested per model on the worker's horde (for ``top N`` and the order of ``ALL``)."""
    from openhorde.worker.horde_client import HordeClient, HordeClientError

    async def ask() -> dict[str, int]:
        async with HordeClient(settings.api_url, settings.api_key) as client:
            return await client.model_popularity()

    try:
        return asyncio.run(ask())
    except HordeClientError as exc:
        raise StartupError(f"the 'top N' and 'ALL' selectors need the horde's model stats: {exc}") from exc


def shape_capabilities(capabilities: Capabilities, entries: list[ModelEntry]) -> Capabilities:
    """The engine's capabilities narrowed by the models' ``features_not_supported`` (model reference).

    Painting and LoRAs are advertised only when at least one served model supports them: a worker of
    only SDXL reference models that list ``inpainting`` as unsupported must not be sent inpainting jobs.
    """
    from dataclasses import replace

    return replace(
        capabilities,
        painting=capabilities.painting and any(entry.supports("inpainting") for entry in entries),
        lora=capabilities.lora and any(entry.supports("loras") for entry in entries),
        hires_fix=capabilities.hires_fix and any(entry.supports("hires_fix") for entry in entries),
        controlnet=capabilities.controlnet
        and any(e.baseline in capabilities.controlnet_baselines and e.supports("controlnet") for e in entries),
    )


def build_engine(settings: WorkerSettings, plan: ModelPlan | None = None) -> Engine:
    """The engine for these settings, with the configured models checked and loaded."""
    from openhorde.worker.generation.devices import resolve_placement
    from openhorde.worker.generation.engine import Engine, GenerationFailed
    from openhorde.worker.generation.safety import SafetyChecker, build_builtin_safety_checker
    from openhorde.worker.models.civitai import Civitai
    from openhorde.worker.models.loader import load_pipeline

    if plan is None:
        plan = plan_models(settings)
    catalogue = plan.catalogue
    store = model_store(settings)
    try:
        placement = resolve_placement(settings.device, None if settings.dtype == "auto" else settings.dtype)
    except (ValueError, RuntimeError) as exc:  # e.g. cuda asked for on a machine without it
        raise StartupError(f"device {settings.device}: {exc}") from exc
    safety = None
    if settings.safety_model is not None:
        try:
            safety = SafetyChecker.from_pretrained(settings.safety_model, placement.device)
        except (OSError, ValueError) as exc:
            raise StartupError(f"safety_model {settings.safety_model}: cannot load it ({exc})") from exc
    elif plan.names and all(catalogue.model(name).source == "builtin" for name in plan.names):
        # The built-in models ship their own checker, so a demo worker takes requests that ask for censoring.
        safety = build_builtin_safety_checker(placement.device)

    def load_model(name: str) -> Any:
        return load_pipeline(catalogue.model(name), store, engine.placement.device, engine.placement.dtype)

    # An empty civitai_url switches on-demand adapters off: then only the catalogue's LoRAs and TIs are served.
    on_demand = (
        Civitai(
            store,
            api_url=settings.civitai_url,
            token=settings.civitai_token,
            cache_bytes=int(settings.adapter_cache_gb * (1 << 30)),
            nsfw=settings.nsfw,
            baselines={name: catalogue.model(name).baseline for name in plan.names},
        )
        if settings.civitai_url.strip()
        else None
    )

    def resolve_adapter(lookup: AdapterLookup) -> AdapterFile | None:
        """The owner's catalogue first (by name), then CivitAI (by id, name or version id); hypernetworks come
        from the catalogue or as ``hypernetworks/<name>.pt`` in the model store, never from CivitAI."""
        from openhorde.worker.generation.adapters import AdapterFile

        entry = catalogue.adapter(lookup.kind, lookup.name)
        if entry is not None and not lookup.is_version:
            return AdapterFile(store.ensure(entry, progress=False), entry.triggers)
        if lookup.kind == "hypernetwork":
            local = store.hypernetwork_file(lookup.name)
            return AdapterFile(local) if local is not None else None
        return on_demand(lookup) if on_demand is not None else None

    post_processors = None
    if settings.allow_post_processing and settings.post_processors:
        from openhorde.worker.postprocess.chain import PostProcessors
        from openhorde.worker.postprocess.weights import fetch_post_processor_weights

        fetch_post_processor_weights(settings.post_processors, store, settings.model_reference)
        post_processors = PostProcessors.load(settings.post_processors, store.root, placement.device)
        log_event(
            log,
            logging.INFO,
            "post_processors",
            f"Post-processors: {', '.join(post_processors.names) or 'none found'}",
            post_processors=post_processors.names,
        )

    controlnets = None
    if settings.allow_controlnet:
        from openhorde.worker.controlnet.pipeline import load_controlnet_support

        baselines = {name: catalogue.model(name).baseline for name in plan.names}
        controlnets = load_controlnet_support(settings.controlnet_reference, store, baselines, placement.device)

    # Keep as many models loaded as there can be jobs in hand (as the AI Horde worker keeps one process each).
    resident = min(len(plan.names), settings.threads + settings.queue_size)
    engine = Engine(
        load_model,
        device=placement.device,
        dtype=placement.dtype,
        safety_checker=safety,
        resolve_adapter=resolve_adapter if settings.allow_lora or settings.allow_hypernetworks else None,
        nsfw_worker=settings.nsfw,
        max_loaded_models=resident,
        post_processors=post_processors,
        controlnets=controlnets,
    )
    for name in plan.names[:resident]:
        log_event(log, logging.INFO, "loading_model", f"Loading {name}…", model=name)
        try:
            engine.preload(name)
        except GenerationFailed as exc:
            raise StartupError(exc.reason) from exc
    return engine
