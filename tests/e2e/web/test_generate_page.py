"""The generate page in Chromium against a real server and a tiny-model worker: progress, images, inpainting,
cancel, API errors, live model availability and the phone layout. Images are 64–128 px with a few steps."""

from __future__ import annotations

import base64
import io
import re
from collections.abc import Callable
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image
from playwright.sync_api import Page, Request, expect
from tests.e2e.web.conftest import MODEL, Account, WebHorde, WorkerProcess, screenshot

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

DONE_TIMEOUT_MS = 120_000


def open_generate(page: Page) -> None:
    page.goto("/#/generate")
    expect(page.get_by_test_id("model-select")).to_have_value(MODEL)


def fill_form(page: Page, prompt: str, *, size: int = 64, steps: int = 3, **fields: str) -> None:
    page.get_by_test_id("prompt").fill(prompt)
    page.get_by_test_id("width").fill(str(size))
    page.get_by_test_id("height").fill(str(size))
    page.get_by_test_id("steps").fill(str(steps))
    for testid, value in fields.items():
        page.get_by_test_id(testid).fill(value)


def is_generate_request(request: Request) -> bool:
    sending = request.method == "POST" and request.url.endswith("/generate/async")
    return sending and "dry_run" not in (request.post_data or "")


def gradient(path: Path, width: int, height: int) -> Image.Image:
    x = np.linspace(0, 255, width, dtype=np.float32)[None, :].repeat(height, 0)
    y = np.linspace(0, 255, height, dtype=np.float32)[:, None].repeat(width, 1)
    image = Image.fromarray(np.stack([x, y, np.full_like(x, 90)], axis=2).astype(np.uint8), "RGB")
    image.save(path)
    return image


def decode(b64: str) -> Image.Image:
    return Image.open(io.BytesIO(base64.b64decode(b64)))


def test_a_user_generates_watches_progress_and_finds_the_image_in_the_gallery(
    signed_in_page: Page, horde: WebHorde, worker: WorkerProcess, account: Account
) -> None:
    page = signed_in_page
    open_generate(page)
    expect(page.get_by_test_id("whoami")).to_contain_text(account.username)
    expect(page.get_by_test_id("model-workers")).to_have_text("1 worker")
    # The worker takes at most 32,768 pixels: the default size is the largest square it accepts.
    expect(page.get_by_test_id("width")).to_have_value("128")
    expect(page.get_by_test_id("height")).to_have_value("128")
    expect(page.get_by_test_id("size-warning")).to_be_hidden()
    expect(page.get_by_test_id("cost")).to_contain_text("kudos")
    screenshot(page, "generate-form")

    fill_form(page, "a lighthouse on a cliff", size=128, steps=10, **{"negative-prompt": "fog"})
    with page.expect_request(is_generate_request) as sent:
        page.get_by_test_id("generate").click()
    body = sent.value.post_data_json
    assert body["prompt"] == "a lighthouse on a cliff###fog"
    assert body["models"] == [MODEL] and body["gallery"] is True and body["r2"] is True
    assert {k: body["params"][k] for k in ("width", "height", "steps", "n")} == {
        "width": 128,
        "height": 128,
        "steps": 10,
        "n": 1,
    }
    assert "seed" not in body["params"]  # empty seed field: random

    card = page.get_by_test_id("request-card").first
    stats = card.get_by_test_id("request-progress-text")
    expect(stats).to_contain_text(re.compile(r"Queue position \d+ · ETA \d+ s"))
    screenshot(page, "generate-progress")
    expect(card.get_by_test_id("result-image")).to_be_visible(timeout=DONE_TIMEOUT_MS)
    expect(card).to_have_attribute("data-state", "done")
    expect(stats).to_contain_text("Finished 1 of 1")
    expect(card.get_by_test_id("request-progress")).to_have_attribute("aria-valuenow", "100")
    src = card.get_by_test_id("result-image").get_attribute("src")
    assert src is not None
    assert Image.open(io.BytesIO(httpx.get(src, timeout=30).content)).size == (128, 128)
    screenshot(page, "generate-done")

    page.reload()  # the tab keeps its requests
    expect(page.get_by_test_id("request-card").first.get_by_test_id("result-image")).to_be_visible()
    page.get_by_role("link", name="Gallery").click()
    item = page.get_by_test_id("gallery-item").filter(has_text="a lighthouse on a cliff")
    expect(item).to_have_count(1)
    expect(item.get_by_test_id("gallery-image")).to_be_visible()


