"""The contract of context selection: candidates in, numbered sources out.

A `Candidate` is a retrieved segment with the scores steps attach to it and
the parts of its text still kept (sentence pruning removes parts). A
`Source` is what the model sees as `[n]`: one or more adjacent segments of a
document, possibly pruned, whose text maps back, character by character, to
the stored segments so citations can point at exact spans.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Protocol

import numpy as np

from storage import SegmentRecord

GAP = " … "   # joins the kept parts of a pruned source


@dataclass
class Part:
    """A contiguous run of a segment's text: `segment.text[start:end]`."""

    segment: SegmentRecord
    start: int
    end: int

    @property
    def text(self) -> str:
        return self.segment.text[self.start:self.end]


@dataclass
class Candidate:
    segment: SegmentRecord
    score: float = 0.0                                  # higher is more relevant
    scores: dict[str, float] = field(default_factory=dict)   # per step, for reports
    kept: list[tuple[int, int]] | None = None           # char ranges kept; None = all
    role: str = "hit"       # "hit", or why it was added: "neighbour", "class", "imports"
    # Added to the contract for the pipeline in this package:
    parent: int | None = None   # segment id of the hit an added candidate serves
    sentences: list[tuple[int, int, float]] | None = None   # (start, end, relevance)

    @property
    def kept_ranges(self) -> list[tuple[int, int]]:
        return self.kept if self.kept is not None else [(0, len(self.segment.text))]

    @property
    def kept_text(self) -> str:
        return GAP.join(self.segment.text[a:b] for a, b in self.kept_ranges)


@dataclass
class Source:
    """One numbered source in the prompt."""

    label: int
    parts: list[Part]
    tokens: int = 0
    score: float = 0.0

    @property
    def text(self) -> str:
        return GAP.join(p.text for p in self.parts)

    @property
    def document_id(self) -> int:
        return self.parts[0].segment.document_id

    @property
    def segments(self) -> list[SegmentRecord]:
        seen: dict[int, SegmentRecord] = {}
        for part in self.parts:
            seen.setdefault(part.segment.id, part.segment)
        return list(seen.values())

    def locate(self, start: int, end: int) -> list[tuple[Part, int, int]]:
        """Map a span of `self.text` to (part, start, end) in segment offsets."""
        out, offset = [], 0
        for part in self.parts:
            length = part.end - part.start
            lo, hi = max(start, offset), min(end, offset + length)
            if lo < hi:
                out.append((part, part.start + lo - offset, part.start + hi - offset))
            offset += length + len(GAP)
        return out


@dataclass
class Selection:
    """What a pipeline run produced, with enough detail to report and test."""

    sources: list[Source]
    budget: int
    used_tokens: int
    steps: list[str] = field(default_factory=list)
    dropped: list[int] = field(default_factory=list)    # segment ids left out


@dataclass
class SelectionContext:
    """What every step may use: the question, its vector, and services."""

    question: str
    budget: int                                         # tokens for all sources
    count_tokens: Callable[[str], int]
    embed: Callable[[list[str]], np.ndarray] | None = None   # unit rows
    question_vector: np.ndarray | None = None
    fetch_neighbours: Callable[[SegmentRecord, int, int], list[SegmentRecord]] | None = None
    fetch_document_segments: Callable[[int], list[SegmentRecord]] | None = None
    # Added: segment vectors by segment id, filled lazily (or up front from
    # stored embeddings) so steps never embed one text twice.
    vectors: dict[int, np.ndarray] = field(default_factory=dict)
    # Added: stored segment vectors by id (see vectors.matrix_fetcher); far
    # cheaper than embedding thirty segments again for every question.
    fetch_vectors: Callable[[list[int]], dict[int, np.ndarray]] | None = None


class SelectionStep(Protocol):
    """One swappable step; `name` identifies it in benchmarks and reports."""

    name: str

    def __call__(self, candidates: list[Candidate], ctx: SelectionContext) -> list[Candidate]:
        ...
