"""Rows read back from the library, as typed records."""
from __future__ import annotations

import json
from dataclasses import dataclass, field

from ingest.model import LineBox


@dataclass
class DocumentRecord:
    id: int
    path: str
    display_name: str
    sha256: str
    kind: str
    mime: str | None
    language: str | None
    title: str | None
    size: int
    pages: int
    lines: int
    segments: int
    status: str            # "searchable" (text stored), "ready" (embedded), "error"
    error: str | None
    error_code: str | None
    warnings: list[str]
    created_at: str
    updated_at: str

    @classmethod
    def from_row(cls, row: dict) -> "DocumentRecord":
        row = dict(row)
        row.pop("text", None)
        row["warnings"] = json.loads(row.get("warnings") or "[]")
        return cls(**row)


@dataclass
class PageRecord:
    document_id: int
    number: int
    width: float
    height: float
    rotation: int
    text_status: str
    text: str


@dataclass
class SegmentRecord:
    id: int
    document_id: int
    ordinal: int
    kind: str
    text: str
    page: int | None
    char_start: int
    char_end: int
    line_start: int | None
    line_end: int | None
    boxes: list[LineBox]
    section: list[str]
    name: str | None
    tokens: int
    document_name: str = ""
    document_path: str = ""
    extra: dict = field(default_factory=dict)

    @classmethod
    def from_row(cls, row: dict) -> "SegmentRecord":
        row = dict(row)
        row["boxes"] = [LineBox.from_list(b) for b in json.loads(row["boxes"] or "[]")]
        section = row.get("section") or ""
        row["section"] = section.split(SECTION_SEPARATOR) if section else []
        return cls(**row)


# Section paths are stored as plain text so FTS indexes the heading words.
SECTION_SEPARATOR = " > "


@dataclass
class CitationRecord:
    """One cited span: where it is (page and glyph boxes, or file lines),
    the quoted words, and how strongly it supports its answer sentence."""

    label: int                       # the [n] of the source it came from
    sentence: int                    # index of the answer sentence it supports
    document_id: int | None
    document_name: str
    document_path: str
    segment_id: int | None
    page: int | None                 # PDFs: 1-based physical page
    line_start: int | None           # code and text: 1-based, inclusive
    line_end: int | None
    char_start: int                  # in the page text (PDF) or file text
    char_end: int
    quote: str
    boxes: list[list[float]]         # [x0, y0, x1, y1] in PDF points, top-left origin
    score: float
    id: int | None = None

    def location(self) -> str:
        """`refman.pdf, p. 12` or `decoder.py:120-134`, as the CLI prints."""
        if self.page is not None:
            return f"{self.document_name}, p. {self.page}"
        if self.line_start is not None:
            end = f"-{self.line_end}" if self.line_end and self.line_end != self.line_start else ""
            return f"{self.document_name}:{self.line_start}{end}"
        return self.document_name


@dataclass
class TurnRecord:
    id: int
    conversation_id: int
    ordinal: int
    question: str
    search_query: str
    answer: str
    declined: bool
    status: str
    model: str
    metadata: dict
    created_at: str
    citations: list[CitationRecord] = field(default_factory=list)


@dataclass
class ConversationRecord:
    id: int
    title: str
    document_ids: list[int]
    created_at: str
    updated_at: str
    turns: list[TurnRecord] = field(default_factory=list)
