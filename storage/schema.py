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


def _v2(db: sqlite_utils.Database) -> None:
    """Conversations with their answers and citations; sparse-engine KV caches."""
    db.execute("""
        CREATE TABLE conversations (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            title TEXT NOT NULL DEFAULT '',
            document_ids TEXT NOT NULL DEFAULT '[]',  -- scope, JSON list; [] = all
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL
        )""")
    db.execute("""
        CREATE TABLE turns (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            conversation_id INTEGER NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
            ordinal INTEGER NOT NULL,
            question TEXT NOT NULL,
            search_query TEXT NOT NULL DEFAULT '',
            answer TEXT NOT NULL DEFAULT '',
            declined INTEGER NOT NULL DEFAULT 0,
            status TEXT NOT NULL DEFAULT 'done',      -- 'done', 'stopped', 'error'
            model TEXT NOT NULL DEFAULT '',
            metadata TEXT NOT NULL DEFAULT '{}',      -- sources, timings, tokens (JSON)
            created_at TEXT NOT NULL
        )""")
    db.execute("CREATE UNIQUE INDEX turns_conversation_ordinal ON turns(conversation_id, ordinal)")
    db.execute("""
        CREATE TABLE citations (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            turn_id INTEGER NOT NULL REFERENCES turns(id) ON DELETE CASCADE,
            label INTEGER NOT NULL,
            sentence INTEGER NOT NULL,
            document_id INTEGER REFERENCES documents(id) ON DELETE SET NULL,
            document_name TEXT NOT NULL,
            document_path TEXT NOT NULL,
            segment_id INTEGER,                       -- no FK: a citation outlives re-indexing
            page INTEGER,
            line_start INTEGER,
            line_end INTEGER,
            char_start INTEGER NOT NULL,
            char_end INTEGER NOT NULL,
            quote TEXT NOT NULL,
            boxes TEXT NOT NULL DEFAULT '[]',
            score REAL NOT NULL
        )""")
    db.execute("CREATE INDEX citations_turn ON citations(turn_id)")
    db.execute("""
        CREATE TABLE kv_caches (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            document_id INTEGER NOT NULL REFERENCES documents(id) ON DELETE CASCADE,
            model TEXT NOT NULL,                      -- model identity (name + weights hash)
            path TEXT NOT NULL,                       -- folder of memory-mapped block files
            block_size INTEGER NOT NULL,
            tokens INTEGER NOT NULL,
            layers INTEGER NOT NULL,
            kv_heads INTEGER NOT NULL,
            head_dim INTEGER NOT NULL,
            dtype TEXT NOT NULL,
            bytes INTEGER NOT NULL,
            status TEXT NOT NULL DEFAULT 'ready',     -- 'writing' until complete
            metadata TEXT NOT NULL DEFAULT '{}',
            created_at TEXT NOT NULL,
            UNIQUE (document_id, model)
        )""")


def _v3(db: sqlite_utils.Database) -> None:
    """KV caches in parts: retrieval-first reading builds a long document's
    cache page by page, as questions first need them (one row per page)."""
    columns = ("id, document_id, model, path, block_size, tokens, layers, kv_heads, head_dim, "
               "dtype, bytes, status, metadata, created_at")
    db.execute("ALTER TABLE kv_caches RENAME TO kv_caches_v2")
    db.execute("""
        CREATE TABLE kv_caches (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            document_id INTEGER NOT NULL REFERENCES documents(id) ON DELETE CASCADE,
            model TEXT NOT NULL,                      -- model identity (name + weights hash)
            part TEXT NOT NULL DEFAULT '',            -- '' = the whole document, else a page
            path TEXT NOT NULL,                       -- folder of memory-mapped block files
            block_size INTEGER NOT NULL,
            tokens INTEGER NOT NULL,
            layers INTEGER NOT NULL,
            kv_heads INTEGER NOT NULL,
            head_dim INTEGER NOT NULL,
            dtype TEXT NOT NULL,
            bytes INTEGER NOT NULL,
            status TEXT NOT NULL DEFAULT 'ready',     -- 'writing' until complete
            metadata TEXT NOT NULL DEFAULT '{}',
            created_at TEXT NOT NULL,
            UNIQUE (document_id, model, part)
        )""")
    db.execute(f"INSERT INTO kv_caches ({columns}) SELECT {columns} FROM kv_caches_v2")
    db.execute("DROP TABLE kv_caches_v2")


MIGRATIONS: list[Callable[[sqlite_utils.Database], None]] = [_v1, _v2, _v3]
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
