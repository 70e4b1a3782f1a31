"""The app's rendering helpers: chips, sources, Markdown export, code view,
page render with highlight boxes, and library rows."""
from __future__ import annotations

import re

import pymupdf
import pytest

from app.chat_view import (TurnView, answer_html, conversation_html, conversation_markdown,
                           find_citation, parse_cite_key)
from app.code_view import code_html, highlighted_lines
from app.ingest_queue import Item
from app.library_view import build_rows, document_status, error_text, rows_html, summary
from app.page_render import FIT, PageRenderError, clamp_zoom, page_html, render_page
from storage.embeddings import EmbeddingProgress
from storage.records import CitationRecord, DocumentRecord


def citation(label=1, sentence=0, score=0.8, **kw) -> CitationRecord:
    values = dict(label=label, sentence=sentence, document_id=3, document_name="g.pdf",
                  document_path="/x/g.pdf", segment_id=1, page=1, line_start=None,
                  line_end=None, char_start=0, char_end=10, quote="The glacier moves.",
                  boxes=[[10, 20, 110, 32]], score=score)
    values.update(kw)
    return CitationRecord(**values)


def turn(**kw) -> TurnView:
    values = dict(key="7", question="How fast <b>?", answer="It moves fast [1]. It is cold.",
                  citations=[citation(1, 0), citation(2, 1, score=0.6)],
                  sentences=[{"start": 0, "end": 18}, {"start": 19, "end": 30}],
                  sources=[{"label": 1, "document_name": "g.pdf", "document_id": 3,
                            "page": 1, "pages": [1], "score": 0.9, "tokens": 40},
                           {"label": 2, "document_name": "h.py", "document_id": 4,
                            "page": None, "line_start": 3, "line_end": 9, "score": 0.5,
                            "tokens": 20},
                           {"label": 3, "document_name": "k.txt", "document_id": 5,
                            "score": 0.1, "tokens": 5}])
    values.update(kw)
    return TurnView(**values)


def test_markers_become_chips_and_unmarked_support_gets_one():
    html = answer_html(turn())
    keys = re.findall(r'data-cite="([^"]+)"', html)
    # [1] written by the model in sentence 0; [2] found by the citer in sentence 1.
    assert keys == ["7:1:0", "7:2:1"]
    assert html.count("folio-chip") == 2


def test_a_marker_naming_no_source_is_not_a_chip():
    html = answer_html(turn(answer="It moves fast [9]. It is cold.", citations=[]))
    assert "data-cite" not in html and "folio-nosource" in html and "[9]" in html


def test_text_is_escaped_and_live_turns_have_no_chips():
    live = turn(key="live", answer="x <script>alert(1)</script> [1]", sentences=[],
                citations=[])
    html = answer_html(live)
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert "data-cite" not in html and "[1]" in html
    page = conversation_html([turn()])
    assert "How fast &lt;b&gt;?" in page


def test_sources_list_scores_and_empty_state():
    html = conversation_html([turn()])
    assert "support 0.80" in html and "support 0.60" in html and "not cited" in html
    assert "lines 3-9" in html and "p. 1" in html
    assert "Ask your documents" in conversation_html([])


def test_find_citation_prefers_the_same_sentence():
    t = turn(citations=[citation(1, 0, 0.5), citation(1, 2, 0.9)])
    assert find_citation(t, 1, 0).score == 0.5
    assert find_citation(t, 1, -1).score == 0.9
    assert find_citation(t, 4, 0) is None
    assert parse_cite_key("12:3:-1") == (12, 3, -1)
    assert parse_cite_key("12:x") is None and parse_cite_key(None) is None


def test_markdown_export_has_citations_and_sources():
    md = conversation_markdown("Glaciers", [turn(), turn(status="stopped", declined=True,
                                                         reason="no support")])
    assert md.startswith("# Glaciers\n")
    assert "## How fast <b>?" in md
    assert '[1] g.pdf, p. 1: "The glacier moves." (support 0.80)' in md
    assert "- [2] h.py lines 3-9" in md
    assert "_(stopped before the end)_" in md and "_(no support)_" in md


CODE = 'def f(x):\n    s = """a\nb"""\n    return x\n'


def test_code_lines_stay_aligned_across_multiline_tokens():
    lines = highlighted_lines(CODE, "m.py", "python")
    assert len(lines) == CODE.count("\n") + 1
    assert "return" in lines[3]
    html = code_html("\n\nx = 1\n", "blank.py")   # leading blank lines are kept
    assert re.search(r'data-line="3"><span class="folio-ln">3</span><span class="folio-src">'
                     r'.*x', html)


def test_code_view_marks_the_cited_range():
    html = code_html(CODE, "m.py", language="python", line_start=2, line_end=3)
    cited = re.findall(r'folio-line folio-cited" data-line="(\d+)"', html)
    assert cited == ["2", "3"]
    assert "m.py &middot; lines 2-3" in html
    assert code_html("plain words\n", "notes.unknownext").count("folio-line") == 2


