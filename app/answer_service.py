"""One answer model per server, shared by every browser tab.

The model is loaded once (in the background at start, so the first question
does not wait for it) and answers one question at a time: a second tab's
question waits its turn and says so. The answerer gets its own SQLite
connection, used only while the question lock is held, so answering never
shares a connection with the page's other requests. Each session has a
stop event that the stop button sets; the engine then finishes the turn
early and stores it as "stopped".
"""
from __future__ import annotations

import threading
import time
from typing import Iterator

from .settings import Settings


class AnswerService:
    def __init__(self, settings: Settings, backend=None):
        self.settings = settings
        self._backend = backend
        self._error: str | None = None
        self._loading = False
        self._load_lock = threading.Lock()
        self._question = threading.Lock()
        self._answerers: dict[bool, object] = {}
        self._db = None
        self._stops: dict[str, threading.Event] = {}

    # -- the model -------------------------------------------------------
    def preload(self) -> None:
        threading.Thread(target=self._safe_backend, name="folio-model", daemon=True).start()

    def _safe_backend(self) -> None:
        try:
            self.backend()
        except Exception:
            pass   # the error is kept and shown; questions say it too

    def backend(self):
        with self._load_lock:
            if self._backend is None:
                from engine.backends import ModelError

                from .assistant import load_answer_backend

                self._loading, self._error = True, None
                try:
                    self._backend = load_answer_backend(self.settings)
                except ModelError as exc:
                    self._error = str(exc)
                    raise
                except Exception as exc:
                    self._error = f"the answer model could not be loaded: {exc}"
                    raise RuntimeError(self._error) from exc
                finally:
                    self._loading = False
            return self._backend

    def status(self) -> str:
        if self._backend is not None:
            info = self._backend.info
            return f"{info.name} on {info.backend}, window {info.n_ctx} tokens"
        if self._loading:
            return "loading the answer model…"
        if self._error:
            return f"model not available: {self._error}"
        return "the model loads with the first question"

    def reconfigure(self, settings: Settings) -> None:
        """New settings: the next question loads the model they name."""
        with self._question, self._load_lock:
            model_changed = (settings.model != self.settings.model)
            self.settings = settings
            self._answerers.clear()
            if model_changed:
                if self._backend is not None and hasattr(self._backend, "close"):
                    try:
                        self._backend.close()
                    except Exception:
                        pass
                self._backend, self._error = None, None

    # -- answering ---------------------------------------------------------
    def _answerer(self):
        """The answerer for the current library: rebuilt once vectors exist,
        so dense search joins as soon as the first document is embedded."""
        from storage import embeddings, open_db

        from .assistant import build_answerer

        if self._db is None:
            self._db = open_db(self.settings.db_path)
        model = self.settings.embedder_config().model_name
        has_vectors = embeddings.count_embeddings(self._db, model) > 0
        if has_vectors not in self._answerers:
            self._answerers[has_vectors] = build_answerer(
                self.settings, self._db, backend=self.backend(),
                context_tokens=self.settings.context_tokens)
        return self._answerers[has_vectors]

    def stop_event(self, session: str) -> threading.Event:
        event = self._stops.get(session)
        if event is None:
            event = self._stops[session] = threading.Event()
        return event

    def stop(self, session: str) -> None:
        self.stop_event(session).set()

    def ask(self, question: str, *, document_ids: list[int] | None,
            conversation_id: int | None, session: str = "") -> Iterator:
        """The engine's events, after a `Stage("waiting")` while another
        question holds the model."""
        from engine.answer_events import Stage

        stop = self.stop_event(session)
        stop.clear()
        waited = False
        while not self._question.acquire(timeout=0.25):
            if stop.is_set():
                return
            if not waited:
                waited = True
                yield Stage("waiting", "another question is being answered")
        try:
            yield Stage("loading", self.status()) if self._backend is None else Stage("searching")
            answerer = self._answerer()
            yield from answerer.ask(question, document_ids=document_ids or None,
                                    conversation_id=conversation_id, stop_event=stop)
        finally:
            self._question.release()

    def wait_ready(self, timeout: float = 120) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._backend is not None:
                return True
            if self._error:
                return False
            time.sleep(0.1)
        return self._backend is not None
