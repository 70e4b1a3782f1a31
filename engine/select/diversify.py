"""Diversify: maximal marginal relevance. A window spent on two copies of
the same paragraph (repeated boilerplate, overlapping docs) holds less
information than one copy plus the next best different segment."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .base import Candidate, SelectionContext
from ..text import jaccard, token_set
from .vectors import segment_vectors


@dataclass
class Diversify:
    name: str = "diversify"
    lam: float = 0.75              # 1 = relevance only, 0 = novelty only
    duplicate: float = 0.92        # similarity at which a candidate is dropped outright
    keep: int | None = None        # how many to choose; None orders them all

    def similarity(self, candidates: list[Candidate], ctx: SelectionContext) -> np.ndarray:
        """Pairwise similarity: the larger of embedding cosine and word
        overlap, so a near-copy is caught even without an embedder."""
        sets = [token_set(c.segment.text) for c in candidates]
        n = len(candidates)
        sim = np.array([[jaccard(sets[i], sets[j]) for j in range(n)] for i in range(n)])
        vectors = segment_vectors([c.segment for c in candidates], ctx)
        if vectors is not None and n:
            sim = np.maximum(sim, vectors @ vectors.T)
        return sim

    def __call__(self, candidates: list[Candidate], ctx: SelectionContext) -> list[Candidate]:
        n = len(candidates)
        if n <= 1:
            return list(candidates)
        sim = self.similarity(candidates, ctx)
        rel = np.array([c.score for c in candidates], dtype=float)
        span = rel.max() - rel.min()
        rel = (rel - rel.min()) / span if span > 0 else np.ones(n)
        chosen: list[int] = []
        left = set(range(n))
        limit = self.keep if self.keep is not None else n
        while left and len(chosen) < limit:
            best, best_gain = -1, -np.inf
            for i in sorted(left):
                redundancy = max((sim[i, j] for j in chosen), default=0.0)
                gain = self.lam * rel[i] - (1 - self.lam) * redundancy
                if gain > best_gain:
                    best, best_gain = i, gain
            left.discard(best)
            candidates[best].scores[self.name] = float(best_gain)
            chosen.append(best)
            # near-copies of what was just chosen add nothing: drop them
            left -= {i for i in left if sim[best, i] >= self.duplicate}
        return [candidates[i] for i in chosen]
