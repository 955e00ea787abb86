"""``/workers``: listing, lookup, owner changes, deletion, rewards and staleness through HTTP."""

from __future__ import annotations

import time
from typing import Any

import pytest
from sqlalchemy import update

from openhorde.domain import accounts, workers
from openhorde.storage.tables import Worker
from tests.live_server import Account, Horde


async def _worker_with_owner(
    horde: Horde, name: str = "worker-1", owner: str = "wally"
) -> tuple[Account, dict[str, Any]]:
    """Register an owner, pop once as ``name`` so the worker exists, and return its details."""
    account = await horde.register(owner)
    await horde.pop(account, name=name)
    response = await horde.client.get(f"/api/v2/workers/name/{name}")
    assert response.status_code == 200, response.text
    return account, response.json()


async def _make_moderator(horde: Horde, account: Account) -> None:
    await horde.set_user(account, is_moderator=True)


async def test_worker_is_listed_after_its_first_pop(horde: Horde) -> None:
    assert (await horde.client.get("/api/v2/workers")).json() == []
    owner = await horde.register("wally")
    await horde.pop(owner, name="lister", models=["stable_diffusion", "stable_diffusion_inpainting"])

    listed = (await horde.client.get("/api/v2/workers")).json()
    assert len(listed) == 1
    worker = listed[0]
    assert worker["name"] == "lister" and worker["online"] is True and worker["type"] == "image"
    assert worker["models"] == ["stable_diffusion", "stable_diffusion_inpainting"]
    assert worker["requests_fulfilled"] == 0 and worker["maintenance_mode"] is False
    assert "post-processing" in worker


async def test_worker_type_filter(horde: Horde) -> None:
    await _worker_with_owner(horde)
    everything = await horde.client.get("/api/v2/workers", params={"type": ""})
    assert everything.status_code == 200 and len(everything.json()) == 1
    assert len((await horde.client.get("/api/v2/workers", params={"type": "image"})).json()) == 1
    text = await horde.client.get("/api/v2/workers", params={"type": "text"})
    assert text.status_code == 200 and text.json() == []


async def test_worker_by_id_and_by_name(horde: Horde) -> None:
    _, details = await _worker_with_owner(horde, name="findme")
    by_id = await horde.client.get(f"/api/v2/workers/{details['id']}")
    assert by_id.status_code == 200 and by_id.json()["name"] == "findme"
    assert by_id.json() == details

    for path in ("/api/v2/workers/00000000-0000-0000-0000-000000000000", "/api/v2/workers/name/nobody"):
        missing = await horde.client.get(path)
        assert missing.status_code == 404, path
        assert missing.json()["rc"] == "WorkerNotFound"


async def test_owner_changes_maintenance_info_and_name(horde: Horde) -> None:
    owner, details = await _worker_with_owner(horde, name="old-name")
    url = f"/api/v2/workers/{details['id']}"

    changed = await horde.client.put(
        url, json={"maintenance": True, "maintenance_msg": "back soon"}, headers=owner.headers
    )
    assert changed.status_code == 200, changed.text
    assert changed.json() == {"maintenance": True}
    assert (await horde.client.get(url)).json()["maintenance_mode"] is True

    changed = await horde.client.put(url, json={"info": "a 3090 in a closet"}, headers=owner.headers)
    assert changed.json() == {"info": "a 3090 in a closet"}
    assert (await horde.client.get(url)).json()["info"] == "a 3090 in a closet"

    renamed = await horde.client.put(url, json={"name": "new-name"}, headers=owner.headers)
    assert renamed.status_code == 200 and renamed.json() == {"name": "new-name"}
    assert (await horde.client.get("/api/v2/workers/name/new-name")).json()["id"] == details["id"]
    assert (await horde.client.get("/api/v2/workers/name/old-name")).status_code == 404

    back = await horde.client.put(url, json={"maintenance": False}, headers=owner.headers)
    assert back.status_code == 200 and (await horde.client.get(url)).json()["maintenance_mode"] is False


async def test_rename_to_a_taken_name_or_change_nothing_is_400(horde: Horde) -> None:
    owner, details = await _worker_with_owner(horde, name="first")
    await horde.pop(owner, name="second")
    url = f"/api/v2/workers/{details['id']}"

    taken = await horde.client.put(url, json={"name": "second"}, headers=owner.headers)
    assert taken.status_code == 400 and taken.json()["rc"] == "WorkerNameAlreadyExists"
    assert (await horde.client.get(url)).json()["name"] == "first"

    same = await horde.client.put(url, json={"name": "first"}, headers=owner.headers)
    assert same.status_code == 200, "renaming a worker to its own name is not a collision"

    empty = await horde.client.put(url, json={}, headers=owner.headers)
    assert empty.status_code == 400 and empty.json()["rc"] == "NoWorkerModSelected"


async def test_only_the_owner_changes_and_only_moderators_pause(horde: Horde) -> None:
    owner, details = await _worker_with_owner(horde)
    stranger = await horde.register("mallory")
    url = f"/api/v2/workers/{details['id']}"

    foreign = await horde.client.put(url, json={"info": "pwned"}, headers=stranger.headers)
    assert foreign.status_code == 403 and foreign.json()["rc"] == "NotOwner"
    foreign_delete = await horde.client.delete(url, headers=stranger.headers)
    assert foreign_delete.status_code == 403 and foreign_delete.json()["rc"] == "NotOwner"

    paused = await horde.client.put(url, json={"paused": True}, headers=owner.headers)
    assert paused.status_code == 403 and paused.json()["rc"] == "NotModerator"
    unauthenticated = await horde.client.put(url, json={"info": "x"})
    assert unauthenticated.status_code == 401

    after = (await horde.client.get(url)).json()
    assert "info" not in after or after["info"] != "pwned"
    assert after.get("paused") in (None, False)

    moderator = await horde.register("mod")
    await _make_moderator(horde, moderator)
    by_mod = await horde.client.put(url, json={"paused": True}, headers=moderator.headers)
    assert by_mod.status_code == 200 and by_mod.json() == {"paused": True}
    assert (await horde.client.get(url)).json()["paused"] is True


