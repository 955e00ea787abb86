"""``/sharedkeys`` through HTTP: a key lends its owner's account out, within its budget, expiry and caps."""

from __future__ import annotations

from typing import Any

import httpx

from tests.live_server import Account, Horde

PARAMS = {"width": 512, "height": 512, "steps": 30}
"""512², 30 steps of k_euler_a: 7.61 kudos + 1 horde tax = 8.61 kudos per image."""
CHARGE = 8.61


def _as_key(key: str) -> Account:
    """The shared key used as an ``apikey``."""
    return Account(id=-1, username="holder", apikey=key)


async def _create(horde: Horde, owner: Account, **fields: Any) -> dict[str, Any]:
    response = await horde.client.put("/api/v2/sharedkeys", json=fields, headers=owner.headers)
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


async def _key(horde: Horde, key: str) -> dict[str, Any]:
    response = await horde.client.get(f"/api/v2/sharedkeys/{key}")
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


async def _me(horde: Horde, account: Account) -> dict[str, Any]:
    response = await horde.client.get("/api/v2/find_user", headers=account.headers)
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def _refused(response: httpx.Response, status: int, rc: str) -> None:
    assert (response.status_code, response.json()["rc"]) == (status, rc), response.text


async def _deliver(horde: Horde, worker_owner: Account) -> None:
    job = await horde.pop(worker_owner, max_pixels=512 * 512)
    assert len(job["ids"]) == 1, job
    submitted = await horde.upload_and_submit(worker_owner, job)
    assert submitted.status_code == 200, submitted.text


async def test_a_shared_key_generates_on_its_owner_s_account_and_counts_its_usage(horde: Horde) -> None:
    owner, worker_owner = await horde.register("owner", kudos=100), await horde.register("gpu")
    created = await _create(horde, owner, name="for my friend", kudos=50)
    key = created["id"]
    assert len(key) == 36 and created["username"] == owner.username
    assert (created["kudos"], created["utilized"], created["name"], created["expiry"]) == (50, 0, "for my friend", None)

    queued = await horde.generate(_as_key(key), params=PARAMS)
    assert queued.status_code == 202, queued.text
    await _deliver(horde, worker_owner)

    assert (await _me(horde, owner))["kudos"] == round(100 - CHARGE, 2)  # the owner pays, through the ledger
    assert (await _me(horde, owner))["usage"]["requests"] == 1  # the request ran as the owner
    assert (await _key(horde, key))["utilized"] == int(CHARGE)  # and the key's usage grew by the charge
    async with horde.db.unit_of_work() as session:
        from openhorde.storage.tables import SharedKey

        [row] = (await session.execute(SharedKey.__table__.select())).all()
        assert row.utilized_cents == round(CHARGE * 100)
        assert key not in (row.id, row.key_hash)  # only a keyed hash of the key is stored


async def test_a_shared_key_stops_at_its_budget(horde: Horde) -> None:
    owner, worker_owner = await horde.register("owner", kudos=1000), await horde.register("gpu")
    key = _as_key((await _create(horde, owner, kudos=20))["id"])

    _refused(await horde.generate(key, params={**PARAMS, "n": 3}), 403, "SharedKeyInsufficientKudos")
    assert (await horde.generate(key, params={**PARAMS, "n": 2})).status_code == 202  # 17.22 of 20
    # What the queued request will still cost is held against the key's budget.
    _refused(await horde.generate(key, params=PARAMS), 403, "SharedKeyInsufficientKudos")
    await _deliver(horde, worker_owner)
    await _deliver(horde, worker_owner)
    assert (await _key(horde, key.apikey))["utilized"] == int(2 * CHARGE)
    _refused(await horde.generate(key, params=PARAMS), 403, "SharedKeyInsufficientKudos")

    lowered = await horde.client.patch(f"/api/v2/sharedkeys/{key.apikey}", json={"kudos": 10}, headers=owner.headers)
    assert lowered.status_code == 200 and lowered.json()["kudos"] == 10
    _refused(await horde.generate(key, params=PARAMS), 403, "SharedKeyEmpty")
    raised = await horde.client.patch(f"/api/v2/sharedkeys/{key.apikey}", json={"kudos": -1}, headers=owner.headers)
    assert raised.status_code == 200 and raised.json()["kudos"] == -1
    assert (await horde.generate(key, params={**PARAMS, "n": 5})).status_code == 202  # -1: unlimited
    assert (await _me(horde, owner))["kudos"] == round(1000 - 2 * CHARGE, 2)


async def test_an_expired_shared_key_is_refused(horde: Horde) -> None:
    owner = await horde.register("owner", kudos=100)
    key = _as_key((await _create(horde, owner, expiry=0))["id"])  # expires at once
    _refused(await horde.generate(key), 403, "SharedKeyExpired")
    _refused(await horde.client.get("/api/v2/find_user", headers=key.headers), 403, "SharedKeyExpired")

    renewed = await horde.client.patch(f"/api/v2/sharedkeys/{key.apikey}", json={"expiry": 30}, headers=owner.headers)
    assert renewed.status_code == 200 and renewed.json()["expiry"].startswith("20")
    assert (await horde.generate(key)).status_code == 202


