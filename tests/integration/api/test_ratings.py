"""``POST /generate/rate/{id}``: aesthetic ratings of a finished, shared request's images, through HTTP."""

from __future__ import annotations

from typing import Any

import pytest

from tests.live_server import Account, Horde

UNKNOWN_ID = "00000000-0000-0000-0000-000000000000"


async def _finished(horde: Horde, n: int = 2, shared: bool = True) -> tuple[str, list[str]]:
    """A request of ``n`` images, all delivered; its id and its images' ids."""
    requester, owner = await horde.register("alice"), await horde.register("wally")
    return await _deliver(horde, requester, owner, n, shared)


async def _deliver(horde: Horde, requester: Account, owner: Account, n: int, shared: bool) -> tuple[str, list[str]]:
    created = await horde.generate(requester, shared=shared, params={"width": 64, "height": 64, "steps": 5, "n": n})
    assert created.status_code == 202, created.text
    job = await horde.pop(owner, amount=n)
    for index in range(n):
        assert (await horde.upload_and_submit(owner, job, index)).status_code == 200
    return created.json()["id"], list(job["ids"])


async def _rate(horde: Horde, request_id: str, body: dict[str, Any]) -> Any:
    return await horde.client.post(f"/api/v2/generate/rate/{request_id}", json=body)


@pytest.mark.both_databases
async def test_ratings_are_kept_per_image_with_the_best_of_the_set(horde: Horde) -> None:
    request_id, (first, second) = await _finished(horde)
    rated = await _rate(
        horde, request_id, {"ratings": [{"id": first, "rating": 8, "artifacts": 1}, {"id": second, "rating": 3}]}
    )
    assert rated.status_code == 200, rated.text
    assert rated.json() == {"reward": 0}
    async with horde.db.store() as store:
        kept = {r.job_id: r for r in await store.ratings.of_request(request_id)}
    assert (kept[first].rating, kept[first].artifacts, kept[first].best) == (8, 1, True)
    assert (kept[second].rating, kept[second].artifacts, kept[second].best) == (3, None, False)

    again = await _rate(horde, request_id, {"best": second})
    assert again.status_code == 400 and again.json()["rc"] == "InvalidAestheticAttempt"


async def test_a_best_pick_alone_is_kept(horde: Horde) -> None:
    request_id, (_, second) = await _finished(horde)
    assert (await _rate(horde, request_id, {"best": second})).status_code == 200
    async with horde.db.store() as store:
        [kept] = await store.ratings.of_request(request_id)
    assert kept.job_id == second and kept.best and kept.rating is None


async def test_a_tie_at_the_top_needs_a_pick_among_the_tied(horde: Horde) -> None:
    requester, owner = await horde.register("alice"), await horde.register("wally")
    request_id, (a, b, c) = await _deliver(horde, requester, owner, 3, True)
    tied = [{"id": a, "rating": 9}, {"id": b, "rating": 9}, {"id": c, "rating": 2}]
    wrong = await _rate(horde, request_id, {"best": c, "ratings": tied})
    assert wrong.status_code == 400 and wrong.json()["rc"] == "InvalidAestheticAttempt"
    assert (await _rate(horde, request_id, {"best": b, "ratings": tied})).status_code == 200
    async with horde.db.store() as store:
        best = [r.job_id for r in await store.ratings.of_request(request_id) if r.best]
    assert best == [b]


async def test_what_cannot_be_rated_is_refused_with_the_reference_codes(horde: Horde) -> None:
    requester, owner = await horde.register("alice"), await horde.register("wally")
    request_id, (first, _) = await _deliver(horde, requester, owner, 2, True)
    cases: list[tuple[str, dict[str, Any], int, str]] = [
        (UNKNOWN_ID, {"best": first}, 404, "RequestNotFound"),
        (request_id, {"best": UNKNOWN_ID}, 400, "ProcGenNotFound"),
        (request_id, {"ratings": [{"id": UNKNOWN_ID, "rating": 5}]}, 400, "ProcGenNotFound"),
        (
            request_id,
            {"ratings": [{"id": first, "rating": 5}, {"id": first, "rating": 6}]},
            400,
            "InvalidAestheticAttempt",
        ),
        (request_id, {}, 400, "InvalidAestheticAttempt"),
        (request_id, {"ratings": [{"id": first, "rating": 11}]}, 400, "ValidationError"),
        (request_id, {"ratings": [{"id": first, "rating": 0}]}, 400, "ValidationError"),
        (request_id, {"ratings": [{"id": first, "rating": 5, "artifacts": 6}]}, 400, "ValidationError"),
        (request_id, {"ratings": [{"id": first}]}, 400, "ValidationError"),
        (request_id, {"best": "short"}, 400, "ValidationError"),
    ]
    for target, body, status, rc in cases:
        response = await _rate(horde, target, body)
        assert (response.status_code, response.json()["rc"]) == (status, rc), (body, response.text)

    private_id, (only,) = await _deliver(horde, requester, owner, 1, False)
    private = await _rate(horde, private_id, {"ratings": [{"id": only, "rating": 5}]})
    assert private.status_code == 400 and private.json()["rc"] == "InvalidAestheticAttempt"
    single_id, (single,) = await _deliver(horde, requester, owner, 1, True)
    best_of_one = await _rate(horde, single_id, {"best": single})
    assert best_of_one.status_code == 400 and best_of_one.json()["rc"] == "InvalidAestheticAttempt"
    assert (await _rate(horde, single_id, {"ratings": [{"id": single, "rating": 5}]})).status_code == 200

    waiting = await horde.generate(requester, shared=True)
    unfinished = await _rate(horde, waiting.json()["id"], {"best": first})
    assert unfinished.status_code == 400 and unfinished.json()["rc"] == "InvalidAestheticAttempt"
    async with horde.db.store() as store:
        assert await store.ratings.of_request(request_id) == []
