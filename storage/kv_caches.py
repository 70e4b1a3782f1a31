"""Rows of `kv_caches`: which sparse-engine KV folder belongs to which document.

The files live on disk (engine/sparse/kvstore.py); the row ties them to a
document and a model so that deleting the document (ON DELETE CASCADE)
orphans the folder, which `engine.sparse.registry.sweep_orphans` removes.
"""
from __future__ import annotations

import json
from dataclasses import dataclass

import sqlite_utils

from .documents import _now
from .errors import no_space_is_reported

STATUS_WRITING = "writing"   # the folder is being built; not usable yet
STATUS_READY = "ready"


@dataclass
class KVCacheRecord:
    id: int
    document_id: int
    model: str
    part: str               # '' = the whole document, else one page of it
    path: str
    block_size: int
    tokens: int
    layers: int
    kv_heads: int
    head_dim: int
    dtype: str
    bytes: int
    status: str
    metadata: dict
    created_at: str


_COLUMNS = ("id, document_id, model, part, path, block_size, tokens, layers, kv_heads, head_dim, "
            "dtype, bytes, status, metadata, created_at")


def _record(row: tuple) -> KVCacheRecord:
    values = list(row)
    values[13] = json.loads(values[13] or "{}")
    return KVCacheRecord(*values)


def upsert_kv_cache(db: sqlite_utils.Database, *, document_id: int, model: str, path: str,
                    block_size: int, tokens: int, layers: int, kv_heads: int, head_dim: int,
                    dtype: str, bytes: int, status: str = STATUS_READY,
                    metadata: dict | None = None, part: str = "") -> int | None:
    """Insert or replace the cache row of (document, model, part); returns its
    id, or None when the document no longer exists (removed while prefilling)."""
    with no_space_is_reported(f"recording the KV cache of document {document_id}"), db.atomic():
        if db.execute("SELECT 1 FROM documents WHERE id = ?", [document_id]).fetchone() is None:
            return None
        db.execute(
            """INSERT INTO kv_caches (document_id, model, part, path, block_size, tokens,
                   layers, kv_heads, head_dim, dtype, bytes, status, metadata, created_at)
               VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
               ON CONFLICT (document_id, model, part) DO UPDATE SET
                   path = excluded.path, block_size = excluded.block_size,
                   tokens = excluded.tokens, layers = excluded.layers,
                   kv_heads = excluded.kv_heads, head_dim = excluded.head_dim,
                   dtype = excluded.dtype, bytes = excluded.bytes, status = excluded.status,
                   metadata = excluded.metadata, created_at = excluded.created_at""",
            [document_id, model, part, path, block_size, tokens, layers, kv_heads, head_dim,
             dtype, bytes, status, json.dumps(metadata or {}), _now()])
        return db.execute("SELECT id FROM kv_caches WHERE document_id = ? AND model = ? "
                          "AND part = ?", [document_id, model, part]).fetchone()[0]


def set_kv_cache_status(db: sqlite_utils.Database, cache_id: int, status: str) -> None:
    with db.atomic():
        db.execute("UPDATE kv_caches SET status = ? WHERE id = ?", [status, cache_id])


def get_kv_cache(db: sqlite_utils.Database, document_id: int, model: str,
                 part: str = "") -> KVCacheRecord | None:
    row = db.execute(f"SELECT {_COLUMNS} FROM kv_caches WHERE document_id = ? AND model = ? "
                     "AND part = ?", [document_id, model, part]).fetchone()
    return _record(row) if row else None


def list_kv_caches(db: sqlite_utils.Database, *, model: str | None = None) -> list[KVCacheRecord]:
    sql, params = f"SELECT {_COLUMNS} FROM kv_caches", []
    if model is not None:
        sql, params = sql + " WHERE model = ?", [model]
    return [_record(r) for r in db.execute(sql + " ORDER BY id", params).fetchall()]


def delete_kv_cache(db: sqlite_utils.Database, document_id: int, model: str,
                    part: str = "") -> bool:
    with db.atomic():
        cur = db.execute("DELETE FROM kv_caches WHERE document_id = ? AND model = ? AND part = ?",
                         [document_id, model, part])
    return cur.rowcount > 0


def referenced_paths(db: sqlite_utils.Database) -> set[str]:
    """Every folder some row points at (any status): what a sweep must keep."""
    return {r[0] for r in db.execute("SELECT path FROM kv_caches").fetchall()}


def kv_cache_bytes(db: sqlite_utils.Database) -> int:
    return db.execute("SELECT COALESCE(SUM(bytes), 0) FROM kv_caches").fetchone()[0]