async def test_pixel_and_step_caps_are_enforced(horde: Horde) -> None:
    owner = await horde.register("owner", kudos=100)
    key = _as_key((await _create(horde, owner, max_image_pixels=512 * 512, max_image_steps=20))["id"])
    too_big = await horde.generate(key, params={"width": 512, "height": 576, "steps": 10})
    _refused(too_big, 400, "SharedKeyLimitExceeded")
    assert "pixels" in too_big.json()["message"]
    too_long = await horde.generate(key, params={"width": 512, "height": 512, "steps": 21})
    _refused(too_long, 400, "SharedKeyLimitExceeded")
    assert "steps" in too_long.json()["message"]
    assert (await horde.generate(key, params={"width": 512, "height": 512, "steps": 20})).status_code == 202
    # The owner's own key has no such caps.
    assert (await horde.generate(owner, params={"width": 512, "height": 576, "steps": 21})).status_code == 202


async def test_a_deleted_shared_key_stops_working(horde: Horde) -> None:
    owner = await horde.register("owner", kudos=100)
    key = _as_key((await _create(horde, owner))["id"])
    assert (await horde.generate(key)).status_code == 202
    deleted = await horde.client.delete(f"/api/v2/sharedkeys/{key.apikey}", headers=owner.headers)
    assert deleted.status_code == 200 and deleted.json() == {"message": "OK"}
    _refused(await horde.generate(key), 401, "InvalidAPIKey")
    _refused(await horde.client.get(f"/api/v2/sharedkeys/{key.apikey}"), 404, "SharedKeyNotFound")
    assert "sharedkey_ids" not in (await _me(horde, owner)) or (await _me(horde, owner))["sharedkey_ids"] == []


async def test_only_the_owner_sees_and_changes_their_keys(horde: Horde) -> None:
    owner, other = await horde.register("owner", kudos=100), await horde.register("other")
    first, second = (await _create(horde, owner))["id"], (await _create(horde, owner, name="second"))["id"]

    assert (await _me(horde, owner))["sharedkey_ids"] == [first, second]
    own_view = await horde.client.get(f"/api/v2/users/{owner.id}", headers=owner.headers)
    assert own_view.json()["sharedkey_ids"] == [first, second]
    for viewer in ({}, other.headers):
        seen = await horde.client.get(f"/api/v2/users/{owner.id}", headers=viewer)
        assert seen.status_code == 200 and "sharedkey_ids" not in seen.json()

    changed = await horde.client.patch(f"/api/v2/sharedkeys/{first}", json={"kudos": 1}, headers=other.headers)
    _refused(changed, 403, "NotOwner")
    _refused(await horde.client.delete(f"/api/v2/sharedkeys/{first}", headers=other.headers), 403, "NotOwner")
    assert (await _key(horde, first))["kudos"] == 5000  # unchanged (the reference's default budget)

    # A key's holder sees the owner's public details only, and cannot act as the owner elsewhere.
    holder = await _me(horde, _as_key(first))
    assert holder["username"] == f"{owner.username} (Shared Key: )" and "sharedkey_ids" not in holder
    assert "contact" not in holder
    _refused(
        await horde.client.put("/api/v2/sharedkeys", json={}, headers=_as_key(first).headers), 401, "InvalidAPIKey"
    )
    transfer = await horde.client.post(
        "/api/v2/kudos/transfer", json={"username": other.username, "amount": 5}, headers=_as_key(first).headers
    )
    _refused(transfer, 401, "InvalidAPIKey")


async def test_who_may_create_shared_keys_and_how_many(horde: Horde) -> None:
    anonymous = Account(id=0, username="Anonymous#0", apikey="0000000000")
    _refused(await horde.client.put("/api/v2/sharedkeys", json={}, headers=anonymous.headers), 403, "AnonForbidden")
    owner = await horde.register("owner")
    for _ in range(3):
        await _create(horde, owner)
    _refused(await horde.client.put("/api/v2/sharedkeys", json={}, headers=owner.headers), 403, "TooManySharedKeys")
    await horde.set_user(owner, is_trusted=True)
    await _create(horde, owner)  # trusted users may have 10
    bad = await horde.client.put("/api/v2/sharedkeys", json={"kudos": -2}, headers=owner.headers)
    assert bad.status_code == 400


async def test_an_unknown_uuid_is_not_a_key(horde: Horde) -> None:
    stranger = _as_key("6f1c9d7e-2b1a-4c3d-8e9f-0a1b2c3d4e5f")
    _refused(await horde.generate(stranger), 401, "InvalidAPIKey")
    _refused(await horde.client.get(f"/api/v2/sharedkeys/{stranger.apikey}"), 404, "SharedKeyNotFound")
