"""Aesthetic ratings of a finished request's images (``POST /generate/rate/{id}``).

The checks and their codes are the AI Horde's: only a finished request sent with ``shared: true`` can be rated,
every id must be one of its delivered images, no image twice, and a "best" alone needs a set of two or more.
The best of the set is the explicit pick, unless the ratings name a single top image (the AI Horde lets such
ratings overrule the pick; with a tie at the top the pick must be one of the tied). The AI Horde forwards the
ratings to an outside ratings server and rewards kudos; we keep them in our database (``image_ratings``), for
the operator to use, and reward nothing. A request is rated once: a second attempt is refused, as the AI
Horde's ratings server refuses it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from openhorde.domain.queue.states import RequestState
from openhorde.errors import InvalidAestheticAttempt, ProcGenNotFound, RequestNotFound
from openhorde.storage.repositories.ratings import Rating
from openhorde.storage.store import Store

SINGLE_BEST_RATING = 7
"""A lone rating this high (of a set of several) marks its image as the best, as on the AI Horde."""


@dataclass(frozen=True)
class ImageRating:
    """A rating of one image: 1-10, and its artifacts 0 (flawless) to 5 (garbage) if given."""

    id: str
    rating: int
    artifacts: int | None = None


async def rate(
    store: Store, request_id: str, best: str | None, ratings: list[ImageRating], now: float | None = None
) -> None:
    """Keep the ratings of a finished, shared request's images, and which of them is the best."""
    rated = await store.ratings.rated_set(request_id)
    if rated is None:
        raise RequestNotFound()
    if rated.state != RequestState.DONE:
        raise InvalidAestheticAttempt("You can only aesthetically rate completed requests!")
    if not rated.shared:
        raise InvalidAestheticAttempt("You can only aesthetically rate requests you have opted to share publicly")
    seen: set[str] = set()
    for item in ratings:
        if item.id not in rated.images:
            raise ProcGenNotFound(f"No image of this request has the id {item.id}.")
        if item.id in seen:
            raise InvalidAestheticAttempt("Duplicate image ID found in your ratings.")
        seen.add(item.id)
    if best is not None and best not in rated.images:
        raise ProcGenNotFound(f"No image of this request has the id {best}.")
    if not ratings and best is None:
        raise InvalidAestheticAttempt("You need to either point to the best image, or aesthetic ratings.")
    if not ratings and len(rated.images) <= 1:
        raise InvalidAestheticAttempt("The best image of a set of one says nothing: rate it instead.")
    if rated.already_rated:
        raise InvalidAestheticAttempt("This generation appears already rated")
    chosen = _best_of(best, ratings, len(rated.images))
    moment = now or time.time()
    rows = [
        Rating(item.id, request_id, rated.images[item.id], item.rating, item.artifacts, item.id == chosen, moment)
        for item in ratings
    ]
    if chosen is not None and chosen not in seen:
        rows.append(Rating(chosen, request_id, rated.images[chosen], None, None, True, moment))
    if not await store.ratings.add(rows):
        raise InvalidAestheticAttempt("This generation appears already rated")


def _best_of(best: str | None, ratings: list[ImageRating], images: int) -> str | None:
    """Which image is the best of the set: the pick, or what the ratings say (see the module's docstring)."""
    if not ratings:
        return best
    if len(ratings) == 1:
        only = ratings[0]
        if images <= 1:
            return None
        if only.rating >= SINGLE_BEST_RATING:
            return only.id if best in (None, only.id) else None
        return best
    top = max(item.rating for item in ratings)
    tied = [item.id for item in ratings if item.rating == top]
    if len(tied) == 1:
        return tied[0]
    if best is not None and best not in tied:
        raise InvalidAestheticAttempt("The best image you picked is not one of those with the highest rating.")
    return best
