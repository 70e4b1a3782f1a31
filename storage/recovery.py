"""What a start-up after a crash checks: the file is sound, nothing is
half-written, and nothing outlives what it was derived from.

SQLite's journal already undoes an interrupted transaction, and every write
of Folio is one transaction; these checks prove it on each start and report
work that was interrupted between transactions (embeddings still to compute).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import sqlite_utils

from .documents import STATUS_ERROR

# Rows whose parent is gone: (name, query counting them, query deleting them).
_ORPHANS = {
    "pages": "FROM pages WHERE document_id NOT IN (SELECT id FROM documents)",
    "segments": "FROM segments WHERE document_id NOT IN (SELECT id FROM documents)",
    "embeddings": "FROM embeddings WHERE segment_id NOT IN (SELECT id FROM segments)",
    "turns": "FROM turns WHERE conversation_id NOT IN (SELECT id FROM conversations)",
    "citations": "FROM citations WHERE turn_id NOT IN (SELECT id FROM turns)",
    "kv_caches": "FROM kv_caches WHERE document_id NOT IN (SELECT id FROM documents)",
}


@dataclass
class Consistency:
    integrity: list[str]                 # PRAGMA integrity_check: ["ok"] when sound
    fts_ok: bool                         # the BM25 index matches the segments
    orphans: dict[str, int] = field(default_factory=dict)    # table -> rows without parent
    half_written: list[int] = field(default_factory=list)   # documents missing segments

    @property
    def ok(self) -> bool:
        return (self.integrity == ["ok"] and self.fts_ok and not any(self.orphans.values())
                and not self.half_written)

    def problems(self) -> list[str]:
        out = [] if self.integrity == ["ok"] else [f"integrity: {m}" for m in self.integrity]
        if not self.fts_ok:
            out.append("the keyword index does not match the stored segments")
        out += [f"{n} {table} rows without their parent" for table, n in self.orphans.items() if n]
        out += [f"document #{d} is missing segments" for d in self.half_written]
        return out


def fts_consistent(db: sqlite_utils.Database) -> bool:
    """FTS5's own check, rank 1: the index against its content table."""
    try:
        db.execute("INSERT INTO segments_fts(segments_fts, rank) VALUES ('integrity-check', 1)")
    except Exception:
        return False
    return True


def check(db: sqlite_utils.Database) -> Consistency:
    integrity = [row[0] for row in db.execute("PRAGMA integrity_check").fetchall()]
    tables = set(db.table_names())
    orphans = {name: db.execute(f"SELECT COUNT(*) {where}").fetchone()[0]
               for name, where in _ORPHANS.items() if name in tables}
    half = [row[0] for row in db.execute(
        """SELECT d.id FROM documents d WHERE d.status != ? AND d.segments !=
               (SELECT COUNT(*) FROM segments s WHERE s.document_id = d.id)""",
        [STATUS_ERROR]).fetchall()]
    return Consistency(integrity, fts_consistent(db), orphans, half)


def remove_orphans(db: sqlite_utils.Database) -> dict[str, int]:
    """Delete rows whose parent is gone (only a database once written with
    foreign keys off can hold any); returns what was removed per table."""
    removed = {}
    tables = set(db.table_names())
    with db.atomic():
        for name, where in _ORPHANS.items():
            if name in tables:
                removed[name] = db.execute(f"DELETE {where}").rowcount
    return {k: v for k, v in removed.items() if v}


def referenced_paths(db: sqlite_utils.Database) -> set[str]:
    """Every file path a document row names (failed ones too: a locked PDF
    waits for its password)."""
    return {row[0] for row in db.execute("SELECT path FROM documents").fetchall()}
