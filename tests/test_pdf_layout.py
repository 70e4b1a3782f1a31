"""Reading order: XY-cut over line boxes, two-column pages, rotation."""
from __future__ import annotations

import pdf_fixtures as fx
from ingest.pdf import parse_pdf
from ingest.pdf.layout import reading_order


def _flat(regions: list[list[int]]) -> list[int]:
    return [i for r in regions for i in r]


def test_two_columns_under_full_width_title() -> None:
    # title, then two columns of 3 lines whose rows line up, then a footer
    boxes = [(100, 20, 500, 40)]
    for row in range(3):
        y = 60 + 14 * row
        boxes.append((50, y, 290, y + 12))       # left: 1, 3, 5
        boxes.append((310, y, 550, y + 12))      # right: 2, 4, 6
    boxes.append((250, 200, 350, 212))           # centred footer line: 7
    order = _flat(reading_order(boxes, 12))
    assert order == [0, 1, 3, 5, 2, 4, 6, 7]


def test_single_column_keeps_natural_order() -> None:
    boxes = [(50, 20 + 14 * k, 550 - 40 * (k % 2), 32 + 14 * k) for k in range(6)]
    assert _flat(reading_order(boxes, 12)) == list(range(6))


def test_definition_list_is_read_row_by_row() -> None:
    # narrow terms beside wide descriptions must not become two columns
    boxes = []
    for row in range(5):
        y = 20 + 14 * row
        boxes.append((50, y, 90, y + 12))
        boxes.append((120, y, 550, y + 12))
    assert _flat(reading_order(boxes, 12)) == list(range(10))


def test_caption_across_gutter_is_not_merged_into_columns() -> None:
    boxes = [(200, 20, 400, 32)]                 # centred caption over the gutter
    boxes += [(50, 40, 110, 52), (310, 40, 380, 52)]          # ABSTRACT | KEYWORDS
    for row in range(4):
        y = 56 + 13 * row
        boxes += [(50, y, 290, y + 12), (310, y, 550, y + 12)]
    order = _flat(reading_order(boxes, 12))
    assert order[0] == 0
    left = [i for i in order[1:] if boxes[i][0] < 300]
    assert order[1:len(left) + 1] == left        # whole left column first


def test_generated_two_column_page(tmp_path) -> None:
    doc = parse_pdf(fx.two_column(tmp_path / "cols.pdf"))
    fx.check_spans(doc)
    text = doc.pages[0].text
    assert text.startswith("A Study of Reading Order\n\n")
    marks = [text.index(fx.sentence(f"{side} paragraph {p}", k))
             for side in ("left", "right") for p in (1, 2, 3) for k in (1, 2, 3)]
    assert marks == sorted(marks)  # whole sentences, contiguous, in order
    assert text.index("right paragraph 1") > text.index(fx.sentence("left paragraph 3", 3))


def test_rotated_page_reads_in_order_with_display_boxes(tmp_path) -> None:
    doc = parse_pdf(fx.rotated(tmp_path / "rot.pdf"))
    page = doc.pages[0]
    assert page.rotation == 90 and (page.width, page.height) == (792, 612)
    fx.check_spans(doc)
    assert page.text == fx.paragraph("rotated", 4)
