"""``X-Fields`` through HTTP: any JSON answer of the API, hot routes included, keeps only the named fields."""

from __future__ import annotations

from tests.live_server import Horde


async def test_an_answer_keeps_only_the_masked_fields(horde: Horde) -> None:
    alice = await horde.register("alice", kudos=10)
    masked = await horde.client.get(f"/api/v2/users/{alice.id}", headers={"X-Fields": "username,kudos"})
    assert masked.status_code == 200
    assert masked.json() == {"username": alice.username, "kudos": 10}
    assert int(masked.headers["content-length"]) == len(masked.content)
    whole = (await horde.client.get(f"/api/v2/users/{alice.id}")).json()
    assert {"username", "kudos", "id", "kudos_details"} <= whole.keys()


async def test_lists_and_nested_objects_are_masked_item_by_item(horde: Horde) -> None:
    owner = await horde.register("wally")
    await horde.pop(owner, "one")
    await horde.pop(owner, "two")
    workers = await horde.client.get("/api/v2/workers", headers={"X-Fields": "{name,kudos_details{generated}}"})
    assert sorted(workers.json(), key=lambda w: w["name"]) == [
        {"name": "one", "kudos_details": {"generated": 0}},
        {"name": "two", "kudos_details": {"generated": 0}},
    ]


async def test_the_hot_routes_take_masks_and_errors_are_never_masked(horde: Horde) -> None:
    requester = await horde.register("alice")
    request_id = (await horde.generate(requester)).json()["id"]
    check = await horde.client.get(f"/api/v2/generate/check/{request_id}", headers={"X-Fields": "waiting,done"})
    assert check.json() == {"waiting": 1, "done": False}
    missing = await horde.client.get("/api/v2/generate/check/nothing", headers={"X-Fields": "waiting"})
    assert missing.status_code == 404 and missing.json()["rc"] == "RequestNotFound"


async def test_a_malformed_mask_is_refused_before_the_route_runs(horde: Horde) -> None:
    requester = await horde.register("alice")
    response = await horde.client.post(
        "/api/v2/generate/async",
        json={"prompt": "a lighthouse", "params": {"width": 64, "height": 64, "steps": 5}},
        headers={**requester.headers, "X-Fields": "id{"},
    )
    assert response.status_code == 400 and response.json()["rc"] == "InvalidFieldMask"
    assert "Mask parse error" in response.json()["message"]
    queued = (await horde.client.get("/api/v2/status/performance")).json()["queued_requests"]
    assert queued == 0, "nothing was queued for a refused call"


async def test_the_api_document_lists_the_header(horde: Horde) -> None:
    document = (await horde.client.get("/api/swagger.json")).json()
    parameters = document["paths"]["/api/v2/users/{user_id}"]["get"]["parameters"]
    assert any(p["name"] == "X-Fields" and p["in"] == "header" for p in parameters)
