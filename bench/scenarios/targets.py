"""Issue 13's targets (CPU per job per engine, per-call CPU, deep-queue pops) and the worker-count comparison."""

from __future__ import annotations

from typing import Any

from harness.stats import fmt_num, verdict

CPU_MS_PER_JOB = {"postgres": 8.0, "sqlite": 10.0}  # server + DB CPU per complete job cycle, 8 workers
CALL_CPU_MS = {"heartbeat": 0.2, "check(queued)": 0.3, "pop(empty)": 0.5}  # server CPU per call
DEEP_POP_P99_MS = 30.0  # with 10,000 queued
WORKER_SCALING = 0.9  # jobs/s with 32 workers as a share of jobs/s with 8

Targets = dict[str, bool | None]


def run_targets(
    db: str, cycle: dict[str, Any] | None, costs: dict[str, Any] | None, deep_pop_p99: float | None, deep_ran: bool
) -> Targets:
    """Pass/fail of one run's targets; None where the figure is missing."""
    out: Targets = {}
    if cycle is not None:
        total = cycle["cpu_ms_per_job"]["total"]
        limit = CPU_MS_PER_JOB.get(db, CPU_MS_PER_JOB["postgres"])
        out[f"cpu_le_{limit:g}ms_per_job"] = None if total is None else total <= limit
    for name, limit in CALL_CPU_MS.items():
        server_ms = ((costs or {}).get(name) or {}).get("cpu_ms_per_call", {}).get("server")
        if costs is not None:
            out[f"{name}_le_{limit:g}ms"] = None if server_ms is None else server_ms <= limit
    if deep_ran:
        out["deep_pop_p99_lt_30ms"] = None if deep_pop_p99 is None else deep_pop_p99 < DEEP_POP_P99_MS
    return out


def print_targets(result: Targets) -> None:
    """One line per target."""
    if not result:
        return
    print("\n== targets ==")
    for name, ok in result.items():
        print(f"  {name}: {verdict(ok)}")


def compare_workers(db: str, runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Each run's jobs/s against the first's (fewest workers first, as given on the command line)."""
    base = runs[0]
    base_rate = base["cycle"]["jobs_per_s"]
    shares: dict[str, float | None] = {}
    for run in runs[1:]:
        rate = run["cycle"]["jobs_per_s"]
        shares[str(run["workers"])] = round(rate / base_rate, 3) if rate is not None and base_rate else None
    last = shares[str(runs[-1]["workers"])]
    name = f"workers_{runs[-1]['workers']}_ge_90pct_of_{base['workers']}"
    return {
        "db": db,
        "workers": [run["workers"] for run in runs],
        "jobs_per_s": [run["cycle"]["jobs_per_s"] for run in runs],
        "share_of_first": shares,
        "targets": {name: None if last is None else last >= WORKER_SCALING},
    }


def print_comparison(title: str, runs: list[dict[str, Any]], comparison: dict[str, Any]) -> None:
    """One row per worker count, then the share and the target."""
    print(f"\n== compare workers ({title}) ==")
    head = f"{'workers':>7}{'jobs/s':>9}{'server':>9}{'db':>9}{'srv+db':>9}{'pop p99':>9}{'e2e p50':>9}"
    print(f"  {head}  (server/db/srv+db: CPU ms per job; pop p99, e2e p50: ms)")
    for run in runs:
        cycle = run["cycle"]
        cpu_ms = cycle["cpu_ms_per_job"]
        lat = cycle["latency_ms"]
        pop = lat.get("pop(job)", {}).get("p99")
        e2e = lat.get("e2e", {}).get("p50")
        print(
            f"  {run['workers']:>7}{fmt_num(cycle['jobs_per_s']):>9}{fmt_num(cpu_ms['server']):>9}"
            f"{fmt_num(cpu_ms['db']):>9}{fmt_num(cpu_ms['total']):>9}{fmt_num(pop):>9}{fmt_num(e2e):>9}"
        )
    base = runs[0]["workers"]
    for workers, share in comparison["share_of_first"].items():
        print(f"  {workers} vs {base} workers: {fmt_num(share)} of the throughput")
    for name, ok in comparison["targets"].items():
        print(f"  {name} (target >= {WORKER_SCALING:.0%}): {verdict(ok)}")
