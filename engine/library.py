"""Removing a document removes everything derived from it: rows (by
cascade, in storage) and files (the sparse engine's KV caches on disk)."""
from __future__ import annotations

from pathlib import Path

import sqlite_utils

from storage import documents


def remove_document(db: sqlite_utils.Database, doc_id: int, kv_root: Path | None = None) -> bool:
    """Delete the document's rows, then any KV-cache folder no row references."""
    removed = documents.remove_document(db, doc_id)
    if removed and kv_root is not None and Path(kv_root).is_dir():
        # Imported only when caches exist: the sparse engine pulls in torch.
        from engine.sparse.registry import sweep_orphans
        sweep_orphans(db, kv_root)
    return removed
