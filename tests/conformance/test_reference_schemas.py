"""Our answers against the AI Horde's own description of them.

One full request cycle runs against a live server; each JSON answer is validated against the
reference swagger's schema for its path, method and status, and must carry every top-level key
of the matching example in ``ai-horde-api-examples/example_responses/`` unless the key is listed for
that answer in ``INTENTIONALLY_ABSENT`` below, with the reason we leave it out.
"""

from __future__ import annotations

import base64
import json
from functools import cache
from pathlib import Path
from typing import Any

import httpx
import pytest
from jsonschema import Draft4Validator

from tests.live_server import Horde, webp_bytes

REFERENCE = Path(__file__).resolve().parents[2].parent / "shared" / "reference"
SWAGGER_PATH = REFERENCE / "ai-horde-swagger.json"
EXAMPLES_DIR = REFERENCE / "ai-horde-api-examples" / "example_responses"

pytestmark = pytest.mark.skipif(not SWAGGER_PATH.is_file(), reason=f"{REFERENCE} is not checked out")

_WORKER_ABSENT = {
    "ipaddr": "(privileged) moderators only; we record no worker IPs",
    "contact": "(privileged) moderators only; workers have no contact field here",
    "forms": "alchemists (type interrogation) only; an image worker offers no forms, as in the reference",
    "max_length": "text workers only",
    "max_context_length": "text workers only",
    "tokens_generated": "text workers only",
}
_USER_ABSENT = {
    "active_generations": "not tracked per user; clients poll /generate/check instead",
    "records": "per-kind (image/text/alchemy) records; usage and contributions carry our image totals",
}
_STYLE_ABSENT = {
    "parameter_policy": "the AI Horde's newer style contract (params a request may override), not implemented",
    "template_fields": "the AI Horde's newer style contract (named placeholders), not implemented",
    "sharedkey": "shown to the style's owner only, and only when the style has a shared key",
    "shared_key": "the key's details: ask GET /sharedkeys/{id} with the key (shown to the owner as 'sharedkey')",
}
INTENTIONALLY_ABSENT: dict[str, dict[str, str]] = {
    "POST /v2/generate/async 200": {"resolved": "our dry runs send it only with a style (the example is a styled one)"},
    "POST /v2/generate/pop 200": {
        "source_image": "sent only with img2img/inpainting jobs, as the reference does",
        "source_mask": "sent only with a separate inpainting mask, as the reference does",
        "extra_source_images": "sent only when the request has extra source images, as the reference does",
    },
    "GET /v2/workers 200": _WORKER_ABSENT,
    "GET /v2/workers/{worker_id} 200": _WORKER_ABSENT,
    "GET /v2/find_user 200": _USER_ABSENT,
    "GET /v2/users/{user_id} 200": _USER_ABSENT,
    "GET /v2/status/modes 200": {"raid_mode": "shown to moderators only, as the reference does"},
    **{
        f"GET /v2/documents/{name} 200": {
            "markdown": "sent instead of html with format=markdown, as the reference does"
        }
        for name in ("terms", "privacy", "sponsors")
    },
    "GET /v2/generate/request/{id} 200": {
        "validated_backends": "text workers only",
        "extra_slow_workers": "not kept with the request",
        "source_image": "source images are not sent back",
        "source_processing": "only for a request with a source image",
        "source_mask": "source images are not sent back",
        "extra_source_images": "source images are not sent back",
        "proxied_account": "we have no service-account proxying",
        "template_fields": "we have no style template fields",
        "webhook": "sent only for a request made with one",
    },
    "GET /v2/styles/image 200": _STYLE_ABSENT,
    "GET /v2/styles/image/{style_id} 200": _STYLE_ABSENT,
    "GET /v2/styles/image_by_name/{style_name} 200": _STYLE_ABSENT,
    "POST /v2/interrogate/async 202": {"message": "the reference answers the id alone too (its message is unset)"},
}
"""Per answer, the example's top-level keys we leave out on purpose, each with its reason."""


@cache
def _swagger() -> dict[str, Any]:
    return json.loads(SWAGGER_PATH.read_text(encoding="utf-8"))  # type: ignore[no-any-return]


