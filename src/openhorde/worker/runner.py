"""The worker loop, arranged so the GPU (or CPU) never waits for the network (long because its parts share state).

* The **pop task** (event loop) keeps up to ``threads + queue_size`` jobs popped and not yet generated:
  it pops again as soon as a generation ends, and sleeps 0.5–2 s (jittered) only when the horde has nothing.
  It downloads a job's sources before queueing it, so a queued job is ready to run.
* **Generation threads** (``threads``, usually one per GPU) each take the next prepared job from a
  thread-safe queue themselves, so one job follows the previous one without an event-loop hop.
* **Delivery tasks** (event loop) encode each image as WebP in a thread, upload and submit all images of
  a job concurrently, retrying until the job's lease runs out; a failed generation is submitted as
  ``faulted`` so the horde re-queues it at once.

Stopping (``request_stop``, the ``stop`` event, or the first SIGINT/SIGTERM): no more pops, the jobs being
generated finish and are delivered, jobs popped but not started are submitted as faulted ("worker shutting
down"). A second signal cancels ``run()`` at once; those jobs' leases then expire on the horde.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import io
import logging
import queue
import random
import signal
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

from PIL import Image

from openhorde.worker.generation.engine import Capabilities, GenerationFailed
from openhorde.worker.generation.spec import GeneratedImage, GenerationResult, GenerationSpec, Metadata
from openhorde.worker.horde_client import (
    AuthenticationFailed,
    HordeClient,
    HordeClientError,
    JobGone,
    WorkerInMaintenance,
)
from openhorde.worker.jobs import Job, parse_pop, pop_request
from openhorde.worker.logs import log_event
from openhorde.worker.settings import WorkerSettings
from openhorde.worker.status import StatusDisplay, TimelineEntry, WorkerStats

log = logging.getLogger("openhorde.worker.runner")

WEBP_QUALITY = 95
MAX_CONSECUTIVE_FAILURES = 3
"""Generations failing in a row before pops pause for ``fault_pause_seconds``."""
SHUTDOWN_REASON = "worker shutting down"


class GenerationEngine(Protocol):
    """What the runner needs from the engine: one blocking call per job."""

    def generate(self, spec: GenerationSpec) -> GenerationResult:
        """The job's images; raises ``GenerationFailed`` for a job it cannot do."""
        ...


class WorkerStopped(RuntimeError):
    """The worker stopped because the horde refuses it (bad key, name taken…); the message says why."""


def encode_webp(image: Image.Image) -> bytes:
    """The image as WebP at quality 95 (the AI Horde worker's setting)."""
    buffer = io.BytesIO()
    image.save(buffer, format="WEBP", quality=WEBP_QUALITY)
    return buffer.getvalue()


