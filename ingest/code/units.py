"""Turn the units a parser found (functions, classes, ...) into segments that
cover the file.

Parsers only report where units are; everything about segment shape lives
here so every language gets the same rules:

* every non-blank line of the file lands in exactly one segment, and each
  segment is whole lines from its first to its last non-blank line (the one
  exception: a single line too long for any segment, as in minified code, is
  cut inside the line, and `doc.warnings` says so);
* a function is one segment with its decorators and the comment block right
  above it; nested functions stay inside it unless it is larger than
  `max_code_tokens`, in which case they become their own segments
  (`outer.<locals>.inner`) and the rest is cut into parts at blank lines,
  all named "outer (part i/n)";
* a class-like container gives a "code-class" header (decorators, the
  class line, docstring, fields before the first member) and its members
  become their own segments; statements between members are "code-block"s
  named after the class;
* top-level statements between units become "code-block" line windows, the
  first one (docstring, imports) named "<module>";
* a gap made only of closing brackets (`}`, `};`, `#endif`) is glued to the
  segment before it rather than kept as a useless segment of its own.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Sequence

from ..config import IngestConfig
from ..model import Segment
from ..tokens import count_tokens
from .lines import WINDOW_LINES, LineStats, cut_chars, split_range

MODULE_HEADER = "<module>"
LOCALS = "<locals>"

_TRIVIAL = re.compile(r"^\s*(?:[\]\)\};,]+|#\s*endif\b.*?)\s*(?://.*|/\*.*|#.*)?$")


@dataclass
class Unit:
    """A function, class or namespace found by a parser (0-based lines)."""

    kind: str                    # "code-function", "code-class" or "code-block"
    scope: tuple[str, ...]       # enclosing names, with LOCALS inside functions
    short: str                   # own name
    start: int                   # first line, decorators/leading comments included
    end: int                     # last line, inclusive
    container: bool = False      # members always get their own segments
    children: list["Unit"] = field(default_factory=list)
    breaks: frozenset[int] = frozenset()   # statement starts in the body
    body_start: int | None = None          # first line leading comments may come from

    @property
    def name(self) -> str:
        return ".".join((*self.scope, self.short))

    @property
    def section(self) -> list[str]:
        return [part for part in self.scope if part != LOCALS]


@dataclass
class _Piece:
    first: int
    last: int
    kind: str
    name: str | None
    section: list[str]
    group: object = None     # pieces of one unit share a group; numbered if > 1
    trivial: bool = False
    chars: tuple[int, int] | None = None   # a cut inside an over-long line


class _Layout:
    def __init__(self, stats: LineStats, config: IngestConfig,
                 comment_prefixes: Sequence[str], top_breaks: frozenset[int] | None,
                 header_name: str | None):
        self.stats = stats
        self.header_name = header_name
        self.max_tokens = config.max_code_tokens
        self.comment_prefixes = tuple(comment_prefixes)
        self.pieces: list[_Piece] = []
        self.long_lines = False
        self.top_breaks = self._starts(top_breaks)

    # -- helpers -----------------------------------------------------------
    def _is_comment(self, i: int) -> bool:
        line = self.stats.index.line(i).lstrip()
        return bool(line) and line.startswith(self.comment_prefixes)

    def _starts(self, breaks: frozenset[int] | None) -> frozenset[int] | None:
        """Statement starts moved up over the comment lines that introduce
        them, so a cut never separates a comment from its statement."""
        if not breaks or not self.comment_prefixes:
            return breaks or None
        moved = set()
        for line in breaks:
            while line > 0 and self._is_comment(line - 1):
                line -= 1
            moved.add(line)
        return frozenset(moved)

    def _is_trivial(self, first: int, last: int) -> bool:
        return all(self.stats.blank[i] or _TRIVIAL.match(self.stats.index.line(i))
                   for i in range(first, last + 1))

    def _normalise(self, children: list[Unit], lo: int, hi: int) -> list[Unit]:
        """Children inside lo..hi, in order, without shared lines."""
        out: list[Unit] = []
        for child in sorted(children, key=lambda u: (u.start, -u.end)):
            if child.start < lo or child.end > hi:
                continue
            if out and child.start <= out[-1].end:
                out[-1].end = max(out[-1].end, child.end)   # same line: keep the first
                continue
            out.append(child)
        return out

    def _extend_up(self, children: list[Unit], bound: int) -> list[int]:
        """First line of each child once the comment block above it is added."""
        firsts, lo = [], bound
        for child in children:
            first = child.start
            if self.comment_prefixes:
                while first - 1 >= lo and self._is_comment(first - 1):
                    first -= 1
            firsts.append(first)
            lo = child.end + 1
        return firsts

    def _emit(self, first: int, last: int, kind: str, name: str | None,
              section: list[str], group: object, *, max_lines: int | None = None,
              starts: frozenset[int] | None = None, gap: bool = False) -> None:
        span = self.stats.trim(first, last)
        if span is None:
            return
        if gap and self._is_trivial(*span):
            self.pieces.append(_Piece(span[0], span[1], kind, name, section, None, True))
            return
        for a, b in split_range(self.stats, span[0], span[1], max_tokens=self.max_tokens,
                                max_lines=max_lines, starts=starts):
            self.pieces.append(_Piece(a, b, kind, name, list(section), group))

    # -- layout ------------------------------------------------------------
    def module(self, units: list[Unit]) -> None:
        n = len(self.stats)
        children = self._normalise(units, 0, n - 1)
        firsts = self._extend_up(children, 0)
        cursor = 0
        for child, first in zip(children, firsts):
            self._gap_top(cursor, first - 1)
            self._unit(child, first)
            cursor = child.end + 1
        self._gap_top(cursor, n - 1)

    def _gap_top(self, first: int, last: int) -> None:
        before = len(self.pieces)
        self._emit(first, last, "code-block", None, [], None, max_lines=WINDOW_LINES,
                   starts=self.top_breaks, gap=True)
        if before == 0 and len(self.pieces) > 0 and not self.pieces[0].trivial:
            self.pieces[0].name = self.header_name

    def _unit(self, unit: Unit, first: int) -> None:
        stats = self.stats
        children = self._normalise(unit.children, unit.start + 1, unit.end)
        small = stats.tokens(first, unit.end) <= self.max_tokens
        if not children or (not unit.container and small):
            self._emit(first, unit.end, unit.kind, unit.name, unit.section, unit,
                       starts=self._starts(unit.breaks))
            return
        bound = unit.body_start if unit.body_start is not None else unit.start + 1
        firsts = self._extend_up(children, max(bound, unit.start + 1))
        path = [*unit.section, unit.short]
        if unit.container:
            # header first, then members; what lies between members is
            # class-level code, named after the class
            self._emit(first, firsts[0] - 1, unit.kind, unit.name, unit.section,
                       ("header", id(unit)), starts=self._starts(unit.breaks))
            for i, (child, child_first) in enumerate(zip(children, firsts)):
                self._unit(child, child_first)
                stop = firsts[i + 1] - 1 if i + 1 < len(children) else unit.end
                self._emit(child.end + 1, stop, "code-block", unit.name, path, None,
                           max_lines=WINDOW_LINES, starts=self._starts(unit.breaks), gap=True)
        else:
            # an oversized function: nested definitions stand alone, the
            # function's own lines become its numbered parts
            cursor = first
            for child, child_first in zip(children, firsts):
                self._emit(cursor, child_first - 1, unit.kind, unit.name, unit.section,
                           unit, starts=self._starts(unit.breaks), gap=cursor != first)
                self._unit(child, child_first)
                cursor = child.end + 1
            self._emit(cursor, unit.end, unit.kind, unit.name, unit.section, unit,
                       starts=self._starts(unit.breaks), gap=True)

    # -- finish ------------------------------------------------------------
    def _cut_long_lines(self, piece: _Piece) -> list[_Piece]:
        """Minified or generated code can hold a whole file on one line;
        such a piece is cut inside the line, the one place where segments
        are not whole lines."""
        stats = self.stats
        if stats.tokens(piece.first, piece.last) <= self.max_tokens or all(
                stats.tokens(i, i) <= self.max_tokens for i in range(piece.first, piece.last + 1)):
            return [piece]
        self.long_lines = True
        start, end = stats.index.span(piece.first, piece.last)
        out = []
        for a, b in cut_chars(stats.index.text, start, end, self.max_tokens):
            first, last = stats.index.line_of(a), stats.index.line_of(b - 1)
            out.append(_Piece(first, last, piece.kind, piece.name, list(piece.section),
                              piece.group, chars=(a, b)))
        return out

    def segments(self) -> list[Segment]:
        merged: list[_Piece] = []
        pending: int | None = None      # a trivial gap before any real piece
        for piece in self.pieces:
            if piece.trivial:
                if merged:
                    merged[-1].last = piece.last
                elif pending is None:
                    pending = piece.first
                continue
            if pending is not None:
                piece.first, pending = pending, None
            merged.append(piece)
        if pending is not None:         # nothing but brackets: keep them anyway
            merged.append(_Piece(pending, self.pieces[-1].last, "code-block",
                                 self.header_name, [], None))
        merged = [part for piece in merged for part in self._cut_long_lines(piece)]
        counts: dict[int, int] = {}
        for piece in merged:
            if piece.group is not None:
                counts[id(piece.group)] = counts.get(id(piece.group), 0) + 1
        seen: dict[int, int] = {}
        index, out = self.stats.index, []
        for piece in merged:
            name = piece.name
            total = counts.get(id(piece.group), 0) if piece.group is not None else 0
            if total > 1:
                seen[id(piece.group)] = seen.get(id(piece.group), 0) + 1
                name = f"{name} (part {seen[id(piece.group)]}/{total})"
            start, end = piece.chars or index.span(piece.first, piece.last)
            text = index.text[start:end]
            out.append(Segment(kind=piece.kind, text=text, char_start=start, char_end=end,
                               tokens=count_tokens(text), line_start=piece.first + 1,
                               line_end=piece.last + 1, section=piece.section, name=name))
        return out


def build_segments(stats: LineStats, units: list[Unit], config: IngestConfig, *,
                   comment_prefixes: Sequence[str] = (),
                   top_breaks: frozenset[int] | None = None,
                   header_name: str | None = MODULE_HEADER) -> tuple[list[Segment], bool]:
    """Covering segments for a file whose units are known, and whether an
    over-long line had to be cut inside (see `_cut_long_lines`).

    `comment_prefixes` lets the layout attach comment lines above a unit when
    the parser does not report comments (Python's `ast`); `top_breaks` are
    top-level statement starts, the preferred cuts for module-level windows.
    `header_name` names the first top-level window ("<module>"; None for
    languages parsed as plain line windows, where it means nothing).
    """
    layout = _Layout(stats, config, comment_prefixes, top_breaks, header_name)
    layout.module(units)
    segments = layout.segments()
    return segments, layout.long_lines
