"""Line windows: cutting a run of lines into chunks of bounded size.

Used three ways: for languages without a parser (the whole file), for
top-level statements between functions, and for functions too large to
embed whole. Chunks are whole lines, never start or end on a blank line,
and are cut where a reader would pause -- after a blank line or at the start
of a statement -- with sizes balanced so the last chunk is not a stub.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Collection

from ..decode import LineIndex
from ..tokens import count_tokens

WINDOW_LINES = 80        # line windows hold 40-80 lines (balanced, see split_range)
_WEIGHT = {2: 1.0, 1: 0.6, 0: 0.0}


@dataclass
class LineStats:
    """Per-line facts computed once per file: blankness and token prefix sums."""

    index: LineIndex
    blank: list[bool] = field(init=False)
    cum: list[int] = field(init=False)     # cum[i] = tokens in lines [0, i)

    def __post_init__(self) -> None:
        self.blank, self.cum = [], [0]
        for i in range(len(self.index)):
            line = self.index.line(i)
            self.blank.append(not line.strip())
            self.cum.append(self.cum[-1] + count_tokens(line))

    def __len__(self) -> int:
        return len(self.blank)

    def tokens(self, first: int, last: int) -> int:
        return self.cum[last + 1] - self.cum[first]

    def trim(self, first: int, last: int) -> tuple[int, int] | None:
        """Drop blank lines at both ends; None if nothing is left."""
        while first <= last and self.blank[first]:
            first += 1
        while last >= first and self.blank[last]:
            last -= 1
        return (first, last) if first <= last else None


def split_range(stats: LineStats, first: int, last: int, *, max_tokens: int,
                max_lines: int | None = None,
                starts: Collection[int] | None = None) -> list[tuple[int, int]]:
    """Cut lines first..last (0-based, inclusive) into trimmed chunks.

    Each chunk stays within `max_tokens` and `max_lines` unless a single line
    is larger. `starts` are statement-start lines when the caller knows them;
    a cut there after a blank line is best, at a statement start next best,
    anywhere else last. Without `starts`, unindented lines count as starts.
    """
    span = stats.trim(first, last)
    if span is None:
        return []
    first, last = span

    def fits(a: int, b: int) -> bool:
        return stats.tokens(a, b) <= max_tokens and (max_lines is None or b - a + 1 <= max_lines)

    if fits(first, last):
        return [(first, last)]

    def priority(c: int) -> int:
        after_blank = stats.blank[c - 1]
        if starts is not None:
            is_start = c in starts
        else:
            line = stats.index.line(c)
            is_start = not line[:1].isspace()
        if after_blank and (is_start or starts is None):
            return 2
        return 1 if is_start else 0

    parts = math.ceil(stats.tokens(first, last) / max_tokens)
    if max_lines:
        parts = max(parts, math.ceil((last - first + 1) / max_lines))
    target_tokens = max(stats.tokens(first, last) / parts, 1.0)
    target_lines = max((last - first + 1) / parts, 1.0)

    chunks: list[tuple[int, int]] = []
    a = first
    while a <= last:
        if fits(a, last):
            chunks.append((a, last))
            break
        best, best_score = a + 1, -math.inf
        c = a + 1
        while c <= last and fits(a, c - 1):
            if not stats.blank[c]:
                size = max(stats.tokens(a, c - 1) / target_tokens, (c - a) / target_lines)
                score = _WEIGHT[priority(c)] - abs(size - 1.0)
                if score > best_score:
                    best, best_score = c, score
            c += 1
        chunks.append((a, best - 1))
        nxt = stats.trim(best, last)
        if nxt is None:
            break
        a = nxt[0]
    return [span for chunk in chunks if (span := stats.trim(*chunk))]


def line_windows(stats: LineStats, max_tokens: int) -> list[tuple[int, int]]:
    """The fallback for languages without a parser: the whole file as windows."""
    return split_range(stats, 0, len(stats) - 1, max_tokens=max_tokens,
                       max_lines=WINDOW_LINES)


_SOFT_BREAK = re.compile(r"[,;{}\[\]()>]\s*|\s+")


def cut_chars(text: str, start: int, end: int, max_tokens: int) -> list[tuple[int, int]]:
    """Cut text[start:end] (an over-long line) into spans of about
    `max_tokens`, after punctuation or whitespace where possible."""
    total = count_tokens(text[start:end])
    parts = max(1, math.ceil(total / max_tokens))
    step = max(1, math.ceil((end - start) / parts))
    spans, pos = [], start
    while pos < end:
        stop = min(end, pos + step)
        if stop < end:
            floor = pos + step // 2
            cut = None
            for match in _SOFT_BREAK.finditer(text, floor, stop):
                cut = match.end()
            stop = cut if cut and cut > pos else stop
        span = (pos, stop)
        while span[0] < span[1] and text[span[0]].isspace():
            span = (span[0] + 1, span[1])
        while span[1] > span[0] and text[span[1] - 1].isspace():
            span = (span[0], span[1] - 1)
        if span[0] < span[1]:
            spans.append(span)
        pos = stop
    return spans
