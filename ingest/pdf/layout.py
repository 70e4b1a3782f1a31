"""Reading order: a recursive XY-cut over line boxes.

PDF content streams are in drawing order, which for multi-column pages,
headers and floats is often not reading order. We cut the page into
horizontal strips at vertical white space and look for a gutter: an
x-interval that is empty in many strips that have text on both sides of
it. Strips that cross the gutter (titles, wide captions, full-width
paragraphs) are read where they are; each run of strips between them is
read column by column (left, then right), recursing inside each column.
So a page reads: full-width title, left column, right column, footer.

A gutter only splits a run when the two sides are of comparable width;
otherwise a definition list (narrow terms, wide descriptions) or an aligned
code comment would be read as two columns. Such runs, and single-column
text, are read row by row, left to right.
"""
from __future__ import annotations

from typing import Sequence

Box = tuple[float, float, float, float]

_MAX_DEPTH = 12
_MAX_CANDIDATES = 3
_MIN_SIDE_RATIO = 0.35     # narrower column / wider column
_MIN_SIDE_SHARE = 0.15     # each column / whole width


def reading_order(boxes: Sequence[Box], line_height: float) -> list[list[int]]:
    """Indices of `boxes` in reading order, as regions.

    A new region starts at each column change; paragraph building treats a
    region boundary as a paragraph break unless the sentence runs on.
    """
    if not boxes:
        return []
    cutter = _Cutter(boxes, max(4.0, 0.5 * line_height), max(line_height, 1.0))
    out: list[list[int]] = [[]]
    cutter.cut(list(range(len(boxes))), out, 0)
    return [r for r in out if r]


class _Cutter:
    def __init__(self, boxes: Sequence[Box], min_gutter: float, line_height: float):
        self.boxes = boxes
        self.min_gutter = min_gutter
        self.line_height = line_height

    def cut(self, idx: list[int], out: list[list[int]], depth: int) -> None:
        if len(idx) < 2 or depth > _MAX_DEPTH:
            out[-1].extend(_rows(idx, self.boxes))
            return
        strips = _strips(idx, self.boxes)
        for lo, hi in self._gutters(strips):
            plan = self._plan(strips, lo, hi)
            if any(cols for _, cols in plan):
                break
        else:
            out[-1].extend(_rows(idx, self.boxes))
            return
        for members, cols in plan:
            if cols:
                for col in cols:
                    out.append([])
                    self.cut(col, out, depth + 1)
                out.append([])
            elif len(members) < len(idx):
                self.cut(members, out, depth + 1)
            else:
                out[-1].extend(_rows(members, self.boxes))

    def _gutters(self, strips: list[list[int]]) -> list[tuple[float, float]]:
        """Candidate gutters, best first: x-intervals empty in strips that
        have text on both sides, weighted by those strips' heights."""
        boxes, min_gutter = self.boxes, self.min_gutter
        gaps: list[tuple[float, float, float]] = []
        for strip in strips:
            if len(strip) < 2:
                continue
            spans = sorted((boxes[i][0], boxes[i][2]) for i in strip)
            height = max(boxes[i][3] for i in strip) - min(boxes[i][1] for i in strip)
            reach = spans[0][1]
            for a, b in spans[1:]:
                if a - reach >= min_gutter:
                    gaps.append((reach, a, height))
                reach = max(reach, b)
        if not gaps:
            return []
        found: dict[tuple[int, int], tuple[float, float, float]] = {}
        for a, b, _ in gaps:
            lo, hi, weight = a, b, 0.0
            for c, d, h in gaps:
                if min(hi, d) - max(lo, c) >= min_gutter:
                    lo, hi = max(lo, c), min(hi, d)
                    weight += h
            key = (round(lo), round(hi))
            if key not in found or found[key][2] < weight:
                found[key] = (lo, hi, weight)
        ranked = sorted(found.values(), key=lambda g: -g[2])
        return [(lo, hi) for lo, hi, w in ranked[:_MAX_CANDIDATES]
                if w >= 2 * self.line_height]

    def _plan(self, strips: list[list[int]], lo: float,
              hi: float) -> list[tuple[list[int], list[list[int]] | None]]:
        """Runs of strips not crossing [lo, hi] (split into columns when
        balanced) and the crossing strips between them, in order."""
        boxes = self.boxes
        plan: list[tuple[list[int], list[list[int]] | None]] = []
        run: list[int] = []
        mid = (lo + hi) / 2

        def flush() -> None:
            if not run:
                return
            left = [i for i in run if boxes[i][0] + boxes[i][2] < 2 * mid]
            right = [i for i in run if boxes[i][0] + boxes[i][2] >= 2 * mid]
            cols = [left, right] if left and right and _balanced(left, right, boxes) else None
            plan.append((list(run), cols))
            run.clear()

        for strip in strips:
            # a strip crosses when a box spans the gutter's middle; a column
            # line that merely pokes into the gutter does not
            if any(boxes[i][0] < mid - 1 and boxes[i][2] > mid + 1 for i in strip):
                flush()
                plan.append((strip, None))
            else:
                run.extend(strip)
        flush()
        return plan


def _balanced(left: list[int], right: list[int], boxes: Sequence[Box]) -> bool:
    """Columns of text are of similar width; a term list or table is not."""
    lw = max(boxes[i][2] for i in left) - min(boxes[i][0] for i in left)
    rw = max(boxes[i][2] for i in right) - min(boxes[i][0] for i in right)
    total = max(boxes[i][2] for i in right) - min(boxes[i][0] for i in left)
    return (min(lw, rw) >= _MIN_SIDE_RATIO * max(lw, rw)
            and min(lw, rw) >= _MIN_SIDE_SHARE * total)


def _strips(idx: list[int], boxes: Sequence[Box]) -> list[list[int]]:
    """Split into horizontal strips separated by vertical white space."""
    order = sorted(idx, key=lambda i: boxes[i][1])
    strips: list[list[int]] = []
    cur: list[int] = []
    bottom = float("-inf")
    for i in order:
        if cur and boxes[i][1] > bottom:
            strips.append(cur)
            cur = []
            bottom = float("-inf")
        cur.append(i)
        bottom = max(bottom, boxes[i][3])
    if cur:
        strips.append(cur)
    return strips


def _rows(idx: list[int], boxes: Sequence[Box]) -> list[int]:
    """Order one column: top to bottom, and left to right within a row."""
    if len(idx) < 2:
        return list(idx)
    order = sorted(idx, key=lambda i: (boxes[i][1], boxes[i][0]))
    out: list[int] = []
    row = [order[0]]
    r_y0, r_y1 = boxes[order[0]][1], boxes[order[0]][3]
    for i in order[1:]:
        y0, y1 = boxes[i][1], boxes[i][3]
        overlap = min(r_y1, y1) - max(r_y0, y0)
        if overlap > 0.5 * min(r_y1 - r_y0, y1 - y0):
            row.append(i)
            continue
        row.sort(key=lambda k: boxes[k][0])
        out.extend(row)
        row, r_y0, r_y1 = [i], y0, y1
    row.sort(key=lambda k: boxes[k][0])
    out.extend(row)
    return out
