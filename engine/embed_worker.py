"""Compute embeddings after text is stored, in the background, resumably.

Documents are searchable by BM25 the moment their text is committed; dense
search joins as vectors land. The work list is simply "segments without a
vector for this model", so a killed process resumes where it stopped.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import sqlite_utils

from ingest.progress import Progress, ProgressFn, no_progress
from storage import embeddings as store
from storage import open_db

from .embedder import Embedder, segment_embedding_text


@dataclass
class EmbedRun:
    embedded: int
    remaining: int
    seconds: float


def embed_pending(db: sqlite_utils.Database, embedder: Embedder, *,
                  dtype: str = "float32", batch: int = 128,
                  progress: ProgressFn = no_progress,
                  stop: threading.Event | None = None) -> EmbedRun:
    """Embed every pending segment in batches, committing each batch."""
    started = time.perf_counter()
    total = store.count_pending(db, embedder.name)
    done = 0
    progress(Progress("embed", 0, total, "segments"))
    while not (stop and stop.is_set()):
        pending = store.pending_segments(db, embedder.name, limit=batch)
        if not pending:
            break
        vectors = embedder.embed([segment_embedding_text(p.text, p.section, p.name)
                                  for p in pending])
        store.save_embeddings(db, embedder.name, [p.id for p in pending], vectors,
                              dtype=dtype)
        done += len(pending)
        progress(Progress("embed", done, max(total, done), "segments"))
    store.mark_ready(db, embedder.name)
    return EmbedRun(done, store.count_pending(db, embedder.name),
                    time.perf_counter() - started)


class BackgroundEmbedder:
    """A daemon thread that drains pending segments whenever it is woken.

    It opens its own connection (SQLite connections are per thread) and
    loads the model lazily, so starting it costs nothing until there is work.
    """

    def __init__(self, db_path: Path, model_name: str,
                 make_embedder: Callable[[], Embedder], *,
                 dtype: str = "float32", batch: int = 128,
                 progress: ProgressFn = no_progress):
        self.db_path = Path(db_path)
        self.model_name = model_name
        self.make_embedder = make_embedder
        self.dtype = dtype
        self.batch = batch      # segments per committed transaction
        self.progress = progress
        self.error: str | None = None
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._idle = threading.Event()
        self._thread = threading.Thread(target=self._run, name="folio-embed", daemon=True)

    def start(self) -> "BackgroundEmbedder":
        self._thread.start()
        self.wake()
        return self

    def wake(self) -> None:
        self._idle.clear()
        self._wake.set()

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Block until every pending segment is embedded (or an error)."""
        return self._idle.wait(timeout)

    def stop(self, timeout: float = 30) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout)

    def _run(self) -> None:
        db = open_db(self.db_path)
        embedder: Embedder | None = None
        try:
            while not self._stop.is_set():
                self._wake.wait()
                self._wake.clear()
                if self._stop.is_set():
                    break
                try:
                    if store.count_pending(db, self.model_name):
                        embedder = embedder or self.make_embedder()
                        embed_pending(db, embedder, dtype=self.dtype, batch=self.batch,
                                      progress=self.progress, stop=self._stop)
                    else:
                        store.mark_ready(db, self.model_name)
                    self.error = None
                except Exception as exc:
                    # Report, never kill the app, and stay alive: after a full
                    # disk is freed the next wake resumes where this stopped.
                    self.error = f"background embedding stopped: {exc}"
                if not self._wake.is_set():
                    self._idle.set()
        finally:
            db.close()
