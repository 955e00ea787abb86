"""The models, workers, account and my-workers pages in Chromium, against a live server and a tiny-model worker.

One server per module (`horde` from the conftest) with one worker, owned by the account `owner`, so the
owner's page has something to switch. Every page is photographed at desktop and phone size.
"""

from __future__ import annotations

import re
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from playwright.sync_api import Page, expect
from tests.e2e.conftest import openhorde_command
from tests.e2e.web.conftest import LOW_CONTRAST, MODEL, UNLABELLED, Account, WebHorde, WorkerProcess, screenshot

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

# A worker's first pop and two shared CPU cores can be slow; Playwright's expect() timeout is global.
expect.set_options(timeout=20_000)

PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 900}
PAGES = ["models", "workers", "my-workers", "account"]


@dataclass
class OwnedWorker:
    owner: Account
    process: WorkerProcess
    id: str


@pytest.fixture(scope="module")
def owned(horde: WebHorde) -> OwnedWorker:
    """A tiny-model worker run with the key of the account `owner`, online."""
    owner = horde.register("owner")
    process = horde.start_worker("owners-tiny-worker", owner)
    horde.wait_for_model(process)
    [found] = [w for w in horde.api.get("/workers").json() if w["name"] == process.name]
    return OwnedWorker(owner, process, found["id"])


def open_page(
    page_factory: Callable[..., Page],
    horde: WebHorde,
    name: str,
    key: str | None = None,
    viewport: dict[str, int] | None = None,
) -> Page:
    page = page_factory(horde, key=key, viewport=viewport)
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(f"/#/{name}")
    expect(page.get_by_test_id("view")).to_have_attribute("data-page", name)
    assert not errors, errors
    return page


def set_role(horde: WebHorde, account: Account, role: str, *flags: str) -> None:
    """`openhorde admin set-role`, on the server's own data directory."""
    command = [*openhorde_command(), "admin", "set-role", str(account.id), role, *flags]
    done = subprocess.run(
        [*command, "--data-dir", str(horde.server.data_dir)], capture_output=True, cwd=horde.folder, timeout=120
    )
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    # On SQLite the server hears of the change only when its key cache expires (README, "The hot path").
    wanted = "--off" not in flags
    deadline = time.monotonic() + 15
    while horde.api.get("/find_user", headers={"apikey": account.apikey}).json().get(role) != wanted:
        assert time.monotonic() < deadline, f"the server never saw {account.id}'s {role} role change"
        time.sleep(0.2)


def worker_state(horde: WebHorde, worker_id: str, key: str) -> dict[str, Any]:
    answer = horde.api.get(f"/workers/{worker_id}", headers={"apikey": key})
    assert answer.status_code == 200, answer.text
    details: dict[str, Any] = answer.json()
    return details


def no_sideways_scroll(page: Page) -> None:
    width = page.evaluate("document.documentElement.scrollWidth")
    viewport = page.viewport_size
    assert viewport is not None and width <= viewport["width"], f"the page is {width} px wide"


# ---------------------------------------------------------------- account


def test_register_shows_the_key_once_and_signs_in(page_factory: Callable[..., Page], horde: WebHorde) -> None:
    page = open_page(page_factory, horde, "account")
    page.get_by_test_id("register-username").fill("newcomer")
    page.get_by_test_id("register-submit").click()

    key = page.get_by_test_id("new-apikey")
    expect(key).to_have_text(re.compile(r"^\S{22}$"))
    apikey = key.inner_text()
    expect(page.get_by_test_id("account-username")).to_have_text(re.compile(r"^newcomer#\d+$"))
    expect(page.get_by_test_id("kudos-balance")).to_have_text("0")
    expect(page.get_by_test_id("whoami")).to_contain_text("newcomer#")
    assert page.evaluate("localStorage.getItem('openhorde.apikey')") == apikey
    found = horde.api.get("/find_user", headers={"apikey": apikey})
    assert found.status_code == 200 and found.json()["username"].startswith("newcomer#")
    screenshot(page, "account-registered-desktop")

    page.get_by_test_id("dismiss-new-key").click()
    expect(page.get_by_test_id("new-key-banner")).to_have_count(0)
    expect(page.get_by_test_id("account-summary")).to_be_visible()


