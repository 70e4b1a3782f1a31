"""A real `folio serve` on a free port, driven by Debian's headless Chromium.

Skips (with the reason) when Chromium or the Python `playwright` package is
missing; never downloads a browser. Screenshots go to $FOLIO_SCREENSHOTS
when set (the repository's assets/screenshots/ when refreshing them).
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]


@pytest.fixture(scope="session")
def playwright_browser():
    if not CHROMIUM.exists():
        pytest.skip("Debian chromium is not installed at /usr/bin/chromium "
                    "(apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("the Python playwright package is not installed (test extra)")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture(scope="session")
def tiny_model() -> Path:
    from engine.backends.errors import ModelNotFoundError
    from engine.model_files import tiny_model_path

    try:
        return tiny_model_path()
    except ModelNotFoundError as exc:
        pytest.skip(str(exc))


@pytest.fixture(scope="session")
def server(tmp_path_factory, tiny_model, playwright_browser):
    """`folio serve` in a subprocess with an empty library and the tiny model
    (a fixed source budget: a test need not time the machine)."""
    from served import FolioServer

    srv = FolioServer(tmp_path_factory.mktemp("e2e") / "folio-home", model=tiny_model)
    try:
        srv.start()
    except RuntimeError as exc:
        pytest.fail(str(exc))
    yield {"url": srv.url, "home": srv.home, "process": srv.process}
    srv.stop()


@pytest.fixture(scope="session")
def shots(tmp_path_factory) -> Path:
    folder = Path(os.environ.get("FOLIO_SCREENSHOTS") or tmp_path_factory.mktemp("shots"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder
