"""Embedding rows per segment and model, as float32 or int8 vectors."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import sqlite_utils

from .documents import STATUS_READY, STATUS_SEARCHABLE, _now
from .errors import no_space_is_reported


@dataclass
class PendingSegment:
    id: int
    document_id: int
    text: str
    section: str
    name: str | None


@dataclass
class EmbeddingProgress:
    document_id: int
    done: int
    total: int


def _encode(vector: np.ndarray, dtype: str) -> tuple[bytes, float]:
    vector = np.asarray(vector, dtype=np.float32)
    if dtype == "float32":
        return vector.tobytes(), 1.0
    if dtype == "int8":
        scale = float(np.abs(vector).max()) / 127.0 or 1.0
        return np.round(vector / scale).astype(np.int8).tobytes(), scale
    raise ValueError(f"unknown embedding dtype {dtype!r}")


def pending_segments(db: sqlite_utils.Database, model: str, *, limit: int = 256,
                     document_id: int | None = None) -> list[PendingSegment]:
    """Segments that have no embedding for `model` yet, in document order:
    the work list that makes background embedding resumable."""
    sql = """SELECT s.id, s.document_id, s.text, s.section, s.name FROM segments s
             WHERE NOT EXISTS (SELECT 1 FROM embeddings e
                               WHERE e.segment_id = s.id AND e.model = ?)"""
    params: list = [model]
    if document_id is not None:
        sql += " AND s.document_id = ?"
        params.append(document_id)
    sql += " ORDER BY s.document_id, s.ordinal LIMIT ?"
    params.append(limit)
    return [PendingSegment(*row) for row in db.execute(sql, params).fetchall()]


def save_embeddings(db: sqlite_utils.Database, model: str, ids: list[int],
                    vectors: np.ndarray, *, dtype: str = "float32") -> int:
    """Store vectors for segments that still exist (a document may have been
    removed while its embeddings were being computed); returns rows written.
    Documents whose every segment is now embedded become ready."""
    rows = []
    for segment_id, vector in zip(ids, vectors):
        blob, scale = _encode(vector, dtype)
        rows.append((segment_id, model, int(vector.shape[-1]), dtype, scale, blob, segment_id))
    with no_space_is_reported(f"storing the embeddings of {len(rows)} segments"), db.atomic():
        before = db.conn.total_changes
        db.conn.executemany(
            """INSERT OR REPLACE INTO embeddings (segment_id, model, dim, dtype, scale, vector)
               SELECT ?, ?, ?, ?, ?, ? WHERE EXISTS (SELECT 1 FROM segments WHERE id = ?)""",
            rows)
        written = db.conn.total_changes - before
        _mark_ready(db, model)
    return written


def _mark_ready(db: sqlite_utils.Database, model: str) -> None:
    db.execute(
        """UPDATE documents SET status = ?, updated_at = ?
           WHERE status = ? AND NOT EXISTS (
               SELECT 1 FROM segments s WHERE s.document_id = documents.id
               AND NOT EXISTS (SELECT 1 FROM embeddings e
                               WHERE e.segment_id = s.id AND e.model = ?))""",
        [STATUS_READY, _now(), STATUS_SEARCHABLE, model])


def mark_ready(db: sqlite_utils.Database, model: str) -> None:
    """Promote documents with every segment embedded (or none to embed)."""
    with db.atomic():
        _mark_ready(db, model)


def embedding_progress(db: sqlite_utils.Database, model: str) -> dict[int, EmbeddingProgress]:
    rows = db.execute(
        """SELECT s.document_id, COUNT(e.segment_id), COUNT(*) FROM segments s
           LEFT JOIN embeddings e ON e.segment_id = s.id AND e.model = ?
           GROUP BY s.document_id""", [model]).fetchall()
    return {doc: EmbeddingProgress(doc, done, total) for doc, done, total in rows}


def count_pending(db: sqlite_utils.Database, model: str) -> int:
    return db.execute(
        """SELECT COUNT(*) FROM segments s WHERE NOT EXISTS (
               SELECT 1 FROM embeddings e WHERE e.segment_id = s.id AND e.model = ?)""",
        [model]).fetchone()[0]


def count_embeddings(db: sqlite_utils.Database, model: str) -> int:
    return db.execute("SELECT COUNT(*) FROM embeddings WHERE model = ?", [model]).fetchone()[0]


def load_matrix(db: sqlite_utils.Database, model: str, *,
                document_ids: list[int] | None = None
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All vectors of `model` as (segment ids, document ids, float32 rows)."""
    sql = """SELECT e.segment_id, e.dtype, e.scale, e.vector, e.dim, s.document_id
             FROM embeddings e
             JOIN segments s ON s.id = e.segment_id WHERE e.model = ?"""
    params: list = [model]
    if document_ids:
        sql += f" AND s.document_id IN ({','.join('?' * len(document_ids))})"
        params.extend(document_ids)
    sql += " ORDER BY e.segment_id"
    rows = db.execute(sql, params).fetchall()
    if not rows:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty.copy(), np.zeros((0, 0), dtype=np.float32)
    ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
    doc_ids = np.fromiter((r[5] for r in rows), dtype=np.int64, count=len(rows))
    matrix = np.empty((len(rows), rows[0][4]), dtype=np.float32)
    for i, (_, dtype, scale, blob, _dim, _doc) in enumerate(rows):
        if dtype == "int8":
            matrix[i] = np.frombuffer(blob, dtype=np.int8).astype(np.float32) * scale
        else:
            matrix[i] = np.frombuffer(blob, dtype=np.float32)
    return ids, doc_ids, matrix


def embeddings_version(db: sqlite_utils.Database, model: str) -> tuple[int, int]:
    """A cheap fingerprint that changes when vectors are added or removed,
    so a cached matrix knows when to reload."""
    row = db.execute("SELECT COUNT(*), COALESCE(MAX(segment_id), 0) FROM embeddings "
                     "WHERE model = ?", [model]).fetchone()
    return row[0], row[1]
