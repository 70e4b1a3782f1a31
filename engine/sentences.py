"""Answer sentences with their [n] markers, and line spans of tables and code.

Citations point at exact characters, so every splitter here returns
(start, end) ranges into the original text rather than new strings.
"""
from __future__ import annotations

import re

from .text import sentence_spans

_MARKERS = re.compile(r"\s*(?:\[\d+(?:\s*[,;-]\s*\d+)*\])+")


def _strip(text: str, start: int, end: int) -> tuple[int, int]:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end


def line_spans(text: str, window: int = 1) -> list[tuple[int, int]]:
    """Non-blank lines (tables, code), or windows of `window` consecutive ones."""
    lines = [(m.start(), m.end()) for m in re.finditer(r"[^\n]*", text)
             if m.group().strip()]
    if window <= 1:
        return lines
    return [(lines[i][0], lines[min(i + window, len(lines)) - 1][1])
            for i in range(0, max(1, len(lines) - window + 1))] if lines else []


def answer_sentences(answer: str) -> list[tuple[int, int]]:
    """Sentences of a generated answer, each keeping the [n] markers that
    follow its full stop ("... is 5. [2] Next ..." -> "... is 5. [2]")."""
    spans: list[tuple[int, int]] = []
    for start, end in sentence_spans(answer):
        lead = _MARKERS.match(answer, start)
        if lead and spans:                      # "[1] Next ..." : [1] closes the sentence before
            spans[-1] = (spans[-1][0], lead.end())
            start = lead.end()
        start, end = _strip(answer, start, end)
        if start < end:
            spans.append((start, end))
        elif spans:
            spans[-1] = (spans[-1][0], max(spans[-1][1], end))
    return spans


def cited_labels(sentence: str) -> list[int]:
    """The source numbers a sentence cites: [2], [1, 3], [2-4], [1][3]."""
    labels: list[int] = []
    for group in re.findall(r"\[(\d+(?:\s*[,;-]\s*\d+)*)\]", sentence):
        for piece in re.split(r"\s*[,;]\s*", group):
            if "-" in piece:
                lo, hi = (int(x) for x in piece.split("-")[:2])
                labels.extend(range(lo, min(hi, lo + 20) + 1))
            else:
                labels.append(int(piece))
    return list(dict.fromkeys(labels))


def strip_markers(sentence: str) -> str:
    return _MARKERS.sub("", sentence).strip()
