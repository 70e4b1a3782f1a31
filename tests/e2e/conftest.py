"""A real `folio serve` on a free port, driven by Debian's headless Chromium.

Skips (with the reason) when Chromium or the Python `playwright` package is
missing; never downloads a browser. Screenshots go to $FOLIO_SCREENSHOTS
when set (the repository's assets/screenshots/ when refreshing them).
"""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


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
    """`folio serve` in a subprocess with an empty library and the tiny model."""
    home = tmp_path_factory.mktemp("folio-home")
    # A fixed source budget skips timing the machine, which a test need not do.
    (home / "settings.toml").write_text("context_tokens = 600\n")
    port = free_port()
    env = {**os.environ, "FOLIO_HOME": str(home), "FOLIO_MODEL": str(tiny_model),
           "GRADIO_ANALYTICS_ENABLED": "False", "PYTHONUNBUFFERED": "1"}
    log = open(home / "server.log", "w")
    proc = subprocess.Popen([sys.executable, "-c", "from app.cli import main; main()",
                             "serve", "--port", str(port)], cwd=ROOT, env=env,
                            stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + 120
    while True:
        try:
            urllib.request.urlopen(url, timeout=2).read(100)
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail("folio serve did not start:\n" + (home / "server.log").read_text())
            time.sleep(0.5)
    yield {"url": url, "home": home, "process": proc}
    proc.terminate()
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()


@pytest.fixture(scope="session")
def shots(tmp_path_factory) -> Path:
    folder = Path(os.environ.get("FOLIO_SCREENSHOTS") or tmp_path_factory.mktemp("shots"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder
