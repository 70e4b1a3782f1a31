"""Segments: exact spans, sizes, kinds, headings and section paths."""
from __future__ import annotations

import pdf_fixtures as fx
import pymupdf
import pytest

from ingest.config import IngestConfig
from ingest.pdf import parse_pdf
from ingest.tokens import count_tokens


@pytest.fixture(scope="module")
def with_toc(tmp_path_factory):
    return parse_pdf(fx.headings(tmp_path_factory.mktemp("h") / "toc.pdf"))


@pytest.fixture(scope="module")
def without_toc(tmp_path_factory):
    return parse_pdf(fx.headings(tmp_path_factory.mktemp("h") / "fonts.pdf", toc=False))


@pytest.fixture(scope="module")
def manual(tmp_path_factory):
    return parse_pdf(fx.manual_entry(tmp_path_factory.mktemp("m") / "toc.pdf"))


@pytest.fixture(scope="module")
def manual_fonts(tmp_path_factory):
    return parse_pdf(fx.manual_entry(tmp_path_factory.mktemp("m") / "fonts.pdf", toc=False))


def _segment_with(doc, words: str):
    found = [s for s in doc.segments if words in s.text]
    assert found, words
    return found[0]


def test_spans_boxes_and_sizes(with_toc, without_toc, manual, manual_fonts) -> None:
    for doc in (with_toc, without_toc, manual, manual_fonts):
        fx.check_spans(doc)
        assert fx.check_sizes(doc) == []
        for seg in doc.segments:
            assert seg.tokens == count_tokens(seg.text)


def test_document_fields(with_toc, tmp_path) -> None:
    doc = parse_pdf(fx.simple(tmp_path / "s.pdf", pages=2))
    assert (doc.kind, doc.mime, doc.title) == ("pdf", "application/pdf", "Simple Fixture")
    assert doc.size == (tmp_path / "s.pdf").stat().st_size and len(doc.sha256) == 64
    assert [p.number for p in doc.pages] == [1, 2]
    assert all((p.width, p.height, p.rotation, p.text_status) == (612, 792, 0, "text")
               for p in doc.pages)
    assert with_toc.title is None


def test_heading_starts_segment_and_sections_come_from_outline(with_toc) -> None:
    intro = _segment_with(with_toc, "introduction sentence 1")
    assert intro.text.startswith("1 Introduction\n\n")
    assert intro.section == ["Introduction"]
    back = _segment_with(with_toc, "background one sentence 1")
    assert back.text.startswith("1.1 Background\n\n")
    assert back.section == ["Introduction", "Background"]
    # the section carries over the page break
    cont = _segment_with(with_toc, "background continued sentence 1")
    assert cont.page == 2 and cont.section == ["Introduction", "Background"]
    assert _segment_with(with_toc, "data collection sentence 2").section == [
        "Methods", "Data collection"]
    assert _segment_with(with_toc, "results two sentence 1").section == ["Results"]


def test_sections_from_font_sizes_without_outline(without_toc) -> None:
    assert _segment_with(without_toc, "background one sentence 1").section == [
        "1 Introduction", "1.1 Background"]
    assert _segment_with(without_toc, "background continued").section == [
        "1 Introduction", "1.1 Background"]
    methods = _segment_with(without_toc, "methods sentence 1")
    assert methods.section == ["2 Methods"] and methods.text.startswith("2 Methods")


def test_segments_never_cross_outline_headings(with_toc, manual) -> None:
    # every heading of this fixture is an outline entry: none is crossed
    for seg in with_toc.segments:
        heads = [h for _, h, _, _ in fx.HEADINGS if h in seg.text]
        assert len(heads) <= 1 and (not heads or seg.text.startswith(heads[0]))
    # an outline heading opens a segment (with the headings right above it)
    # even when the open segment is tiny ("See Also" + "Examples", 21 tokens)
    entry = _segment_with(manual, "hclust Hierarchical Clustering")
    assert entry.text.startswith("hclust Hierarchical Clustering\n\nUsage\n\n")
    assert _segment_with(manual, "kmexamples").tokens < 60


def test_segments_cross_only_minor_headings_below_min_tokens(manual, manual_fonts) -> None:
    """A typographic sub-heading inside a segment (not right under the
    segment's opening headings) is preceded by fewer than min_tokens."""
    subs = ["Description", "Usage", "Arguments", "Details", "See Also", "Examples", "Value"]
    for doc in (manual, manual_fonts):
        inside = 0
        for seg in doc.segments:
            for sub in subs:
                at = seg.text.find(f"\n\n{sub}\n\n")
                if at > 0 and not seg.text[:at].endswith(("Clustering", "package")):
                    assert count_tokens(seg.text[:at]) < 60, (sub, seg.text[:at])
                    inside += 1
        assert inside >= 3


def test_tiny_sub_sections_merge_under_their_entry(manual, manual_fonts) -> None:
    for doc, entry in ((manual, "kmeans"), (manual_fonts, "kmeans K-Means Clustering")):
        # "Usage" (10 words) and "Arguments" (15) run on from the entry's
        # short description, filed under the entry, not under "Arguments"
        head = _segment_with(doc, "kmusage")
        assert "kmdescription" in head.text and "kmarguments" in head.text
        assert head.text.startswith("The demo package\n\nkmeans K-Means Clustering\n\n")
        assert "Details" not in head.text
        assert head.section == ["The demo package", entry]
        # the larger section stands alone, with its own path
        details = _segment_with(doc, "kmdetails")
        assert details.text.startswith("Details\n\nkmdetails") and details.tokens > 150
        assert details.section == ["The demo package", entry, "Details"]
        # after it, "See Also" and "Examples" share a segment: the entry's path
        tail = _segment_with(doc, "kmseealso")
        assert tail.text.startswith("See Also\n\n") and "\n\nExamples\n\nkmexamples" in tail.text
        assert tail.section == ["The demo package", entry]
    # without an outline, "hclust ..." is a typographic heading shallower
    # than "Examples": it still opens a segment
    hclust = _segment_with(manual_fonts, "hcusage")
    assert hclust.text.startswith("hclust Hierarchical Clustering\n\nUsage\n\n")
    assert hclust.section == ["The demo package", "hclust Hierarchical Clustering"]
    assert [len(doc.segments) for doc in (manual, manual_fonts)] == [4, 4]


def test_lone_heading_at_page_end_is_a_heading_segment(with_toc) -> None:
    last = with_toc.segments[-1]
    assert (last.kind, last.text, last.page) == ("heading", "4 Discussion", 3)
    assert last.section == ["Discussion"]
    assert [s.kind for s in with_toc.segments[:-1]].count("heading") == 0


def test_small_paragraphs_merge_and_large_ones_split_at_sentences(with_toc) -> None:
    # "results one" and "results two" fit in one segment together
    results = [s for s in with_toc.segments if s.section == ["Results"] and s.kind != "heading"]
    assert len(results) == 1 and "results two sentence 3" in results[0].text
    # background paragraphs are ~130 tokens each: not all fit in one segment,
    # and every cut is at a sentence end
    back = [s for s in with_toc.segments if s.section == ["Introduction", "Background"]]
    assert len(back) >= 2
    for seg in back:
        assert seg.text.endswith("next.")


def test_split_respects_max_tokens(tmp_path) -> None:
    config = IngestConfig(min_tokens=20, max_tokens=60)
    doc = parse_pdf(fx.simple(tmp_path / "s.pdf"), config=config)
    fx.check_spans(doc)
    assert fx.check_sizes(doc, 20, 60) == []
    assert all(s.text.endswith("next.") for s in doc.segments)


def test_list_items_are_grouped_into_list_segments(tmp_path) -> None:
    doc = parse_pdf(fx.bullets(tmp_path / "b.pdf"))
    fx.check_spans(doc)
    assert [s.kind for s in doc.segments] == ["list"]
    text = doc.segments[0].text
    assert "\n\n- Bullet item 1 names" in text and "\n\n4. Numbered step 4" in text
    starts = [b.start for b in doc.segments[0].boxes]
    assert len(starts) == len(set(starts)) >= 11  # one box per printed line


def test_line_boxes_follow_the_text(tmp_path) -> None:
    doc = parse_pdf(fx.two_column(tmp_path / "c.pdf"))
    page = doc.pages[0]
    for seg in doc.segments:
        for box in seg.boxes:
            line = page.text[box.start:box.end]
            if line.startswith("The left"):
                assert box.x1 < page.width / 2
            if line.startswith("The right"):
                assert box.x0 > page.width / 2


def test_boxes_frame_their_text(tmp_path) -> None:
    """What MuPDF finds inside each box is the text the box claims."""
    path = fx.headings(tmp_path / "h.pdf")
    doc = parse_pdf(path)
    pdf = pymupdf.open(path)
    checked = 0
    pages = list(pdf)
    textpages = [page.get_textpage() for page in pages]
    for seg in doc.segments:
        page = pages[seg.page - 1]
        for box in seg.boxes:
            claimed = doc.pages[seg.page - 1].text[box.start:box.end]
            rect = pymupdf.Rect(box.x0, box.y0, box.x1, box.y1) + (-1, -1, 1, 1)
            found = page.get_textbox(rect, textpage=textpages[seg.page - 1])
            assert " ".join(found.split()) == claimed, (claimed, found)
            checked += 1
    assert checked > 40
