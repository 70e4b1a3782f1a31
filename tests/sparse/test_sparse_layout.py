"""Document layouts: segment token ranges, and pages for reading long documents
page by page (no model: a character tokenizer)."""
from __future__ import annotations

import pytest

from engine.sparse.layout import SEPARATOR, layout_document


def _tok(text: str) -> list[int]:
    return [ord(c) for c in text]


def _layout(sizes, preamble=8):
    segments = [(100 + i, chr(65 + i % 26) * n) for i, n in enumerate(sizes)]
    return layout_document(_tok, [0] * preamble, segments), segments


@pytest.mark.parametrize("page", [10, 40, 95, 1000])
def test_pages_cover_the_body_once_and_keep_every_segment_whole(page):
    lay, segments = _layout([30, 5, 60, 12, 12, 12, 200, 3, 40])
    pages = lay.pages(page)
    body = [t for p in pages for t in p.tokens[p.preamble:]]
    assert body == lay.tokens[lay.preamble:]                      # every token once, in order
    assert sorted(sid for p in pages for sid in p.segments) == sorted(lay.segments)
    for p in pages:
        assert p.tokens[:p.preamble] == [0] * 8                   # the preamble leads each page
        for sid, (a, b) in p.segments.items():
            da, db = lay.segments[sid]
            assert p.tokens[a:b] == lay.tokens[da:db]             # the same segment tokens
        if len(p.segments) > 1:                                   # only a lone segment overflows
            assert len(p.tokens) - p.preamble <= page
    if page >= len(lay.tokens):
        assert len(pages) == 1 and pages[0] == lay
    # the packing is greedy: two neighbouring pages would not have fitted in one
    for p, q in zip(pages, pages[1:]):
        first_end = min(q.segments.values())[1] - q.preamble       # q's first segment
        assert (len(p.tokens) - p.preamble) + first_end + len(SEPARATOR) > page


def test_page_size_must_be_positive():
    lay, _ = _layout([5, 5])
    with pytest.raises(ValueError, match="page_tokens"):
        lay.pages(0)
