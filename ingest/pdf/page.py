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
from ..model import PageInfo, Segment
from ..table_parts import name_table_parts
from ..tokens import count_tokens
from .blocks import Block, TableData, build_blocks, heading_candidate
from .furniture import split_furniture
from .headings import FontStats, HeadingEvent, match_toc
from .layout import reading_order
from .lines import TEXT_FLAGS, Frame, Line, extract_lines
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
    """A parsed page as it travels back from a worker: segments still
    without section paths, plus the heading events that will set them."""

    info: PageInfo
    segments: list[Segment] = field(default_factory=list)
    # per segment, per heading group it spans: the headings opening that part
    events: list[list[list[HeadingEvent]]] = field(default_factory=list)
    page_events: list[HeadingEvent] = field(default_factory=list)   # before the first
    warnings: list[str] = field(default_factory=list)
    scanned: bool = False     # no text layer and not OCR'd


class DensePage(Exception):
    """A page with more characters than `IngestConfig.max_page_chars`: turning
    millions of glyphs into line dicts would take minutes and gigabytes."""


def page_dict(page: pymupdf.Page, max_chars: int | None = None) -> dict[str, Any]:
    """The page's text dict; raises DensePage above `max_chars` characters.

    The characters are counted on MuPDF's own text page (about 100 bytes a
    character, in C) before the far larger Python dict is built from it."""
    textpage = page.get_textpage(flags=TEXT_FLAGS)
    if max_chars is not None:
        text = textpage.extractText()
        chars = len(text) - text.count("\n")
        if chars > max_chars:
            raise DensePage(f"{chars:,} characters, over the limit of {max_chars:,} "
                            "per page (max_page_chars)")
    return page.get_text("dict", flags=TEXT_FLAGS, textpage=textpage)


def _inside(line: Line, box: tuple[float, float, float, float]) -> bool:
    """Is the line's centre in `box` (display coordinates)?"""
    cx, cy = (line.box[0] + line.box[2]) / 2, (line.box[1] + line.box[3]) / 2
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


def _read_lines(page: pymupdf.Page, ctx: PageContext, raw: dict[str, Any] | None,
                result: PageResult) -> tuple[list[Line], Frame]:
    """The page's lines, OCR'd when it has no text layer and OCR is on;
    sets the page's text status."""
    rect = page.rect
    matrix = page.rotation_matrix if page.rotation else None
    if raw is None:
        raw = page_dict(page, ctx.config.max_page_chars)
    lines, frame = extract_lines(raw, rect.width, rect.height, matrix)
    if not lacks_text_layer(page, sum(ln.chars for ln in lines)):
        return lines, frame
    result.info.text_status = "no-text"
    if ctx.ocr:
        try:
            ocr_lines, ocr_frame = extract_lines(ocr_dict(page, ctx.config), rect.width,
                                                 rect.height, matrix, plain=True)
        except Exception as exc:
            result.warnings.append(f"page {page.number + 1}: OCR failed ({exc})")
        else:
            if ocr_lines:
                result.info.text_status = "ocr"
                return ocr_lines, ocr_frame
    result.scanned = True
    return lines, frame


def _mark_outline_headings(blocks: list[Block], entries: list[tuple[int, str]],
                           result: PageResult) -> None:
    """Outline entries of this page become heading blocks; entries whose
    title is not found on the page apply from the top of the page."""
    matches = match_toc(entries, [b.plain for b in blocks],
                        [heading_candidate(b) for b in blocks])
    for (level, title), k in zip(entries, matches):
        if k is None:
            result.page_events.append(("toc", level, title))
        else:
            blocks[k].kind = "heading"
            blocks[k].heading = ("toc", level, title)


def parse_page(page: pymupdf.Page, ctx: PageContext,
               raw: dict[str, Any] | None = None) -> PageResult:
    """Parse one page. `raw` is its text dict when already extracted."""
    rect = page.rect
    matrix = page.rotation_matrix if page.rotation else None
    result = PageResult(PageInfo(page.number + 1, rect.width, rect.height, "text", "",
                                 page.rotation))
    lines, frame = _read_lines(page, ctx, raw, result)

    tables: list[TableData] = []
    if ctx.config.find_tables and lines:
        tables = _tables(page, rect.width, rect.height, matrix, result)
        if tables:  # their text is in the Markdown, not in the flow
            lines = [ln for ln in lines if not any(_inside(ln, t.bbox) for t in tables)]

    header, body, footer = split_furniture(lines, frame.height, ctx.stats)
    boxes = [(ln.x0, ln.y0, ln.x1, ln.y1) for ln in body] + [frame.up(t.bbox) for t in tables]
    regions = reading_order(boxes, median([ln.height for ln in body]) if body else 10.0)
    if ctx.config.find_tables:
        regions, aligned = aligned_tables(regions, body, len(body) + len(tables))
        tables = tables + aligned
    typography = ctx.stats if result.info.text_status == "text" else FontStats()
    blocks = build_blocks(regions, body, tables, typography)
    if page.number in ctx.toc:
        _mark_outline_headings(blocks, ctx.toc[page.number], result)

    blocks = ([Block("furniture", [ln]) for ln in header] + blocks
              + [Block("furniture", [ln]) for ln in footer])
    text, spans, recs = assemble(blocks)
    result.info.text = text
    starts = [r[0] for r in recs]
    config = ctx.config
    for chunk in chunk_page(blocks, spans, text, config.min_tokens, config.max_tokens,
                            under_outline=bool(result.page_events)):
        seg_text = text[chunk.start:chunk.end]
        result.segments.append(Segment(
            kind=chunk.kind, text=seg_text, char_start=chunk.start, char_end=chunk.end,
            tokens=count_tokens(seg_text), page=page.number + 1,
            boxes=boxes_for(recs, starts, chunk.start, chunk.end)))
        result.events.append(chunk.parts)
    name_table_parts(result.segments, text)
    return result


def failed_page(page_number: int, width: float, height: float, rotation: int,
                exc: BaseException) -> PageResult:
    """Record of a page that threw while being read: kept, marked, warned."""
    reason = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else type(exc).__name__
    return PageResult(PageInfo(page_number, width, height, "no-text", "", rotation),
                      warnings=[f"page {page_number} could not be read ({reason}); "
                                "it has no text"])
