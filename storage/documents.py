"""Documents: write a parsed document atomically, find, list and remove."""
from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import sqlite_utils

from ingest.model import ParsedDocument

from .errors import no_space_is_reported
from .records import SECTION_SEPARATOR, DocumentRecord, PageRecord

STATUS_SEARCHABLE = "searchable"   # text stored and in the BM25 index
STATUS_READY = "ready"             # embeddings computed too
STATUS_ERROR = "error"             # could not be ingested; `error` says why


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def store_document(db: sqlite_utils.Database, parsed: ParsedDocument, *,
                   replace_id: int | None = None) -> int:
    """Insert a document with its pages and segments in one transaction.

    When `replace_id` is given the old version is removed in the same
    transaction, so readers see either the old or the new document, never
    both and never a half-written one. A full disk raises StorageFull.
    """
    now = _now()
    lines = parsed.text.count("\n") + 1 if parsed.text else 0
    with no_space_is_reported(f"storing {parsed.display_name}"), db.atomic():
        if replace_id is not None:
            _delete(db, replace_id)
        # A failed earlier attempt at this path is superseded by this one.
        db.execute("DELETE FROM documents WHERE path = ? AND status = ?",
                   [str(parsed.path), STATUS_ERROR])
        cursor = db.execute(
            """INSERT INTO documents (path, display_name, sha256, kind, mime,
                   language, title, size, pages, lines, segments, status,
                   warnings, text, created_at, updated_at)
               VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
            [str(parsed.path), parsed.display_name, parsed.sha256, parsed.kind,
             parsed.mime, parsed.language, parsed.title, parsed.size,
             len(parsed.pages), lines, len(parsed.segments), STATUS_SEARCHABLE,
             json.dumps(parsed.warnings), parsed.text, now, now])
        doc_id = cursor.lastrowid
        db.conn.executemany(
            """INSERT INTO pages (document_id, number, width, height, rotation,
                   text_status, text) VALUES (?, ?, ?, ?, ?, ?, ?)""",
            [(doc_id, p.number, p.width, p.height, p.rotation, p.text_status, p.text)
             for p in parsed.pages])
        db.conn.executemany(
            """INSERT INTO segments (document_id, ordinal, kind, text, page,
                   char_start, char_end, line_start, line_end, boxes, section,
                   name, tokens) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
            [(doc_id, i, s.kind, s.text, s.page, s.char_start, s.char_end,
              s.line_start, s.line_end,
              json.dumps([b.to_list() for b in s.boxes], separators=(",", ":")),
              SECTION_SEPARATOR.join(s.section), s.name, s.tokens)
             for i, s in enumerate(parsed.segments)])
    return doc_id


def record_failure(db: sqlite_utils.Database, path: Path, *, display_name: str,
                   sha256: str, size: int, kind: str, error_code: str,
                   error: str) -> int:
    """Remember that a file could not be ingested, so the library can show
    why; a later successful ingest of the same path replaces this row."""
    now = _now()
    with no_space_is_reported(f"recording why {display_name} failed"), db.atomic():
        db.execute("DELETE FROM documents WHERE path = ? AND status = ?",
                   [str(path), STATUS_ERROR])
        cursor = db.execute(
            """INSERT INTO documents (path, display_name, sha256, kind, size,
                   status, error, error_code, created_at, updated_at)
               VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
            [str(path), display_name, sha256, kind, size, STATUS_ERROR, error,
             error_code, now, now])
    return cursor.lastrowid


def _delete(db: sqlite_utils.Database, doc_id: int) -> None:
    # Segments go first so the FTS delete triggers see each row; pages and
    # embeddings follow through ON DELETE CASCADE.
    db.execute("DELETE FROM segments WHERE document_id = ?", [doc_id])
    db.execute("DELETE FROM documents WHERE id = ?", [doc_id])


def remove_document(db: sqlite_utils.Database, doc_id: int) -> bool:
    """Delete a document and everything derived from it; False if absent."""
    with db.atomic():
        exists = db.execute("SELECT 1 FROM documents WHERE id = ?", [doc_id]).fetchone()
        if exists:
            _delete(db, doc_id)
    return bool(exists)


_COLUMNS = ("id, path, display_name, sha256, kind, mime, language, title, size, "
            "pages, lines, segments, status, error, error_code, warnings, "
            "created_at, updated_at")


def _records(db: sqlite_utils.Database, where: str = "", params: list | None = None
             ) -> list[DocumentRecord]:
    sql = f"SELECT {_COLUMNS} FROM documents {where} ORDER BY id"
    cursor = db.execute(sql, params or [])
    names = [c[0] for c in cursor.description]
    return [DocumentRecord.from_row(dict(zip(names, row))) for row in cursor.fetchall()]


def list_documents(db: sqlite_utils.Database, *, include_errors: bool = True
                   ) -> list[DocumentRecord]:
    if include_errors:
        return _records(db)
    return _records(db, "WHERE status != ?", [STATUS_ERROR])


def get_document(db: sqlite_utils.Database, doc_id: int) -> DocumentRecord | None:
    found = _records(db, "WHERE id = ?", [doc_id])
    return found[0] if found else None


def find_by_sha256(db: sqlite_utils.Database, sha256: str, *,
                   exclude_id: int | None = None) -> DocumentRecord | None:
    """A stored document with this content; `exclude_id` is one being replaced."""
    found = _records(db, "WHERE sha256 = ? AND status != ? AND id IS NOT ?",
                     [sha256, STATUS_ERROR, exclude_id])
    return found[0] if found else None


def find_by_path(db: sqlite_utils.Database, path: Path | str) -> DocumentRecord | None:
    found = _records(db, "WHERE path = ? AND status != ?", [str(path), STATUS_ERROR])
    return found[0] if found else None


def resolve_documents(db: sqlite_utils.Database, ref: str) -> list[DocumentRecord]:
    """Documents a user may mean by `ref`: an id, a path, a file name, or a
    sha256 prefix of at least 8 characters."""
    if ref.isdigit():
        found = _records(db, "WHERE id = ?", [int(ref)])
        if found:
            return found
    resolved = str(Path(ref).expanduser().resolve()) if ref else ref
    found = _records(db, "WHERE path = ? OR path = ? OR display_name = ?",
                     [ref, resolved, ref])
    if found:
        return found
    if len(ref) >= 8 and all(c in "0123456789abcdef" for c in ref.lower()):
        return _records(db, "WHERE sha256 LIKE ?", [ref.lower() + "%"])
    return []


def set_status(db: sqlite_utils.Database, doc_id: int, status: str) -> None:
    with db.atomic():
        db.execute("UPDATE documents SET status = ?, updated_at = ? WHERE id = ?",
                   [status, _now(), doc_id])


def document_text(db: sqlite_utils.Database, doc_id: int) -> str | None:
    row = db.execute("SELECT text FROM documents WHERE id = ?", [doc_id]).fetchone()
    return row[0] if row else None


def get_page(db: sqlite_utils.Database, doc_id: int, number: int) -> PageRecord | None:
    row = db.execute(
        """SELECT document_id, number, width, height, rotation, text_status, text
           FROM pages WHERE document_id = ? AND number = ?""", [doc_id, number]).fetchone()
    return PageRecord(*row) if row else None


def page_status_counts(db: sqlite_utils.Database, doc_id: int) -> dict[str, int]:
    rows = db.execute(
        "SELECT text_status, COUNT(*) FROM pages WHERE document_id = ? GROUP BY text_status",
        [doc_id]).fetchall()
    return {status: count for status, count in rows}
