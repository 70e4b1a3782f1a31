"""Paragraphs, list items, code and headings from ordered lines.

MuPDF's blocks are a good first guess at paragraphs (it splits at indents
and spacing), but not a reliable one: it splits code at every indent
change and sometimes gives each line of a paragraph its own block. So a
new MuPDF block starts a paragraph unless the line visibly continues the
previous one (same style, no indent, normal line pitch, previous line full).
We also break at bullets, font size changes, large gaps and column changes
(unless the sentence runs on into the next column). Short bold or large
paragraphs are then classified as headings.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Sequence

from .headings import FontStats, HeadingEvent, font_heading_level
from .lines import Line

BULLET = re.compile(
    r"^(?:[\u2022\u25e6\u25aa\u25ab\u2023\u2219\u00b7\u25cf\u25cb\u25a0\u25a1\u2013\u2014\u2043*+\-\u27a2\u2192\u2713\uf0b7\uf0a7]"
    r"|\(?\d{1,3}[.)]|\(?[a-z][.)]|\([A-Za-z]\)|\(?[ivx]{1,4}[.)]|\([IVX]{1,4}\))\s+\S")
_SENTENCE_END = (".", ":", "!", "?", ";")


@dataclass
class TableData:
    """A detected table: markdown lines and, per line, the row box (or None
    for the header separator, which is not a printed line)."""

    bbox: tuple[float, float, float, float]
    md_lines: list[str]
    row_boxes: list[tuple[float, float, float, float] | None]


@dataclass
class Block:
    """A unit of page text: paragraph, list item, code, heading or table."""

    kind: str                                   # paragraph|list|code|heading|table|furniture
    lines: list[Line] = field(default_factory=list)
    table: TableData | None = None
    heading: HeadingEvent | None = None

    @property
    def plain(self) -> str:
        """Lines joined by single spaces (for classification before assembly)."""
        return " ".join(ln.text for ln in self.lines)


def _vertical_overlap(a: Line, b: Line) -> float:
    return min(a.y1, b.y1) - max(a.y0, b.y0)


def _runs_on(prev: Line, line: Line) -> bool:
    """Does `line` continue prev's sentence after a column change?"""
    return (not prev.text.endswith(_SENTENCE_END) and line.text[:1].islower()
            and abs(prev.size - line.size) < 0.6 and not (prev.mono or line.mono))


def _continues_block(first: Line, prev: Line, line: Line, pitch: float) -> bool:
    """MuPDF sometimes puts every line of a paragraph (or its first line) in
    a block of its own; a line continues the paragraph when it has the same
    style, no indent (the first line may be indented or hanging), the usual
    line pitch, and the previous line ran (nearly) as far right."""
    shift = abs(line.x0 - prev.x0)
    return (abs(line.size - prev.size) < 0.5
            and (line.bold == prev.bold or prev is first)
            and (shift <= 2.0 or (prev is first and shift <= 3 * line.size))
            and line.y0 - prev.y0 <= 1.2 * pitch * max(prev.size, line.size)
            and prev.x1 >= line.x1 - 0.15 * (line.x1 - line.x0)
            and not prev.text.endswith(":"))


def _flows_on(prev: Line, line: Line) -> bool:
    """A justified line running to the right edge without ending a sentence
    (e.g. a run-in heading in a smaller font) flows into the next line."""
    return (prev.x1 >= line.x1 - 0.05 * (line.x1 - line.x0)
            and not prev.text.endswith(_SENTENCE_END))


def _breaks(first: Line, prev: Line, line: Line, region_change: bool,
            pitch: float) -> bool:
    if region_change:
        return not _runs_on(prev, line)
    h = max(min(prev.height, line.height), 1.0)
    same_row = _vertical_overlap(prev, line) > 0.5 * h and line.x0 >= prev.x1 - 1
    if same_row:
        return False
    if BULLET.match(line.text) and not line.mono:
        return True
    step = (line.y0 - prev.y0) / max(prev.size, line.size, 1.0)
    if line.block != prev.block:
        if prev.mono and line.mono:
            return step > 1.4 * pitch
        return not _continues_block(first, prev, line, pitch)
    if abs(line.size - prev.size) >= 1.0 and not _flows_on(prev, line):
        return True
    if step > 1.5 * pitch and line.y0 - prev.y1 > 0.5 * max(prev.height, line.height):
        return True
    if (prev is first and prev.bold and not line.bold and not prev.mono
            and len(prev.text.split()) <= 10 and prev.text[-1] not in "-,"
            and not BULLET.match(prev.text)):
        return True  # a bold heading line MuPDF kept with its paragraph
    return False


def line_pitch(regions: Sequence[Sequence[int]], lines: Sequence[Line]) -> float:
    """Typical line pitch inside MuPDF blocks, as a multiple of font size."""
    steps: list[float] = []
    n = len(lines)
    for region in regions:
        prev: Line | None = None
        for i in region:
            if i >= n:
                prev = None
                continue
            line = lines[i]
            if prev is not None and prev.block == line.block:
                step = line.y0 - prev.y0
                if 0.5 * line.height < step < 3 * line.height and line.size > 0:
                    steps.append(step / line.size)
            prev = line
    if steps:
        steps.sort()
        return steps[len(steps) // 2]
    return 1.2


def _kind(lines: list[Line]) -> str:
    if all(ln.mono for ln in lines):
        return "code"
    if BULLET.match(lines[0].text):
        return "list"
    return "paragraph"


def build_blocks(regions: Sequence[Sequence[int]], lines: Sequence[Line],
                 tables: Sequence[TableData], stats: FontStats) -> list[Block]:
    """Group ordered lines into blocks. Region items with an index beyond
    `lines` stand for tables (index - len(lines))."""
    blocks: list[Block] = []
    cur: list[Line] = []
    n_lines = len(lines)

    def close() -> None:
        if cur:
            blocks.append(Block(_kind(cur), list(cur)))
            cur.clear()

    pitch = line_pitch(regions, lines)
    for region in regions:
        region_start = True
        for i in region:
            if i >= n_lines:
                close()
                blocks.append(Block("table", table=tables[i - n_lines]))
                region_start = True
                continue
            line = lines[i]
            if cur and _breaks(cur[0], cur[-1], line, region_start, pitch):
                close()
            cur.append(line)
            region_start = False
    close()
    for b in blocks:
        if b.kind == "paragraph":
            text = b.plain
            level = font_heading_level(b.lines, text, stats)
            if level is not None:
                b.kind = "heading"
                b.heading = ("font", level, " ".join(text.split()))
    return blocks


def heading_candidate(block: Block) -> bool:
    """Short, non-code blocks that could carry an outline entry's title."""
    if block.kind not in ("paragraph", "list", "heading"):
        return False
    return len(block.lines) <= 3 and len(block.plain.split()) <= 25
