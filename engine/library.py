"""Removing a document removes everything derived from it: rows (by
cascade, in storage) and files (the sparse engine's KV caches on disk).
`recover` is the start-up pass that proves the same after a crash."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import sqlite_utils

from storage import conversations, documents, recovery
from storage.embeddings import EmbeddingProgress, embedding_progress


def remove_document(db: sqlite_utils.Database, doc_id: int, kv_root: Path | None = None) -> bool:
    """Delete the document's rows, then any KV-cache folder no row references."""
    removed = documents.remove_document(db, doc_id)
    if removed and kv_root is not None and Path(kv_root).is_dir():
        # Imported only when caches exist: the sparse engine pulls in torch.
        from engine.sparse.registry import sweep_orphans
        sweep_orphans(db, kv_root)
    return removed


@dataclass
class Recovery:
    """What a start-up found and did; `messages` is what a person is told."""

    consistency: recovery.Consistency
    removed_rows: dict[str, int] = field(default_factory=dict)
    unembedded: list[EmbeddingProgress] = field(default_factory=list)
    unindexed_uploads: list[Path] = field(default_factory=list)   # to be queued again
    kv_removed: list[Path] = field(default_factory=list)
    kv_rows_dropped: int = 0
    interrupted: list[tuple[int, str]] = field(default_factory=list)  # (conversation, question)

    def messages(self) -> list[str]:
        out = self.consistency.problems()
        out += [f"removed {n} {table} rows left without their parent"
                for table, n in self.removed_rows.items()]
        out += [f"document #{p.document_id}: embeddings interrupted at {p.done} of {p.total} "
                f"segments; they resume in the background" for p in self.unembedded]
        if self.unindexed_uploads:
            out.append(f"{len(self.unindexed_uploads)} uploaded file(s) were not indexed "
                       f"when Folio stopped: "
                       + ", ".join(p.name for p in self.unindexed_uploads[:5]))
        if self.interrupted:
            asked = "; ".join(f"“{q[:60]}”" for _, q in self.interrupted[:3])
            out.append(f"{len(self.interrupted)} answer(s) were cut off when Folio stopped "
                       f"({asked}); ask again")
        if self.kv_removed or self.kv_rows_dropped:
            out.append(f"removed {len(self.kv_removed)} unfinished or orphaned KV-cache "
                       f"folder(s) and {self.kv_rows_dropped} stale record(s)")
        return out


def unindexed_files(db: sqlite_utils.Database, root: Path) -> list[Path]:
    """Files under `root` (the upload store) that no document names: the
    uploads whose ingestion a crash interrupted."""
    root = Path(root)
    if not root.is_dir():
        return []
    known = recovery.referenced_paths(db)
    return sorted(p for p in root.rglob("*")
                  if p.is_file() and not p.is_symlink() and str(p.resolve()) not in known)


def recover(db: sqlite_utils.Database, *, embed_model: str | None = None,
            kv_root: Path | None = None, uploads_root: Path | None = None) -> Recovery:
    """Check the library after an unclean stop and put files and rows in step.

    Interrupted transactions were already undone by SQLite; this removes
    what lives outside one transaction (KV folders, rows of a database once
    written without foreign keys) and lists work to resume: documents whose
    embeddings are incomplete and uploads that never became documents.
    """
    result = Recovery(recovery.check(db))
    if any(result.consistency.orphans.values()):
        result.removed_rows = recovery.remove_orphans(db)
    if embed_model is not None:
        searchable = {d.id for d in documents.list_documents(db, include_errors=False)
                      if d.status == documents.STATUS_SEARCHABLE}
        result.unembedded = [p for p in embedding_progress(db, embed_model).values()
                             if p.document_id in searchable and p.done < p.total]
    result.interrupted = conversations.mark_interrupted(db)
    if uploads_root is not None:
        result.unindexed_uploads = unindexed_files(db, uploads_root)
    if kv_root is not None and Path(kv_root).is_dir():
        from engine.sparse.registry import recover as recover_kv
        swept = recover_kv(db, kv_root)
        result.kv_removed, result.kv_rows_dropped = swept.removed, len(swept.dropped_rows)
    return result
