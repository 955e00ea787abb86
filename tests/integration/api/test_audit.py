"""Every moderator or admin action lands in the audit log (``GET /audit``), in the same transaction."""

from __future__ import annotations

from typing import Any

from tests.live_server import Account, Horde


async def _make_moderator(horde: Horde, account: Account) -> None:
    await horde.set_user(account, is_moderator=True)


async def _log(horde: Horde, account: Account) -> dict[str, Any]:
    response = await horde.client.get("/api/v2/audit", headers=account.headers)
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


async def test_moderator_actions_and_own_changes_are_logged(horde: Horde) -> None:
    moderator, member = await horde.register("moddy"), await horde.register("member")
    await _make_moderator(horde, moderator)
    assert (await horde.pop(member, name="member-worker"))["ids"] == []
    worker_id = (await horde.client.get("/api/v2/workers/name/member-worker")).json()["id"]

    own = await horde.client.put(f"/api/v2/users/{member.id}", json={"contact": "me@x"}, headers=member.headers)
    assert own.status_code == 200, own.text
    flagged = await horde.client.put(f"/api/v2/users/{member.id}", json={"trusted": True}, headers=moderator.headers)
    assert flagged.status_code == 200, flagged.text
    paused = await horde.client.put(f"/api/v2/workers/{worker_id}", json={"paused": True}, headers=moderator.headers)
    assert paused.status_code == 200, paused.text

    log = await _log(horde, moderator)
    assert log["total"] == 3 and log["page"] == 1 and log["pages"] == 1
    worker_entry, user_entry, own_entry = log["entries"]
    assert (worker_entry["action"], worker_entry["target_type"], worker_entry["target_id"]) == (
        "worker.modify",
        "worker",
        worker_id,
    )
    assert worker_entry["details"] == {"paused": True} and worker_entry["actor_id"] == moderator.id
    assert (user_entry["action"], user_entry["target_id"], user_entry["details"]) == (
        "user.modify",
        str(member.id),
        {"trusted": True},
    )
    assert (own_entry["action"], own_entry["actor_id"], own_entry["target_id"], own_entry["details"]) == (
        "user.modify",
        member.id,
        str(member.id),
        {"contact": "me@x"},
    ), "a change to one's own account is logged like any other"


async def test_a_refused_action_leaves_no_entry_and_members_cannot_read_the_log(horde: Horde) -> None:
    moderator, member = await horde.register("moddy"), await horde.register("member")
    await _make_moderator(horde, moderator)
    refused = await horde.client.put(f"/api/v2/users/{moderator.id}", json={"trusted": True}, headers=member.headers)
    assert refused.status_code == 403

    assert (await _log(horde, moderator))["entries"] == []
    forbidden = await horde.client.get("/api/v2/audit", headers=member.headers)
    assert forbidden.status_code == 403 and forbidden.json()["rc"] == "NotModerator"
