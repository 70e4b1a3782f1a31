"""Chunk one page's blocks into retrievable segments.

Segments are spans of the page text, sized min_tokens..max_tokens, that
never cross a page or an outline heading. A heading opens a new segment and
is included at its start (consecutive headings travel together, so a
heading is a segment of its own only when nothing follows it on the page);
only a segment still below the minimum runs on across a minor typographic
heading (`_Packer.runs_on`). Small paragraphs and list items are merged up
to the minimum; a segment that would overflow is closed at the last
paragraph boundary that leaves it big enough, and only a paragraph too big
to fit is split, at sentence boundaries (code at line breaks; words as a
last resort). Tables are segments of their own, split by rows when large;
a short lead-in such as a caption or heading is kept with the table.
"""
from __future__ import annotations

import re
from bisect import bisect_left
from collections import deque
from dataclasses import dataclass
from typing import Sequence

from ..model import LineBox
from ..tokens import count_tokens
from .blocks import Block
from .headings import HeadingEvent
from .pagetext import LineRec

_SENTENCE_GAP = re.compile(r"(?<=[.!?:;])[\"'\u201d\u2019)\]]*\s+")
_LINE_GAP = re.compile(r"\n\s*")  # the next line's indent stays outside
_WORD_GAP = re.compile(r"\s+")


@dataclass(slots=True)
class Atom:
    start: int
    end: int
    tokens: int
    block: int
    first: bool          # starts its block: a preferred place to cut
    kind: str            # the block's kind


@dataclass(slots=True)
class Chunk:
    """A segment before section paths are known. `parts` holds, per heading
    group the segment spans, the headings opening it: one part for most
    segments, [] when the segment starts under the section in force."""

    kind: str
    start: int
    end: int
    parts: list[list[HeadingEvent]]


def _cuts(text: str, a: Atom, pattern: re.Pattern[str]) -> list[tuple[int, int]]:
    """(end of head, start of rest) positions where `a` may be cut."""
    return [(m.start(), m.end()) for m in pattern.finditer(text, a.start, a.end)
            if a.start < m.start() and m.end() < a.end]


def _split(text: str, a: Atom, room: int) -> tuple[Atom, Atom] | None:
    """Cut `a` so the head has at most `room` tokens; None if nothing fits."""
    patterns = [_LINE_GAP, _WORD_GAP] if a.kind == "code" else [_SENTENCE_GAP, _WORD_GAP]
    for pattern in patterns:
        best = None
        total = 0
        last = a.start
        for head_end, rest_start in _cuts(text, a, pattern):
            total += count_tokens(text[last:head_end])
            last = head_end
            if total > room:
                break
            best = (head_end, rest_start, total)
        if best is not None:
            head_end, rest_start, tokens = best
            return (Atom(a.start, head_end, tokens, a.block, a.first, a.kind),
                    Atom(rest_start, a.end, max(a.tokens - tokens, 0), a.block, False, a.kind))
    return None


def _table_atoms(text: str, start: int, end: int, block: int, max_tokens: int) -> list[Atom]:
    """One atom per table, or row groups of at most max_tokens for big ones."""
    tokens = count_tokens(text[start:end])
    if tokens <= max_tokens:
        return [Atom(start, end, tokens, block, True, "table")]
    atoms: list[Atom] = []
    lines = text[start:end].split("\n")
    pos = start
    cur_start, cur_tokens, cur_end = start, 0, start
    for k, line in enumerate(lines):
        n = count_tokens(line)
        if cur_tokens and cur_tokens + n > max_tokens and k > 1:
            atoms.append(Atom(cur_start, cur_end, cur_tokens, block, not atoms, "table"))
            cur_start, cur_tokens = pos, 0
        cur_tokens += n
        cur_end = pos + len(line)
        pos = cur_end + 1
    atoms.append(Atom(cur_start, cur_end, cur_tokens, block, not atoms, "table"))
    return atoms


def _groups(blocks: Sequence[Block]) -> list[list[int]]:
    """Block indices per heading group; consecutive headings share a group."""
    groups: list[list[int]] = []
    cur: list[int] = []
    for i, b in enumerate(blocks):
        if b.kind == "furniture":
            continue
        if b.kind == "heading" and cur and any(blocks[j].kind != "heading" for j in cur):
            groups.append(cur)
            cur = []
        cur.append(i)
    if cur:
        groups.append(cur)
    return groups


def _last_part(atoms: Sequence[Atom]) -> int:
    """Where the last sub-section of a segment begins: the index of its
    heading(s), or 0 if the segment has a single part."""
    for k in range(len(atoms) - 1, 0, -1):
        if atoms[k].kind == "heading" and atoms[k - 1].kind != "heading":
            return k
    return 0


