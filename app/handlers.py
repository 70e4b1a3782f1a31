"""What each control on the page does. Handlers read and write through the
runtime and the view modules; `serve.build_app` only wires them to events."""
from __future__ import annotations

import time
from pathlib import Path

from engine.library import remove_document
from storage import conversations as chats
from storage import documents, embeddings

from . import inspector
from .chat_view import (TurnView, conversation_html, conversation_markdown, find_citation,
                        parse_cite_key)
from .library_view import build_rows, locked_documents, rows_html, summary
from .runtime import Runtime
from .uploads import UploadRejected, safe_name, safe_relative

STAGE_WORDS = {
    "waiting": "waiting: another question is being answered",
    "loading": "loading the answer model",
    "rewriting": "reading the question with the earlier ones",
    "searching": "searching the library",
    "selecting": "choosing sources",
    "reading": "reading the sources",
    "writing": "writing",
    "citing": "finding the cited words",
    "continuing": "the answer only repeated the question: going on",
}


class Handlers:
    def __init__(self, runtime: Runtime):
        self.rt = runtime

    # -- library -------------------------------------------------------
    def _stage(self, temp: str, name: str, password: str | None = None, queue: bool = True,
               **kwargs) -> int | None:
        """Store one upload and (unless it is part of a dropped folder) queue
        it; returns the queue item (a refusal is an item too)."""
        try:
            staged = self.rt.store.stage(temp, name, **kwargs)
        except UploadRejected as exc:
            return self.rt.queue.note(exc.name, "error", str(exc), exc.code)
        except OSError as exc:
            return self.rt.queue.note(safe_name(name), "error", f"{name}: cannot store ({exc})",
                                      "unreadable")
        if queue:
            return self.rt.queue.submit(staged.path, staged.name, folder=staged.folder,
                                        password=password)
        return None

    def add_files(self, files: list[str] | None, password: str | None = None) -> list[int]:
        """Files from the file input: each is staged and queued; returns item ids."""
        ids = []
        for temp in files or []:
            temp = str(temp)
            if self.rt.in_upload_cache(temp):
                ids.append(self._stage(temp, Path(temp).name, password=password or None))
        return [i for i in ids if i is not None]

    def add_dropped(self, entries: list[dict]) -> list[int]:
        """Files dropped on the page: loose files are queued one by one, each
        dropped folder is rebuilt under one generated folder and walked."""
        before = {i.id for i in self.rt.queue.snapshot()}
        folders: dict[str, Path] = {}
        for entry in entries or []:
            if not isinstance(entry, dict):
                continue
            name = str(entry.get("name") or "upload")
            temp = entry.get("path")
            if not temp or not self.rt.in_upload_cache(temp):
                self.rt.queue.note(safe_name(name), "error",
                                   f"{name}: the upload did not arrive"
                                   + (f" ({entry['error']})" if entry.get("error") else ""),
                                   "unreadable")
                continue
            # Cleaned before use: the folder that is queued must be the one
            # the cleaned path was written under ("../x/a.py" lands in "x").
            rel = safe_relative(str(entry.get("rel") or name))
            if rel is None or len(rel.parts) < 2:
                self._stage(temp, name)
                continue
            top = rel.parts[0]
            if top not in folders:
                folders[top] = self.rt.store.new_folder()
            self._stage(temp, name, queue=False, folder=folders[top], relative=str(rel))
        for top, folder in folders.items():
            if (folder / top).is_dir():
                self.rt.queue.submit(folder / top, top, folder=True)
        return [i.id for i in self.rt.queue.snapshot() if i.id not in before]

    def library_state(self) -> tuple[str, str, list[tuple[str, int]], list[tuple[str, int]]]:
        """(table HTML, one-line summary, scope choices, locked PDFs)."""
        db = self.rt.db()
        docs = documents.list_documents(db)
        progress = embeddings.embedding_progress(db, self.rt.settings.embedder_config().model_name)
        rows = build_rows(docs, progress, self.rt.queue.snapshot(), self.rt.embed_error)
        choices = [(f"{d.display_name} (#{d.id})", d.id) for d in docs if d.status != "error"]
        return rows_html(rows), summary(rows), choices, locked_documents(docs)

    def library_action(self, action: str) -> str:
        """`remove:ID` or `reindex:ID` from a row's button; returns a notice."""
        verb, _, ident = (action or "").partition(":")
        if not ident.isdigit():
            return ""
        db = self.rt.db()
        doc = documents.get_document(db, int(ident))
        if doc is None:
            return "That document is no longer in the library."
        if verb == "remove":
            remove_document(db, doc.id, self.rt.settings.kv_dir)
            if self.rt.store.owns(doc.path):
                self.rt.store.remove(doc.path)
            self.rt.queue.unlocked.remove(doc.sha256)
            return f"Removed {doc.display_name}."
        if verb == "reindex":
            if not Path(doc.path).is_file():
                return f"{doc.display_name}: the file is no longer at {doc.path}; add it again."
            self.rt.queue.submit(Path(doc.path), doc.display_name, replace_id=doc.id,
                                 password=self.rt.queue.password_for(doc.path), front=True)
            return f"Re-indexing {doc.display_name}."
        return ""

    def unlock(self, doc_id: int | None, password: str) -> str:
        if doc_id is None:
            return "Choose the PDF to unlock."
        if not password:
            return "Enter the password."
        doc = documents.get_document(self.rt.db(), int(doc_id))
        if doc is None or not Path(doc.path).is_file():
            return "That file is no longer available; add it again."
        self.rt.queue.submit(Path(doc.path), doc.display_name, password=password, front=True)
        return f"Trying the password on {doc.display_name}…"

    # -- conversations ---------------------------------------------------
    def turns(self, conversation_id: int | None) -> list[TurnView]:
        if conversation_id is None:
            return []
        return [TurnView.from_turn(t) for t in chats.get_turns(self.rt.db(), int(conversation_id))]

    def conversation_choices(self) -> list[tuple[str, int]]:
        return [(f"{c.title or 'untitled'} · {c.updated_at[:16].replace('T', ' ')}", c.id)
                for c in chats.list_conversations(self.rt.db())]

    def latest_conversation(self) -> int | None:
        found = chats.list_conversations(self.rt.db())
        return found[0].id if found else None

    def chat_html(self, conversation_id: int | None) -> str:
        return conversation_html(self.turns(conversation_id))

    def delete_conversation(self, conversation_id: int | None) -> None:
        if conversation_id is not None:
            chats.delete_conversation(self.rt.db(), int(conversation_id))

    def export(self, conversation_id: int | None) -> str | None:
        """The conversation as a Markdown file in the data dir's scratch folder."""
        if conversation_id is None:
            return None
        record = chats.get_conversation(self.rt.db(), int(conversation_id))
        if record is None:
            return None
        text = conversation_markdown(record.title, [TurnView.from_turn(t) for t in record.turns])
        folder = self.rt.export_dir
        folder.mkdir(parents=True, exist_ok=True)
        for old in folder.glob("*.md"):          # one export at a time is kept
            if time.time() - old.stat().st_mtime > 3600:
                old.unlink(missing_ok=True)
        path = folder / f"folio-conversation-{record.id}.md"
        path.write_text(text, encoding="utf-8")
        return str(path)

    def ask(self, question: str, scope: list[int] | None, conversation_id: int | None,
            session: str):
        """Yields (chat HTML, conversation id) while the answer streams."""
        from engine.answer_events import Done, Revise, Stage, Token
        from engine.prompts import QuestionError, clean_question
        from engine.qa import QAConfig

        turns = self.turns(conversation_id)
        try:    # checked first: a 100 KB paste is refused, not rendered
            question = clean_question(question or "", QAConfig().max_question_chars)
        except QuestionError as exc:
            live = TurnView("live", "", status="error", reason=str(exc))
            yield conversation_html(turns + [live]), conversation_id
            return
        live = TurnView("live", question, status="writing", stage=STAGE_WORDS["searching"])
        yield conversation_html(turns + [live]), conversation_id
        last = 0.0
        try:
            for event in self.rt.answers.ask(question, document_ids=list(scope or []),
                                             conversation_id=conversation_id, session=session):
                if isinstance(event, Stage):
                    live.stage = STAGE_WORDS.get(event.name, event.name)
                    if event.detail and event.name in ("selecting", "reading", "waiting"):
                        live.stage += f" ({event.detail})"
                elif isinstance(event, Revise):
                    live.answer = event.text
                elif isinstance(event, Token):
                    live.answer += event.text
                    live.stage = STAGE_WORDS["writing"]
                    if time.monotonic() - last < 0.05:
                        continue
                elif isinstance(event, Done):
                    conversation_id = event.result.conversation_id
                    break
                last = time.monotonic()
                yield conversation_html(turns + [live]), conversation_id
        except Exception as exc:   # a model that cannot load, a broken file
            live.status, live.reason = "error", str(exc) or type(exc).__name__
            yield conversation_html(turns + [live]), conversation_id
            return
        yield self.chat_html(conversation_id), conversation_id

    # -- inspector -------------------------------------------------------
    def inspect(self, key: str, conversation_id: int | None) -> tuple[str, dict | None]:
        parsed = parse_cite_key(key)
        if parsed is None or conversation_id is None:
            return inspector.EMPTY, None
        turn_id, label, sentence = parsed
        turn = next((t for t in self.turns(conversation_id) if t.key == str(turn_id)), None)
        if turn is None:
            return inspector.EMPTY, None
        db = self.rt.db()
        citation = find_citation(turn, label, sentence)
        if citation is not None:
            doc = documents.get_document(db, citation.document_id) \
                if citation.document_id is not None else None
            state = inspector.state_for_citation(citation, doc.kind if doc else "")
        else:
            source = next((s for s in turn.sources if s.get("label") == label), None)
            if source is None:
                return (f'<div class="folio-note">This answer was given no source [{label}].'
                        f'</div>'), None
            doc = documents.get_document(db, source.get("document_id"))
            state = inspector.state_for_source(source, doc.kind if doc else "")
        return self.render_inspector(state), state

    def render_inspector(self, state: dict | None) -> str:
        return inspector.render(self.rt.db(), state, self.rt.queue.password_for,
                                self.rt.queue.unlocked)

    def page(self, state: dict | None, delta: int) -> tuple[str, dict | None]:
        state = inspector.navigate(self.rt.db(), state, delta)
        return self.render_inspector(state), state

    def zoom(self, state: dict | None, factor: float) -> tuple[str, dict | None]:
        state = inspector.zoom(state, factor)
        return self.render_inspector(state), state

    # -- the documented API ------------------------------------------------
    def api_list(self) -> list[dict]:
        db = self.rt.db()
        progress = embeddings.embedding_progress(db, self.rt.settings.embedder_config().model_name)
        out = []
        for d in documents.list_documents(db):
            p = progress.get(d.id)
            out.append({"id": d.id, "name": d.display_name, "kind": d.kind,
                        "status": d.status, "error": d.error, "error_code": d.error_code,
                        "pages": d.pages, "lines": d.lines, "segments": d.segments,
                        "embedded": p.done if p else 0, "warnings": d.warnings,
                        "added": d.created_at})
        return out

    def api_ingest(self, files: list[str] | None, password: str | None,
                   timeout: float = 600) -> list[dict]:
        ids = self.add_files(files, password)
        # This call's files only (a zip's files are queued after it), not
        # other clients' uploads running at the same time.
        self.rt.queue.wait_for(ids, timeout)
        return [{"name": item.name, "state": item.state, "message": item.message,
                 "error_code": item.error_code, "document_id": item.document_id}
                for item in self.rt.queue.outcomes(ids)]

    def api_ask(self, question: str, document_ids: list[int] | None,
                conversation_id: int | None):
        from engine.answer_events import Done, Revise, Token

        if not (question or "").strip():
            yield {"error": "the question is empty"}
            return
        text = ""
        for event in self.rt.answers.ask(question, document_ids=document_ids,
                                         conversation_id=conversation_id,
                                         session=f"api-{time.monotonic_ns()}"):
            if isinstance(event, (Token, Revise)):
                text = event.text if isinstance(event, Revise) else text + event.text
                yield {"status": "writing", "answer": text}
            elif isinstance(event, Done):
                result = event.result.to_json()
                yield {"status": result["status"], "answer": result["text"],
                       "declined": result["declined"], "reason": result["reason"],
                       "conversation_id": result["conversation_id"],
                       "citations": result["citations"],
                       "sources": [{k: v for k, v in s.items() if k != "text"}
                                   for s in result["sources"]]}


def scope_value(scope) -> list[int]:
    """The scope dropdown's value as document ids."""
    out = []
    for value in scope or []:
        try:
            out.append(int(value))
        except (TypeError, ValueError):
            continue
    return out

