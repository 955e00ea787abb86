"""How well the worker keeps its pipeline busy: a local server, one worker, a fixed number of jobs.

    python bench/worker_efficiency.py                 # tiny model on the CPU, 64×64, 4 steps, 60 jobs
    python bench/worker_efficiency.py --gpu           # also SD 1.5 architecture, 512×512 / 30 steps, on CUDA

It starts ``openhorde serve`` on a loopback port with a fresh SQLite data directory (``harness/launcher.py``,
shared with the other benchmarks), queues the jobs,
runs the real worker (``Runner`` + ``Engine``) in this process and reads the runner's generation
timeline. It prints:

* busy — the fraction of wall time (first generation start → last generation end) the pipeline was
  generating; target ≥ 95 %;
* gap — the time between one generation's end and the next one's start, median and p95; target
  p95 ≤ 20 ms.

With ``--gpu`` it builds a full-size SD 1.5 pipeline from the shipped config (random weights, fp16)
and compares the worker's images per second with a bare diffusers loop over the same pipeline
(target: within 3 %).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.client import Api, HttpClient
from harness.horde import API, register_account
from harness.launcher import launch, run_cli

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from openhorde.worker.generation.engine import Engine  # noqa: E402
from openhorde.worker.generation.spec import GenerationSpec  # noqa: E402
from openhorde.worker.horde_client import HordeClient  # noqa: E402
from openhorde.worker.runner import Runner  # noqa: E402
from openhorde.worker.settings import WorkerSettings  # noqa: E402
from openhorde.worker.status import TimelineEntry  # noqa: E402


@dataclass(frozen=True)
class Workload:
    """What each queued request asks for."""

    model: str
    width: int
    height: int
    steps: int
    jobs: int
    sampler: str = "k_euler"


@dataclass(frozen=True)
class Efficiency:
    """The figures read off one run's timeline."""

    jobs: int
    images: int
    wall_s: float
    busy_fraction: float
    gap_median_ms: float
    gap_p95_ms: float
    images_per_s: float
    job_median_s: float
    job_ms: list[float]
    """Each job's generation time, in the order the jobs started."""


PYTHON_SWITCH_INTERVAL_S = 0.005
"""Python's default thread switch interval, for the ``--switch-ab`` comparison."""


async def queue_requests(api: Api, apikey: str, workload: Workload) -> None:
    params = {
        "width": workload.width,
        "height": workload.height,
        "steps": workload.steps,
        "sampler_name": workload.sampler,
        "n": 1,
    }
    for index in range(workload.jobs):
        body = {"prompt": f"a lighthouse at dusk, study {index}", "params": params, "models": [workload.model]}
        reply = await api.call("async", "POST", f"{API}/generate/async", apikey=apikey, body=body)
        if reply is None or reply.status != 202:
            raise RuntimeError(f"queueing failed: {reply or dict(api.stats.errors)}")


async def register_or_fail(api: Api, username: str) -> tuple[int, str]:
    account = await register_account(api, username)
    if account is None:
        raise RuntimeError(f"registering {username} failed: {dict(api.stats.errors)}")
    return account


def measure(timeline: list[TimelineEntry]) -> Efficiency:
    """Busy fraction and gaps over the steady part of the run: first generation start to last end."""
    entries = sorted(timeline, key=lambda entry: entry.start)
    wall = entries[-1].end - entries[0].start
    busy = sum(entry.end - entry.start for entry in entries)
    gaps = [max(0.0, later.start - earlier.end) * 1000 for earlier, later in itertools.pairwise(entries)]
    ordered = sorted(gaps) or [0.0]
    images = sum(entry.images for entry in entries)
    return Efficiency(
        jobs=len(entries),
        images=images,
        wall_s=wall,
        busy_fraction=busy / wall if wall else 0.0,
        gap_median_ms=statistics.median(ordered),
        gap_p95_ms=ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))],
        images_per_s=images / wall if wall else 0.0,
        job_median_s=statistics.median(entry.end - entry.start for entry in entries),
        job_ms=[(entry.end - entry.start) * 1000 for entry in entries],
    )


async def run_worker(url: str, apikey: str, workload: Workload, engine: Engine) -> Efficiency:
    settings = WorkerSettings(
        horde_url=url,
        api_key=apikey,
        name="bench-worker",
        models=[workload.model],
        max_pixels=max(workload.width * workload.height, 64 * 64),
        queue_size=1,
        _env_file=None,  # type: ignore[call-arg]
    )
    async with HordeClient(settings.api_url, settings.api_key) as client:
        runner = Runner(settings, engine, client, capabilities=engine.capabilities())
        stats = await runner.run(max_jobs=workload.jobs)
    return measure(stats.timeline)


