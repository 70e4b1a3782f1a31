"""A library written by every earlier schema opens in this Folio with every
row kept, and ends with exactly the schema of a new library.

Each earlier version is rebuilt the way the migration chain defines it (the
first N migrations, nothing of today's code) and filled with raw SQL, then a
copy is migrated: the original stays untouched to compare against. A kill
during the upgrade leaves the old version, whole, to upgrade next time.
"""
from __future__ import annotations

import json
import shutil
import sqlite3

import numpy as np
import pytest
import sqlite_utils

from storage import documents, embeddings, fts, open_db, recovery, schema, segments
from storage.db import Database

from kill_support import assert_killed, run_child

NOW = "2024-05-01T10:00:00+00:00"
VECTOR = np.linspace(-1, 1, 8, dtype=np.float32)


def _documents(db) -> None:
    rows = [
        (1, "/lib/report.pdf", "report.pdf", "a" * 64, "pdf", "application/pdf", None, "Report",
         2048, 2, 0, 2, "ready", None, None, '["page 2 has no text"]',
         "The glacier advances.\fMeltwater feeds the reservoir.", NOW, NOW),
        (2, "/lib/tool.py", "tool.py", "b" * 64, "code", "text/x-python", "python", None,
         90, 0, 3, 1, "searchable", None, None, "[]", "def spill(x):\n    return x\n", NOW, NOW),
        (3, "/lib/locked.pdf", "locked.pdf", "c" * 64, "pdf", None, None, None, 10, 0, 0, 0,
         "error", "locked.pdf: needs a password", "password-required", "[]", None, NOW, NOW),
    ]
    db.conn.executemany(f"INSERT INTO documents VALUES ({','.join('?' * 19)})", rows)
    db.conn.executemany("INSERT INTO pages VALUES (?, ?, ?, ?, ?, ?, ?)", [
        (1, 1, 612.0, 792.0, 0, "text", "The glacier advances."),
        (1, 2, 612.0, 792.0, 90, "ocr", "Meltwater feeds the reservoir.")])
    db.conn.executemany(f"INSERT INTO segments VALUES ({','.join('?' * 14)})", [
        (1, 1, 0, "heading", "The glacier advances.", 1, 0, 21, None, None,
         "[[56.0,60.5,300.25,74.0]]", "Findings", None, 4),
        (2, 1, 1, "paragraph", "Meltwater feeds the reservoir.", 2, 0, 30, None, None,
         "[]", "Findings > Water", None, 5),
        (3, 2, 0, "code-function", "def spill(x):\n    return x", None, 0, 26, 1, 2,
         "[]", "", "spill", 8)])
    db.conn.executemany("INSERT INTO embeddings VALUES (?, ?, ?, ?, ?, ?)", [
        (1, "mini", 8, "float32", 1.0, VECTOR.tobytes()),
        (2, "mini", 8, "int8", 1 / 127, np.round(VECTOR * 127).astype(np.int8).tobytes()),
        (3, "other-model", 8, "float32", 1.0, (VECTOR * 2).tobytes())])


def _conversations(db) -> None:
    db.execute("INSERT INTO conversations VALUES (1, 'Glaciers', '[1]', ?, ?)", [NOW, NOW])
    db.execute("""INSERT INTO turns VALUES (1, 1, 0, 'What advances?', 'advances', 'The glacier
               advances [1].', 0, 'done', 'qwen', '{"ttft_s": 0.5}', ?)""", [NOW])
    db.execute("""INSERT INTO citations VALUES (1, 1, 1, 0, 1, 'report.pdf', '/lib/report.pdf',
               1, 1, NULL, NULL, 0, 21, 'The glacier advances.', '[[56,60,300,74]]', 0.9)""")
    db.execute("""INSERT INTO kv_caches VALUES (1, 1, 'qwen@abc', '/kv/qwen/aaaa', 64, 9, 24, 2,
               64, 'float16', 4096, 'ready', '{}', ?)""", [NOW])


# Rows each version's tables get, keyed by the table that must exist for them.
FILLERS = {"documents": _documents, "conversations": _conversations}


