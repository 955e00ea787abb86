"""Drive a live OpenHorde with the published client library `aihordeclient` (PyPI), unmodified.

aihordeclient is the library of the AI Horde plug-ins for GIMP and LibreOffice. Run this with the interpreter of
`.venv-aihordeclient` (`scripts/setup_client_venvs.sh`), never imported by pytest:

    .venv-aihordeclient/bin/python tests/e2e/aihordeclient_driver.py CASE API_ROOT API_KEY [ARGS...]

API_ROOT is the horde's ``https://host:port/api/v2/``: the library keeps its horde in the module constant
``aihordeclient.API_ROOT``, which is what a program sets to use another horde. The library only downloads an
``img`` that starts with ``https`` (and always asks for ``r2: true``), so the horde must be served over https; the
caller trusts the test certificate with ``SSL_CERT_FILE``. Cases:

* ``generate MODEL WIDTH HEIGHT STEPS``: ``AiHordeClient.generate_image(options)``, the plug-ins' whole round
  trip: ``POST generate/async``, ``GET generate/check/{id}`` until ``finished``, ``GET generate/status/{id}``, a
  download of each image, then its model refresh;
* ``models``: ``get_model_status()`` (``GET status/models``) and ``refresh_models()`` (``GET
  stats/img/models?model_state=known``, the most used models of the month);
* ``styles``: ``create_style(...)`` (``POST styles/image``, the key must be a customizer's) and ``get_styles``
  (``GET styles/image`` sorted, by tag and by model);
* ``balance``: ``get_balance()`` (``GET find_user``).

The library also reads two files from GitHub (the model and style references); they are pointed at local files
(its class attributes ``MODEL_REQUIREMENTS_URL`` and ``STYLE_REFERENCE_URL``, which a program may set), as the
test has no Internet. Prints on stdout one line ``RESULT {json}``: what the library returned, what it told its
user (``InformerFrontend.show_message``/``show_error``) and the errors it logged.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

import aihordeclient
from aihordeclient import AiHordeClient, InformerFrontend

CLIENT_NAME = "OpenHordeConformance"
PROMPT = "a lighthouse on a cliff at dusk"
STYLE_TAG = "conformance"


class Informer(InformerFrontend):
    """What a plug-in's user would see: messages, errors and progress, recorded."""

    def __init__(self, folder: Path) -> None:
        super().__init__()
        self.folder = folder
        self.messages: list[str] = []
        self.errors: list[str] = []
        self.statuses: list[str] = []
        self.finished = False

    def show_message(self, message: str, url: str = "", title: str = "", buttons: int = 0) -> None:
        self.messages.append(message)

    def show_error(self, message: str, url: str = "", title: str = "", buttons: int = 0) -> None:
        self.errors.append(message)

    def has_asked_for_update(self) -> bool:
        return True  # the plug-ins look for a newer plug-in once a session: not the horde's business

    def just_asked_for_update(self) -> None:
        pass

    def update_status(self, text: str, progress: float = 0.0) -> None:
        if not self.statuses or self.statuses[-1] != text:
            self.statuses.append(text)

    def set_finished(self) -> None:
        self.finished = True

    def path_store_directory(self) -> str:
        return str(self.folder)


class LogRecords(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[tuple[int, str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append((record.levelno, record.getMessage()))


def make_client(api_key: str, informer: Informer, folder: Path) -> AiHordeClient:
    model_reference = folder / "model_reference.json"
    model_reference.write_text(json.dumps({}))
    style_reference = folder / "style_reference.json"
    style_reference.write_text(json.dumps({}))
    # A plug-in passes the settings it stored, which hold its model list (refresh_models, at the end of every
    # round trip, reads local_settings["models"] and fails with a KeyError when it is missing).
    settings = {"api_key": api_key, "max_wait_minutes": 2, "local_settings": {"models": list(aihordeclient.MODELS)}}
    client = AiHordeClient("1.0.0", "", "", "", settings=settings, client_name=CLIENT_NAME, informer=informer)
    client.MODEL_REQUIREMENTS_URL = model_reference.as_uri()
    client.STYLE_REFERENCE_URL = style_reference.as_uri()
    return client


def generate(client: AiHordeClient, api_key: str, model: str, width: str, height: str, steps: str) -> dict[str, Any]:
    options = {
        "api_key": api_key,
        "prompt": PROMPT,
        "model": model,
        "prompt_strength": 7.5,
        "steps": int(steps),
        "seed": "",
        "image_width": int(width),
        "image_height": int(height),
        "nsfw": False,
        "censor_nsfw": True,
        "max_wait_minutes": 2,
    }
    started = time.monotonic()
    files = client.generate_image(options)
    return {
        "seconds": time.monotonic() - started,
        "files": list(files or []),
        "request_id": client.id,
        "seed": client.settings.get("seed"),
        "kudos_cost": client.kudos_cost,
        "censored": client.censored,
        "description": client.get_full_description() if files else "",
    }


def models(client: AiHordeClient, logs: LogRecords) -> dict[str, Any]:
    status = client.get_model_status()
    client.refresh_models()
    downloaded = [int(text.split()[1]) for _, text in logs.lines if text.startswith("Downloaded ")]
    return {
        "status_models": status,
        "refreshed": downloaded[0] if downloaded else None,
        "local_settings": client.settings.get("local_settings"),
    }


def styles(client: AiHordeClient, model: str) -> dict[str, Any]:
    created = client.create_style(
        {
            "name": "Conformance lighthouse",
            "info": "A style made by aihordeclient.",
            "prompt": "{p}, oil painting###{np}, blurry",
            "params": {"width": 64, "height": 64, "steps": 4, "sampler_name": "k_euler", "cfg_scale": 6.0},
            "public": True,
            "nsfw": False,
            "tags": [STYLE_TAG],
            "models": [model],
        }
    )
    return {
        "created": created,
        "popular": client.get_styles(sort="popular", page=1),
        "by_age": client.get_styles(sort="age", page=1),
        "by_tag": client.get_styles(tag=STYLE_TAG),
        "by_other_tag": client.get_styles(tag="no-such-tag"),
        "by_model": client.get_styles(model=model),
    }


def main() -> None:
    case, api_root, api_key, *rest = sys.argv[1:]
    logs = LogRecords()
    logging.basicConfig(level=logging.DEBUG, stream=sys.stderr)
    logging.getLogger().addHandler(logs)
    aihordeclient.API_ROOT = api_root
    folder = Path.cwd()
    informer = Informer(folder)
    client = make_client(api_key, informer, folder)
    result: dict[str, Any]
    if case == "generate":
        result = generate(client, api_key, *rest)
    elif case == "models":
        result = models(client, logs)
    elif case == "styles":
        result = styles(client, rest[0])
    elif case == "balance":
        result = {"balance": client.get_balance()}
    else:
        raise SystemExit(f"unknown case {case!r}")
    result.update(
        messages=informer.messages,
        errors=informer.errors,
        statuses=informer.statuses,
        logged_errors=[text for level, text in logs.lines if level >= logging.ERROR],
        # How it took each image: "Downloading <url>" or "Storing embebed image <n>" (sic).
        image_lines=[text for _, text in logs.lines if text.startswith(("Downloading http", "Storing embebed"))],
    )
    print("RESULT " + json.dumps(result, default=str), flush=True)


if __name__ == "__main__":
    main()
