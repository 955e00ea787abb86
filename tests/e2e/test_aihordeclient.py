"""Conformance: the published client library aihordeclient (PyPI, 0.5.1), unmodified, against a live OpenHorde.

aihordeclient is the library of the AI Horde plug-ins for GIMP and LibreOffice; it lives in `.venv-aihordeclient`
(`scripts/setup_client_venvs.sh`) and `aihordeclient_driver.py` runs there. It always asks for ``r2: true`` and
downloads an ``img`` only when the URL starts with ``https`` (anything else it takes for base64), so the horde
runs behind a TLS proxy (`tls_proxy.py`, a self-signed certificate the driver and the worker trust) with
``OPENHORDE_PUBLIC_URL`` set to the https address, as a public horde behind nginx or Caddy would.

One server and one `openhorde-tiny` worker (``--max-power 1``) for the module.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from tests.e2e.conftest import free_port
from tests.e2e.published_clients import MODEL, Account, ClientHorde, client_python, start_horde
from tests.e2e.tls_proxy import TlsProxy, self_signed_certificate

pytestmark = pytest.mark.e2e

DRIVER = Path(__file__).resolve().parent / "aihordeclient_driver.py"
WORKER = "tiny-gimp"
STYLE_TAG = "conformance"  # aihordeclient_driver.STYLE_TAG


@dataclass
class SecureHorde:
    horde: ClientHorde
    proxy: TlsProxy
    certificate: Path
    python: Path

    @property
    def api_root(self) -> str:
        return f"{self.proxy.url}/api/v2/"

    def run(self, case: str, key: str, *args: str) -> dict[str, Any]:
        env = {"SSL_CERT_FILE": str(self.certificate)}
        return self.horde.run_driver(self.python, DRIVER, case, self.api_root, key, *args, env=env)


@pytest.fixture(scope="module")
def secure(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecureHorde]:
    python = client_python(".venv-aihordeclient")
    folder = tmp_path_factory.mktemp("aihordeclient")
    certificate, key = self_signed_certificate(folder)
    port = free_port()
    proxy = TlsProxy(certificate, key, port)
    try:
        horde = start_horde(folder, port=port, OPENHORDE_PUBLIC_URL=proxy.url)
        try:
            horde.worker_env["SSL_CERT_FILE"] = str(certificate)
            owner = horde.register("volunteer")
            horde.start_worker(WORKER, owner, proxy.url, "--max-power", "1")
            yield SecureHorde(horde, proxy, certificate, python)
        finally:
            horde.close()
    finally:
        proxy.close()


@pytest.fixture(scope="module")
def requester(secure: SecureHorde) -> Account:
    return secure.horde.register("gimp-user")


@pytest.fixture(scope="module")
def generated(secure: SecureHorde, requester: Account) -> dict[str, Any]:
    """One generate_image round trip of 64×64, 4 steps (the other tests that need a finished image share it)."""
    return secure.run("generate", requester.apikey, MODEL, "64", "64", "4")


def test_generate_image_round_trip_downloads_the_image(secure: SecureHorde, generated: dict[str, Any]) -> None:
    assert generated["errors"] == [], generated  # what its user would be shown
    [path] = generated["files"]
    with Image.open(path) as image:
        assert image.format == "WEBP" and image.size == (64, 64)
    status = secure.horde.api.get(f"/generate/status/{generated['request_id']}").json()
    [generation] = status["generations"]
    assert generation["img"].startswith(secure.proxy.url + "/"), generation
    # It downloaded the image from the https URL, rather than base64-decoding the URL as it does with any other.
    [line] = generated["image_lines"]
    assert line.split("?")[0] == "Downloading " + generation["img"].split("?")[0], generated  # signed anew each time
    assert generated["seed"] == generation["seed"] and generation["worker_name"] == WORKER
    assert generated["censored"] is False and isinstance(generated["kudos_cost"], int), generated


def test_get_model_status_lists_the_served_model(secure: SecureHorde, requester: Account) -> None:
    result = secure.run("models", requester.apikey)
    served = {m["name"]: m for m in result["status_models"]}
    assert served[MODEL]["count"] == 1 and served[MODEL]["type"] == "image", result


def test_refresh_models_reads_the_month_stats(
    secure: SecureHorde, requester: Account, generated: dict[str, Any]
) -> None:
    """The plug-ins' model list: the month's most used models (its one image is in them), no error logged (the
    round trip ends with the same refresh)."""
    assert generated["logged_errors"] == [], generated
    result = secure.run("models", requester.apikey)
    assert result["logged_errors"] == [], result
    assert result["refreshed"] is not None and result["refreshed"] >= 1, result


def test_get_balance_reads_find_user(secure: SecureHorde) -> None:
    account = secure.horde.register("balance")
    assert secure.run("balance", account.apikey)["balance"] == "You have 0 kudos"


def test_create_and_list_styles(secure: SecureHorde) -> None:
    """``create_style`` (a customizer's key) and ``get_styles`` sorted, by tag and by model, in the AI Horde's
    answer shape (``StyleStable``)."""
    customizer = secure.horde.register("stylist")
    secure.horde.set_role(customizer, "customizer")
    result = secure.run("styles", customizer.apikey, MODEL)
    assert result["errors"] == [] and result["logged_errors"] == [], result
    style_id = result["created"]["id"]
    for listing in ("popular", "by_age", "by_tag", "by_model"):
        [style] = [s for s in result[listing] if s["id"] == style_id]
        assert style["name"] == "Conformance lighthouse" and style["prompt"] == "{p}, oil painting###{np}, blurry"
        assert style["tags"] == [STYLE_TAG] and style["models"] == [MODEL], style
        assert style["params"]["steps"] == 4 and style["params"]["sampler_name"] == "k_euler", style
        assert style["public"] is True and style["nsfw"] is False and style["use_count"] == 0, style
        assert style["creator"] == customizer.username and style["examples"] == [], style
    assert result["by_other_tag"] == [], result