def library_at(version: int, path) -> None:
    """A library file written by schema `version`, as its migrations made it."""
    db = sqlite_utils.Database(path)
    db.execute("PRAGMA journal_mode = WAL")
    for migration in schema.MIGRATIONS[:version]:
        migration(db)
    db.execute(f"PRAGMA user_version = {version}")
    with db.conn:
        for table, fill in FILLERS.items():
            if table in db.table_names():
                fill(db)
    db.close()


def all_rows(db) -> dict[str, list[dict]]:
    out = {}
    for table in db.table_names():
        if table.startswith("segments_fts") or table == "sqlite_sequence":
            continue
        cursor = db.execute(f"SELECT * FROM [{table}] ORDER BY rowid")
        names = [c[0] for c in cursor.description]
        out[table] = [dict(zip(names, row)) for row in cursor.fetchall()]
    return out


def schema_of(db) -> list[tuple]:
    return db.execute("""SELECT type, name, tbl_name, sql FROM sqlite_master
                         WHERE name != 'sqlite_sequence' ORDER BY type, name""").fetchall()


@pytest.mark.parametrize("version", range(1, schema.SCHEMA_VERSION))
def test_every_earlier_schema_upgrades_keeping_every_row(tmp_path, version):
    original = tmp_path / f"v{version}.db"
    library_at(version, original)
    copy = tmp_path / "copy.db"
    shutil.copy(original, copy)

    old = sqlite_utils.Database(original)
    before = all_rows(old)
    assert before["documents"] and before["segments"] and before["embeddings"]

    db = open_db(copy)
    assert schema.current_version(db) == schema.SCHEMA_VERSION
    after = all_rows(db)
    for table, rows in before.items():      # every row, every column, byte for byte
        assert [{k: r[k] for k in rows[0]} for r in after[table]] == rows, table
    fresh = open_db(tmp_path / "fresh.db")
    assert schema_of(db) == schema_of(fresh)
    assert set(all_rows(db)) == set(all_rows(fresh))

    # The upgraded library works through today's code: search, vectors, records.
    assert recovery.check(db).ok, recovery.check(db).problems()
    [hit] = fts.bm25_search(db, "meltwater")
    assert segments.get_segments(db, [hit.segment_id])[0].section == ["Findings", "Water"]
    assert [h.segment_id for h in fts.bm25_search(db, "spill")] == [3]
    ids, doc_ids, matrix = embeddings.load_matrix(db, "mini")
    assert ids.tolist() == [1, 2] and doc_ids.tolist() == [1, 1]
    np.testing.assert_allclose(matrix, [VECTOR, VECTOR], atol=1 / 127)
    report = documents.get_document(db, 1)
    assert report.warnings == ["page 2 has no text"] and report.pages == 2
    assert documents.get_page(db, 1, 2).text_status == "ocr"
    assert documents.get_document(db, 3).error_code == "password-required"
    # New rows go on after the old ids (AUTOINCREMENT counters came along).
    from tests_support import small_document
    assert documents.store_document(db, small_document(sha="d" * 64)) == 4
    # The original was not touched.
    assert schema.current_version(old) == version and all_rows(old) == before


KILL_CHILD = """
    import sqlite3, sys
    from kill_support import die_on_statement
    from storage import schema
    from storage.db import Database

    db = Database(sqlite3.connect(sys.argv[1]))
    die_on_statement(db, "COMMIT")      # every table of the new version written, not committed
    schema.migrate(db)
    print("not reached")
"""


def test_a_kill_during_the_upgrade_leaves_the_old_version_whole(tmp_path):
    path = tmp_path / "v1.db"
    library_at(1, path)
    before = all_rows(sqlite_utils.Database(path))

    assert_killed(run_child(KILL_CHILD, path))

    db = Database(sqlite3.connect(path))
    assert schema.current_version(db) == 1
    assert all_rows(db) == before and db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    db.close()
    db = open_db(path)                        # the next start upgrades it
    assert schema.current_version(db) == schema.SCHEMA_VERSION and recovery.check(db).ok
    assert json.loads(db.execute("SELECT warnings FROM documents WHERE id = 1").fetchone()[0]) \
        == ["page 2 has no text"]