def _validator(path: str, method: str, status: int) -> Draft4Validator | None:
    """The swagger schema of one answer, with ``#/definitions`` resolvable; ``None`` if it has none."""
    swagger = _swagger()
    # Newer routes (documents, contracts, styles, ...) are in the examples but not in this swagger: keys only.
    response = swagger["paths"].get(path, {}).get(method, {}).get("responses", {}).get(str(status), {})
    if "schema" not in response:
        return None
    # Swagger 2.0 schemas are JSON Schema draft 4 (plus ignorable ``example``/``x-`` keys). Wrapping
    # the schema in ``allOf`` next to ``definitions`` lets each ``$ref`` resolve against this document.
    # Additional properties stay allowed: our extras (``gen_metadata`` types, ``messages``) are fine.
    return Draft4Validator({"definitions": swagger["definitions"], "allOf": [response["schema"]]})


def _example_file(path: str, method: str, status: int) -> Path:
    """``/v2/workers/{worker_id}`` GET 200 → ``_v2_workers_worker_id_get_200.json``, the examples' naming."""
    return EXAMPLES_DIR / f"{path.replace('/', '_').replace('{', '').replace('}', '')}_{method}_{status}.json"


class Conformance:
    """Checks answers one by one and collects every mismatch, so one run reports them all."""

    def __init__(self) -> None:
        self.problems: list[str] = []

    def check(self, route: str, status: int, response: httpx.Response, *, example_keys: bool = True) -> Any:
        """Validate ``response`` as the answer of ``route`` (``"GET /v2/..."``, a swagger path) with ``status``.

        ``example_keys=False`` skips the key comparison where the example shows one possible echo
        of the fields a client changed (``PUT`` answers), not a fixed set of keys.
        """
        method, path = route.split()
        method = method.lower()
        label = f"{route} {status}"
        assert response.status_code == status, f"{label}: got {response.status_code}: {response.text}"
        body = response.json()
        validator = _validator(path, method, status)
        if validator is not None:
            for error in sorted(validator.iter_errors(body), key=lambda e: [str(p) for p in e.absolute_path]):
                where = "/".join(str(part) for part in error.absolute_path) or "(root)"
                self.problems.append(f"{label}: schema: {where}: {error.message}")
        example = _example_file(path, method, status)
        if example_keys and example.is_file():
            self._compare_keys(label, body, json.loads(example.read_text(encoding="utf-8")))
        elif example_keys and validator is None:
            self.problems.append(f"{label}: the reference has neither a schema nor an example to check against")
        return body

    def _compare_keys(self, label: str, body: Any, example: Any) -> None:
        if isinstance(example, list):
            assert isinstance(body, list) and body, f"{label}: expected a non-empty list like the example"
            example, body = example[0], body[0]
        allowed = INTENTIONALLY_ABSENT.get(label, {})
        missing = sorted(set(example) - set(body) - set(allowed))
        if missing:
            self.problems.append(f"{label}: keys of the reference example missing from ours: {missing}")
        stale = sorted(set(allowed) & set(body))
        if stale:
            self.problems.append(f"{label}: INTENTIONALLY_ABSENT lists keys we do send: {stale}")


