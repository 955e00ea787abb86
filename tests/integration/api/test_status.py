"""``/status/*``, the OpenAPI document, error bodies of unknown routes, and ``/generate/check`` progress."""

from __future__ import annotations

import time
from typing import Any, get_args

import pytest
from sqlalchemy import update

from openhorde import __version__
from openhorde.api.schemas.generate import Sampler
from openhorde.storage.tables import Worker
from tests.live_server import Horde

SD = ["stable_diffusion"]


async def _check(horde: Horde, request_id: str) -> dict[str, Any]:
    response = await horde.client.get(f"/api/v2/generate/check/{request_id}")
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


async def test_heartbeat(horde: Horde) -> None:
    response = await horde.client.get("/api/v2/status/heartbeat")
    assert response.status_code == 200
    assert response.json() == {"message": "OK", "version": __version__}


async def test_models_lists_served_models_and_their_queue(horde: Horde) -> None:
    assert (await horde.client.get("/api/v2/status/models")).json() == []
    owner = await horde.register("wally")
    requester = await horde.register("alice")
    await horde.pop(owner, threads=2)

    [served] = (await horde.client.get("/api/v2/status/models")).json()
    assert served["name"] == "stable_diffusion" and served["type"] == "image"
    assert served["count"] == 2 and served["performance"] > 0
    assert served["jobs"] == 0 and served["queued"] == 0 and served["eta"] == 0

    created = await horde.generate(requester, models=SD, params={"width": 512, "height": 512, "steps": 20, "n": 3})
    assert created.status_code == 202, created.text
    [queued] = (await horde.client.get("/api/v2/status/models")).json()
    assert queued["jobs"] == 3 and queued["queued"] > 0 and queued["eta"] > 0

    assert (await horde.client.get("/api/v2/status/models", params={"min_count": 3})).json() == []
    assert len((await horde.client.get("/api/v2/status/models", params={"max_count": 2})).json()) == 1
    assert (await horde.client.get("/api/v2/status/models", params={"type": "text"})).json() == []


async def test_models_known_lists_the_catalogue(horde: Horde) -> None:
    owner = await horde.register("wally")
    await horde.pop(owner)
    known = {
        m["name"]: m for m in (await horde.client.get("/api/v2/status/models", params={"model_state": "known"})).json()
    }
    assert known["stable_diffusion_inpainting"]["count"] == 0
    assert known["stable_diffusion"]["count"] == 1
    assert len(known) > 2
    custom = await horde.client.get("/api/v2/status/models", params={"model_state": "custom"})
    assert custom.status_code == 200 and custom.json() == []
    wrong = await horde.client.get("/api/v2/status/models", params={"model_state": "bogus"})
    assert wrong.status_code == 400 and wrong.json()["rc"] == "ValidationError"


async def test_one_model_is_a_one_element_list(horde: Horde) -> None:
    owner = await horde.register("wally")
    await horde.pop(owner)
    one = (await horde.client.get("/api/v2/status/models/stable_diffusion")).json()
    assert isinstance(one, list) and len(one) == 1
    assert one[0]["name"] == "stable_diffusion" and one[0]["count"] == 1
    idle = (await horde.client.get("/api/v2/status/models/stable_diffusion_inpainting")).json()
    assert len(idle) == 1 and idle[0]["count"] == 0
    assert (await horde.client.get("/api/v2/status/models/no such model")).json() == []


async def test_performance_counts_queue_workers_and_recent_work(horde: Horde) -> None:
    empty = (await horde.client.get("/api/v2/status/performance")).json()
    assert empty["queued_requests"] == 0 and empty["worker_count"] == 0 and empty["past_minute_megapixelsteps"] == 0
    requester = await horde.register("alice")
    owner = await horde.register("wally")
    params = {"width": 512, "height": 512, "steps": 20}
    await horde.generate(requester, params={**params, "n": 1})
    await horde.generate(requester, params={**params, "n": 3})

    queued = (await horde.client.get("/api/v2/status/performance")).json()
    assert queued["queued_requests"] == 4
    assert queued["queued_megapixelsteps"] > 4 * 5  # 512 × 512 × 20 steps ≈ 5.2 megapixelsteps each
    assert queued["worker_count"] == 0

    job = await horde.pop(owner, threads=3)
    assert (await horde.upload_and_submit(owner, job)).status_code == 200
    after = (await horde.client.get("/api/v2/status/performance")).json()
    assert after["worker_count"] == 1 and after["thread_count"] == 3
    assert after["past_minute_megapixelsteps"] > 5
    assert after["queued_requests"] == 3
    assert after["queued_megapixelsteps"] < queued["queued_megapixelsteps"]


