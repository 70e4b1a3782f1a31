"""Open the library database: one SQLite file, WAL, foreign keys, migrated."""
from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path
from typing import Iterator

import sqlite_utils

from .schema import migrate

BUSY_TIMEOUT_MS = 60_000  # the embedding worker and an ingest may both write


class Database(sqlite_utils.Database):
    """sqlite-utils' Database whose outermost transaction takes the write
    lock at BEGIN. A deferred transaction that reads and then writes fails
    at once ("database is locked") when another connection committed in
    between, and the busy timeout cannot help it; IMMEDIATE waits instead."""

    @contextlib.contextmanager
    def atomic(self) -> Iterator["Database"]:
        if self.conn.in_transaction:
            with super().atomic():
                yield self
            return
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield self
        except BaseException:
            self.conn.rollback()
            raise
        else:
            try:
                self.conn.execute("COMMIT")
            except BaseException:
                self.conn.rollback()
                raise


def open_db(path: Path | str) -> Database:
    """Open (creating if needed) and migrate the database at `path`.

    Every connection gets WAL (readers never block the writer), foreign keys
    (deleting a document cascades to everything derived from it) and a busy
    timeout, so a second process or thread waits instead of failing.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(str(path), timeout=BUSY_TIMEOUT_MS / 1000,
                           check_same_thread=False)
    db = Database(conn)
    db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    db.execute("PRAGMA journal_mode = WAL")
    db.execute("PRAGMA synchronous = NORMAL")
    db.execute("PRAGMA foreign_keys = ON")
    migrate(db)
    return db


def integrity_ok(db: sqlite_utils.Database) -> bool:
    return db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