def test_register_refusal_is_a_plain_sentence(page_factory: Callable[..., Page], horde: WebHorde) -> None:
    page = open_page(page_factory, horde, "account")
    page.get_by_test_id("register-username").fill("x")
    page.get_by_test_id("register-submit").click()
    error = page.get_by_test_id("register-error")
    expect(error).to_have_text("User name needs at least 2 characters.")  # not the validator's own text
    assert page.evaluate("localStorage.getItem('openhorde.apikey')") is None


def test_sign_out_and_sign_in_again_with_the_key(page_factory: Callable[..., Page], horde: WebHorde) -> None:
    someone = horde.register("returning", kudos=25)
    page = open_page(page_factory, horde, "account")
    page.get_by_test_id("signin-key").fill(someone.apikey)
    page.get_by_test_id("signin-submit").click()
    expect(page.get_by_test_id("account-username")).to_have_text(someone.username)
    expect(page.get_by_test_id("kudos-balance")).to_have_text("25")

    page.get_by_test_id("signout").click()
    expect(page.get_by_test_id("signin-form")).to_be_visible()
    expect(page.get_by_test_id("whoami")).to_have_text("anonymous")
    assert page.evaluate("localStorage.getItem('openhorde.apikey')") is None
    screenshot(page, "account-signed-out-desktop")

    page.get_by_test_id("signin-key").fill(f"  {someone.apikey} ")
    page.get_by_test_id("signin-submit").click()
    expect(page.get_by_test_id("account-username")).to_have_text(someone.username)
    page.reload()
    expect(page.get_by_test_id("account-username")).to_have_text(someone.username)


def test_a_bad_key_says_so_without_sending_people_to_another_site(
    page_factory: Callable[..., Page], horde: WebHorde
) -> None:
    bad = "this-key-is-not-real-00"
    page = open_page(page_factory, horde, "account")
    page.get_by_test_id("signin-key").fill(bad)
    page.get_by_test_id("signin-submit").click()
    error = page.get_by_test_id("signin-error")
    expect(error).to_contain_text("This API key is not known on this server.")
    expect(error).to_contain_text("register on this page")
    assert not re.search(r"https?:|stablehorde|aihorde", error.inner_text(), re.IGNORECASE)
    expect(page.get_by_test_id("signin-form")).to_be_visible()
    assert page.evaluate("localStorage.getItem('openhorde.apikey')") is None


def test_transfer_moves_kudos_and_shows_in_the_history(page_factory: Callable[..., Page], horde: WebHorde) -> None:
    sender = horde.register("sender", kudos=300)
    recipient = horde.register("recipient")
    page = open_page(page_factory, horde, "account", key=sender.apikey)
    expect(page.get_by_test_id("kudos-balance")).to_have_text("300")
    rows = page.get_by_test_id("history-row")
    expect(rows).to_have_count(1)
    expect(rows.first.get_by_test_id("history-amount")).to_have_text("+300")

    # Refused: more than the balance; the API's message is shown and nothing moves.
    page.get_by_test_id("transfer-username").fill(recipient.username)
    page.get_by_test_id("transfer-amount").fill("5000")
    page.get_by_test_id("transfer-submit").click()
    expect(page.get_by_test_id("transfer-error")).to_contain_text("Not enough kudos")
    expect(page.get_by_test_id("kudos-balance")).to_have_text("300")

    page.get_by_test_id("transfer-amount").fill("120")
    page.get_by_test_id("transfer-submit").click()
    expect(page.get_by_test_id("kudos-balance")).to_have_text("180")
    expect(page.get_by_test_id("transfer-error")).to_be_hidden()
    expect(rows).to_have_count(2)
    newest = rows.first
    expect(newest.get_by_test_id("history-what")).to_have_text("Transfer sent")
    expect(newest.get_by_test_id("history-amount")).to_have_text("−120")
    expect(newest.get_by_test_id("history-memo")).to_have_text(f"to {recipient.username}")
    expect(page.get_by_test_id("kudos-gifted")).to_have_text("120")
    expect(page.get_by_test_id("whoami")).to_contain_text("180 kudos")
    received = horde.api.get("/find_user", headers={"apikey": recipient.apikey}).json()
    assert received["kudos"] == 120
    screenshot(page, "account-transfer-desktop")


# ---------------------------------------------------------------- models and workers


