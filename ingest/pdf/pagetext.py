"""Build the page text that segment spans index into.

We construct the text ourselves, in our reading order: blocks separated
by a blank line, prose lines joined with a space (words hyphenated across
a line break are rejoined), code lines kept on their own lines with their
indentation, tables as Markdown. Every printed line gets a record of its
box and its character span, which is what segment boxes are cut from.
"""
from __future__ import annotations

from statistics import median
from typing import Sequence

from .blocks import Block
from .lines import Line

# (start, end, x0, y0, x1, y1): a printed line's span in the page text
LineRec = tuple[int, int, float, float, float, float]


def _same_row(prev: Line, line: Line) -> bool:
    overlap = min(prev.y1, line.y1) - max(prev.y0, line.y0)
    return overlap > 0.5 * min(prev.height, line.height) and line.x0 >= prev.x1 - 1


def _rejoin_hyphen(prev_text: str, text: str) -> bool:
    """'docu-' + 'ment' -> 'document', but keep 'state-' + 'of-the-art'."""
    if len(prev_text) < 2 or prev_text[-1] != "-" or not prev_text[-2].isalpha():
        return False
    if not text[:1].islower():
        return False
    first_word = text.split(" ", 1)[0]
    return "-" not in first_word


def _prose(lines: Sequence[Line]) -> tuple[str, list[list[int]]]:
    parts: list[str] = []
    spans: list[list[int]] = []
    pos = 0
    prev: Line | None = None
    for ln in lines:
        t = ln.text
        if prev is not None:
            if not _same_row(prev, ln) and _rejoin_hyphen(parts[-1], t):
                parts[-1] = parts[-1][:-1]
                pos -= 1
                spans[-1][1] -= 1
            else:
                parts.append(" ")
                pos += 1
        spans.append([pos, pos + len(t)])
        parts.append(t)
        pos += len(t)
        prev = ln
    return "".join(parts), spans


def _code(lines: Sequence[Line]) -> tuple[str, list[list[int]], int]:
    """Code lines with indentation from x offsets; returns the offset of the
    first character so the block span does not start with spaces."""
    base = min(ln.x0 for ln in lines)
    widths = [(ln.x1 - ln.x0) / len(ln.text) for ln in lines if len(ln.text) >= 4]
    cw = median(widths) if widths else max(lines[0].size * 0.5, 1.0)
    parts: list[str] = []
    spans: list[list[int]] = []
    pos = 0
    prev: Line | None = None
    for ln in lines:
        if prev is not None:
            sep = " " if _same_row(prev, ln) else "\n"
            parts.append(sep)
            pos += 1
            if sep == " ":
                spans.append([pos, pos + len(ln.text)])
                parts.append(ln.text)
                pos += len(ln.text)
                prev = ln
                continue
        indent = min(int(round((ln.x0 - base) / cw)), 40) if cw > 0 else 0
        if indent > 0:
            parts.append(" " * indent)
            pos += indent
        spans.append([pos, pos + len(ln.text)])
        parts.append(ln.text)
        pos += len(ln.text)
        prev = ln
    lead = spans[0][0] if spans else 0
    return "".join(parts), spans, lead


def assemble(blocks: Sequence[Block]) -> tuple[str, list[tuple[int, int]], list[LineRec]]:
    """Page text, each block's (start, end), and line records sorted by start."""
    out: list[str] = []
    pos = 0
    block_spans: list[tuple[int, int]] = []
    recs: list[LineRec] = []
    for block in blocks:
        if out:
            out.append("\n\n")
            pos += 2
        if block.kind == "table" and block.table is not None:
            start = pos
            for k, (md, box) in enumerate(zip(block.table.md_lines, block.table.row_boxes)):
                if k:
                    out.append("\n")
                    pos += 1
                if box is not None:
                    recs.append((pos, pos + len(md), *box))
                out.append(md)
                pos += len(md)
            block_spans.append((start, pos))
            continue
        if block.kind == "code":
            text, spans, lead = _code(block.lines)
        else:
            text, spans = _prose(block.lines)
            lead = 0
        for ln, (a, b) in zip(block.lines, spans):
            recs.append((pos + a, pos + b, *ln.box))
        block_spans.append((pos + lead, pos + len(text)))
        out.append(text)
        pos += len(text)
    return "".join(out), block_spans, recs
