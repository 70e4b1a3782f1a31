"""TrimDocstrings: for a question about what code does, a docstring is cut
to its first line. The 0.5B model answers such questions from the
documentation over the code when both are shown: asked what `ratio()`
returns for two empty sequences it copies the docstring's "0 if they have
nothing in common" past `_calculate_ratio`'s `return 1.0`. A question that
asks where something is done keeps its docstrings: they say what a
function is for, which is how the model finds the place."""
from __future__ import annotations

import re
from dataclasses import dataclass

from ..question_form import asks_where
from .base import Candidate, SelectionContext
from .prune_code import CODE_KINDS, line_ranges

_OPENS = re.compile(r'^\s*[rRbBuUfF]{0,2}("""|\'\'\')')


def docstring_tails(text: str) -> list[tuple[int, int]]:
    """Char ranges of every docstring line after its first (the closing
    quotes included), for docstrings that start a line."""
    lines = line_ranges(text)
    tails: list[tuple[int, int]] = []
    i = 0
    while i < len(lines):
        a, b = lines[i]
        match = _OPENS.match(text[a:b])
        if not match:
            i += 1
            continue
        quote = match.group(1)
        if text[a:b].count(quote) >= 2:      # opens and closes on one line
            i += 1
            continue
        first = i          # the line that says something: `"""` alone opens
        if not text[a:b][match.end():].strip() and i + 1 < len(lines):
            first = i + 1
        j = first if first > i and quote in text[lines[first][0]:lines[first][1]] else first + 1
        while j < len(lines) and quote not in text[lines[j][0]:lines[j][1]]:
            j += 1
        end = lines[min(j, len(lines) - 1)][1]
        if end > lines[first][1]:
            tails.append((lines[first][1], end))
        i = j + 1
    return tails


def without(ranges: list[tuple[int, int]], cuts: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """`ranges` less every cut, as sorted non-empty ranges."""
    out: list[tuple[int, int]] = []
    for a, b in ranges:
        pos = a
        for c, d in cuts:
            if d <= pos or c >= b:
                continue
            if c > pos:
                out.append((pos, c))
            pos = max(pos, d)
        if pos < b:
            out.append((pos, b))
    return out


@dataclass
class TrimDocstrings:
    name: str = "trim-docstrings"

    def __call__(self, candidates: list[Candidate], ctx: SelectionContext) -> list[Candidate]:
        if asks_where(ctx.question):
            return candidates
        for cand in candidates:
            if cand.segment.kind not in CODE_KINDS:
                continue
            cuts = docstring_tails(cand.segment.text)
            if not cuts:
                continue
            kept = without(cand.kept_ranges, cuts)
            if kept and kept != cand.kept_ranges:
                cand.kept = kept
        return candidates
