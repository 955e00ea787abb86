from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from openhorde.domain import text
from openhorde.domain.kudos.ledger import MAX_KUDOS_AMOUNT

__all__ = ["MAX_KUDOS_AMOUNT", "ResponseModel", "WireModel"]

# Bounds of names and lists in the wire bodies: the AI Horde swagger's where it gives one.
MAX_LIST_ITEM_CHARS = 100
"""An item of a list of names or words: a priority username (``name#id``), a blacklisted word."""
MAX_ID_CHARS = 36
"""A UUID: the id of a worker, team, request or shared key."""
MAX_LIST_ITEMS = 300
"""Items of a list of names in one body (models, workers, LoRAs, words): bounds the body; smaller rules of the
AI Horde (5 LoRAs, 20 textual inversions, 5 workers) still apply after it with their own rc."""
ModelName = Annotated[str, Field(max_length=255)]
"""A model name (the swagger's ``PopInput.models`` items: at most 255 characters, as LoRA and TI names)."""
ListItem = Annotated[str, Field(max_length=MAX_LIST_ITEM_CHARS)]
WorkerId = Annotated[str, Field(max_length=MAX_ID_CHARS)]


def iso_time(moment: float) -> str:
    """A stored time (seconds since the epoch) as the wire's ISO 8601 in UTC (``2026-12-06T11:00:00+00:00``)."""
    return datetime.fromtimestamp(moment, UTC).isoformat()


class WireModel(BaseModel):
    """Base of request bodies: unknown fields are ignored, so newer clients keep working.

    Every body is checked for text no database stores (a NUL, a lone surrogate) before its fields are read, so
    that check is made once here for every route and every field, ``dict[str, Any]`` ones included.
    """

    model_config = ConfigDict(extra="ignore")

    @model_validator(mode="before")
    @classmethod
    def _storable_text_only(cls, data: Any) -> Any:
        text.check_storable(data)  # InvalidCharacters (400); pydantic lets a non-ValueError through unchanged
        return data


class ResponseModel(BaseModel):
    """Base of response bodies."""
