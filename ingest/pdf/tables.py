"""Ruled tables: a cheap grid pre-check, then pymupdf's table finder.

`Page.find_tables` costs 0.1-1 s a page, far over our per-page budget, so
it only runs where vector strokes could form a grid (a horizontal rule
crossed by three vertical ones and a vertical rule crossed by three
horizontal ones). Text-only pages pay for one
`get_cdrawings` call (well under a millisecond). We pass
``use_layout=False``: the optional layout model is slower still and also
reports "tables" on plain text pages such as tables of contents.
"""
from __future__ import annotations

import re
from typing import Any, Sequence

import pymupdf

from .blocks import TableData
from .lines import TEXT_FLAGS, Cell, Line

MIN_RULES = 3           # horizontal and vertical rules needed to try
MAX_DRAWINGS = 5000     # beyond this (maps, plots) the finder is too slow


def _rules(drawings: list[dict[str, Any]]) -> tuple[list[tuple[float, float, float]],
                                                     list[tuple[float, float, float]]]:
    """Horizontal (y, x0, x1) and vertical (x, y0, y1) strokes; a framed
    rectangle gives four. Short strokes (tick marks, underscores) are ignored."""
    hs: list[tuple[float, float, float]] = []
    vs: list[tuple[float, float, float]] = []
    for d in drawings:
        for item in d.get("items", ()):
            op = item[0]
            if op == "l":
                (x0, y0), (x1, y1) = item[1], item[2]
                if abs(y1 - y0) < 2.5 and abs(x1 - x0) >= 8:
                    hs.append(((y0 + y1) / 2, min(x0, x1), max(x0, x1)))
                elif abs(x1 - x0) < 2.5 and abs(y1 - y0) >= 5:
                    vs.append(((x0 + x1) / 2, min(y0, y1), max(y0, y1)))
            elif op == "re":
                x0, y0, x1, y1 = item[1]
                x0, x1 = min(x0, x1), max(x0, x1)
                y0, y1 = min(y0, y1), max(y0, y1)
                w, h = x1 - x0, y1 - y0
                if h < 2.5 and w >= 8:
                    hs.append(((y0 + y1) / 2, x0, x1))
                elif w < 2.5 and h >= 5:
                    vs.append(((x0 + x1) / 2, y0, y1))
                elif w >= 8 and h >= 5:
                    hs.extend(((y0, x0, x1), (y1, x0, x1)))
                    vs.extend(((x0, y0, y1), (x1, y0, y1)))
    return hs, vs


def _merge(segs: list[tuple[float, float, float]]) -> list[tuple[float, float, float]]:
    """Join collinear touching strokes (grids are often drawn cell by cell,
    frames twice: once filled, once stroked)."""
    out: list[tuple[float, float, float]] = []
    for c, a, b in sorted(segs):
        if out and abs(c - out[-1][0]) <= 1.0 and a <= out[-1][2] + 2.0:
            pc, pa, pb = out[-1]
            out[-1] = (pc, pa, max(pb, b))
        else:
            out.append((c, a, b))
    return out


def _grid_like(hs: list[tuple[float, float, float]],
               vs: list[tuple[float, float, float]]) -> bool:
    """Some horizontal rule is crossed by 3+ vertical ones and vice versa:
    a table grid, not a lone frame (each rule meets only two others)."""
    if len(hs) < MIN_RULES or len(vs) < MIN_RULES:
        return False
    hs, vs = _merge(hs), _merge(vs)
    if len(hs) < MIN_RULES or len(vs) < MIN_RULES:
        return False
    if len(hs) * len(vs) > 250_000:
        return True
    tol = 2.0
    v_hits = [0] * len(vs)
    h_best = 0
    for y, hx0, hx1 in hs:
        hits = 0
        for k, (x, vy0, vy1) in enumerate(vs):
            if hx0 - tol <= x <= hx1 + tol and vy0 - tol <= y <= vy1 + tol:
                hits += 1
                v_hits[k] += 1
        h_best = max(h_best, hits)
    return h_best >= MIN_RULES and max(v_hits) >= MIN_RULES


