"""Hypothesis through the live server: matching, the dry-run price and the ledger.

Each test runs a handful of generated examples against one ``horde`` (SQLite: the rules are
the same SQL on both engines, and every example costs real requests). The fixture checks the
ledger after the test; the ledger test also checks it after every step.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from openhorde.domain.kudos.ledger import check_ledger
from openhorde.storage.matching_queries import LIMITED_MAX_STEPS
from tests.live_server import Account, Horde

pytestmark = pytest.mark.fuzz  # on SQLite, the default engine: the examples are many requests each

FEW = settings(  # the live server makes examples slow: few, repeatable, no example database
    max_examples=20,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
SIDES = st.sampled_from([64, 256, 512, 768])


async def _users(horde: Horde) -> tuple[Account, Account]:
    """A requester with kudos and a worker owner, made once per test (examples share the horde)."""
    if not hasattr(horde, "_property_users"):
        requester = await horde.register("requester", kudos=100_000)
        owner = await horde.register("owner")
        horde._property_users = (requester, owner)  # type: ignore[attr-defined]
    return horde._property_users  # type: ignore[attr-defined, no-any-return]


async def _kudos(horde: Horde, account: Account) -> float:
    response = await horde.client.get("/api/v2/find_user", headers=account.headers)
    assert response.status_code == 200, response.text
    return float(response.json()["kudos"])


@st.composite
def request_and_worker(draw: st.DrawFn) -> tuple[dict[str, Any], dict[str, Any]]:
    word = "castle"
    request = {
        "prompt": draw(st.sampled_from(["a lighthouse", f"a {word} at dusk"])),
        "nsfw": draw(st.booleans()),
        "trusted_workers": draw(st.booleans()),
        "slow_workers": draw(st.booleans()),
        "models": draw(st.sampled_from([[], ["stable_diffusion"], ["stable_diffusion_2.1"]])),
        "params": {
            "width": draw(SIDES),
            "height": draw(SIDES),
            "steps": draw(st.sampled_from([5, LIMITED_MAX_STEPS, LIMITED_MAX_STEPS + 1])),
            "post_processing": draw(st.sampled_from([[], ["GFPGAN"]])),
        },
    }
    worker = {
        "max_pixels": draw(st.sampled_from([64 * 64, 256 * 256, 512 * 512, 1024 * 1024])),
        "nsfw": draw(st.booleans()),
        "allow_post_processing": draw(st.booleans()),
        "limit_max_steps": draw(st.booleans()),
        "blacklist": draw(st.sampled_from([[], [word], ["unrelated"]])),
        "models": draw(st.sampled_from([["stable_diffusion"], ["stable_diffusion_2.1"]])),
    }
    return request, worker


def should_match(request: dict[str, Any], worker: dict[str, Any]) -> bool:
    """The AI Horde's rules for these fields, written plainly (the worker's owner is not trusted; it is fast)."""
    params = request["params"]
    return (
        params["width"] * params["height"] <= worker["max_pixels"]
        and (not request["models"] or request["models"][0] in worker["models"])
        and (worker["nsfw"] or not request["nsfw"])
        and (worker["allow_post_processing"] or not params["post_processing"])
        and (not worker["limit_max_steps"] or params["steps"] <= LIMITED_MAX_STEPS)
        and not request["trusted_workers"]
        and not any(word in request["prompt"] for word in worker["blacklist"])
    )


@given(pair=request_and_worker())
@FEW
async def test_the_pop_serves_a_request_iff_the_rules_allow_it(
    horde: Horde, pair: tuple[dict[str, Any], dict[str, Any]]
) -> None:
    request, worker = pair
    requester, owner = await _users(horde)
    created = await horde.client.post("/api/v2/generate/async", json=request, headers=requester.headers)
    assert created.status_code == 202, created.text
    request_id = created.json()["id"]
    job = await horde.pop(owner, name="property-worker", **worker)
    try:
        assert (job.get("id") is not None) == should_match(request, worker), (request, worker, job.get("skipped"))
        if job.get("id") is not None:
            assert job["ids"] and job["payload"]["width"] == request["params"]["width"]
    finally:
        cancelled = await horde.client.delete(f"/api/v2/generate/status/{request_id}", headers=requester.headers)
        assert cancelled.status_code == 200, cancelled.text


@given(
    n=st.integers(min_value=1, max_value=3),
    width=SIDES,
    steps=st.integers(min_value=1, max_value=30),
    sampler=st.sampled_from(["k_euler", "k_heun", "k_dpmpp_2m"]),
    post_processing=st.sampled_from([[], ["GFPGAN"], ["RealESRGAN_x4plus"]]),
)
@settings(FEW, max_examples=6)
async def test_the_dry_run_price_is_what_the_ledger_charges(
    horde: Horde, n: int, width: int, steps: int, sampler: str, post_processing: list[str]
) -> None:
    requester, owner = await _users(horde)
    body: dict[str, Any] = {
        "prompt": "a lighthouse",
        "params": {
            "width": width,
            "height": 64,
            "steps": steps,
            "sampler_name": sampler,
            "n": n,
            "post_processing": post_processing,
        },
    }
    dry = await horde.client.post("/api/v2/generate/async", json={**body, "dry_run": True}, headers=requester.headers)
    assert dry.status_code == 200, dry.text
    price = float(dry.json()["kudos"])
    before = await _kudos(horde, requester)
    created = await horde.client.post("/api/v2/generate/async", json=body, headers=requester.headers)
    assert created.status_code == 202, created.text
    delivered = 0
    while delivered < n:
        job = await horde.pop(
            owner, name="pricing-worker", amount=n, max_pixels=1024 * 1024, allow_post_processing=True
        )
        assert job.get("id"), job
        for index in range(len(job["ids"])):
            submitted = await horde.upload_and_submit(owner, job, index)
            assert submitted.status_code == 200, submitted.text
            delivered += 1
    assert (await horde.check(created.json()["id"]))["done"]
    assert before - await _kudos(horde, requester) == pytest.approx(price, abs=0.011)


STEP = st.one_of(
    st.tuples(st.just("grant"), st.integers(min_value=1, max_value=500)),
    st.tuples(st.just("transfer"), st.integers(min_value=-5, max_value=400)),
    st.tuples(st.just("generate"), st.sampled_from(["ok", "faulted", "censored"])),
    st.tuples(st.just("cancel"), st.just(0)),
)


@given(steps=st.lists(STEP, min_size=1, max_size=6))
@settings(FEW, max_examples=8)
async def test_the_ledger_balances_after_any_sequence_of_grants_transfers_and_jobs(
    horde: Horde, steps: list[tuple[str, Any]]
) -> None:
    requester, owner = await _users(horde)
    for kind, value in steps:
        if kind == "grant":
            await horde.grant(requester, value)
        elif kind == "transfer":
            moved = await horde.client.post(
                "/api/v2/kudos/transfer",
                json={"username": owner.username, "amount": value},
                headers=requester.headers,
            )
            assert moved.status_code == (200 if value > 0 else 400), moved.text
        else:
            created = await horde.generate(requester)
            assert created.status_code == 202, created.text
            job = await horde.pop(owner, name="ledger-worker")
            assert job.get("id"), job
            if kind == "cancel":
                response = await horde.client.delete(
                    f"/api/v2/generate/status/{created.json()['id']}", headers=requester.headers
                )
            elif value == "faulted":
                response = await horde.client.post(
                    "/api/v2/generate/submit",
                    json={"id": job["id"], "generation": "", "state": "faulted", "seed": 1},
                    headers=owner.headers,
                )
            else:
                response = await horde.upload_and_submit(owner, job, state=value)
            assert response.status_code == 200, response.text
        async with horde.db.store() as store:
            report = await check_ledger(store)
        assert report.ok, f"after {kind} {value!r}: {report}"
