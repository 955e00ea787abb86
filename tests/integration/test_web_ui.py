"""The server serves the web UI: its page at ``/`` and every module the page loads, with sane types."""

from __future__ import annotations

import re

from openhorde.web import STATIC_DIR
from tests.live_server import Horde, webp_bytes

IMPORT = re.compile(r"""(?:import\(|from\s+)["'](\./[^"']+\.js)["']""")


async def test_the_page_and_its_assets_are_served(horde: Horde) -> None:
    page = await horde.client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert '<main id="view"' in page.text and page.headers["cache-control"] == "no-cache"
    for asset in re.findall(r'(?:href|src)="(/static/[^"]+)"', page.text):
        response = await horde.client.get(asset)
        assert response.status_code == 200, asset


async def test_every_module_the_ui_imports_is_served_as_javascript(horde: Horde) -> None:
    pending, seen = ["js/app.js"], set()
    while pending:
        module = pending.pop()
        if module in seen:
            continue
        seen.add(module)
        response = await horde.client.get(f"/static/{module}")
        assert response.status_code == 200, module
        assert "javascript" in response.headers["content-type"], module
        folder = module.rsplit("/", 1)[0]
        for relative in IMPORT.findall(response.text):
            pending.append(_join(folder, relative))
    assert {"js/api.js", "js/pages/generate.js", "js/pages/account.js"} <= seen
    assert all((STATIC_DIR / module).is_file() for module in seen)


def _join(folder: str, relative: str) -> str:
    parts = folder.split("/")
    for piece in relative.split("/"):
        if piece == "..":
            parts.pop()
        elif piece != ".":
            parts.append(piece)
    return "/".join(parts)


async def test_api_paths_are_not_shadowed_by_the_ui(horde: Horde) -> None:
    missing = await horde.client.get("/static/nothing-here.js")
    assert missing.status_code == 404
    assert (await horde.client.get("/api/v2/status/heartbeat")).status_code == 200


async def test_the_page_has_a_favicon(horde: Horde) -> None:
    for path in ("/favicon.ico", "/static/favicon.svg"):
        icon = await horde.client.get(path)
        assert icon.status_code == 200 and icon.headers["content-type"].startswith("image/svg+xml"), path
        assert icon.text.startswith("<svg")


async def test_head_on_an_image_link_answers_like_get_without_a_body(horde: Horde) -> None:
    key = "results/head-check.webp"
    image = webp_bytes()
    await horde.ctx.blobs.put(key, image)
    url = horde.ctx.blobs.presign("GET", key)
    got = await horde.client.get(url)
    head = await horde.client.head(url)
    assert got.status_code == head.status_code == 200
    assert head.headers["content-type"] == got.headers["content-type"] == "image/webp"
    assert int(head.headers["content-length"]) == len(image) == len(got.content)
    assert head.content == b""
    # A wrong signature is refused the same way as a GET.
    forged = url[:-4] + ("0000" if not url.endswith("0000") else "1111")
    assert (await horde.client.head(forged)).status_code == (await horde.client.get(forged)).status_code == 403


async def test_an_admin_sees_their_role_and_others_do_not_see_it(horde: Horde) -> None:
    root = await horde.register("root")
    await horde.make_admin(root)
    plain = await horde.register("plain")
    me = (await horde.client.get("/api/v2/find_user", headers=root.headers)).json()
    assert me["admin"] is True
    assert (await horde.client.get("/api/v2/find_user", headers=plain.headers)).json()["admin"] is False
    seen_by_other = (await horde.client.get(f"/api/v2/users/{root.id}", headers=plain.headers)).json()
    assert "admin" not in seen_by_other
