"""``/styles/image`` through HTTP: customizers create styles; a request naming one runs with its prompt, params
and models; its use is counted and its owner rewarded; a shared key on a style pays for it."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import httpx

from tests.live_server import Account, Horde

STYLE = {
    "name": "Noir",
    "info": "black and white",
    "prompt": "{p}, film noir###{np}, colour",
    "params": {"steps": 12, "sampler_name": "k_euler", "cfg_scale": 6.5, "width": 576, "height": 448},
    "tags": ["mono", "film"],
    "models": ["stable_diffusion"],
}


def _refused(response: httpx.Response, status: int, rc: str) -> None:
    assert (response.status_code, response.json()["rc"]) == (status, rc), response.text


async def _customizer(horde: Horde, name: str = "stylist", kudos: float = 0) -> Account:
    """A user given the customizer role by a moderator, through ``PUT /users/{id}``."""
    account = await horde.register(name, kudos=kudos)
    moderator = await horde.register(f"mod-of-{name}")
    await horde.set_user(moderator, is_moderator=True)
    granted = await horde.client.put(
        f"/api/v2/users/{account.id}", json={"customizer": True}, headers=moderator.headers
    )
    assert granted.status_code == 200, granted.text
    return account


async def _create(horde: Horde, creator: Account, **overrides: Any) -> str:
    response = await horde.client.post("/api/v2/styles/image", json={**STYLE, **overrides}, headers=creator.headers)
    assert response.status_code == 200, response.text
    assert response.json()["message"] == "OK"
    return str(response.json()["id"])


async def _style(horde: Horde, style_id: str, account: Account | None = None) -> dict[str, Any]:
    headers = account.headers if account is not None else {}
    response = await horde.client.get(f"/api/v2/styles/image/{style_id}", headers=headers)
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


async def test_only_customizers_trusted_users_and_moderators_create_styles(horde: Horde) -> None:
    plain = await horde.register("plain")
    _refused(
        await horde.client.post("/api/v2/styles/image", json=STYLE, headers=plain.headers),
        403,
        "StylesRequiresCustomizer",
    )
    anonymous = {"apikey": "0000000000"}
    _refused(await horde.client.post("/api/v2/styles/image", json=STYLE, headers=anonymous), 403, "StylesAnonForbidden")
    assert (await horde.client.get("/api/v2/users/" + str(plain.id))).json()["customizer"] is False

    stylist = await _customizer(horde)
    assert (await horde.client.get(f"/api/v2/users/{stylist.id}")).json()["customizer"] is True
    style_id = await _create(horde, stylist)
    trusted = await horde.register("trusty")
    await horde.set_user(trusted, is_trusted=True)
    await _create(horde, trusted)  # the same name is free for another creator

    style = await _style(horde, style_id)
    assert style["name"] == "Noir" and style["creator"] == stylist.username
    assert style["prompt"] == STYLE["prompt"] and style["tags"] == ["mono", "film"]
    assert style["models"] == ["stable_diffusion"] and style["use_count"] == 0 and style["examples"] == []
    assert style["params"]["steps"] == 12 and style["params"]["width"] == 576 and "n" not in style["params"]
    assert style["public"] is True and style["nsfw"] is False and style["info"] == "black and white"


async def test_bad_styles_are_refused_with_the_reference_codes(horde: Horde) -> None:
    stylist = await _customizer(horde)
    await _create(horde, stylist)

    async def post(**overrides: Any) -> httpx.Response:
        body = {**STYLE, **overrides}
        return await horde.client.post("/api/v2/styles/image", json=body, headers=stylist.headers)

    _refused(await post(prompt="{p} only"), 400, "StylePromptMissingVars")
    _refused(await post(prompt="no variables {np}"), 400, "StylePromptMissingVars")
    _refused(await post(name="Other", tags=[f"t{i}" for i in range(11)]), 400, "BadRequest")
    _refused(await post(name="Other", models=[f"m{i}" for i in range(6)]), 400, "BadRequest")
    _refused(await post(name="Other", models=[]), 400, "BadRequest")
    _refused(await post(name="Other", models=["no such model"]), 400, "UnexpectedModelName")
    _refused(await post(), 400, "BadRequest")  # the creator has a style of that name
    _refused(await post(name="Other", sharedkey="00000000-0000-0000-0000-000000000000"), 400, "SharedKeyInvalid")
    _refused(await post(name="Other", params={"steps": 0}), 400, "ValidationError")
    _refused(await post(name="Other", params={"cfg_scale": 6.555}), 400, "ValidationError")
    assert len((await horde.client.get("/api/v2/styles/image")).json()) == 1


async def test_styles_are_listed_by_use_or_age_filtered_and_paged_and_found_by_name(horde: Horde) -> None:
    stylist, requester = await _customizer(horde), await horde.register("req")
    first = await _create(horde, stylist, name="First", tags=["a"], models=["stable_diffusion"])
    second = await _create(horde, stylist, name="Second", tags=["b"])
    await _create(horde, stylist, name="Hidden", public=False)
    assert (await horde.generate(requester, style=first)).status_code == 202

    popular = [s["id"] for s in (await horde.client.get("/api/v2/styles/image")).json()]
    assert popular == [first, second]  # public ones only, most used first
    by_age = [s["id"] for s in (await horde.client.get("/api/v2/styles/image?sort=age")).json()]
    assert by_age == [second, first]
    assert [s["id"] for s in (await horde.client.get("/api/v2/styles/image?tag=b")).json()] == [second]
    assert len((await horde.client.get("/api/v2/styles/image?model=stable_diffusion")).json()) == 2
    assert (await horde.client.get("/api/v2/styles/image?model=other")).json() == []
    assert (await horde.client.get("/api/v2/styles/image?page=2")).json() == []
    _refused(await horde.client.get("/api/v2/styles/image?sort=best"), 400, "BadRequest")
    _refused(await horde.client.get("/api/v2/styles/image?page=99999999999999999999"), 400, "ValidationError")

    unique = f"{stylist.username}::style::Second"
    for name in ("Second", unique):
        found = await horde.client.get(f"/api/v2/styles/image_by_name/{quote(name, safe='')}")
        assert found.status_code == 200 and found.json()["id"] == second, found.text
    _refused(await horde.client.get("/api/v2/styles/image_by_name/Nothing"), 404, "StyleNotFound")
    _refused(await horde.client.get("/api/v2/styles/image/nope"), 404, "StyleNotFound")


async def test_owners_and_moderators_change_and_delete_styles(horde: Horde) -> None:
    stylist, other, moderator = await _customizer(horde), await horde.register("other"), await horde.register("mod")
    await horde.set_user(moderator, is_moderator=True)
    style_id = await _create(horde, stylist)
    url = f"/api/v2/styles/image/{style_id}"

    _refused(await horde.client.patch(url, json={"info": "mine"}, headers=other.headers), 403, "NotOwner")
    _refused(await horde.client.delete(url, headers=other.headers), 403, "NotOwner")
    _refused(await horde.client.delete(url, headers={"apikey": "0000000000"}), 403, "StylesAnonForbidden")
    _refused(
        await horde.client.patch(url, json={"prompt": "{p}"}, headers=stylist.headers), 400, "StylePromptMissingVars"
    )
    changed = await horde.client.patch(
        url, json={"name": "Noir 2", "tags": ["x"], "models": ["stable_diffusion"]}, headers=stylist.headers
    )
    assert changed.status_code == 200 and changed.json()["id"] == style_id, changed.text
    by_mod = await horde.client.patch(url, json={"public": False}, headers=moderator.headers)
    assert by_mod.status_code == 200, by_mod.text
    style = await _style(horde, style_id)
    assert (style["name"], style["tags"], style["public"], style["prompt"]) == ("Noir 2", ["x"], False, STYLE["prompt"])
    assert (await horde.client.get("/api/v2/styles/image")).json() == []  # no longer public
    assert (await horde.client.get(f"/api/v2/users/{stylist.id}")).json()["styles"] == []
    own = (await horde.client.get(f"/api/v2/users/{stylist.id}", headers=stylist.headers)).json()["styles"]
    assert [s["id"] for s in own] == [style_id]  # its owner still sees it

    deleted = await horde.client.delete(url, headers=moderator.headers)
    assert deleted.status_code == 200 and deleted.json() == {"message": "OK"}
    _refused(await horde.client.get(url), 404, "StyleNotFound")
    log = (await horde.client.get("/api/v2/audit", headers=moderator.headers)).json()["entries"]
    assert [e["action"] for e in log if e["action"].startswith("style.")] == ["style.delete", "style.modify"]


async def test_examples_have_one_primary_and_at_most_four(horde: Horde) -> None:
    stylist, other = await _customizer(horde), await horde.register("other")
    style_id = await _create(horde, stylist)
    base = f"/api/v2/styles/image/{style_id}/example"

    async def add(url: str, primary: bool = False, who: Account = stylist) -> httpx.Response:
        return await horde.client.post(base, json={"url": url, "primary": primary}, headers=who.headers)

    _refused(await add("http://example.com/a.webp"), 400, "BadRequest")
    _refused(await add("https://example.com/a.webp", who=other), 403, "NotOwner")
    first = (await add("https://example.com/1.webp")).json()["id"]
    _refused(await add("https://example.com/1.webp"), 400, "ExampleURLAlreadyInUse")
    second = (await add("https://example.com/2.webp", primary=True)).json()["id"]
    await add("https://example.com/3.webp")
    await add("https://example.com/4.webp")
    _refused(await add("https://example.com/5.webp"), 403, "TooManyStyleExamples")

    def primaries(style: dict[str, Any]) -> list[str]:
        return [e["id"] for e in style["examples"] if e["primary"]]

    assert primaries(await _style(horde, style_id)) == [second]
    made = await horde.client.patch(f"{base}/{first}", json={"primary": True}, headers=stylist.headers)
    assert made.status_code == 200, made.text
    assert primaries(await _style(horde, style_id)) == [first]
    _refused(
        await horde.client.patch(f"{base}/{first}", json={"primary": False}, headers=stylist.headers), 400, "BadRequest"
    )
    _refused(await horde.client.delete(f"{base}/nope", headers=stylist.headers), 404, "StyleExampleNotFound")
    assert (await horde.client.delete(f"{base}/{first}", headers=stylist.headers)).status_code == 200
    style = await _style(horde, style_id)
    assert len(style["examples"]) == 3 and primaries(style) == [second]


async def test_a_styled_request_runs_with_the_style_s_prompt_params_and_models(horde: Horde) -> None:
    stylist, requester, worker = (
        await _customizer(horde, kudos=10),
        await horde.register("req"),
        await horde.register("gpu"),
    )
    style_id = await _create(horde, stylist)
    before = (await horde.client.get(f"/api/v2/users/{stylist.id}")).json()["kudos"]

    queued = await horde.generate(
        requester, prompt="a cat###blurry", style=style_id, params={"n": 2, "steps": 50, "width": 64, "height": 64}
    )
    assert queued.status_code == 202, queued.text
    job = await horde.pop(worker, max_pixels=576 * 448)
    payload = job["payload"]
    assert payload["prompt"] == "a cat, film noir###blurry, colour"
    assert (payload["ddim_steps"], payload["sampler_name"], payload["cfg_scale"]) == (12, "k_euler", 6.5)
    assert (payload["width"], payload["height"]) == (576, 448)  # the style's size, not the request's
    assert job["model"] == "stable_diffusion"
    assert (await horde.check(queued.json()["id"]))["waiting"] + len(job["ids"]) == 2  # the request's n is kept

    style = await _style(horde, style_id)
    assert style["use_count"] == 1
    after = (await horde.client.get(f"/api/v2/users/{stylist.id}")).json()["kudos"]
    assert after == before + 2  # the owner's reward for another's use
    owner = (await horde.client.get(f"/api/v2/users/{stylist.id}")).json()
    assert owner["kudos_details"]["styled"] == 2
    assert owner["styles"] == [{"name": f"{stylist.username}::style::Noir", "id": style_id, "type": "image"}]

    by_name = await horde.generate(stylist, prompt="a dog", style=f"{stylist.username}::style::Noir")
    assert by_name.status_code == 202, by_name.text
    assert (await _style(horde, style_id))["use_count"] == 2
    assert (await horde.client.get(f"/api/v2/users/{stylist.id}")).json()["kudos"] == after  # own use: no reward

    _refused(await horde.generate(requester, style="no such style"), 404, "StyleNotFound")
    dry = await horde.generate(requester, prompt="a cat###blurry", style=style_id, dry_run=True)
    assert dry.status_code == 200 and (await _style(horde, style_id))["use_count"] == 2  # a dry run is no use
    resolved = dry.json()["resolved"]
    assert resolved["prompt"] == "a cat, film noir###blurry, colour" and resolved["negative_prompt"] == "blurry, colour"
    assert resolved["style"] == {"id": style_id, "name": "Noir"} and resolved["models"] == ["stable_diffusion"]
    assert (resolved["params"]["n"], resolved["params"]["steps"], resolved["params"]["width"]) == (1, 12, 576)
    assert "resolved" not in (await horde.generate(requester, dry_run=True)).json()


async def test_a_style_without_a_size_keeps_the_request_s_and_a_template_without_a_negative_part_gets_one(
    horde: Horde,
) -> None:
    stylist, requester, worker = await _customizer(horde), await horde.register("req"), await horde.register("gpu")
    style_id = await _create(horde, stylist, prompt="{p}, sketch{np}", params={"steps": 8})
    queued = await horde.generate(
        requester, prompt="a boat###rain", style=style_id, params={"width": 128, "height": 64}
    )
    assert queued.status_code == 202, queued.text
    payload = (await horde.pop(worker))["payload"]
    assert payload["prompt"] == "a boat, sketch###rain"
    assert (payload["width"], payload["height"], payload["ddim_steps"]) == (128, 64, 8)


async def test_a_style_s_shared_key_pays_and_cannot_be_used_directly(horde: Horde) -> None:
    stylist, requester = await _customizer(horde, kudos=100), await horde.register("req", kudos=30)
    worker = await horde.register("gpu")
    key = (await horde.client.put("/api/v2/sharedkeys", json={"kudos": 50}, headers=stylist.headers)).json()["id"]
    style_id = await _create(horde, stylist, sharedkey=key, params={"steps": 30, "width": 512, "height": 512})
    assert (await _style(horde, style_id, stylist))["sharedkey"] == key  # shown to its owner only
    assert "sharedkey" not in await _style(horde, style_id, requester)

    queued = await horde.generate(requester, style=style_id)
    assert queued.status_code == 202, queued.text
    job = await horde.pop(worker, max_pixels=512 * 512)
    assert (await horde.upload_and_submit(worker, job)).status_code == 200

    def kudos(account: Account) -> Any:
        return horde.client.get(f"/api/v2/users/{account.id}")

    # The request ran on the key: its owner paid 8.61 kudos (512², 30 steps), the key counts them, the requester
    # paid nothing; and the owner, paying for their own style, earned no reward for it.
    assert (await kudos(requester)).json()["kudos"] == 30
    assert (await kudos(stylist)).json()["kudos"] == round(100 - 8.61, 2)
    assert (await horde.client.get(f"/api/v2/sharedkeys/{key}")).json()["utilized"] == 8
    assert (await _style(horde, style_id))["use_count"] == 1

    direct = await horde.generate(Account(id=-1, username="holder", apikey=key))
    _refused(direct, 403, "SharedKeyAssignedStyles")


async def test_a_style_whose_shared_key_expired_leaves_the_request_to_its_caller(horde: Horde) -> None:
    stylist, requester = await _customizer(horde, kudos=100), await horde.register("req", kudos=30)
    worker = await horde.register("gpu")
    key = (await horde.client.put("/api/v2/sharedkeys", json={"kudos": 50}, headers=stylist.headers)).json()["id"]
    style_id = await _create(horde, stylist, sharedkey=key, params={"steps": 30, "width": 512, "height": 512})
    async with horde.db.unit_of_work() as session:
        from openhorde.storage.tables import SharedKey

        await session.execute(SharedKey.__table__.update().values(expires_at=1.0))

    queued = await horde.generate(requester, style=style_id)
    assert queued.status_code == 202, queued.text
    job = await horde.pop(worker, max_pixels=512 * 512)
    assert (await horde.upload_and_submit(worker, job)).status_code == 200
    requester_kudos = (await horde.client.get(f"/api/v2/users/{requester.id}")).json()["kudos"]
    stylist_kudos = (await horde.client.get(f"/api/v2/users/{stylist.id}")).json()["kudos"]
    assert (requester_kudos, stylist_kudos) == (round(30 - 8.61, 2), 102)  # the caller paid; the owner earned 2


async def test_text_styles_are_absent_on_an_image_only_horde(horde: Horde) -> None:
    stylist = await _customizer(horde)
    style_id = await _create(horde, stylist)
    assert (await horde.client.get("/api/v2/styles/text")).json() == []
    _refused(
        await horde.client.post("/api/v2/styles/text", json=STYLE, headers=stylist.headers),
        400,
        "TextStylesUnsupported",
    )
    _refused(await horde.client.get("/api/v2/styles/text/nope"), 404, "StyleNotFound")
    _refused(await horde.client.get(f"/api/v2/styles/text/{style_id}"), 400, "StyleGetMistmatch")
    _refused(await horde.client.get("/api/v2/styles/text_by_name/Noir"), 400, "StyleGetMistmatch")
    _refused(
        await horde.client.delete(f"/api/v2/styles/text/{style_id}", headers=stylist.headers), 400, "StyleGetMistmatch"
    )
