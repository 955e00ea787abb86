"""Drive a live OpenHorde with the published client library `horde-client` (PyPI), unmodified.

Run with the interpreter of `.venv-horde-client` (`scripts/setup_client_venvs.sh`), never imported by pytest:

    .venv-horde-client/bin/python tests/e2e/horde_client_driver.py CASE BASE_URL API_KEY [ARGS...]

BASE_URL is the horde's ``http://host:port/api/`` (the library joins ``v2/...`` to it). Cases:

* ``models``: ``HordeClient.list_models(ModelType.image)``, sorted by performance and by name;
* ``generate MODEL [WIDTH HEIGHT STEPS]``: ``HordeClient.image_gen(prompt)`` for MODEL, with the library's
  default parameters (512×512, 20 steps, an empty seed, ``censor_nsfw: true``, ``r2: false``, ...) or only the
  size and steps changed. It polls ``/generate/check/{id}`` every 12 s until ``done`` or ``not is_possible``,
  then reads ``/generate/status/{id}`` once.

Prints on stdout one line ``RESULT {json}``: what the library returned, as its own pydantic models dump it,
plus the seconds the call took and the body the library sends (its request model, dumped as it dumps it).
"""

from __future__ import annotations

import json
import sys
import time
import warnings
from typing import Any

warnings.simplefilter("ignore")  # langchain 0.0.291 and its dependencies warn on import under a newer Python

from horde_client import HordeClient, ImageGenParams, ModelType  # noqa: E402
from horde_client import model as horde_model  # noqa: E402

PROMPT = "a lighthouse on a cliff at dusk"


def list_models(client: HordeClient) -> dict[str, Any]:
    by_performance = client.list_models(ModelType.image)
    by_name = client.list_models(ModelType.image, sort_by=horde_model.SortBy.name)
    return {
        "by_performance": [m.model_dump(mode="json") for m in by_performance],
        "by_name": [m.name for m in by_name],
    }


def generate(client: HordeClient, model: str, size: list[str]) -> dict[str, Any]:
    client.set_model(model)
    params = ImageGenParams()
    if size:
        width, height, steps = (int(value) for value in size)
        params = ImageGenParams(width=width, height=height, steps=steps)
    sent = horde_model.ImageGenRequest(models=[model], params=params, prompt=PROMPT).model_dump(mode="json")
    started = time.monotonic()
    answer = client.image_gen(PROMPT, params) if size else client.image_gen(PROMPT)
    return {"seconds": time.monotonic() - started, "sent": sent, "answer": answer.model_dump(mode="json")}


def main() -> None:
    case, base_url, api_key, *rest = sys.argv[1:]
    client = HordeClient(base_url=base_url, api_token=api_key, insecure=True)
    if case == "models":
        result = list_models(client)
    elif case == "generate":
        result = generate(client, rest[0], rest[1:])
    else:
        raise SystemExit(f"unknown case {case!r}")
    print("RESULT " + json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
