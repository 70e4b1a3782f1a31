"""Bring files into the library: walk, dedupe, parse, store atomically.

Every file gets an outcome; a bad file is recorded with its specific error
and the batch goes on. Nothing here parses: `ingest` does, `storage` writes.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import sqlite_utils

from ingest import IngestConfig, IngestError, parse_file
from ingest.detect import detect_kind
from ingest.hashing import sha256_file
from ingest.progress import Progress, ProgressFn, no_progress
from ingest.walk import Skipped, summarize, walk_paths
from storage import documents
from storage.errors import StorageFull

Status = Literal["added", "replaced", "duplicate", "error"]


@dataclass
class IngestOutcome:
    path: Path
    status: Status
    message: str
    document_id: int | None = None
    error_code: str | None = None
    pages: int = 0
    segments: int = 0
    seconds: float = 0.0
    warnings: list[str] = field(default_factory=list)


@dataclass
class IngestReport:
    outcomes: list[IngestOutcome] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)

    def count(self, status: Status) -> int:
        return sum(1 for o in self.outcomes if o.status == status)

    @property
    def pages(self) -> int:
        return sum(o.pages for o in self.outcomes)

    def summary(self) -> str:
        parts = [f"{self.count(s)} {s}" for s in ("added", "replaced", "duplicate", "error")
                 if self.count(s)]
        text = ", ".join(parts) or "nothing to ingest"
        if self.skipped:
            text += f"; {summarize(self.skipped)}"
        return text


def ingest_file(db: sqlite_utils.Database, path: Path, *, password: str | None = None,
                config: IngestConfig | None = None,
                progress: ProgressFn = no_progress,
                replace_id: int | None = None) -> IngestOutcome:
    """Ingest one file; never raises for a bad file, the outcome says why.

    `replace_id` re-indexes that document: the new version replaces it in
    the same transaction, so a crash or a failure keeps the old one whole.
    """
    started = time.perf_counter()
    path = Path(path).resolve()
    try:
        sha = sha256_file(path)
        size = path.stat().st_size
    except OSError as exc:
        return IngestOutcome(path, "error", f"{path.name}: cannot read the file ({exc.strerror})",
                             error_code="unreadable")
    previous = documents.get_document(db, replace_id) if replace_id is not None else None
    same = documents.find_by_sha256(db, sha, exclude_id=previous.id if previous else None)
    if same is not None:
        where = "" if same.path == str(path) else f" (from {same.path})"
        return IngestOutcome(path, "duplicate",
                             f"{path.name}: already indexed as #{same.id} {same.display_name}{where}",
                             document_id=same.id)
    previous = previous or documents.find_by_path(db, path)
    try:
        parsed = parse_file(path, password=password, config=config, progress=progress)
    except IngestError as exc:
        return _failure(db, path, sha, size, exc.code, str(exc), started)
    except Exception as exc:  # a parser bug must not end the batch
        return _failure(db, path, sha, size, "internal",
                        f"{path.name}: unexpected error while reading ({type(exc).__name__}: {exc})",
                        started)
    try:
        doc_id = documents.store_document(db, parsed,
                                          replace_id=previous.id if previous else None)
    except StorageFull as exc:
        # Rolled back: the library is as before. No failure row either, since
        # there is no room for one and the file itself is not at fault.
        return IngestOutcome(path, "error", f"{path.name}: {exc}", error_code=StorageFull.code,
                             seconds=time.perf_counter() - started)
    status: Status = "replaced" if previous else "added"
    unit = f"{len(parsed.pages)} pages, " if parsed.pages else ""
    return IngestOutcome(path, status,
                         f"{parsed.display_name}: {status} as #{doc_id} "
                         f"({unit}{len(parsed.segments)} segments)",
                         document_id=doc_id, pages=len(parsed.pages),
                         segments=len(parsed.segments),
                         seconds=time.perf_counter() - started, warnings=parsed.warnings)


def _failure(db: sqlite_utils.Database, path: Path, sha: str, size: int, code: str,
             message: str, started: float) -> IngestOutcome:
    try:
        doc_id = documents.record_failure(db, path, display_name=path.name, sha256=sha,
                                          size=size, kind=detect_kind(path) or "unknown",
                                          error_code=code, error=message)
    except StorageFull:
        doc_id = None   # the outcome still says why; the disk has no room to remember it
    return IngestOutcome(path, "error", message, document_id=doc_id, error_code=code,
                         seconds=time.perf_counter() - started)


def ingest_paths(db: sqlite_utils.Database, paths: list[Path], *,
                 password: str | None = None, config: IngestConfig | None = None,
                 progress: ProgressFn = no_progress) -> IngestReport:
    """Walk files and folders, then ingest each file in its own transaction."""
    config = config or IngestConfig()
    walked = walk_paths([Path(p) for p in paths], config)
    report = IngestReport(skipped=list(walked.skipped))
    total = len(walked.files)
    for index, path in enumerate(walked.files):
        progress(Progress("files", index, total, "files", path.name))
        report.outcomes.append(ingest_file(db, path, password=password, config=config,
                                           progress=progress))
    progress(Progress("files", total, total, "files"))
    return report
