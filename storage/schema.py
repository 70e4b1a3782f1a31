"""Schema versions as forward migrations.

The version lives in `PRAGMA user_version`. Each migration runs in its own
transaction, so an interrupted upgrade leaves the previous version intact.
Never edit a released migration: append a new one.
"""
from __future__ import annotations

from typing import Callable

import sqlite_utils


class SchemaTooNew(RuntimeError):
    """The file was written by a newer Folio; refuse rather than damage it."""


def _v1(db: sqlite_utils.Database) -> None:
    db.execute("""
        CREATE TABLE documents (
            id INTEGER PRIMARY KEY AUTOINCREMENT,  -- never reuse a removed id
            path TEXT NOT NULL,
            display_name TEXT NOT NULL,
            sha256 TEXT NOT NULL,
            kind TEXT NOT NULL,
            mime TEXT,
            language TEXT,
            title TEXT,
            size INTEGER NOT NULL DEFAULT 0,
            pages INTEGER NOT NULL DEFAULT 0,
            lines INTEGER NOT NULL DEFAULT 0,
            segments INTEGER NOT NULL DEFAULT 0,
            status TEXT NOT NULL,
            error TEXT,
            error_code TEXT,
            warnings TEXT NOT NULL DEFAULT '[]',
            text TEXT,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL
        )""")
    db.execute("CREATE INDEX documents_sha256 ON documents(sha256)")
    db.execute("CREATE INDEX documents_path ON documents(path)")
    db.execute("""
        CREATE TABLE pages (
            document_id INTEGER NOT NULL REFERENCES documents(id) ON DELETE CASCADE,
            number INTEGER NOT NULL,
            width REAL NOT NULL,
            height REAL NOT NULL,
            rotation INTEGER NOT NULL DEFAULT 0,
            text_status TEXT NOT NULL CHECK (text_status IN ('text', 'no-text', 'ocr')),
            text TEXT NOT NULL DEFAULT '',
            PRIMARY KEY (document_id, number)
        )""")
    db.execute("""
        CREATE TABLE segments (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            document_id INTEGER NOT NULL REFERENCES documents(id) ON DELETE CASCADE,
            ordinal INTEGER NOT NULL,
            kind TEXT NOT NULL CHECK (kind IN ('paragraph', 'heading', 'table', 'list',
                'code-function', 'code-class', 'code-block', 'text')),
            text TEXT NOT NULL,
            page INTEGER,
            char_start INTEGER NOT NULL,
            char_end INTEGER NOT NULL,
            line_start INTEGER,
            line_end INTEGER,
            boxes TEXT NOT NULL DEFAULT '[]',
            section TEXT NOT NULL DEFAULT '',
            name TEXT,
            tokens INTEGER NOT NULL
        )""")
    db.execute("CREATE UNIQUE INDEX segments_document_ordinal ON segments(document_id, ordinal)")
    db["segments"].enable_fts(
        ["text", "section", "name"], fts_version="FTS5", create_triggers=True,
        tokenize="porter")
    db.execute("""
        CREATE TABLE embeddings (
            segment_id INTEGER NOT NULL REFERENCES segments(id) ON DELETE CASCADE,
            model TEXT NOT NULL,
            dim INTEGER NOT NULL,
            dtype TEXT NOT NULL CHECK (dtype IN ('float32', 'int8')),
            scale REAL NOT NULL DEFAULT 1.0,
            vector BLOB NOT NULL,
            PRIMARY KEY (segment_id, model)
        )""")
    db.execute("CREATE INDEX embeddings_model ON embeddings(model)")


MIGRATIONS: list[Callable[[sqlite_utils.Database], None]] = [_v1]
SCHEMA_VERSION = len(MIGRATIONS)


def current_version(db: sqlite_utils.Database) -> int:
    return db.execute("PRAGMA user_version").fetchone()[0]


def migrate(db: sqlite_utils.Database) -> int:
    """Bring the database to SCHEMA_VERSION; returns the version found."""
    found = current_version(db)
    if found > SCHEMA_VERSION:
        raise SchemaTooNew(
            f"this library was written by a newer Folio (schema {found}, "
            f"this version knows {SCHEMA_VERSION}); upgrade Folio to open it")
    for version in range(found, SCHEMA_VERSION):
        with db.atomic():
            MIGRATIONS[version](db)
            db.execute(f"PRAGMA user_version = {version + 1}")
    return found
