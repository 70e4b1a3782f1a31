"""Settings precedence and the terminal progress bar."""
from __future__ import annotations

import io
from pathlib import Path

import pytest

from app.progress_bar import TerminalProgress
from app.serve import is_loopback
from app.settings import Settings, SettingsError
from ingest.progress import Progress


def test_home_precedence(tmp_path, monkeypatch):
    monkeypatch.setenv("FOLIO_HOME", str(tmp_path / "env"))
    assert Settings.load().home == (tmp_path / "env").resolve()
    assert Settings.load(tmp_path / "flag").home == (tmp_path / "flag").resolve()
    monkeypatch.delenv("FOLIO_HOME")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert Settings.load().home == (tmp_path / "xdg" / "folio").resolve()
    assert Settings.load(tmp_path).db_path == tmp_path.resolve() / "folio.db"


def test_settings_file_and_environment(tmp_path, monkeypatch):
    (tmp_path / "settings.toml").write_text('model = "~/m.gguf"\nembedding_dtype = "int8"\n')
    settings = Settings.load(tmp_path)
    assert settings.model == Path("~/m.gguf").expanduser()
    assert settings.embedding_dtype == "int8"
    monkeypatch.setenv("FOLIO_MODEL", "/other.gguf")
    assert Settings.load(tmp_path).model == Path("/other.gguf")


def test_unknown_or_broken_settings_are_reported(tmp_path):
    (tmp_path / "settings.toml").write_text('modle = "x"\n')
    with pytest.raises(SettingsError, match="unknown settings modle"):
        Settings.load(tmp_path)
    (tmp_path / "settings.toml").write_text('model = \n')
    with pytest.raises(SettingsError, match="cannot read settings"):
        Settings.load(tmp_path)


def test_progress_line_has_count_rate_and_eta():
    bar = TerminalProgress(stream=io.StringIO())
    line = bar.line(Progress("parse", 50, 200, "pages", "big.pdf"), elapsed=0.5)
    assert line.startswith("parse big.pdf [######")
    assert "50/200 pages" in line and "100.0/s" in line and "ETA 1s" in line


def test_progress_prints_lines_when_not_a_terminal():
    stream = io.StringIO()
    bar = TerminalProgress(stream=stream)
    for done in range(0, 101):
        bar(Progress("embed", done, 100, "segments"))
    lines = stream.getvalue().splitlines()
    assert lines[0].startswith("embed [") and lines[-1].endswith("ETA 0s")
    assert len(lines) < 5   # throttled on a pipe


def test_loopback_detection():
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.4")


def test_file_batches_share_one_bar_and_single_files_show_none():
    stream = io.StringIO()
    bar = TerminalProgress(stream=stream)
    bar(Progress("files", 0, 1, "files", "one.py"))
    assert stream.getvalue() == ""
    for done in range(0, 301):
        bar(Progress("files", done, 300, "files", f"f{done}.py"))
    lines = stream.getvalue().splitlines()
    assert 1 <= len(lines) <= 3 and lines[-1].startswith("files f300.py [") and "300/300 files" in lines[-1]


def test_the_adapted_budget_ceiling_comes_from_the_settings(tmp_path):
    from app.assistant import qa_config

    from engine.qa import QAConfig

    assert qa_config(Settings.load(tmp_path)).max_context_tokens == 900
    assert Settings().max_context_tokens == QAConfig().max_context_tokens   # one default
    (tmp_path / "settings.toml").write_text("max_context_tokens = 3000\ncontext_tokens = 700\n")
    settings = Settings.load(tmp_path)
    assert qa_config(settings).max_context_tokens == 3000
    assert qa_config(settings).context_tokens == 700
    assert qa_config(settings, 1200).context_tokens == 1200     # `folio ask --context`
    (tmp_path / "settings.toml").write_text("max_context_tokens = 0\n")
    assert qa_config(Settings.load(tmp_path)).max_context_tokens is None   # no ceiling


def test_sentence_pruning_is_a_setting_and_off_by_default(tmp_path):
    from app.assistant import selection_pipeline

    assert "prune" not in selection_pipeline(Settings.load(tmp_path)).names
    (tmp_path / "settings.toml").write_text("sentence_pruning = true\n")
    names = selection_pipeline(Settings.load(tmp_path)).names
    assert names[names.index("diversify") + 1] == "prune"
    assert Settings.load(tmp_path).save(sentence_pruning=False).sentence_pruning is False
    assert "prune" not in selection_pipeline(Settings.load(tmp_path)).names
