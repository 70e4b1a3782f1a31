"""Opening problems become specific errors naming the file, never crashes."""
from __future__ import annotations

import pdf_fixtures as fx
import pytest

from ingest.config import IngestConfig
from ingest.errors import (CorruptFile, EmptyDocument, IngestError, PasswordRequired,
                           TooLarge, WrongPassword)
from ingest.pdf import parse_pdf
from ingest.pdf.open import REPAIRED_WARNING


def test_encrypted_needs_the_user_password(tmp_path) -> None:
    path = fx.encrypted(tmp_path / "locked.pdf")
    with pytest.raises(PasswordRequired) as err:
        parse_pdf(path)
    assert "locked.pdf" in str(err.value) and err.value.code == "password-required"
    with pytest.raises(WrongPassword) as err:
        parse_pdf(path, password="nope")
    assert "locked.pdf" in str(err.value)
    for password in ("user-secret", "owner-secret"):
        doc = parse_pdf(path, password=password)
        fx.check_spans(doc)
        assert "page 1 paragraph 1 sentence 1" in doc.pages[0].text


def test_owner_password_only_opens_without_password(tmp_path) -> None:
    doc = parse_pdf(fx.encrypted(tmp_path / "restricted.pdf", user_pw=""))
    assert doc.segments and doc.warnings == []


def test_truncated_file_is_repaired_or_reported(tmp_path) -> None:
    path = fx.truncated(tmp_path / "cut.pdf", keep=0.5)
    try:
        doc = parse_pdf(path)
    except CorruptFile as exc:
        assert "cut.pdf" in str(exc) and "not a readable PDF" in str(exc)
    else:
        assert REPAIRED_WARNING in doc.warnings
        fx.check_spans(doc)


def test_garbage_is_corrupt(tmp_path) -> None:
    path = tmp_path / "junk.pdf"
    path.write_bytes(b"this is not a PDF at all\n" * 20)
    with pytest.raises(CorruptFile, match=r"junk\.pdf: not a readable PDF \(.+\)"):
        parse_pdf(path)
    path.write_bytes(b"")
    with pytest.raises(EmptyDocument):
        parse_pdf(path)


def test_missing_file_is_reported(tmp_path) -> None:
    with pytest.raises(IngestError, match="gone.pdf"):
        parse_pdf(tmp_path / "gone.pdf")


def test_zero_pages_is_empty(tmp_path) -> None:
    with pytest.raises(EmptyDocument, match="no pages"):
        parse_pdf(fx.zero_pages(tmp_path / "zero.pdf"))


def test_limits(tmp_path) -> None:
    path = fx.simple(tmp_path / "two.pdf", pages=2)
    with pytest.raises(TooLarge, match="2 pages"):
        parse_pdf(path, config=IngestConfig(max_pdf_pages=1))
    with pytest.raises(TooLarge, match="bytes"):
        parse_pdf(path, config=IngestConfig(max_pdf_bytes=100))
    assert len(parse_pdf(path, config=IngestConfig(max_pdf_pages=2)).pages) == 2


def test_failing_page_is_recorded_not_fatal(tmp_path, monkeypatch) -> None:
    from ingest.pdf import document

    real = document.parse_page

    def flaky(page, ctx, raw=None):
        if page.number == 1:
            raise RuntimeError("code=2: cannot parse content stream")
        return real(page, ctx, raw)

    monkeypatch.setattr(document, "parse_page", flaky)
    doc = parse_pdf(fx.simple(tmp_path / "three.pdf", pages=3), workers=1)
    assert [p.text_status for p in doc.pages] == ["text", "no-text", "text"]
    assert doc.pages[1].text == "" and {s.page for s in doc.segments} == {1, 3}
    assert any(w.startswith("page 2 could not be read (code=2") for w in doc.warnings)


def test_mupdf_stays_quiet(tmp_path, capfd) -> None:
    fx.truncated(tmp_path / "cut.pdf", keep=0.5)
    (tmp_path / "junk.pdf").write_bytes(b"%PDF-1.7\n" + bytes(range(256)) * 8)
    for name in ("cut.pdf", "junk.pdf"):
        try:
            parse_pdf(tmp_path / name)
        except IngestError:
            pass
    out, err = capfd.readouterr()
    assert out == "" and err == ""