def test_a_painted_mask_is_sent_and_only_that_area_is_repainted(
    page: Page, horde: WebHorde, worker: WorkerProcess, tmp_path: Path
) -> None:
    source = gradient(tmp_path / "source.png", 64, 64)
    open_generate(page)
    fill_form(page, "a bird", size=64, steps=4)
    page.get_by_test_id("mode-inpainting").check()
    page.get_by_test_id("source-file").set_input_files(tmp_path / "source.png")
    canvas = page.get_by_test_id("mask-canvas")
    canvas.scroll_into_view_if_needed()
    page.get_by_test_id("mask-brush").fill("10")
    box = canvas.bounding_box()
    assert box is not None
    for row in (0.36, 0.45, 0.55, 0.64):  # strokes over the middle of the image
        page.mouse.move(box["x"] + box["width"] * 0.3, box["y"] + box["height"] * row)
        page.mouse.down()
        page.mouse.move(box["x"] + box["width"] * 0.7, box["y"] + box["height"] * row, steps=6)
        page.mouse.up()
    # The eraser takes a bit back out.
    page.get_by_test_id("mask-erase").click()
    page.mouse.move(box["x"] + box["width"] * 0.66, box["y"] + box["height"] * 0.3)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * 0.66, box["y"] + box["height"] * 0.7, steps=6)
    page.mouse.up()
    screenshot(page, "generate-inpainting-mask")

    with page.expect_request(is_generate_request) as sent:
        page.get_by_test_id("generate").click()
    body = sent.value.post_data_json
    assert body["source_processing"] == "inpainting"
    sent_source, mask = decode(body["source_image"]), decode(body["source_mask"])
    assert sent_source.size == mask.size == (64, 64)
    painted = np.asarray(mask.convert("L")) > 127
    assert painted[32, 26] and painted[28, 32] and not painted[5, 5] and not painted[60, 60]
    assert not painted[32, 42], "the eraser stroke is not in the mask"
    assert 0.1 < painted.mean() < 0.4

    card = page.get_by_test_id("request-card").first
    expect(card.get_by_test_id("result-image")).to_be_visible(timeout=DONE_TIMEOUT_MS)
    src = card.get_by_test_id("result-image").get_attribute("src")
    assert src is not None
    result = np.asarray(Image.open(io.BytesIO(httpx.get(src, timeout=30).content)).convert("RGB")).astype(np.int16)
    original = np.asarray(source).astype(np.int16)
    keep = ~binary_dilate(painted, 4)
    outside = np.abs(result - original)[keep].mean()
    inside = np.abs(result - original)[painted].mean()
    assert outside < 8, f"the unpainted area changed by {outside:.1f} on average"
    assert inside > outside + 10, f"the painted area barely changed ({inside:.1f} vs {outside:.1f})"
    screenshot(page, "generate-inpainting-done")


def binary_dilate(mask: np.ndarray, radius: int) -> np.ndarray:
    """`mask` grown by `radius` pixels (a square structuring element): leaves out the mask's feathered edge."""
    grown = mask.copy()
    for dy in range(-radius, radius + 1):
        for dx in range(-radius, radius + 1):
            grown |= np.roll(np.roll(mask, dy, axis=0), dx, axis=1)
    return grown


