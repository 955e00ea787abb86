"""Where a job's images live in the blob store: the upload a worker PUTs, and the image delivered from it."""

from __future__ import annotations

UPLOAD_FOLDER = "results"


def upload_key(job_id: str) -> str:
    """Where a worker uploads a job's image (its ``r2_upload`` URL) while the job is being processed."""
    return f"{UPLOAD_FOLDER}/{job_id}.webp"


def job_of_upload_key(key: str) -> str | None:
    """The job id in an upload key; ``None`` if ``key`` is not one."""
    folder, _, name = key.partition("/")
    return name.removesuffix(".webp") if folder == UPLOAD_FOLDER and name.endswith(".webp") else None


def image_key(job_id: str) -> str:
    """Where a delivered image lives: copied there from the upload at the submit, so that nobody holding the
    upload URL can change an image after it was delivered."""
    return f"images/{job_id}.webp"
