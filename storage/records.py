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