def may_have_tables(page: pymupdf.Page) -> bool:
    """True when the page's vector strokes could form a ruled table."""
    drawings = page.get_cdrawings()
    if not drawings or len(drawings) > MAX_DRAWINGS:
        return False
    return _grid_like(*_rules(drawings))


def _cell(text: str | None) -> str:
    if not text:
        return ""
    return " ".join(text.split()).replace("|", "\\|")


def _clip(box: Any, width: float, height: float) -> tuple[float, float, float, float]:
    x0, y0, x1, y1 = box
    return (max(x0, 0.0), max(y0, 0.0), min(x1, width), min(y1, height))


def _words(page: pymupdf.Page, matrix: pymupdf.Matrix | None) -> list[tuple[float, float, str]]:
    """Word centres (display coordinates) and texts, in MuPDF reading order."""
    out = []
    for w in page.get_text("words", flags=TEXT_FLAGS):
        cx, cy = (w[0] + w[2]) / 2, (w[1] + w[3]) / 2
        if matrix is not None:
            p = pymupdf.Point(cx, cy) * matrix
            cx, cy = p.x, p.y
        out.append((cx, cy, w[4]))
    return out


def _cell_texts(cells: list[Any], words: list[tuple[float, float, str]]) -> list[str]:
    """Text of each cell box: the words whose centre lies inside it. (The
    finder's own character-level text misorders glyphs in some fonts.)"""
    texts = []
    for cell in cells:
        if cell is None:
            texts.append("")
            continue
        x0, y0, x1, y1 = cell
        texts.append(_cell(" ".join(t for cx, cy, t in words
                                    if x0 <= cx <= x1 and y0 <= cy <= y1)))
    return texts


STACKED_LINES = 6      # text lines in one cell that are really rows of their own


def _text_lines(cell: Any, words: list[tuple[float, float, str]]) -> int:
    """How many text lines the words inside a cell box sit on."""
    if cell is None:
        return 0
    x0, y0, x1, y1 = cell
    ys = sorted(cy for cx, cy, _ in words if x0 <= cx <= x1 and y0 <= cy <= y1)
    return sum(1 for k, y in enumerate(ys) if k == 0 or y - ys[k - 1] > 2.0)


def stacked_rows(tab: Any, words: list[tuple[float, float, str]]) -> bool:
    """The finder merged many rows into one: a table ruled only around its
    header and its outside (Statistical Abstract tables) comes back as one
    row whose cells each hold a whole column, the row labels in one cell
    and their numbers in others, no longer side by side. Two cells of one
    row with `STACKED_LINES` lines or more each is that; those lines stay
    in the text flow, where the aligned-rows detector below reads them
    row by row."""
    return any(row.bbox[3] - row.bbox[1] >= STACKED_LINES * 5.0     # room for the lines
               and sum(_text_lines(c, words) >= STACKED_LINES for c in row.cells) >= 2
               for row in tab.rows)


def find_tables(page: pymupdf.Page, width: float, height: float,
                matrix: pymupdf.Matrix | None = None) -> list[TableData]:
    """Tables with at least 2 rows, 2 columns and 3 non-empty cells, as
    Markdown (first row as header) with one box per row; not those whose
    rows the finder stacked into one (`stacked_rows`). The finder works
    on the displayed page, so its boxes are already display coordinates."""
    out: list[TableData] = []
    words: list[tuple[float, float, str]] | None = None
    for tab in page.find_tables(use_layout=False).tables:
        if tab.row_count < 2 or tab.col_count < 2:
            continue
        if words is None:
            words = _words(page, matrix)
        if stacked_rows(tab, words):
            continue
        rows = [_cell_texts(r.cells, words) for r in tab.rows]
        if sum(1 for row in rows for c in row if c) < 3:
            continue
        ncol = max(len(r) for r in rows)
        md: list[str] = []
        row_boxes: list[tuple[float, float, float, float] | None] = []
        for k, (row, r) in enumerate(zip(rows, tab.rows)):
            row = row + [""] * (ncol - len(row))
            md.append("| " + " | ".join(row) + " |")
            row_boxes.append(_clip(r.bbox, width, height))
            if k == 0:
                md.append("|" + "---|" * ncol)
                row_boxes.append(None)
        out.append(TableData(_clip(tab.bbox, width, height), md, row_boxes))
    return out