async def test_modes(horde: Horde) -> None:
    response = await horde.client.get("/api/v2/status/modes")
    assert response.status_code == 200
    assert response.json()["maintenance_mode"] is False and response.json()["invite_only_mode"] is False


async def test_openapi_document_is_served(horde: Horde) -> None:
    response = await horde.client.get("/api/swagger.json")
    assert response.status_code == 200
    document = response.json()
    assert "/api/v2/generate/async" in document["paths"]
    assert "/api/v2/workers/{worker_id}" in document["paths"]


async def test_unknown_path_and_wrong_method_answer_json_with_rc(horde: Horde) -> None:
    missing = await horde.client.get("/api/v2/no/such/thing")
    assert missing.status_code == 404
    assert missing.headers["content-type"].startswith("application/json")
    assert set(missing.json()) == {"message", "rc"} and missing.json()["rc"]

    wrong = await horde.client.delete("/api/v2/status/heartbeat")
    assert wrong.status_code == 405
    assert wrong.headers["content-type"].startswith("application/json")
    assert wrong.json()["rc"] == "MethodNotAllowed" and wrong.json()["message"]


async def test_check_says_whether_a_worker_could_serve_it(horde: Horde) -> None:
    requester = await horde.register("alice")
    owner = await horde.register("wally")
    created = await horde.generate(requester, models=SD)
    assert [w["code"] for w in created.json()["warnings"]] == ["NoAvailableWorker"]
    lonely = await _check(horde, created.json()["id"])
    assert lonely["is_possible"] is False and lonely["waiting"] == 1 and lonely["done"] is False
    assert lonely["queue_position"] == 0 and lonely["wait_time"] == 0

    assert (await horde.pop(owner, name="sdxl-only", models=["SDXL 1.0"]))["ids"] == []
    assert (await _check(horde, created.json()["id"]))["is_possible"] is False, "a worker of another model"

    assert len((await horde.pop(owner, name="sd-worker"))["ids"]) == 1  # live now, and busy with that one
    later = await horde.generate(requester, models=SD)
    assert "warnings" not in later.json()
    possible = await _check(horde, later.json()["id"])
    assert possible["is_possible"] is True and possible["processing"] == 0 and possible["waiting"] == 1

    stale = time.time() - horde.settings.queue.worker_stale_seconds - 1
    async with horde.db.unit_of_work() as session:
        await session.execute(update(Worker).values(last_check_in_at=stale))
    orphan = (await horde.generate(requester, models=SD)).json()
    assert [w["code"] for w in orphan["warnings"]] == ["NoAvailableWorker"]
    assert (await _check(horde, orphan["id"]))["is_possible"] is False, "a worker gone stale serves nothing"


async def test_queue_position_and_wait_time(horde: Horde) -> None:
    requester = await horde.register("alice")
    owner = await horde.register("wally")
    assert (await horde.pop(owner))["ids"] == []  # the worker is live, with nothing to do yet
    first = (await horde.generate(requester)).json()["id"]
    second = (await horde.generate(requester, params={"width": 512, "height": 512, "steps": 30})).json()["id"]
    third = (await horde.generate(requester)).json()["id"]

    head, middle, tail = [await _check(horde, i) for i in (first, second, third)]
    assert head["is_possible"] and middle["is_possible"] and tail["is_possible"]
    assert (head["queue_position"], middle["queue_position"], tail["queue_position"]) == (1, 2, 3)
    assert 0 < head["wait_time"] <= middle["wait_time"] <= tail["wait_time"]
    assert tail["wait_time"] >= 512 * 512 * 30 / 1_000_000, "the big request ahead counts in the wait"


async def test_queue_position_skips_requests_no_live_worker_could_take(horde: Horde) -> None:
    """Requests for a model no live worker serves, or larger than any live worker takes, are not counted ahead."""
    requester = await horde.register("alice")
    owner = await horde.register("wally")
    assert (await horde.pop(owner, max_pixels=512 * 512))["ids"] == []  # live: stable_diffusion up to 512x512
    other_model = (await horde.generate(requester, models=["SDXL 1.0"])).json()["id"]
    too_large = (await horde.generate(requester, params={"width": 1024, "height": 1024, "steps": 5})).json()["id"]
    servable = (await horde.generate(requester, models=SD)).json()["id"]

    mine = await _check(horde, servable)
    assert mine["is_possible"] and mine["queue_position"] == 1
    for request_id in (other_model, too_large):
        theirs = await _check(horde, request_id)
        assert theirs["is_possible"] is False and theirs["queue_position"] == 0


