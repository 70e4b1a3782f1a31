"""Pack: the last step. Candidates come in priority order; each is added
only if the exact text the model will see (headers included) still fits
the budget, so the budget is a hard limit, never an estimate. A hit that
does not fit may come in smaller: prose as its most relevant sentences,
code as its signature and most relevant lines."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import PurePath

from storage import SegmentRecord
from storage.records import SECTION_SEPARATOR

from .base import Candidate, Part, Selection, SelectionContext, Source
from .code import MODULE_HEADER, base_name
from .prune import WHOLE_KINDS
from .prune_code import CODE_KINDS, header_lines, line_ranges, relevant_ranges
from .tables import as_records, table_columns
from ..text import LexicalScorer, join_sentences, sentence_spans

SOURCE_SEPARATOR = "\n\n"


def _is_code(segment: SegmentRecord) -> bool:
    return segment.kind.startswith("code-")


def display_name(segment: SegmentRecord) -> str:
    """File name as shown; code keeps its parent folder (`json/decoder.py`)
    because `__init__.py` or `util.py` alone says little."""
    path = PurePath(segment.document_path) if segment.document_path else None
    if _is_code(segment) and path is not None and len(path.parts) >= 2:
        return f"{path.parent.name}/{path.name}"
    return segment.document_name or (path.name if path else f"document {segment.document_id}")


def part_lines(part: Part) -> tuple[int, int] | None:
    """1-based first and last line of a part, or None without line numbers."""
    seg = part.segment
    if seg.line_start is None:
        return None
    first = seg.line_start + seg.text.count("\n", 0, part.start)
    last = seg.line_start + seg.text.count("\n", 0, max(part.start, part.end - 1))
    return first, last


def source_header(source: Source) -> str:
    """`[3] refman.pdf, p. 12 — Section > Sub` or
    `[2] json/decoder.py:120-134 (JSONDecoder.decode)`."""
    first = source.parts[0].segment
    head = f"[{source.label}] {display_name(first)}"
    pages = sorted({p.segment.page for p in source.parts if p.segment.page is not None})
    if pages:
        head += f", p. {pages[0]}" if len(pages) == 1 else f", pp. {pages[0]}–{pages[-1]}"
    else:
        lines = [r for r in (part_lines(p) for p in source.parts) if r]
        if lines:
            lo, hi = lines[0][0], max(r[1] for r in lines)
            head += f":{lo}" if lo == hi else f":{lo}-{hi}"
    if _is_code(first):
        names = list(dict.fromkeys(base_name(s.name) for s in source.segments
                                   if s.name and s.name != MODULE_HEADER))
        if names:
            head += f" ({', '.join(names[:3])}{', …' if len(names) > 3 else ''})"
    elif first.section:
        head += f" — {SECTION_SEPARATOR.join(first.section)}"
    return head


def source_block(source: Source) -> str:
    """A source as the prompt shows it; rows pulled out of a long table
    read as records under their column names (tables.py)."""
    records = as_records(source)
    if records is not None:
        return f"{source_header(source)}\n{records}"
    return f"{source_header(source)}\n{table_columns(source)}{source.text}"


def render_sources(selection: Selection | list[Source]) -> str:
    """The sources block of the prompt, exactly as Pack counted it."""
    sources = selection.sources if isinstance(selection, Selection) else selection
    return SOURCE_SEPARATOR.join(source_block(s) for s in sources)


PACK_ORDERS = ("document", "score", "best-last")


@dataclass
class _Entry:
    segment: SegmentRecord
    ranges: list[tuple[int, int]]
    score: float
    rank: int


def _entry_tokens(e: _Entry) -> float:
    kept = sum(b - a for a, b in e.ranges)
    return e.segment.tokens * kept / max(1, len(e.segment.text))


def build_sources(entries: list[_Entry], *, order: str = "document",
                  merge: bool = True, max_merge_tokens: int = 320) -> list[Source]:
    """Entries grouped into labelled sources: adjacent segments of one
    document merge (up to `max_merge_tokens`: one huge source blurs which
    passage a citation means, and small models lose track inside it);
    documents come by their best rank, then position."""
    doc_rank: dict[int, int] = {}
    for e in entries:
        doc_rank[e.segment.document_id] = min(doc_rank.get(e.segment.document_id, e.rank), e.rank)
    ordered = sorted(entries, key=lambda e: (doc_rank[e.segment.document_id],
                                             e.segment.document_id, e.segment.ordinal))
    groups: list[list[_Entry]] = []
    for e in ordered:
        last = groups[-1][-1] if groups else None
        if (merge and last is not None and last.segment.document_id == e.segment.document_id
                and e.segment.ordinal == last.segment.ordinal + 1
                and sum(map(_entry_tokens, groups[-1])) + _entry_tokens(e) <= max_merge_tokens):
            groups[-1].append(e)
        else:
            groups.append([e])
    if order == "score":
        groups.sort(key=lambda g: min(e.rank for e in g))
    elif order == "best-last":          # the best source next to the question
        groups.sort(key=lambda g: -min(e.rank for e in g))
    elif order != "document":
        raise ValueError(f"pack order must be one of {', '.join(PACK_ORDERS)}, not {order!r}")
    return [Source(label=i, parts=[Part(e.segment, a, b) for e in group for a, b in e.ranges],
                   score=max(e.score for e in group))
            for i, group in enumerate(groups, 1)]


@dataclass
class Pack:
    name: str = "pack"
    shrink: bool = True          # a prose hit that does not fit may come in pruned
    order: str = "document"      # "document": by document, then position; "score": by
    #                              rank; "best-last": by rank, the best nearest the question
    merge: bool = True           # adjacent segments of a document become one source
    max_tries: int = 4           # failed sentence additions before a shrink gives up
    shrink_code: bool = True     # a code hit that does not fit may come in as its best lines

    def __call__(self, candidates: list[Candidate], ctx: SelectionContext) -> Selection:
        placed: list[_Entry] = []
        placed_ids: set[int] = set()
        dropped: list[int] = []
        used = 0
        scorer: LexicalScorer | None = None

        def fits(entry: _Entry) -> int | None:
            sources = build_sources(placed + [entry], order=self.order, merge=self.merge)
            tokens = ctx.count_tokens(render_sources(sources))
            return tokens if tokens <= ctx.budget else None

        for rank, cand in enumerate(candidates):
            seg = cand.segment
            if seg.id in placed_ids:
                continue
            if ctx.budget <= 0 or (cand.parent is not None and cand.parent not in placed_ids):
                dropped.append(seg.id)
                continue
            entry = _Entry(seg, list(cand.kept_ranges), cand.score, rank)
            tokens = fits(entry)
            if tokens is None and self.shrink and cand.role == "hit" and (
                    seg.kind not in WHOLE_KINDS or (self.shrink_code and seg.kind in CODE_KINDS)):
                if scorer is None:
                    scorer = LexicalScorer.fit(ctx.question, [c.segment.text for c in candidates])
                shrink = self._shrink if seg.kind not in WHOLE_KINDS else self._shrink_code
                entry, tokens = shrink(cand, rank, scorer, fits)
            if tokens is None:
                dropped.append(seg.id)
                continue
            placed.append(entry)
            placed_ids.add(seg.id)
            used = tokens
        sources = build_sources(placed, order=self.order, merge=self.merge)
        for source in sources:
            source.tokens = ctx.count_tokens(source_block(source))
        # a segment may come twice (a callee brought up to its caller and its
        # own later hit): it is dropped only if neither entry was placed
        dropped = [i for i in dict.fromkeys(dropped) if i not in placed_ids]
        return Selection(sources=sources, budget=ctx.budget, used_tokens=used if sources else 0,
                         dropped=dropped)

    def _shrink_code(self, cand: Candidate, rank: int, scorer: LexicalScorer, fits):
        """A code unit too long for what is left: its first line(s) and its
        most relevant lines, ever fewer (the signature and docstring, then
        the signature line alone; the windows within 60% of the best, then
        the best alone, with less context), the first that fits;
        (entry, tokens) or (None, None)."""
        text = cand.segment.text
        lines = line_ranges(text)
        head = header_lines(text, lines, 12)
        tried: set[tuple[tuple[int, int], ...]] = {tuple(cand.kept_ranges)}
        for first, ratio, context in ((head, 0.6, 2), (head, 1.0, 1), (1, 1.0, 1), (1, 1.0, 0)):
            ranges = relevant_ranges(text, scorer, min(first, len(lines)), ratio=ratio,
                                     context=context)
            if not ranges or tuple(ranges) in tried:
                continue
            tried.add(tuple(ranges))
            entry = _Entry(cand.segment, ranges, cand.score, rank)
            tokens = fits(entry)
            if tokens is not None:
                return entry, tokens
        return None, None

    def _shrink(self, cand: Candidate, rank: int, scorer: LexicalScorer, fits):
        """The candidate's most relevant sentences (within what is kept)
        that still fit, best first; (entry, tokens) or (None, None)."""
        text = cand.segment.text
        sentences = cand.sentences
        if sentences is None:
            sentences = [(a, b, scorer.coverage(text[a:b])) for a, b in sentence_spans(text)]
        kept = cand.kept_ranges
        inside = [s for s in sentences if any(a <= s[0] and s[1] <= b for a, b in kept)]
        chosen: list[tuple[int, int]] = []
        best: tuple[_Entry, int] | tuple[None, None] = (None, None)
        failures = 0
        for a, b, _ in sorted(inside, key=lambda s: -s[2]):
            trial = sorted(chosen + [(a, b)])
            entry = _Entry(cand.segment, join_sentences(text, trial), cand.score, rank)
            tokens = fits(entry)
            if tokens is None:
                if not chosen:
                    break               # not even the best sentence fits
                failures += 1
                if failures >= self.max_tries:
                    break
                continue
            chosen, best = trial, (entry, tokens)
        return best

