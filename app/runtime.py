"""Everything one `folio serve` process runs beside the page: the upload
store, the ingestion queue, the background embedder and the answer model,
plus one SQLite connection per request thread (connections are never
shared between threads, and WAL plus a busy timeout keeps readers and the
two writers from ever seeing "database is locked")."""
from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from pathlib import Path

from .answer_service import AnswerService
from .ingest_queue import IngestQueue
from .settings import Settings
from .uploads import UploadLimits, UploadStore, clear_folder


def gradio_temp_dir(settings: Settings) -> Path:
    """Gradio's upload cache, inside the data dir and emptied at start."""
    return settings.home / "tmp" / "gradio"


def prepare_environment(settings: Settings) -> None:
    """Before Gradio is imported: no analytics, uploads inside the data dir."""
    # Forced, not defaulted: a person's shell settings must not switch on
    # telemetry or downloads for a server that holds private documents.
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
    temp = gradio_temp_dir(settings)
    temp.mkdir(parents=True, exist_ok=True)
    clear_folder(settings.home / "tmp")   # leftovers of an earlier run
    temp.mkdir(parents=True, exist_ok=True)
    os.environ["GRADIO_TEMP_DIR"] = str(temp)
    # Gradio also serves files under its examples cache (relative to the
    # working directory by default): keep that inside the data dir too.
    os.environ["GRADIO_EXAMPLES_CACHE"] = str(settings.home / "tmp" / "examples")


@dataclass
class Runtime:
    settings: Settings
    backend: object | None = None        # tests pass a ready backend
    store: UploadStore = field(init=False)
    queue: IngestQueue = field(init=False)
    answers: AnswerService = field(init=False)
    embedder: object | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        limits = UploadLimits(max_bytes=self.settings.max_upload_mb * 2**20)
        self.store = UploadStore(self.settings.home / "uploads", limits)
        self.queue = IngestQueue(self.settings.db_path, self.store,
                                 self.settings.ingest_config(), on_stored=self._wake_embedder)
        self.answers = AnswerService(self.settings, backend=self.backend)
        self._local = threading.local()

    @property
    def export_dir(self) -> Path:
        return self.settings.home / "tmp" / "exports"

    @property
    def upload_cache(self) -> Path:
        return Path(os.environ.get("GRADIO_TEMP_DIR") or gradio_temp_dir(self.settings))

    def db(self):
        """This thread's connection, opened on first use."""
        from storage import open_db

        db = getattr(self._local, "db", None)
        if db is None:
            db = self._local.db = open_db(self.settings.db_path)
        return db

    def start(self, *, embed: bool = True, preload_model: bool = True) -> "Runtime":
        from storage import open_db

        db = open_db(self.settings.db_path)     # create / migrate before serving
        try:
            self.recovery = self._recover(db, embed)
        finally:
            db.close()
        self.export_dir.mkdir(parents=True, exist_ok=True)
        if embed:
            from engine.embed_worker import BackgroundEmbedder
            from engine.embedder import Embedder

            config = self.settings.embedder_config()
            self.embedder = BackgroundEmbedder(self.settings.db_path, config.model_name,
                                               lambda: Embedder(config),
                                               dtype=self.settings.embedding_dtype).start()
        self.queue.start()
        self._resume(self.recovery)
        if preload_model:
            self.answers.preload()
        return self

    def _recover(self, db, embed: bool):
        """The start-up check after an unclean stop (integrity, orphans,
        interrupted embeddings and KV builds, uploads never indexed)."""
        from engine.library import recover

        model = self.settings.embedder_config().model_name if embed else None
        return recover(db, embed_model=model, kv_root=self.settings.kv_dir,
                       uploads_root=self.store.root)

    def _resume(self, recovery) -> None:
        """Tell the person what the check found, and queue again an upload
        whose ingestion was cut off (a single file in its upload folder;
        leftovers of a folder upload are only reported)."""
        for message in recovery.messages():
            self.queue.note("start-up check", "notice", message)
        for path in recovery.unindexed_uploads:
            if sum(1 for p in path.parent.iterdir() if p.is_file()) == 1 \
                    and path.parent.parent == self.store.root:
                self.queue.submit(path, path.name)

    def stop(self) -> None:
        self.queue.stop()
        if self.embedder is not None:
            self.embedder.stop()

    def _wake_embedder(self) -> None:
        if self.embedder is not None:
            self.embedder.wake()

    @property
    def embed_error(self) -> str | None:
        return getattr(self.embedder, "error", None)

    def in_upload_cache(self, path: str | Path) -> bool:
        """Only files Gradio itself received may be taken from a client's
        event: a path outside its cache is refused."""
        try:
            resolved = Path(path).resolve()
            resolved.relative_to(self.upload_cache.resolve())
            return resolved.is_file()
        except (OSError, ValueError):
            return False
