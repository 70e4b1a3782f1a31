"""Background ingestion for the browser: one worker thread, live per-file state.

Files are parsed one at a time on a thread with its own SQLite connection,
so the page (and questions) keep working while a large PDF is read. Each
file is an `Item` whose state the library view polls: queued, parsing
(page x of y), stored (then the embedder takes over), duplicate, or error
with the indexer's specific code. Folders and unpacked zips are walked on
the worker too (honouring .gitignore), and what the walk leaves out is
reported per file.
"""
from __future__ import annotations

import itertools
import logging
import threading
import time
from collections import deque
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

from ingest import IngestConfig
from ingest.progress import Progress
from ingest.walk import walk_paths

from .unlocked_copies import UnlockedCopies
from .uploads import UploadStore

log = logging.getLogger(__name__)

LOCKED_CODES = ("password-required", "wrong-password")
ACTIVE = ("queued", "scanning", "parsing")

_SKIP_CODES = {   # walk reason group -> the error code the library shows
    "unsupported type": "unsupported", "over the size limit": "too-large",
    "binary file": "binary", "empty file": "empty", "unreadable": "unreadable",
}


@dataclass
class Item:
    id: int
    name: str
    path: Path | None
    state: str = "queued"          # queued, scanning, parsing, stored, duplicate, error
    done: int = 0                  # pages parsed so far
    total: int | None = None
    message: str = ""
    error_code: str | None = None
    document_id: int | None = None
    created: float = field(default_factory=time.time)
    folder: bool = False
    replace_id: int | None = None  # re-index: remove this document first
    parent: int | None = None      # the submitted folder or zip this file came from
    password: str | None = field(default=None, repr=False)

    @property
    def active(self) -> bool:
        return self.state in ACTIVE


