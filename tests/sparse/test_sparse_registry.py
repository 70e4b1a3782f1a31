"""Deleting a document deletes its KV files: the row cascades, the sweep
removes the folder no row points at."""
from __future__ import annotations

import os
import time
from pathlib import Path

from engine.sparse.generate import EngineConfig, SparseEngine
from engine.sparse.kvstore import PrefillConfig
from engine.sparse.registry import prefill_for_document, register, reserve, sweep_orphans
from ingest.model import PageInfo, ParsedDocument, Segment
from storage import documents, open_db
from storage.kv_caches import get_kv_cache, list_kv_caches


def _document(sha: str) -> ParsedDocument:
    text = "The glacier advances every winter."
    return ParsedDocument(Path(f"/d/{sha[:4]}.pdf"), f"{sha[:4]}.pdf", "pdf", "application/pdf",
                          sha, 1, [Segment("paragraph", text, 0, len(text), 6, page=1)],
                          [PageInfo(1, 612, 792, "text", text)])


def _library(tiny_qwen, tmp_path):
    """A library database, a KV root and an engine with small blocks."""
    _, model = tiny_qwen
    kv_root = tmp_path / "kv"
    engine = SparseEngine(model, "tiny-model", kv_root,
                          EngineConfig(prefill=PrefillConfig(block_size=16, chunk=32)))
    return open_db(tmp_path / "library.db"), kv_root, engine


def test_delete_document_then_sweep_removes_its_kv_files(tiny_qwen, tmp_path):
    db, kv_root, engine = _library(tiny_qwen, tmp_path)
    keep_id = documents.store_document(db, _document("a" * 64))
    drop_id = documents.store_document(db, _document("b" * 64))
    keep = engine.prefill_document(list(range(50)), "a" * 64)
    drop = engine.prefill_document(list(range(70)), "b" * 64)
    assert register(db, keep_id, "tiny-model", keep) is not None
    assert register(db, drop_id, "tiny-model", drop) is not None
    row = get_kv_cache(db, drop_id, "tiny-model")
    assert row.tokens == 70 and row.block_size == 16 and row.status == "ready"
    assert row.bytes == drop.layout.nbytes + drop.reps.nbytes
    assert Path(row.path) == drop.path.resolve()

    # nothing is orphaned yet: a sweep keeps both
    assert sweep_orphans(db, kv_root).removed == []
    documents.remove_document(db, drop_id)
    assert get_kv_cache(db, drop_id, "tiny-model") is None          # ON DELETE CASCADE
    assert drop.path.exists()                                         # files wait for the sweep
    result = sweep_orphans(db, kv_root)
    assert result.removed == [drop.path] and result.freed_bytes >= drop.layout.nbytes
    assert not drop.path.exists() and keep.path.exists()
    assert [r.document_id for r in list_kv_caches(db)] == [keep_id]
    # registering for a document removed meanwhile writes nothing
    assert register(db, drop_id, "tiny-model", keep) is None


def test_sweep_spares_builds_in_progress_but_not_stale_ones(tmp_path):
    db = open_db(tmp_path / "library.db")
    model_dir = tmp_path / "kv" / "m"
    fresh = model_dir / ".doc.tmp-1234"
    stale = model_dir / ".old.tmp-5678"
    for d in (fresh, stale):
        d.mkdir(parents=True)
        (d / "k_0.bin").write_bytes(b"x" * 10)
    os.utime(stale, (time.time() - 7200, time.time() - 7200))
    result = sweep_orphans(db, tmp_path / "kv")
    assert result.removed == [stale] and fresh.exists()
    assert sweep_orphans(db, tmp_path / "missing").removed == []


def test_reserved_build_survives_a_sweep_and_a_removed_document_loses_it(tiny_qwen, tmp_path):
    db, kv_root, engine = _library(tiny_qwen, tmp_path)
    doc_id = documents.store_document(db, _document("c" * 64))
    # a sweep between the end of a build and its registration keeps the folder
    reserve(db, doc_id, "tiny-model", engine.cache_path("c" * 64))
    assert get_kv_cache(db, doc_id, "tiny-model").status == "writing"
    built = engine.prefill_document(list(range(40)), "c" * 64)
    assert sweep_orphans(db, kv_root).removed == [] and built.path.exists()

    cache = prefill_for_document(engine, db, doc_id, list(range(40)), "c" * 64)
    assert cache is not None and cache.path == built.path          # reused, not rebuilt
    assert get_kv_cache(db, doc_id, "tiny-model").status == "ready"
    documents.remove_document(db, doc_id)
    assert prefill_for_document(engine, db, doc_id, list(range(40)), "c" * 64) is None
    sweep_orphans(db, kv_root)
    assert not built.path.exists()


def test_removing_a_document_removes_its_kv_files(tmp_path):
    """`engine.library.remove_document`, what `folio rm` and the app call."""
    from engine.library import remove_document
    from storage import documents as docs, open_db
    from storage.kv_caches import upsert_kv_cache

    db = open_db(tmp_path / "f.db")
    from tests_support import small_document
    doc_id = docs.store_document(db, small_document())
    folder = tmp_path / "kv" / "model-x" / ("e" * 64)
    folder.mkdir(parents=True)
    (folder / "keys.bin").write_bytes(b"\0" * 1024)
    upsert_kv_cache(db, document_id=doc_id, model="model-x", path=str(folder), block_size=64,
                    tokens=16, layers=1, kv_heads=1, head_dim=8, dtype="float32", bytes=1024)
    assert remove_document(db, doc_id, tmp_path / "kv")
    assert not folder.exists()
