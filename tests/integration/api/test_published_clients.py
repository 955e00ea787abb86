"""What published AI Horde client libraries send and expect, byte for byte (tests/e2e runs the libraries).

horde-client 1.0.3 sends its pydantic defaults (an empty seed, fields we do not know) and validates the answers
with strict models: ``kudos`` a whole number in the async, check and status answers, a generation's seed that
reads as an integer.
"""

from __future__ import annotations

import base64
import io

from PIL import Image

from tests.live_server import Horde

# `horde_client.model.ImageGenRequest(models=[...], params=ImageGenParams(), prompt=...).model_dump()`, 1.0.3.
HORDE_CLIENT_DEFAULT_BODY = {
    "models": ["stable_diffusion"],
    "params": {
        "width": 512,
        "height": 512,
        "n": 1,
        "steps": 20,
        "seed": "",
        "sampler_name": "k_euler_a",
        "karras": False,
        "cfg_scale": 7.0,
        "post_processing": [],
        "loras": [],
    },
    "prompt": "a lighthouse on a cliff",
    "use_default_badwordsids": True,
    "workers": [],
    "censor_nsfw": True,
    "nsfw": False,
    "r2": False,
    "replacement_filter": True,
}
HORDE_CLIENT_HEADERS = {"User-Agent": "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36"}


async def test_horde_client_default_request_is_served_as_the_library_reads_it(horde: Horde) -> None:
    requester = await horde.register("asker")
    owner = await horde.register("volunteer")
    created = await horde.client.post(
        "/api/v2/generate/async",
        json=HORDE_CLIENT_DEFAULT_BODY,
        headers={"Apikey": requester.apikey, **HORDE_CLIENT_HEADERS},
    )
    assert created.status_code == 202, created.text
    assert isinstance(created.json()["kudos"], int)
    request_id = created.json()["id"]

    job = await horde.pop(owner, max_pixels=512 * 512)
    payload = job["payload"]
    assert (payload["width"], payload["height"], payload["ddim_steps"]) == (512, 512, 20)
    assert payload["seed"].isdigit() and payload["use_nsfw_censor"] is True  # an empty seed means a random one
    assert (await horde.upload_and_submit(owner, job, seed=int(payload["seed"]))).status_code == 200

    status = (await horde.client.get(f"/api/v2/generate/status/{request_id}", headers=HORDE_CLIENT_HEADERS)).json()
    assert status["done"] is True and status["is_possible"] is True and isinstance(status["kudos"], int)
    [generation] = status["generations"]
    assert int(generation["seed"]) == int(payload["seed"]) and generation["state"] == "ok"
    # r2 false: the image inline, base64 of a WebP.
    image = Image.open(io.BytesIO(base64.b64decode(generation["img"], validate=True)))
    assert image.format == "WEBP"


async def test_check_and_status_give_whole_kudos(horde: Horde) -> None:
    """The reference server sends ``round(consumed_kudos)``; a fraction breaks typed clients such as horde-client."""
    requester = await horde.register("asker", kudos=1000)
    owner = await horde.register("volunteer")
    params = {"width": 64, "height": 64, "steps": 4}
    price = (await horde.generate(requester, params=params, dry_run=True)).json()["kudos"]
    assert price != round(price)  # a price with a fraction, or this test proves nothing
    request_id = (await horde.generate(requester, params=params)).json()["id"]
    assert (await horde.upload_and_submit(owner, await horde.pop(owner))).status_code == 200

    check = await horde.check(request_id)
    status = (await horde.client.get(f"/api/v2/generate/status/{request_id}")).json()
    for answer in (check, status):
        assert answer["done"] is True
        assert isinstance(answer["kudos"], int) and answer["kudos"] == round(price), answer