class _Packer:
    def __init__(self, text: str, blocks: Sequence[Block], min_t: int, max_t: int,
                 level: int | None):
        self.text, self.blocks = text, blocks
        self.min_t, self.max_t = min_t, max_t
        self.out: list[Chunk] = []
        self.cur: list[Atom] = []      # the open segment
        # level of the innermost typographic heading in force: 0 right
        # after an outline heading, None while unknown
        self.level = level

    def runs_on(self, events: list[HeadingEvent], has_body: bool) -> bool:
        """Does the open segment continue across the headings `events` (a
        heading group, with a body after them on this page if `has_body`)?

        A manual entry is an outline heading followed by bold sub-headings
        ("Usage", "Arguments", "See Also"), many over a line or two of text;
        cut at each of them they make tiny segments that retrieve poorly
        and cost an embedding each. So a segment still below min_tokens
        runs on across a *minor* heading: typographic, at the same or a
        deeper level than the innermost typographic heading in force (a
        sibling or child sub-section). An outline heading, a shallower
        heading, one whose place is unknown (no heading above it on the
        page) or one that ends the page still starts a segment. The section
        of a segment spanning sub-sections is the path they share.
        """
        if not (events and has_body and self.cur) or self.level is None:
            return False
        if sum(a.tokens for a in self.cur) >= self.min_t:
            return False
        return all(source == "font" and level >= self.level for source, level, _ in events)

    def group(self, atoms: list[Atom]) -> None:
        """Pack one heading group: its headings (if any), then its body."""
        events = [ev for a in atoms if a.kind == "heading" and a.first
                  and (ev := self.blocks[a.block].heading) is not None]
        if not self.runs_on(events, any(a.kind != "heading" for a in atoms)):
            self.flush()
        for source, level, _ in events:
            self.level = 0 if source == "toc" else level
        self.pack(atoms)

    def flush(self) -> None:
        self.emit(self.cur)
        self.cur = []

    def emit(self, atoms: list[Atom]) -> None:
        if not atoms:
            return
        body = [a for a in atoms if a.kind != "heading"]
        if any(a.kind == "table" for a in atoms):
            kind = "table"
        elif not body:
            kind = "heading"
        else:
            listed = sum(a.tokens for a in body if a.kind == "list")
            kind = "list" if listed * 2 >= sum(a.tokens for a in body) and listed else "paragraph"
        parts: list[list[HeadingEvent]] = []
        for k, a in enumerate(atoms):
            heading = a.kind == "heading"
            if k == 0 or (heading and atoms[k - 1].kind != "heading"):
                parts.append([])
            ev = self.blocks[a.block].heading
            if heading and a.first and ev is not None:
                parts[-1].append(ev)
        self.out.append(Chunk(kind, atoms[0].start, atoms[-1].end, parts))

    def _cut_index(self, cur: list[Atom]) -> int:
        """Last block boundary that leaves >= min tokens (with a body) before
        it and does not part a heading from what follows it."""
        total = sum(a.tokens for a in cur)
        for k in range(len(cur) - 1, 0, -1):
            total -= cur[k].tokens
            if total < self.min_t:
                break
            if cur[k].first and cur[k - 1].kind != "heading" and any(
                    a.kind != "heading" for a in cur[:k]):
                return k
        return len(cur)

    def pack(self, atoms: list[Atom]) -> None:
        """Add atoms to the open segment, emitting segments as they fill."""
        queue = deque(atoms)
        cur = self.cur
        t = sum(x.tokens for x in cur)
        min_t, max_t = self.min_t, self.max_t
        while queue:
            a = queue.popleft()
            has_body = any(x.kind != "heading" for x in cur)
            if a.kind == "table":
                if cur and has_body and (t >= min_t or t + a.tokens > max_t):
                    # the table still keeps its own sub-section's short lead-in
                    k = _last_part(cur)
                    lead = sum(x.tokens for x in cur[k:])
                    if not (k and lead < min_t and lead + a.tokens <= max_t):
                        k = len(cur)
                    self.emit(cur[:k])
                    cur = cur[k:]
                self.emit(cur + [a])
                cur, t = [], 0
                continue
            if t + a.tokens <= max_t:
                cur.append(a)
                t += a.tokens
                continue
            if has_body and t >= min_t:
                k = self._cut_index(cur)
                self.emit(cur[:k])
                cur = cur[k:]
                t = sum(x.tokens for x in cur)
                queue.appendleft(a)
                continue
            parts = _split(self.text, a, max_t - t)
            if parts is None and has_body:
                self.emit(cur)
                cur, t = [], 0
                queue.appendleft(a)
                continue
            if parts is None:
                parts = _split(self.text, a, max_t)
            if parts is None:  # one unbreakable word: let it stand alone
                self.emit(cur + [a])
                cur, t = [], 0
                continue
            head, rest = parts
            self.emit(cur + [head])
            cur, t = [], 0
            queue.appendleft(rest)
        self.cur = cur


def chunk_page(blocks: Sequence[Block], spans: Sequence[tuple[int, int]], text: str,
               min_tokens: int, max_tokens: int, under_outline: bool = False) -> list[Chunk]:
    """Segments of one page; `under_outline`: the page starts right under an
    outline entry (one not found on the page), with no sub-heading yet."""
    packer = _Packer(text, blocks, min_tokens, max_tokens, 0 if under_outline else None)
    for group in _groups(blocks):
        atoms: list[Atom] = []
        for i in group:
            start, end = spans[i]
            if end <= start:
                continue
            kind = blocks[i].kind
            if kind == "table":
                atoms.extend(_table_atoms(text, start, end, i, max_tokens))
            else:
                atoms.append(Atom(start, end, count_tokens(text[start:end]), i, True, kind))
        packer.group(atoms)
    packer.flush()
    return packer.out


def boxes_for(recs: Sequence[LineRec], starts: Sequence[int], start: int,
              end: int) -> list[LineBox]:
    """LineBoxes of the printed lines inside [start, end); a horizontal line
    cut by the span keeps the proportional part of its box."""
    out: list[LineBox] = []
    k = max(bisect_left(starts, start) - 1, 0)
    while k < len(recs):
        a, b, x0, y0, x1, y1 = recs[k]
        k += 1
        if a >= end:
            break
        if b <= start:
            continue
        s, e = max(a, start), min(b, end)
        if e <= s:
            continue
        if (s, e) != (a, b) and x1 - x0 > y1 - y0:  # part of a horizontal line
            w = x1 - x0
            x0, x1 = x0 + w * (s - a) / (b - a), x0 + w * (e - a) / (b - a)
        out.append(LineBox(x0, y0, x1, y1, s, e))
    return out
