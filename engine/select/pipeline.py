"""A pipeline: swappable steps, then Pack. Benchmarks build variants with
`without(...)` so every step's effect is measured against the same run."""
from __future__ import annotations

from dataclasses import dataclass, field, replace

from ..search import SearchHit
from .base import Candidate, Selection, SelectionContext, SelectionStep
from .code import CodeExpand
from .diversify import Diversify
from .neighbours import NeighbourExpand
from .pack import Pack
from .prune import PruneSentences
from .prune_code import PruneCode
from .prune_table import PruneTable
from .rerank import Rerank
from .trim_docstrings import TrimDocstrings


def candidates_from_hits(hits: list[SearchHit]) -> list[Candidate]:
    """Search hits as candidates, keeping each retriever's evidence."""
    out = []
    for hit in hits:
        scores = {"retrieval": hit.score}
        if hit.dense_score is not None:
            scores["dense"] = hit.dense_score
        if hit.bm25_rank is not None:
            scores["bm25_rank"] = float(hit.bm25_rank)
        if hit.dense_rank is not None:
            scores["dense_rank"] = float(hit.dense_rank)
        out.append(Candidate(hit.segment, score=hit.score, scores=scores))
    return out


@dataclass
class TopK:
    """The plain-RAG choice: the k best by one score (dense cosine by
    default, as common local RAG apps do), nothing else."""

    k: int = 5
    key: str = "dense"
    name: str = "top-k"

    def __call__(self, candidates: list[Candidate], ctx: SelectionContext) -> list[Candidate]:
        def value(c: Candidate) -> float:
            return c.scores.get(self.key, float("-inf"))
        ranked = sorted(candidates, key=lambda c: (-value(c), -c.score))
        return ranked[: self.k]


@dataclass
class Pipeline:
    steps: list[SelectionStep] = field(default_factory=list)
    pack: Pack = field(default_factory=Pack)

    @property
    def names(self) -> list[str]:
        return [s.name for s in self.steps] + [self.pack.name]

    def without(self, *names: str) -> "Pipeline":
        """The same pipeline with the named steps switched off."""
        return Pipeline([s for s in self.steps if s.name not in names], self.pack)

    def with_step(self, step: SelectionStep, after: str) -> "Pipeline":
        """The same pipeline with `step` added after the step named `after`
        (a step left out of the default, measured against it)."""
        names = [s.name for s in self.steps]
        if after not in names:
            raise ValueError(f"no step named {after!r} in {names}")
        at = names.index(after) + 1
        return Pipeline(self.steps[:at] + [step] + self.steps[at:], self.pack)

    def run(self, candidates: list[Candidate], ctx: SelectionContext) -> Selection:
        # copies: steps annotate candidates, and a caller may run variants on one list
        work = [replace(c, scores=dict(c.scores),
                        kept=list(c.kept) if c.kept is not None else None)
                for c in candidates]
        for step in self.steps:
            work = step(work, ctx)
        selection = self.pack(work, ctx)
        selection.steps = self.names
        return selection


def default_pipeline(sentence_pruning: bool = False) -> Pipeline:
    """The steps whose measured effect is positive: on the whole dev set at
    900 tokens, switching off any one of them loses at least one answer,
    citation or retrieval hit and gains none (bench/RESULTS.md, eighteenth
    session). Sentence pruning is left out unless asked for: with the
    default 0.5B model it cost answers and citations (0.852 -> 0.704
    answers); a larger model may want it. It runs after diversify."""
    pipeline = Pipeline([Rerank(), Diversify(), PruneCode(), PruneTable(), CodeExpand(),
                         TrimDocstrings(), NeighbourExpand()], Pack())
    return pipeline.with_step(PruneSentences(), after="diversify") if sentence_pruning \
        else pipeline


def baseline_pipeline(k: int = 5) -> Pipeline:
    """Top-k dense chunks, whole, in rank order, in the same budget."""
    return Pipeline([TopK(k)], Pack(shrink=False, order="score", merge=False))
