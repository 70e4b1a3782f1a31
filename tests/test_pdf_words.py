"""Citation boxes cover exactly the cited words on the rendered page."""
from __future__ import annotations

import pymupdf

from engine.citation_record import interpolated_boxes
from ingest import parse_file
from ingest.pdf.words import WordBoxes
from storage import documents, open_db
from storage import segments as segment_store

import pdf_fixtures


def stored_segments(tmp_path, pdf):
    db = open_db(tmp_path / "f.db")
    doc_id = documents.store_document(db, parse_file(pdf))
    return segment_store.document_segments(db, doc_id)


def overlap(a, b) -> float:
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    return max(0.0, w) * max(0.0, h)


def test_word_boxes_match_the_words_on_the_page(tmp_path):
    pdf = pdf_fixtures.two_column(tmp_path / "two.pdf")
    segs = [s for s in stored_segments(tmp_path, pdf) if "right paragraph 2" in s.text]
    seg = segs[0]
    phrase = "careful readers follow"
    at = seg.text.index(phrase)
    start, end = seg.char_start + at, seg.char_start + at + len(phrase)
    boxes = WordBoxes()(seg, start, end)
    page = pymupdf.open(pdf)[seg.page - 1]
    truth = [r for r in page.search_for(phrase)]
    # The phrase occurs on several lines; our boxes must coincide with one hit.
    assert boxes
    for box in boxes:
        best = max(truth, key=lambda r: overlap(box, r))
        area = (box[2] - box[0]) * (box[3] - box[1])
        assert overlap(box, best) >= 0.8 * area
        assert abs(box[0] - best.x0) < 3 and abs(box[2] - best.x1) < 3


def test_refined_boxes_are_tighter_than_whole_lines(tmp_path):
    pdf = pdf_fixtures.two_column(tmp_path / "two.pdf")
    seg = stored_segments(tmp_path, pdf)[1]
    word_end = seg.text.index(" ", 5)
    start, end = seg.char_start, seg.char_start + word_end
    [refined] = WordBoxes()(seg, start, end)
    line = seg.boxes[0]
    assert refined[2] - refined[0] < (line.x1 - line.x0) / 2
    # Interpolation alone lands near the same place.
    [rough] = interpolated_boxes(seg, start, end)
    assert abs(rough[0] - refined[0]) < 5


def test_missing_file_gives_none(tmp_path):
    pdf = pdf_fixtures.two_column(tmp_path / "two.pdf")
    seg = stored_segments(tmp_path, pdf)[1]
    pdf.unlink()
    assert WordBoxes()(seg, seg.char_start, seg.char_start + 5) is None
