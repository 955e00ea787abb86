"""``openhorde worker``: run a worker (the group's own callback), ``fetch-vocab`` and ``export-tiny``.

Only light modules are imported here; torch, diffusers and the runner are imported inside the commands so
that ``openhorde serve`` and ``openhorde admin`` never load them.
"""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console

from openhorde.worker.logs import configure_logging, log_event
from openhorde.worker.settings import WorkerSettings, WorkerSettingsError, load_settings

if TYPE_CHECKING:
    from openhorde.worker.generation.adapters import AdapterFile, AdapterLookup
    from openhorde.worker.generation.engine import Capabilities, Engine
    from openhorde.worker.models.catalogue import ModelEntry
    from openhorde.worker.models.selection import ModelPlan
    from openhorde.worker.models.store import ModelStore

log = logging.getLogger("openhorde.worker")
console = Console()
errors = Console(stderr=True)

worker_app = typer.Typer(
    help="Run a worker: pop jobs from a horde, generate them with diffusers, hand the images in.",
    invoke_without_command=True,
)

EXIT_CONFIG = 2
EXIT_INTERRUPTED = 130


class StartupError(RuntimeError):
    """The worker cannot start (model missing, device unavailable…); the message says what to fix."""


def _option(help_text: str, *names: str) -> Any:
    return typer.Option(*names, help=help_text, show_default=False)


@worker_app.callback()
def worker(
    ctx: typer.Context,
    config: Annotated[Path | None, _option("YAML config file (default: ./worker.yaml if it exists).")] = None,
    url: Annotated[str | None, _option("Horde URL, with or without /api (default: http://127.0.0.1:7001).")] = None,
    api_key: Annotated[str | None, _option("API key of the worker's owner.")] = None,
    name: Annotated[str | None, _option("Worker name, unique on the horde (default: openhorde-<hostname>).")] = None,
    model: Annotated[
        list[str] | None,
        _option("Model name or selector ('top 5', 'ALL SDXL') (repeatable) (default: openhorde-tiny).", "--model"),
    ] = None,
    device: Annotated[str | None, _option("auto, cpu, cuda, cuda:N or mps (default: auto).")] = None,
    threads: Annotated[int | None, _option("Concurrent generations (default: 1).")] = None,
    queue_size: Annotated[int | None, _option("Extra popped jobs kept ready, 0-4 (default: 1).")] = None,
    max_batch: Annotated[int | None, _option("Most images per job (the pop's amount) (default: 1).")] = None,
    max_power: Annotated[int | None, _option("Largest image: max_power × 8 × 64² pixels (default: 8 = 512²).")] = None,
    nsfw: Annotated[bool | None, _option("Accept NSFW requests (default: yes).", "--nsfw/--no-nsfw")] = None,
    allow_img2img: Annotated[
        bool | None, _option("Accept img2img (default: yes).", "--allow-img2img/--no-allow-img2img")
    ] = None,
    allow_painting: Annotated[
        bool | None, _option("Accept inpainting/outpainting (default: yes).", "--allow-painting/--no-allow-painting")
    ] = None,
    allow_lora: Annotated[
        bool | None, _option("Accept LoRA jobs (default: no).", "--allow-lora/--no-allow-lora")
    ] = None,
    allow_post_processing: Annotated[
        bool | None,
        _option(
            "Accept upscaling/face fixing/background removal (default: no).",
            "--allow-post-processing/--no-allow-post-processing",
        ),
    ] = None,
    post_processor: Annotated[
        list[str] | None,
        _option(
            "Post-processor to load from the model store (repeatable), e.g. RealESRGAN_x4plus.", "--post-processor"
        ),
    ] = None,
    allow_controlnet: Annotated[
        bool | None,
        _option("Accept ControlNet (fetches its files; default: no).", "--allow-controlnet/--no-allow-controlnet"),
    ] = None,
    alchemist: Annotated[
        bool | None,
        _option("Serve alchemy's post-processing forms instead of images (default: no).", "--alchemist/--no-alchemist"),
    ] = None,
    model_store: Annotated[Path | None, _option("Folder of model files (default: ./models).")] = None,
    catalogue: Annotated[Path | None, _option("Catalogue of models, LoRAs and TIs (YAML/JSON).")] = None,
    model_reference: Annotated[
        str | None, _option("AI Horde model reference: URL or file (default: the public stable_diffusion.json).")
    ] = None,
    disk_budget_gb: Annotated[
        float | None, _option("Most GiB the model store may hold (default: the free disk).")
    ] = None,
    safety_model: Annotated[Path | None, _option("Folder of a CLIP safety checker (enables censoring).")] = None,
    log_format: Annotated[str | None, _option("text or json (default: text).")] = None,
    log_file: Annotated[Path | None, _option("Also write the log to this file.")] = None,
) -> None:
    """Run a worker until Ctrl-C (once: finish the current job and stop; twice: quit at once)."""
    if ctx.invoked_subcommand is not None:
        return
    flags = {
        "horde_url": url,
        "api_key": api_key,
        "name": name,
        "models": model or None,
        "device": device,
        "threads": threads,
        "queue_size": queue_size,
        "max_batch": max_batch,
        "max_power": max_power,
        "nsfw": nsfw,
        "allow_img2img": allow_img2img,
        "allow_painting": allow_painting,
        "allow_lora": allow_lora,
        "allow_post_processing": allow_post_processing,
        "post_processors": post_processor or None,
        "allow_controlnet": allow_controlnet,
        "alchemist": alchemist,
        "model_store": model_store,
        "catalogue": catalogue,
        "model_reference": model_reference,
        "disk_budget_gb": disk_budget_gb,
        "safety_model": safety_model,
        "log_format": log_format,
        "log_file": log_file,
    }
    try:
        settings = load_settings(config, **flags)
    except WorkerSettingsError as exc:
        errors.print(f"[red]Error:[/red] {exc}", highlight=False)
        raise typer.Exit(code=EXIT_CONFIG) from exc
    configure_logging(settings.log_format, settings.log_file)
    if settings.alchemist:
        from openhorde.worker.alchemist import run_alchemist

        raise typer.Exit(code=run_alchemist(settings))
    raise typer.Exit(code=run_worker(settings))


