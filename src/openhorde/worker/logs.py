"""The worker's logging: human-readable lines, or one JSON object per line for log collectors.

Call sites log an event with fields: ``log_event(log, logging.INFO, "job_done", "Job done", job_id=…, seconds=…)``.
The text format prints the message and then ``key=value`` pairs; the JSON format prints
``{"time", "level", "event", "message", …fields}``.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, TextIO

LOGGER_NAME = "openhorde.worker"
_STANDARD_ATTRIBUTES = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}
_NOISY_LIBRARIES = ("httpx", "httpcore", "diffusers", "transformers", "urllib3", "PIL")
"""Libraries whose INFO lines (one per HTTP request, per model file) would drown the worker's own."""


def log_event(logger: logging.Logger, level: int, event: str, message: str, /, **fields: Any) -> None:
    """Log ``message`` as the event ``event`` with structured ``fields`` (job_id, model, seconds…)."""
    logger.log(level, message, extra={"event": event, **fields})


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    """The extra fields a call site attached to a record."""
    return {key: value for key, value in vars(record).items() if key not in _STANDARD_ATTRIBUTES}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (UTC ISO 8601), level, event, message, and the record's fields."""

    def format(self, record: logging.LogRecord) -> str:
        """The record as one line of JSON."""
        fields = _fields(record)
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "event": fields.pop("event", record.name),
            "message": record.getMessage(),
            **fields,
        }
        if record.exc_info:
            entry["error"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """``2026-01-02 10:00:00 INFO  message  job_id=… seconds=…`` (fields rounded for reading)."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(message)s", datefmt="%Y-%m-%d %H:%M:%S")

    def format(self, record: logging.LogRecord) -> str:
        """The record as a readable line, followed by its fields."""
        line = super().format(record)
        fields = {key: value for key, value in _fields(record).items() if key != "event"}
        if not fields:
            return line
        shown = " ".join(f"{key}={_short(value)}" for key, value in fields.items())
        head, newline, rest = line.partition("\n")  # keep a traceback below the fields
        return f"{head}  {shown}{newline}{rest}"


class CurrentStderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is at the time: rich's live status line swaps in a proxy that prints
    log lines above it instead of through it."""

    def emit(self, record: logging.LogRecord) -> None:
        """Write the record to the current ``sys.stderr``."""
        self.stream = sys.stderr
        super().emit(record)


def _short(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


def configure_logging(
    log_format: Literal["text", "json"] = "text",
    log_file: Path | None = None,
    level: int = logging.INFO,
    stream: TextIO | None = None,
) -> None:
    """Send the worker's logs to stderr (or ``stream``) and optionally to ``log_file``, in one format."""
    formatter: logging.Formatter = JsonFormatter() if log_format == "json" else TextFormatter()
    handlers: list[logging.Handler] = [logging.StreamHandler(stream) if stream else CurrentStderrHandler()]
    if log_file is not None:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(log_file, encoding="utf-8"))
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
        handler.close()
    for handler in handlers:
        handler.setFormatter(formatter)
        root.addHandler(handler)
    root.setLevel(level)
    for name in _NOISY_LIBRARIES:
        logging.getLogger(name).setLevel(max(level, logging.WARNING))
