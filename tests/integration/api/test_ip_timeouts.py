"""``/operations/ipaddr``: moderators time addresses out of generating and registering; audit-logged."""

from __future__ import annotations

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
