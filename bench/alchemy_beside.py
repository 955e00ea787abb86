"""How much an alchemy load slows image generation in one process (the worker's ``alchemist: true`` with models).

    .venv/bin/python bench/alchemy_beside.py [--jobs 6] [--rounds 3] [--steps 4] [--size 64] [--device cpu]

Generation is the worker's real engine on the built-in tiny model; alchemy is the real caption and
interrogation code on the tiny BLIP and CLIP models (``worker/alchemy/tiny.py``), alternating. Each job's
generation is timed in three runs (taking turns, ``--rounds`` times), jobs arriving one after the other with an
idle gap as long as a job:

* alone — no alchemy;
* gated — the worker's policy (``worker/beside.py``): a form starts only while no image job is in hand, so a
  job only shares the machine with the rest of a form that started before it arrived;
* ungated — alchemy in a thread that never waits (what a naive "separate thread" would do), the worst case.

Prints per run the median and p90 job seconds, the slowdown against alone and the forms done, then a final
``RESULT {json}`` line. Tiny models make forms and jobs of similar length; on a GPU with real models a caption
or ranking is a fraction of a 512² generation, so the gated figure is an upper bound there.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import torch
from PIL import Image

from openhorde.worker.alchemy.caption import Captioner
from openhorde.worker.alchemy.interrogation import Interrogator
from openhorde.worker.alchemy.tiny import save_tiny_blip, save_tiny_clip
from openhorde.worker.generation.engine import Engine
from openhorde.worker.generation.spec import GenerationSpec
from openhorde.worker.models.tiny import TINY_MODEL_NAME, build_tiny_pipeline


class Alchemy(threading.Thread):
    """Serves forms back to back; with ``gated``, starts one only while ``busy`` is clear (the worker's policy)."""

    def __init__(self, captioner: Captioner, interrogator: Interrogator, busy: threading.Event, gated: bool) -> None:
        super().__init__(daemon=True)
        self.captioner, self.interrogator = captioner, interrogator
        self.busy, self.gated = busy, gated
        self.stop = threading.Event()
        self.forms = 0
        self.image = Image.new("RGB", (256, 256), (120, 80, 200))

    def run(self) -> None:
        while not self.stop.is_set():
            if self.gated and self.busy.is_set():
                time.sleep(0.001)
                continue
            if self.forms % 2:
                self.captioner.caption(self.image)
            else:
                self.interrogator.interrogate(self.image)
            self.forms += 1


def run_jobs(engine: Engine, spec: GenerationSpec, jobs: int, busy: threading.Event, gap_s: float) -> list[float]:
    """Seconds of each job's generation; ``busy`` is set while a job is in hand, and each job is followed by a gap."""
    seconds = []
    for _ in range(jobs):
        busy.set()
        started = time.perf_counter()
        engine.generate(spec)
        seconds.append(time.perf_counter() - started)
        busy.clear()
        time.sleep(gap_s)
    return seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=6, help="jobs per run and round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--torch-threads",
        type=int,
        default=1,
        help="torch's intra-op threads (0: torch's default). One by default: on a small shared CPU, a parallel "
        "region waits for its slowest thread, and a thread the OS has put aside makes every step slow, which "
        "drowns the effect measured here",
    )
    args = parser.parse_args()
    if args.torch_threads:
        torch.set_num_threads(args.torch_threads)
    device = torch.device(args.device)

    engine = Engine(lambda _name: build_tiny_pipeline(), device=args.device)
    spec = GenerationSpec(
        model=TINY_MODEL_NAME, prompt="a lighthouse", width=args.size, height=args.size, steps=args.steps
    )
    with tempfile.TemporaryDirectory() as scratch:
        captioner = Captioner.from_pretrained(save_tiny_blip(Path(scratch) / "blip"), device)
        interrogator = Interrogator.from_pretrained(save_tiny_clip(Path(scratch) / "clip"), device)
    busy = threading.Event()
    run_jobs(engine, spec, 2, busy, 0.0)  # warm-up: lazy imports and first-run costs
    job_s = statistics.median(run_jobs(engine, spec, 3, busy, 0.0))

    # The three runs take turns in rounds, so that a change in the machine's load (other processes) falls on
    # all three alike rather than on whichever ran then.
    seconds: dict[str, list[float]] = {"alone": [], "gated": [], "ungated": []}
    forms = dict.fromkeys(seconds, 0)
    for _round in range(args.rounds):
        for name in seconds:
            alchemy = Alchemy(captioner, interrogator, busy, gated=name == "gated") if name != "alone" else None
            if alchemy is not None:
                alchemy.start()
            seconds[name] += run_jobs(engine, spec, args.jobs, busy, gap_s=job_s)
            if alchemy is not None:
                alchemy.stop.set()
                alchemy.join()
                forms[name] += alchemy.forms
    results: dict[str, dict[str, float]] = {}
    for name, timings in seconds.items():
        ordered = sorted(timings)
        results[name] = {
            "median_s": round(statistics.median(timings), 4),
            "p90_s": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.9))], 4),
            "forms": forms[name],
        }
    alone = results["alone"]["median_s"]
    for name, figures in results.items():
        figures["slowdown_pct"] = round(100 * (figures["median_s"] / alone - 1), 1)
        print(
            f"{name:8} median {figures['median_s']:.3f} s  p90 {figures['p90_s']:.3f} s  "
            f"slowdown {figures['slowdown_pct']:+.1f} %  forms {figures['forms']:.0f}"
        )
    print("RESULT " + json.dumps({"jobs": args.jobs * args.rounds, "steps": args.steps, "size": args.size, **results}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
