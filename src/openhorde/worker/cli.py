"""``openhorde worker``: run a worker (the group's own callback), ``fetch-vocab`` and ``export-tiny``.

Only light modules are imported here; torch, diffusers and the runner are imported inside the commands so
that ``openhorde serve`` and ``openhorde admin`` never load them.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console

from openhorde.worker.logs import configure_logging, log_event
from openhorde.worker.settings import WorkerSettings, WorkerSettingsError, load_settings

if TYPE_CHECKING:
    from openhorde.worker.generation.adapters import AdapterFile, AdapterKind
    from openhorde.worker.generation.engine import Engine

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
        list[str] | None, _option("Model to serve (repeatable) (default: openhorde-tiny).", "--model")
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
    alchemist: Annotated[
        bool | None,
        _option("Serve alchemy's post-processing forms instead of images (default: no).", "--alchemist/--no-alchemist"),
    ] = None,
    model_store: Annotated[Path | None, _option("Folder of model files (default: ./models).")] = None,
    catalogue: Annotated[Path | None, _option("Catalogue of models, LoRAs and TIs (YAML/JSON).")] = None,
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
        "alchemist": alchemist,
        "model_store": model_store,
        "catalogue": catalogue,
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
    raise typer.Exit(code=run_alchemist(settings) if settings.alchemist else run_worker(settings))


def run_alchemist(settings: WorkerSettings) -> int:
    """Load the post-processors and serve alchemy's post-processing forms until stopped; the exit code."""
    from openhorde.worker.alchemist import Alchemist
    from openhorde.worker.generation.devices import resolve_placement
    from openhorde.worker.horde_client import HordeClient
    from openhorde.worker.postprocess.chain import PostProcessors
    from openhorde.worker.runner import WorkerStopped

    try:
        device = resolve_placement(settings.device, None).device
    except (ValueError, RuntimeError) as exc:
        log_event(log, logging.ERROR, "startup_failed", f"device {settings.device}: {exc}")
        return 1
    loaded = PostProcessors.load(settings.post_processors, settings.model_store.expanduser(), device)
    safety = None
    if settings.safety_model is not None:
        from openhorde.worker.generation.safety import SafetyChecker

        try:
            safety = SafetyChecker.from_pretrained(settings.safety_model, device)
        except (OSError, ValueError) as exc:
            log_event(log, logging.ERROR, "startup_failed", f"safety_model {settings.safety_model}: {exc}")
            return 1

    async def main() -> None:
        async with HordeClient(settings.api_url, settings.api_key) as client:
            alchemist = Alchemist(settings, loaded, client, safety)
            summary = f"Alchemist '{settings.name}' → {settings.horde_url} | forms: {', '.join(alchemist.forms)}"
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


def run_worker(settings: WorkerSettings) -> int:
    """Load the models, build the engine, work until stopped; returns the process exit code."""
    from openhorde.worker.horde_client import HordeClient
    from openhorde.worker.runner import Runner, WorkerStopped
    from openhorde.worker.status import StatusDisplay, WorkerStats

    try:
        engine = build_engine(settings)
    except StartupError as exc:
        log_event(log, logging.ERROR, "startup_failed", str(exc))
        return 1
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    capabilities = engine.capabilities()
    summary = (
        f"Worker '{settings.name}' → {settings.horde_url} | models: {', '.join(settings.models)} | "
        f"device: {engine.placement.device} ({str(engine.placement.dtype).removeprefix('torch.')}) | "
        f"img2img {capabilities.img2img and settings.allow_img2img}, "
        f"painting {capabilities.painting and settings.allow_painting}, "
        f"lora {capabilities.lora and settings.allow_lora}, censoring {capabilities.can_censor}, "
        f"post-processing {', '.join(capabilities.post_processors) or 'none'}"
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


def build_engine(settings: WorkerSettings) -> Engine:
    """The engine for these settings, with the configured models checked and loaded."""
    from openhorde.worker.generation.devices import resolve_placement
    from openhorde.worker.generation.engine import Engine, GenerationFailed
    from openhorde.worker.generation.safety import SafetyChecker, build_builtin_safety_checker
    from openhorde.worker.models.catalogue import CatalogueError, UnknownModel, load_catalogue
    from openhorde.worker.models.loader import load_pipeline
    from openhorde.worker.models.store import ModelStore

    try:
        catalogue = load_catalogue(settings.catalogue)
        for name in settings.models:
            catalogue.model(name)
    except (CatalogueError, UnknownModel) as exc:
        raise StartupError(str(exc).strip("'\"")) from exc
    store = ModelStore(settings.model_store)
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
    elif settings.models and all(catalogue.model(name).source == "builtin" for name in settings.models):
        # The built-in models ship their own checker, so a demo worker takes requests that ask for censoring.
        safety = build_builtin_safety_checker(placement.device)

    def load_model(name: str) -> Any:
        return load_pipeline(catalogue.model(name), store, engine.placement.device, engine.placement.dtype)

    def resolve_adapter(kind: AdapterKind, name: str) -> AdapterFile | None:
        from openhorde.worker.generation.adapters import AdapterFile

        entry = catalogue.lora(name) if kind == "lora" else catalogue.ti(name)
        return None if entry is None else AdapterFile(store.ensure(entry, progress=False), entry.triggers)

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

    # Keep as many models loaded as there can be jobs in hand (as the AI Horde worker keeps one process each).
    resident = min(len(settings.models), settings.threads + settings.queue_size)
    engine = Engine(
        load_model,
        device=placement.device,
        dtype=placement.dtype,
        safety_checker=safety,
        resolve_adapter=resolve_adapter if settings.allow_lora else None,
        nsfw_worker=settings.nsfw,
        max_loaded_models=resident,
        post_processors=post_processors,
    )
    for name in settings.models[:resident]:
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
