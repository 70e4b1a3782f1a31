"""`folio serve` starts a real local page (binding rules: tests/reliability/test_exposure.py)."""
from __future__ import annotations

import socket
import urllib.request

import pytest

from app.serve import build_app
from app.settings import Settings
from storage import open_db


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
def test_library_page_serves_on_loopback(tmp_path):
    settings = Settings(home=tmp_path)
    open_db(settings.db_path).close()
    app = build_app(settings)
    port = free_port()
    app.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True,
               share=False, inbrowser=False)
    try:
        html = urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=30).read().decode()
        assert "Folio" in html
    finally:
        app.close()
