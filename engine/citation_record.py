"""A cited span as the record the app shows and stores: the segment it
lies in, its page and the glyph boxes of its words (PDFs), or its line
range (code)."""
from __future__ import annotations

from typing import Callable

from storage import SegmentRecord
from storage.records import CitationRecord

from .select.base import Source

# Given the cited segment and a span of its page text, better glyph boxes
# (the app supplies one that reads pymupdf's word positions); None keeps the
# boxes interpolated from the stored line boxes.
BoxRefiner = Callable[[SegmentRecord, int, int], "list[list[float]] | None"]


def _line_of(segment: SegmentRecord, offset: int) -> int | None:
    if segment.line_start is None:
        return None
    return segment.line_start + segment.text.count("\n", 0, offset)


def interpolated_boxes(segment: SegmentRecord, start: int, end: int) -> list[list[float]]:
    """Boxes of page-text span [start, end) from the stored line boxes: whole
    lines inside it, and the covered fraction of lines it cuts."""
    boxes = []
    for box in segment.boxes:
        lo, hi = max(start, box.start), min(end, box.end)
        if lo >= hi:
            continue
        length = max(1, box.end - box.start)
        width = box.x1 - box.x0
        x0 = box.x0 + width * (lo - box.start) / length
        x1 = box.x0 + width * (hi - box.start) / length
        boxes.append([round(x0, 2), round(box.y0, 2), round(x1, 2), round(box.y1, 2)])
    return boxes


def citation_for(source: Source, start: int, end: int, sentence: int, score: float,
                 refine: BoxRefiner | None = None) -> CitationRecord | None:
    """A citation record for span [start, end) of a source's text (the first
    segment it touches: a sentence rarely crosses segments)."""
    located = source.locate(start, end)
    if not located:
        return None
    part, seg_start, seg_end = located[0]
    segment = part.segment
    char_start, char_end = segment.char_start + seg_start, segment.char_start + seg_end
    boxes: list[list[float]] = []
    if segment.page is not None:
        boxes = (refine(segment, char_start, char_end) if refine else None) \
            or interpolated_boxes(segment, char_start, char_end)
    return CitationRecord(
        label=source.label, sentence=sentence, document_id=segment.document_id,
        document_name=segment.document_name, document_path=segment.document_path,
        segment_id=segment.id, page=segment.page,
        line_start=_line_of(segment, seg_start),
        line_end=_line_of(segment, max(seg_start, seg_end - 1)),
        char_start=char_start, char_end=char_end,
        quote=segment.text[seg_start:seg_end], boxes=boxes, score=round(score, 4))
