"""A request's status as the wire bodies of ``/generate/check`` and ``/generate/status`` (and their events)."""

from __future__ import annotations

from openhorde.api.schemas.generate import GenerationMetadata, GenerationStable, RequestStatusStable
from openhorde.domain.queue import status


def check_body(s: status.RequestStatus) -> dict[str, object]:
    """The fields of a ``/generate/check`` answer."""
    return {
        "finished": s.finished,
        "processing": s.processing,
        "restarted": s.restarted,
        "waiting": s.waiting,
        "done": s.done,
        "faulted": s.faulted,
        "wait_time": s.wait_time,
        "queue_position": s.queue_position,
        "kudos": round(s.kudos),
        "is_possible": s.is_possible,
        "eligible_workers": s.eligible_workers,
        "eligible_worker_threads": s.eligible_worker_threads,
        "might_stall": s.might_stall,
        "fault_reason": s.fault_reason if s.faulted else None,
    }


def generation_body(g: status.DeliveredImage) -> GenerationStable:
    """One delivered image as in ``/generate/status``."""
    return GenerationStable(
        worker_id=g.worker_id,
        worker_name=g.worker_name,
        model=g.model,
        state="censored" if g.censored else "ok",
        img=g.img,
        seed=str(g.seed),
        id=g.job_id,
        censored=g.censored,
        gen_metadata=[GenerationMetadata(**m) for m in g.gen_metadata],
    )


def status_body(s: status.RequestStatus) -> RequestStatusStable:
    """A ``/generate/status`` answer."""
    return RequestStatusStable(
        **check_body(s), generations=[generation_body(g) for g in s.generations], shared=s.shared
    )
