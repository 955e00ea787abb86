"""Only admins mint kudos: ``POST /kudos/award`` gives user id 1 no power of its own, and every
award lands in both the ledger and the audit log."""

from __future__ import annotations

from typing import Any

import httpx

from tests.live_server import Account, Horde


async def _award(horde: Horde, awarder: Account, username: str, amount: Any) -> httpx.Response:
    return await horde.client.post(
        "/api/v2/kudos/award", json={"username": username, "amount": amount}, headers=awarder.headers
    )


async def _me(horde: Horde, account: Account) -> dict[str, Any]:
    response = await horde.client.get("/api/v2/find_user", headers=account.headers)
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


async def _audit_entries(horde: Horde, reader: Account) -> list[dict[str, Any]]:
    response = await horde.client.get("/api/v2/audit", headers=reader.headers)
    assert response.status_code == 200, response.text
    return response.json()["entries"]  # type: ignore[no-any-return]


async def _history(horde: Horde, account: Account) -> list[dict[str, Any]]:
    response = await horde.client.get("/api/v2/kudos/history", headers=account.headers)
    assert response.status_code == 200, response.text
    return response.json()["entries"]  # type: ignore[no-any-return]


async def test_the_first_registered_user_cannot_mint_kudos(horde: Horde) -> None:
    first = await horde.register("early-bird")
    assert first.id == 1, "the first self-registered account is user 1"
    friend = await horde.register("friend")
    admin = await horde.register("root")
    await horde.make_admin(admin)

    for target in (first, friend):
        refused = await _award(horde, first, target.username, 1_000_000)
        assert (refused.status_code, refused.json().get("rc")) == (403, "NotAllowedAwards"), refused.text

    assert (await _me(horde, first))["kudos"] == 0 and (await _me(horde, friend))["kudos"] == 0
    assert await _history(horde, first) == [] and await _history(horde, friend) == []
    assert await _audit_entries(horde, admin) == [], "a refused award leaves no audit entry"


async def test_an_admin_award_is_in_the_ledger_and_the_audit_log(horde: Horde) -> None:
    admin = await horde.register("root")
    await horde.make_admin(admin)
    lucky = await horde.register("lucky")

    awarded = await _award(horde, admin, lucky.username, 75)
    assert awarded.status_code == 200 and awarded.json() == {"awarded": 75}, awarded.text
    refused = await _award(horde, admin, lucky.username, 0)
    assert (refused.status_code, refused.json().get("rc")) == (400, "KudosAwardNotPositive")

    assert [(e["kind"], e["amount"]) for e in await _history(horde, lucky)] == [("award", 75)]
    entries = await _audit_entries(horde, admin)
    assert [(e["action"], e["actor_id"], e["target_type"], e["target_id"]) for e in entries] == [
        ("kudos.award", admin.id, "user", str(lucky.id))
    ], "exactly one entry: the award that happened, none for the refused one"
    assert entries[0]["details"]["amount"] == 75
