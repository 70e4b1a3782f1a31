"""Bad input through the real ingestion entry points (`ingest_file`,
`ingest_paths`): every file gets a specific error naming it and the reason,
or a successful ingest; the batch goes on; pathological files are bounded.

Zip uploads with path-traversal entries and compression bombs are covered
by tests/test_app_uploads.py (the upload step, before ingestion).
"""
from __future__ import annotations

import os
import time
import zlib
from pathlib import Path

import pymupdf
import pytest

from engine.indexer import ingest_file, ingest_paths
from ingest import IngestConfig
from storage import documents, open_db
from storage import segments as segment_store

FAST = IngestConfig(ocr=False)


@pytest.fixture
def db(tmp_path):
    return open_db(tmp_path / "folio.db")


@pytest.fixture(scope="module")
def docs(shared_dir) -> Path:
    return shared_dir / "docs"


def text_pdf(path: Path, sentences: list[str]) -> Path:
    doc = pymupdf.open()
    for sentence in sentences:
        page = doc.new_page()
        page.insert_textbox(pymupdf.Rect(72, 72, 540, 720), (sentence + " ") * 5, fontsize=11)
    doc.save(path)
    return path


def stored_text(db, doc_id: int) -> str:
    return "\n".join(s.text for s in segment_store.document_segments(db, doc_id))


def by_name(report) -> dict[str, object]:
    return {o.path.name: o for o in report.outcomes}


# -- ../shared/docs: broken, encrypted, scanned --------------------------------

BROKEN = {   # name: expected error code, or None when it is repaired and ingested
    "invalid.pdf": "corrupt", "cyclic-toc.pdf": "empty", "newline-buffer-test.pdf": "empty",
    "fuzz-378014596.pdf": None, "badlin1.pdf": None, "content-stream-errors.pdf": None,
}


def test_every_broken_file_gets_an_outcome_and_the_batch_goes_on(db, docs, tmp_path) -> None:
    good = text_pdf(tmp_path / "good.pdf", ["Otters hold hands while they sleep on the river."])
    folder = docs / "broken"
    report = ingest_paths(db, [folder, good], config=FAST)
    outcomes = by_name(report)
    names = sorted(p.name for p in folder.iterdir())
    assert sorted(outcomes) == sorted(names + ["good.pdf"]) and not report.skipped
    assert outcomes["good.pdf"].status == "added"
    for name in names:
        outcome = outcomes[name]
        expected = BROKEN.get(name, "?")
        if expected is None:
            assert outcome.status == "added", outcome.message
            # text, or a warning saying why there is none
            assert outcome.segments > 0 or "no text was found in the document" in outcome.warnings
        else:
            assert outcome.status == "error", outcome.message
            assert outcome.error_code == (expected if name in BROKEN else outcome.error_code)
            assert outcome.error_code != "internal", outcome.message
            # the file's name, then a reason in words
            assert outcome.message.startswith(f"{name}: ") and len(outcome.message) > len(name) + 8
    assert "could not be read" not in outcomes["invalid.pdf"].message
    assert "not a readable PDF" in outcomes["invalid.pdf"].message
    listed = {d.display_name: d for d in documents.list_documents(db)}
    assert listed["invalid.pdf"].error and listed["good.pdf"].error is None


PASSWORDS = {   # None: no password is known (graph-encrypted.pdf)
    "r2-user-password.pdf": "asdfzxcv", "r6-user-password.pdf": "asdfzxcv",
    "r6-both-passwords.pdf": "foo", "libreoffice-writer-password.pdf": "openpassword",
    "crazyones-encrypted-256.pdf": "password", "encrypted-file.pdf": "test",
    "graph-encrypted.pdf": None,
}
OPEN_WITHOUT_PASSWORD = {"r5-owner-password.pdf"}   # restrictions only


def test_every_encrypted_file_without_wrong_and_right_password(db, docs) -> None:
    folder = docs / "encrypted"
    assert sorted(p.name for p in folder.iterdir()) == sorted(PASSWORDS.keys()
                                                             | OPEN_WITHOUT_PASSWORD)
    for name in OPEN_WITHOUT_PASSWORD:
        assert ingest_file(db, folder / name, config=FAST).status == "added"
    for name, password in PASSWORDS.items():
        path = folder / name
        first = ingest_file(db, path, config=FAST)
        assert (first.status, first.error_code) == ("error", "password-required"), name
        assert first.message == f"{name}: password required (give one with --password)"
        wrong = ingest_file(db, path, password="not-the-password", config=FAST)
        assert (wrong.status, wrong.error_code) == ("error", "wrong-password"), name
        assert wrong.message == f"{name}: the password given does not open this PDF"
        if password is not None:   # an earlier failure does not block the retry
            right = ingest_file(db, path, password=password, config=FAST)
            assert right.status == "added" and right.pages > 0, right.message


