"""Visual text lines from one page's MuPDF text dictionary.

MuPDF sometimes splits one printed line into several "lines" (a section
number and its title, a word after a wide justified gap, a code comment),
which would confuse reading order and paragraph building. We merge such
fragments when MuPDF put them in the same block on the same baseline, and
reduce each line to the few facts later stages need (box, text, dominant
font size, bold, monospace), so no later stage touches spans again.
"""
from __future__ import annotations

import re
from typing import Any

import pymupdf

# Expand ligatures and normalise whitespace (no PRESERVE_* flags); drop
# characters outside the mediabox; no images (they would be decoded).
TEXT_FLAGS = pymupdf.TEXT_MEDIABOX_CLIP

_MONO_NAME = re.compile(
    r"mono|courier|consol|inconsolata|code|typewriter|cmtt|sftt|lmtt|menlo|"
    r"monaco|fixed|lucidasans-?typewriter|dejavusansm", re.I)
_BOLD_NAME = re.compile(r"bold|black|heavy|semibold|demi|-medi|\.b$|-b$", re.I)

_font_cache: dict[tuple[str, int], tuple[bool, bool]] = {}


def _font_style(font: str, flags: int) -> tuple[bool, bool]:
    """(bold, monospace) for a font; cached because fonts repeat on every line."""
    key = (font, flags)
    style = _font_cache.get(key)
    if style is None:
        bold = bool(flags & 16) or bool(_BOLD_NAME.search(font))
        mono = bool(flags & 8) or bool(_MONO_NAME.search(font))
        style = _font_cache[key] = (bold, mono)
    return style


Cell = tuple[float, float, str]
Box = tuple[float, float, float, float]
CELL_GAP = 1.0   # gap between fragments, in font sizes, that separates cells


class Line:
    """One printed line: its box (upright frame and display) and the style
    facts later stages need."""

    __slots__ = ("x0", "y0", "x1", "y1", "text", "size", "bold", "mono",
                 "block", "chars", "cells", "box")

    def __init__(self, x0: float, y0: float, x1: float, y1: float, text: str,
                 size: float, bold: bool, mono: bool, block: int, chars: int,
                 cells: list[Cell] | None = None, box: Box | None = None):
        # x0..y1: the box in the page's upright frame (text runs left to
        # right), which all layout logic uses; `box`: the same box in display
        # coordinates, which is what we report.
        self.x0, self.y0, self.x1, self.y1 = x0, y0, x1, y1
        self.box = box if box is not None else (x0, y0, x1, y1)
        self.text = text
        self.size = size
        self.bold = bold
        self.mono = mono
        self.block = block
        self.chars = chars
        # fragments separated by wide gaps (x0, x1, text): table cell candidates
        self.cells = cells

    @property
    def height(self) -> float:
        return self.y1 - self.y0

    def __repr__(self) -> str:  # pragma: no cover - debugging aid
        return (f"Line({self.x0:.0f},{self.y0:.0f},{self.x1:.0f},{self.y1:.0f} "
                f"{self.size:.1f}{' b' if self.bold else ''}"
                f"{' m' if self.mono else ''} {self.text[:40]!r})")


def _summarise(spans: list[dict[str, Any]]) -> tuple[str, float, bool, bool, int] | None:
    """Join span texts; dominant size and bold/mono by character share."""
    if len(spans) == 1:
        s = spans[0]
        text = s["text"].strip()
        if not text:
            return None
        bold, mono = _font_style(s["font"], s["flags"])
        return text, s["size"], bold, mono, len(text)
    parts = []
    total = bold_n = mono_n = 0
    by_size: dict[float, int] = {}
    for s in spans:
        t = s["text"]
        parts.append(t)
        n = len(t) - t.count(" ")
        if n <= 0:
            continue
        total += n
        bold, mono = _font_style(s["font"], s["flags"])
        if bold:
            bold_n += n
        if mono:
            mono_n += n
        size = round(s["size"], 1)
        by_size[size] = by_size.get(size, 0) + n
    text = "".join(parts).strip()
    if not text or not total:
        return None
    size = max(by_size.items(), key=lambda kv: kv[1])[0]
    return text, size, bold_n >= 0.95 * total, mono_n >= 0.8 * total, total


def _same_row(a: Line, b: Line) -> bool:
    overlap = min(a.y1, b.y1) - max(a.y0, b.y0)
    return overlap > 0.5 * min(a.y1 - a.y0, b.y1 - b.y0)


def _join(a: Line, b: Line) -> Line:
    gap = b.x0 - a.x1
    sep = " " if gap > 0.1 * max(a.size, 1.0) else ""
    n = a.chars + b.chars
    cells = a.cells or [(a.x0, a.x1, a.text)]
    if gap >= CELL_GAP * max(a.size, b.size, 1.0):
        cells.append((b.x0, b.x1, b.text))
    else:
        x0, _, text = cells[-1]
        cells[-1] = (x0, b.x1, text + sep + b.text)
    box = (min(a.box[0], b.box[0]), min(a.box[1], b.box[1]),
           max(a.box[2], b.box[2]), max(a.box[3], b.box[3]))
    return Line(min(a.x0, b.x0), min(a.y0, b.y0), max(a.x1, b.x1), max(a.y1, b.y1),
                a.text + sep + b.text,
                a.size if a.chars >= b.chars else b.size,
                a.bold and b.bold, a.mono and b.mono, a.block, n, cells, box)


