"""``/collections`` through HTTP: ordered lists of styles; a request naming one runs with one of its styles."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import httpx

from tests.live_server import Account, Horde


def _refused(response: httpx.Response, status: int, rc: str) -> None:
    assert (response.status_code, response.json()["rc"]) == (status, rc), response.text


async def _style(horde: Horde, creator: Account, name: str, suffix: str) -> str:
    body = {"name": name, "prompt": "{p}" + suffix + "{np}", "params": {"steps": 5}, "models": ["stable_diffusion"]}
    response = await horde.client.post("/api/v2/styles/image", json=body, headers=creator.headers)
    assert response.status_code == 200, response.text
    return str(response.json()["id"])


async def _create(horde: Horde, creator: Account, **fields: Any) -> str:
    response = await horde.client.post("/api/v2/collections", json=fields, headers=creator.headers)
    assert response.status_code == 200, response.text
    return str(response.json()["id"])


async def _collection(horde: Horde, collection_id: str) -> dict[str, Any]:
    response = await horde.client.get(f"/api/v2/collections/{collection_id}")
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


async def _stylist(horde: Horde) -> Account:
    stylist = await horde.register("stylist")
    await horde.set_user(stylist, is_customizer=True)
    return stylist


async def test_collections_list_their_styles_in_order_and_are_found_by_id_and_name(horde: Horde) -> None:
    stylist, collector = await _stylist(horde), await horde.register("collector")
    warm, cold = await _style(horde, stylist, "Warm", ", warm"), await _style(horde, stylist, "Cold", ", cold")
    _refused(
        await horde.client.post(
            "/api/v2/collections", json={"name": "x", "styles": [warm]}, headers={"apikey": "0000000000"}
        ),
        403,
        "StylesAnonForbidden",
    )
    empty = {"name": "x", "styles": []}
    _refused(await horde.client.post("/api/v2/collections", json=empty, headers=collector.headers), 400, "BadRequest")
    missing = {"name": "x", "styles": [warm, "No Such Style"]}
    _refused(await horde.client.post("/api/v2/collections", json=missing, headers=collector.headers), 400, "BadRequest")

    # Any registered user may collect styles, by id or by name.
    collection_id = await _create(
        horde, collector, name="Moods", info="warm then cold", styles=[warm, f"{stylist.username}::style::Cold"]
    )
    details = await _collection(horde, collection_id)
    assert details == {
        "id": collection_id,
        "name": "Moods",
        "type": "image",
        "info": "warm then cold",
        "public": True,
        "use_count": 0,
        "styles": [
            {"id": warm, "name": f"{stylist.username}::style::Warm"},
            {"id": cold, "name": f"{stylist.username}::style::Cold"},
        ],
    }
    assert [c["id"] for c in (await horde.client.get("/api/v2/collections")).json()] == [collection_id]
    assert (await horde.client.get("/api/v2/collections?type=text")).json() == []
    _refused(await horde.client.get("/api/v2/collections?type=video"), 400, "BadRequest")
    for name in ("Moods", f"{collector.username}::collection::Moods"):
        found = await horde.client.get(f"/api/v2/collection_by_name/{quote(name, safe='')}")
        assert found.status_code == 200 and found.json()["id"] == collection_id, found.text
    _refused(await horde.client.get("/api/v2/collection_by_name/Nothing"), 404, "CollectionNotFound")
    _refused(await horde.client.get("/api/v2/collections/nope"), 404, "CollectionNotFound")
    duplicate = await horde.client.post(
        "/api/v2/collections", json={"name": "Moods", "styles": [cold]}, headers=collector.headers
    )
    _refused(duplicate, 400, "BadRequest")


async def test_owners_and_moderators_change_and_delete_collections(horde: Horde) -> None:
    stylist, other, moderator = await _stylist(horde), await horde.register("other"), await horde.register("mod")
    await horde.set_user(moderator, is_moderator=True)
    warm, cold = await _style(horde, stylist, "Warm", ", warm"), await _style(horde, stylist, "Cold", ", cold")
    collection_id = await _create(horde, stylist, name="Moods", styles=[warm])
    url = f"/api/v2/collections/{collection_id}"

    _refused(await horde.client.patch(url, json={"name": "Mine"}, headers=other.headers), 403, "NotOwner")
    _refused(await horde.client.delete(url, headers=other.headers), 403, "NotOwner")
    changed = await horde.client.patch(url, json={"styles": [cold, warm], "public": False}, headers=stylist.headers)
    assert changed.status_code == 200 and changed.json()["id"] == collection_id, changed.text
    details = await _collection(horde, collection_id)
    assert [s["id"] for s in details["styles"]] == [cold, warm] and details["public"] is False
    assert (await horde.client.get("/api/v2/collections")).json() == []

    # Deleting a style takes it out of the collections it was in.
    assert (await horde.client.delete(f"/api/v2/styles/image/{cold}", headers=stylist.headers)).status_code == 200
    assert [s["id"] for s in (await _collection(horde, collection_id))["styles"]] == [warm]

    renamed = await horde.client.patch(url, json={"name": "Renamed"}, headers=moderator.headers)
    assert renamed.status_code == 200, renamed.text
    deleted = await horde.client.delete(url, headers=moderator.headers)
    assert deleted.status_code == 200 and deleted.json() == {"message": "OK"}
    _refused(await horde.client.get(url), 404, "CollectionNotFound")
    assert (await horde.client.get(f"/api/v2/styles/image/{warm}")).status_code == 200  # its styles stay


async def test_a_request_naming_a_collection_runs_with_one_of_its_styles(horde: Horde) -> None:
    stylist, requester, worker = await _stylist(horde), await horde.register("req"), await horde.register("gpu")
    warm, cold = await _style(horde, stylist, "Warm", ", warm"), await _style(horde, stylist, "Cold", ", cold")
    collection_id = await _create(horde, stylist, name="Moods", styles=[warm, cold])

    prompts = set()
    for _ in range(20):
        queued = await horde.generate(requester, prompt="a hill", style=collection_id)
        assert queued.status_code == 202, queued.text
        job = await horde.pop(worker)
        prompts.add(job["payload"]["prompt"])
        assert job["payload"]["ddim_steps"] == 5
    assert prompts == {"a hill, warm", "a hill, cold"}  # one of two, at random: both in 20 tries but for 2e-6

    by_name = await horde.generate(requester, prompt="a hill", style=f"{stylist.username}::collection::Moods")
    assert by_name.status_code == 202, by_name.text
    assert (await _collection(horde, collection_id))["use_count"] == 21
    uses = [(await horde.client.get(f"/api/v2/styles/image/{s}")).json()["use_count"] for s in (warm, cold)]
    assert sum(uses) == 21
