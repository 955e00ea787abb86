"""``/teams`` through HTTP: trusted users create teams, workers join and leave them, details add up their workers."""

from __future__ import annotations

from typing import Any

import httpx

from tests.live_server import Account, Horde


async def _set_role(horde: Horde, account: Account, role: str) -> None:
    await horde.set_user(account, **{role: True})


async def _create(horde: Horde, creator: Account, name: str = "Direct Action") -> dict[str, Any]:
    response = await horde.client.post(
        "/api/v2/teams", json={"name": name, "info": "we share"}, headers=creator.headers
    )
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


async def _team(horde: Horde, team_id: str) -> dict[str, Any]:
    response = await horde.client.get(f"/api/v2/teams/{team_id}")
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


async def _worker(horde: Horde, owner: Account, name: str) -> str:
    assert (await horde.pop(owner, name=name))["ids"] == []
    return str((await horde.client.get(f"/api/v2/workers/name/{name}")).json()["id"])


async def _join(horde: Horde, account: Account, worker_id: str, team: str) -> httpx.Response:
    return await horde.client.put(f"/api/v2/workers/{worker_id}", json={"team": team}, headers=account.headers)


def _refused(response: httpx.Response, status: int, rc: str) -> None:
    assert (response.status_code, response.json()["rc"]) == (status, rc), response.text


async def test_only_trusted_users_create_teams_with_unique_names(horde: Horde) -> None:
    member = await horde.register("member")
    refused = await horde.client.post("/api/v2/teams", json={"name": "Mine"}, headers=member.headers)
    _refused(refused, 403, "UntrustedTeamCreation")
    anonymous = await horde.client.post("/api/v2/teams", json={"name": "Mine"}, headers={"apikey": "0000000000"})
    _refused(anonymous, 403, "AnonForbidden")
    await _set_role(horde, member, "is_trusted")
    created = await _create(horde, member, "Mine")
    assert created["name"] == "Mine" and created["info"] == "we share" and len(created["id"]) == 36
    duplicate = await horde.client.post("/api/v2/teams", json={"name": "Mine"}, headers=member.headers)
    _refused(duplicate, 400, "TeamNameAlreadyExists")
    listed = (await horde.client.get("/api/v2/teams")).json()
    assert [(t["id"], t["name"], t["creator"], t["worker_count"]) for t in listed] == [
        (created["id"], "Mine", member.username, 0)
    ]


async def test_workers_join_a_team_and_its_details_add_them_up(horde: Horde) -> None:
    creator, owner, requester = await horde.register("lead"), await horde.register("gpu"), await horde.register("req")
    await _set_role(horde, creator, "is_trusted")
    team = await _create(horde, creator)
    first, second = await _worker(horde, owner, "gpu-one"), await _worker(horde, owner, "gpu-two")

    for worker_id in (first, second):
        joined = await _join(horde, owner, worker_id, team["id"])
        assert joined.status_code == 200 and joined.json() == {"team": "Direct Action"}, joined.text
    assert (await horde.client.get(f"/api/v2/workers/{first}")).json()["team"] == {
        "name": "Direct Action",
        "id": team["id"],
    }
    assert (await horde.generate(requester)).status_code == 202
    job = await horde.pop(owner, name="gpu-one")
    assert (await horde.upload_and_submit(owner, job)).status_code == 200

    details = await _team(horde, team["id"])
    assert details["worker_count"] == 2 and details["requests_fulfilled"] == 1 and details["kudos"] > 0
    assert details["creator"] == creator.username and details["info"] == "we share"
    assert sorted((w["name"], w["online"]) for w in details["workers"]) == [("gpu-one", True), ("gpu-two", True)]
    assert details["models"] == [{"name": "stable_diffusion", "count": 2}]
    worker_kudos = (await horde.client.get(f"/api/v2/workers/{first}")).json()["kudos_rewards"]
    assert details["kudos"] == worker_kudos

    left = await _join(horde, owner, first, "")
    assert left.status_code == 200 and left.json() == {"team": ""}
    assert (await horde.client.get(f"/api/v2/workers/{first}")).json()["team"] == {}
    after = await _team(horde, team["id"])
    assert after["worker_count"] == 1 and after["requests_fulfilled"] == 0
    assert [w["name"] for w in after["workers"]] == ["gpu-two"]


async def test_joining_needs_an_existing_team_and_the_worker_s_owner(horde: Horde) -> None:
    creator, owner, other = await horde.register("lead"), await horde.register("gpu"), await horde.register("other")
    await _set_role(horde, creator, "is_trusted")
    team = await _create(horde, creator)
    worker_id = await _worker(horde, owner, "gpu-one")
    _refused(await _join(horde, owner, worker_id, "00000000-0000-0000-0000-000000000000"), 404, "TeamNotFound")
    _refused(await _join(horde, other, worker_id, team["id"]), 403, "NotOwner")
    _refused(await horde.client.get("/api/v2/teams/nope"), 404, "TeamNotFound")
    assert (await _team(horde, team["id"]))["worker_count"] == 0


async def test_creators_and_moderators_change_and_delete_teams_and_moderators_are_audited(horde: Horde) -> None:
    creator, owner = await horde.register("lead"), await horde.register("gpu")
    other, moderator = await horde.register("other"), await horde.register("moddy")
    await _set_role(horde, creator, "is_trusted")
    await _set_role(horde, moderator, "is_moderator")
    team = await _create(horde, creator)
    worker_id = await _worker(horde, owner, "gpu-one")
    assert (await _join(horde, owner, worker_id, team["id"])).status_code == 200

    url = f"/api/v2/teams/{team['id']}"
    _refused(await horde.client.patch(url, json={"name": "Taken Over"}, headers=other.headers), 403, "NotOwner")
    _refused(await horde.client.delete(url, headers=other.headers), 403, "NotOwner")
    renamed = await horde.client.patch(url, json={"info": "new info"}, headers=creator.headers)
    assert renamed.status_code == 200 and renamed.json() == {"id": team["id"], "info": "new info"}
    by_mod = await horde.client.patch(url, json={"name": "Renamed"}, headers=moderator.headers)
    assert by_mod.status_code == 200 and by_mod.json()["name"] == "Renamed"
    assert (await horde.client.get(f"/api/v2/workers/{worker_id}")).json()["team"]["name"] == "Renamed"

    deleted = await horde.client.delete(url, headers=moderator.headers)
    assert deleted.status_code == 200 and deleted.json() == {"deleted_id": team["id"], "deleted_name": "Renamed"}
    _refused(await horde.client.get(url), 404, "TeamNotFound")
    assert (await horde.client.get(f"/api/v2/workers/{worker_id}")).json()["team"] == {}

    log = (await horde.client.get("/api/v2/audit", headers=moderator.headers)).json()
    assert [(e["action"], e["target_id"], e["actor_id"]) for e in log["entries"]] == [
        ("team.delete", team["id"], moderator.id),
        ("team.modify", team["id"], moderator.id),
    ]

    own = await _create(horde, creator, "Second")
    assert (await horde.client.delete(f"/api/v2/teams/{own['id']}", headers=creator.headers)).status_code == 200
    assert len((await horde.client.get("/api/v2/audit", headers=moderator.headers)).json()["entries"]) == 2
