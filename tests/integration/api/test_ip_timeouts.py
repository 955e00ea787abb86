"""``/operations/ipaddr``: moderators time addresses out of generating and registering; audit-logged."""

from __future__ import annotations

from sqlalchemy import update

from openhorde.storage.tables import Worker
from tests.live_server import Account, Horde


async def _make_moderator(horde: Horde, account: Account) -> None:
    await horde.set_user(account, is_moderator=True)


async def test_a_timed_out_ip_cannot_generate_or_register_until_the_timeout_is_lifted(horde: Horde) -> None:
    # The horde fixture runs with rate limits off: timeouts are moderators' decisions and still apply.
    moderator, member = await horde.register("moddy"), await horde.register("member")
    await _make_moderator(horde, moderator)
    added = await horde.client.post(
        "/api/v2/operations/ipaddr", json={"ipaddr": "127.0.0.1", "hours": 2}, headers=moderator.headers
    )
    assert added.status_code == 200 and added.json() == {"message": "OK"}, added.text

    refused = await horde.generate(member)
    assert refused.status_code == 403 and refused.json()["rc"] == "TimeoutIP", refused.text
    register = await horde.client.post("/api/v2/register", json={"username": "newcomer"})
    assert register.status_code == 403 and register.json()["rc"] == "TimeoutIP"
    # Other routes still answer.
    assert (await horde.client.get("/api/v2/status/models")).status_code == 200

    listed = await horde.client.get("/api/v2/operations/ipaddr", headers=moderator.headers)
    assert listed.status_code == 200, listed.text
    [entry] = listed.json()
    assert entry["ipaddr"] == "127.0.0.1" and 7100 < entry["seconds"] <= 7200

    removed = await horde.client.request(
        "DELETE", "/api/v2/operations/ipaddr", json={"ipaddr": "127.0.0.1"}, headers=moderator.headers
    )
    assert removed.status_code == 200, removed.text
    assert (await horde.generate(member)).status_code == 202
    assert (await horde.client.get("/api/v2/operations/ipaddr", headers=moderator.headers)).json() == []

    log = (await horde.client.get("/api/v2/audit", headers=moderator.headers)).json()
    actions = [(e["action"], e["target_type"], e["target_id"], e["actor_id"]) for e in log["entries"]]
    assert ("ipaddr.timeout", "ipaddr", "127.0.0.1", moderator.id) in actions
    assert ("ipaddr.untimeout", "ipaddr", "127.0.0.1", moderator.id) in actions


async def test_only_moderators_manage_ip_timeouts(horde: Horde) -> None:
    member = await horde.register("member")
    calls = [
        horde.client.get("/api/v2/operations/ipaddr", headers=member.headers),
        horde.client.post("/api/v2/operations/ipaddr", json={"ipaddr": "10.0.0.1", "hours": 1}, headers=member.headers),
        horde.client.request(
            "DELETE", "/api/v2/operations/ipaddr", json={"ipaddr": "10.0.0.1"}, headers=member.headers
        ),
    ]
    for call in calls:
        response = await call
        assert response.status_code == 403 and response.json()["rc"] == "NotModerator", response.text
    # Nothing was timed out: the member can still generate.
    assert (await horde.generate(member)).status_code == 202


async def test_a_timeout_needs_a_valid_address(horde: Horde) -> None:
    moderator = await horde.register("moddy")
    await _make_moderator(horde, moderator)
    bad = await horde.client.post(
        "/api/v2/operations/ipaddr", json={"ipaddr": "not-an-ip", "hours": 1}, headers=moderator.headers
    )
    assert bad.status_code == 400, bad.text
    other = await horde.client.post(
        "/api/v2/operations/ipaddr", json={"ipaddr": "10.1.2.3", "hours": 1}, headers=moderator.headers
    )
    assert other.status_code == 200
    assert (await horde.register("still-welcome")).username.startswith("still-welcome")  # not 10.1.2.3