def test_img2img_and_outpainting_send_the_source_the_way_the_worker_reads_it(
    page: Page, horde: WebHorde, worker: WorkerProcess, tmp_path: Path
) -> None:
    gradient(tmp_path / "wide.png", 96, 64)
    open_generate(page)
    fill_form(page, "a meadow", size=64, steps=3)
    page.get_by_test_id("mode-img2img").check()
    page.get_by_test_id("source-file").set_input_files(tmp_path / "wide.png")
    expect(page.get_by_test_id("source-info")).to_contain_text("wide.png (96×64), resized to 64×64")
    page.get_by_test_id("denoising").fill("0.5")
    with page.expect_request(is_generate_request) as sent:
        page.get_by_test_id("generate").click()
    body = sent.value.post_data_json
    assert body["source_processing"] == "img2img" and body["params"]["denoising_strength"] == 0.5
    assert decode(body["source_image"]).size == (64, 64) and "source_mask" not in body

    page.get_by_test_id("mode-outpainting").check()
    page.get_by_test_id("outpaint-right").check()
    expect(page.get_by_test_id("outpaint-size")).to_have_text("Result: 128×64.")
    screenshot(page, "generate-outpainting")
    with page.expect_request(is_generate_request) as sent:
        page.get_by_test_id("generate").click()
    body = sent.value.post_data_json
    assert body["source_processing"] == "outpainting"
    assert (body["params"]["width"], body["params"]["height"]) == (128, 64)
    alpha = np.asarray(decode(body["source_image"]).convert("RGBA"))[:, :, 3]
    assert alpha.shape == (64, 128) and (alpha[:, :64] == 255).all() and (alpha[:, 64:] == 0).all()
    mask = np.asarray(decode(body["source_mask"]).convert("L"))
    assert (mask[:, :64] == 0).all() and (mask[:, 64:] == 255).all()

    cards = page.get_by_test_id("request-card")
    expect(cards).to_have_count(2)
    for index in range(2):
        expect(cards.nth(index).get_by_test_id("result-image")).to_be_visible(timeout=DONE_TIMEOUT_MS)
    outpainted = cards.first.get_by_test_id("result-image").get_attribute("src")
    assert outpainted is not None
    assert Image.open(io.BytesIO(httpx.get(outpainted, timeout=30).content)).size == (128, 64)
    screenshot(page, "generate-outpainting-done")


def test_a_size_no_worker_takes_is_flagged_and_the_request_can_be_cancelled(
    page: Page, horde: WebHorde, worker: WorkerProcess
) -> None:
    open_generate(page)
    fill_form(page, "far too big", size=256)
    warning = page.get_by_test_id("size-warning")
    expect(warning).to_contain_text("No online worker of openhorde-tiny accepts 256×256")
    page.get_by_test_id("generate").click()
    expect(page.get_by_test_id("confirm-send")).to_be_visible()
    expect(page.get_by_test_id("request-card")).to_have_count(0)
    screenshot(page, "generate-size-warning")

    page.get_by_test_id("confirm-send-anyway").click()
    card = page.get_by_test_id("request-card").first
    expect(card).to_have_attribute("data-state", "queued")
    expect(card.get_by_test_id("request-impossible")).to_be_visible()
    request_id = card.get_attribute("data-request-id")
    screenshot(page, "generate-request-impossible")

    card.get_by_test_id("cancel").click()
    expect(card).to_have_attribute("data-state", "cancelled")
    expect(card.get_by_test_id("request-progress-text")).to_have_text("Cancelled: 0 of 1 finished.")
    expect(card.get_by_test_id("cancel")).to_be_hidden()
    check = horde.api.get(f"/generate/check/{request_id}").json()
    assert check["waiting"] == 0 and check["finished"] == 0
    screenshot(page, "generate-cancelled")


