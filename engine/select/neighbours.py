"""NeighbourExpand: PDF paragraphs are cut at page and column breaks, so a
hit may stop mid-sentence or start with the tail of one; the neighbouring
segment's continuation (or beginning) makes it readable again."""
from __future__ import annotations

from dataclasses import dataclass

from storage import SegmentRecord

from .base import Candidate, SelectionContext
from ..text import ends_thought, sentence_spans, starts_continuation

PROSE = frozenset({"paragraph", "list", "text"})


def _reaches_end(cand: Candidate) -> bool:
    text = cand.segment.text
    return cand.kept_ranges[-1][1] >= len(text.rstrip())


def _reaches_start(cand: Candidate) -> bool:
    text = cand.segment.text
    return cand.kept_ranges[0][0] <= len(text) - len(text.lstrip())


@dataclass
class NeighbourExpand:
    name: str = "neighbours"
    whole: bool = False          # keep the whole neighbour, not just the continuation
    max_tokens: int = 160        # a neighbour longer than this gives only its continuation
    table_tokens: int = 400      # a following table is added (whole) only up to this size

    def __call__(self, candidates: list[Candidate], ctx: SelectionContext) -> list[Candidate]:
        if ctx.fetch_neighbours is None:
            return candidates
        present = {c.segment.id for c in candidates}
        out: list[Candidate] = []
        for cand in candidates:
            out.append(cand)
            seg = cand.segment
            if cand.role != "hit" or seg.kind not in PROSE:
                continue
            around = [s for s in ctx.fetch_neighbours(seg, 1, 1)
                      if s.document_id == seg.document_id and s.id != seg.id]
            prev = max((s for s in around if s.ordinal < seg.ordinal), key=lambda s: s.ordinal, default=None)
            nxt = min((s for s in around if s.ordinal > seg.ordinal), key=lambda s: s.ordinal, default=None)
            if (prev is not None and prev.id not in present and prev.kind in PROSE
                    and _reaches_start(cand) and starts_continuation(seg.text)):
                out.append(self._neighbour(prev, cand, ctx, tail=True))
                present.add(prev.id)
            # list items rarely end with a full stop: for them only a
            # lower-case start of the next segment says the item goes on
            unfinished = seg.kind != "list" and not ends_thought(seg.text)
            if (nxt is not None and nxt.id not in present and _reaches_end(cand)
                    and (unfinished or starts_continuation(nxt.text))):
                added = self._following(nxt, cand, ctx)
                if added is not None:
                    out.append(added)
                    present.add(nxt.id)
        return out

    def _following(self, nxt: SegmentRecord, cand: Candidate,
                   ctx: SelectionContext) -> Candidate | None:
        if nxt.kind == "table":
            if ctx.count_tokens(nxt.text) > self.table_tokens:
                return None
            return Candidate(nxt, score=cand.score, role="neighbour", parent=cand.segment.id)
        if nxt.kind not in PROSE:
            return None
        return self._neighbour(nxt, cand, ctx, tail=False)

    def _neighbour(self, seg: SegmentRecord, cand: Candidate, ctx: SelectionContext,
                   tail: bool) -> Candidate:
        kept = None
        if not self.whole and ctx.count_tokens(seg.text) > self.max_tokens:
            spans = sentence_spans(seg.text)
            if not spans:
                return Candidate(seg, score=cand.score, role="neighbour", parent=cand.segment.id)
            if tail:
                kept = [spans[-1]]
            else:   # the sentence that finishes the cut one, however many spans it takes
                end = next((b for a, b in spans if ends_thought(seg.text[a:b])), spans[-1][1])
                kept = [(spans[0][0], end)]
            if kept[0] == (0, len(seg.text)):
                kept = None
        return Candidate(seg, score=cand.score, kept=kept, role="neighbour", parent=cand.segment.id)
