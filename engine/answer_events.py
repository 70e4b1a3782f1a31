"""What an answer streams (`Stage`, `Token`) and ends with (`Done` and its
`AnswerResult`), in the shapes the CLI, the UI and the store read."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

from storage.records import CitationRecord

from .select.base import Source


@dataclass
class Stage:
    name: str   # "rewriting", "searching", "selecting", "reading", "writing", "citing",
                # "continuing"
    detail: str = ""


@dataclass
class Token:
    text: str


@dataclass
class Revise:
    """The answer streamed so far now reads `text`, and the `Token`s that
    follow continue it: an answer that only restated the question is
    continued (`Answerer.go_on`)."""
    text: str


@dataclass
class SourceUsage:
    """One numbered source as the model saw it, for the sources list."""

    label: int
    document_id: int
    document_name: str
    segment_ids: list[int]
    page: int | None
    line_start: int | None
    line_end: int | None
    tokens: int
    score: float
    text: str
    pages: list[int] = field(default_factory=list)   # every page its segments lie on
    # the [first, last] lines of each part shown (a pruned function shows
    # some of its lines: line_start/line_end span the whole source)
    line_ranges: list[list[int]] = field(default_factory=list)
    attention: float | None = None  # share of the answer's attention (sparse backend)


@dataclass
class AnswerResult:
    question: str
    search_query: str
    text: str
    raw_text: str
    declined: bool
    reason: str
    citations: list[CitationRecord]
    sentences: list[dict]
    sources: list[SourceUsage]
    budget: int
    context_tokens: int
    steps: list[str]
    ttft_s: float
    total_s: float
    prompt_tokens: int
    answer_tokens: int
    model: str
    status: str = "done"            # "stopped" when the user stopped it
    conversation_id: int | None = None
    turn_id: int | None = None
    kv: dict | None = None          # sparse backend: documents read, cache builds, tokens
    continued_from: str = ""        # the answer as first written, when it only restated
                                    # the question and was continued (Answerer.go_on)

    def to_json(self) -> dict:
        return asdict(self)


@dataclass
class Done:
    result: AnswerResult


Event = Stage | Token | Revise | Done


def source_usage(source: Source) -> SourceUsage:
    from .select.pack import part_lines

    first = source.parts[0].segment
    segs = source.segments
    lines = [s.line_start for s in segs if s.line_start] + [s.line_end for s in segs if s.line_end]
    return SourceUsage(
        label=source.label, document_id=first.document_id, document_name=first.document_name,
        segment_ids=[s.id for s in segs], page=first.page,
        line_start=min(lines) if lines else None, line_end=max(lines) if lines else None,
        tokens=source.tokens, score=round(float(source.score), 4), text=source.text,
        pages=sorted({s.page for s in segs if s.page is not None}),
        line_ranges=[list(r) for r in (part_lines(p) for p in source.parts) if r])
