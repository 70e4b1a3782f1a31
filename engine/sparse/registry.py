"""Keep KV folders on disk and `kv_caches` rows in step.

A row is written when a document's cache is complete; deleting the
document deletes the row (ON DELETE CASCADE) but not the files, since SQL
cannot touch the disk. `sweep_orphans` removes every folder no row points
at, plus leftovers of interrupted builds, so deleting a document deletes
its KV files at the next sweep (the app runs one at start-up and after
removals). `recover` is the start-up pass after a crash: it also drops rows
whose folder never became (or no longer is) a complete cache, so rows and
folders agree both ways.
"""
from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import sqlite_utils

from storage.kv_caches import (STATUS_WRITING, delete_kv_cache, list_kv_caches,
                               referenced_paths, upsert_kv_cache)

from .kvstore import KVCache, temp_writer

if TYPE_CHECKING:
    from .generate import SparseEngine

TMP_GRACE_S = 3600.0   # a temporary folder younger than this may still be being written


@dataclass
class SweepResult:
    removed: list[Path] = field(default_factory=list)
    freed_bytes: int = 0
    dropped_rows: list[int] = field(default_factory=list)   # kv_caches ids (recover only)


def _alive(pid: int | None) -> bool:
    """Whether a process with this id still runs (None: unknown, assume so)."""
    if pid is None:
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def register(db: sqlite_utils.Database, document_id: int, model_id: str,
             cache: KVCache, part: str = "") -> int | None:
    """Record a complete cache for a document (or one `part` of it, a page);
    None if the document is gone."""
    lay = cache.layout
    return upsert_kv_cache(
        db, document_id=document_id, model=model_id, part=part,
        path=str(Path(cache.path).resolve()),
        block_size=lay.block_size, tokens=lay.tokens, layers=lay.layers,
        kv_heads=lay.kv_heads, head_dim=lay.head_dim, dtype=lay.dtype,
        bytes=lay.nbytes + cache.reps.nbytes,
        metadata={"tokens_sha256": cache.tokens_sha256, **cache.metadata})


def reserve(db: sqlite_utils.Database, document_id: int, model_id: str,
            path: Path, part: str = "") -> int | None:
    """A 'writing' row before the build, so a sweep running meanwhile keeps
    the folder; None if the document is gone."""
    return upsert_kv_cache(
        db, document_id=document_id, model=model_id, part=part,
        path=str(Path(path).resolve()),
        block_size=0, tokens=0, layers=0, kv_heads=0, head_dim=0, dtype="", bytes=0,
        status=STATUS_WRITING, metadata={"writer_pid": os.getpid()})


def prefill_for_document(engine: "SparseEngine", db: sqlite_utils.Database, document_id: int,
                         tokens: list[int], key: str, part: str = "") -> KVCache | None:
    """Build (or reuse) a document's cache, or the cache of one `part` (a
    page) of it, and record it: reserve, build, register. If the document
    was removed meanwhile, its fresh folder is deleted and None returned."""
    path = engine.cache_path(key)
    if reserve(db, document_id, engine.model_id, path, part) is None:
        return None
    try:
        cache = engine.prefill_document(tokens, key)
    except Exception:
        # A failed build (a full disk) leaves no folder; nor may it leave a row.
        delete_kv_cache(db, document_id, engine.model_id, part)
        raise
    if register(db, document_id, engine.model_id, cache, part) is None:
        shutil.rmtree(cache.path, ignore_errors=True)
        return None
    return cache


def _size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def sweep_orphans(db: sqlite_utils.Database, kv_root: Path | str, *,
                  tmp_grace_s: float = TMP_GRACE_S) -> SweepResult:
    """Delete cache folders under `<kv_root>/<model>/` that no row references."""
    root = Path(kv_root)
    result = SweepResult()
    if not root.is_dir():
        return result
    keep = {str(Path(p).resolve()) for p in referenced_paths(db)}
    now = time.time()
    for model_dir in root.iterdir():
        if not model_dir.is_dir():
            continue
        for folder in model_dir.iterdir():
            if not folder.is_dir() or str(folder.resolve()) in keep:
                continue
            if folder.name.startswith(".") and ".tmp-" in folder.name \
                    and now - folder.stat().st_mtime < tmp_grace_s \
                    and _alive(temp_writer(folder)):
                continue    # a build in progress (its writer was not killed)
            result.freed_bytes += _size(folder)
            shutil.rmtree(folder, ignore_errors=True)
            result.removed.append(folder)
    return result


def recover(db: sqlite_utils.Database, kv_root: Path | str) -> SweepResult:
    """After a crash: drop rows whose cache is unusable, then sweep.

    A 'writing' row whose writer is gone never got its cache; a row whose
    folder has no meta.json lost it (killed while a cache was being
    replaced). Both caches are rebuilt on demand, so dropping is safe.
    """
    dropped = []
    for row in list_kv_caches(db):
        complete = (Path(row.path) / "meta.json").is_file()
        writer = row.metadata.get("writer_pid")
        # Rows reserved before writers were recorded count as stale when incomplete.
        stale_build = row.status == STATUS_WRITING and (
            not complete if writer is None else not _alive(writer))
        if (row.status != STATUS_WRITING and not complete) or stale_build:
            delete_kv_cache(db, row.document_id, row.model, row.part)
            dropped.append(row.id)
    result = sweep_orphans(db, kv_root)
    result.dropped_rows = dropped
    return result
