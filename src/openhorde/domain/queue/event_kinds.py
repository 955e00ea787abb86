"""What can happen to a request, as its events name it (``events.announce``)."""

from __future__ import annotations

QUEUED = "queued"
STARTED = "started"
IMAGE = "image"
FAULT = "fault"
"""A job faulted or its lease expired: its image waits again, or the request faulted."""
TIMED_OUT = "timed_out"
CANCELLED = "cancelled"