def run_worker(settings: WorkerSettings) -> int:
    """Load the models, build the engine, work until stopped; returns the process exit code."""
    from openhorde.worker.horde_client import HordeClient
    from openhorde.worker.runner import Runner, WorkerStopped
    from openhorde.worker.status import StatusDisplay, WorkerStats

    try:
        plan = plan_models(settings)
        settings = settings.model_copy(update={"models": plan.names})
        engine = build_engine(settings, plan)
    except StartupError as exc:
        log_event(log, logging.ERROR, "startup_failed", str(exc))
        return 1
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    capabilities = shape_capabilities(engine.capabilities(), [plan.catalogue.model(name) for name in plan.names])
    summary = (
        f"Worker '{settings.name}' → {settings.horde_url} | models: {', '.join(settings.models)} | "
        f"device: {engine.placement.device} ({str(engine.placement.dtype).removeprefix('torch.')}) | "
        f"img2img {capabilities.img2img and settings.allow_img2img}, "
        f"painting {capabilities.painting and settings.allow_painting}, "
        f"lora {capabilities.lora and settings.allow_lora}, censoring {capabilities.can_censor}, "
        f"post-processing {', '.join(capabilities.post_processors) or 'none'}, controlnet {capabilities.controlnet}"
    )
    log_event(log, logging.INFO, "started", summary)

    async def main() -> None:
        async with HordeClient(settings.api_url, settings.api_key) as client:
            display = StatusDisplay(WorkerStats(), console=console)
            runner = Runner(settings, engine, client, capabilities=capabilities, display=display)
            stats = await runner.run(handle_signals=True)
            log_event(log, logging.INFO, "stopped", f"Stopped: {stats.line()}")

    try:
        asyncio.run(main())
    except WorkerStopped:
        return 1  # the runner logged why
    except (KeyboardInterrupt, asyncio.CancelledError):
        # A second Ctrl-C: a generation thread may still be inside torch, whose threads abort the process
        # if the interpreter shuts down around them; leave at once instead.
        logging.shutdown()
        os._exit(EXIT_INTERRUPTED)
    return 0


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
        """The owner's catalogue first (by name), then CivitAI (by id, name or version id)."""
        from openhorde.worker.generation.adapters import AdapterFile

        entry = catalogue.lora(lookup.name) if lookup.kind == "lora" else catalogue.ti(lookup.name)
        if entry is not None and not lookup.is_version:
            return AdapterFile(store.ensure(entry, progress=False), entry.triggers)
        return on_demand(lookup) if on_demand is not None else None

    post_processors = None
    if settings.allow_post_processing and settings.post_processors:
        from openhorde.worker.postprocess.chain import PostProcessors

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
        resolve_adapter=resolve_adapter if settings.allow_lora else None,
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


@worker_app.command("fetch-vocab")
def fetch_vocab_command() -> None:
    """Download the CLIP tokenizer's merge list once (needs network access; the worker then runs offline)."""
    from openhorde.worker.models.tokenizer import fetch_vocab

    console.print(f"CLIP vocabulary at {fetch_vocab()}")


@worker_app.command("export-tiny")
def export_tiny_command(
    directory: Annotated[Path, typer.Argument(help="Folder to write the checkpoint and its config folder to.")],
    inpainting: Annotated[bool, typer.Option(help="Export the inpainting variant.")] = False,
) -> None:
    """Write the built-in tiny model as a single-file checkpoint plus config folder (to test real loading)."""
    from openhorde.worker.models.checkpoint import export_tiny_model

    checkpoint, config_dir = export_tiny_model(directory, inpainting=inpainting)
    console.print(f"Checkpoint: {checkpoint}\nConfig folder: {config_dir}")
    console.print(
        "Catalogue entry:\n"
        f"  - name: openhorde-tiny-file\n    baseline: sd1\n    file: {checkpoint.resolve()}\n"
        f"    config: {config_dir.resolve()}",
        highlight=False,
    )
