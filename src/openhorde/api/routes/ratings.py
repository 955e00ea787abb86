"""``POST /generate/rate/{id}``: aesthetic ratings of a finished request's images."""

from __future__ import annotations

from fastapi import APIRouter

from openhorde.api.deps import StoreDep
from openhorde.api.schemas.jobs import GenerationSubmitted
from openhorde.api.schemas.ratings import AestheticsPayload
from openhorde.domain import ratings

router = APIRouter(prefix="/generate", tags=["generate"])


@router.post(
    "/rate/{id}",
    response_model=GenerationSubmitted,
    summary="Rate the images of a finished request",
    description="The request must have been sent with `shared: true`. Pick the best image of the set and/or rate "
    "each image 1-10 (and its artifacts 0-5). The ratings are kept by this horde; unlike the AI Horde, it rewards "
    "no kudos for them (`reward` is 0).",
)
async def rate(id: str, body: AestheticsPayload, store: StoreDep) -> GenerationSubmitted:
    given = [ratings.ImageRating(r.id, r.rating, r.artifacts) for r in body.ratings]
    await ratings.rate(store, id, body.best, given)
    return GenerationSubmitted(reward=0)
