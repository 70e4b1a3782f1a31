"""Pages without a text layer: reported, and OCR'd when tesseract exists."""
from __future__ import annotations

import shutil

import pdf_fixtures as fx
import pymupdf
import pytest

from ingest.config import IngestConfig
from ingest.pdf import parse_pdf
from ingest.pdf import document


def test_image_pages_are_no_text_with_a_warning(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(document, "tesseract_path", lambda: None)
    doc = parse_pdf(fx.with_scans(tmp_path / "scan.pdf"), config=IngestConfig(ocr=False))
    assert [p.text_status for p in doc.pages] == ["text", "no-text", "no-text"]
    assert doc.pages[1].text == ""
    assert {s.page for s in doc.segments} == {1}
    assert "2 of 3 pages have no text layer; install tesseract to OCR them" in doc.warnings


def test_warning_when_ocr_is_off_but_available(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(document, "tesseract_path", lambda: "/usr/bin/tesseract")
    doc = parse_pdf(fx.with_scans(tmp_path / "scan.pdf"), config=IngestConfig(ocr=False))
    assert "2 of 3 pages have no text layer; OCR is turned off" in doc.warnings


def test_blank_page_is_not_a_scan(tmp_path) -> None:
    pdf = pymupdf.open()
    pdf.new_page()
    pdf.save(tmp_path / "blank.pdf")
    doc = parse_pdf(tmp_path / "blank.pdf")
    assert doc.pages[0].text_status == "text" and doc.segments == []
    assert doc.warnings == ["no text was found in the document"]


@pytest.mark.skipif(shutil.which("tesseract") is None, reason="tesseract not installed")
def test_ocr_reads_an_image_page(tmp_path) -> None:
    src = pymupdf.open(fx.simple(tmp_path / "typed.pdf"))
    pix = src[0].get_pixmap(dpi=200)
    scan = pymupdf.open()
    scan.new_page(width=612, height=792).insert_image(pymupdf.Rect(0, 0, 612, 792), pixmap=pix)
    scan.save(tmp_path / "scan.pdf")
    doc = parse_pdf(tmp_path / "scan.pdf", config=IngestConfig(ocr=True))
    assert doc.pages[0].text_status == "ocr"
    assert "careful readers" in doc.pages[0].text
    fx.check_spans(doc)
