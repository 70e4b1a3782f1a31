"""Glyph boxes of exactly the cited words, from pymupdf's word positions.

Stored line boxes give each printed line's box and its span in the page
text. To highlight only the cited words we read the words MuPDF finds inside
that line box and pair them, in order, with the line's whitespace-separated
words in our page text; when the two disagree (ligatures, odd spacing), the
line's box is cut in proportion to characters instead.
"""
from __future__ import annotations

import re
from collections import OrderedDict
from pathlib import Path

import pymupdf

from .open import quiet_mupdf

Box = list[float]
_TOKEN = re.compile(r"\S+")


def _proportional(x0: float, x1: float, length: int, lo: int, hi: int) -> tuple[float, float]:
    width = x1 - x0
    return x0 + width * lo / max(1, length), x0 + width * hi / max(1, length)


def line_word_boxes(words: list[tuple], line_box: tuple[float, float, float, float],
                    line_text: str, lo: int, hi: int) -> list[Box]:
    """Boxes of the characters [lo, hi) of one printed line.

    `words` are pymupdf word tuples on the page; those whose centre lies in
    `line_box` are the line's words, left to right.
    """
    x0, y0, x1, y1 = line_box
    inside = sorted((w for w in words
                     if x0 - 1 <= (w[0] + w[2]) / 2 <= x1 + 1 and y0 - 1 <= (w[1] + w[3]) / 2 <= y1 + 1),
                    key=lambda w: w[0])
    tokens = list(_TOKEN.finditer(line_text))
    if inside and len(inside) == len(tokens):
        chosen = [w for w, t in zip(inside, tokens) if t.start() < hi and t.end() > lo]
        if chosen:
            return [[round(min(w[0] for w in chosen), 2), round(min(w[1] for w in chosen), 2),
                     round(max(w[2] for w in chosen), 2), round(max(w[3] for w in chosen), 2)]]
    a, b = _proportional(x0, x1, len(line_text), lo, hi)
    return [[round(a, 2), round(y0, 2), round(b, 2), round(y1, 2)]]


class WordBoxes:
    """Refines citation boxes by reading word positions from the PDF.

    Keeps a few documents open, because one answer cites the same file
    several times. Any failure (file moved, encrypted, damaged) returns None
    so the caller keeps its interpolated boxes.
    """

    def __init__(self, keep_open: int = 4):
        self._docs: OrderedDict[str, pymupdf.Document] = OrderedDict()
        self._keep = keep_open
        quiet_mupdf()

    def _open(self, path: str) -> pymupdf.Document | None:
        doc = self._docs.get(path)
        if doc is None:
            if not Path(path).is_file():
                return None
            doc = pymupdf.open(path)
            if doc.needs_pass:
                doc.close()
                return None
            self._docs[path] = doc
            while len(self._docs) > self._keep:
                self._docs.popitem(last=False)[1].close()
        self._docs.move_to_end(path)
        return doc

    def __call__(self, segment, start: int, end: int) -> list[Box] | None:
        """Boxes for page-text span [start, end) of `segment` (a SegmentRecord)."""
        if segment.page is None or not segment.boxes:
            return None
        try:
            doc = self._open(segment.document_path)
            if doc is None or segment.page > doc.page_count:
                return None
            words = doc[segment.page - 1].get_text("words")
        except Exception:   # a damaged file: keep the interpolated boxes
            return None
        boxes: list[Box] = []
        for line in segment.boxes:
            lo, hi = max(start, line.start), min(end, line.end)
            if lo >= hi:
                continue
            rel = line.start - segment.char_start
            line_text = segment.text[rel:rel + (line.end - line.start)]
            boxes.extend(line_word_boxes(words, (line.x0, line.y0, line.x1, line.y1),
                                         line_text, lo - line.start, hi - line.start))
        return boxes or None

    def close(self) -> None:
        for doc in self._docs.values():
            doc.close()
        self._docs.clear()
