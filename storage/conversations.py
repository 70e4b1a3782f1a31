"""Conversations: questions, answers and their citations, kept across restarts."""
from __future__ import annotations

import json
from dataclasses import fields

import sqlite_utils

from .documents import _now
from .errors import no_space_is_reported
from .records import CitationRecord, ConversationRecord, TurnRecord

_CITATION_COLUMNS = [f.name for f in fields(CitationRecord) if f.name != "id"]


def create_conversation(db: sqlite_utils.Database, title: str = "",
                        document_ids: list[int] | None = None) -> int:
    now = _now()
    with db.atomic():
        cursor = db.execute(
            "INSERT INTO conversations (title, document_ids, created_at, updated_at) "
            "VALUES (?, ?, ?, ?)", [title, json.dumps(document_ids or []), now, now])
    return cursor.lastrowid


STATUS_ANSWERING = "answering"       # stored when a question is asked, until its answer
STATUS_INTERRUPTED = "interrupted"   # Folio stopped while answering (found at start-up)


def begin_turn(db: sqlite_utils.Database, conversation_id: int, *, question: str,
               search_query: str, model: str) -> int:
    """Store a question before it is answered, so an answer cut off by a
    crash is still on record (and reported at the next start)."""
    with no_space_is_reported("saving the question"), db.atomic():
        ordinal = db.execute(
            "SELECT COALESCE(MAX(ordinal), -1) + 1 FROM turns WHERE conversation_id = ?",
            [conversation_id]).fetchone()[0]
        cursor = db.execute(
            """INSERT INTO turns (conversation_id, ordinal, question, search_query,
                   answer, declined, status, model, metadata, created_at)
               VALUES (?, ?, ?, ?, '', 0, ?, ?, '{}', ?)""",
            [conversation_id, ordinal, question, search_query, STATUS_ANSWERING, model,
             _now()])
        if not db.execute("SELECT title FROM conversations WHERE id = ?",
                          [conversation_id]).fetchone()[0]:
            db.execute("UPDATE conversations SET title = ? WHERE id = ?",
                       [question[:80], conversation_id])
        return cursor.lastrowid


def finish_turn(db: sqlite_utils.Database, turn_id: int, *, answer: str, declined: bool,
                metadata: dict, citations: list[CitationRecord], status: str = "done") -> None:
    """Store a turn's answer with its citations in one transaction."""
    now = _now()
    with no_space_is_reported("saving the answer"), db.atomic():
        db.execute("UPDATE turns SET answer = ?, declined = ?, status = ?, metadata = ? "
                   "WHERE id = ?", [answer, int(declined), status, json.dumps(metadata),
                                    turn_id])
        conversation_id = db.execute(
            "SELECT conversation_id FROM turns WHERE id = ?", [turn_id]).fetchone()[0]
        # A citation outlives its document's removal, but must not name a
        # document that is already gone (removed while the answer was written).
        cited = {c.document_id for c in citations if c.document_id is not None}
        alive = {row[0] for row in db.execute(
            f"SELECT id FROM documents WHERE id IN ({','.join('?' * len(cited))})",
            list(cited)).fetchall()} if cited else set()
        marks = ", ".join("?" * (len(_CITATION_COLUMNS) + 1))
        rows = []
        for c in citations:
            values = {name: getattr(c, name) for name in _CITATION_COLUMNS}
            values["boxes"] = json.dumps(c.boxes)
            if values["document_id"] not in alive:
                values["document_id"] = None
            rows.append([turn_id] + [values[name] for name in _CITATION_COLUMNS])
        db.conn.executemany(
            f"INSERT INTO citations (turn_id, {', '.join(_CITATION_COLUMNS)}) VALUES ({marks})",
            rows)
        db.execute("UPDATE conversations SET updated_at = ? WHERE id = ?",
                   [now, conversation_id])


