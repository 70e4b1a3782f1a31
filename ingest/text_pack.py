"""Blocks into segments: big blocks are cut at item, line or sentence
boundaries, small blocks of one section are merged, so segments are roughly
`min_tokens`..`max_tokens` (fenced code up to `max_code_tokens`)."""
from __future__ import annotations

import math
import re
from dataclasses import dataclass

from .code.lines import LineStats, split_range
from .config import IngestConfig
from .decode import LineIndex
from .model import Segment
from .text_blocks import LIST_ITEM, RST_LIST_ITEM, Block
from .tokens import count_tokens


_SENTENCE_END = re.compile(r"[.!?]+[\"'”’)\]]*(?=\s)|[。！？]")


@dataclass
class Piece:
    start: int           # character span in the document text
    end: int
    kind: str
    tokens: int
    heading: bool = False


def _trimmed(text: str, start: int, end: int) -> tuple[int, int] | None:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return (start, end) if start < end else None


def _split_chars(text: str, start: int, end: int, max_tokens: int) -> list[tuple[int, int]]:
    """Cut text[start:end] at sentence ends (then line breaks, then spaces)
    into balanced spans of at most `max_tokens` where possible."""
    atoms: list[tuple[int, int]] = []

    def add(a: int, b: int, level: int) -> None:
        span = _trimmed(text, a, b)
        if span is None:
            return
        a, b = span
        if count_tokens(text[a:b]) <= max_tokens or level == 3:
            atoms.append((a, b))
            return
        pattern = (_SENTENCE_END, re.compile(r"\n"), re.compile(r"\s+"))[level]
        cursor = a
        for match in pattern.finditer(text, a, b):
            add(cursor, match.end(), level + 1)
            cursor = match.end()
        add(cursor, b, level + 1)

    add(start, end, 0)
    sizes = [count_tokens(text[a:b]) for a, b in atoms]
    target = sum(sizes) / max(1, math.ceil(sum(sizes) / max_tokens))
    spans, first, size, prev_end = [], None, 0, start
    for (a, b), tokens in zip(atoms, sizes):
        if first is not None and size + tokens > max_tokens:
            spans.append((first, prev_end))
            first, size = None, 0
        if first is None:
            first = a
        size += tokens
        prev_end = b
        if size >= target:
            spans.append((first, b))
            first, size = None, 0
    if first is not None:
        spans.append((first, prev_end))
    return spans


class Packer:
    def __init__(self, index: LineIndex, stats: LineStats, config: IngestConfig):
        self.index, self.stats, self.config = index, stats, config

    def pieces(self, block: Block) -> list[Piece]:
        """A block as one piece, or cut into pieces when it is too big."""
        text = self.index.text
        start, end = self.index.span(block.first, block.last)
        tokens = self.stats.tokens(block.first, block.last)
        limit = self.config.max_code_tokens if block.kind == "code-block" else self.config.max_tokens
        if block.kind == "heading" or tokens <= limit:
            return [Piece(start, end, block.kind, tokens, block.kind == "heading")]
        spans: list[tuple[int, int]] = []
        if block.kind in ("code-block", "table", "list", "text"):
            starts = None
            if block.kind == "list":
                lines = range(block.first, block.last + 1)
                starts = frozenset(i for i in lines if LIST_ITEM.match(self.index.line(i))
                                   or RST_LIST_ITEM.match(self.index.line(i)))
            for a, b in split_range(self.stats, block.first, block.last, max_tokens=limit,
                                    starts=starts):
                spans.append(self.index.span(a, b))
        else:
            spans.append((start, end))
        out = []
        for a, b in spans:
            if block.kind != "code-block" and count_tokens(text[a:b]) > limit:
                for c, d in _split_chars(text, a, b, limit):
                    out.append(Piece(c, d, block.kind, count_tokens(text[c:d])))
            else:
                out.append(Piece(a, b, block.kind, count_tokens(text[a:b])))
        return out

    def _limit(self, pieces: list[Piece]) -> int:
        if any(p.kind == "code-block" for p in pieces):
            return self.config.max_code_tokens
        return self.config.max_tokens

    def pack(self, pieces: list[Piece]) -> list[list[Piece]]:
        """Group one section's pieces into segments."""
        groups: list[list[Piece]] = []
        current: list[Piece] = []
        for piece in pieces:
            size = sum(p.tokens for p in current)
            if current and not all(p.heading for p in current) and not (
                    size < self.config.min_tokens
                    and size + piece.tokens <= self._limit([*current, piece])):
                groups.append(current)
                current = []
            current.append(piece)
        if current:
            if (groups and sum(p.tokens for p in current) < self.config.min_tokens
                    and sum(p.tokens for p in groups[-1] + current)
                    <= self._limit(groups[-1] + current)):
                groups[-1].extend(current)
            else:
                groups.append(current)
        return groups

    def segment(self, group: list[Piece], section: list[str]) -> Segment:
        start, end = group[0].start, group[-1].end
        text = self.index.text[start:end]
        kinds = {p.kind for p in group if not p.heading}
        kind = "heading" if not kinds else kinds.pop() if len(kinds) == 1 else "text"
        return Segment(kind=kind, text=text, char_start=start, char_end=end,
                       tokens=count_tokens(text), line_start=self.index.line_of(start) + 1,
                       line_end=self.index.line_of(end - 1) + 1, section=list(section))
