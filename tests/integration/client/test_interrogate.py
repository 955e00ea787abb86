"""``openhorde interrogate`` as a real process against a live server; the test plays the alchemist through the
real HTTP API (``/interrogate/pop``, an upload to ``r2_upload``, ``/interrogate/submit``) while the client waits."""

from __future__ import annotations

import asyncio
import io
import json
import re
import time
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from tests.integration.client.test_cli import PROCESS_TIMEOUT_S, Cli, finish, png
from tests.live_server import Account, Horde, webp_bytes

pytestmark = [pytest.mark.e2e, pytest.mark.live]

RANKING = {
    "artists": [{"text": "Claude Monet", "confidence": 24.5}, {"text": "Rembrandt", "confidence": 20.1}],
    "mediums": [{"text": "an oil painting", "confidence": 27.0}],
}


@pytest.fixture
async def cli(horde: Horde, tmp_path: Path) -> Any:
    runner = Cli(f"http://127.0.0.1:{horde.settings.port}", tmp_path)
    yield runner
    await runner.stop_all()


async def pop_forms(horde: Horde, owner: Account, process: asyncio.subprocess.Process, forms: list[str]) -> list[Any]:
    """Pop as an alchemist until every form of the client's interrogation is handed out."""
    popped: list[Any] = []
    deadline = time.monotonic() + PROCESS_TIMEOUT_S
    while len(popped) < len(forms) and time.monotonic() < deadline:
        body = {"name": "alchemist-1", "forms": forms, "amount": 5}
        response = await horde.client.post("/api/v2/interrogate/pop", json=body, headers=owner.headers)
        assert response.status_code == 200, response.text
        popped += response.json()["forms"]
        if process.returncode is not None:
            break
        await asyncio.sleep(0.05)
    assert len(popped) == len(forms), await finish(process)
    return popped


async def submit(horde: Horde, owner: Account, form: dict[str, Any], result: Any, state: str = "ok") -> None:
    body = {"id": form["id"], "result": result, "state": state}
    response = await horde.client.post("/api/v2/interrogate/submit", json=body, headers=owner.headers)
    assert response.status_code == 200, response.text


async def serve(horde: Horde, owner: Account, popped: list[Any]) -> None:
    """What an alchemist hands in for each form."""
    for form in popped:
        name = form["form"]
        if name == "caption":
            await submit(horde, owner, form, {"caption": "a lighthouse on a cliff"})
        elif name == "nsfw":
            await submit(horde, owner, form, {"nsfw": False})
        elif name == "interrogation":
            await submit(horde, owner, form, {"interrogation": RANKING})
        else:
            put = await horde.client.put(form["r2_upload"], content=webp_bytes((128, 128)))
            assert put.status_code == 200, put.text
            await submit(horde, owner, form, {name: "R2"})


async def test_each_forms_result_is_printed_and_images_are_saved(horde: Horde, cli: Cli, tmp_path: Path) -> None:
    requester, owner = await horde.register("alice", kudos=100), await horde.register("wally")
    source, out = png(tmp_path / "cat.png"), tmp_path / "out"
    forms = ["caption", "nsfw", "interrogation", "RealESRGAN_x2plus"]
    args = ["interrogate", str(source), *(arg for name in forms for arg in ("--form", name))]
    process = await cli.start(*args, "--poll-interval", "0.1", "--api-key", requester.apikey, "--out", str(out))

    popped = await pop_forms(horde, owner, process, forms)
    assert all(form["source_image"] for form in popped)
    await serve(horde, owner, popped)
    ran = await finish(process)

    assert ran.code == 0, ran
    interrogation_id = re.search(r"Queued interrogation (\S+) ", ran.stderr).group(1)  # type: ignore[union-attr]
    image_path = out / f"{interrogation_id}-RealESRGAN_x2plus.webp"
    assert ran.lines == [
        "caption: a lighthouse on a cliff",
        "nsfw: no",
        "interrogation: artists: Claude Monet (24.5), Rembrandt (20.1); mediums: an oil painting (27.0)",
        f"RealESRGAN_x2plus: {image_path}",
    ]
    with Image.open(io.BytesIO(image_path.read_bytes())) as image:
        assert image.size == (128, 128)


async def test_a_timeout_cancels_prints_what_was_done_as_json_and_exits_4(
    horde: Horde, cli: Cli, tmp_path: Path
) -> None:
    requester, owner = await horde.register("alice", kudos=100), await horde.register("wally")
    source = png(tmp_path / "cat.png")
    process = await cli.start(
        "interrogate", str(source), "--form", "caption", "--form", "nsfw", "--json", "--poll-interval", "0.1",
        "--timeout", "3", "--api-key", requester.apikey,
    )  # fmt: skip
    [caption] = await pop_forms(horde, owner, process, ["caption"])  # nobody serves the nsfw form
    await submit(horde, owner, caption, {"caption": "a cat"})
    ran = await finish(process)

    assert ran.code == 4, ran
    assert "cancelled it on the server" in ran.stderr
    answer = json.loads(ran.stdout)
    states = {form["form"]: (form["state"], form["result"]) for form in answer["forms"]}
    assert states["caption"] == ("done", {"caption": "a cat"})
    assert states["nsfw"][0] == "cancelled"
    status = (await horde.client.get(f"/api/v2/interrogate/status/{answer['id']}")).json()
    assert status["state"] != "waiting"


async def test_an_unknown_form_is_refused_before_anything_is_sent(cli: Cli, tmp_path: Path) -> None:
    ran = await cli("interrogate", str(png(tmp_path / "a.png")), "--form", "palette-of-doom")

    assert ran.code == 2 and "palette-of-doom" in ran.stderr