def test_models_page_lists_the_workers_model(
    page_factory: Callable[..., Page], horde: WebHorde, owned: OwnedWorker
) -> None:
    page = open_page(page_factory, horde, "models")
    card = page.locator(f'[data-testid="model-card"][data-model="{MODEL}"]')
    expect(card.get_by_test_id("model-count")).to_have_text("1")
    expect(card.get_by_test_id("model-status")).to_have_text("online")
    expect(card.locator(f'[data-testid="model-worker"][data-worker="{owned.process.name}"]')).to_be_visible()
    expect(card.get_by_test_id("model-capabilities")).to_contain_text("img2img")
    screenshot(page, "models-desktop")

    page.get_by_test_id("models-filter").fill("no-such-model")
    expect(page.get_by_test_id("models-empty")).to_be_visible()
    page.get_by_test_id("models-filter").fill("")
    card.get_by_test_id("model-generate").click()
    expect(page).to_have_url(re.compile(r"#/generate$"))
    expect(page.get_by_test_id("model-select")).to_have_value(MODEL)

    # An idle catalogue model can be picked too (its requests wait for a worker).
    page.goto("/#/models")
    page.locator(".idle-models > summary").click()
    idle = page.get_by_test_id("model-offline").first
    idle_name = idle.get_attribute("data-model")
    idle.get_by_test_id("model-generate").click()
    expect(page.get_by_test_id("model-select")).to_have_value(idle_name or "")


def test_workers_page_shows_the_worker_online_with_its_capabilities(
    page_factory: Callable[..., Page], horde: WebHorde, owned: OwnedWorker
) -> None:
    details = worker_state(horde, owned.id, owned.owner.apikey)
    page = open_page(page_factory, horde, "workers")
    row = page.locator(f'[data-testid="worker-row"][data-worker="{owned.process.name}"]')
    expect(row.locator('[data-state="online"]')).to_be_visible()
    expect(row.get_by_test_id("worker-models")).to_have_text(MODEL)
    chips = row.get_by_test_id("worker-capabilities")
    for capability in ("img2img", "painting", "lora"):
        on = "on" if details[capability] else "off"
        expect(chips.locator(f'[data-capability="{capability}"]')).to_have_class(re.compile(rf"\b{on}\b"))
    side = int(details["max_pixels"] ** 0.5) // 64 * 64
    expect(chips.locator('[data-capability="max-size"]')).to_have_text(f"max {side}×{side}")
    expect(row.get_by_test_id("worker-requests")).to_have_text(str(details["requests_fulfilled"]))
    expect(page.get_by_test_id("workers-summary")).to_contain_text("online")
    screenshot(page, "workers-desktop")

    page.get_by_test_id("workers-filter").fill("nobody-is-called-this")
    expect(page.get_by_test_id("workers-empty")).to_be_visible()
    page.get_by_test_id("workers-filter").fill(MODEL)
    expect(row).to_be_visible()


# ---------------------------------------------------------------- my workers


def test_my_workers_switches_maintenance(
    page_factory: Callable[..., Page], horde: WebHorde, owned: OwnedWorker
) -> None:
    key = owned.owner.apikey
    page = open_page(page_factory, horde, "my-workers", key=key)
    card = page.locator(f'[data-testid="my-worker"][data-worker-id="{owned.id}"]')
    expect(card.get_by_test_id("worker-name")).to_have_text(owned.process.name)
    expect(card.locator('[data-state="online"]')).to_be_visible()
    try:
        card.get_by_test_id("maintenance-msg").fill("swapping the disk")
        card.get_by_test_id("toggle-maintenance").click()
        expect(card.locator('[data-state="maintenance"]')).to_be_visible()
        expect(card.get_by_test_id("toggle-maintenance")).to_be_checked()
        assert worker_state(horde, owned.id, key)["maintenance_mode"] is True
        screenshot(page, "my-workers-maintenance-desktop")

        card.get_by_test_id("toggle-maintenance").click()
        expect(card.locator('[data-state="maintenance"]')).to_have_count(0)
        expect(card.get_by_test_id("toggle-maintenance")).not_to_be_checked()
        assert worker_state(horde, owned.id, key)["maintenance_mode"] is False
    finally:
        horde.api.put(f"/workers/{owned.id}", headers={"apikey": key}, json={"maintenance": False})


def test_pausing_is_refused_to_an_owner_with_the_api_message(
    page_factory: Callable[..., Page], horde: WebHorde, owned: OwnedWorker
) -> None:
    key = owned.owner.apikey
    refusal = horde.api.put(f"/workers/{owned.id}", headers={"apikey": key}, json={"paused": True})
    assert refusal.status_code >= 400
    page = open_page(page_factory, horde, "my-workers", key=key)
    card = page.locator(f'[data-testid="my-worker"][data-worker-id="{owned.id}"]')
    card.get_by_test_id("toggle-paused").click()
    expect(card.get_by_test_id("worker-error")).to_have_text(refusal.json()["message"])
    screenshot(page, "my-workers-refused-desktop")
    expect(card.get_by_test_id("toggle-paused")).not_to_be_checked()
    assert worker_state(horde, owned.id, key)["paused"] is False


