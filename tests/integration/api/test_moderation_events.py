"""``/operations/moderation/*`` through HTTP: prompt events written by real filtered requests, notes, worker
suspicion events written by automatic maintenance, the overview's paused workers, paging, roles, bad input."""

from __future__ import annotations

from typing import Any

import pytest

from openhorde.domain import limits
from tests.live_server import Account, Horde

BASE = "/api/v2/operations/moderation"


async def _moderator(horde: Horde, name: str = "moddy") -> Account:
    account = await horde.register(name)
    await horde.set_user(account, is_moderator=True)
    return account


async def _add_filter(horde: Horde, moderator: Account, regex: str, filter_type: int, replacement: str = "") -> None:
    body = {"regex": regex, "filter_type": filter_type, "replacement": replacement}
    response = await horde.client.put("/api/v2/filters", json=body, headers=moderator.headers)
    assert response.status_code == 201, response.text


async def _get(horde: Horde, account: Account, path: str = "/prompts", **params: Any) -> dict[str, Any]:
    response = await horde.client.get(BASE + path, params=params, headers=account.headers)
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "private, no-store"
    return response.json()  # type: ignore[no-any-return]


@pytest.mark.both_databases
async def test_refused_and_rewritten_prompts_become_events_with_notes(horde: Horde) -> None:
    moderator, member = await _moderator(horde), await horde.register("member", kudos=100)
    await _add_filter(horde, moderator, r"\bchild\b", 10, replacement="adult")
    await _add_filter(horde, moderator, r"nude", 20)

    assert (await horde.generate(member, prompt="a child with a kite")).status_code == 202  # no event
    refused = await horde.generate(member, prompt="a nude child", replacement_filter=False, models=["stable_diffusion"])
    assert refused.status_code == 400 and refused.json()["rc"] == "CorruptPrompt"
    cleaned = await horde.generate(member, prompt="a nude child###blurry")
    assert cleaned.status_code == 202, cleaned.text

    events = (await _get(horde, moderator))["events"]
    assert [e["reason"] for e in events] == ["filter_replacement", "filter_rejection"]  # newest first
    replaced, rejected = events
    assert rejected["outcome"] == "rejected" and rejected["request_id"] is None
    assert rejected["submitted_prompt"] == "a nude child" and rejected["effective_prompt"] is None
    assert rejected["user_id"] == member.id and rejected["models"] == ["stable_diffusion"]
    assert rejected["ipaddr"] is None and rejected["text_chars"] == len("a nude child")
    assert replaced["outcome"] == "replaced" and replaced["request_id"] == cleaned.json()["id"]
    assert replaced["effective_prompt"].startswith("a nude adult###blurry, child")
    # The address is kept only as our keyed hash, and can be searched by address.
    key = limits.client_ip_hash(horde.ctx.secret, "127.0.0.1")
    assert rejected["ip_subject_key"] == key
    assert len((await _get(horde, moderator, ipaddr="127.0.0.1"))["events"]) == 2
    assert (await _get(horde, moderator, ipaddr="10.9.9.9"))["events"] == []

    note = await horde.client.post(
        f"{BASE}/prompts/{rejected['id']}/notes", json={"note": "Reviewed."}, headers=moderator.headers
    )
    assert note.status_code == 201, note.text
    assert note.json()["author_id"] == moderator.id and note.json()["note"] == "Reviewed."
    only = (await _get(horde, moderator, event_id=rejected["id"]))["events"]
    assert [n["note"] for n in only[0]["notes"]] == ["Reviewed."]
    assert (await _get(horde, moderator, reason="filter_rejection"))["events"][0]["id"] == rejected["id"]
    assert (await _get(horde, moderator, user_id=moderator.id))["events"] == []


async def test_a_flagged_account_s_rewrite_is_an_event_and_pages_follow_the_cursor(horde: Horde) -> None:
    moderator, member = await _moderator(horde), await horde.register("member", kudos=100)
    await horde.set_user(member, is_flagged=True)
    for word in ("girl", "boy", "young cat"):
        assert (await horde.generate(member, prompt=f"a {word}")).status_code == 202
    assert (await horde.generate(member, prompt="a lighthouse")).status_code == 202  # unchanged: no event

    first = await _get(horde, moderator, limit=2)
    assert [e["reason"] for e in first["events"]] == ["model_replacement"] * 2
    assert first["events"][0]["effective_prompt"] == "a adult cat"
    assert first["next_cursor"] == first["events"][-1]["id"]
    second = await _get(horde, moderator, limit=2, before_id=first["next_cursor"])
    assert [e["submitted_prompt"] for e in second["events"]] == ["a girl"]
    assert second["next_cursor"] is None


