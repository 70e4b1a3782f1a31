"""What ingestion produces: documents, pages and segments with exact spans.

These dataclasses are the contract between `ingest` (which fills them) and
`storage` (which persists them). Spans are always character offsets into a
text that is stored too (the page text for PDFs, the file text otherwise),
so a citation can be checked by slicing: `page.text[s.char_start:s.char_end]
== s.text`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

SegmentKind = Literal[
    "paragraph", "heading", "table", "list",
    "code-function", "code-class", "code-block", "text",
]
DocumentKind = Literal["pdf", "code", "text"]
TextStatus = Literal["text", "no-text", "ocr"]


@dataclass
class LineBox:
    """One rendered line of a segment: its box on the page (PDF points,
    origin top-left, as pymupdf reports) and its span in the page text."""

    x0: float
    y0: float
    x1: float
    y1: float
    start: int
    end: int

    def to_list(self) -> list[float | int]:
        return [round(self.x0, 2), round(self.y0, 2), round(self.x1, 2),
                round(self.y1, 2), self.start, self.end]

    @classmethod
    def from_list(cls, values: list) -> "LineBox":
        x0, y0, x1, y1, start, end = values
        return cls(x0, y0, x1, y1, int(start), int(end))


@dataclass
class Segment:
    """A retrievable unit: a paragraph group, table, list, or code unit."""

    kind: SegmentKind
    text: str
    char_start: int
    char_end: int
    tokens: int
    page: int | None = None          # 1-based physical page (PDF only)
    line_start: int | None = None    # 1-based, inclusive (code and text)
    line_end: int | None = None
    boxes: list[LineBox] = field(default_factory=list)
    section: list[str] = field(default_factory=list)  # heading path
    name: str | None = None          # qualified name for code units


@dataclass
class PageInfo:
    """One PDF page; `text` is the page text in reading order that segment
    spans index into."""

    number: int                      # 1-based
    width: float
    height: float
    text_status: TextStatus
    text: str = ""
    rotation: int = 0


@dataclass
class ParsedDocument:
    path: Path
    display_name: str
    kind: DocumentKind
    mime: str
    sha256: str
    size: int
    segments: list[Segment]
    pages: list[PageInfo] = field(default_factory=list)   # PDF only
    text: str | None = None          # whole file text (code and text kinds)
    language: str | None = None      # programming / markup language
    title: str | None = None
    warnings: list[str] = field(default_factory=list)     # notices for the user
