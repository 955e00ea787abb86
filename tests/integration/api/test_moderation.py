"""Prompt filters, horde modes, worker messages and role effects, through HTTP."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select, update

from openhorde.storage.tables import Request, WorkerMessage
from tests.live_server import Account, Horde


async def _set(horde: Horde, account: Account, **flags: Any) -> None:
    await horde.set_user(account, **flags)


async def _moderator(horde: Horde, name: str = "moddy") -> Account:
    account = await horde.register(name)
    await _set(horde, account, is_moderator=True)
    return account


async def _audit_actions(horde: Horde, moderator: Account) -> list[str]:
    response = await horde.client.get("/api/v2/audit", headers=moderator.headers)
    assert response.status_code == 200, response.text
    return [entry["action"] for entry in response.json()["entries"]]


async def _add_filter(horde: Horde, moderator: Account, regex: str, filter_type: int, replacement: str = "") -> str:
    body = {"regex": regex, "filter_type": filter_type, "description": "test", "replacement": replacement}
    response = await horde.client.put("/api/v2/filters", json=body, headers=moderator.headers)
    assert response.status_code == 201, response.text
    assert response.json()["user"] == moderator.username
    return response.json()["id"]  # type: ignore[no-any-return]


async def test_a_suspicious_prompt_is_cleaned_or_refused(horde: Horde) -> None:
    moderator, member = await _moderator(horde), await horde.register("member", kudos=100)
    await _add_filter(horde, moderator, r"\bchild\b", 10, replacement="adult")
    await _add_filter(horde, moderator, r"nude", 20)

    harmless = await horde.generate(member, prompt="a child with a kite")
    assert harmless.status_code == 202, harmless.text
    refused = await horde.generate(member, prompt="a nude child", replacement_filter=False)
    assert refused.status_code == 400 and refused.json()["rc"] == "CorruptPrompt"

    cleaned = await horde.generate(member, prompt="a nude CHILD###blurry")
    assert cleaned.status_code == 202, cleaned.text
    async with horde.db.unit_of_work() as session:
        stored = await session.scalar(select(Request.prompt).where(Request.id == cleaned.json()["id"]))
    assert stored is not None and stored.startswith("a nude adult###blurry, child, infant")
    # A worker popping it sees the cleaned prompt (the harmless request is older, so it goes first).
    worker_owner = await horde.register("owner")
    first = await horde.pop(worker_owner)
    assert first["payload"]["prompt"] == "a child with a kite"
    second = await horde.pop(worker_owner)
    assert second["payload"]["prompt"] == stored

    check = await horde.client.post("/api/v2/filters", json={"prompt": "nude child"}, headers=moderator.headers)
    assert check.status_code == 200 and check.json()["suspicion"] == 2
    assert sorted(check.json()["matches"]) == ["child", "nude"]


async def test_filters_are_for_moderators_and_must_compile(horde: Horde) -> None:
    moderator, member = await _moderator(horde), await horde.register("member")
    bad = await horde.client.put("/api/v2/filters", json={"regex": "a(b", "filter_type": 10}, headers=moderator.headers)
    assert bad.status_code == 400 and "regex" in bad.json()["message"].lower()
    for method, path in (("GET", "/api/v2/filters"), ("PUT", "/api/v2/filters"), ("POST", "/api/v2/filters")):
        body = {"regex": "x", "filter_type": 10, "prompt": "x"}
        response = await horde.client.request(method, path, json=body, headers=member.headers)
        assert response.status_code == 403 and response.json()["rc"] == "NotModerator", (method, response.text)

    filter_id = await _add_filter(horde, moderator, "kitten", 20)
    patched = await horde.client.patch(
        f"/api/v2/filters/{filter_id}", json={"replacement": "cat"}, headers=moderator.headers
    )
    assert patched.status_code == 200 and patched.json()["replacement"] == "cat"
    listed = await horde.client.get("/api/v2/filters?filter_type=20", headers=moderator.headers)
    assert [f["id"] for f in listed.json()] == [filter_id]
    regex = await horde.client.get("/api/v2/filters/regex", headers=moderator.headers)
    assert regex.json() == [{"filter_type": 20, "regex": "kitten"}]
    deleted = await horde.client.delete(f"/api/v2/filters/{filter_id}", headers=moderator.headers)
    assert deleted.status_code == 200
    gone = await horde.client.get(f"/api/v2/filters/{filter_id}", headers=moderator.headers)
    assert gone.status_code == 404 and gone.json()["rc"] == "FilterNotFound"
    assert await _audit_actions(horde, moderator) == ["filter.delete", "filter.modify", "filter.create"]


async def test_maintenance_mode_refuses_new_requests_and_only_admins_set_it(horde: Horde) -> None:
    moderator, admin, member = await _moderator(horde), await horde.register("admin"), await horde.register("mm")
    await horde.make_admin(admin)
    refused = await horde.client.put("/api/v2/status/modes", json={"maintenance": True}, headers=moderator.headers)
    assert refused.status_code == 403 and refused.json()["rc"] == "NotAdmin"
    set_on = await horde.client.put("/api/v2/status/modes", json={"maintenance": True}, headers=admin.headers)
    assert set_on.status_code == 200 and set_on.json()["maintenance_mode"] is True

    blocked = await horde.generate(member)
    assert blocked.status_code == 503 and blocked.json()["rc"] == "MaintenanceMode"
    modes = (await horde.client.get("/api/v2/status/modes")).json()
    assert modes == {"maintenance_mode": True, "invite_only_mode": False}

    await horde.client.put("/api/v2/status/modes", json={"maintenance": False}, headers=admin.headers)
    assert (await horde.generate(member)).status_code == 202
    assert await _audit_actions(horde, admin) == ["modes.change", "modes.change"]


async def test_invite_only_mode_needs_a_worker_invitation(horde: Horde) -> None:
    moderator, member = await _moderator(horde), await horde.register("member")
    assert (await horde.pop(member, name="old-worker"))["ids"] == []
    response = await horde.client.put("/api/v2/status/modes", json={"invite_only": True}, headers=moderator.headers)
    assert response.status_code == 200 and response.json()["invite_only_mode"] is True

    assert (await horde.pop(member, name="old-worker"))["ids"] == []  # existing workers keep working
    new = await horde.client.post("/api/v2/generate/pop", json={"name": "new-worker"}, headers=member.headers)
    assert new.status_code == 403 and new.json()["rc"] == "WorkerInviteOnly"
    await _set(horde, member, worker_invited=2)
    assert (await horde.pop(member, name="new-worker"))["ids"] == []
    assert "modes.change" in await _audit_actions(horde, moderator)


async def test_raid_mode_is_shown_to_moderators_only_and_hides_the_no_worker_warning(horde: Horde) -> None:
    moderator, member = await _moderator(horde), await horde.register("member")
    assert (await horde.generate(member)).json().get("warnings")  # no worker online: warned
    await horde.client.put("/api/v2/status/modes", json={"raid": True}, headers=moderator.headers)
    assert "raid_mode" not in (await horde.client.get("/api/v2/status/modes", headers=member.headers)).json()
    as_mod = await horde.client.get("/api/v2/status/modes", headers=moderator.headers)
    assert as_mod.json()["raid_mode"] is True
    answer = (await horde.generate(member)).json()
    assert "warnings" not in answer and "message" not in answer


async def test_a_worker_message_is_delivered_on_pop_until_it_expires(horde: Horde) -> None:
    moderator, owner, stranger = await _moderator(horde), await horde.register("owner"), await horde.register("xx")
    await horde.pop(owner, name="messaged")
    worker_id = (await horde.client.get("/api/v2/workers/name/messaged")).json()["id"]
    body = {"worker_id": worker_id, "message": "please update", "expiry": 2, "origin": "The mods"}
    foreign = await horde.client.post("/api/v2/workers/messages", json=body, headers=stranger.headers)
    assert foreign.status_code == 403 and foreign.json()["rc"] == "MessagesOnlyOwnWorkers"
    sent = await horde.client.post("/api/v2/workers/messages", json=body, headers=moderator.headers)
    assert sent.status_code == 200, sent.text
    assert (sent.json()["expiry"], sent.json()["origin"]) == (2, "The mods")
    message_id = sent.json()["id"]

    popped = await horde.pop(owner, name="messaged")
    assert [(m["id"], m["message"], m["origin"]) for m in popped["messages"]] == [
        (message_id, "please update", "The mods")
    ]
    own_list = await horde.client.get("/api/v2/workers/messages", headers=owner.headers)
    assert [m["id"] for m in own_list.json()] == [message_id]

    async with horde.db.unit_of_work() as session:
        await session.execute(update(WorkerMessage).values(expires_at=1.0))
    horde.ctx.workers.clear()  # the server keeps a worker's messages until one changes; this change bypassed it
    assert (await horde.pop(owner, name="messaged"))["messages"] == []
    expired = await horde.client.get("/api/v2/workers/messages?validity=expired", headers=moderator.headers)
    assert [(m["id"], m["expiry"]) for m in expired.json()] == [(message_id, 0)]
    deleted = await horde.client.delete(f"/api/v2/workers/messages/{message_id}", headers=moderator.headers)
    assert deleted.status_code == 200
    assert await _audit_actions(horde, moderator) == ["worker_message.delete", "worker_message.send"]


async def test_flagged_accounts_workers_are_in_maintenance_and_prompts_rewritten(horde: Horde) -> None:
    flagged, other = await horde.register("flagged", kudos=500), await horde.register("other", kudos=500)
    await _set(horde, flagged, is_flagged=True)
    response = await horde.client.post("/api/v2/generate/pop", json={"name": "fw"}, headers=flagged.headers)
    assert response.status_code == 403 and response.json()["rc"] == "WorkerFlaggedMaintenance"

    slow = await horde.generate(flagged, prompt="a little girl in a garden")
    fast = await horde.generate(other)
    assert slow.status_code == 202 and fast.status_code == 202
    async with horde.db.unit_of_work() as session:
        prompt = await session.scalar(select(Request.prompt).where(Request.id == slow.json()["id"]))
    assert prompt == "a adult adult woman in a garden"
    # The flagged account's request was made first but ranks below the other's.
    job = await horde.pop(other)
    assert job["payload"]["prompt"] == "a lighthouse"


async def test_education_accounts_get_safe_requests_and_200_concurrency(horde: Horde) -> None:
    moderator, school = await _moderator(horde), await horde.register("school")
    changed = await horde.client.put(f"/api/v2/users/{school.id}", json={"education": True}, headers=moderator.headers)
    assert changed.status_code == 200 and changed.json()["concurrency"] == 200
    created = await horde.generate(school, nsfw=True, censor_nsfw=False, trusted_workers=False)
    assert created.status_code == 202, created.text
    async with horde.db.unit_of_work() as session:
        row = await session.get(Request, created.json()["id"])
        assert row is not None and (row.nsfw, row.censor_nsfw, row.trusted_workers) == (False, True, True)