async def test_only_moderators_see_or_note_events_and_bad_input_is_refused(horde: Horde) -> None:
    moderator, member = await _moderator(horde), await horde.register("member")
    for path in ("", "/prompts", "/worker_suspicion_events"):
        for headers in (member.headers, {"apikey": "0000000000"}):
            response = await horde.client.get(BASE + path, headers=headers)
            assert response.status_code == 403 and response.json()["rc"] == "NotModerator", (path, response.text)
        keyless = await horde.client.get(BASE + path)  # as every moderator route: no key is no user
        assert keyless.status_code == 401 and keyless.json()["rc"] == "InvalidAPIKey"
    posted = await horde.client.post(f"{BASE}/prompts/1/notes", json={"note": "x"}, headers=member.headers)
    assert posted.status_code == 403 and posted.json()["rc"] == "NotModerator"

    missing = await horde.client.post(f"{BASE}/prompts/999/notes", json={"note": "x"}, headers=moderator.headers)
    assert missing.status_code == 404 and missing.json()["rc"] == "ModerationEventNotFound"
    for body in ({}, {"note": "  "}, {"note": "x" * 2001}):
        bad = await horde.client.post(f"{BASE}/prompts/1/notes", json=body, headers=moderator.headers)
        assert bad.status_code == 400 and bad.json()["rc"] == "InvalidModerationNote", body
    for path, params, rc in (
        ("/prompts", {"limit": 0}, "InvalidOperationsLimit"),
        ("/prompts", {"limit": 101}, "InvalidOperationsLimit"),
        ("/prompts", {"before_id": 0}, "InvalidOperationsCursor"),
        ("/prompts", {"reason": "nope"}, "InvalidModerationReason"),
        ("/prompts", {"event_id": -1}, "InvalidModerationEventID"),
        ("/worker_suspicion_events", {"limit": 501}, "InvalidOperationsLimit"),
        ("", {"limit": 0}, "InvalidOperationsLimit"),
    ):
        bad = await horde.client.get(BASE + path, params=params, headers=moderator.headers)
        assert bad.status_code == 400 and bad.json()["rc"] == rc, (path, params, bad.text)


async def _fault(horde: Horde, owner: Account, job: dict[str, Any]) -> None:
    body = {"id": job["ids"][0], "generation": None, "state": "faulted", "seed": 1}
    response = await horde.client.post("/api/v2/generate/submit", json=body, headers=owner.headers)
    assert response.status_code == 200, response.text


@pytest.mark.both_databases
async def test_a_worker_that_aborts_too_many_jobs_leaves_a_suspicion_event(horde: Horde) -> None:
    moderator, requester, owner = await _moderator(horde), await horde.register("alice"), await horde.register("wally")
    horde.settings.economy.worker_max_aborts_per_hour = 2
    await horde.generate(requester)
    await horde.generate(requester)
    assert (await _get(horde, moderator, "/worker_suspicion_events"))["events"] == []
    for _ in range(3):
        await _fault(horde, owner, await horde.pop(owner))

    page = await _get(horde, moderator, "/worker_suspicion_events")
    [event] = page["events"]
    assert event["reason"] == "TOO_MANY_JOBS_ABORTED" and event["suspicion_id"] == 9
    assert event["worker_name"] == "worker-1" and event["user_id"] == owner.id
    assert "Aborted 3 jobs" in event["detail"] and page["next_cursor"] is None
    assert (await _get(horde, moderator, "/worker_suspicion_events", worker_id=event["worker_id"]))["events"]
    assert (await _get(horde, moderator, "/worker_suspicion_events", user_id=requester.id))["events"] == []
    assert (await _get(horde, moderator, "/worker_suspicion_events", limit=1))["next_cursor"] == event["id"]


async def test_the_overview_lists_paused_workers_and_the_promotion_threshold(horde: Horde) -> None:
    moderator, owner = await _moderator(horde), await horde.register("wally")
    await horde.pop(owner, name="worker-a")
    await horde.pop(owner, name="worker-b")
    empty = await _get(horde, moderator, "")
    assert empty["paused_workers"] == [] and empty["paused_workers_total"] == 0
    assert empty["promotion_threshold"] == horde.settings.economy.trust_after_kudos
    assert empty["promotion_eligible_users"] == [] and empty["suspicion_threshold"] == 0

    workers = (await horde.client.get("/api/v2/workers")).json()
    worker_id = next(w["id"] for w in workers if w["name"] == "worker-b")
    paused = await horde.client.put(f"/api/v2/workers/{worker_id}", json={"paused": True}, headers=moderator.headers)
    assert paused.status_code == 200, paused.text

    found = await _get(horde, moderator, "")
    assert found["paused_workers_total"] == 1
    [worker] = found["paused_workers"]
    assert worker["id"] == worker_id and worker["name"] == "worker-b" and worker["online"] is True
    assert worker["owner_id"] == owner.id and worker["owner"] == f"wally#{owner.id}"
    assert worker["models"] == ["stable_diffusion"] and worker["type"] == "image"