def warm_up(engine: Engine, workload: Workload) -> None:
    """One job before timing: first-call kernels and autotuning are not a running worker's steady state."""
    spec = GenerationSpec(
        model=workload.model,
        prompt="warm-up",
        width=workload.width,
        height=workload.height,
        steps=workload.steps,
        sampler_name=workload.sampler,
    )
    engine.generate(spec)


async def serve_and_run(workload: Workload, engine: Engine) -> Efficiency:
    """A fresh SQLite server (the shared launcher), the jobs queued by one requester, then the worker."""
    async with launch("sqlite") as server:
        http = HttpClient(server.url, 2)
        try:
            api = Api(http)
            requester_id, requester_key = await register_or_fail(api, "bench-requester")
            _, worker_key = await register_or_fail(api, "bench-owner")
            await asyncio.to_thread(
                run_cli, server, "admin", "set-concurrency", str(requester_id), str(workload.jobs + 10)
            )
            await queue_requests(api, requester_key, workload)
        finally:
            await http.aclose()
        return await run_worker(server.url, worker_key, workload, engine)


def run_benchmark(workload: Workload, engine: Engine) -> Efficiency:
    warm_up(engine, workload)
    return asyncio.run(serve_and_run(workload, engine))


def report(title: str, result: Efficiency) -> None:
    print(f"\n{title}")
    print(f"  jobs {result.jobs}, images {result.images}, wall {result.wall_s:.2f} s, {result.images_per_s:.2f} img/s")
    mean_ms = result.wall_s * result.busy_fraction / max(result.jobs, 1) * 1000
    print(f"  one job's generation: median {result.job_median_s * 1000:.0f} ms, mean {mean_ms:.0f} ms")
    print(f"  each job, in order (ms): {' '.join(f'{ms:.0f}' for ms in result.job_ms)}")
    print(f"  pipeline busy {result.busy_fraction * 100:.1f} % of wall time (target ≥ 95 %)")
    print(f"  gap between jobs: median {result.gap_median_ms:.1f} ms, p95 {result.gap_p95_ms:.1f} ms (target ≤ 20 ms)")


def tiny_engine() -> Engine:
    from openhorde.worker.models.tiny import build_tiny_pipeline

    return Engine(lambda name: build_tiny_pipeline(), device="cpu")


def sd15_random_pipeline() -> Any:
    """A full-size SD 1.5 pipeline from the shipped config, random weights, fp16 on CUDA."""
    import torch
    from diffusers import AutoencoderKL, EulerDiscreteScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    from openhorde.worker.models.loader import shipped_config_dir
    from openhorde.worker.models.tokenizer import clip_tokenizer

    config = shipped_config_dir("sd1")
    assert config is not None
    with torch.device("cuda"):
        unet = UNet2DConditionModel.from_config(UNet2DConditionModel.load_config(config / "unet"))
        vae = AutoencoderKL.from_config(AutoencoderKL.load_config(config / "vae"))
        text_encoder = CLIPTextModel(CLIPTextConfig.from_json_file(config / "text_encoder" / "config.json"))
    scheduler = EulerDiscreteScheduler.from_config(EulerDiscreteScheduler.load_config(config / "scheduler"))
    pipe = StableDiffusionPipeline(
        unet=unet,
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=clip_tokenizer(),
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    ).to("cuda", torch.float16)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def bare_loop(pipe: Any, workload: Workload, images: int) -> float:
    """Images per second of plain ``pipe(...)`` calls, the yardstick for the worker."""
    import torch

    timings: list[float] = []

    def once(seed: int) -> None:
        generator = torch.Generator("cuda").manual_seed(seed)
        pipe(  # the images are made and converted to PIL, as the worker gets them
            "a lighthouse at dusk",
            negative_prompt="",
            width=workload.width,
            height=workload.height,
            num_inference_steps=workload.steps,
            guidance_scale=7.5,
            generator=generator,
        )

    once(0)  # warm-up: kernels, allocator
    torch.cuda.synchronize()
    started = time.perf_counter()
    for seed in range(images):
        began = time.perf_counter()
        once(seed + 1)
        timings.append(time.perf_counter() - began)
    torch.cuda.synchronize()
    rate = images / (time.perf_counter() - started)
    median_ms, mean_ms = statistics.median(timings) * 1000, statistics.mean(timings) * 1000
    print(f"  bare diffusers loop: {rate:.3f} img/s, one image median {median_ms:.0f} ms, mean {mean_ms:.0f} ms")
    return rate


