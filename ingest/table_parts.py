"""A table split across segments keeps its column names in every part.

A long table is cut into row groups so each fits a segment; only the first
holds the header row. The rest are rows of bare values ("| LORENZO FERNANDO
LUIS | 22.608.380 | 20-22608380-5 | ... | $ 15.000,00 |") that neither
search nor a model can read: a question about "the CUIT of the donor who
gave $15.000,00" matches the header's "Cuit" in the first part, not the row
in the fourth. So every part of a split pipe table gets the header row as
its segment name: search indexes it (FTS5 name column, embedding text) and
the prompt shows it above the rows (engine/select/pack.py). The segment text
is unchanged, so offsets, boxes and citations still point at the page.
"""
from __future__ import annotations

import re
from typing import Sequence

from .model import Segment

# A pipe-table row, and the `|---|` line under a header row (engine/select/tables.py too).
PIPE_ROW = re.compile(r"^\s*\|.*\|\s*$")
PIPE_SEPARATOR = re.compile(r"^\s*\|(?:\s*:?-+:?\s*\|)+\s*$")


def pipe_table_header(text: str) -> str | None:
    """The header row of the last pipe table in `text` (a row followed by a
    `|---|` line), or None."""
    lines = text.split("\n")
    for k in range(len(lines) - 2, -1, -1):
        if PIPE_ROW.match(lines[k]) and PIPE_SEPARATOR.match(lines[k + 1]):
            return lines[k].strip()
    return None


def _ends_in_table(text: str) -> bool:
    lines = [line for line in text.split("\n") if line.strip()]
    return bool(lines) and bool(PIPE_ROW.match(lines[-1]))


def name_table_parts(segments: Sequence[Segment], text: str) -> None:
    """Name every part of each split pipe table after its header row, in
    place. A part is a table segment without a header of its own right
    after (only white space between, in `text`, the string their offsets
    index) a segment that ends inside a table: the table's first part,
    which may also hold the lead-in the table was packed with."""
    open_header: str | None = None      # of the table the previous segment ended in
    prev: Segment | None = None
    for seg in segments:
        adjacent = prev is not None and not text[prev.char_end:seg.char_start].strip()
        header = pipe_table_header(seg.text)
        if seg.kind == "table" and header is None and adjacent and open_header:
            header = open_header
            seg.name = seg.name or header
            if prev is not None and prev.kind == "table" and prev.name is None:
                prev.name = header
        open_header = header if _ends_in_table(seg.text) else None
        prev = seg
