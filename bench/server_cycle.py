"""Load driver for an OpenHorde server: job-cycle throughput, latency and CPU cost over loopback HTTP.

Phases (each in its own module under ``bench/scenarios/``; the server launcher, HTTP client, CPU accounting
and statistics they share are under ``bench/harness/``):

* phase 1, cycle (``scenarios/cycle.py``): ``--workers`` simulated workers pop, upload and submit while
  clients keep requests going; jobs/s, server/DB CPU ms per job, latency per endpoint;
* endpoint cost (``scenarios/costs.py``): server CPU ms per call of heartbeat, a check of a queued request
  nobody touches, a check and a status of a finished one, an empty pop, and a bare async+pop+upload+submit
  cycle;
* phase 2, deep queue (``scenarios/deep.py``): pop latency with ``--queued`` requests waiting.

``--load steady`` is issue 13's load (4 clients keeping 24 requests each, checked once a second, 64x64
jobs, workers that wait ~1 s after an empty pop); the default ``--load stress`` is the driver's original,
harsher mix. ``--db both`` runs SQLite and then PostgreSQL; ``--compare-workers 8,32`` runs phase 1 with
8 and then 32 workers on fresh servers and prints the throughput ratio.

Run from the repository root (PostgreSQL on 127.0.0.1:5432 as user ``postgres`` for ``--db postgres``)::

    .venv/bin/python bench/server_cycle.py --db sqlite --duration 5 --queued 500        # smoke run
    .venv/bin/python bench/server_cycle.py --db postgres --load steady --skip-deep       # issue 13's cycle
    .venv/bin/python bench/server_cycle.py --db both --load steady --compare-workers 8,32

The last line is ``RESULT {json}``. See bench/README.md for every figure.
"""

from __future__ import annotations

import sys

from harness.stats import print_result
from harness.tasks import run_loop
from scenarios.config import Config, parse_config
from scenarios.session import run_all


async def amain(cfg: Config) -> int:
    """Measure, then print the RESULT line."""
    print_result(await run_all(cfg))
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point."""
    cfg = parse_config(argv)
    return run_loop(amain(cfg), cfg.uvloop)


if __name__ == "__main__":
    sys.exit(main())