def test_batch_with_one_password_continues_past_the_others(db, docs) -> None:
    folder = docs / "encrypted"
    report = ingest_paths(db, [folder], password="asdfzxcv", config=FAST)
    outcomes = by_name(report)
    assert len(outcomes) == len(PASSWORDS) + len(OPEN_WITHOUT_PASSWORD)
    added = {n for n, o in outcomes.items() if o.status == "added"}
    assert added == {"r2-user-password.pdf", "r6-user-password.pdf", "r5-owner-password.pdf"}
    assert all(o.error_code == "wrong-password" for n, o in outcomes.items() if n not in added)


def test_scanned_files_are_ingested_with_a_reason_for_missing_text(db, docs) -> None:
    report = ingest_paths(db, [docs / "scanned"], config=FAST)
    outcomes = by_name(report)
    assert sorted(outcomes) == ["cardinal.pdf", "multipage.pdf", "sandwich.pdf", "skew.pdf"]
    assert all(o.status == "added" for o in outcomes.values())
    for name in ("cardinal.pdf", "multipage.pdf", "skew.pdf"):
        assert any("no text layer" in w and "OCR" in w for w in outcomes[name].warnings), name
    assert outcomes["sandwich.pdf"].segments > 0


# -- pathological PDFs -----------------------------------------------------------

def raw_pdf(path: Path, contents: list[bytes]) -> Path:
    """A PDF written directly, one page per content stream (Flate-compressed),
    all in Helvetica: pymupdf needs seconds for a stream of millions of
    operators, or minutes for thousands of pages; this takes milliseconds."""
    count = len(contents)
    objects = [b"<< /Type /Catalog /Pages 2 0 R >>",
               b"<< /Type /Pages /Count %d /Kids [%s] >>" % (
                   count, b" ".join(b"%d 0 R" % (4 + 2 * i) for i in range(count))),
               b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"]
    for i, content in enumerate(contents):
        packed = zlib.compress(content)
        objects.append(b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents %d 0 R "
                       b"/Resources << /Font << /F1 3 0 R >> >> >>" % (5 + 2 * i))
        objects.append(b"<< /Length %d /Filter /FlateDecode >>\nstream\n%s\nendstream"
                       % (len(packed), packed))
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1, xref)
    path.write_bytes(bytes(out))
    return path


def sentence_page(text: str) -> bytes:
    return b"BT /F1 12 Tf 72 720 Td (%s) Tj ET" % text.encode()


