"""The web UI's end-to-end fixtures: a seeded store, a real server, Debian's Chromium.

Chromium is driven by Playwright for Python through ``executable_path`` (Playwright
never downloads a browser here).  Every page a test opens fails the test if it logs a
console error or throws.  Screenshots go to a temporary directory, or to
``CAIRN_UI_SCREENSHOTS`` (``docs/screenshots`` when refreshing the docs' images).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest
from playwright.sync_api import expect

from serving import ThreadedServer

from .world import seed

CHROMIUM = os.environ.get("CAIRN_CHROMIUM", "/usr/bin/chromium")
STATIC = Path(__file__).resolve().parents[2] / "src" / "cairn" / "server" / "ui" / "static"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--disable-dev-shm-usage"]


# A loaded CI machine (2 cores, the rest of the suite before us) can be slow to paint.
expect.set_options(timeout=15_000)


@pytest.fixture(scope="session")
def world():
    tmp = Path(tempfile.mkdtemp(prefix="cairn-ui-"))
    try:
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("CAIRN_KEYS_DIR", str(tmp / "keys"))  # never the developer's signing keys
            w = seed(tmp / "store", many=2000)
        yield w
    finally:
        from cairn.store import close_store

        close_store(str(tmp / "store"))  # the store seed() opened
        shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture(scope="session")
def server(world):
    from cairn.server import create_app
    from cairn.store.local import LocalStore

    if not (STATIC / "index.html").is_file():
        pytest.fail(f"the web UI is not built ({STATIC} has no index.html): run `make ui`")
    store = LocalStore(world.root)
    try:
        with ThreadedServer(create_app(store)) as url:
            yield url
    finally:
        store.close()


@pytest.fixture(scope="session")
def browser():
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"Chromium is not installed at {CHROMIUM}; install Debian's package with "
                    "`apt-get install -y chromium` (as .ci/run does), or point CAIRN_CHROMIUM "
                    "at a Chromium binary")
    from playwright.sync_api import sync_playwright

    profile = tempfile.mkdtemp(prefix="cairn-ui-chromium-")
    with sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            profile, executable_path=CHROMIUM, headless=True, args=ARGS,
            viewport={"width": 1280, "height": 800})
        try:
            yield context
        finally:
            context.close()
            shutil.rmtree(profile, ignore_errors=True)


class Page:
    """A browser tab on the test server that records console errors and page errors."""

    def __init__(self, context, base: str, shots: Path) -> None:
        self.base = base
        self.shots = shots
        self.page = context.new_page()
        self.errors: list[str] = []  # none is allowed: an expected state is an answer, not a 4xx
        self.page.on("console", self._console)
        self.page.on("pageerror", lambda exc: self.errors.append(f"page error: {exc}"))

    def _console(self, msg) -> None:
        if msg.type == "error":
            self.errors.append(f"console error: {msg.text}")

    def goto(self, path: str):
        self.page.goto(self.base + path)
        return self.page

    def shot(self, name: str) -> Path:
        path = self.shots / f"{name}.png"
        self.page.screenshot(path=str(path))
        return path


@pytest.fixture
def ui(browser, server, tmp_path):
    shots = Path(os.environ.get("CAIRN_UI_SCREENSHOTS") or tmp_path)
    shots.mkdir(parents=True, exist_ok=True)
    tab = Page(browser, server, shots)
    yield tab
    errors = list(tab.errors)
    tab.page.close()
    assert not errors, "the page logged errors:\n" + "\n".join(errors)
