"""PruneCode: a long function keeps its signature and the lines that
matter. Measured on the dev set: the gold lines of code questions sit in
functions of 300–850 tokens, and whole units of that size crowd each other
out of a ~1,000-token window; the signature still names the function, which
is what "where is X done" questions ask for. A kept run of lines starts
with the comment and the block header right above it: on the dev set the
first line of three gold spans sat just above the lines the windows kept,
a block header (`if isinstance(s, str):`, `if self.max_lines is not None:`)
or a comment (`# Purge popular elements that are not junk`)."""
from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from .base import Candidate, SelectionContext
from ..text import LexicalScorer

CODE_KINDS = frozenset({"code-function", "code-class", "code-block"})
_DOCSTRING_END = re.compile(r'("""|\'\'\')')


def line_ranges(text: str) -> list[tuple[int, int]]:
    """(start, end) of every line, the newline included."""
    out, start = [], 0
    for line in text.splitlines(keepends=True):
        out.append((start, start + len(line)))
        start += len(line)
    return out


def header_lines(text: str, lines: list[tuple[int, int]], cap: int) -> int:
    """How many leading lines form the signature (decorators, def/class
    line, continuation) and the docstring, at most `cap`."""
    count = 0
    in_doc = False
    for i, (a, b) in enumerate(lines[:cap]):
        line = text[a:b].strip()
        count = i + 1
        if in_doc:
            if _DOCSTRING_END.search(line):
                break
            continue
        if line.startswith(('"""', "'''", 'r"""', "r'''")):
            quotes = len(_DOCSTRING_END.findall(line))
            if quotes >= 2:
                break
            in_doc = True
            continue
        if line.endswith(":") and not line.startswith("@") and i > 0 or \
                (i == 0 and line.endswith(":")):
            if i + 1 < len(lines) and text[lines[i + 1][0]:lines[i + 1][1]].strip().startswith(
                    ('"""', "'''", 'r"""', "r'''")):
                continue
            break
    return count


_COMMENT = re.compile(r"^\s*(?:#|//|/\*|\*|--)")
_OPENS_BLOCK = re.compile(r"[:{]\s*(?:(?:#|//).*)?$")


@lru_cache(maxsize=64)
def documentation_lines(text: str) -> frozenset[int]:
    """0-based lines of `text` that are docstring or comment, not code
    (cached: a citation checks many spans of the same segment)."""
    lines: set[int] = set()
    inside = False
    for i, line in enumerate(text.splitlines()):
        quotes = len(_DOCSTRING_END.findall(line))
        if inside or quotes or _COMMENT.match(line):
            lines.add(i)
        if quotes % 2:
            inside = not inside
    return frozenset(lines)


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def lead_in(text: str, lines: list[tuple[int, int]], first: int, head: int,
            limit: int = 3) -> list[int]:
    """Lines just above kept line `first` that it cannot be read without:
    the comment lines right above it (they say what the code does) and the
    header of the block it sits in (`if isinstance(s, str):` above the
    lines that handle a str), up to `limit` lines, never into the head."""
    added: list[int] = []
    current = text[lines[first][0]:lines[first][1]]
    indent = _indent(current)
    i = first - 1
    while i >= head and len(added) < limit:
        line = text[lines[i][0]:lines[i][1]].rstrip("\r\n")
        if not line.strip():
            break
        if _COMMENT.match(line):
            added.append(i)
        elif _indent(line) < indent and _OPENS_BLOCK.search(line):
            added.append(i)
            indent = _indent(line)
        else:
            break
        i -= 1
    return added


def relevant_ranges(text: str, scorer: LexicalScorer, head: int, *, window: int = 3,
                    context: int = 2, ratio: float = 0.6) -> list[tuple[int, int]]:
    """The first `head` lines and every `window` of lines whose coverage of
    the question is within `ratio` of the best (with `context` lines each
    side, and the `lead_in` of each run), as joined whole-line ranges; []
    when no line after the head shares a term with the question."""
    lines = line_ranges(text)
    scores = []
    for i in range(head, len(lines)):
        j = min(len(lines), i + window)
        scores.append((i, scorer.coverage(text[lines[i][0]:lines[j - 1][1]])))
    best = max((s for _, s in scores), default=0.0)
    if best <= 0:
        return []
    keep = set(range(head))
    for i, score in scores:
        if score >= ratio * best:
            keep.update(range(max(head, i - context), min(len(lines), i + window + context)))
    for i in sorted(keep):
        if i - 1 not in keep:
            keep.update(lead_in(text, lines, i, head))
    ranges: list[tuple[int, int]] = []
    for i in sorted(keep):
        a, b = lines[i]
        if ranges and ranges[-1][1] == a:
            ranges[-1] = (ranges[-1][0], b)
        else:
            ranges.append((a, b))
    return ranges


@dataclass
class PruneCode:
    name: str = "prune-code"
    min_tokens: int = 220       # shorter units stay whole
    header_cap: int = 12        # signature + docstring lines kept at most
    window: int = 3             # lines scored together
    context: int = 2            # lines kept around a relevant window
    ratio: float = 0.6          # windows within this share of the best are kept
    limit: int = 16

    def __call__(self, candidates: list[Candidate], ctx: SelectionContext) -> list[Candidate]:
        targets = [c for c in candidates[: self.limit] if c.role == "hit"
                   and c.segment.kind in CODE_KINDS and c.kept is None
                   and ctx.count_tokens(c.segment.text) >= self.min_tokens]
        if not targets:
            return candidates
        scorer = LexicalScorer.fit(ctx.question, [c.segment.text for c in candidates])
        for cand in targets:
            text = cand.segment.text
            lines = line_ranges(text)
            head = header_lines(text, lines, self.header_cap)
            ranges = relevant_ranges(text, scorer, head, window=self.window,
                                     context=self.context, ratio=self.ratio)
            if not ranges:
                continue
            kept = sum(b - a for a, b in ranges)
            if kept > 0.8 * len(text):
                continue
            cand.kept = ranges
            cand.scores[self.name] = kept / max(len(text), 1)
        return candidates
