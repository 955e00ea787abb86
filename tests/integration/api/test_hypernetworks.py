"""``params.hypernetworks`` (an OpenHorde extension) through HTTP: validation, matching, payload, availability."""

from __future__ import annotations

from typing import Any

from openhorde.api.schemas.generate import MAX_HYPERNETWORKS
from tests.live_server import Horde

SMALL = {"width": 64, "height": 64, "steps": 5}
HYPER = [{"name": "anime-style", "strength": 0.6}]


async def _queue(horde: Horde, requester: Any, **params: Any) -> str:
    response = await horde.generate(requester, prompt="a lighthouse", params={**SMALL, **params})
    assert response.status_code == 202, response.text
    return str(response.json()["id"])


async def test_hypernetwork_requests_go_only_to_workers_that_allow_them(horde: Horde) -> None:
    requester, owner = await horde.register("req"), await horde.register("owner")
    await _queue(horde, requester, hypernetworks=HYPER)
    nothing = await horde.pop(owner)
    assert nothing["ids"] == [] and nothing["skipped"] == {"hypernetwork": 1}
    lora_only = await horde.pop(owner, allow_lora=True)
    assert lora_only["ids"] == [] and lora_only["skipped"] == {"hypernetwork": 1}
    job = await horde.pop(owner, allow_hypernetworks=True)
    assert job["payload"]["hypernetworks"] == HYPER


async def test_requests_without_hypernetworks_carry_no_such_field(horde: Horde) -> None:
    """AI Horde workers never see the extension's field; a worker allowing hypernetworks still serves plain jobs."""
    requester, owner = await horde.register("req"), await horde.register("owner")
    await _queue(horde, requester)
    await _queue(horde, requester, hypernetworks=[])
    for _ in range(2):
        job = await horde.pop(owner, allow_hypernetworks=True)
        assert len(job["ids"]) == 1 and "hypernetworks" not in job["payload"]


async def test_hypernetwork_lists_and_strengths_are_bounded(horde: Horde) -> None:
    requester = await horde.register("req")
    too_many = [{"name": f"h{index}"} for index in range(MAX_HYPERNETWORKS + 1)]
    for hypernetworks in (too_many, [{"name": "h", "strength": 5.5}], [{"name": ""}], [{"strength": 1}]):
        response = await horde.generate(requester, prompt="x", params={**SMALL, "hypernetworks": hypernetworks})
        assert response.status_code == 400, hypernetworks
    allowed = [{"name": f"h{index}", "strength": -5} for index in range(MAX_HYPERNETWORKS)]
    assert (await horde.generate(requester, prompt="x", params={**SMALL, "hypernetworks": allowed})).status_code == 202


async def test_check_counts_only_workers_that_allow_hypernetworks(horde: Horde) -> None:
    requester, owner = await horde.register("req"), await horde.register("owner")
    first = await _queue(horde, requester, hypernetworks=HYPER)
    assert (await horde.pop(owner, name="plain"))["ids"] == []
    assert (await horde.check(first))["is_possible"] is False
    assert len((await horde.pop(owner, name="hyper", allow_hypernetworks=True))["ids"]) == 1
    second = await _queue(horde, requester, hypernetworks=HYPER)
    assert (await horde.check(second))["is_possible"] is True


async def test_the_openapi_document_marks_the_field_as_an_extension(horde: Horde) -> None:
    document = (await horde.client.get("/api/swagger.json")).json()
    schemas = document["components"]["schemas"]
    params = next(schema for name, schema in schemas.items() if name.startswith("ImageParams"))
    assert "OpenHorde extension" in params["properties"]["hypernetworks"]["description"]
    pop = next(schema for name, schema in schemas.items() if name.startswith("PopInput"))
    assert "OpenHorde extension" in pop["properties"]["allow_hypernetworks"]["description"]