@pytest.mark.both_databases  # the workers' blacklists and priority users are read with each engine's JSON functions
async def test_is_possible_applies_every_rule_of_the_pop(horde: Horde) -> None:
    """``is_possible``, ``eligible_workers`` and ``eligible_worker_threads`` count the live workers that would
    really take the request: censoring, trust, blacklists, upfront kudos with priority users."""
    owner = await horde.register("wally")
    alice = await horde.register("alice")
    bob = await horde.register("bob")
    await horde.pop(owner, "cannot-censor", threads=2, can_censor_nsfw=False, blacklist=["castle"])
    await horde.pop(owner, "picky", threads=3, require_upfront_kudos=True, priority_usernames=[alice.username])

    async def eligibility(account: Any, **overrides: Any) -> tuple[bool, int, int, bool]:
        body = await _check(horde, (await horde.generate(account, **overrides)).json()["id"])
        return body["is_possible"], body["eligible_workers"], body["eligible_worker_threads"], body["might_stall"]

    assert await eligibility(alice) == (True, 2, 5, False)
    assert await eligibility(alice, censor_nsfw=True, nsfw=False) == (True, 1, 3, False)
    assert await eligibility(alice, prompt="a castle by the sea") == (True, 1, 3, False)
    assert await eligibility(alice, trusted_workers=True) == (False, 0, 0, True)
    assert await eligibility(bob) == (True, 1, 2, False)
    assert await eligibility(bob, censor_nsfw=True, nsfw=False) == (False, 0, 0, True)
    await horde.set_user(owner, is_trusted=True)
    assert await eligibility(alice, trusted_workers=True) == (True, 2, 5, False)


@pytest.mark.both_databases  # PostgreSQL counts them in the statement that queues the request, SQLite after it
async def test_the_count_a_new_request_takes_follows_its_models_and_its_targets(horde: Horde) -> None:
    """The eligible workers counted as a request is queued (and answering its first checks): any model when it
    names none, only the models it names, only the workers it targets."""
    owner = await horde.register("wally")
    alice = await horde.register("alice")
    await horde.pop(owner, "sd", threads=2)
    await horde.pop(owner, "sdxl", threads=3, models=["SDXL 1.0"])
    sdxl_id = next(w["id"] for w in (await horde.client.get("/api/v2/workers")).json() if w["name"] == "sdxl")

    async def counted(**overrides: Any) -> tuple[int, int, list[str]]:
        created = (await horde.generate(alice, **overrides)).json()
        body = await _check(horde, created["id"])
        warnings = [w["code"] for w in created.get("warnings", [])]
        return body["eligible_workers"], body["eligible_worker_threads"], warnings

    assert await counted() == (2, 5, [])
    assert await counted(models=["SDXL 1.0"]) == (1, 3, [])
    assert await counted(models=["SDXL 1.0", "stable_diffusion"]) == (2, 5, [])
    assert await counted(models=["Deliberate"]) == (0, 0, ["NoAvailableWorker"])
    assert await counted(workers=[sdxl_id]) == (1, 3, [])
    assert await counted(workers=[sdxl_id], worker_blacklist=True) == (1, 2, [])


async def test_a_request_in_progress_stays_possible_when_its_worker_leaves(horde: Horde) -> None:
    owner = await horde.register("wally")
    requester = await horde.register("alice")
    request_id = (await horde.generate(requester, params={"width": 64, "height": 64, "steps": 5, "n": 2})).json()["id"]
    assert (await horde.pop(owner))["ids"]
    async with horde.db.unit_of_work() as session:
        await session.execute(update(Worker).values(last_check_in_at=time.time() - 3600))
    body = await _check(horde, request_id)
    assert (body["processing"], body["waiting"], body["is_possible"], body["eligible_workers"]) == (1, 1, True, 0)


async def test_sampler_constraints_list_every_accepted_sampler_with_its_work_per_step(horde: Horde) -> None:
    response = await horde.client.get("/api/v2/status/sampler_constraints")
    assert response.status_code == 200, response.text
    document = response.json()
    assert document["schema_version"] == "1.0"
    samplers = document["samplers"]
    assert set(samplers) == set(get_args(Sampler))
    assert samplers["k_euler"]["work_profile"] == {"kind": "fixed_rate", "marginal_work_units_per_trajectory_step": 1}
    assert samplers["k_heun"]["work_profile"]["marginal_work_units_per_trajectory_step"] == 2
    assert samplers["k_dpm_adaptive"]["work_profile"] == {"kind": "adaptive", "estimated_work_units_per_request": 40}
    assert all(s["accepted_settings"] == {} and s["applies_cfg_pp"] is False for s in samplers.values())
    assert set(document["presentation_tiers"]["recommended"]) <= set(samplers)
    assert document["hard_constraints"] == {
        "rejected_sampler_scheduler_pairings": [],
        "scheduler_baseline_applicability": {},
    }

    # The work per step is what pricing counts: a second-order sampler costs more than a first-order one.
    user = await horde.register("pricer")
    prices = {}
    for name in ("k_euler", "k_heun"):
        dry = await horde.generate(
            user, dry_run=True, params={"sampler_name": name, "steps": 30, "width": 512, "height": 512}
        )
        assert dry.status_code == 200, dry.text
        prices[name] = dry.json()["kudos"]
    assert prices["k_heun"] > prices["k_euler"]


