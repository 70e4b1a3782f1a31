"""Forward migrations: each runs once, in order, atomically, keeping data."""
from __future__ import annotations

import pytest

from storage import documents, open_db, schema
from tests_support import small_document


def test_a_new_migration_upgrades_an_existing_library(tmp_path, monkeypatch):
    path = tmp_path / "folio.db"
    db = open_db(path)
    doc_id = documents.store_document(db, small_document())
    db.close()

    def v_next(db):
        db.execute("ALTER TABLE documents ADD COLUMN starred INTEGER NOT NULL DEFAULT 0")

    monkeypatch.setattr(schema, "MIGRATIONS", schema.MIGRATIONS + [v_next])
    monkeypatch.setattr(schema, "SCHEMA_VERSION", len(schema.MIGRATIONS))
    db = open_db(path)
    assert schema.current_version(db) == len(schema.MIGRATIONS)
    assert db.execute("SELECT starred FROM documents WHERE id = ?", [doc_id]).fetchone() == (0,)
    db.close()
    open_db(path).close()   # already current: nothing runs twice


def test_a_failing_migration_leaves_the_previous_version(tmp_path, monkeypatch):
    path = tmp_path / "folio.db"
    db = open_db(path)
    documents.store_document(db, small_document())
    before = schema.current_version(db)
    db.close()

    def v_broken(db):
        db.execute("CREATE TABLE half_done (x INTEGER)")
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(schema, "MIGRATIONS", schema.MIGRATIONS + [v_broken])
    monkeypatch.setattr(schema, "SCHEMA_VERSION", len(schema.MIGRATIONS))
    with pytest.raises(RuntimeError, match="disk on fire"):
        open_db(path)
    monkeypatch.undo()
    db = open_db(path)
    assert schema.current_version(db) == before
    assert "half_done" not in db.table_names()
    assert len(documents.list_documents(db)) == 1
