"""Tiers through HTTP: the Supporter tier's priority boost and monthly grant, admin credits, find_user."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from openhorde.storage.tables import KudosTransaction
from tests.live_server import Account, Horde


async def _queue(horde: Horde, account: Account, prompt: str) -> str:
    response = await horde.generate(account, prompt=prompt)
    assert response.status_code == 202, response.text
    return str(response.json()["id"])


async def _find_user(horde: Horde, account: Account) -> dict[str, Any]:
    response = await horde.client.get("/api/v2/find_user", headers=account.headers)
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


async def _admin(horde: Horde) -> Account:
    admin = await horde.register("boss")
    await horde.make_admin(admin)
    return admin


@pytest.mark.both_databases  # PostgreSQL takes a Supporter's request in its two steps
async def test_a_supporters_request_overtakes_a_free_one_queued_earlier(horde: Horde) -> None:
    admin, worker_owner = await _admin(horde), await horde.register("owner")
    # The free user has more kudos (priority) than the supporter's monthly grant: only the boost puts it ahead.
    free, supporter = await horde.register("free", kudos=2000), await horde.register("fan")
    granted = await horde.client.put(
        f"/api/v2/users/{supporter.id}/supporter", json={"months": 1}, headers=admin.headers
    )
    assert granted.status_code == 200, granted.text
    assert granted.json()["tier"] == "supporter"

    await _queue(horde, free, "free's")
    await _queue(horde, supporter, "supporter's")
    assert (await horde.pop(worker_owner))["payload"]["prompt"] == "supporter's"
    assert (await horde.pop(worker_owner))["payload"]["prompt"] == "free's"

    # Once the tier ends, the same two users queue in kudos order again.
    revoked = await horde.client.delete(f"/api/v2/users/{supporter.id}/supporter", headers=admin.headers)
    assert revoked.status_code == 200 and revoked.json()["tier"] == "free", revoked.text
    await _queue(horde, free, "free again")
    await _queue(horde, supporter, "ex-supporter's")
    assert (await horde.pop(worker_owner))["payload"]["prompt"] == "free again"


async def test_admin_grants_and_revokes_supporter_with_a_monthly_grant_and_an_audit_trail(horde: Horde) -> None:
    admin, member = await _admin(horde), await horde.register("member")
    assert (await _find_user(horde, member))["tier"] == "free"

    first = await horde.client.put(f"/api/v2/users/{member.id}/supporter", json={"months": 2}, headers=admin.headers)
    assert first.status_code == 200, first.text
    seen = await _find_user(horde, member)
    assert seen["tier"] == "supporter" and seen["supporter_until"] == first.json()["supporter_until"]
    assert seen["kudos"] == horde.settings.economy.supporter_monthly_kudos
    assert seen["kudos_details"]["recurring"] == horde.settings.economy.supporter_monthly_kudos

    # Extending within the same month lengthens the tier but grants this month's kudos only once.
    again = await horde.client.put(f"/api/v2/users/{member.id}/supporter", json={"months": 1}, headers=admin.headers)
    assert again.json()["supporter_until"] > first.json()["supporter_until"]
    assert (await _find_user(horde, member))["kudos"] == horde.settings.economy.supporter_monthly_kudos
    # A supporter's request in a month already granted grants nothing more either.
    await _queue(horde, member, "mine")
    assert (await _find_user(horde, member))["kudos"] == horde.settings.economy.supporter_monthly_kudos

    off = await horde.client.delete(f"/api/v2/users/{member.id}/supporter", headers=admin.headers)
    assert off.status_code == 200 and off.json()["tier"] == "free"
    assert (await _find_user(horde, member))["tier"] == "free"

    log = (await horde.client.get("/api/v2/audit", headers=admin.headers)).json()
    actions = [(e["action"], e["actor_id"], e["target_id"]) for e in log["entries"]]
    assert actions == [
        ("user.supporter_off", admin.id, str(member.id)),
        ("user.supporter_on", admin.id, str(member.id)),
        ("user.supporter_on", admin.id, str(member.id)),
    ]
    assert log["entries"][2]["details"]["months"] == 2


async def test_non_admins_cannot_change_tiers_or_grant_credits(horde: Horde) -> None:
    moderator, member = await horde.register("moddy"), await horde.register("member")
    await horde.make_admin(moderator)
    await horde.set_user(moderator, is_admin=False, is_moderator=True)
    for who in (moderator, member):
        put = await horde.client.put(f"/api/v2/users/{member.id}/supporter", json={"months": 1}, headers=who.headers)
        assert put.status_code == 403 and put.json()["rc"] == "NotAdmin", put.text
        delete = await horde.client.delete(f"/api/v2/users/{member.id}/supporter", headers=who.headers)
        assert delete.status_code == 403
        credits = await horde.client.post(
            f"/api/v2/users/{member.id}/credits", json={"kudos": 500, "reference": "x"}, headers=who.headers
        )
        assert credits.status_code == 403
    assert (await _find_user(horde, member))["tier"] == "free"
    assert (await _find_user(horde, member))["kudos"] == 0
    assert (await horde.client.get("/api/v2/audit", headers=moderator.headers)).json()["entries"] == []


async def test_admin_credits_are_recorded_once_per_reference(horde: Horde) -> None:
    admin, buyer = await _admin(horde), await horde.register("buyer")
    body = {"kudos": 5000, "reference": "INV-2026-17"}
    first = await horde.client.post(f"/api/v2/users/{buyer.id}/credits", json=body, headers=admin.headers)
    assert first.status_code == 200, first.text
    assert first.json()["recorded"] is True and first.json()["tier"] == "credits"
    replay = await horde.client.post(f"/api/v2/users/{buyer.id}/credits", json=body, headers=admin.headers)
    assert replay.status_code == 200 and replay.json()["recorded"] is False

    seen = await _find_user(horde, buyer)
    assert seen["kudos"] == 5000 and seen["tier"] == "credits"
    async with horde.db.unit_of_work() as session:
        references = list(
            await session.scalars(select(KudosTransaction.reference).where(KudosTransaction.kind == "credits"))
        )
    assert references == ["admin:INV-2026-17"]
    log = (await horde.client.get("/api/v2/audit", headers=admin.headers)).json()
    assert [(e["action"], e["details"]) for e in log["entries"]] == [("user.credits", body)]