def _merge_fragments(frags: list[Line], page_width: float) -> list[Line]:
    """Merge consecutive same-baseline fragments of one MuPDF block.

    Narrow gaps always merge. Wide gaps (tables, definition lists, leader
    dots) merge too, unless the block looks like two text columns
    interleaved row by row, where merging would glue the columns together.
    """
    if len(frags) < 2:
        return frags
    wide_rows = 0
    for a, b in zip(frags, frags[1:]):
        if (_same_row(a, b) and b.x0 >= a.x1 - 1
                and a.x1 - a.x0 > 0.3 * page_width and b.x1 - b.x0 > 0.3 * page_width):
            wide_rows += 1
    interleaved = wide_rows >= 2
    out = [frags[0]]
    for f in frags[1:]:
        prev = out[-1]
        if _same_row(prev, f) and f.x0 >= prev.x1 - 0.5 * prev.size:
            gap = f.x0 - prev.x1
            if not interleaved or gap <= 1.5 * max(prev.size, f.size):
                out[-1] = _join(prev, f)
                continue
        out.append(f)
    return out


class Frame:
    """The page turned so that its main text runs left to right.

    Reading order, rows and indents only make sense in that frame. Display
    coordinates are those of `page.rect` (rotation applied); a page whose
    text runs sideways even when displayed (a landscape table) is turned
    once more.
    """

    def __init__(self, width: float, height: float, direction: tuple[int, int] = (1, 0)):
        self.direction = direction
        self.display_w, self.display_h = width, height
        if direction in ((0, 1), (0, -1)):
            self.width, self.height = height, width
        else:
            self.width, self.height = width, height

    @property
    def upright(self) -> bool:
        return self.direction == (1, 0)

    def up(self, box: Box) -> Box:
        """Display box -> upright-frame box."""
        x0, y0, x1, y1 = box
        d = self.direction
        if d == (1, 0):
            return box
        w, h = self.display_w, self.display_h
        if d == (0, 1):      # text runs down: turn the page counter-clockwise
            return (y0, w - x1, y1, w - x0)
        if d == (0, -1):     # text runs up: turn clockwise
            return (h - y1, x0, h - y0, x1)
        return (w - x1, h - y1, w - x0, h - y0)  # upside down


def _direction(dx: float, dy: float) -> tuple[int, int]:
    if abs(dx) >= abs(dy):
        return (1, 0) if dx >= 0 else (-1, 0)
    return (0, 1) if dy > 0 else (0, -1)


def extract_lines(raw: dict[str, Any], width: float, height: float,
                  matrix: pymupdf.Matrix | None = None,
                  plain: bool = False) -> tuple[list[Line], Frame]:
    """Lines of a page in MuPDF order and the page's upright frame.

    Boxes are clipped to the page (display coordinates, `page.rect`); lines
    whose centre lies off the page are dropped. `plain` ignores font styles
    (OCR text comes in one invisible font that says nothing about bold or
    monospace).
    """
    frags_by_block: list[tuple[int, list[tuple[Box, str, float, bool, bool, int]]]] = []
    votes: dict[tuple[int, int], int] = {}
    for bno, block in enumerate(raw.get("blocks", ())):
        if block.get("type", 0) != 0:
            continue
        frags = []
        for ln in block["lines"]:
            summary = _summarise(ln["spans"])
            if summary is None:
                continue
            text, size, bold, mono, chars = summary
            if plain:
                bold = mono = False
            x0, y0, x1, y1 = ln["bbox"]
            dx, dy = ln["dir"]
            if matrix is not None:
                r = pymupdf.Rect(x0, y0, x1, y1) * matrix
                x0, y0, x1, y1 = r.x0, r.y0, r.x1, r.y1
                dx, dy = dx * matrix.a + dy * matrix.c, dx * matrix.b + dy * matrix.d
            cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
            if not (0 <= cx <= width and 0 <= cy <= height):
                continue
            x0, y0 = max(x0, 0.0), max(y0, 0.0)
            x1, y1 = min(x1, width), min(y1, height)
            direction = _direction(dx, dy)
            votes[direction] = votes.get(direction, 0) + chars
            frags.append(((x0, y0, x1, y1), text, size, bold, mono, chars))
        if frags:
            frags_by_block.append((bno, frags))
    main = max(votes.items(), key=lambda kv: kv[1])[0] if votes else (1, 0)
    frame = Frame(width, height, main)
    lines: list[Line] = []
    for bno, frags in frags_by_block:
        made = []
        for box, text, size, bold, mono, chars in frags:
            x0, y0, x1, y1 = frame.up(box)
            if y1 - y0 < 0.5:  # degenerate box (e.g. zero-height glyphs)
                cy = (y0 + y1) / 2
                y0, y1 = cy - 0.5 * size, cy + 0.5 * size
            made.append(Line(x0, y0, x1, y1, text, size, bold, mono, bno, chars, box=box))
        lines.extend(_merge_fragments(made, frame.width))
    return lines, frame
