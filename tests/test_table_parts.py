"""A table split across segments keeps its header row in every part's name
(ingest/table_parts.py), for search and for the prompt."""
from __future__ import annotations

import pdf_fixtures as fx

from ingest.config import IngestConfig
from ingest.model import Segment
from ingest.pdf import parse_pdf
from ingest.table_parts import name_table_parts, pipe_table_header
from ingest.text import parse_text

HEADER = ["Donor", "Cuit", "Amount"]
DONORS = [[f"DONOR {k:02d}", f"20-{10000000 + k}-5", f"$ {5 + k % 3 * 5}.000,00"]
          for k in range(26)]


def test_every_part_of_a_split_pdf_table_is_named_after_its_header(tmp_path):
    pdf = fx.ruled_table(tmp_path / "donors.pdf", y0=120, rows=[HEADER] + DONORS, row_h=16)
    doc = parse_pdf(pdf, config=IngestConfig(max_tokens=160))
    fx.check_spans(doc)                      # texts still index the page exactly
    tables = [s for s in doc.segments if s.kind == "table"]
    assert len(tables) >= 3
    header = "| Donor | Cuit | Amount |"
    assert header in tables[0].text
    assert all(s.name == header for s in tables)
    assert not any(s.text.lstrip().startswith(header) for s in tables[1:])
    rows = [line for s in tables for line in s.text.splitlines() if "DONOR" in line]
    assert len(rows) == len(DONORS)          # every row once, none lost at a cut
    assert all(s.name is None for s in doc.segments if s.kind != "table")


def test_a_whole_table_and_an_unsplit_markdown_table_keep_no_name(tmp_path):
    doc = parse_pdf(fx.ruled_table(tmp_path / "t.pdf"))
    assert [s.name for s in doc.segments if s.kind == "table"] == [None]
    short = tmp_path / "short.md"
    short.write_text("# Fruit\n\n| Fruit | Price |\n|---|---|\n| Apple | 1.20 |\n")
    assert all(s.name is None for s in parse_text(short).segments)


def test_a_long_markdown_table_is_named_in_every_part(tmp_path):
    lines = ["| Donor | Cuit | Amount |", "|---|---|---|"] + [
        f"| {a} | {b} | {c} |" for a, b, c in DONORS * 3]
    notes = tmp_path / "donors.md"
    notes.write_text("# Donors\n\nThe list as filed.\n\n" + "\n".join(lines) + "\n")
    doc = parse_text(notes, config=IngestConfig(max_tokens=200))
    tables = [s for s in doc.segments if s.kind == "table"]
    assert len(tables) >= 3
    assert {s.name for s in tables} == {"| Donor | Cuit | Amount |"}
    for s in tables:
        assert doc.text[s.char_start:s.char_end] == s.text


def test_only_adjacent_pipe_tables_count_as_parts():
    text = "| a | b |\n|---|---|\n| 1 | 2 |\n| 3 | 4 |\nprose between\n| c | d |\n|---|---|\n"
    first = Segment("table", text[:20], 0, 20, 5)
    second = Segment("table", text[20:38], 20, 38, 5)
    other = Segment("table", text[52:], 52, len(text), 5)
    name_table_parts([first, second, other], text)
    assert first.name == second.name == "| a | b |" and other.name is None
    # aligned (non-pipe) tables have no header row to carry
    plain = "Planet Moons\nMercury 0\nVenus 0\n"
    parts = [Segment("table", plain[:13], 0, 13, 3), Segment("table", plain[13:], 13, len(plain), 3)]
    name_table_parts(parts, plain)
    assert [p.name for p in parts] == [None, None]
    assert pipe_table_header("intro\n| x | y |\n| --- | :-: |\n| 1 | 2 |") == "| x | y |"