def glyph_bomb(path: Path, glyphs: int) -> Path:
    """Page 1: `glyphs` tiny glyphs, each placed by its own operator (what a
    hostile or broken generator writes); page 2: an ordinary sentence."""
    ops = b"\n".join(b"1 0 0 1 %d %d Tm (a) Tj" % (10 + i % 590, 10 + (i // 590) % 770)
                     for i in range(glyphs))
    return raw_pdf(path, [b"BT /F1 0.5 Tf\n" + ops + b"\nET",
                          sentence_page("Beavers build their lodges from mud and sticks.")])


def test_a_page_of_a_million_glyphs_is_skipped_with_a_reason(db, tmp_path) -> None:
    path = glyph_bomb(tmp_path / "bomb.pdf", 1_000_000)
    started = time.perf_counter()
    outcome = ingest_file(db, path, config=FAST)
    elapsed = time.perf_counter() - started
    assert outcome.status == "added" and outcome.pages == 2
    assert any(w.startswith("page 1 could not be read (1,000,000 characters, over the limit "
                            "of 200,000 per page") for w in outcome.warnings), outcome.warnings
    assert "Beavers build their lodges" in stored_text(db, outcome.document_id)
    assert elapsed < 10, elapsed   # unprotected: ~15 s and over 1 GB on this page alone


def test_the_page_character_limit_is_configurable(db, tmp_path) -> None:
    path = glyph_bomb(tmp_path / "small.pdf", 3000)
    assert not ingest_file(db, path, config=FAST).warnings
    tight = IngestConfig(ocr=False, max_page_chars=2000)
    outcome = ingest_file(open_db(tmp_path / "other.db"), path, config=tight)
    assert any("over the limit of 2,000 per page" in w for w in outcome.warnings)


def many_pages(path: Path, count: int) -> Path:
    return raw_pdf(path, [sentence_page("A page of the long file.")] * count)


@pytest.fixture(scope="module")
def ten_thousand_pages(tmp_path_factory) -> Path:
    return many_pages(tmp_path_factory.mktemp("long") / "long.pdf", 10_000)


def test_ten_thousand_pages_over_the_page_budget(db, ten_thousand_pages) -> None:
    outcome = ingest_file(db, ten_thousand_pages,
                          config=IngestConfig(ocr=False, max_pdf_pages=5_000))
    assert (outcome.status, outcome.error_code) == ("error", "too-large")
    assert outcome.message == "long.pdf: the PDF has 10,000 pages; the limit is 5,000"


def test_ten_thousand_pages_stop_at_the_time_budget(db, ten_thousand_pages) -> None:
    config = IngestConfig(ocr=False, max_seconds_per_document=1.0)
    started = time.perf_counter()
    outcome = ingest_file(db, ten_thousand_pages, config=config)
    elapsed = time.perf_counter() - started
    assert (outcome.status, outcome.error_code) == ("error", "time-limit"), outcome.message
    assert outcome.message.startswith("long.pdf: parsing took longer than the limit of 1 s "
                                      "per document (stopped ")
    assert "of 10,000)" in outcome.message
    assert elapsed < 8, elapsed          # the whole file takes a minute or more
    assert documents.find_by_path(db, ten_thousand_pages) is None   # nothing half-stored


def test_a_slice_of_the_long_file_parses_within_budget(db, tmp_path) -> None:
    outcome = ingest_file(db, many_pages(tmp_path / "short.pdf", 40), config=FAST)
    assert outcome.status == "added" and outcome.pages == 40


# -- folders, encodings, empty and binary files ------------------------------------

@pytest.mark.skipif(not hasattr(os, "symlink"), reason="no symlinks")
def test_symlinks_out_of_an_ingested_folder_are_not_followed(db, tmp_path) -> None:
    outside = tmp_path / "private"
    outside.mkdir()
    (outside / "secret.py").write_text("PASSWORD = 'hunter2-outside'\n")
    (outside / "more").mkdir()
    (outside / "more" / "notes.md").write_text("# Notes\n\nThe vault code is 7741.\n")
    root = tmp_path / "project"
    root.mkdir()
    (root / "main.py").write_text("def main():\n    return 'inside'\n")
    (root / "secret.py").symlink_to(outside / "secret.py")
    (root / "more").symlink_to(outside / "more")
    (root / "up").symlink_to(tmp_path)
    report = ingest_paths(db, [root], config=FAST)
    assert [o.path.name for o in report.outcomes] == ["main.py"]
    skipped = {s.path.name: s.reason for s in report.skipped}
    assert skipped == {"secret.py": "symlink outside the folder",
                       "more": "symlink outside the folder", "up": "symlink outside the folder"}
    stored = [d.path for d in documents.list_documents(db)]
    assert stored == [str((root / "main.py").resolve())]
    everything = "\n".join(stored_text(db, d.id) for d in documents.list_documents(db))
    assert "hunter2" not in everything and "7741" not in everything


def test_source_files_in_latin1_and_utf16(db, tmp_path) -> None:
    source = ("# Prüfung der Größe\n"
              "def größe(wert):\n"
              "    \"\"\"Gibt die Größe zurück: naïve café façade.\"\"\"\n"
              "    return wert * 2\n")
    (tmp_path / "latin.py").write_bytes(source.encode("latin-1"))
    (tmp_path / "wide.py").write_bytes(source.encode("utf-16"))
    report = ingest_paths(db, [tmp_path / "latin.py", tmp_path / "wide.py"], config=FAST)
    outcomes = by_name(report)
    for name in ("latin.py", "wide.py"):
        assert outcomes[name].status == "added", outcomes[name].message
        text = stored_text(db, outcomes[name].document_id)
        assert "naïve café façade" in text and "def größe(wert):" in text
        assert "\x00" not in text and "\ufffd" not in text
    assert any("not UTF-8" in w for w in outcomes["latin.py"].warnings)


def test_binary_empty_and_zero_byte_files(db, tmp_path) -> None:
    folder = tmp_path / "mixed"
    folder.mkdir()
    (folder / "tool.py").write_bytes(b"\x7fELF\x02\x01\x01\x00" + bytes(range(256)) * 40)
    (folder / "empty.py").write_bytes(b"")
    (folder / "empty.txt").write_bytes(b"")
    (folder / "zero.pdf").write_bytes(b"")
    (folder / "fine.py").write_text("def fine():\n    return 1\n")
    report = ingest_paths(db, [folder], config=FAST)
    assert [o.path.name for o in report.outcomes] == ["fine.py"]
    assert report.outcomes[0].status == "added"
    assert {s.path.name: s.reason for s in report.skipped} == {
        "tool.py": "binary file", "empty.py": "empty file", "empty.txt": "empty file",
        "zero.pdf": "empty file"}
    # the same files handed over one by one (an upload): a specific error each
    expected = {"tool.py": ("binary", "tool.py: "), "empty.py": ("empty", "empty.py: "),
                "empty.txt": ("empty", "empty.txt: "),
                "zero.pdf": ("empty", "zero.pdf: the file is empty")}
    for name, (code, message) in expected.items():
        outcome = ingest_file(db, folder / name, config=FAST)
        assert (outcome.status, outcome.error_code) == ("error", code), outcome.message
        assert outcome.message.startswith(message) and len(outcome.message) > len(name) + 8


def test_a_truncated_and_a_junk_pdf_in_one_batch(db, tmp_path) -> None:
    good = text_pdf(tmp_path / "good.pdf", ["Herons stand still for minutes before striking."])
    data = good.read_bytes()
    (tmp_path / "cut.pdf").write_bytes(data[:len(data) // 3])
    (tmp_path / "junk.pdf").write_bytes(b"%PDF-1.7\n" + bytes(range(256)) * 16)
    report = ingest_paths(db, [tmp_path], config=FAST)
    outcomes = by_name(report)
    assert outcomes["good.pdf"].status == "added"
    for name in ("cut.pdf", "junk.pdf"):
        outcome = outcomes[name]
        assert outcome.status in ("added", "error") and outcome.error_code != "internal"
        assert outcome.message.startswith(f"{name}: ")
