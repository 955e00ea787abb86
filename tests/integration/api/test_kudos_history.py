"""``GET /kudos/history``: a user's ledger entries, newest first, with the net change of their balance."""

from __future__ import annotations

from typing import Any

from tests.live_server import Account, Horde


async def _history(horde: Horde, account: Account, page: int = 1) -> dict[str, Any]:
    response = await horde.client.get("/api/v2/kudos/history", params={"page": page}, headers=account.headers)
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


async def test_history_lists_grants_transfers_and_generations_newest_first(horde: Horde) -> None:
    sender = await horde.register("sender", kudos=500)
    receiver = await horde.register("receiver")
    moved = await horde.client.post(
        "/api/v2/kudos/transfer", json={"username": receiver.username, "amount": 120}, headers=sender.headers
    )
    assert moved.status_code == 200, moved.text
    await horde.generate(sender, params={"width": 64, "height": 64, "steps": 5})
    job = await horde.pop(receiver)
    assert (await horde.upload_and_submit(receiver, job)).status_code == 200

    sent = await _history(horde, sender)
    assert sent["total"] == 3 and sent["page"] == 1 and sent["pages"] == 1
    generation, transfer, grant = sent["entries"]
    assert grant["amount"] == 500 and transfer["amount"] == -120
    assert generation["amount"] < 0 and generation["kind"] == "generation"
    assert generation["created_at"] >= transfer["created_at"] >= grant["created_at"]
    me = (await horde.client.get("/api/v2/find_user", headers=sender.headers)).json()
    assert round(sum(entry["amount"] for entry in sent["entries"]), 2) == me["kudos"]

    received = await _history(horde, receiver)
    assert [entry["amount"] > 0 for entry in received["entries"]] == [True, True]
    assert received["entries"][1]["amount"] == 120


async def test_history_pages_and_refuses_the_anonymous_account(horde: Horde) -> None:
    user = await horde.register("newcomer")
    empty = await _history(horde, user)
    assert empty == {"entries": [], "page": 1, "pages": 1, "total": 0}
    assert (await _history(horde, user, page=3))["entries"] == []

    refused = await horde.client.get("/api/v2/kudos/history", headers={"apikey": "0000000000"})
    assert refused.status_code == 403 and refused.json()["rc"] == "AnonForbidden"
    bad_page = await horde.client.get("/api/v2/kudos/history", params={"page": 0}, headers=user.headers)
    assert bad_page.status_code == 400
