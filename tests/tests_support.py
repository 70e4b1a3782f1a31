"""Small builders shared by tests."""
from __future__ import annotations

from pathlib import Path

from ingest.model import PageInfo, ParsedDocument, Segment


def small_document(text: str = "The glacier advances every winter.", name: str = "small.pdf",
                   sha: str = "e" * 64) -> ParsedDocument:
    return ParsedDocument(Path(f"/d/{name}"), name, "pdf", "application/pdf", sha, 1,
                          [Segment("paragraph", text, 0, len(text), 6, page=1)],
                          [PageInfo(1, 612, 792, "text", text)])
