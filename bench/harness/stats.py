"""Latency samples, percentiles, the tables printed per phase and the ``RESULT {json}`` line."""

from __future__ import annotations

import json
import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

# Endpoints in the order a job cycle meets them, so that tables read top to bottom like one cycle.
ENDPOINT_ORDER = (
    "register",
    "async",
    "pop(job)",
    "pop(empty)",
    "upload",
    "submit",
    "check",
    "status",
    "e2e",
    "cancel",
)

LatencyRow = dict[str, float | int]


@dataclass
class Stats:
    """Latency samples (ms) per endpoint, error counts and completed jobs of one phase or step."""

    samples: dict[str, list[float]] = field(default_factory=dict)
    errors: Counter[str] = field(default_factory=Counter)
    completed: int = 0
    recording: bool = True
    last_done: str | None = None  # a finished request, for the image round trip

    def add(self, name: str, ms: float) -> None:
        """Record one successful call's latency (only inside the window)."""
        if self.recording:
            self.samples.setdefault(name, []).append(ms)

    def fail(self, name: str, what: str) -> None:
        """Count one failed call (always, warm-up included: an error is never noise)."""
        self.errors[f"{name} {what}"] += 1

    def job_done(self) -> None:
        """Count one job submitted successfully (only inside the window)."""
        if self.recording:
            self.completed += 1

    def start_window(self) -> None:
        """Forget warm-up samples and start recording."""
        self.samples.clear()
        self.completed = 0
        self.recording = True


def percentile(ordered: list[float], q: float) -> float:
    """Linear-interpolated percentile of an ascending list (q in [0, 1])."""
    pos = (len(ordered) - 1) * q
    lo = math.floor(pos)
    hi = math.ceil(pos)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def summarize_samples(values: list[float]) -> LatencyRow:
    """count, p50, p95, p99 and max of latency samples, in ms."""
    ordered = sorted(values)
    return {
        "count": len(ordered),
        "p50": round(percentile(ordered, 0.50), 2),
        "p95": round(percentile(ordered, 0.95), 2),
        "p99": round(percentile(ordered, 0.99), 2),
        "max": round(ordered[-1], 2),
    }


def endpoint_names(stats: Stats) -> list[str]:
    """Endpoints with samples, in a stable, readable order."""
    known = [n for n in ENDPOINT_ORDER if n in stats.samples]
    return known + sorted(set(stats.samples) - set(known))


def latency_summary(stats: Stats) -> dict[str, LatencyRow]:
    """Per-endpoint latency summary of all endpoints with samples."""
    return {n: summarize_samples(stats.samples[n]) for n in endpoint_names(stats)}


def print_latency_table(stats: Stats) -> None:
    """Print one row per endpoint: count and percentiles in ms."""
    print(f"  {'endpoint':<12}{'count':>8}{'p50':>9}{'p95':>9}{'p99':>9}{'max':>9}")
    for name, row in latency_summary(stats).items():
        print(f"  {name:<12}{row['count']:>8}{row['p50']:>9.1f}{row['p95']:>9.1f}{row['p99']:>9.1f}{row['max']:>9.1f}")


def print_errors(stats: Stats) -> None:
    """Print error counts, or 'none'."""
    if not stats.errors:
        print("  errors: none")
        return
    print("  errors (endpoint status rc: count):")
    for key, count in sorted(stats.errors.items()):
        print(f"    {key}: {count}")


def fmt_num(value: float | None) -> str:
    """A number for humans, 'n/a' when unknown."""
    return "n/a" if value is None else f"{value:.2f}"


def fmt_ms(value: float | None) -> str:
    """A CPU figure for humans."""
    return "n/a" if value is None else f"{value:.2f} ms"


def verdict(ok: bool | None) -> str:
    """PASS, FAIL or n/a for a target."""
    return "n/a" if ok is None else ("PASS" if ok else "FAIL")


def print_result(summary: dict[str, Any]) -> None:
    """The machine-readable last line: ``RESULT {json}`` (``grep '^RESULT ' | cut -c8- | jq``)."""
    print("RESULT " + json.dumps(summary, sort_keys=True), flush=True)
