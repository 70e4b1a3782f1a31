"""Server options: --auth logins, settings saved from the panel, and the API
surface kept to ingest, ask and list (binding rules: tests/reliability/test_exposure.py)."""
from __future__ import annotations

import click
import pytest

from app.serve import parse_auth
from app.settings import Settings
from app.settings_panel import apply_settings


def test_auth_values_and_files(tmp_path):
    assert parse_auth("ann:s3:cret") == [("ann", "s3:cret")]
    logins = tmp_path / "logins"
    logins.write_text("# team\nann:one\n\nbob:two\n")
    assert parse_auth(None, logins) == [("ann", "one"), ("bob", "two")]
    with pytest.raises(click.ClickException, match="USER:PASSWORD"):
        parse_auth("nopassword")
    with pytest.raises(click.ClickException, match="USER:PASSWORD"):
        parse_auth(":pw")


def test_settings_panel_validates_and_saves(tmp_path):
    settings = Settings(home=tmp_path)
    model = tmp_path / "m.gguf"
    model.write_bytes(b"GGUF")
    message, new = apply_settings(settings, str(model), "llama.cpp", "cpu", 1024, 50)
    assert new is not None and "Saved" in message
    assert (new.model, new.backend, new.device, new.context_tokens, new.max_upload_mb) == \
        (model, "llama.cpp", "cpu", 1024, 50)
    loaded = Settings.load(tmp_path)
    assert loaded.model == model and loaded.context_tokens == 1024 and loaded.device == "cpu"
    message, new = apply_settings(loaded, "", "auto", "auto", 0, 50)
    assert Settings.load(tmp_path).model is None and Settings.load(tmp_path).context_tokens is None
    assert apply_settings(settings, str(tmp_path / "none.gguf"), "auto", "auto", 0, 5)[1] is None
    (tmp_path / "w.bin").write_bytes(b"x")
    assert "not a .gguf" in apply_settings(settings, str(tmp_path / "w.bin"), "auto", "auto",
                                           0, 5)[0]
    assert apply_settings(settings, "", "auto", "auto", 50, 5)[1] is None   # budget too small
    assert apply_settings(settings, "", "vllm", "auto", 0, 5)[1] is None
    assert apply_settings(settings, "", "sparse", "gpu", 0, 5)[1].backend == "sparse"
    hf = tmp_path / "hf-model"
    hf.mkdir()
    assert "without config.json" in apply_settings(settings, str(hf), "sparse", "auto", 0, 5)[0]
    (hf / "config.json").write_text("{}")
    assert "llama.cpp needs a .gguf" in apply_settings(settings, str(hf), "llama.cpp", "auto",
                                                       0, 5)[0]
    assert apply_settings(settings, str(hf), "sparse", "auto", 0, 5)[1].model == hf


@pytest.mark.slow
def test_only_the_documented_endpoints_are_public(tmp_path, monkeypatch):
    monkeypatch.setenv("GRADIO_ANALYTICS_ENABLED", "False")
    from app.runtime import Runtime, prepare_environment
    from app.serve import build_app

    settings = Settings(home=tmp_path)
    prepare_environment(settings)
    runtime = Runtime(settings).start(embed=False, preload_model=False)
    try:
        app = build_app(settings, runtime)
        info = app.get_api_info()
        assert set(info["named_endpoints"]) == {"/ingest", "/ask", "/list"}
        assert not info["unnamed_endpoints"]
    finally:
        runtime.stop()