@pytest.mark.parametrize("horde_settings", [{"rate_limits": "on", "rate_limit_default": "90/minute, 2/second"}])
async def test_style_contract_publishes_placeholders_and_the_write_limits(horde: Horde) -> None:
    response = await horde.client.get("/api/v2/status/style_contract")
    assert response.status_code == 200, response.text
    contract = response.json()
    assert contract["schema_version"] == 1 and set(contract) == {"schema_version", "text", "image"}
    image = contract["image"]
    assert image["placeholders"] == ["p", "np"] and image["context_fit_modes"] is None
    assert image["overridable_parameters"] == [] and image["ceiling_parameters"] == {}
    assert image["style_create_rate_limits"] == ["90/minute", "2/second"] == image["style_modify_rate_limits"]
    assert contract["text"]["placeholders"] == ["p"] and contract["text"]["context_fit_modes"] == []


async def test_style_contract_without_rate_limits_has_no_write_limits(horde: Horde) -> None:
    contract = (await horde.client.get("/api/v2/status/style_contract")).json()  # the tests run with limits off
    assert contract["image"]["style_create_rate_limits"] == [] == contract["text"]["style_modify_rate_limits"]


def _without_signatures(status: dict[str, Any]) -> dict[str, Any]:
    """A status with its images' URLs cut at their query (a signature that expires from the moment it was made)."""
    images = [{**image, "img": image["img"].split("?")[0]} for image in status["generations"]]
    return {**status, "generations": images}


@pytest.mark.both_databases
@pytest.mark.parametrize("horde_settings", [{"check_cache_seconds": 30.0}])
async def test_a_status_from_memory_is_the_status_read_from_the_database(horde: Horde) -> None:
    """PostgreSQL's submit keeps the request's counters and its one finished job for its next check and status."""
    requester, owner = await horde.register("requester", kudos=100), await horde.register("owner")
    request_id = (await horde.generate(requester, params={"width": 64, "height": 64, "steps": 5})).json()["id"]
    job = await horde.pop(owner)
    metadata = [{"type": "information", "value": "see_ref", "ref": "a note from the worker"}]
    submitted = await horde.upload_and_submit(owner, job, seed=4242, gen_metadata=metadata)
    assert submitted.status_code == 200, submitted.text

    checked = await _check(horde, request_id)
    remembered = (await horde.client.get(f"/api/v2/generate/status/{request_id}")).json()
    horde.app.state.queue_view.forget(request_id)
    read = (await horde.client.get(f"/api/v2/generate/status/{request_id}")).json()
    assert _without_signatures(remembered) == _without_signatures(read)
    assert {key: value for key, value in read.items() if key in checked} == checked
    (image,) = read["generations"]
    assert read["done"] and read["finished"] == 1 and read["kudos"] > 0
    assert (image["seed"], image["gen_metadata"], image["id"]) == ("4242", metadata, job["ids"][0])


@pytest.mark.both_databases
@pytest.mark.parametrize("horde_settings", [{"check_cache_seconds": 30.0}])
async def test_a_cancel_answers_with_the_status_it_made_not_the_one_remembered(horde: Horde) -> None:
    requester, owner = await horde.register("requester", kudos=100), await horde.register("owner")
    params = {"width": 64, "height": 64, "steps": 5, "n": 2}
    request_id = (await horde.generate(requester, params=params, disable_batching=True)).json()["id"]
    job = await horde.pop(owner)
    assert len(job["ids"]) == 1, job
    assert (await horde.upload_and_submit(owner, job)).status_code == 200
    assert (await _check(horde, request_id))["waiting"] == 1  # the first image's counters, kept (PostgreSQL)

    cancelled = (await horde.client.delete(f"/api/v2/generate/status/{request_id}")).json()
    assert cancelled["done"] and cancelled["waiting"] == 0 and cancelled["finished"] == 1, cancelled
    again = (await horde.client.get(f"/api/v2/generate/status/{request_id}")).json()
    assert _without_signatures(again) == _without_signatures(cancelled)  # the same but for when the URLs expire
