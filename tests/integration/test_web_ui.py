"""The server serves the web UI: its page at ``/`` and every module the page loads, with sane types."""

from __future__ import annotations

import re

from openhorde.web import STATIC_DIR
from tests.live_server import Horde

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
