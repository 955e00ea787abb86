"""Image generation and alchemy in one process: the worker's ``Runner`` and an ``Alchemist`` on one event loop.

Image jobs keep priority: the alchemist pops a form only while the runner has no image job in hand (popped and
not yet generated), so a form never waits in front of an image job. A job that arrives while a form is being
served runs beside it (forms are short: a caption, a ranking, one post-processed image); ``bench/alchemy_beside.py``
measures what that costs generation. The alchemist's failures stay its own: a form that fails is faulted, and a
horde that refuses the alchemist stops alchemy, not generation.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING, Any

from openhorde.worker.alchemist import (
    Alchemist,
    AlchemyModels,
    alchemist_name,
    load_alchemy_models,
)
from openhorde.worker.horde_client import HordeClient
from openhorde.worker.logs import log_event
from openhorde.worker.runner import Runner, WorkerStopped
from openhorde.worker.settings import WorkerSettings

if TYPE_CHECKING:
    from openhorde.worker.generation.engine import Capabilities, Engine
    from openhorde.worker.status import StatusDisplay, WorkerStats

log = logging.getLogger("openhorde.worker.beside")


def load_beside(settings: WorkerSettings, engine: Engine) -> AlchemyModels:
    """The alchemy models, sharing the engine's post-processors and (an owner-configured) safety checker.

    The built-in tiny models' checker is never shared: it flags nothing, so its ``nsfw`` verdicts would be lies.
    """
    safety, post_processors = engine.shared_models
    return load_alchemy_models(
        settings,
        engine.placement.device,
        safety if settings.safety_model is not None else None,
        post_processors,
    )


async def run_beside(runner: Runner, alchemist: Alchemist, **run_options: Any) -> WorkerStats:
    """Run both until the runner stops (``run_options`` go to ``Runner.run``); the form in hand is finished."""
    alchemist.gate = runner.wait_idle
    forms = asyncio.create_task(_serve_forms(alchemist))
    try:
        return await runner.run(**run_options)
    except BaseException:  # a second Ctrl-C or a refused worker: leave at once, the form's lease will expire
        forms.cancel()
        raise
    finally:
        alchemist.request_stop()
        with contextlib.suppress(asyncio.CancelledError):
            await forms


async def _serve_forms(alchemist: Alchemist) -> None:
    try:
        await alchemist.run()
    except WorkerStopped as exc:
        log_event(log, logging.ERROR, "alchemy_stopped", f"Alchemy stopped, image generation goes on: {exc}")
    except Exception:  # a bug in alchemy must not take image generation down with it
        log.exception("Alchemy crashed; image generation goes on", extra={"event": "alchemy_error"})


async def work(
    settings: WorkerSettings,
    engine: Engine,
    capabilities: Capabilities,
    display: StatusDisplay,
    alchemy: AlchemyModels | None,
) -> WorkerStats:
    """The worker's main coroutine: generation, with the alchemist beside it when ``alchemy`` is given."""
    async with HordeClient(settings.api_url, settings.api_key) as client:
        runner = Runner(settings, engine, client, capabilities=capabilities, display=display)
        if alchemy is None:
            return await runner.run(handle_signals=True)
        alchemist = alchemy.alchemist(settings, client, name=alchemist_name(settings))
        if not alchemist.forms:
            warning = "alchemist: true, but no alchemy model is loaded (caption_model, interrogation_model, "
            log_event(log, logging.WARNING, "alchemist", warning + "safety_model, post_processors): images only")
            return await runner.run(handle_signals=True)
        log_event(log, logging.INFO, "alchemist", f"Alchemist '{alchemist.name}' beside: {', '.join(alchemist.forms)}")
        return await run_beside(runner, alchemist, handle_signals=True)
