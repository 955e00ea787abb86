"""The gallery page in Chromium: a signed-in user's kept images with their settings, re-run, use as source,
download, delete and paging; what an anonymous user sees. Images are made through the API (64 px, 2 steps)."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from playwright.sync_api import Page, expect
from tests.e2e.web.conftest import MODEL, Account, WebHorde, WorkerProcess, screenshot

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

PAGE_SIZE = 24
SMALL = {"width": 64, "height": 64, "steps": 2, "sampler_name": "k_euler", "cfg_scale": 6.5}


def make_images(horde: WebHorde, account: Account, prompt: str, n: int = 1, **params: Any) -> str:
    """Queue a gallery request through the API and wait until its images are done; returns the request id."""
    body = {"prompt": prompt, "params": {**SMALL, "n": n, **params}, "models": [MODEL], "gallery": True}
    answer = horde.api.post("/generate/async", json=body, headers={"apikey": account.apikey})
    assert answer.status_code == 202, answer.text
    request_id = str(answer.json()["id"])
    deadline = time.monotonic() + 40 + 10 * n
    while time.monotonic() < deadline:
        check = horde.api.get(f"/generate/check/{request_id}").json()
        if check["done"]:
            return request_id
        assert not check["faulted"], check
        time.sleep(0.3)
    pytest.fail(f"request {request_id} not done: {check}\n{horde.workers[-1].log_tail()}")


def answer_forms(horde: WebHorde, results: dict[str, Any]) -> None:
    """Play the alchemist: pop the forms named in ``results`` (the image must decode) and submit each answer."""
    alchemist = horde.register("alchemist")
    headers = {"apikey": alchemist.apikey}
    popped: list[dict[str, Any]] = []
    deadline = time.monotonic() + 20
    while len(popped) < len(results) and time.monotonic() < deadline:
        body = {"name": "scripted-alchemist", "forms": list(results), "amount": len(results)}
        popped += horde.api.post("/interrogate/pop", json=body, headers=headers).json()["forms"]
        time.sleep(0.2)
    assert len(popped) == len(results), popped
    for form in popped:
        assert httpx.get(form["source_image"], timeout=30).status_code == 200  # the image itself was sent
        name = form["form"]
        submitted = {"id": form["id"], "result": {name: results[name]}, "state": "ok"}
        assert horde.api.post("/interrogate/submit", json=submitted, headers=headers).status_code == 200


def gallery_total(horde: WebHorde, account: Account) -> int:
    return int(horde.api.get("/gallery", headers={"apikey": account.apikey}).json()["total"])


def test_gallery_items_open_in_the_lightbox_and_their_menu_reruns_reuses_downloads_and_deletes(
    page_factory: Callable[..., Page], horde: WebHorde, worker: WorkerProcess
) -> None:
    owner = horde.register("collector")
    make_images(horde, owner, "a castle in the clouds###rain", seed="4242")
    make_images(horde, owner, "a green teapot")
    page = page_factory(horde, owner.apikey)
    page.goto("/#/gallery")
    items = page.get_by_test_id("gallery-item")
    expect(items).to_have_count(2)
    expect(page.get_by_test_id("gallery-count")).to_have_text("2 images, newest first.")
    expect(items.first).to_contain_text("a green teapot")  # newest first
    # One row of controls per tile: a tick box and a menu button, whatever the screen.
    assert items.first.get_by_role("button", name="More actions").is_visible()
    expect(items.first.get_by_test_id("item-actions")).to_be_hidden()
    screenshot(page, "gallery")

    # The tile opens the lightbox, with the image's settings beside it; the previous image is the teapot.
    castle = items.filter(has_text="a castle in the clouds")
    castle.get_by_test_id("open-image").click()
    box = page.get_by_test_id("lightbox")
    expect(box.get_by_test_id("lightbox-counter")).to_have_text("2 of 2")
    settings = box.get_by_test_id("lightbox-settings")
    for text in ("rain", "4242", "k_euler", "64×64", MODEL, "tiny-worker"):
        expect(settings).to_contain_text(text)
    download = box.get_by_test_id("lightbox-download")
    expect(download).to_have_attribute("download", "openhorde-4242.webp")
    href = download.get_attribute("href")
    assert href is not None and httpx.get(href, timeout=30).status_code == 200
    assert httpx.head(href, timeout=30).status_code == 200  # HEAD answers like GET (was 405)
    screenshot(page, "gallery-lightbox", full_page=False)

    # Interrogate: the browser sends the image; a scripted alchemist answers through the API.
    box.get_by_test_id("interrogate-toggle").click()
    box.get_by_test_id("interrogate-form-nsfw").check()
    box.get_by_test_id("interrogate-submit").click()
    expect(box.get_by_test_id("interrogate-status")).to_contain_text("Waiting for an alchemist")
    answer_forms(horde, {"caption": "a castle above the clouds", "nsfw": False})
    expect(box.get_by_test_id("interrogate-caption")).to_have_text("a castle above the clouds", timeout=15_000)
    expect(box.get_by_test_id("interrogate-nsfw")).to_have_text("looks safe")
    expect(box.get_by_test_id("interrogate-status")).to_have_text("Interrogation done.")
    page.keyboard.press("ArrowLeft")
    expect(box.get_by_test_id("lightbox-settings")).to_contain_text("a green teapot")
    page.keyboard.press("ArrowRight")
    box.get_by_test_id("lightbox-rerun").click()
    expect(page.get_by_test_id("prompt")).to_have_value("a castle in the clouds")
    expect(page.get_by_test_id("negative-prompt")).to_have_value("rain")
    expect(page.get_by_test_id("seed")).to_have_value("4242")
    expect(page.get_by_test_id("steps")).to_have_value("2")
    expect(page.get_by_test_id("sampler")).to_have_value("k_euler")
    expect(page.get_by_test_id("width")).to_have_value("64")
    expect(page.get_by_test_id("mode-txt2img")).to_be_checked()
    screenshot(page, "gallery-rerun")

    page.goto("/#/gallery")
    teapot = page.get_by_test_id("gallery-item").filter(has_text="a green teapot")
    teapot.get_by_test_id("item-menu").click()
    screenshot(page, "gallery-menu", full_page=False)
    teapot.get_by_test_id("use-as-source").click()
    expect(page.get_by_test_id("mode-img2img")).to_be_checked()
    expect(page.get_by_test_id("source-preview")).to_be_visible()
    expect(page.get_by_test_id("source-info")).to_contain_text("64×64")
    screenshot(page, "gallery-use-as-source")

    page.goto("/#/gallery")
    teapot = page.get_by_test_id("gallery-item").filter(has_text="a green teapot")
    teapot.get_by_test_id("item-menu").click()
    expect(teapot.get_by_test_id("download")).to_have_attribute("href", re.compile(r"/blobs/"))
    teapot.get_by_test_id("delete").click()
    expect(teapot.get_by_test_id("confirm-delete")).to_be_visible()
    teapot.get_by_test_id("confirm-delete-no").click()  # changed my mind
    expect(page.get_by_test_id("gallery-item")).to_have_count(2)
    teapot.get_by_test_id("item-menu").click()
    teapot.get_by_test_id("delete").click()
    screenshot(page, "gallery-confirm-delete", full_page=False)
    teapot.get_by_test_id("confirm-delete-yes").click()
    expect(page.get_by_test_id("gallery-item")).to_have_count(1)
    expect(page.get_by_test_id("gallery-count")).to_have_text("1 image, newest first.")
    assert gallery_total(horde, owner) == 1


def test_several_images_are_selected_then_downloaded_and_deleted_together(
    page_factory: Callable[..., Page], horde: WebHorde, worker: WorkerProcess
) -> None:
    owner = horde.register("tidy")
    make_images(horde, owner, "a pebble", n=3)
    page = page_factory(horde, owner.apikey, viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
    page.goto("/#/gallery")
    items = page.get_by_test_id("gallery-item")
    expect(items).to_have_count(3)
    expect(page.get_by_test_id("selection-bar")).to_be_hidden()
    # A swipe in the lightbox goes to the next image.
    items.nth(0).get_by_test_id("open-image").tap()
    counter = page.get_by_test_id("lightbox-counter")
    expect(counter).to_have_text("1 of 3")
    stage = page.get_by_test_id("lightbox-stage").bounding_box()
    assert stage is not None
    middle = stage["y"] + stage["height"] / 2
    page.mouse.move(stage["x"] + stage["width"] * 0.8, middle)
    page.mouse.down()
    page.mouse.move(stage["x"] + stage["width"] * 0.2, middle, steps=5)
    page.mouse.up()
    expect(counter).to_have_text("2 of 3")
    page.get_by_test_id("lightbox-close").tap()
    items.nth(0).get_by_test_id("select-image").check()
    items.nth(1).get_by_test_id("select-image").check()
    expect(page.get_by_test_id("selection-count")).to_have_text("2 selected")
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    screenshot(page, "gallery-selected-phone", full_page=False)
    with page.expect_download() as first:
        page.get_by_test_id("selection-download").tap()
    assert first.value.suggested_filename.startswith("openhorde-")
    page.get_by_test_id("selection-delete").tap()
    page.get_by_test_id("selection-confirm-delete").tap()
    expect(page.get_by_test_id("gallery-item")).to_have_count(1)
    assert gallery_total(horde, owner) == 1
    page.get_by_test_id("select-all").tap()
    expect(page.get_by_test_id("selection-count")).to_have_text("1 selected")


def test_the_gallery_pages_through_more_than_24_images(
    page_factory: Callable[..., Page], horde: WebHorde, worker: WorkerProcess
) -> None:
    owner = horde.register("prolific")
    make_images(horde, owner, "the first one")
    for _ in range(2):
        make_images(horde, owner, "many more", n=PAGE_SIZE // 2)  # at most 20 images a request
    page = page_factory(horde, owner.apikey)
    page.goto("/#/gallery")
    expect(page.get_by_test_id("gallery-item")).to_have_count(PAGE_SIZE)
    expect(page.get_by_test_id("page-label").first).to_have_text("Page 1 of 2")
    expect(page.get_by_test_id("page-previous").first).to_be_disabled()
    page.get_by_test_id("page-next").first.click()
    expect(page).to_have_url(f"{horde.url}/#/gallery?page=2")
    expect(page.get_by_test_id("gallery-item")).to_have_count(1)
    expect(page.get_by_test_id("gallery-item")).to_contain_text("the first one")
    screenshot(page, "gallery-page-2")
    page.reload()  # the page number is in the address
    expect(page.get_by_test_id("page-label").first).to_have_text("Page 2 of 2")
    # Deleting the last image of the last page goes back a page.
    page.get_by_test_id("item-menu").click()
    page.get_by_test_id("delete").click()
    page.get_by_test_id("confirm-delete-yes").click()
    expect(page.get_by_test_id("page-label")).to_have_count(0)
    expect(page.get_by_test_id("gallery-item")).to_have_count(PAGE_SIZE)


def test_an_anonymous_user_is_told_how_to_get_a_gallery_and_sees_this_tabs_images(
    page: Page, horde: WebHorde, worker: WorkerProcess
) -> None:
    page.goto("/#/gallery")
    explanation = page.get_by_test_id("gallery-anonymous")
    expect(explanation).to_contain_text("only kept in this browser tab")
    expect(explanation.get_by_role("link", name="Register or sign in on the Account page")).to_have_attribute(
        "href", "#/account"
    )
    expect(page.get_by_test_id("session-images")).to_have_count(0)

    page.get_by_role("link", name="Generate", exact=True).click()
    expect(page.get_by_test_id("model-select")).to_have_value(MODEL)
    page.get_by_test_id("prompt").fill("an anonymous kite")
    for field, value in (("width", "64"), ("height", "64"), ("steps", "2")):
        page.get_by_test_id(field).fill(value)
    page.get_by_test_id("generate").click()
    expect(page.get_by_test_id("result-image")).to_be_visible(timeout=120_000)
    page.get_by_role("link", name="Gallery").click()
    expect(page.get_by_test_id("session-images").locator("img")).to_have_count(1)
    expect(page.get_by_test_id("session-images")).to_contain_text("an anonymous kite")
    screenshot(page, "gallery-anonymous")
    page.get_by_test_id("session-images").get_by_test_id("open-image").click()
    expect(page.get_by_test_id("lightbox-settings")).to_contain_text("an anonymous kite")
    page.get_by_test_id("lightbox-close").click()
    expect(page.get_by_test_id("lightbox")).to_have_count(0)