@pytest.fixture
def two_pages(tmp_path):
    doc = pymupdf.open()
    for n in (1, 2):
        page = doc.new_page(width=600, height=800)
        page.insert_text((50, 100), f"page {n} text", fontsize=12)
    path = tmp_path / "two.pdf"
    doc.save(path)
    return path


def test_page_render_scales_boxes(two_pages):
    rendered = render_page(two_pages, 2, [[50, 88, 150, 104]], zoom=2.0)
    assert (rendered.width, rendered.height, rendered.page_count) == (1200, 1600, 2)
    assert rendered.png.startswith(b"\x89PNG")
    assert rendered.boxes == [[100.0, 176.0, 300.0, 208.0]]
    html = page_html(rendered, "two.pdf")
    assert html.count('class="folio-hl"') == 1
    assert "left:8.333%;top:11.000%" in html and "width:1200px" in html
    assert "width:100%" in page_html(rendered, fit=True)


def test_page_render_errors_are_readable(two_pages, tmp_path):
    with pytest.raises(PageRenderError, match="no page 3"):
        render_page(two_pages, 3)
    with pytest.raises(PageRenderError, match="no longer"):
        render_page(tmp_path / "gone.pdf", 1)
    locked = tmp_path / "locked.pdf"
    doc = pymupdf.open(two_pages)
    doc.save(locked, encryption=pymupdf.PDF_ENCRYPT_AES_256, user_pw="pw", owner_pw="own")
    with pytest.raises(PageRenderError, match="password"):
        render_page(locked, 1)
    assert render_page(locked, 1, password="pw").page == 1
    assert clamp_zoom(None) == FIT and clamp_zoom(99) == 4.0 and clamp_zoom("x") == FIT


def doc(id, status="ready", **kw) -> DocumentRecord:
    values = dict(id=id, path=f"/u/{id}.pdf", display_name=f"d{id}.pdf", sha256="s",
                  kind="pdf", mime=None, language=None, title=None, size=1, pages=3, lines=0,
                  segments=5, status=status, error=None, error_code=None, warnings=[],
                  created_at="2025-01-02T03:04:05+00:00", updated_at="")
    values.update(kw)
    return DocumentRecord(**values)


def test_library_rows_merge_documents_progress_and_queue():
    docs = [doc(1), doc(2, "searchable", warnings=["2 of 3 pages have no text layer"]),
            doc(3, "error", error_code="password-required", error="x: password required"),
            doc(4, "error", error_code="corrupt", error="d4.pdf: not a readable PDF")]
    items = [Item(1, "big.pdf", None, state="parsing", done=3, total=10),
             Item(2, "d1 copy.pdf", None, state="duplicate", message="already indexed as #1"),
             Item(3, "d2.pdf", None, state="stored", document_id=2),
             Item(4, "x.bin", None, state="error", error_code="unsupported",
                  message="x.bin: skipped, unsupported type")]
    rows = build_rows(docs, {2: EmbeddingProgress(2, 2, 5)}, items)
    words = {r.name: r.detail for r in rows}
    assert words["big.pdf"] == "parsing page 4 of 10"
    assert words["d1 copy.pdf"] == "already indexed as #1"
    assert words["d2.pdf"] == "searchable · embedding 40%"
    assert words["d3.pdf"] == "password required: enter it below"
    assert words["d4.pdf"] == "corrupt file: d4.pdf: not a readable PDF"
    assert words["x.bin"] == "x.bin: skipped, unsupported type"
    assert sum(r.name == "d2.pdf" for r in rows) == 1     # stored item shown as its document
    html = rows_html(rows)
    assert "no text layer" in html and 'data-action="remove:4"' in html
    assert 'data-action="reindex:4"' not in html and 'data-action="reindex:1"' in html
    assert "3 pages" in html and "2025-01-02 03:04" in html
    assert summary(rows).startswith("4 documents: 1 ready, 1 embedding, 1 parsing")
    assert "No documents yet" in rows_html([])


def test_status_words():
    assert document_status(doc(1), None) == ("ready", "ready", 100)
    assert document_status(doc(1, "searchable"), None, "embedding stopped: boom")[1] == \
        "searchable by keywords; embedding stopped: boom"
    assert error_text("too-large", "a.txt: the file is 3 MB") == \
        "too large: a.txt: the file is 3 MB"
    assert error_text(None, None) == "error"


def test_an_interrupted_answer_says_so_in_the_chat_and_the_export():
    cut = turn(key="7", answer="", status="interrupted", citations=[], sentences=[],
               sources=[])
    page = conversation_html([cut])
    assert "folio-error" in page and "stopped before this answer was finished" in page
    assert "stopped before this answer was finished" in conversation_markdown("t", [cut])
    pending = conversation_html([turn(key="8", answer="", status="answering", citations=[],
                                      sentences=[], sources=[])])
    assert "being answered" in pending
