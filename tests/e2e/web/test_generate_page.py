"""The generate page in Chromium against a real server and a tiny-model worker: progress, images, inpainting,
cancel, API errors, live model availability and the phone layout. Images are 64–128 px with a few steps."""

from __future__ import annotations

import base64
import io
import re
import subprocess
from collections.abc import Callable
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image
from playwright.sync_api import Page, Request, expect
from tests.e2e.conftest import openhorde_command
from tests.e2e.web.conftest import LOW_CONTRAST, MODEL, UNLABELLED, Account, WebHorde, WorkerProcess, screenshot

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

DONE_TIMEOUT_MS = 120_000


# How many of the mask's pixels are painted.
PAINTED_PIXELS = """() => {
  const canvas = document.querySelector("[data-testid=mask-canvas]");
  const data = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
  let count = 0;
  for (let i = 3; i < data.length; i += 4) if (data[i] > 127) count++;
  return count;
}"""


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
    expect(stats).to_contain_text(re.compile(r"(Queue position \d+ · ETA \d+ s|Generating \d+) · .* elapsed"))
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
    # The basics from the keyboard: brush size, invert (all painted), clear.
    brush = page.get_by_test_id("mask-brush")
    before = int(brush.input_value())
    brush.press("]")
    assert int(brush.input_value()) > before
    brush.press("i")
    assert page.evaluate(PAINTED_PIXELS) == 64 * 64
    brush.press("Delete")
    assert page.evaluate(PAINTED_PIXELS) == 0
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

    # It says why it cannot run and what would make it possible, not a queue place and an ETA of 0.
    impossible = card.get_by_test_id("request-impossible")
    expect(impossible).to_contain_text("the largest they take is 32,768 pixels")
    expect(impossible).to_contain_text("To make it possible: Pick a size of at most 32,768 pixels, e.g. 128×128.")
    expect(card.get_by_test_id("request-progress-text")).to_contain_text("Waiting: no online worker can take it")
    expect(card.get_by_test_id("request-progress-text")).not_to_contain_text("ETA")

    card.get_by_test_id("cancel").click()
    expect(card).to_have_attribute("data-state", "cancelled")
    expect(card.get_by_test_id("request-progress-text")).to_have_text("Cancelled: 0 of 1 finished.")
    expect(card.get_by_test_id("cancel")).to_be_hidden()
    check = horde.api.get(f"/generate/check/{request_id}").json()
    assert check["waiting"] == 0 and check["finished"] == 0
    screenshot(page, "generate-cancelled")

    # The one-click way out: the same request at the largest size the worker takes.
    page.get_by_test_id("generate").click()
    page.get_by_test_id("confirm-send-anyway").click()
    expect(page.get_by_test_id("request-card")).to_have_count(2)
    big_id = page.get_by_test_id("request-card").first.get_attribute("data-request-id")
    impossible = page.locator(f'[data-testid="request-card"][data-request-id="{big_id}"]')
    expect(impossible.get_by_test_id("request-impossible")).to_be_visible()
    with page.expect_request(is_generate_request) as sent:
        impossible.get_by_test_id("resend-smaller").click()
    assert (sent.value.post_data_json["params"]["width"], sent.value.post_data_json["params"]["height"]) == (128, 128)
    expect(impossible).to_have_attribute("data-state", "cancelled")
    smaller = page.get_by_test_id("request-card").first
    expect(smaller).to_contain_text("128×128")
    expect(smaller.get_by_test_id("request-impossible")).to_have_count(0)
    expect(page.get_by_test_id("width")).to_have_value("128")
    expect(smaller).to_have_attribute("data-state", "done", timeout=DONE_TIMEOUT_MS)