async def test_a_worker_s_address_is_blocked_for_days_and_can_be_checked_and_lifted(horde: Horde) -> None:
    moderator, owner = await horde.register("moddy"), await horde.register("owner")
    await _make_moderator(horde, moderator)
    await horde.pop(owner, name="suspect-worker")
    [worker] = (await horde.client.get("/api/v2/workers")).json()

    blocked = await horde.client.put(
        f"/api/v2/operations/block_worker_ipaddr/{worker['id']}", json={"days": 2}, headers=moderator.headers
    )
    assert blocked.status_code == 200 and blocked.json() == {"message": "OK"}, blocked.text
    refused = await horde.generate(owner)
    assert refused.status_code == 403 and refused.json()["rc"] == "TimeoutIP"
    [entry] = (await horde.client.get("/api/v2/operations/ipaddr/127.0.0.1", headers=moderator.headers)).json()
    assert entry["ipaddr"] == "127.0.0.1" and 2 * 86_400 - 100 < entry["seconds"] <= 2 * 86_400
    assert (await horde.client.get("/api/v2/operations/ipaddr/10.1.2.3", headers=moderator.headers)).json() == []

    lifted = await horde.client.delete(
        f"/api/v2/operations/block_worker_ipaddr/{worker['id']}", headers=moderator.headers
    )
    assert lifted.status_code == 200, lifted.text
    assert (await horde.generate(owner)).status_code == 202
    log = (await horde.client.get("/api/v2/audit", headers=moderator.headers)).json()
    actions = {(e["action"], e["target_id"]) for e in log["entries"]}
    assert {("ipaddr.block_worker", "127.0.0.1"), ("ipaddr.unblock_worker", "127.0.0.1")} <= actions


async def test_an_ipv6_worker_is_blocked_with_its_slash_64(horde: Horde) -> None:
    moderator, owner = await horde.register("moddy"), await horde.register("owner")
    await _make_moderator(horde, moderator)
    await horde.pop(owner, name="v6-worker")
    [worker] = (await horde.client.get("/api/v2/workers")).json()
    async with horde.db.unit_of_work() as session:
        await session.execute(update(Worker).where(Worker.id == worker["id"]).values(ipaddr="2001:db8:0:1::5"))
    horde.ctx.workers.forget(worker["id"])

    path = f"/api/v2/operations/block_worker_ipaddr/{worker['id']}"
    assert (await horde.client.put(path, json={"days": 1}, headers=moderator.headers)).status_code == 200
    [listed] = (await horde.client.get("/api/v2/operations/ipaddr", headers=moderator.headers)).json()
    assert listed["ipaddr"] == "2001:db8:0:1::/64"
    neighbour = await horde.client.get("/api/v2/operations/ipaddr/2001:db8:0:1::77", headers=moderator.headers)
    assert [e["ipaddr"] for e in neighbour.json()] == ["2001:db8:0:1::/64"]
    elsewhere = await horde.client.get("/api/v2/operations/ipaddr/2001:db8:0:2::77", headers=moderator.headers)
    assert elsewhere.json() == []
    removed = await horde.client.request(
        "DELETE", "/api/v2/operations/ipaddr", json={"ipaddr": "2001:db8:0:1::/64"}, headers=moderator.headers
    )
    assert removed.status_code == 200, removed.text
    assert (await horde.client.get("/api/v2/operations/ipaddr", headers=moderator.headers)).json() == []


async def test_worker_blocks_need_a_moderator_and_good_input(horde: Horde) -> None:
    moderator, member = await horde.register("moddy"), await horde.register("member")
    await _make_moderator(horde, moderator)
    await horde.pop(member, name="member-worker")
    [worker] = (await horde.client.get("/api/v2/workers")).json()
    path = f"/api/v2/operations/block_worker_ipaddr/{worker['id']}"
    for call in (
        horde.client.put(path, json={"days": 1}, headers=member.headers),
        horde.client.delete(path, headers=member.headers),
        horde.client.get("/api/v2/operations/ipaddr/127.0.0.1", headers=member.headers),
    ):
        response = await call
        assert response.status_code == 403 and response.json()["rc"] == "NotModerator", response.text
    for days in (0, 31, "many"):
        bad = await horde.client.put(path, json={"days": days}, headers=moderator.headers)
        assert bad.status_code == 400 and bad.json()["rc"] == "ValidationError", bad.text
    missing = await horde.client.put(
        "/api/v2/operations/block_worker_ipaddr/00000000-0000-0000-0000-000000000000",
        json={"days": 1},
        headers=moderator.headers,
    )
    assert missing.status_code == 404 and missing.json()["rc"] == "WorkerNotFound"
    not_an_ip = await horde.client.get("/api/v2/operations/ipaddr/not-an-ip", headers=moderator.headers)
    assert not_an_ip.status_code == 400 and not_an_ip.json()["rc"] == "BadRequest"
    assert (await horde.generate(member)).status_code == 202