# --- unruled tables ---------------------------------------------------------

MIN_ALIGNED_ROWS = 3     # header + two rows
MIN_ALIGNED_COLS = 3
_LEADER = re.compile(r"^[\s.·…_\-]*$")


def _row_cells(line: Line) -> list[Cell]:
    """A line's table cells, without leader dots; [] if not a table row."""
    if line.mono or not line.cells:
        return []
    return [c for c in line.cells if not _LEADER.match(c[2])]


def _columns(rows: list[list[Cell]]) -> list[tuple[float, float]]:
    """Column extents: the union of overlapping cell extents over all rows."""
    spans = sorted((c[0], c[1]) for row in rows for c in row)
    cols: list[tuple[float, float]] = []
    for a, b in spans:
        if cols and a <= cols[-1][1]:
            cols[-1] = (cols[-1][0], max(cols[-1][1], b))
        else:
            cols.append((a, b))
    return cols


def _aligned_table(lines: list[Line]) -> TableData | None:
    rows = [_row_cells(ln) for ln in lines]
    cols = _columns(rows)
    if len(cols) < MIN_ALIGNED_COLS:
        return None
    filled = sum(len(r) for r in rows)
    if filled < 0.6 * len(cols) * len(rows):
        return None
    if 2 * sum(1 for r in rows if len(r) >= MIN_ALIGNED_COLS) < len(rows):
        return None
    md: list[str] = []
    boxes: list[tuple[float, float, float, float] | None] = []
    for k, (ln, row) in enumerate(zip(lines, rows)):
        texts = [""] * len(cols)
        for x0, x1, text in row:
            j = next(j for j, (a, b) in enumerate(cols) if a <= x0 <= b)
            texts[j] = (texts[j] + " " + _cell(text)).strip()
        md.append("| " + " | ".join(texts) + " |")
        boxes.append(ln.box)
        if k == 0:
            md.append("|" + "---|" * len(cols))
            boxes.append(None)
    bbox = (min(ln.box[0] for ln in lines), min(ln.box[1] for ln in lines),
            max(ln.box[2] for ln in lines), max(ln.box[3] for ln in lines))
    return TableData(bbox, md, boxes)


def aligned_tables(regions: list[list[int]], lines: Sequence[Line],
                   first_index: int) -> tuple[list[list[int]], list[TableData]]:
    """Find unruled tables: runs of 3+ consecutive rows of 3+ cells whose
    cells line up in columns. Their lines are replaced in `regions` by table
    items numbered from `first_index`."""
    tables: list[TableData] = []
    out: list[list[int]] = []
    n = len(lines)
    for region in regions:
        new: list[int] = []
        run: list[int] = []

        def flush() -> None:
            if len(run) >= MIN_ALIGNED_ROWS:
                table = _aligned_table([lines[i] for i in run])
                if table is not None:
                    new.append(first_index + len(tables))
                    tables.append(table)
                    run.clear()
                    return
            new.extend(run)
            run.clear()

        for i in region:
            if i < n and len(_row_cells(lines[i])) >= 2:
                if run and lines[i].y0 - lines[run[-1]].y1 >= 2.0 * max(lines[i].height, 1.0):
                    flush()
                run.append(i)
                continue
            flush()
            new.append(i)
        flush()
        out.append(new)
    return out, tables
