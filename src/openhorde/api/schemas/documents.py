"""Bodies of ``/documents/*`` (the AI Horde's ``HordeDocument``: one of ``html`` and ``markdown``)."""

from __future__ import annotations

from openhorde.api.schemas.common import ResponseModel


class HordeDocument(ResponseModel):
    html: str | None = None
    markdown: str | None = None