def test_an_api_error_shows_the_servers_message(page: Page, horde: WebHorde, worker: WorkerProcess) -> None:
    open_generate(page)
    # Anonymous users have no kudos; more than 50 steps needs kudos upfront.
    fill_form(page, "many steps", steps=200)
    page.get_by_test_id("generate").click()
    expect(page.get_by_test_id("form-error")).to_contain_text("kudos upfront")
    expect(page.get_by_test_id("toast-error")).to_contain_text("kudos upfront")
    expect(page.get_by_test_id("request-card")).to_have_count(0)
    screenshot(page, "generate-api-error")

    # What the message suggests: let the server shrink the request instead.
    page.get_by_test_id("allow-downgrade").check()
    with page.expect_request(is_generate_request) as sent:
        page.get_by_test_id("generate").click()
    assert sent.value.post_data_json["allow_downgrade"] is True
    card = page.get_by_test_id("request-card").first
    expect(card).to_contain_text("The request was shrunk to what needs no upfront kudos.")
    expect(card.get_by_test_id("result-image")).to_be_visible(timeout=DONE_TIMEOUT_MS)


def test_the_model_list_follows_a_worker_that_stops(
    page_factory: Callable[..., Page], horde_factory: Callable[..., WebHorde]
) -> None:
    quick = horde_factory(OPENHORDE_WORKER_STALE_SECONDS="5", OPENHORDE_CHECK_IN_DEBOUNCE_SECONDS="1")
    short_lived = quick.start_worker("short-lived", quick.register("owner"))
    quick.wait_for_model(short_lived)
    page = page_factory(quick)
    open_generate(page)
    expect(page.get_by_test_id("model-workers")).to_have_text("1 worker")
    expect(page.get_by_test_id("model-select").locator("option", has_text=MODEL)).to_contain_text("1 worker")
    screenshot(page, "generate-models-online")

    short_lived.stop()
    assert short_lived.proc.returncode == 0, short_lived.log_tail()
    # Offline once it has not popped for 5 s; the page refreshes every 5 s.
    expect(page.get_by_test_id("model-workers")).to_have_text("0 workers", timeout=30_000)
    expect(page.get_by_test_id("model-select").locator("option", has_text=MODEL)).to_contain_text("no worker online")
    expect(page.get_by_test_id("size-warning")).to_contain_text("No worker of openhorde-tiny is online")
    screenshot(page, "generate-models-offline")


def test_the_generate_page_works_on_a_phone(
    page_factory: Callable[..., Page], horde: WebHorde, worker: WorkerProcess, account: Account, tmp_path: Path
) -> None:
    page = page_factory(horde, account.apikey, viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
    open_generate(page)
    assert page.evaluate("document.documentElement.scrollWidth") <= 390, "the page scrolls sideways"
    expect(page.get_by_test_id("menu-toggle")).to_be_visible()
    fill_form(page, "a small boat", size=64, steps=3)
    page.get_by_test_id("generate").tap()
    card = page.get_by_test_id("request-card").first
    expect(card.get_by_test_id("result-image")).to_be_visible(timeout=DONE_TIMEOUT_MS)
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    screenshot(page, "generate-phone")

    # Painting a mask with a finger.
    gradient(tmp_path / "source.png", 64, 64)
    page.get_by_test_id("mode-inpainting").tap()
    page.get_by_test_id("source-file").set_input_files(tmp_path / "source.png")
    canvas = page.get_by_test_id("mask-canvas")
    canvas.scroll_into_view_if_needed()
    box = canvas.bounding_box()
    assert box is not None
    page.touchscreen.tap(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    painted = page.evaluate(
        """() => {
          const canvas = document.querySelector("[data-testid=mask-canvas]");
          const data = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
          let count = 0;
          for (let i = 3; i < data.length; i += 4) if (data[i] > 127) count++;
          return count;
        }"""
    )
    assert painted > 0, "a tap on the mask painted nothing"
    screenshot(page, "generate-phone-inpainting", full_page=False)
