"""Fixtures for browser tests of the web UI: a live server, users, a tiny-model worker, Chromium pages.

* `horde_factory` (module): `horde_factory(**env)` starts `openhorde serve` (SQLite, custom models allowed,
  `env` extra variables such as `OPENHORDE_WORKER_STALE_SECONDS="5"`) and returns a `WebHorde`: `.url`,
  `.api` (httpx client on /api/v2), `.register(name, kudos=0)`, `.grant(account, kudos)`,
  `.start_worker(name, account, *flags)`, `.wait_for_model(worker)`; all stopped after the module.
* `horde` (module): one such server; `account` (module): a registered user with 1000 kudos on it;
  `worker` (module): an `openhorde-tiny` worker (max_power 1: 32,768 pixels, e.g. 128×128) on it.
* `browser` (session): Debian's Chromium (`OPENHORDE_CHROMIUM` to use another).
* `page_factory` (function): `page_factory(horde, key=None, **context_options)` → a page in a fresh context
  (1280×900 unless `viewport=` says otherwise), signed in with `key` (put in localStorage before the UI's
  first script runs, once per tab); `page`: an anonymous page on `horde`; `signed_in_page`: one as `account`.
* `screenshot(page, name)` writes test-artifacts/screenshots/<name>.png.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, sync_playwright
from tests.conftest import torch_threads
from tests.e2e.conftest import LiveServer, WorkerProcess, free_port, openhorde_command, wait_until_up

MODEL = "openhorde-tiny"
SCREENSHOTS = Path(__file__).resolve().parents[3] / "test-artifacts" / "screenshots"
CHROMIUM = os.environ.get("OPENHORDE_CHROMIUM", "/usr/bin/chromium")  # as scripts/browser.sh installs it
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
WORKER_ONLINE_TIMEOUT_S = 180.0

# Every visible form control has a name a screen reader reads out.
UNLABELLED = """() => [...document.querySelectorAll("input, select, textarea, button")]
  .filter((e) => e.offsetParent !== null && e.type !== "hidden")
  .filter((e) => !(e.labels && e.labels.length) && !e.getAttribute("aria-label") && !e.textContent.trim())
  .map((e) => e.outerHTML.slice(0, 80))"""

# Text whose contrast with the background behind it is under 4.5:1 (WCAG AA), disabled controls aside.
LOW_CONTRAST = """() => {
  const rgb = (c) => (c.match(/[\\d.]+/g) || []).map(Number);
  const lum = ([r, g, b]) => {
    const f = (v) => ((v /= 255) <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4);
    return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b);
  };
  const background = (e) => {
    for (; e; e = e.parentElement) {
      const c = rgb(getComputedStyle(e).backgroundColor);
      if (c.length === 3 || (c.length === 4 && c[3] > 0.5)) return c.slice(0, 3);
    }
    return [20, 22, 26];
  };
  const low = [];
  for (const e of document.querySelectorAll("body *")) {
    if (e.offsetParent === null || e.closest(":disabled, [disabled]")) continue;
    if (![...e.childNodes].some((n) => n.nodeType === 3 && n.textContent.trim())) continue;
    const a = lum(rgb(getComputedStyle(e).color)), b = lum(background(e));
    const ratio = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
    if (ratio < 4.5) low.push(`${ratio.toFixed(2)} ${e.tagName} ${e.textContent.trim().slice(0, 40)}`);
  }
  return low;
}"""


@dataclass
class Account:
    id: int
    username: str
    apikey: str


@dataclass
class WebHorde:
    server: LiveServer
    folder: Path
    api: httpx.Client
    workers: list[WorkerProcess] = field(default_factory=list)

    @property
    def url(self) -> str:
        return self.server.url

    def register(self, username: str, kudos: float = 0) -> Account:
        answer = self.api.post("/register", json={"username": username})
        assert answer.status_code == 201, answer.text
        body = answer.json()
        account = Account(body["id"], body["username"], body["apikey"])
        if kudos:
            self.grant(account, kudos)
        return account

    def grant(self, account: Account, kudos: float) -> None:
        """`openhorde admin grant`, on the server's own data directory."""
        command = [*openhorde_command(), "admin", "grant", str(account.id), str(kudos)]
        done = subprocess.run(
            [*command, "--data-dir", str(self.server.data_dir)], capture_output=True, cwd=self.folder, timeout=120
        )
        assert done.returncode == 0, done.stderr.decode(errors="replace")

    def start_worker(self, name: str, account: Account, *flags: str) -> WorkerProcess:
        log_path = self.folder / f"{name}.log"
        command = [
            *[*openhorde_command(), "worker", "--url", self.url, "--api-key", account.apikey, "--name", name],
            *["--model", MODEL, "--max-power", "1", "--device", "cpu", "--log-format", "json"],
            *["--model-store", str(self.folder / "models"), *flags],
        ]
        env = dict(os.environ, OMP_NUM_THREADS=str(torch_threads()))
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=self.folder)
        worker = WorkerProcess(name, log_path, proc)
        self.workers.append(worker)
        return worker

    def wait_for_model(self, worker: WorkerProcess, model: str = MODEL) -> None:
        """Until /status/models lists `model` with a live worker (the worker has popped once)."""
        deadline = time.monotonic() + WORKER_ONLINE_TIMEOUT_S
        while time.monotonic() < deadline:
            if worker.proc.poll() is not None:
                pytest.fail(f"worker {worker.name} exited {worker.proc.returncode}:\n{worker.log_tail()}")
            if any(m["name"] == model and m["count"] > 0 for m in self.api.get("/status/models").json()):
                return
            time.sleep(0.5)
        pytest.fail(f"worker {worker.name} did not come online:\n{worker.log_tail()}")

    def close(self) -> None:
        for worker in self.workers:
            worker.stop()
        self.api.close()
        self.server.stop()


