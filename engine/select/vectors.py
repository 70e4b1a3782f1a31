"""Embedding helpers shared by the steps: each text is embedded at most once
per run, and every step works (lexically) when no embedder is given."""
from __future__ import annotations

from typing import Callable

import numpy as np

from storage import SegmentRecord
from storage.records import SECTION_SEPARATOR

from ..embedder import segment_embedding_text
from .base import SelectionContext


def question_vector(ctx: SelectionContext) -> np.ndarray | None:
    if ctx.question_vector is None and ctx.embed is not None:
        ctx.question_vector = np.asarray(ctx.embed([ctx.question])[0], dtype=np.float32)
    return ctx.question_vector


def embedding_text(segment: SegmentRecord) -> str:
    """The same text the indexer embeds, so stored vectors may stand in."""
    return segment_embedding_text(segment.text, SECTION_SEPARATOR.join(segment.section),
                                  segment.name)


def segment_vectors(segments: list[SegmentRecord], ctx: SelectionContext
                    ) -> np.ndarray | None:
    """Unit rows for `segments` (cached in `ctx.vectors`), or None without an embedder."""
    missing = [s for s in dict((s.id, s) for s in segments).values() if s.id not in ctx.vectors]
    if missing and ctx.fetch_vectors is not None:
        ctx.vectors.update(ctx.fetch_vectors([s.id for s in missing]))
        missing = [s for s in missing if s.id not in ctx.vectors]
    if missing:
        if ctx.embed is None:
            return None
        rows = ctx.embed([embedding_text(s) for s in missing])
        for seg, row in zip(missing, rows):
            ctx.vectors[seg.id] = np.asarray(row, dtype=np.float32)
    if not segments:
        return np.zeros((0, 0), dtype=np.float32)
    return np.stack([ctx.vectors[s.id] for s in segments])


def matrix_fetcher(ids: np.ndarray, matrix: np.ndarray
                   ) -> Callable[[list[int]], dict[int, np.ndarray]]:
    """A `fetch_vectors` over stored vectors, e.g. the (ids, _, matrix) of
    `storage.embeddings.load_matrix` that the searcher already holds; ids
    must be sorted (load_matrix sorts them). Rows are renormalised because
    int8 storage leaves them only nearly unit length."""
    def fetch(wanted: list[int]) -> dict[int, np.ndarray]:
        if not len(ids) or not wanted:
            return {}
        query = np.asarray(wanted, dtype=np.int64)
        pos = np.clip(np.searchsorted(ids, query), 0, len(ids) - 1)
        out = {}
        for segment_id, p in zip(wanted, pos):
            if ids[p] == segment_id:
                row = matrix[p]
                norm = float(np.linalg.norm(row))
                out[segment_id] = row / norm if norm else row
        return out
    return fetch


def text_vectors(texts: list[str], ctx: SelectionContext) -> np.ndarray | None:
    if ctx.embed is None:
        return None
    if not texts:
        return np.zeros((0, 0), dtype=np.float32)
    return np.asarray(ctx.embed(texts), dtype=np.float32)
