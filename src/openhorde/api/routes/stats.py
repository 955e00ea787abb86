"""``/stats/*``: images made per period and per model, from counters kept as images are delivered.

The text routes answer as the AI Horde does on a horde with no text workers: zeros and empty maps.
"""

from __future__ import annotations

import time
from typing import Annotated, Literal

from fastapi import APIRouter, Query

from openhorde.api.deps import ReaderDep
from openhorde.api.schemas.stats import (
    ImgModelStats,
    SinglePeriodImgStat,
    StatsImgTotals,
    StatsTxtTotals,
    TxtModelStats,
)
from openhorde.domain import stats

router = APIRouter(prefix="/stats", tags=["stats"])

ModelState = Annotated[Literal["known", "custom", "all"], Query(description="Catalogue models, others, or both.")]


@router.get("/img/totals", response_model=StatsImgTotals, summary="Images made in the past minute, hour, day, month")
async def image_totals(store: ReaderDep) -> StatsImgTotals:
    totals = await stats.image_totals(store, time.time())
    periods = {name: SinglePeriodImgStat(images=t.images, ps=t.pixelsteps) for name, t in totals.items()}
    return StatsImgTotals(**periods)


@router.get("/img/models", response_model=ImgModelStats, summary="Images made per model in the past day, month")
async def image_models(store: ReaderDep, model_state: ModelState = "all") -> ImgModelStats:
    return ImgModelStats(**await stats.image_models(store, time.time(), model_state))


@router.get("/text/totals", response_model=StatsTxtTotals, summary="Text generated (none: an image horde)")
async def text_totals() -> StatsTxtTotals:
    return StatsTxtTotals()


@router.get("/text/models", response_model=TxtModelStats, summary="Text generated per model (none: an image horde)")
async def text_models(model_state: ModelState = "all") -> TxtModelStats:
    return TxtModelStats()
