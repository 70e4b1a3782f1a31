"""Tables: ruled grids through pymupdf's finder, aligned unruled rows."""
from __future__ import annotations

import pdf_fixtures as fx
import pymupdf
import pytest

from ingest.config import IngestConfig
from ingest.pdf import parse_pdf


@pytest.fixture
def finder_calls(monkeypatch):
    """Count Page.find_tables calls (the expensive part)."""
    calls = []
    original = pymupdf.Page.find_tables

    def counting(self, *args, **kwargs):
        calls.append(self.number)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(pymupdf.Page, "find_tables", counting)
    return calls


def test_ruled_table_becomes_markdown_segment(tmp_path, finder_calls) -> None:
    doc = parse_pdf(fx.ruled_table(tmp_path / "t.pdf"))
    fx.check_spans(doc)
    assert finder_calls == [0]
    tables = [s for s in doc.segments if s.kind == "table"]
    assert len(tables) == 1
    table = tables[0]
    assert "| Fruit | Colour | Price |\n|---|---|---|\n| Apple | Red | 1.20 |" in table.text
    assert "| Cherry | Dark red | 3.10 |" in table.text
    # one box per printed row, each on its markdown line
    rows = [b for b in table.boxes if doc.pages[0].text[b.start:b.end].startswith("| ")]
    assert len(rows) == len(fx.TABLE)
    assert [round(b.y0) for b in rows] == [250 + 22 * k for k in range(len(fx.TABLE))]
    # cell text is not repeated in the normal flow, and the table sits
    # between the paragraphs drawn above and below it
    text = doc.pages[0].text
    assert text.count("Banana") == 1
    assert text.index("before table sentence 3") < text.index("| Fruit") < text.index(
        "after table sentence 1")


def test_text_pages_never_run_the_table_finder(tmp_path, finder_calls) -> None:
    doc = parse_pdf(fx.headings(tmp_path / "h.pdf"))
    assert finder_calls == [] and len(doc.pages) == 3


def test_table_finding_can_be_switched_off(tmp_path, finder_calls) -> None:
    doc = parse_pdf(fx.ruled_table(tmp_path / "t.pdf"), config=IngestConfig(find_tables=False))
    assert finder_calls == []
    assert all(s.kind != "table" for s in doc.segments)
    assert "Banana" in doc.pages[0].text


def test_aligned_rows_become_a_table(tmp_path) -> None:
    doc = parse_pdf(fx.aligned_table(tmp_path / "a.pdf"))
    fx.check_spans(doc)
    table = [s for s in doc.segments if s.kind == "table"][0]
    assert "| Planet | Moons | Radius km |" in table.text
    assert "| Earth | 1 | 6371 |" in table.text


def test_rows_the_finder_stacks_into_one_are_read_row_by_row(tmp_path, finder_calls,
                                                               monkeypatch) -> None:
    """A table ruled only around its header and outside: the finder returns
    one body row whose cells hold whole columns, the labels apart from their
    numbers. Folio leaves it to the aligned-rows reader, which keeps each
    label with its numbers."""
    import ingest.pdf.tables as tables

    path = fx.stacked_table(tmp_path / "s.pdf")
    doc = parse_pdf(path)
    fx.check_spans(doc)
    assert finder_calls == [0]                  # the grid was seen and the finder asked
    text = "\n".join(s.text for s in doc.segments if s.kind == "table")
    for label, total, male, female in fx.STACKED[1:]:
        assert f"| {label} | {total} | {male} | {female} |" in text
    assert doc.pages[0].text.count("Robbery") == 1
    # without the check, the finder's stacked row is what a table would hold
    monkeypatch.setattr(tables, "stacked_rows", lambda tab, words: False)
    stacked = "\n".join(s.text for s in parse_pdf(path).segments if s.kind == "table")
    assert "| Robbery | 102.1 |" not in stacked
    assert "Murder Forcible rape Robbery" in stacked
