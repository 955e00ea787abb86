"""``GET /generate/request/{id}``: what a request asked for, for its requester or a moderator."""

from __future__ import annotations

from tests.live_server import Horde


async def test_the_requester_reads_back_what_the_request_asked_for(horde: Horde) -> None:
    requester = await horde.register("alice")
    created = await horde.generate(
        requester,
        prompt="a red lighthouse ### fog",
        models=["stable_diffusion"],
        nsfw=True,
        shared=True,
        webhook="https://example.org/hook",
        params={"width": 64, "height": 128, "steps": 7, "n": 2, "sampler_name": "k_euler", "cfg_scale": 6.5},
    )
    assert created.status_code == 202, created.text
    request_id = created.json()["id"]

    response = await horde.client.get(f"/api/v2/generate/request/{request_id}", headers=requester.headers)
    assert response.status_code == 200, response.text
    payload = response.json()
    assert payload["prompt"] == "a red lighthouse ### fog"
    params = payload["params"]
    assert (params["width"], params["height"], params["steps"], params["n"]) == (64, 128, 7, 2)
    assert params["sampler_name"] == "k_euler" and params["cfg_scale"] == 6.5
    assert payload["models"] == ["stable_diffusion"] and payload["workers"] == []
    assert payload["nsfw"] is True and payload["shared"] is True and payload["r2"] is True
    assert payload["webhook"] == "https://example.org/hook"
    assert "source_image" not in payload and "source_processing" not in payload

    # Finished, its models are still known (from its jobs).
    owner = await horde.register("wally")
    job = await horde.pop(owner, amount=2, nsfw=True)
    for index in range(2):
        assert (await horde.upload_and_submit(owner, job, index)).status_code == 200
    done = await horde.client.get(f"/api/v2/generate/request/{request_id}", headers=requester.headers)
    assert done.json()["models"] == ["stable_diffusion"]


async def test_only_the_requester_or_a_moderator_reads_a_request(horde: Horde) -> None:
    requester, other, moderator = (
        await horde.register("alice"),
        await horde.register("bob"),
        await horde.register("mod"),
    )
    await horde.set_user(moderator, is_moderator=True)
    request_id = (await horde.generate(requester)).json()["id"]
    path = f"/api/v2/generate/request/{request_id}"

    refused = await horde.client.get(path, headers=other.headers)
    assert refused.status_code == 403 and refused.json()["rc"] == "NotOwner"
    assert (await horde.client.get(path)).status_code == 401
    assert (await horde.client.get(path, headers=moderator.headers)).status_code == 200
    missing = await horde.client.get(
        "/api/v2/generate/request/00000000-0000-0000-0000-000000000000", headers=requester.headers
    )
    assert missing.status_code == 404 and missing.json()["rc"] == "RequestNotFound"
