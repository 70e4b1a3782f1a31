"""Rerank: fused retrieval ranks are blind to how well a whole segment
answers the question; cosine to the question plus lexical overlap (with
identifiers split) re-sorts them, the retrieval score staying as a prior."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .base import Candidate, SelectionContext
from ..text import LexicalScorer
from .vectors import question_vector, segment_vectors


def lexical_text(candidate: Candidate) -> str:
    """What lexical matching sees: heading path and code name lead the text."""
    seg = candidate.segment
    return "\n".join([*seg.section, seg.name or "", seg.text])


@dataclass
class Rerank:
    name: str = "rerank"
    keep: int | None = 24          # top N kept; None keeps all
    dense_weight: float = 0.55
    lexical_weight: float = 0.35
    prior_weight: float = 0.10     # the retrieval score, scaled to [0, 1]

    def __call__(self, candidates: list[Candidate], ctx: SelectionContext) -> list[Candidate]:
        if not candidates:
            return []
        scorer = LexicalScorer.fit(ctx.question, [lexical_text(c) for c in candidates])
        prior = np.array([c.scores.get("retrieval", c.score) for c in candidates], dtype=float)
        top = prior.max()
        prior = prior / top if top > 0 else np.zeros_like(prior)
        qv = question_vector(ctx)
        vectors = segment_vectors([c.segment for c in candidates], ctx) if qv is not None else None
        dense = (vectors @ qv).astype(float) if vectors is not None else None
        weights = (self.dense_weight if dense is not None else 0.0,
                   self.lexical_weight, self.prior_weight)
        total = sum(weights) or 1.0
        for i, cand in enumerate(candidates):
            lex = scorer.score(lexical_text(cand))
            cos = float(dense[i]) if dense is not None else 0.0
            cand.scores.setdefault("retrieval", cand.score)
            cand.scores["lexical"] = lex
            if dense is not None:
                cand.scores["cosine"] = cos
            cand.score = (weights[0] * cos + weights[1] * lex + weights[2] * prior[i]) / total
            cand.scores[self.name] = cand.score
        ranked = sorted(candidates, key=lambda c: -c.score)
        return ranked[: self.keep] if self.keep is not None else ranked
