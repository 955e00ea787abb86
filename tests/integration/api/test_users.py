"""``/register``, ``/find_user`` and ``/users``: accounts and who may change them, through HTTP."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from openhorde.storage.tables import User
from tests.live_server import Account, Horde


async def _make_moderator(horde: Horde, account: Account) -> None:
    await horde.set_user(account, is_moderator=True)


async def _admin(horde: Horde, name: str = "root") -> Account:
    account = await horde.register(name)
    await horde.make_admin(account)
    return account


async def _put(horde: Horde, actor: Account, user_id: int, **body: Any) -> httpx.Response:
    return await horde.client.put(f"/api/v2/users/{user_id}", json=body, headers=actor.headers)


async def _user(horde: Horde, user_id: int, viewer: Account | None = None) -> dict[str, Any]:
    response = await horde.client.get(f"/api/v2/users/{user_id}", headers=viewer.headers if viewer else None)
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


async def test_register_returns_a_working_key_and_a_tagged_name(horde: Horde) -> None:
    response = await horde.client.post("/api/v2/register", json={"username": "  alice  "})
    assert response.status_code == 201, response.text
    body = response.json()
    assert set(body) == {"id", "username", "apikey"}
    assert len(body["apikey"]) == 22
    assert body["username"] == f"alice#{body['id']}" and body["id"] > 0

    me = await horde.client.get("/api/v2/find_user", headers={"apikey": body["apikey"]})
    assert me.status_code == 200 and me.json()["id"] == body["id"] and me.json()["username"] == body["username"]

    second = (await horde.client.post("/api/v2/register", json={"username": "alice"})).json()
    assert second["id"] != body["id"] and second["apikey"] != body["apikey"]


@pytest.mark.live  # in-process, the answer waits for the whole app: only a socket shows an early answer
async def test_register_commits_before_it_answers(horde: Horde, monkeypatch: pytest.MonkeyPatch) -> None:
    """A client may use its new key at once: the unit of work commits before the response leaves."""
    commit = AsyncSession.commit

    async def slow_commit(session: AsyncSession) -> None:
        await asyncio.sleep(0.2)
        await commit(session)

    monkeypatch.setattr(AsyncSession, "commit", slow_commit)
    created = (await horde.client.post("/api/v2/register", json={"username": "eager"})).json()
    async with horde.db.sessions() as session:  # read without waiting for anything
        assert await session.get(User, created["id"]) is not None


async def test_register_refuses_bad_usernames(horde: Horde) -> None:
    cases = [
        ("", "ValidationError"),
        ("a", "ValidationError"),
        ("x" * 31, "ValidationError"),
        ("alice#7", "InvalidUsername"),
        ("   ", "ValidationError"),  # trimmed before its length is checked: an empty name
        ("<script>", "InvalidUsername"),
        ("-dash-first", "InvalidUsername"),
    ]
    for username, rc in cases:
        response = await horde.client.post("/api/v2/register", json={"username": username})
        assert response.status_code == 400, (username, response.text)
        assert response.json()["rc"] == rc, (username, response.json())
    missing = await horde.client.post("/api/v2/register", json={})
    assert missing.status_code == 400 and missing.json()["rc"] == "ValidationError"


async def test_find_user_needs_a_valid_key(horde: Horde) -> None:
    account = await horde.register("finder", kudos=42)
    me = (await horde.client.get("/api/v2/find_user", headers=account.headers)).json()
    assert me["username"] == account.username and me["kudos"] == 42 and me["concurrency"] == 30
    assert me["kudos_details"]["admin"] == 42 and me["worker_ids"] == []

    wrong = await horde.client.get("/api/v2/find_user", headers={"apikey": "y" * 22})
    assert wrong.status_code == 401 and wrong.json()["rc"] == "InvalidAPIKey"
    assert (await horde.client.get("/api/v2/find_user")).status_code == 401


async def test_users_are_paged_and_sorted_by_kudos(horde: Horde) -> None:
    created = [await horde.register(f"user{i:02d}") for i in range(26)]
    await horde.grant(created[5], 500)
    await horde.grant(created[17], 900)
    await horde.grant(created[20], 100)

    first = (await horde.client.get("/api/v2/users")).json()
    assert len(first) == 25
    assert [u["id"] for u in first[:3]] == [created[17].id, created[5].id, created[20].id]
    kudos = [u["kudos"] for u in first]
    assert kudos == sorted(kudos, reverse=True)

    second = (await horde.client.get("/api/v2/users", params={"page": 2})).json()
    assert len(second) == 2  # 26 registered + the anonymous account
    seen = {u["id"] for u in first} | {u["id"] for u in second}
    assert seen == {a.id for a in created} | {0}

    by_age = (await horde.client.get("/api/v2/users", params={"sort": "age"})).json()
    assert [u["id"] for u in by_age[:3]] == [0, created[0].id, created[1].id]
    assert (await horde.client.get("/api/v2/users", params={"page": 3})).json() == []
    assert (await horde.client.get("/api/v2/users", params={"sort": "nope"})).status_code == 400
    assert (await horde.client.get("/api/v2/users", params={"page": 0})).status_code == 400


async def test_get_user_hides_private_fields_from_others(horde: Horde) -> None:
    owner = await horde.register("private")
    other = await horde.register("nosy")
    moderator = await horde.register("mod")
    await _make_moderator(horde, moderator)
    assert (await _put(horde, owner, owner.id, contact="me@example.com")).status_code == 200
    await horde.pop(owner, name="hidden-worker")

    public = await _user(horde, owner.id)
    assert public["username"] == owner.username and public["worker_count"] == 1
    assert "contact" not in public and "worker_ids" not in public
    assert "contact" not in await _user(horde, owner.id, other)

    for viewer in (owner, moderator):
        private = await _user(horde, owner.id, viewer)
        assert private["contact"] == "me@example.com" and len(private["worker_ids"]) == 1

    missing = await horde.client.get("/api/v2/users/999999")
    assert missing.status_code == 404 and missing.json()["rc"] == "UserNotFound"


async def test_admin_sets_kudos_and_it_is_an_admin_posting(horde: Horde) -> None:
    admin = await _admin(horde)
    target = await horde.register("lucky")

    granted = await _put(horde, admin, target.id, kudos=500)
    assert granted.status_code == 200, granted.text
    assert granted.json() == {"new_kudos": 500}
    taken = await _put(horde, admin, target.id, kudos=-125.5)
    assert taken.json() == {"new_kudos": 374.5}
    for absurd in (1e300, -1e300):
        refused = await _put(horde, admin, target.id, kudos=absurd)
        assert refused.status_code == 400 and refused.json()["rc"] == "ValidationError", refused.text

    details = await _user(horde, target.id)
    assert details["kudos"] == 374.5
    assert details["kudos_details"]["admin"] == 374.5
    assert details["kudos_details"]["received"] == 0 and details["kudos_details"]["accumulated"] == 0


async def test_admin_makes_a_moderator_who_sets_trust_and_concurrency(horde: Horde) -> None:
    admin = await _admin(horde)
    moderator = await horde.register("mod")
    target = await horde.register("worker-owner")

    made = await _put(horde, admin, moderator.id, moderator=True)
    assert made.status_code == 200 and made.json() == {"moderator": True}
    assert (await _user(horde, moderator.id))["moderator"] is True

    changed = await _put(horde, moderator, target.id, trusted=True, concurrency=5, admin_comment="ok")
    assert changed.status_code == 200, changed.text
    assert changed.json() == {"trusted": True, "concurrency": 5, "admin_comment": "ok"}
    details = await _user(horde, target.id, moderator)
    assert details["trusted"] is True and details["concurrency"] == 5 and details["admin_comment"] == "ok"

    no_kudos = await _put(horde, moderator, target.id, kudos=10)
    assert no_kudos.status_code == 403 and no_kudos.json()["rc"] == "NotAdmin"
    no_promotion = await _put(horde, moderator, target.id, moderator=True)
    assert no_promotion.status_code == 403 and no_promotion.json()["rc"] == "NotAdmin"


async def test_plain_user_cannot_use_admin_or_moderator_fields(horde: Horde) -> None:
    user = await horde.register("plain")
    other = await horde.register("other")
    for target in (user, other):
        kudos = await _put(horde, user, target.id, kudos=1000)
        assert kudos.status_code == 403 and kudos.json()["rc"] == "NotAdmin"
        moderator = await _put(horde, user, target.id, moderator=True)
        assert moderator.status_code == 403 and moderator.json()["rc"] == "NotAdmin"
        for field, value in (("trusted", True), ("concurrency", 500), ("flagged", False)):
            refused = await _put(horde, user, target.id, **{field: value})
            assert refused.status_code == 403 and refused.json()["rc"] == "NotModerator", field
    me = await _user(horde, user.id, user)
    assert me["kudos"] == 0 and me["moderator"] is False and me["trusted"] is False and me["concurrency"] == 30


async def test_self_changes_username_public_workers_and_contact(horde: Horde) -> None:
    user = await horde.register("before")
    other = await horde.register("other")

    changed = await _put(horde, user, user.id, username="after", public_workers=True, contact="a@b.c")
    assert changed.status_code == 200, changed.text
    assert changed.json() == {"username": f"after#{user.id}", "public_workers": True, "contact": "a@b.c"}
    me = (await horde.client.get("/api/v2/find_user", headers=user.headers)).json()
    assert me["username"] == f"after#{user.id}" and me["contact"] == "a@b.c"
    assert "worker_ids" in await _user(horde, user.id)  # public_workers shows them to everyone

    foreign = await _put(horde, other, user.id, username="hijacked")
    assert foreign.status_code == 403 and foreign.json()["rc"] == "NotOwner"
    bad_name = await _put(horde, user, user.id, username="has#hash")
    assert bad_name.status_code == 400 and bad_name.json()["rc"] == "InvalidUsername"
    assert (await _user(horde, user.id))["username"] == f"after#{user.id}"

    nothing = await _put(horde, user, user.id)
    assert nothing.status_code == 400 and nothing.json()["rc"] == "NoUserModSelected"
    missing = await _put(horde, user, 999999, contact="x")
    assert missing.status_code == 404 and missing.json()["rc"] == "UserNotFound"
    assert (await horde.client.put(f"/api/v2/users/{user.id}", json={"contact": "x"})).status_code == 401


async def test_anonymous_user_cannot_be_modified(horde: Horde) -> None:
    admin = await _admin(horde)
    for body in ({"kudos": 100}, {"username": "notanon"}, {"concurrency": 1}):
        refused = await _put(horde, admin, 0, **body)
        assert refused.status_code == 403, (body, refused.text)
        assert refused.json()["rc"] == "AnonForbiddenUserMod"
    anonymous = await _user(horde, 0)
    assert anonymous["username"] == "Anonymous#0" and anonymous["kudos"] == 0 and anonymous["concurrency"] == 500


async def test_concurrency_set_by_a_moderator_is_enforced(horde: Horde) -> None:
    moderator = await horde.register("mod")
    await _make_moderator(horde, moderator)
    requester = await horde.register("limited")
    assert (await _put(horde, moderator, requester.id, concurrency=2)).status_code == 200

    assert (await horde.generate(requester, params={"width": 64, "height": 64, "n": 2})).status_code == 202
    refused = await horde.generate(requester, params={"width": 64, "height": 64, "n": 1})
    assert refused.status_code == 429 and refused.json()["rc"] == "TooManyPrompts"

    assert (await _put(horde, moderator, requester.id, concurrency=3)).status_code == 200
    assert (await horde.generate(requester, params={"width": 64, "height": 64, "n": 1})).status_code == 202


async def test_pages_beyond_the_last_allowed_are_empty(horde: Horde) -> None:
    await horde.register("someone")
    assert (await horde.client.get("/api/v2/users", params={"page": 10_001})).json() == []


async def _delete(horde: Horde, actor: Account | None, user_id: int) -> httpx.Response:
    return await horde.client.delete(f"/api/v2/users/{user_id}", headers=actor.headers if actor else None)


async def test_a_user_deletes_their_own_account_and_its_key_stops_working(horde: Horde) -> None:
    leaving = await horde.register("leaving", kudos=50)
    deleted = await _delete(horde, leaving, leaving.id)
    assert deleted.status_code == 200 and deleted.json() == {"message": "OK"}
    refused = await horde.client.get("/api/v2/find_user", headers=leaving.headers)
    assert refused.status_code == 403 and refused.json()["rc"] == "DeletedUser"
    assert (await _user(horde, leaving.id))["deleted"] is True
    listed = (await horde.client.get("/api/v2/users")).json()
    assert leaving.id not in {user["id"] for user in listed}


async def test_who_may_delete_whom(horde: Horde) -> None:
    user, other = await horde.register("user"), await horde.register("other")
    moderator, admin = await horde.register("mod"), await _admin(horde)
    await _make_moderator(horde, moderator)

    refused = await _delete(horde, other, user.id)
    assert refused.status_code == 403 and refused.json()["rc"] == "NotUserOrMod"
    assert (await _delete(horde, None, user.id)).status_code == 401
    for target in (moderator, admin):
        protected = await _delete(horde, admin, target.id)
        assert protected.status_code == 403 and protected.json()["rc"] == "CannotDeleteMod"
    anonymous = await _delete(horde, admin, 0)
    assert anonymous.status_code == 403 and anonymous.json()["rc"] == "AnonForbiddenUserMod"
    missing = await _delete(horde, admin, 999_999)
    assert missing.status_code == 404 and missing.json()["rc"] == "UserNotFound"

    assert (await _delete(horde, moderator, user.id)).status_code == 200
    assert (await horde.client.get("/api/v2/find_user", headers=user.headers)).json()["rc"] == "DeletedUser"
    assert (await horde.client.get("/api/v2/find_user", headers=other.headers)).status_code == 200


async def test_a_moderators_second_delete_wipes_an_inactive_account_and_keeps_its_ledger(horde: Horde) -> None:
    user = await horde.register("wipe-me", kudos=75)
    moderator = await horde.register("mod")
    await _make_moderator(horde, moderator)
    assert (await _delete(horde, moderator, user.id)).status_code == 200

    recent = await _delete(horde, moderator, user.id)
    assert recent.status_code == 403 and recent.json()["rc"] == "CannotWipeActiveUser"

    await horde.set_user(user, last_active_at=0.0)
    assert (await _put(horde, user, user.id, contact="me@example.com")).status_code == 403  # DeletedUser
    wiped = await _delete(horde, moderator, user.id)
    assert wiped.status_code == 200, wiped.text
    details = await _user(horde, user.id, moderator)
    assert details["username"] == f"deleted#{user.id}" and details["deleted"] is True
    assert details["kudos"] == 75  # the row and its postings stay: kudos are never lost from the books
    audit = (await horde.client.get("/api/v2/audit", headers=moderator.headers)).json()
    entries = audit["entries"] if isinstance(audit, dict) else audit
    assert {"user.delete", "user.wipe"} <= {entry["action"] for entry in entries}
