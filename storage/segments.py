"""Read segments back, with the name and path of their document."""
from __future__ import annotations

from typing import Iterable

import sqlite_utils

from .records import SegmentRecord

_SELECT = """SELECT s.id, s.document_id, s.ordinal, s.kind, s.text, s.page,
       s.char_start, s.char_end, s.line_start, s.line_end, s.boxes, s.section,
       s.name, s.tokens, d.display_name AS document_name, d.path AS document_path
  FROM segments s JOIN documents d ON d.id = s.document_id"""


def _fetch(db: sqlite_utils.Database, where: str, params: list) -> list[SegmentRecord]:
    cursor = db.execute(f"{_SELECT} {where}", params)
    names = [c[0] for c in cursor.description]
    return [SegmentRecord.from_row(dict(zip(names, row))) for row in cursor.fetchall()]


def get_segments(db: sqlite_utils.Database, ids: Iterable[int]) -> list[SegmentRecord]:
    """Segments by id, in the order of `ids` (missing ids are dropped)."""
    ids = list(ids)
    if not ids:
        return []
    found: dict[int, SegmentRecord] = {}
    for start in range(0, len(ids), 500):   # stay under SQLite's variable limit
        chunk = ids[start:start + 500]
        marks = ",".join("?" * len(chunk))
        for seg in _fetch(db, f"WHERE s.id IN ({marks})", chunk):
            found[seg.id] = seg
    return [found[i] for i in ids if i in found]


def document_segments(db: sqlite_utils.Database, doc_id: int) -> list[SegmentRecord]:
    return _fetch(db, "WHERE s.document_id = ? ORDER BY s.ordinal", [doc_id])


def neighbours(db: sqlite_utils.Database, segment_id: int, before: int = 1,
               after: int = 1) -> list[SegmentRecord]:
    """The segment with its neighbours in document order."""
    return _fetch(db, """WHERE s.document_id = (SELECT document_id FROM segments WHERE id = ?)
        AND s.ordinal BETWEEN (SELECT ordinal FROM segments WHERE id = ?) - ?
                          AND (SELECT ordinal FROM segments WHERE id = ?) + ?
        ORDER BY s.ordinal""", [segment_id, segment_id, before, segment_id, after])


def segment_fingerprint(db: sqlite_utils.Database, doc_id: int) -> tuple[int, int, int]:
    """(count, smallest id, largest id) of a document's segments: re-indexing
    gives new ids, so a layout computed from the old ones is known stale."""
    count, low, high = db.execute(
        "SELECT COUNT(*), MIN(id), MAX(id) FROM segments WHERE document_id = ?",
        [doc_id]).fetchone()
    return count, low or 0, high or 0


def count_segments(db: sqlite_utils.Database) -> int:
    return db.execute("SELECT COUNT(*) FROM segments").fetchone()[0]