class Runner:
    """Pops, generates and delivers jobs until stopped; usable in-process (tests, benchmarks) and from the CLI."""

    def __init__(
        self,
        settings: WorkerSettings,
        engine: GenerationEngine,
        client: HordeClient,
        *,
        capabilities: Capabilities | None = None,
        display: StatusDisplay | None = None,
    ) -> None:
        self.settings = settings
        self.engine = engine
        self.client = client
        self.request = pop_request(settings, capabilities)
        self.stats = WorkerStats() if display is None else display.stats
        self._display = display
        self._ready: queue.Queue[Job | None] = queue.Queue()
        self._outstanding = 0
        """Jobs popped and not yet through generation (touched on the event loop only)."""
        self._changed = asyncio.Event()
        self._stopping = asyncio.Event()
        self._deliveries: set[asyncio.Task[None]] = set()
        self._fatal: WorkerStopped | None = None
        self._failures_in_a_row = 0
        self._paused_until = 0.0
        self._signals = 0
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def capacity(self) -> int:
        """Jobs kept popped but not generated: one per generation thread plus ``queue_size`` ready ones."""
        return self.settings.threads + self.settings.queue_size

    @property
    def waiting(self) -> int:
        """Jobs popped, prepared and waiting for a generation thread."""
        return self._ready.qsize()

    async def wait_idle(self) -> bool:
        """Wait until no image job is in hand (popped, not generated): alchemy's turn; False once the runner stops."""
        await self._wait_for(lambda: self._outstanding <= 0 or self._stopping.is_set())
        return not self._stopping.is_set()

    def request_stop(self) -> None:
        """Stop popping, finish the jobs in generation, fault the waiting ones (call on the event loop)."""
        self._stopping.set()
        self._changed.set()

    async def run(
        self, *, max_jobs: int | None = None, stop: asyncio.Event | None = None, handle_signals: bool = False
    ) -> WorkerStats:
        """Work until stopped, or until ``max_jobs`` jobs were popped and delivered; returns the stats.

        Raises ``WorkerStopped`` when the horde refuses the worker (invalid key, name of another account…).
        """
        self._loop = asyncio.get_running_loop()
        threads = [
            threading.Thread(target=self._generation_loop, name=f"generate-{i}", daemon=True)
            for i in range(self.settings.threads)
        ]
        for thread in threads:
            thread.start()
        helpers = [asyncio.create_task(self._watch(stop))] if stop is not None else []
        if self._display is not None:
            helpers.append(asyncio.create_task(self._display.run(self._stopping)))
        if handle_signals:
            self._signal_handlers(install=True)
        try:
            await self._pop_loop(max_jobs)
            await self._shutdown(fault_waiting=self._stopping.is_set())
        finally:
            self._stopping.set()
            for _ in threads:
                self._ready.put(None)
            for helper in helpers:
                helper.cancel()
            await asyncio.gather(*helpers, return_exceptions=True)
            if handle_signals:
                self._signal_handlers(install=False)
        if self._fatal is not None:
            raise self._fatal
        return self.stats

    # -- popping -------------------------------------------------------------------------------

    async def _pop_loop(self, max_jobs: int | None) -> None:
        popped = 0
        while not self._stopping.is_set() and (max_jobs is None or popped < max_jobs):
            await self._wait_for(lambda: self._outstanding < self.capacity or self._stopping.is_set())
            if self._stopping.is_set():
                return
            if self._paused_until > time.monotonic():
                await self._sleep(self._paused_until - time.monotonic())
                continue
            delay, got_job = await self._pop_once()
            popped += got_job
            if delay > 0:
                await self._sleep(delay)

    async def _pop_once(self) -> tuple[float, bool]:
        """One pop; returns how long to wait before the next and whether a job came."""
        try:
            answer = await self.client.pop(self.request)
        except AuthenticationFailed as exc:
            self._fail(f"The horde refuses this worker: {exc.message} (rc {exc.rc}). Check api_key, name and models.")
            return 0.0, False
        except WorkerInMaintenance as exc:
            wait = self.settings.maintenance_poll_seconds
            _note(logging.WARNING, "maintenance", f"In maintenance mode: {exc.message}; next pop in {wait} s")
            return wait, False
        except HordeClientError as exc:
            wait = max(self.settings.error_backoff_seconds, min(exc.retry_after or 0.0, 60.0))
            _note(logging.WARNING, "pop_failed", f"Pop failed: {exc}; retrying in {wait} s")
            return wait, False
        popped_at = time.monotonic()
        if not (answer.get("ids") or answer.get("id")):
            log.debug("No job; skipped: %s", answer.get("skipped") or {})
            return random.uniform(self.settings.idle_pop_min_seconds, self.settings.idle_pop_max_seconds), False
        self._outstanding += 1
        job = await parse_pop(answer, self.client.download_image, popped_at)
        _note(logging.INFO, "job_popped", f"Popped {job.describe()}", job_id=job.id, model=job.model)
        if job.fault is not None or self._stopping.is_set():
            self._generation_over()
            self._deliver(job, GenerationFailed(job.fault or SHUTDOWN_REASON))
        else:
            self._ready.put(job)
        return 0.0, True

    async def _wait_for(self, condition: Callable[[], bool]) -> None:
        """Wait until ``condition()`` holds; it is re-checked whenever a job leaves generation or a stop comes."""
        while not condition():
            self._changed.clear()
            await self._changed.wait()

    async def _sleep(self, seconds: float) -> None:
        """Sleep, but wake up at once when a stop is requested."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(max(seconds, 0.0)):
                await self._stopping.wait()

    # -- generating (in the generation threads) ------------------------------------------------

    def _generation_loop(self) -> None:
        thread = threading.current_thread().name
        while (job := self._ready.get()) is not None:
            assert job.spec is not None  # jobs without a spec are faulted before queueing
            start = self.stats.generation_started(thread, job.id, job.describe())
            outcome = self._generate(job, job.spec)
            end = time.perf_counter()
            ok = not isinstance(outcome, GenerationFailed)
            images = len(outcome.images) if isinstance(outcome, GenerationResult) else 0
            self.stats.generation_finished(thread, TimelineEntry(job.id, start, end, images, job.model, ok))
            try:
                assert self._loop is not None
                self._loop.call_soon_threadsafe(self._generated, job, outcome, end - start)
            except RuntimeError:  # the loop is gone: run() was cancelled (second Ctrl-C)
                return

    def _generate(self, job: Job, spec: GenerationSpec) -> GenerationResult | GenerationFailed:
        try:
            return self.engine.generate(spec)
        except GenerationFailed as exc:
            return exc
        except Exception as exc:  # a bug or a device error must fault the job, not kill the thread
            log.exception("Generation of job %s crashed", job.id, extra={"event": "generation_error"})
            return GenerationFailed(f"worker error: {type(exc).__name__}: {exc}")

    # -- back on the event loop ----------------------------------------------------------------

    def _generated(self, job: Job, outcome: GenerationResult | GenerationFailed, seconds: float) -> None:
        self._generation_over()
        timing = {"job_id": job.id, "model": job.model, "seconds": round(seconds, 3)}
        if isinstance(outcome, GenerationFailed):
            self._failures_in_a_row += 1
            _note(logging.WARNING, "job_failed", f"Generation failed: {outcome.reason}", **timing)
        else:
            self._failures_in_a_row = 0
            _note(logging.INFO, "job_generated", f"Generated {job.describe()}", **timing)
        if self._failures_in_a_row >= MAX_CONSECUTIVE_FAILURES:
            self._pause_after_failures()
        self._deliver(job, outcome)

    def _generation_over(self) -> None:
        self._outstanding -= 1
        self._changed.set()

    def _pause_after_failures(self) -> None:
        pause = self.settings.fault_pause_seconds
        self._paused_until = time.monotonic() + pause
        self._failures_in_a_row = 0
        _note(
            logging.ERROR, "pausing", f"{MAX_CONSECUTIVE_FAILURES} generations failed in a row; no pops for {pause} s"
        )

    def _fail(self, message: str) -> None:
        """Stop the worker for good: the horde will not take anything from it."""
        if self._fatal is None:
            _note(logging.ERROR, "fatal", message)
            self._fatal = WorkerStopped(message)
        self.request_stop()

    async def _watch(self, stop: asyncio.Event) -> None:
        await stop.wait()
        self.request_stop()

    # -- delivering ----------------------------------------------------------------------------

    def _deliver(self, job: Job, outcome: GenerationResult | GenerationFailed) -> None:
        task = asyncio.create_task(self._delivery(job, outcome), name=f"deliver-{job.id}")
        self._deliveries.add(task)
        task.add_done_callback(self._deliveries.discard)

    async def _delivery(self, job: Job, outcome: GenerationResult | GenerationFailed) -> None:
        if isinstance(outcome, GenerationFailed):
            await self._submit_faulted(job, outcome.reason)
            return
        images: list[GeneratedImage | None] = [*outcome.images, *[None] * len(job.ids)][: len(job.ids)]
        results = await asyncio.gather(
            *(self._deliver_image(job, index, image, outcome.metadata) for index, image in enumerate(images))
        )
        self.stats.job_finished(faulted=False)
        _note(logging.INFO, "job_submitted", f"Handed in {sum(results)}/{len(job.ids)} images", job_id=job.id)

    async def _deliver_image(self, job: Job, index: int, image: GeneratedImage | None, shared: list[Metadata]) -> bool:
        """Upload and submit one image; True when the horde accepted it."""
        job_id = job.ids[index]
        if image is None:  # the engine returned fewer images than ids
            return await self._submit(job, job_id, "faulted", "Faulted", [_see_ref("no image generated")])
        metadata = [*job.metadata, *shared, *image.metadata]
        if len(job.ids) > 1:
            metadata.append(Metadata(type="batch_index", value="see_ref", ref=str(index)))
        webp = await asyncio.to_thread(encode_webp, image.image)
        generation = await self._upload(job, index, webp)
        return await self._submit(job, job_id, image.state, generation, metadata, censored=image.state != "ok")

    async def _upload(self, job: Job, index: int, webp: bytes) -> str:
        """``"R2"`` once the image is at its upload URL; else the image as base64, for the submit to carry."""
        url = job.r2_uploads[index]
        if url is not None:
            try:
                await self.client.upload(url, webp, deadline=job.lease_deadline)
                return "R2"
            except HordeClientError as exc:
                _note(logging.WARNING, "upload_failed", f"Upload failed ({exc}); submitting inline", job_id=job.id)
        return base64.b64encode(webp).decode("ascii")

    async def _submit_faulted(self, job: Job, reason: str) -> None:
        metadata = [*job.metadata, _see_ref(reason)]
        await asyncio.gather(*(self._submit(job, job_id, "faulted", "Faulted", metadata) for job_id in job.ids))
        self.stats.job_finished(faulted=True)
        _note(logging.WARNING, "job_faulted", f"Reported as faulted: {reason}", job_id=job.id, model=job.model)

    async def _submit(
        self, job: Job, job_id: str, state: str, generation: str, metadata: list[Metadata], censored: bool = False
    ) -> bool:
        """Submit one id, retrying until the lease ends; True when accepted as an image."""
        try:
            reward = await self.client.submit(
                job_id,
                state=state,
                seed=job.seed + job.ids.index(job_id),  # the engine seeds image i with seed + i
                gen_metadata=[entry.to_wire() for entry in metadata[:50]],
                generation=generation,
                censored=censored,
                deadline=job.lease_deadline,
            )
        except AuthenticationFailed as exc:
            self._fail(f"The horde refuses this worker's submits: {exc.message} (rc {exc.rc}).")
            return False
        except HordeClientError as exc:  # JobGone (lease over, duplicate, unknown), other refusals, unreachable
            self.stats.image_dropped()
            event = "job_gone" if isinstance(exc, JobGone) else "submit_failed"
            _note(logging.WARNING, event, f"Not handed in: {exc}", job_id=job_id)
            return False
        if state != "faulted":
            self.stats.image_delivered(reward)
        return state != "faulted"

    # -- stopping ------------------------------------------------------------------------------

    async def _shutdown(self, fault_waiting: bool) -> None:
        """Let generation finish (faulting what has not started when stopping) and wait for every delivery."""
        if fault_waiting:
            waiting = self._drain_ready()
            busy = self._outstanding - len(waiting)
            _note(logging.INFO, "stopping", f"Stopping: finishing {busy} job(s), returning {len(waiting)} unstarted")
            for job in waiting:
                self._generation_over()
                self._deliver(job, GenerationFailed(SHUTDOWN_REASON))
        await self._wait_for(lambda: self._outstanding <= 0)
        while self._deliveries:
            await asyncio.gather(*list(self._deliveries), return_exceptions=True)

    def _drain_ready(self) -> list[Job]:
        """Take every job nobody has started; a generation thread can no longer pick them up."""
        jobs = []
        with contextlib.suppress(queue.Empty):
            while True:
                job = self._ready.get_nowait()
                if job is not None:
                    jobs.append(job)
        return jobs

    def _signal_handlers(self, install: bool) -> None:
        assert self._loop is not None
        for number in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):  # not on Windows / not main thread
                if install:
                    self._loop.add_signal_handler(number, self._on_signal, asyncio.current_task())
                else:
                    self._loop.remove_signal_handler(number)

    def _on_signal(self, main: asyncio.Task[object] | None) -> None:
        self._signals += 1
        if self._signals == 1:
            _note(logging.WARNING, "stop_requested", "Stopping after the current job (Ctrl-C again to quit at once)")
            self.request_stop()
        elif main is not None:
            _note(logging.WARNING, "abort", "Quitting now; unfinished jobs will time out on the horde")
            main.cancel()


def _note(level: int, event: str, message: str, **fields: Any) -> None:
    log_event(log, level, event, message, **fields)


def _see_ref(reason: str) -> Metadata:
    return Metadata(type="information", value="see_ref", ref=reason)