class IngestQueue:
    def __init__(self, db_path: Path, store: UploadStore, config: IngestConfig | None = None,
                 on_stored: Callable[[], None] = lambda: None):
        self.db_path = Path(db_path)
        self.store = store
        self.config = config or IngestConfig()
        self.on_stored = on_stored
        self._items: dict[int, Item] = {}
        self._jobs: deque[int] = deque()
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._stop = False
        self._busy = False
        self._passwords: dict[str, str] = {}      # path -> a password that opened it
        self.unlocked = UnlockedCopies(self.db_path.parent / "unlocked")
        self._thread = threading.Thread(target=self._run, name="folio-ingest", daemon=True)

    # -- control -------------------------------------------------------
    def start(self) -> "IngestQueue":
        self.sweep_unlocked()
        self._thread.start()
        return self

    def stop(self, timeout: float = 10) -> None:
        with self._wake:
            self._stop = True
            self._wake.notify_all()
        self._thread.join(timeout)

    def submit(self, path: Path, name: str | None = None, *, folder: bool = False,
               password: str | None = None, replace_id: int | None = None,
               front: bool = False, parent: int | None = None) -> int:
        """Queue a file (or a folder to walk); returns the item id at once."""
        with self._wake:
            item = Item(next(self._ids), name or Path(path).name, Path(path),
                        state="scanning" if folder else "queued", folder=folder,
                        password=password, replace_id=replace_id, parent=parent)
            self._items[item.id] = item
            (self._jobs.appendleft if front else self._jobs.append)(item.id)
            self._wake.notify_all()
            return item.id

    def note(self, name: str, state: str, message: str, error_code: str | None = None,
             parent: int | None = None) -> int:
        """Record an outcome decided before queueing (a refused upload)."""
        with self._lock:
            item = Item(next(self._ids), name, None, state=state, message=message,
                        error_code=error_code, parent=parent)
            self._items[item.id] = item
            return item.id

    def snapshot(self) -> list[Item]:
        with self._lock:
            return [replace(item) for item in self._items.values()]

    def get(self, item_id: int) -> Item | None:
        with self._lock:
            item = self._items.get(item_id)
            return replace(item) if item else None

    def forget_finished(self) -> None:
        """Drop notices the user has read (duplicates, refused uploads)."""
        with self._lock:
            for key in [k for k, v in self._items.items() if not v.active]:
                del self._items[key]

    def password_for(self, path: Path | str) -> str | None:
        """A password that opened this file in this session (to render its pages)."""
        with self._lock:
            return self._passwords.get(str(path))

    def outcomes(self, ids: list[int]) -> list[Item]:
        """The items `ids` and every file found inside them (folders, zips)."""
        wanted = set(ids)
        with self._lock:
            return [replace(i) for i in self._items.values()
                    if i.id in wanted or i.parent in wanted]

    def wait_for(self, ids: list[int], timeout: float = 60) -> bool:
        """Until these items (and what they contain) are finished: other
        clients' uploads, queued meanwhile, are not waited for."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            # A folder leaves the list once walked; its files then carry its id.
            if not any(i.active for i in self.outcomes(ids)):
                return True
            time.sleep(0.05)
        return False

    def idle(self) -> bool:
        with self._lock:
            return not self._jobs and not self._busy

    def wait_idle(self, timeout: float = 60) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.idle():
                return True
            time.sleep(0.05)
        return self.idle()

    # -- the worker ----------------------------------------------------
    def _update(self, item_id: int, **changes) -> None:
        with self._lock:
            item = self._items.get(item_id)
            if item is not None:
                for key, value in changes.items():
                    setattr(item, key, value)

    def _run(self) -> None:
        from storage import open_db

        db = open_db(self.db_path)
        try:
            while True:
                with self._wake:
                    while not self._jobs and not self._stop:
                        self._wake.wait()
                    if self._stop:
                        return
                    item_id = self._jobs.popleft()
                    item = replace(self._items[item_id]) if item_id in self._items else None
                    self._busy = item is not None
                if item is None:
                    continue
                try:
                    if item.folder:
                        self._walk(item)
                    else:
                        self._ingest(db, item)
                except Exception as exc:   # never let one file stop the queue
                    self._update(item.id, state="error", error_code="internal",
                                 message=f"{item.name}: unexpected error ({exc})")
                finally:
                    with self._lock:
                        self._busy = False
        finally:
            db.close()

    def _walk(self, item: Item) -> None:
        walked = walk_paths([item.path], self.config)
        for path in walked.files:
            rel = path.relative_to(item.path) if path != item.path else Path(path.name)
            self.submit(path, f"{item.name}/{rel.as_posix()}" if item.folder else path.name,
                        parent=item.parent or item.id)
        for skipped in walked.skipped:
            if skipped.is_dir:
                continue
            group = skipped.reason.split(" (", 1)[0]
            self.note(skipped.path.name, "error", f"{skipped.path.name}: skipped, {skipped.reason}",
                      _SKIP_CODES.get(group, "skipped"), parent=item.parent or item.id)
            self.store.remove(skipped.path)
        found = len(walked.files)
        with self._lock:   # the folder itself becomes a one-line summary
            folder = self._items.get(item.id)
            if folder:
                if found:
                    del self._items[item.id]
                else:
                    folder.state, folder.error_code = "error", "empty"
                    folder.message = f"{item.name}: no files Folio can read"

    def _ingest(self, db, item: Item) -> None:
        from engine.indexer import ingest_file

        walked = walk_paths([item.path], self.config)
        if walked.skipped:
            reason = walked.skipped[0].reason
            self._update(item.id, state="error",
                         error_code=_SKIP_CODES.get(reason.split(" (", 1)[0], "skipped"),
                         message=f"{item.name}: {reason}")
            self.store.remove(item.path)
            return
        self._update(item.id, state="parsing")

        def progress(event: Progress) -> None:
            if event.stage == "parse":
                self._update(item.id, done=event.done, total=event.total)

        # A re-index replaces the old version in the same transaction: a
        # crash or a failure half-way keeps the old one whole.
        outcome = ingest_file(db, item.path, password=item.password, config=self.config,
                              progress=progress, replace_id=item.replace_id)
        if outcome.status in ("added", "replaced"):
            if item.password:
                with self._lock:
                    self._passwords[str(item.path)] = item.password
                self._keep_unlocked(db, item.path, item.password, outcome.document_id)
            self._update(item.id, state="stored", document_id=outcome.document_id,
                         message=outcome.message)
            self.on_stored()
        elif outcome.status == "duplicate":
            self._update(item.id, state="duplicate", document_id=outcome.document_id,
                         message=outcome.message.replace(item.path.name, item.name, 1))
            if self.store.owns(item.path) and not self._used_elsewhere(db, item.path):
                self.store.remove(item.path)
        else:
            self._update(item.id, state="error", error_code=outcome.error_code,
                         document_id=outcome.document_id, message=outcome.message)
            if outcome.error_code not in LOCKED_CODES and self.store.owns(item.path):
                self.store.remove(item.path)   # keep only what a password can still open

    def _keep_unlocked(self, db, path: Path, password: str, document_id: int | None) -> None:
        """A decrypted copy, so the pages still show after a restart."""
        from storage import documents

        doc = documents.get_document(db, document_id) if document_id else None
        if doc is None:
            return
        try:
            self.unlocked.save(path, password, doc.sha256)
        except Exception as exc:   # a full disk must not fail the ingestion itself
            log.warning("could not keep a decrypted copy of %s: %s", path.name, exc)

    def sweep_unlocked(self) -> int:
        """Remove decrypted copies of documents no longer in the library."""
        from storage import documents, open_db

        db = open_db(self.db_path)
        try:
            keep = {d.sha256 for d in documents.list_documents(db)}
        finally:
            db.close()
        return self.unlocked.sweep(keep)

    @staticmethod
    def _used_elsewhere(db, path: Path) -> bool:
        from storage import documents

        return documents.find_by_path(db, path.resolve()) is not None