@pytest.fixture(scope="module")
def horde_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., WebHorde]]:
    made: list[WebHorde] = []

    def make(**env: str) -> WebHorde:
        folder = tmp_path_factory.mktemp("web-horde")
        port = free_port()
        data_dir = folder / "data"
        data_dir.mkdir()
        server_env = {k: v for k, v in os.environ.items() if k != "OPENHORDE_DATABASE_URL"}
        server_env.update({"OPENHORDE_ALLOW_CUSTOM_MODELS": "true", "OPENHORDE_RATE_LIMITS": "off", **env})
        log_path = folder / "server.log"
        command = [*openhorde_command(), "serve", "--host", "127.0.0.1", "--port", str(port)]
        command += ["--data-dir", str(data_dir)]
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=server_env, cwd=folder)
        url = f"http://127.0.0.1:{port}"
        server = LiveServer(url, url + "/api/", "sqlite", data_dir, log_path, proc)
        wait_until_up(server)
        horde = WebHorde(server, folder, httpx.Client(base_url=url + "/api/v2", timeout=30))
        made.append(horde)
        return horde

    yield make
    for horde in made:
        horde.close()


@pytest.fixture(scope="module")
def horde(horde_factory: Callable[..., WebHorde]) -> WebHorde:
    return horde_factory()


@pytest.fixture(scope="module")
def account(horde: WebHorde) -> Account:
    return horde.register("painter", kudos=1000)


@pytest.fixture(scope="module")
def worker(horde: WebHorde) -> WorkerProcess:
    volunteer = horde.register("volunteer")
    started = horde.start_worker("tiny-worker", volunteer)
    horde.wait_for_model(started)
    return started


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    # Module scope, not session: Playwright's sync API keeps an asyncio loop running in this thread while it
    # is started, and pytest-asyncio cannot run the async tests of other modules until it stops.
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def page_factory(browser: Browser) -> Iterator[Callable[..., Page]]:
    contexts: list[Any] = []

    def open_page(horde: WebHorde, key: str | None = None, **options: Any) -> Page:
        options.setdefault("viewport", {"width": 1280, "height": 900})
        context = browser.new_context(base_url=horde.url, **options)
        contexts.append(context)
        if key:
            # Once per tab (sessionStorage survives reloads), so a test may still sign out and reload.
            context.add_init_script(
                "if (!sessionStorage.getItem('test.signed-in')) {"
                f" localStorage.setItem('openhorde.apikey', {key!r}); sessionStorage.setItem('test.signed-in', '1'); }}"
            )
        page = context.new_page()
        page.set_default_timeout(15_000)
        # Any uncaught JavaScript error fails the test: a person would meet a broken page.
        page.on("pageerror", lambda error: script_errors.append(f"{page.url}: {error}"))
        return page

    script_errors: list[str] = []
    yield open_page
    for context in contexts:
        context.close()
    assert not script_errors, f"JavaScript errors: {script_errors}"


@pytest.fixture
def page(page_factory: Callable[..., Page], horde: WebHorde) -> Page:
    return page_factory(horde)


@pytest.fixture
def signed_in_page(page_factory: Callable[..., Page], horde: WebHorde, account: Account) -> Page:
    return page_factory(horde, key=account.apikey)


def screenshot(page: Page, name: str, full_page: bool = True) -> Path:
    """Save a PNG of the page under test-artifacts/screenshots/ (git-ignored) and return its path."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    if full_page:  # from the top: a full-page capture of a scrolled page draws the sticky top bar mid-page
        page.evaluate("window.scrollTo(0, 0)")
    page.screenshot(path=str(path), full_page=full_page)
    return path
