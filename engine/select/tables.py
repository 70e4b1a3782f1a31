"""Pipe tables as the prompt shows them: rows, column names, records.

Ingestion writes a table as pipe rows ("| MENA JUAN | 27.083.460 |
20-27083460-5 | ... |") under one header row; each part of a table split
across segments carries that header as its segment name
(ingest/table_parts.py). A model reads a whole table as a grid well
enough, but one or two rows pulled out of a long one lose their columns:
given the single row of the donor who gave $15.000,00, the 0.5B model
answered with the "Matricula" column's 22.608.380 for the CUIT; written
as "Cuit: 20-22608380-5; ..." it copied the right one.
"""
from __future__ import annotations

from ingest.table_parts import PIPE_ROW, PIPE_SEPARATOR

from .base import Source
from .prune_code import line_ranges

RECORD_ROWS = 3         # rows pulled out of a table up to this many read as records


def table_rows(text: str) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """(header lines, body rows) of a pipe table as (start, end) ranges with
    their line breaks; ([], []) when `text` is not all pipe-table rows."""
    lines = line_ranges(text)
    if not lines or not all(PIPE_ROW.match(text[a:b]) for a, b in lines if text[a:b].strip()):
        return [], []
    head = 2 if len(lines) > 1 and PIPE_SEPARATOR.match(text[lines[1][0]:lines[1][1]]) else 0
    body = [r for r in lines[head:] if text[r[0]:r[1]].strip()]
    return lines[:head], body


def cells(row: str) -> list[str]:
    """The cells of one pipe row, stripped."""
    return [c.strip() for c in row.strip().strip("|").split("|")]


def table_header(source: Source) -> str | None:
    """The header row of the table a source's rows come from (its first
    part's own header, or the header its segment is named after)."""
    part = source.parts[0]
    if part.segment.kind != "table":
        return None
    text = part.segment.text
    head, _ = table_rows(text)
    if head:
        return text[head[0][0]:head[0][1]].strip()
    return part.segment.name if part.segment.name and PIPE_ROW.match(part.segment.name) else None


def table_columns(source: Source) -> str:
    """The column names above rows from the middle of a long table (a
    header row and a `|---|` line), or "" when the source starts at the
    table's own header or is no table."""
    part = source.parts[0]
    header = part.segment.name
    if part.segment.kind != "table" or not header or part.text.lstrip().startswith(header):
        return ""
    return f"{header}\n|{'---|' * max(1, header.count('|') - 1)}\n"


def as_records(source: Source) -> str | None:
    """A few rows pulled out of one table as "column: value; ..." lines, or
    None when the source is a whole table (or a large part of one), or no
    pipe table."""
    if len(source.segments) != 1 or source.parts[0].segment.kind != "table":
        return None
    segment = source.parts[0].segment
    if sum(p.end - p.start for p in source.parts) >= len(segment.text.strip()):
        return None                 # the whole segment: a grid, as written
    header = table_header(source)
    rows = [line for p in source.parts for line in p.text.splitlines()
            if PIPE_ROW.match(line) and not PIPE_SEPARATOR.match(line) and line.strip() != header]
    if header is None or not rows or len(rows) > RECORD_ROWS:
        return None
    names = cells(header)
    out = []
    for row in rows:
        values = cells(row)
        if len(values) != len(names):
            return None
        out.append("; ".join(f"{n}: {v}" if n else v for n, v in zip(names, values)))
    return "\n".join(out)