async def test_a_full_cycle_matches_the_reference(horde: Horde) -> None:
    client = horde.client
    seen = Conformance()
    requester = await horde.register("requester", kudos=200)
    owner = await horde.register("owner")
    admin = await horde.register("admin")
    await horde.make_admin(admin)

    # Queued before any worker exists, so the answer carries its NoAvailableWorker message and warning.
    params = {"width": 64, "height": 64, "steps": 5, "n": 1}
    created = seen.check("POST /v2/generate/async", 202, await horde.generate(requester, params=params))
    # The swagger lists no 200 (dry run) for this path; the example and the reference notes do.
    dry = seen.check("POST /v2/generate/async", 200, await horde.generate(requester, params=params, dry_run=True))
    assert isinstance(dry["kudos"], int | float) and dry["kudos"] > 0

    pop_body = {"name": "worker-1", "models": ["stable_diffusion"]}
    job = seen.check(
        "POST /v2/generate/pop", 200, await client.post("/api/v2/generate/pop", json=pop_body, headers=owner.headers)
    )
    seen.check("POST /v2/generate/submit", 200, await horde.upload_and_submit(owner, job))
    seen.check("GET /v2/generate/check/{id}", 200, await client.get(f"/api/v2/generate/check/{created['id']}"))
    seen.check("GET /v2/generate/status/{id}", 200, await client.get(f"/api/v2/generate/status/{created['id']}"))

    # Fill in the optional details (worker info, public workers, contact, admin comment) so they show below.
    worker_id = (await client.get("/api/v2/workers")).json()[0]["id"]
    changed = await client.put(f"/api/v2/workers/{worker_id}", json={"info": "a test worker"}, headers=owner.headers)
    seen.check("PUT /v2/workers/{worker_id}", 200, changed, example_keys=False)
    changes = {"public_workers": True, "contact": "owner@example.com"}
    changed = await client.put(f"/api/v2/users/{owner.id}", json=changes, headers=owner.headers)
    seen.check("PUT /v2/users/{user_id}", 200, changed, example_keys=False)
    changed = await client.put(f"/api/v2/users/{owner.id}", json={"admin_comment": "fine"}, headers=admin.headers)
    seen.check("PUT /v2/users/{user_id}", 200, changed, example_keys=False)

    seen.check("GET /v2/workers", 200, await client.get("/api/v2/workers"))
    seen.check("GET /v2/workers/{worker_id}", 200, await client.get(f"/api/v2/workers/{worker_id}"))
    seen.check("GET /v2/find_user", 200, await client.get("/api/v2/find_user", headers=owner.headers))
    seen.check("GET /v2/users/{user_id}", 200, await client.get(f"/api/v2/users/{owner.id}", headers=owner.headers))
    seen.check("GET /v2/status/models", 200, await client.get("/api/v2/status/models"))
    seen.check("GET /v2/status/heartbeat", 200, await client.get("/api/v2/status/heartbeat"))
    seen.check("GET /v2/status/performance", 200, await client.get("/api/v2/status/performance"))
    seen.check("GET /v2/status/modes", 200, await client.get("/api/v2/status/modes"))
    transfer = {"username": owner.username, "amount": 10}
    seen.check(
        "POST /v2/kudos/transfer",
        200,
        await client.post("/api/v2/kudos/transfer", json=transfer, headers=requester.headers),
    )

    # Alchemy: an interrogation, an alchemist's pop and submit, its status, and a cancelled one.
    source = base64.b64encode(webp_bytes()).decode()
    forms = {"forms": [{"name": "caption"}], "source_image": source}
    asked = seen.check(
        "POST /v2/interrogate/async",
        202,
        await client.post("/api/v2/interrogate/async", json=forms, headers=requester.headers),
    )
    alchemist = {"name": "alchemist-1", "forms": ["caption"], "max_tiles": 16}
    popped = seen.check(
        "POST /v2/interrogate/pop",
        200,
        await client.post("/api/v2/interrogate/pop", json=alchemist, headers=owner.headers),
    )
    answer = {"id": popped["forms"][0]["id"], "result": {"caption": "a red square"}, "state": "ok"}
    seen.check(
        "POST /v2/interrogate/submit",
        200,
        await client.post("/api/v2/interrogate/submit", json=answer, headers=owner.headers),
    )
    seen.check("GET /v2/interrogate/status/{id}", 200, await client.get(f"/api/v2/interrogate/status/{asked['id']}"))
    other = (await client.post("/api/v2/interrogate/async", json=forms, headers=requester.headers)).json()
    seen.check(
        "DELETE /v2/interrogate/status/{id}", 200, await client.delete(f"/api/v2/interrogate/status/{other['id']}")
    )
    seen.check(
        "GET /v2/interrogate/status/{id}",
        404,
        await client.get("/api/v2/interrogate/status/00000000-0000-0000-0000-000000000000"),
        example_keys=False,
    )

    # Errors are ``RequestError`` bodies too.
    unknown = "/api/v2/generate/status/00000000-0000-0000-0000-000000000000"
    seen.check("GET /v2/generate/status/{id}", 404, await client.get(unknown), example_keys=False)
    seen.check(
        "POST /v2/generate/async",
        401,
        await client.post("/api/v2/generate/async", json={"prompt": "x"}),
        example_keys=False,
    )
    # Ids no account can have (beyond the id column, or not ASCII digits) are not found, not a 500.
    huge = await client.get("/api/v2/users/99999999999999999999")
    seen.check("GET /v2/users/{user_id}", 404, huge, example_keys=False)
    odd = {**pop_body, "priority_usernames": ["someone#²", "someone#99999999999999999999"]}
    odd_pop = await client.post("/api/v2/generate/pop", json=odd, headers=owner.headers)
    seen.check("POST /v2/generate/pop", 400, odd_pop, example_keys=False)

    assert not seen.problems, "\n".join(seen.problems)