async def test_owner_deletes_a_worker(horde: Horde) -> None:
    owner, details = await _worker_with_owner(horde, name="doomed")
    url = f"/api/v2/workers/{details['id']}"
    deleted = await horde.client.delete(url, headers=owner.headers)
    assert deleted.status_code == 200, deleted.text
    assert deleted.json() == {"deleted_id": details["id"], "deleted_name": "doomed"}
    assert (await horde.client.get(url)).json()["rc"] == "WorkerNotFound"
    assert (await horde.client.get("/api/v2/workers")).json() == []
    again = await horde.client.delete(url, headers=owner.headers)
    assert again.status_code == 404


async def test_worker_with_finished_jobs_can_be_deleted(horde: Horde) -> None:
    requester = await horde.register("alice")
    owner = await horde.register("wally")
    request_id = (await horde.generate(requester)).json()["id"]
    job = await horde.pop(owner, name="veteran")
    assert (await horde.upload_and_submit(owner, job)).status_code == 200
    worker_id = (await horde.client.get("/api/v2/workers/name/veteran")).json()["id"]

    assert (await horde.client.delete(f"/api/v2/workers/{worker_id}", headers=owner.headers)).status_code == 200
    status = (await horde.client.get(f"/api/v2/generate/status/{request_id}")).json()
    assert status["done"] and status["generations"][0]["worker_name"] == "veteran"


async def test_fulfilments_and_rewards_grow_after_a_submit(horde: Horde) -> None:
    requester = await horde.register("alice")
    owner, before = await _worker_with_owner(horde)
    assert before["requests_fulfilled"] == 0 and before["kudos_rewards"] == 0
    assert before["performance"] == "No requests fulfilled yet"

    await horde.generate(requester, params={"width": 512, "height": 512, "steps": 20})
    job = await horde.pop(owner)
    submitted = await horde.upload_and_submit(owner, job)
    assert submitted.status_code == 200, submitted.text

    after = (await horde.client.get(f"/api/v2/workers/{before['id']}")).json()
    assert after["requests_fulfilled"] == 1
    assert after["kudos_rewards"] > 0 and after["kudos_details"]["generated"] > 0
    assert after["megapixelsteps_generated"] == 5  # 512 × 512 × 20 steps
    assert after["performance"].endswith("megapixelsteps per second")
    owner_details = (await horde.client.get("/api/v2/find_user", headers=owner.headers)).json()
    assert owner_details["contributions"]["fulfillments"] == 1
    assert owner_details["kudos"] > 0


async def test_worker_goes_offline_after_the_stale_delay(horde: Horde) -> None:
    _, details = await _worker_with_owner(horde)
    assert details["online"] is True
    stale = time.time() - horde.settings.queue.worker_stale_seconds - 1
    async with horde.db.unit_of_work() as session:
        await session.execute(update(Worker).where(Worker.id == details["id"]).values(last_check_in_at=stale))

    assert (await horde.client.get(f"/api/v2/workers/{details['id']}")).json()["online"] is False
    assert (await horde.client.get("/api/v2/workers")).json()[0]["online"] is False
    assert (await horde.client.get("/api/v2/status/performance")).json()["worker_count"] == 0


async def test_worker_with_a_job_in_progress_cannot_be_deleted(horde: Horde) -> None:
    owner = await horde.register("busyowner")
    requester = await horde.register("asker")
    await horde.generate(requester)
    job = await horde.pop(owner, name="busy-worker")
    worker_id = (await horde.client.get("/api/v2/workers/name/busy-worker")).json()["id"]
    locked = await horde.client.delete(f"/api/v2/workers/{worker_id}", headers=owner.headers)
    assert locked.status_code == 423 and locked.json()["rc"] == "Locked"
    assert (await horde.upload_and_submit(owner, job)).status_code == 200
    assert (await horde.client.delete(f"/api/v2/workers/{worker_id}", headers=owner.headers)).status_code == 200


@pytest.mark.both_databases
async def test_a_worker_is_remembered_only_once_its_first_check_in_commits(horde: Horde) -> None:
    """A process answers a worker's pops from memory; remembering a row its transaction never committed would let
    the next pop hand out jobs of a worker that does not exist (a foreign-key error, a 500)."""
    account = await horde.register("wally")
    with pytest.raises(RuntimeError):
        async with horde.db.store() as store:
            owner = await accounts.get_user(store, account.id)
            await workers.check_in(store, horde.ctx, owner, workers.CheckIn(name="first-pop"))
            assert horde.ctx.workers.get("first-pop") is None, "remembered before its transaction committed"
            raise RuntimeError("the pop fails after the check-in: its transaction rolls back")
    assert horde.ctx.workers.get("first-pop") is None

    created = await horde.generate(account, prompt="a lighthouse")
    assert created.status_code == 202, created.text
    job = await horde.pop(account, name="first-pop")
    assert job["id"] is not None, job
    assert horde.ctx.workers.get("first-pop") is not None, "forgotten although its row was committed"
