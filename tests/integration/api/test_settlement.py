"""What a delivered image pays and charges, to the hundredth of a kudo, on both engines.

PostgreSQL claims and settles a job in one statement whose arithmetic is SQL (``claim_and_settle``); SQLite, and
PostgreSQL for a request with a webhook or an owner this reward trusts, take the domain's rules in Python
(``domain/queue/submit._settlement``). These tests hold both to the same figures, worked out here from the rules.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import select

from openhorde.domain.kudos import escrow
from openhorde.domain.kudos.ledger import check_ledger
from openhorde.storage.tables import Job, KudosEscrow, KudosPosting, KudosTransaction, Request, User, Worker
from tests.live_server import Account, Horde

pytestmark = pytest.mark.both_databases

ANONYMOUS = {"apikey": "0000000000"}
PRICED = {"width": 512, "height": 512, "steps": 20}
"""Large enough that its price and charge are whole kudos, small enough that it needs nothing upfront."""


@dataclass(frozen=True)
class Outcome:
    """A delivered job's request, its postings and the figures of the accounts it touched (hundredths)."""

    price: int
    charge: int
    charged: int
    request_state: str
    postings: list[tuple[int | None, str | None, int]]


async def _deliver(horde: Horde, requester: Account | None, owner: Account, **request: Any) -> Outcome:
    body = {"prompt": "a lighthouse", "params": PRICED, **request}
    headers = requester.headers if requester is not None else ANONYMOUS
    created = await horde.client.post("/api/v2/generate/async", json=body, headers=headers)
    assert created.status_code == 202, created.text
    job = await horde.pop(owner)
    assert job["ids"], job
    submitted = await horde.upload_and_submit(owner, job)
    assert submitted.status_code == 200, submitted.text
    async with horde.db.unit_of_work() as session:
        request = (await session.execute(select(Request).where(Request.id == created.json()["id"]))).scalar_one()
        legs = await session.execute(
            select(KudosPosting.user_id, KudosPosting.system_account, KudosPosting.amount_cents)
            .join(KudosTransaction, KudosTransaction.id == KudosPosting.transaction_id)
            .where(KudosTransaction.reference == job["ids"][0])
        )
        postings = sorted((tuple(leg) for leg in legs), key=repr)
        assert (await session.get(Job, job["ids"][0])).reward_cents == request.price_cents  # type: ignore[union-attr]
    assert submitted.json()["reward"] == pytest.approx(request.price_cents / 100)
    return Outcome(request.price_cents, request.charge_cents, request.charged_cents, request.state, postings)


async def _figures(horde: Horde, account: Account) -> tuple[int, int, int]:
    """(balance, held in escrow, escrow's earned) in hundredths."""
    async with horde.db.unit_of_work() as session:
        user = await session.get(User, account.id)
        held = await session.get(KudosEscrow, account.id)
        assert user is not None
        return user.kudos_cents, held.held_cents if held else 0, held.earned_cents if held else 0


def _legs(**amounts: tuple[int | None, str | None, int]) -> list[tuple[int | None, str | None, int]]:
    return sorted((leg for leg in amounts.values() if leg[2] != 0 or leg[1] == "mint"), key=repr)


async def _ledger_balances(horde: Horde) -> None:
    async with horde.db.store() as store:
        report = await check_ledger(store)
    assert report.ok, report


async def test_an_untrusted_owner_is_paid_less_the_escrow_and_the_requester_pays_the_charge(horde: Horde) -> None:
    requester, owner = await horde.register("alice", kudos=100), await horde.register("wally")
    out = await _deliver(horde, requester, owner)
    held = escrow.held_part(out.price, horde.settings.economy.escrow_share)
    assert out.price > 0 and out.charge > 0 and 0 < held < out.price
    assert await _figures(horde, owner) == (out.price - held, held, out.price)
    assert await _figures(horde, requester) == (10_000 - out.charge, 0, 0)
    assert (out.charged, out.request_state) == (out.charge, "done")
    assert out.postings == _legs(
        mint=(None, "mint", -out.price),
        owner=(owner.id, None, out.price - held),
        escrow=(None, "escrow", held),
        requester=(requester.id, None, -out.charge),
        burn=(None, "burn", out.charge),
    )
    async with horde.db.unit_of_work() as session:
        worker = (await session.execute(select(Worker))).scalar_one()
        user = await session.get(User, owner.id)
    assert (worker.fulfilments, worker.kudos_generated_cents) == (1, out.price)
    assert worker.speed_pps is not None and worker.speed_pps > 0
    assert user is not None and user.contribution_fulfillments == 1
    second = await _deliver(horde, requester, owner)  # the escrow row is added to
    assert await _figures(horde, owner) == (2 * (out.price - held), 2 * held, out.price + second.price)
    await _ledger_balances(horde)


async def test_a_requester_is_charged_no_more_than_their_balance(horde: Horde) -> None:
    requester, owner = await horde.register("alice", kudos=0.07), await horde.register("wally")
    await horde.set_user(owner, is_trusted=True)
    out = await _deliver(horde, requester, owner)
    assert out.charge > 7
    assert await _figures(horde, requester) == (0, 0, 0)
    assert await _figures(horde, owner) == (out.price, 0, 0), "trusted: paid in full, nothing held"
    assert out.charged == 7
    assert out.postings == _legs(
        mint=(None, "mint", -out.price),
        owner=(owner.id, None, out.price),
        requester=(requester.id, None, -7),
        burn=(None, "burn", 7),
    )
    await _ledger_balances(horde)


async def test_an_owner_serving_their_own_request_pays_from_what_it_earns(horde: Horde) -> None:
    owner = await horde.register("wally")
    out = await _deliver(horde, owner, owner)
    held = escrow.held_part(out.price, horde.settings.economy.escrow_share)
    paid = min(out.charge, out.price - held)  # a balance of 0 plus this reward's share
    assert await _figures(horde, owner) == (out.price - held - paid, held, out.price)
    assert out.charged == paid
    await _ledger_balances(horde)


async def test_an_anonymous_request_charges_nobody(horde: Horde) -> None:
    owner = await horde.register("wally")
    await horde.set_user(owner, is_moderator=True)
    out = await _deliver(horde, None, owner, params={"width": 64, "height": 64, "steps": 5})
    assert await _figures(horde, owner) == (out.price, 0, 0), "a moderator counts as trusted"
    assert out.charged == 0
    assert out.postings == _legs(mint=(None, "mint", -out.price), owner=(owner.id, None, out.price))
    await _ledger_balances(horde)


async def test_a_censored_image_pays_the_owner_and_charges_nobody(horde: Horde) -> None:
    requester, owner = await horde.register("alice", kudos=100), await horde.register("wally")
    await horde.generate(requester, params=PRICED, gallery=True)
    job = await horde.pop(owner)
    submitted = await horde.upload_and_submit(owner, job, state="censored")
    assert submitted.status_code == 200, submitted.text
    price = round(submitted.json()["reward"] * 100)
    held = escrow.held_part(price, horde.settings.economy.escrow_share)
    assert await _figures(horde, requester) == (10_000, 0, 0)
    assert await _figures(horde, owner) == (price - held, held, price)
    gallery = await horde.client.get("/api/v2/gallery", headers=requester.headers)
    assert gallery.status_code == 200 and gallery.json()["images"] == []
    await _ledger_balances(horde)
