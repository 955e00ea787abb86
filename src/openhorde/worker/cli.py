"""``openhorde worker``: run a worker (the group's own callback), ``fetch-vocab`` and ``export-tiny``.

Only light modules are imported here; torch, diffusers and the runner are imported inside the commands so
that ``openhorde serve`` and ``openhorde admin`` never load them.
"""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from openhorde.worker.logs import configure_logging, log_event
from openhorde.worker.settings import WorkerSettings, WorkerSettingsError, load_settings
from openhorde.worker.startup import StartupError, build_engine, plan_models, shape_capabilities

log = logging.getLogger("openhorde.worker")
console = Console()
errors = Console(stderr=True)

worker_app = typer.Typer(
    help="Run a worker: pop jobs from a horde, generate them with diffusers, hand the images in.",
    invoke_without_command=True,
)

EXIT_CONFIG = 2
EXIT_INTERRUPTED = 130


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
    allow_hypernetworks: Annotated[
        bool | None,
        _option("Accept hypernetwork jobs (default: no).", "--allow-hypernetworks/--no-allow-hypernetworks"),
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
        _option(
            "Serve alchemy's forms; beside images when --model is given, else alone (default: no).",
            "--alchemist/--no-alchemist",
        ),
    ] = None,
    caption_model: Annotated[
        Path | None, _option("Folder of a transformers BLIP model for the caption form (in the model store).")
    ] = None,
    interrogation_model: Annotated[
        Path | None, _option("Folder of a transformers CLIP model for the interrogation form (in the model store).")
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
        "allow_hypernetworks": allow_hypernetworks,
        "allow_post_processing": allow_post_processing,
        "post_processors": post_processor or None,
        "allow_controlnet": allow_controlnet,
        "alchemist": alchemist,
        "caption_model": caption_model,
        "interrogation_model": interrogation_model,
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
    if settings.alchemist and not settings.alchemist_beside_images:
        from openhorde.worker.alchemist import run_alchemist

        raise typer.Exit(code=run_alchemist(settings))
    raise typer.Exit(code=run_worker(settings))


def run_worker(settings: WorkerSettings) -> int:
    """Load the models, build the engine, work until stopped; returns the process exit code."""
    from openhorde.worker.alchemist import AlchemyStartupError
    from openhorde.worker.beside import load_beside, work
    from openhorde.worker.runner import WorkerStopped
    from openhorde.worker.status import StatusDisplay, WorkerStats

    try:
        plan = plan_models(settings)
        settings = settings.model_copy(update={"models": plan.names})
        engine = build_engine(settings, plan)
        alchemy = load_beside(settings, engine) if settings.alchemist else None
    except (StartupError, AlchemyStartupError) as exc:
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
        f"hypernetworks {capabilities.hypernetworks and settings.allow_hypernetworks}, "
        f"post-processing {', '.join(capabilities.post_processors) or 'none'}, controlnet {capabilities.controlnet}"
    )
    log_event(log, logging.INFO, "started", summary)

    async def main() -> None:
        stats = await work(settings, engine, capabilities, StatusDisplay(WorkerStats(), console=console), alchemy)
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