def add_turn(db: sqlite_utils.Database, conversation_id: int, *, question: str,
             search_query: str, answer: str, declined: bool, model: str,
             metadata: dict, citations: list[CitationRecord],
             status: str = "done") -> int:
    """Store one question and answer with its citations in one transaction."""
    with no_space_is_reported("saving the answer"), db.atomic():
        turn_id = begin_turn(db, conversation_id, question=question,
                             search_query=search_query, model=model)
        finish_turn(db, turn_id, answer=answer, declined=declined, metadata=metadata,
                    citations=citations, status=status)
    return turn_id


def mark_interrupted(db: sqlite_utils.Database) -> list[tuple[int, str]]:
    """Turns left "answering" by a process that stopped: marked interrupted;
    returns their (conversation id, question) for the start-up report."""
    with db.atomic():
        found = db.execute("SELECT conversation_id, question FROM turns WHERE status = ? "
                           "ORDER BY id", [STATUS_ANSWERING]).fetchall()
        db.execute("UPDATE turns SET status = ? WHERE status = ?",
                   [STATUS_INTERRUPTED, STATUS_ANSWERING])
    return [(c, q) for c, q in found]


def _citations(db: sqlite_utils.Database, turn_ids: list[int]) -> dict[int, list[CitationRecord]]:
    out: dict[int, list[CitationRecord]] = {t: [] for t in turn_ids}
    if not turn_ids:
        return out
    marks = ",".join("?" * len(turn_ids))
    cursor = db.execute(
        f"SELECT id, turn_id, {', '.join(_CITATION_COLUMNS)} FROM citations "
        f"WHERE turn_id IN ({marks}) ORDER BY turn_id, sentence, label, id", turn_ids)
    names = [c[0] for c in cursor.description]
    for row in cursor.fetchall():
        values = dict(zip(names, row))
        turn_id = values.pop("turn_id")
        values["boxes"] = json.loads(values["boxes"])
        out[turn_id].append(CitationRecord(**values))
    return out


def get_turns(db: sqlite_utils.Database, conversation_id: int) -> list[TurnRecord]:
    cursor = db.execute(
        """SELECT id, conversation_id, ordinal, question, search_query, answer,
                  declined, status, model, metadata, created_at
             FROM turns WHERE conversation_id = ? ORDER BY ordinal""", [conversation_id])
    names = [c[0] for c in cursor.description]
    turns = []
    for row in cursor.fetchall():
        values = dict(zip(names, row))
        values["declined"] = bool(values["declined"])
        values["metadata"] = json.loads(values["metadata"])
        turns.append(TurnRecord(**values))
    cited = _citations(db, [t.id for t in turns])
    for turn in turns:
        turn.citations = cited[turn.id]
    return turns


def get_conversation(db: sqlite_utils.Database, conversation_id: int,
                     with_turns: bool = True) -> ConversationRecord | None:
    row = db.execute("SELECT id, title, document_ids, created_at, updated_at "
                     "FROM conversations WHERE id = ?", [conversation_id]).fetchone()
    if row is None:
        return None
    record = ConversationRecord(row[0], row[1], json.loads(row[2]), row[3], row[4])
    if with_turns:
        record.turns = get_turns(db, conversation_id)
    return record


def list_conversations(db: sqlite_utils.Database) -> list[ConversationRecord]:
    rows = db.execute("SELECT id, title, document_ids, created_at, updated_at "
                      "FROM conversations ORDER BY updated_at DESC, id DESC").fetchall()
    return [ConversationRecord(r[0], r[1], json.loads(r[2]), r[3], r[4]) for r in rows]


def set_scope(db: sqlite_utils.Database, conversation_id: int, document_ids: list[int]) -> None:
    with db.atomic():
        db.execute("UPDATE conversations SET document_ids = ? WHERE id = ?",
                   [json.dumps(document_ids), conversation_id])


def delete_conversation(db: sqlite_utils.Database, conversation_id: int) -> bool:
    with db.atomic():
        cursor = db.execute("DELETE FROM conversations WHERE id = ?", [conversation_id])
    return cursor.rowcount > 0


def clear_conversations(db: sqlite_utils.Database) -> int:
    with db.atomic():
        cursor = db.execute("DELETE FROM conversations")
    return cursor.rowcount
