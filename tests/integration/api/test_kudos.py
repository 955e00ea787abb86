"""``/kudos/transfer`` and ``/kudos/award`` through HTTP, and the ledger they write."""

from __future__ import annotations

import math
from typing import Any

import httpx

from openhorde.domain.kudos.ledger import check_ledger
from tests.live_server import Account, Horde


async def _transfer(
    horde: Horde, sender: Account | None, username: str, amount: Any, key: str | None = None
) -> httpx.Response:
    headers = dict(sender.headers) if sender else {"apikey": "0000000000"}
    if key is not None:
        headers["Idempotency-Key"] = key
    return await horde.client.post(
        "/api/v2/kudos/transfer", json={"username": username, "amount": amount}, headers=headers
    )


async def _me(horde: Horde, account: Account) -> dict[str, Any]:
    response = await horde.client.get("/api/v2/find_user", headers=account.headers)
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


async def _kudos(horde: Horde, account: Account) -> float:
    return float((await _me(horde, account))["kudos"])


async def test_transfer_moves_kudos_between_users(horde: Horde) -> None:
    sender = await horde.register("giver", kudos=500)
    receiver = await horde.register("taker")

    moved = await _transfer(horde, sender, receiver.username, 120)
    assert moved.status_code == 200, moved.text
    assert moved.json() == {"transferred": 120}
    assert (await _transfer(horde, sender, receiver.username.upper(), 30)).status_code == 200

    giver, taker = await _me(horde, sender), await _me(horde, receiver)
    assert giver["kudos"] == 350 and taker["kudos"] == 150
    assert giver["kudos_details"]["gifted"] == 150 and giver["kudos_details"]["received"] == 0
    assert taker["kudos_details"]["received"] == 150 and taker["kudos_details"]["gifted"] == 0


async def test_refused_transfers_name_their_reason_and_move_nothing(horde: Horde) -> None:
    sender = await horde.register("giver", kudos=100)
    receiver = await horde.register("taker")
    cases: list[tuple[Account | None, str, Any, int, str]] = [
        (sender, sender.username, 10, 400, "KudosTransferToSelf"),
        (sender, "Anonymous#0", 10, 400, "KudosTransferToAnon"),
        (None, receiver.username, 10, 400, "KudosTransferFromAnon"),
        (sender, receiver.username, 101, 400, "KudosTransferNotEnough"),
        (sender, receiver.username, 0, 400, "KudosTransferNotPositive"),
        (sender, receiver.username, -50, 400, "KudosTransferNotPositive"),
        (sender, "ghost#99999", 10, 404, "UserNotFound"),
        (sender, f"wrongname#{receiver.id}", 10, 404, "UserNotFound"),
        (sender, "taker", 10, 404, "UserNotFound"),
        (sender, receiver.username, 1.5, 400, "ValidationError"),
    ]
    for who, username, amount, status, rc in cases:
        response = await _transfer(horde, who, username, amount)
        assert response.status_code == status, (username, amount, response.text)
        assert response.json()["rc"] == rc, (username, amount, response.json())
    assert await _kudos(horde, sender) == 100 and await _kudos(horde, receiver) == 0
    bad_key = await horde.client.post("/api/v2/kudos/transfer", json={"username": receiver.username, "amount": 1})
    assert bad_key.status_code == 401


async def test_idempotent_transfer_is_applied_once(horde: Horde) -> None:
    sender = await horde.register("giver", kudos=300)
    receiver = await horde.register("taker")
    other = await horde.register("other")

    for _ in range(3):
        retried = await _transfer(horde, sender, receiver.username, 100, key="payment-1")
        assert retried.status_code == 200 and retried.json() == {"transferred": 100}
    assert await _kudos(horde, sender) == 200 and await _kudos(horde, receiver) == 100

    for username, amount in ((receiver.username, 50), (other.username, 100)):
        mismatch = await _transfer(horde, sender, username, amount, key="payment-1")
        assert mismatch.status_code == 400 and mismatch.json()["rc"] == "KudosTransferIdempotencyMismatch"
    assert (await _transfer(horde, sender, receiver.username, 100, key="payment-2")).status_code == 200
    assert await _kudos(horde, sender) == 100 and await _kudos(horde, receiver) == 200

    # Keys belong to the sender: another user's "payment-1" is a new transfer.
    await horde.grant(other, 10)
    assert (await _transfer(horde, other, receiver.username, 10, key="payment-1")).status_code == 200
    assert await _kudos(horde, receiver) == 210 and await _kudos(horde, other) == 0


