"""One page, end to end: text dict -> lines -> order -> blocks -> segments.

A page depends only on document-wide facts fixed up front (`PageContext`),
never on other pages, so pages can be parsed in any process and order with
identical results. Section paths are filled in later, in page order, from
the heading events each page reports.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from statistics import median
from typing import Any

import pymupdf

from ..config import IngestConfig
from ..model import PageInfo, Segment, TextStatus
from ..tokens import count_tokens
from .blocks import Block, TableData, build_blocks, heading_candidate
from .furniture import split_furniture
from .headings import FontStats, HeadingEvent, match_toc
from .layout import reading_order
from .lines import TEXT_FLAGS, Line, extract_lines
from .ocr import lacks_text_layer, ocr_dict
from .pagetext import assemble
from .segments import boxes_for, chunk_page
from .tables import aligned_tables, find_tables, may_have_tables


@dataclass
class PageContext:
    """Document-wide inputs of page parsing (picklable for workers)."""

    config: IngestConfig
    stats: FontStats
    toc: dict[int, list[tuple[int, str]]] = field(default_factory=dict)  # 0-based page
    ocr: bool = False


@dataclass
class PageResult:
    info: PageInfo
    segments: list[Segment] = field(default_factory=list)
    events: list[list[HeadingEvent]] = field(default_factory=list)   # per segment
    page_events: list[HeadingEvent] = field(default_factory=list)   # before the first
    warnings: list[str] = field(default_factory=list)
    scanned: bool = False     # no text layer and not OCR'd


def page_dict(page: pymupdf.Page) -> dict[str, Any]:
    return page.get_text("dict", flags=TEXT_FLAGS)


def _inside(line: Line, box: tuple[float, float, float, float]) -> bool:
    cx, cy = (line.x0 + line.x1) / 2, (line.y0 + line.y1) / 2
    return box[0] - 1 <= cx <= box[2] + 1 and box[1] - 1 <= cy <= box[3] + 1


def _tables(page: pymupdf.Page, width: float, height: float,
            matrix: pymupdf.Matrix | None, result: PageResult) -> list[TableData]:
    try:
        if not may_have_tables(page):
            return []
        return find_tables(page, width, height, matrix)
    except Exception as exc:  # a table finder bug must not lose the page
        result.warnings.append(
            f"page {page.number + 1}: table detection failed ({type(exc).__name__})")
        return []


def parse_page(page: pymupdf.Page, ctx: PageContext,
               raw: dict[str, Any] | None = None) -> PageResult:
    """Parse one page. `raw` is its text dict when already extracted."""
    number = page.number + 1
    rect = page.rect
    width, height, rotation = rect.width, rect.height, page.rotation
    matrix = page.rotation_matrix if rotation else None
    result = PageResult(PageInfo(number, width, height, "text", "", rotation))
    status: TextStatus = "text"

    lines = extract_lines(raw if raw is not None else page_dict(page), width, height, matrix)
    chars = sum(ln.chars for ln in lines)
    if lacks_text_layer(page, chars):
        status = "no-text"
        if ctx.ocr:
            try:
                ocr_lines = extract_lines(ocr_dict(page, ctx.config), width, height, matrix)
            except Exception as exc:
                result.warnings.append(f"page {number}: OCR failed ({exc})")
            else:
                if ocr_lines:
                    lines, status = ocr_lines, "ocr"
        result.scanned = status == "no-text"
    result.info.text_status = status

    tables: list[TableData] = []
    if ctx.config.find_tables and lines:
        tables = _tables(page, width, height, matrix, result)
        if tables:
            lines = [ln for ln in lines if not any(_inside(ln, t.bbox) for t in tables)]

    header, body, footer = split_furniture(lines, height, ctx.stats)
    boxes = [(ln.x0, ln.y0, ln.x1, ln.y1) for ln in body] + [t.bbox for t in tables]
    line_height = median([ln.height for ln in body]) if body else 10.0
    regions = reading_order(boxes, line_height)
    if ctx.config.find_tables:
        regions, aligned = aligned_tables(regions, body, len(body) + len(tables))
        tables = tables + aligned
    blocks = build_blocks(regions, body, tables, ctx.stats if status == "text" else FontStats())

    entries = ctx.toc.get(page.number, [])
    if entries:
        matches = match_toc(entries, [b.plain for b in blocks],
                            [heading_candidate(b) for b in blocks])
        for (level, title), k in zip(entries, matches):
            if k is None:
                result.page_events.append(("toc", level, title))
            else:
                blocks[k].kind = "heading"
                blocks[k].heading = ("toc", level, title)

    all_blocks = ([Block("furniture", [ln]) for ln in header] + blocks
                  + [Block("furniture", [ln]) for ln in footer])
    text, spans, recs = assemble(all_blocks)
    result.info.text = text

    config = ctx.config
    starts = [r[0] for r in recs]
    for chunk in chunk_page(all_blocks, spans, text, config.min_tokens, config.max_tokens):
        seg_text = text[chunk.start:chunk.end]
        result.segments.append(Segment(
            kind=chunk.kind, text=seg_text, char_start=chunk.start, char_end=chunk.end,
            tokens=count_tokens(seg_text), page=number,
            boxes=boxes_for(recs, starts, chunk.start, chunk.end)))
        result.events.append(chunk.events)
    return result


def failed_page(page_number: int, width: float, height: float, rotation: int,
                exc: BaseException) -> PageResult:
    """Record of a page that threw while being read: kept, marked, warned."""
    reason = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else type(exc).__name__
    return PageResult(PageInfo(page_number, width, height, "no-text", "", rotation),
                      warnings=[f"page {page_number} could not be read ({reason}); "
                                "it has no text"])