async def test_stats_news_documents_and_contracts_match_the_reference(horde: Horde) -> None:
    from openhorde.api.app import flush_tallies

    client = horde.client
    seen = Conformance()
    requester, owner, admin = (
        await horde.register("requester"),
        await horde.register("owner"),
        await horde.register("admin"),
    )
    await horde.make_admin(admin)
    params = {"width": 64, "height": 64, "steps": 5, "n": 2}
    created = (await horde.generate(requester, params=params, shared=True)).json()
    job = await horde.pop(owner, amount=2)
    for index in range(2):
        assert (await horde.upload_and_submit(owner, job, index)).status_code == 200
    await flush_tallies(horde.db, horde.ctx)

    seen.check("GET /v2/stats/img/totals", 200, await client.get("/api/v2/stats/img/totals"))
    seen.check("GET /v2/stats/img/models", 200, await client.get("/api/v2/stats/img/models"))
    seen.check("GET /v2/stats/text/totals", 200, await client.get("/api/v2/stats/text/totals"))
    seen.check("GET /v2/stats/text/models", 200, await client.get("/api/v2/stats/text/models"), example_keys=False)
    piece = {"title": "Hello", "newspiece": "We are open.", "tags": ["general"], "more_info_urls": ["https://a.b"]}
    assert (await client.post("/api/v2/status/news", json=piece, headers=admin.headers)).status_code == 201
    seen.check("GET /v2/status/news", 200, await client.get("/api/v2/status/news"))
    for name in ("terms", "privacy", "sponsors"):
        seen.check(f"GET /v2/documents/{name}", 200, await client.get(f"/api/v2/documents/{name}"))
    seen.check("GET /v2/status/sampler_constraints", 200, await client.get("/api/v2/status/sampler_constraints"))
    seen.check("GET /v2/status/style_contract", 200, await client.get("/api/v2/status/style_contract"))
    request_path = f"/api/v2/generate/request/{created['id']}"
    seen.check("GET /v2/generate/request/{id}", 200, await client.get(request_path, headers=requester.headers))
    rating = {"best": job["ids"][0], "ratings": [{"id": job["ids"][1], "rating": 5, "artifacts": 1}]}
    rated = await client.post(f"/api/v2/generate/rate/{created['id']}", json=rating)
    seen.check("POST /v2/generate/rate/{id}", 200, rated)

    moderator = await horde.register("moddy")
    await horde.set_user(moderator, is_moderator=True)
    worker_id = (await client.get("/api/v2/workers")).json()[0]["id"]
    block = f"/api/v2/operations/block_worker_ipaddr/{worker_id}"
    put = await client.put(block, json={"days": 1}, headers=moderator.headers)
    seen.check("PUT /v2/operations/block_worker_ipaddr/{worker_id}", 200, put)
    matching = await client.get("/api/v2/operations/ipaddr/127.0.0.1", headers=moderator.headers)
    seen.check("GET /v2/operations/ipaddr/{ipaddr}", 200, matching)
    seen.check(
        "DELETE /v2/operations/block_worker_ipaddr/{worker_id}",
        200,
        await client.delete(block, headers=moderator.headers),
    )
    gone = await client.delete(f"/api/v2/users/{requester.id}", headers=requester.headers)
    seen.check("DELETE /v2/users/{user_id}", 200, gone)