async def test_kudos_held_by_queued_requests_cannot_be_transferred(horde: Horde) -> None:
    sender = await horde.register("spender", kudos=100)
    receiver = await horde.register("taker")
    params = {"width": 512, "height": 512, "steps": 30, "n": 2}
    held = (await horde.generate(sender, params=params, dry_run=True)).json()["kudos"]
    assert 5 < held < 95
    created = await horde.generate(sender, params=params)
    assert created.status_code == 202, created.text

    everything = await _transfer(horde, sender, receiver.username, 100)
    assert everything.status_code == 400 and everything.json()["rc"] == "KudosTransferNotEnough"
    # The held amount is exact to the cent; stay clear of rounding on either side of it.
    free, too_much = math.floor(100 - held - 0.05), math.ceil(100 - held + 0.05)
    assert (await _transfer(horde, sender, receiver.username, too_much)).json()["rc"] == "KudosTransferNotEnough"
    assert (await _transfer(horde, sender, receiver.username, free)).status_code == 200

    cancelled = await horde.client.delete(f"/api/v2/generate/status/{created.json()['id']}")
    assert cancelled.status_code == 200
    rest = await _transfer(horde, sender, receiver.username, 100 - free)
    assert rest.status_code == 200, rest.text
    assert await _kudos(horde, sender) == 0 and await _kudos(horde, receiver) == 100


async def test_admin_awards_kudos_and_others_may_not(horde: Horde) -> None:
    first = await horde.register("first-user")  # user 1: no power of its own, unlike in the reference
    admin = await horde.register("root")
    await horde.make_admin(admin)
    plain = await horde.register("plain")
    lucky = await horde.register("lucky")

    awarded = await horde.client.post(
        "/api/v2/kudos/award", json={"username": lucky.username, "amount": 75}, headers=admin.headers
    )
    assert awarded.status_code == 200 and awarded.json() == {"awarded": 75}
    details = await _me(horde, lucky)
    assert details["kudos"] == 75 and details["kudos_details"]["awarded"] == 75
    assert await _kudos(horde, admin) == 0, "an award is minted, not taken from the admin"

    for refused_awarder in (plain, first):
        refused = await horde.client.post(
            "/api/v2/kudos/award", json={"username": lucky.username, "amount": 75}, headers=refused_awarder.headers
        )
        assert refused.status_code == 403 and refused.json()["rc"] == "NotAllowedAwards"
    zero = await horde.client.post(
        "/api/v2/kudos/award", json={"username": lucky.username, "amount": 0}, headers=admin.headers
    )
    assert zero.status_code == 400 and zero.json()["rc"] == "KudosAwardNotPositive"
    to_anon = await horde.client.post(
        "/api/v2/kudos/award", json={"username": "Anonymous#0", "amount": 5}, headers=admin.headers
    )
    assert to_anon.status_code == 400 and to_anon.json()["rc"] == "KudosTransferToAnon"
    absurd = await horde.client.post(
        "/api/v2/kudos/award", json={"username": lucky.username, "amount": 10**30}, headers=admin.headers
    )
    assert absurd.status_code == 400 and absurd.json()["rc"] == "ValidationError"
    assert await _kudos(horde, lucky) == 75


async def test_ledger_balances_after_a_mixed_scenario(horde: Horde) -> None:
    admin = await horde.register("root")
    await horde.make_admin(admin)
    requester = await horde.register("requester", kudos=1000)
    owner = await horde.register("owner")
    friend = await horde.register("friend")

    params = {"width": 512, "height": 512, "steps": 20, "n": 2}
    request_id = (await horde.generate(requester, params=params)).json()["id"]
    for _ in range(2):
        job = await horde.pop(owner)
        assert (await horde.upload_and_submit(owner, job)).status_code == 200
    assert (await horde.client.get(f"/api/v2/generate/check/{request_id}")).json()["done"]
    anonymous = await horde.client.post(
        "/api/v2/generate/async",
        headers={"apikey": "0000000000"},
        json={"prompt": "x", "params": {"width": 64, "height": 64}},
    )
    assert anonymous.status_code == 202
    job = await horde.pop(owner)
    assert (await horde.upload_and_submit(owner, job)).status_code == 200

    assert (await _transfer(horde, requester, friend.username, 200, key="k")).status_code == 200
    assert (await _transfer(horde, requester, friend.username, 200, key="k")).status_code == 200
    assert (await _transfer(horde, owner, friend.username, 1)).status_code == 200
    award = {"username": owner.username, "amount": 33}
    assert (await horde.client.post("/api/v2/kudos/award", json=award, headers=admin.headers)).status_code == 200
    adjusted = await horde.client.put(f"/api/v2/users/{friend.id}", json={"kudos": -50.25}, headers=admin.headers)
    assert adjusted.status_code == 200 and adjusted.json() == {"new_kudos": 150.75}

    async with horde.db.store() as store:
        report = await check_ledger(store)
    assert report.ok, report
    assert report.total_cents == 0
    assert report.unbalanced_transaction_ids == [] and report.balance_mismatches == []
    requester_kudos, owner_kudos = await _kudos(horde, requester), await _kudos(horde, owner)
    assert requester_kudos < 800, "the requester paid for its images and the transfer"
    assert owner_kudos > 32, "the worker's owner earned rewards and the award"