def test_a_moderator_pauses_and_resumes_a_worker(
    page_factory: Callable[..., Page], horde: WebHorde, owned: OwnedWorker
) -> None:
    key = owned.owner.apikey
    set_role(horde, owned.owner, "moderator")
    try:
        page = open_page(page_factory, horde, "my-workers", key=key)
        card = page.locator(f'[data-testid="my-worker"][data-worker-id="{owned.id}"]')
        card.get_by_test_id("toggle-paused").click()
        expect(card.locator('[data-state="paused"]')).to_be_visible()
        assert worker_state(horde, owned.id, key)["paused"] is True
        card.get_by_test_id("toggle-paused").click()
        expect(card.locator('[data-state="paused"]')).to_have_count(0)
        assert worker_state(horde, owned.id, key)["paused"] is False
        expect(card.get_by_test_id("worker-error")).to_have_count(0)
        # The account page names the roles, an admin's too (it said "No special roles" to an admin).
        set_role(horde, owned.owner, "admin")
        page.get_by_role("link", name="Account").click()
        roles = page.get_by_test_id("account-roles")
        expect(roles.locator('[data-role="admin"]')).to_have_text("admin")
        expect(roles.locator('[data-role="moderator"]')).to_have_text("moderator")
    finally:
        horde.api.put(f"/workers/{owned.id}", headers={"apikey": key}, json={"paused": False})
        set_role(horde, owned.owner, "moderator", "--off")
        set_role(horde, owned.owner, "admin", "--off")


def test_my_workers_without_a_worker_or_an_account(page_factory: Callable[..., Page], horde: WebHorde) -> None:
    page = open_page(page_factory, horde, "my-workers")
    expect(page.get_by_test_id("run-worker-howto")).to_be_visible()
    expect(page.get_by_test_id("run-worker-command")).to_contain_text(f"openhorde worker --url {horde.url} --api-key")

    idle = horde.register("idle")
    page = open_page(page_factory, horde, "my-workers", key=idle.apikey)
    expect(page.get_by_test_id("my-workers-empty")).to_be_visible()
    expect(page.get_by_test_id("copy-worker-command")).to_be_visible()


# ---------------------------------------------------------------- every page, desktop and phone


@pytest.mark.parametrize("name", PAGES)
@pytest.mark.parametrize("size", ["desktop", "phone"])
def test_page_layout(
    page_factory: Callable[..., Page], horde: WebHorde, owned: OwnedWorker, name: str, size: str
) -> None:
    viewport = PHONE if size == "phone" else DESKTOP
    page = open_page(page_factory, horde, name, key=owned.owner.apikey, viewport=viewport)
    landmark = {
        "models": f'[data-testid="model-card"][data-model="{MODEL}"]',
        "workers": f'[data-testid="worker-row"][data-worker="{owned.process.name}"]',
        "my-workers": f'[data-testid="my-worker"][data-worker-id="{owned.id}"]',
        "account": '[data-testid="history-body"] >> [data-testid="history-empty"]',
    }[name]
    expect(page.locator(landmark)).to_be_visible()
    if name == "models":  # open the catalogue's idle models too: long names must fit a phone
        page.locator(".idle-models > summary").click()
        expect(page.get_by_test_id("model-offline").first).to_be_visible()
    if size == "phone":
        expect(page.get_by_test_id("menu-toggle")).to_be_visible()
        if name == "workers":
            expect(page.locator("table.table-cards thead")).to_be_hidden()
    no_sideways_scroll(page)
    assert page.evaluate(LOW_CONTRAST) == []
    assert page.evaluate(UNLABELLED) == []
    screenshot(page, f"{name}-{size}")


def test_signed_out_account_page_at_phone_size(page_factory: Callable[..., Page], horde: WebHorde) -> None:
    page = open_page(page_factory, horde, "account", viewport=PHONE)
    expect(page.get_by_test_id("register-form")).to_be_visible()
    expect(page.get_by_test_id("signin-form")).to_be_visible()
    no_sideways_scroll(page)
    screenshot(page, "account-signed-out-phone")
