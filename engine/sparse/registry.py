"""Keep KV folders on disk and `kv_caches` rows in step.

A row is written when a document's cache is complete; deleting the
document deletes the row (ON DELETE CASCADE) but not the files, since SQL
cannot touch the disk. `sweep_orphans` removes every folder no row points
at, plus leftovers of interrupted builds, so deleting a document deletes
its KV files at the next sweep (the app runs one at start-up and after
removals).
"""
from __future__ import annotations

import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import sqlite_utils

from storage.kv_caches import STATUS_WRITING, referenced_paths, upsert_kv_cache

from .kvstore import KVCache

if TYPE_CHECKING:
    from .generate import SparseEngine

TMP_GRACE_S = 3600.0   # a temporary folder younger than this may still be being written


@dataclass
class SweepResult:
    removed: list[Path] = field(default_factory=list)
    freed_bytes: int = 0


def register(db: sqlite_utils.Database, document_id: int, model_id: str,
             cache: KVCache) -> int | None:
    """Record a complete cache for a document; None if the document is gone."""
    lay = cache.layout
    return upsert_kv_cache(
        db, document_id=document_id, model=model_id, path=str(Path(cache.path).resolve()),
        block_size=lay.block_size, tokens=lay.tokens, layers=lay.layers,
        kv_heads=lay.kv_heads, head_dim=lay.head_dim, dtype=lay.dtype,
        bytes=lay.nbytes + cache.reps.nbytes,
        metadata={"tokens_sha256": cache.tokens_sha256, **cache.metadata})


def reserve(db: sqlite_utils.Database, document_id: int, model_id: str,
            path: Path) -> int | None:
    """A 'writing' row before the build, so a sweep running meanwhile keeps
    the folder; None if the document is gone."""
    return upsert_kv_cache(
        db, document_id=document_id, model=model_id, path=str(Path(path).resolve()),
        block_size=0, tokens=0, layers=0, kv_heads=0, head_dim=0, dtype="", bytes=0,
        status=STATUS_WRITING)


def prefill_for_document(engine: "SparseEngine", db: sqlite_utils.Database, document_id: int,
                         tokens: list[int], key: str) -> KVCache | None:
    """Build (or reuse) a document's cache and record it: reserve, build,
    register. If the document was removed meanwhile, its fresh folder is
    deleted and None returned."""
    path = engine.cache_path(key)
    if reserve(db, document_id, engine.model_id, path) is None:
        return None
    cache = engine.prefill_document(tokens, key)
    if register(db, document_id, engine.model_id, cache) is None:
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
                    and now - folder.stat().st_mtime < tmp_grace_s:
                continue    # a build in progress
            result.freed_bytes += _size(folder)
            shutil.rmtree(folder, ignore_errors=True)
            result.removed.append(folder)
    return result
