"""Open the library database: one SQLite file, WAL, foreign keys, migrated."""
from __future__ import annotations

import sqlite3
from pathlib import Path

import sqlite_utils

from .schema import migrate

BUSY_TIMEOUT_MS = 60_000  # the embedding worker and an ingest may both write


def open_db(path: Path | str) -> sqlite_utils.Database:
    """Open (creating if needed) and migrate the database at `path`.

    Every connection gets WAL (readers never block the writer), foreign keys
    (deleting a document cascades to everything derived from it) and a busy
    timeout, so a second process or thread waits instead of failing.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(str(path), timeout=BUSY_TIMEOUT_MS / 1000,
                           check_same_thread=False)
    db = sqlite_utils.Database(conn)
    db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    db.execute("PRAGMA journal_mode = WAL")
    db.execute("PRAGMA synchronous = NORMAL")
    db.execute("PRAGMA foreign_keys = ON")
    migrate(db)
    return db


def integrity_ok(db: sqlite_utils.Database) -> bool:
    return db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
