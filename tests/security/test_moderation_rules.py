"""Moderation rules: self-changes are audited, moderators cannot touch admins or raise
themselves, names are trimmed before their length is checked, and worker and team names are unique regardless
of case, in the database too, even when two creations race."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest

from openhorde.domain import accounts
from openhorde.storage.tables import User
from tests.live_server import Account, Horde


async def _set_role(horde: Horde, account: Account, role: str) -> None:
    await horde.set_user(account, **{role: True})


async def _row(horde: Horde, account: Account) -> User:
    async with horde.db.unit_of_work() as session:
        row = await session.get(User, account.id)
        assert row is not None
        return row


async def _put_user(horde: Horde, actor: Account, target: Account, **body: Any) -> httpx.Response:
    return await horde.client.put(f"/api/v2/users/{target.id}", json=body, headers=actor.headers)


async def _audit(horde: Horde, reader: Account) -> list[dict[str, Any]]:
    response = await horde.client.get("/api/v2/audit", headers=reader.headers)
    assert response.status_code == 200, response.text
    return response.json()["entries"]  # type: ignore[no-any-return]


def _refused(response: httpx.Response, status: int, rc: str) -> None:
    assert (response.status_code, response.json().get("rc")) == (status, rc), response.text


def _ok(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code in (200, 201), response.text
    return response.json()  # type: ignore[no-any-return]


async def _worker_id(horde: Horde, owner: Account, name: str) -> str:
    await horde.pop(owner, name=name)
    return str(_ok(await horde.client.get(f"/api/v2/workers/name/{name}"))["id"])


async def _pop(horde: Horde, owner: Account, name: str) -> httpx.Response:
    body = {"name": name, "models": ["stable_diffusion"]}
    return await horde.client.post("/api/v2/generate/pop", json=body, headers=owner.headers)


async def _create_team(horde: Horde, creator: Account, name: str) -> httpx.Response:
    return await horde.client.post("/api/v2/teams", json={"name": name}, headers=creator.headers)


# a. Self-changes are audited ---------------------------------------------------------------------------------


async def test_changes_to_one_s_own_account_are_audited(horde: Horde) -> None:
    moderator, member = await horde.register("moddy"), await horde.register("member")
    await _set_role(horde, moderator, "is_moderator")

    _ok(await _put_user(horde, member, member, contact="me@example.org", public_workers=True))
    _ok(await _put_user(horde, moderator, moderator, username="moddy-renamed"))

    entries = await _audit(horde, moderator)
    assert [(e["action"], e["actor_id"], e["target_id"], e["details"]) for e in entries] == [
        ("user.modify", moderator.id, str(moderator.id), {"username": "moddy-renamed"}),
        ("user.modify", member.id, str(member.id), {"contact": "me@example.org", "public_workers": True}),
    ]


# b. Moderators cannot change admins or raise themselves ------------------------------------------------------


ADMIN_FIELDS: list[dict[str, Any]] = [
    {"concurrency": 1},
    {"trusted": False},
    {"flagged": True},
    {"worker_invited": 0},
    {"admin_comment": "demoted"},
    {"username": "hijacked"},
    {"contact": "mod@example.org"},
    {"public_workers": True},
]


async def test_a_moderator_cannot_change_an_admin(horde: Horde) -> None:
    admin, moderator = await horde.register("root"), await horde.register("moddy")
    await horde.make_admin(admin)
    await _set_role(horde, moderator, "is_moderator")
    before = await _row(horde, admin)

    for body in ADMIN_FIELDS:
        _refused(await _put_user(horde, moderator, admin, **body), 403, "NotAdmin")
    after = await _row(horde, admin)
    assert (after.concurrency, after.username, after.contact, after.is_flagged, after.public_workers) == (
        before.concurrency,
        before.username,
        before.contact,
        before.is_flagged,
        before.public_workers,
    )

    # Admins keep full power over admins, themselves included.
    other_admin = await horde.register("root2")
    await horde.make_admin(other_admin)
    for body in ADMIN_FIELDS:
        _ok(await _put_user(horde, other_admin, admin, **body))
    _ok(await _put_user(horde, admin, admin, concurrency=200, trusted=True))
    assert (await _row(horde, admin)).concurrency == 200
    assert [e["actor_id"] for e in await _audit(horde, admin)].count(moderator.id) == 0


SELF_RAISES: list[dict[str, Any]] = [
    {"concurrency": 500},
    {"worker_invited": 100},
    {"trusted": True},
    {"customizer": True},
    {"vpn": True},
    {"service": True},
    {"education": True},
    {"special": True},
    {"flagged": False},
    {"admin_comment": "self-approved"},
]


async def test_a_moderator_cannot_raise_their_own_roles_trust_or_concurrency(horde: Horde) -> None:
    admin, moderator = await horde.register("root"), await horde.register("moddy")
    colleague = await horde.register("colleague")
    await horde.make_admin(admin)
    for account in (moderator, colleague):
        await _set_role(horde, account, "is_moderator")

    for body in SELF_RAISES:
        _refused(await _put_user(horde, moderator, moderator, **body), 403, "CannotModifyOwnPrivileges")
    _refused(await _put_user(horde, moderator, moderator, kudos=100), 403, "NotAdmin")
    _refused(await _put_user(horde, moderator, moderator, moderator=True), 403, "NotAdmin")
    row = await _row(horde, moderator)
    assert (row.concurrency, row.worker_invited, row.is_trusted, row.is_customizer) == (30, 0, False, False)

    # Their own username, contact and public_workers stay theirs to change.
    changed = _ok(await _put_user(horde, moderator, moderator, username="moddy2", contact="m@x", public_workers=True))
    assert changed == {"username": f"moddy2#{moderator.id}", "contact": "m@x", "public_workers": True}
    # Another (non-admin) moderator and an admin still may change a moderator.
    _ok(await _put_user(horde, colleague, moderator, concurrency=40))
    _ok(await _put_user(horde, admin, moderator, trusted=True))
    assert (await _row(horde, moderator)).concurrency == 40


# c. Names are trimmed before their length is checked ---------------------------------------------------------


async def test_usernames_are_trimmed_before_their_length_is_checked(horde: Horde) -> None:
    longest = "u" * 30
    created = _ok(await horde.client.post("/api/v2/register", json={"username": f"   {longest}   "}))
    assert created["username"] == f"{longest}#{created['id']}"
    refused = await horde.client.post("/api/v2/register", json={"username": "   x   "})
    assert refused.status_code == 400, refused.text
    user = await horde.register("renamer")
    assert _ok(await _put_user(horde, user, user, username=f"  {longest}  "))["username"] == f"{longest}#{user.id}"
    assert (await _put_user(horde, user, user, username="  y  ")).status_code == 400


async def test_worker_names_are_trimmed_before_their_length_is_checked(horde: Horde) -> None:
    owner = await horde.register("owner")
    longest = "w" * 100
    assert (await _pop(horde, owner, f"  {longest}  ")).status_code == 200
    assert _ok(await horde.client.get(f"/api/v2/workers/name/{longest}"))["name"] == longest
    assert (await _pop(horde, owner, "      ")).status_code == 400

    worker_id = await _worker_id(horde, owner, "renamable")
    url = f"/api/v2/workers/{worker_id}"
    short = await horde.client.put(url, json={"name": "  ab  "}, headers=owner.headers)
    assert short.status_code == 400, short.text
    assert _ok(await horde.client.get(url))["name"] == "renamable"
    assert _ok(await horde.client.put(url, json={"name": "  tidy-name  "}, headers=owner.headers)) == {
        "name": "tidy-name"
    }


async def test_team_names_are_trimmed_before_their_length_is_checked(horde: Horde) -> None:
    creator = await horde.register("captain")
    await _set_role(horde, creator, "is_trusted")
    for padded in ("  x  ", "     "):
        refused = await _create_team(horde, creator, padded)
        assert refused.status_code == 400, refused.text
    team = _ok(await _create_team(horde, creator, "  Crew  "))
    assert team["name"] == "Crew"
    url = f"/api/v2/teams/{team['id']}"
    assert (await horde.client.patch(url, json={"name": "  y  "}, headers=creator.headers)).status_code == 400
    assert _ok(await horde.client.get(url))["name"] == "Crew"
    assert _ok(await horde.client.get("/api/v2/teams"))[0]["name"] == "Crew"


async def test_shared_key_names_are_trimmed_before_their_length_is_checked(horde: Horde) -> None:
    owner = await horde.register("lender")
    refused = await horde.client.put("/api/v2/sharedkeys", json={"name": "  k  "}, headers=owner.headers)
    assert refused.status_code == 400, refused.text
    key = _ok(await horde.client.put("/api/v2/sharedkeys", json={"name": "  for Bob  "}, headers=owner.headers))
    assert key["name"] == "for Bob"
    url = f"/api/v2/sharedkeys/{key['id']}"
    assert (await horde.client.patch(url, json={"name": "  z  "}, headers=owner.headers)).status_code == 400
    assert _ok(await horde.client.get(url))["name"] == "for Bob"


async def test_the_domain_checks_trimmed_names_too(horde: Horde) -> None:
    """Callers that skip the HTTP bodies (the command line, other domain code) get the same rule."""
    from openhorde.domain import sharedkeys, teams, workers
    from openhorde.errors import BadRequest

    owner = await horde.register("owner")
    await _set_role(horde, owner, "is_trusted")
    worker_id = await _worker_id(horde, owner, "renamable")
    async with horde.db.store() as store:
        user = await accounts.get_user(store, owner.id)
        worker = await workers.get_worker(store, worker_id)
        attempts: list[tuple[Callable[[], Awaitable[object]], str]] = [
            (lambda: teams.create_team(store, user, "  x  ", None), "InvalidTeamName"),
            (
                lambda: workers.update_worker(store, worker, user, workers.WorkerChanges(name="  ab  ")),
                "InvalidWorkerName",
            ),
            (
                lambda: sharedkeys.create(
                    store, horde.settings, horde.ctx.secret, user, sharedkeys.SharedKeyFields(name="  k  ")
                ),
                "InvalidSharedKeyName",
            ),
        ]
        for attempt, rc in attempts:
            with pytest.raises(BadRequest) as refused:
                await attempt()
            assert refused.value.rc == rc


# d. Worker and team names are unique regardless of case ------------------------------------------------------


@pytest.mark.both_databases  # the lower(name) unique index differs between the engines
async def test_worker_names_are_unique_regardless_of_case(horde: Horde) -> None:
    alice, bob = await horde.register("alice"), await horde.register("bob")
    gpu_id = await _worker_id(horde, alice, "Alice-GPU")

    for owner, name in ((bob, "alice-gpu"), (alice, "ALICE-GPU")):
        _refused(await _pop(horde, owner, name), 400, "WorkerNameAlreadyExists")
    assert (await _pop(horde, alice, "Alice-GPU")).status_code == 200, "a worker popping as itself finds itself"
    workers = _ok(await horde.client.get("/api/v2/workers"))
    assert [(w["id"], w["name"]) for w in workers] == [(gpu_id, "Alice-GPU")]

    bob_worker = await _worker_id(horde, bob, "bob-box")
    taken = await horde.client.put(f"/api/v2/workers/{bob_worker}", json={"name": "aLiCe-gpu"}, headers=bob.headers)
    _refused(taken, 400, "WorkerNameAlreadyExists")
    own_case = await horde.client.put(f"/api/v2/workers/{gpu_id}", json={"name": "alice-gpu"}, headers=alice.headers)
    assert _ok(own_case) == {"name": "alice-gpu"}, "a worker may change the case of its own name"
    assert (await _pop(horde, alice, "alice-gpu")).status_code == 200


@pytest.mark.both_databases  # the lower(name) unique index differs between the engines
async def test_team_names_are_unique_regardless_of_case(horde: Horde) -> None:
    creator = await horde.register("captain")
    await _set_role(horde, creator, "is_trusted")
    first = _ok(await _create_team(horde, creator, "Direct Action"))
    _refused(await _create_team(horde, creator, "direct ACTION"), 400, "TeamNameAlreadyExists")

    second = _ok(await _create_team(horde, creator, "Other Crew"))
    renamed = await horde.client.patch(
        f"/api/v2/teams/{second['id']}", json={"name": "DIRECT action"}, headers=creator.headers
    )
    _refused(renamed, 400, "TeamNameAlreadyExists")
    own_case = await horde.client.patch(
        f"/api/v2/teams/{first['id']}", json={"name": "direct action"}, headers=creator.headers
    )
    assert _ok(own_case)["name"] == "direct action"
    assert sorted(t["name"] for t in _ok(await horde.client.get("/api/v2/teams"))) == ["Other Crew", "direct action"]


RACERS = ("Racer-GPU", "racer-gpu", "RACER-GPU", "Racer-gpu", "racer-GPU", "rAcEr-GpU")


def _one_winner(responses: list[httpx.Response], rc: str) -> None:
    statuses = sorted((r.status_code, r.json().get("rc")) for r in responses)
    assert statuses == [(200, None)] + [(400, rc)] * (len(responses) - 1), [r.text for r in responses]


def _no_server_errors(caplog: pytest.LogCaptureFixture) -> None:
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert not errors, [r.getMessage() for r in errors]


@pytest.mark.both_databases  # parallel inserts race for the lower(name) unique index
async def test_parallel_worker_creations_differing_by_case_have_one_winner(
    horde: Horde, caplog: pytest.LogCaptureFixture
) -> None:
    owners = [await horde.register(f"racer{i}") for i in range(len(RACERS))]
    responses = await asyncio.gather(*(_pop(horde, owner, name) for owner, name in zip(owners, RACERS, strict=True)))
    statuses = sorted((r.status_code, r.json().get("rc")) for r in responses)
    assert statuses == [(200, None)] + [(400, "WorkerNameAlreadyExists")] * (len(RACERS) - 1), statuses
    assert len(_ok(await horde.client.get("/api/v2/workers"))) == 1

    renamed = [await _worker_id(horde, owner, f"spare-{i}") for i, owner in enumerate(owners[:2])]
    renames = await asyncio.gather(
        *(
            horde.client.put(f"/api/v2/workers/{worker_id}", json={"name": name}, headers=owner.headers)
            for worker_id, owner, name in zip(renamed, owners[:2], ("Twin-Box", "twin-box"), strict=True)
        )
    )
    _one_winner(list(renames), "WorkerNameAlreadyExists")
    _no_server_errors(caplog)


@pytest.mark.both_databases  # parallel inserts race for the lower(name) unique index
async def test_parallel_team_creations_differing_by_case_have_one_winner(
    horde: Horde, caplog: pytest.LogCaptureFixture
) -> None:
    creators = [await horde.register(f"captain{i}") for i in range(len(RACERS))]
    for creator in creators:
        await _set_role(horde, creator, "is_trusted")
    responses = await asyncio.gather(
        *(_create_team(horde, creator, name) for creator, name in zip(creators, RACERS, strict=True))
    )
    _one_winner(list(responses), "TeamNameAlreadyExists")
    assert len(_ok(await horde.client.get("/api/v2/teams"))) == 1

    spares = [_ok(await _create_team(horde, creator, f"Spare {i}"))["id"] for i, creator in enumerate(creators[:2])]
    renames = await asyncio.gather(
        *(
            horde.client.patch(f"/api/v2/teams/{team_id}", json={"name": name}, headers=creator.headers)
            for team_id, creator, name in zip(spares, creators[:2], ("Twin Crew", "twin crew"), strict=True)
        )
    )
    _one_winner(list(renames), "TeamNameAlreadyExists")
    _no_server_errors(caplog)
