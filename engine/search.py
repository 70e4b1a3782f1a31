"""Hybrid retrieval: FTS5 BM25 and dense cosine, fused by reciprocal rank.

BM25 finds rare exact terms (function names, numbers); dense vectors find
paraphrases. Reciprocal rank fusion needs no score calibration between the
two, and dense search simply drops out until a document's vectors land.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import sqlite_utils

from storage import SegmentRecord
from storage import embeddings as vectors
from storage import fts, segments

from .embedder import Embedder


@dataclass
class SearchConfig:
    k: int = 10
    candidates: int = 50     # taken from each retriever before fusion
    rrf_k: float = 60.0      # the usual constant of reciprocal rank fusion


@dataclass
class SearchHit:
    segment: SegmentRecord
    score: float                 # fused score, higher is better
    bm25_rank: int | None        # 1-based rank in each retriever, None if absent
    dense_rank: int | None
    dense_score: float | None    # cosine similarity


class _MatrixCache:
    """The embedding matrix, reloaded only when vectors were added/removed."""

    def __init__(self) -> None:
        self.key: tuple | None = None
        self.ids = self.doc_ids = np.zeros(0, dtype=np.int64)
        self.row_of: dict[int, int] = {}
        self.matrix = np.zeros((0, 0), dtype=np.float32)

    def get(self, db: sqlite_utils.Database, model: str):
        key = (model, vectors.embeddings_version(db, model))
        if key != self.key:
            self.ids, self.doc_ids, self.matrix = vectors.load_matrix(db, model)
            self.row_of = {int(i): row for row, i in enumerate(self.ids)}
            self.key = key
        return self.ids, self.doc_ids, self.matrix


class HybridSearcher:
    def __init__(self, db: sqlite_utils.Database, model_name: str | None = None,
                 embedder: Embedder | Callable[[], Embedder] | None = None,
                 config: SearchConfig | None = None):
        """`embedder` may be a factory: it is only loaded once vectors exist."""
        self.db = db
        self.model_name = model_name or (embedder.name if isinstance(embedder, Embedder) else None)
        self._embedder = embedder
        self.config = config or SearchConfig()
        self._cache = _MatrixCache()

    def _get_embedder(self) -> Embedder | None:
        if self._embedder is not None and not isinstance(self._embedder, Embedder):
            self._embedder = self._embedder()
        return self._embedder

    def dense(self, query: str, limit: int, document_ids: list[int] | None
              ) -> list[tuple[int, float]]:
        if not self.model_name or self._embedder is None:
            return []
        ids, doc_ids, matrix = self._cache.get(self.db, self.model_name)
        if not len(ids):
            return []
        if document_ids:
            mask = np.isin(doc_ids, document_ids)
            ids, matrix = ids[mask], matrix[mask]
            if not len(ids):
                return []
        query_vector = self._get_embedder().embed_query(query)
        scores = matrix @ query_vector
        top = np.argsort(-scores)[:limit]
        return [(int(ids[i]), float(scores[i])) for i in top]

    def stored_vectors(self, segment_ids: list[int]) -> dict[int, np.ndarray]:
        """Stored vectors of these segments (those embedded so far), so
        selection and citation never embed a stored text again."""
        if not self.model_name:
            return {}
        _, _, matrix = self._cache.get(self.db, self.model_name)
        rows = self._cache.row_of
        return {i: matrix[rows[i]] for i in segment_ids if i in rows}

    def search(self, query: str, *, k: int | None = None,
               document_ids: list[int] | None = None) -> list[SearchHit]:
        k = k or self.config.k
        pool = max(self.config.candidates, k)
        lexical = fts.bm25_search(self.db, query, limit=pool, document_ids=document_ids)
        dense = self.dense(query, pool, document_ids)
        fused: dict[int, float] = {}
        bm25_rank: dict[int, int] = {}
        dense_rank: dict[int, int] = {}
        dense_score: dict[int, float] = {}
        for rank, hit in enumerate(lexical, 1):
            bm25_rank[hit.segment_id] = rank
            fused[hit.segment_id] = fused.get(hit.segment_id, 0.0) + 1.0 / (self.config.rrf_k + rank)
        for rank, (segment_id, score) in enumerate(dense, 1):
            dense_rank[segment_id] = rank
            dense_score[segment_id] = score
            fused[segment_id] = fused.get(segment_id, 0.0) + 1.0 / (self.config.rrf_k + rank)
        best = sorted(fused, key=lambda i: (-fused[i], i))[:k]
        records = {s.id: s for s in segments.get_segments(self.db, best)}
        return [SearchHit(records[i], fused[i], bm25_rank.get(i), dense_rank.get(i),
                          dense_score.get(i)) for i in best if i in records]