def test_a_refusal_is_a_plain_sentence_that_points_at_the_forms_own_control(
    page: Page, horde: WebHorde, worker: WorkerProcess
) -> None:
    open_generate(page)
    # Anonymous users have no kudos; more than 50 steps needs kudos upfront.
    fill_form(page, "many steps", steps=200)
    page.get_by_test_id("generate").click()
    error = page.get_by_test_id("form-error")
    expect(error).to_contain_text("too big to queue without kudos upfront")
    expect(error).to_contain_text("Tick “Shrink it rather than refuse it if it needs kudos upfront”")
    assert "allow_downgrade" not in error.inner_text()  # the API's words, not the form's
    # One place per error: by the Generate button, no toast repeating it; the control it names is unfolded.
    expect(page.get_by_test_id("toast-error")).to_have_count(0)
    expect(page.get_by_test_id("allow-downgrade")).to_be_visible()
    expect(page.get_by_test_id("allow-downgrade")).to_have_class(re.compile("needs-attention"))
    expect(page.get_by_test_id("request-card")).to_have_count(0)
    screenshot(page, "generate-api-error")

    # What the message suggests: let the server shrink the request instead.
    page.get_by_test_id("allow-downgrade").check()
    with page.expect_request(is_generate_request) as sent:
        page.get_by_test_id("generate").click()
    assert sent.value.post_data_json["allow_downgrade"] is True
    card = page.get_by_test_id("request-card").first
    expect(card).to_contain_text("The request was shrunk to what needs no upfront kudos.")
    expect(card).to_have_attribute("data-state", re.compile("queued|processing|done"))
    # Shrunk, it still has 50 steps: minutes for the CPU worker on a busy machine, and nothing more to learn
    # here; cancelled so the module's later tests do not queue behind it.
    if card.get_attribute("data-state") != "done":
        card.get_by_test_id("cancel").click()
        expect(card).to_have_attribute("data-state", re.compile("cancelled|done"))


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
    expect(page.get_by_test_id("model-warning")).to_contain_text("No worker of openhorde-tiny is online")
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
    # Prompt, Generate (in its bar at the bottom) and the new request, all on the screen together.
    expect(card).to_be_in_viewport()
    for testid in ("prompt", "generate"):
        expect(page.get_by_test_id(testid)).to_be_in_viewport()
    expect(card.get_by_test_id("result-image")).to_be_visible(timeout=DONE_TIMEOUT_MS)
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    screenshot(page, "generate-phone", full_page=False)

    # The lightbox on a phone: a swipe goes to the next image... of one; it closes with its button.
    card.get_by_test_id("open-image").first.tap()
    expect(page.get_by_test_id("lightbox")).to_be_visible()
    expect(page.get_by_test_id("lightbox-image")).to_be_in_viewport()
    screenshot(page, "lightbox-phone", full_page=False)
    page.get_by_test_id("lightbox-close").tap()
    expect(page.get_by_test_id("lightbox")).to_have_count(0)

    # Painting a mask with a finger.
    gradient(tmp_path / "source.png", 64, 64)
    page.get_by_test_id("mode-inpainting").tap()
    page.get_by_test_id("source-file").set_input_files(tmp_path / "source.png")
    canvas = page.get_by_test_id("mask-canvas")
    canvas.scroll_into_view_if_needed()
    box = canvas.bounding_box()
    assert box is not None
    page.touchscreen.tap(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    painted = page.evaluate(PAINTED_PIXELS)
    assert painted > 0, "a tap on the mask painted nothing"
    screenshot(page, "generate-phone-inpainting", full_page=False)


DESKTOP = {"width": 1366, "height": 900}


def ledger_sum(horde: WebHorde, account: Account) -> float:
    total, page = 0.0, 1
    while True:
        answer = horde.api.get(f"/kudos/history?page={page}", headers={"apikey": account.apikey}).json()
        total += sum(entry["amount"] for entry in answer["entries"])
        if page >= answer["pages"]:
            return round(total, 2)
        page += 1


def test_results_stay_in_view_the_lightbox_steps_through_images_and_the_form_survives_a_reload(
    page_factory: Callable[..., Page], horde: WebHorde, worker: WorkerProcess, account: Account
) -> None:
    page = page_factory(horde, account.apikey, viewport=DESKTOP)
    open_generate(page)
    # Prompt and Generate are on the first screen; Tab goes from the prompt straight to Generate.
    for testid in ("prompt", "generate"):
        expect(page.get_by_test_id(testid)).to_be_in_viewport()
    page.get_by_test_id("prompt").focus()
    page.keyboard.press("Tab")
    expect(page.get_by_test_id("generate")).to_be_focused()
    assert page.evaluate(UNLABELLED) == []
    assert page.evaluate(LOW_CONTRAST) == []
    # The model's queue is in megapixelsteps: one 128×128 image of 20 steps is 0.33 of one (shown 0.3), not 327,680.
    assert page.evaluate("import('/static/js/dom.js').then((m) => m.formatWork(128 * 128 * 20))") == "0.3 MPS"
    expect(page.get_by_test_id("model-status")).to_contain_text(re.compile(r"queue (none|\d[\d.]* MPS) · "))
    # Aspect buttons offer only sizes the worker takes (32,768 pixels at most).
    page.get_by_test_id("aspect-16-9").click()
    expect(page.get_by_test_id("width")).to_have_value("256")
    expect(page.get_by_test_id("height")).to_have_value("128")
    presets = page.get_by_test_id("size-preset").locator("option").all_inner_texts()
    assert presets and all(int(w) * int(h) <= 32_768 for w, h in (re.findall(r"(\d+)×(\d+)", p)[0] for p in presets))
    screenshot(page, "generate-desktop", full_page=False)

    fill_form(page, "a row of lanterns", size=64, steps=2, n="2")
    # Deep in the settings, Ctrl+Enter sends; the new request's card is in view without scrolling back.
    page.get_by_test_id("advanced").locator("summary").click()
    page.get_by_test_id("seed").scroll_into_view_if_needed()
    with page.expect_request(is_generate_request):
        page.get_by_test_id("seed").press("Control+Enter")
    card = page.get_by_test_id("request-card").first
    expect(card).to_contain_text("a row of lanterns")
    expect(card).to_be_in_viewport()
    expect(page.get_by_test_id("prompt")).to_be_in_viewport()
    screenshot(page, "generate-desktop-sent", full_page=False)
    expect(card).to_have_attribute("data-state", "done", timeout=DONE_TIMEOUT_MS)
    expect(card.get_by_test_id("result-image")).to_have_count(2)

    # The balance follows the charges as the request finishes, on the top bar and on the account page.
    kudos = horde.api.get("/find_user", headers={"apikey": account.apikey}).json()["kudos"]
    assert kudos == ledger_sum(horde, account)
    written = f"{kudos:,.2f}".rstrip("0").rstrip(".")  # as the page writes it: at most two decimals
    expect(page.get_by_test_id("whoami")).to_have_text(f"{account.username} · {written} kudos")

    # The lightbox: full size, zoom, the next image by keyboard, its settings, Escape closes it.
    first_image = card.get_by_test_id("open-image").first
    first_image.click()
    box = page.get_by_test_id("lightbox")
    expect(box).to_be_visible()
    expect(box.get_by_test_id("lightbox-counter")).to_have_text("1 of 2")
    shown = box.get_by_test_id("lightbox-image")
    size = shown.bounding_box()
    assert size is not None and size["height"] > 600, "the image is not shown large"
    first_src = shown.get_attribute("src")
    box.get_by_test_id("lightbox-zoom-in").click()
    expect(box.get_by_test_id("lightbox-stage")).to_have_attribute("data-zoom", "1.50")
    expect(box.get_by_test_id("lightbox-zoom-level")).to_have_text("150%")
    expect(box.get_by_test_id("lightbox-settings")).to_contain_text("a row of lanterns")
    screenshot(page, "lightbox-desktop-zoomed", full_page=False)
    page.keyboard.press("ArrowRight")
    expect(box.get_by_test_id("lightbox-counter")).to_have_text("2 of 2")
    assert shown.get_attribute("src") != first_src
    expect(box.get_by_test_id("lightbox-stage")).to_have_attribute("data-zoom", "1.00")
    page.keyboard.press("Escape")
    expect(page.get_by_test_id("lightbox")).to_have_count(0)
    expect(first_image).to_be_focused()

    page.get_by_role("link", name="Account").click()
    balance = page.get_by_test_id("kudos-balance")
    expect(balance).to_have_text(re.compile(r"\d"))
    assert float(balance.inner_text().replace(",", "")) == ledger_sum(horde, account)

    # The form is remembered across a reload.
    page.get_by_role("link", name="Generate", exact=True).click()
    page.reload()
    expect(page.get_by_test_id("prompt")).to_have_value("a row of lanterns")
    expect(page.get_by_test_id("steps")).to_have_value("2")
    expect(page.get_by_test_id("n")).to_have_value("2")
    expect(page.get_by_test_id("advanced")).to_have_attribute("open", "")


def test_post_processing_and_controlnet_show_only_when_a_worker_offers_them_and_styles_can_be_picked(
    page_factory: Callable[..., Page], horde_factory: Callable[..., WebHorde], tmp_path: Path
) -> None:
    quick = horde_factory()
    owner = quick.register("pp-owner")
    pop = {"name": "capable", "models": ["painted-model"], "max_pixels": 262_144}

    def advertise(**capabilities: bool) -> None:  # a worker is online once it pops, with what it says it can do
        answer = quick.api.post("/generate/pop", json={**pop, **capabilities}, headers={"apikey": owner.apikey})
        assert answer.status_code == 200, answer.text

    advertise(allow_post_processing=False, allow_controlnet=False)
    page = page_factory(quick, viewport=DESKTOP)
    page.goto("/#/generate")
    expect(page.get_by_test_id("model-select")).to_have_value("painted-model")
    expect(page.get_by_test_id("post-processing")).to_be_hidden()
    expect(page.get_by_test_id("controlnet")).to_be_hidden()
    expect(page.get_by_test_id("style-field")).to_be_hidden()  # no style on this horde yet

    stylist = quick.register("stylist")
    command = [*openhorde_command(), "admin", "set-role", str(stylist.id), "customizer"]
    done = subprocess.run(
        [*command, "--data-dir", str(quick.server.data_dir)], capture_output=True, cwd=quick.folder, timeout=120
    )
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    style = {
        "name": "watercolour",
        "info": "Soft washes of colour.",
        "prompt": "{p}, watercolour{np}",
        "models": ["painted-model"],
    }
    created = quick.api.post("/styles/image", json=style, headers={"apikey": stylist.apikey})
    assert created.status_code in (200, 201), created.text
    advertise(allow_post_processing=True, allow_controlnet=True)
    page.reload()
    expect(page.get_by_test_id("post-processing")).to_be_visible()
    expect(page.get_by_test_id("controlnet")).to_be_visible()
    page.get_by_test_id("style").select_option(label="watercolour")
    expect(page.get_by_test_id("style-info")).to_contain_text("Soft washes of colour.")
    page.get_by_test_id("upscaler").select_option("RealESRGAN_x2plus")
    page.get_by_test_id("prompt").fill("a harbour")
    screenshot(page, "generate-capabilities", full_page=True)
    with page.expect_request(is_generate_request) as sent:
        page.get_by_test_id("generate").click()
    body = sent.value.post_data_json
    assert body["style"] == created.json()["id"]
    assert body["params"]["post_processing"] == ["RealESRGAN_x2plus"]
    assert "control_type" not in body["params"] and "source_image" not in body

    # ControlNet with its own image, while the request stays "Text to image": the image travels as the source.
    gradient(tmp_path / "pose.png", 96, 48)
    page.get_by_test_id("upscaler").select_option("")
    page.get_by_test_id("control-type").select_option("canny")
    page.get_by_test_id("control-file").set_input_files(tmp_path / "pose.png")
    expect(page.get_by_test_id("control-image-name")).to_have_text("pose.png")
    page.get_by_test_id("return-control-map").check()
    with page.expect_request(is_generate_request) as sent:
        page.get_by_test_id("generate").click()
    body = sent.value.post_data_json
    params = body["params"]
    assert (params["control_type"], params["return_control_map"], body["source_processing"]) == (
        "canny",
        True,
        "img2img",
    )
    assert decode(body["source_image"]).size == (params["width"], params["height"])
