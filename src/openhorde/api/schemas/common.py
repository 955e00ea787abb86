from __future__ import annotations

from pydantic import BaseModel, ConfigDict

MAX_KUDOS_AMOUNT = 1_000_000_000_000
"""Largest kudos amount one admin change or award may move: keeps balances far inside a 64-bit column."""


class WireModel(BaseModel):
    """Base of request bodies: unknown fields are ignored, so newer clients keep working."""

    model_config = ConfigDict(extra="ignore")


class ResponseModel(BaseModel):
    """Base of response bodies."""