async def test_styles_and_collections_match_the_reference_examples(horde: Horde) -> None:
    client = horde.client
    seen = Conformance()
    stylist = await horde.register("stylist")
    await horde.set_user(stylist, is_customizer=True)
    headers = stylist.headers
    style = {
        "name": "Noir",
        "info": "dark",
        "prompt": "{p}, noir{np}",
        "tags": ["mono"],
        "models": ["stable_diffusion"],
    }
    created = seen.check(
        "POST /v2/styles/image", 200, await client.post("/api/v2/styles/image", json=style, headers=headers)
    )
    style_url = f"/api/v2/styles/image/{created['id']}"
    example = {"url": "https://example.com/noir.webp", "primary": True}
    added = seen.check(
        "POST /v2/styles/image/{style_id}/example",
        200,
        await client.post(f"{style_url}/example", json=example, headers=headers),
    )
    seen.check(
        "PATCH /v2/styles/image/{style_id}/example/{example_id}",
        200,
        await client.patch(f"{style_url}/example/{added['id']}", json={"primary": True}, headers=headers),
    )
    seen.check("GET /v2/styles/image", 200, await client.get("/api/v2/styles/image"))
    seen.check("GET /v2/styles/image/{style_id}", 200, await client.get(style_url))
    seen.check("GET /v2/styles/image_by_name/{style_name}", 200, await client.get("/api/v2/styles/image_by_name/Noir"))
    patched = await client.patch(style_url, json={"info": "darker"}, headers=headers)
    seen.check("PATCH /v2/styles/image/{style_id}", 200, patched)

    collection = {"name": "Moods", "info": "dark ones", "styles": [created["id"]]}
    made = seen.check(
        "POST /v2/collections", 200, await client.post("/api/v2/collections", json=collection, headers=headers)
    )
    collection_url = f"/api/v2/collections/{made['id']}"
    seen.check("GET /v2/collections", 200, await client.get("/api/v2/collections"))
    seen.check("GET /v2/collections/{collection_id}", 200, await client.get(collection_url))
    by_name = await client.get("/api/v2/collection_by_name/Moods")
    seen.check("GET /v2/collection_by_name/{collection_name}", 200, by_name)
    seen.check(
        "PATCH /v2/collections/{collection_id}",
        200,
        await client.patch(collection_url, json={"public": False}, headers=headers),
    )
    seen.check("DELETE /v2/collections/{collection_id}", 200, await client.delete(collection_url, headers=headers))
    seen.check(
        "DELETE /v2/styles/image/{style_id}/example/{example_id}",
        200,
        await client.delete(f"{style_url}/example/{added['id']}", headers=headers),
    )
    seen.check("DELETE /v2/styles/image/{style_id}", 200, await client.delete(style_url, headers=headers))
    assert not seen.problems, "\n".join(seen.problems)


async def test_moderation_operations_match_the_reference_examples(horde: Horde) -> None:
    client = horde.client
    seen = Conformance()
    moderator, member = await horde.register("moddy"), await horde.register("member", kudos=100)
    await horde.set_user(moderator, is_moderator=True)
    for regex, filter_type in ((r"\bchild\b", 10), ("nude", 20)):
        body = {"regex": regex, "filter_type": filter_type, "replacement": "adult"}
        assert (await client.put("/api/v2/filters", json=body, headers=moderator.headers)).status_code == 201
    refused = await horde.generate(member, prompt="a nude child", replacement_filter=False)
    assert refused.status_code == 400, refused.text
    events = seen.check(
        "GET /v2/operations/moderation/prompts",
        200,
        await client.get("/api/v2/operations/moderation/prompts", headers=moderator.headers),
    )
    event_id = events["events"][0]["id"]
    note = await client.post(
        f"/api/v2/operations/moderation/prompts/{event_id}/notes", json={"note": "Seen."}, headers=moderator.headers
    )
    seen.check("POST /v2/operations/moderation/prompts/{event_id}/notes", 201, note)

    horde.settings.economy.worker_max_aborts_per_hour = 0
    await horde.generate(member)
    job = await horde.pop(member)
    fault = {"id": job["ids"][0], "generation": None, "state": "faulted", "seed": 1}
    assert (await client.post("/api/v2/generate/submit", json=fault, headers=member.headers)).status_code == 200
    suspicions = await client.get("/api/v2/operations/moderation/worker_suspicion_events", headers=moderator.headers)
    seen.check("GET /v2/operations/moderation/worker_suspicion_events", 200, suspicions)

    worker_id = (await client.get("/api/v2/workers")).json()[0]["id"]
    paused = await client.put(f"/api/v2/workers/{worker_id}", json={"paused": True}, headers=moderator.headers)
    assert paused.status_code == 200, paused.text
    overview = await client.get("/api/v2/operations/moderation", headers=moderator.headers)
    assert seen.check("GET /v2/operations/moderation", 200, overview)["paused_workers"]
    assert not seen.problems, "\n".join(seen.problems)
