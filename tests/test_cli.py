"""The `folio` command end to end on generated files, in a temporary home."""
from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pymupdf
import pytest
from click.testing import CliRunner

from app.cli import cli

FACT = "The glacier advances eleven metres every winter near the observatory."


def make_pdf(path: Path, sentences: list[str], password: str | None = None) -> Path:
    doc = pymupdf.open()
    for sentence in sentences:
        page = doc.new_page()
        page.insert_textbox(pymupdf.Rect(72, 72, 540, 720), (sentence + " ") * 4, fontsize=11)
    kwargs = {}
    if password:
        kwargs = dict(encryption=pymupdf.PDF_ENCRYPT_AES_256, user_pw=password, owner_pw=password)
    doc.save(path, **kwargs)
    return path


@pytest.fixture
def home(tmp_path) -> Path:
    return tmp_path / "home"


def run(home: Path, *args: str, ok: bool = True):
    result = CliRunner().invoke(cli, ["--home", str(home), *args], catch_exceptions=False)
    if ok:
        assert result.exit_code == 0, result.output
    return result


def test_ingest_ls_search_rm_round_trip(tmp_path, home):
    pdf = make_pdf(tmp_path / "glacier.pdf", [FACT, "Penguins are flightless seabirds of the south."])
    code = tmp_path / "tools.py"
    code.write_text("import os\n\n\ndef measure_glacier(depth):\n    \"\"\"Return the advance.\"\"\"\n"
                    "    return depth * 11\n")
    out = run(home, "ingest", "--no-embed", str(pdf), str(code)).output
    assert "glacier.pdf: added as #1 (2 pages" in out and "tools.py: added as #2" in out

    listing = json.loads(run(home, "ls", "--json").stdout)
    assert [d["display_name"] for d in listing] == ["glacier.pdf", "tools.py"]
    assert listing[0]["status"] == "searchable" and listing[0]["pages"] == 2

    hits = json.loads(run(home, "search", "glacier winter", "--json", "-k", "3").stdout)
    assert hits[0]["document"] == "glacier.pdf" and hits[0]["page"] == 1
    assert hits[0]["boxes"], "PDF hits carry line boxes for highlighting"
    code_hits = json.loads(run(home, "search", "measure_glacier", "--json", "--doc", "tools.py").stdout)
    assert code_hits[0]["name"] == "measure_glacier"
    assert (code_hits[0]["line_start"], code_hits[0]["line_end"]) == (4, 6)

    assert "removed #1 glacier.pdf" in run(home, "rm", "glacier.pdf").output
    assert json.loads(run(home, "search", "glacier winter", "--json", "--doc", "tools.py").stdout)
    db = sqlite3.connect(home / "folio.db")
    assert db.execute("SELECT COUNT(*) FROM pages").fetchone()[0] == 0
    assert db.execute("SELECT COUNT(*) FROM segments WHERE document_id = 1").fetchone()[0] == 0


def test_duplicates_and_replacement(tmp_path, home):
    pdf = make_pdf(tmp_path / "a.pdf", [FACT])
    run(home, "ingest", "--no-embed", str(pdf))
    out = run(home, "ingest", "--no-embed", str(pdf)).output
    assert "already indexed as #1 a.pdf" in out and "1 duplicate" in out
    make_pdf(pdf, ["Completely different text about volcanoes erupting at dawn."])
    out = run(home, "ingest", "--no-embed", str(pdf)).output
    assert "a.pdf: replaced as #2" in out
    listing = json.loads(run(home, "ls", "--json").stdout)
    assert [d["id"] for d in listing] == [2]
    assert json.loads(run(home, "search", "glacier", "--json").stdout) == []


def test_bad_files_are_reported_and_the_batch_continues(tmp_path, home):
    good = make_pdf(tmp_path / "good.pdf", [FACT])
    locked = make_pdf(tmp_path / "locked.pdf", [FACT + " Locked."], password="s3cret")
    broken = tmp_path / "broken.pdf"
    broken.write_bytes(good.read_bytes()[:200])
    out = run(home, "ingest", "--no-embed", str(locked), str(broken), str(good)).output
    assert "locked.pdf: password required" in out
    assert "broken.pdf:" in out and "! broken.pdf" in out
    assert "good.pdf: added" in out
    listing = {d["display_name"]: d for d in json.loads(run(home, "ls", "--json").stdout)}
    assert listing["locked.pdf"]["error_code"] == "password-required"
    assert listing["good.pdf"]["status"] == "searchable"
    out = run(home, "ingest", "--no-embed", "--password", "s3cret", str(locked)).output
    assert "locked.pdf: added" in out
    listing = {d["display_name"]: d for d in json.loads(run(home, "ls", "--json").stdout)}
    assert listing["locked.pdf"]["status"] == "searchable"


def test_only_errors_exit_non_zero(tmp_path, home):
    broken = tmp_path / "broken.pdf"
    broken.write_bytes(b"%PDF-1.7 not really")
    result = run(home, "ingest", "--no-embed", str(broken), ok=False)
    assert result.exit_code == 1 and "broken.pdf" in result.output


def test_rm_unknown_document(home):
    result = run(home, "rm", "nope.pdf", ok=False)
    assert result.exit_code == 1 and "nope.pdf: no such document" in result.output


@pytest.mark.slow
def test_ingest_embeds_and_search_uses_vectors(tmp_path, home):
    pdf = make_pdf(tmp_path / "glacier.pdf", [FACT, "Automobiles need regular oil changes."])
    out = run(home, "ingest", str(pdf)).output
    assert "embedded 2 segments" in out
    listing = json.loads(run(home, "ls", "--json").stdout)
    assert listing[0]["status"] == "ready" and listing[0]["embedded"] == 2
    hits = json.loads(run(home, "search", "car maintenance", "--json").stdout)
    assert hits[0]["page"] == 2 and hits[0]["dense_rank"] == 1


def test_empty_library_listing(home):
    assert "the library is empty" in run(home, "ls").output