def gpu_comparison(jobs: int, rounds: int, switch_ab: bool = False) -> None:
    """Bare loop and worker in turns (bare, worker, bare, …, bare), so drift in the GPU's speed hits both."""
    import torch

    workload = Workload(model="stable_diffusion", width=512, height=512, steps=30, jobs=jobs)
    print(f"\nGPU: {torch.cuda.get_device_name()} — SD 1.5 architecture, random weights, fp16, 512×512, 30 steps")
    pipe = sd15_random_pipeline()
    # The engine turns on TF32 and cuDNN autotuning for the process: build it first so both sides share them.
    engine = Engine(lambda name: pipe, device="cuda")
    engine.preload("stable_diffusion")
    tuned = sys.getswitchinterval()  # what the engine set for CUDA
    bare_rates = [bare_loop(pipe, workload, jobs)]
    worker_runs: dict[float, list[Efficiency]] = {}
    for round_number in range(1, rounds + 1):
        # With switch_ab, odd rounds run with Python's default switch interval: the engine's setting is
        # then measured against its absence on the same warm GPU.
        interval = PYTHON_SWITCH_INTERVAL_S if switch_ab and round_number % 2 else tuned
        sys.setswitchinterval(interval)
        worker_runs.setdefault(interval, []).append(run_benchmark(workload, engine))
        sys.setswitchinterval(tuned)
        title = f"  worker on the same pipeline, round {round_number} (switch interval {interval * 1000:g} ms)"
        report(title, worker_runs[interval][-1])
        bare_rates.append(bare_loop(pipe, workload, jobs))
    bare_rate = statistics.mean(bare_rates)
    spread = f"{min(bare_rates):.3f}–{max(bare_rates):.3f}"
    print(f"\n  bare loop {bare_rate:.3f} img/s (mean of {len(bare_rates)} runs, {spread})")
    for interval, runs in sorted(worker_runs.items()):
        worker_rate = sum(run.images for run in runs) / sum(run.wall_s for run in runs)
        print(
            f"  switch interval {interval * 1000:g} ms, {len(runs)} round(s): worker {worker_rate:.3f} img/s = "
            f"{worker_rate / bare_rate * 100:.1f} % of the bare loop (target ≥ 97 %)"
        )
        # A runner starts fresh generation threads; each thread's first CUDA work sets up its own cuBLAS and
        # cuDNN state, once per worker process in real life but once per round here.
        steady = sum(run.images - 1 for run in runs) / sum(sum(run.job_ms[1:]) / 1000 for run in runs)
        print(f"    without each round's first job: {steady:.3f} img/s = {steady / bare_rate * 100:.1f} %")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=60, help="jobs for the tiny-model run")
    parser.add_argument("--size", type=int, default=64, help="image side for the tiny-model run")
    parser.add_argument("--steps", type=int, default=4, help="steps for the tiny-model run")
    parser.add_argument("--gpu", action="store_true", help="also run the SD 1.5 comparison on CUDA")
    parser.add_argument("--gpu-jobs", type=int, default=12, help="jobs per round of the SD 1.5 comparison")
    parser.add_argument("--gpu-rounds", type=int, default=2, help="worker runs, each between two bare-loop runs")
    parser.add_argument("--skip-tiny", action="store_true", help="only the GPU comparison")
    parser.add_argument(
        "--switch-ab", action="store_true", help="odd GPU rounds with Python's default thread switch interval"
    )
    args = parser.parse_args(argv)

    if not args.skip_tiny:
        workload = Workload(model="openhorde-tiny", width=args.size, height=args.size, steps=args.steps, jobs=args.jobs)
        engine = tiny_engine()
        engine.preload(workload.model)
        title = f"Tiny model on the CPU: {args.jobs} jobs, {args.size}×{args.size}, {args.steps} steps"
        report(title, run_benchmark(workload, engine))
    if args.gpu:
        gpu_comparison(args.gpu_jobs, args.gpu_rounds, args.switch_ab)


if __name__ == "__main__":
    main()
