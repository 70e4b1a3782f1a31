"""The citation inspector: what a clicked citation points at, drawn.

Its state is a small dict kept per browser tab (document, page, zoom, cited
boxes or lines), so page navigation and zoom redraw without asking the
engine again. PDF pages are rendered by `page_render`, files by `code_view`.
"""
from __future__ import annotations

import html
from typing import TYPE_CHECKING, Callable

from storage import documents
from storage.records import CitationRecord

from .code_view import code_html
if TYPE_CHECKING:
    from .unlocked_copies import UnlockedCopies
from .page_render import DEFAULT_ZOOM, FIT, PageRenderError, clamp_zoom, page_html, render_page

EMPTY = ('<div class="folio-empty"><h3>Citation inspector</h3><p>Click a citation such as '
         '<span class="folio-chip">[1]</span> in an answer, or a source under it, to see the '
         'cited words on the PDF page or the cited lines of code here.</p></div>')


def state_for_citation(c: CitationRecord, kind: str) -> dict:
    return {"doc": c.document_id, "kind": kind, "page": c.page, "cited_page": c.page,
            "boxes": c.boxes, "zoom": FIT, "label": c.label,
            "quote": c.quote, "lines": [c.line_start, c.line_end or c.line_start],
            "score": c.score}


def state_for_source(source: dict, kind: str) -> dict:
    """A source the model saw but no sentence cited: shown without word boxes."""
    return {"doc": source.get("document_id"), "kind": kind, "page": source.get("page"),
            "cited_page": None, "boxes": [], "zoom": FIT,
            "label": source.get("label"), "quote": "",
            "lines": [source.get("line_start"), source.get("line_end")], "score": None}


def _quote(state: dict) -> str:
    if not state.get("quote"):
        return ""
    quote = " ".join(state["quote"].split())
    score = f" (support {state['score']:.2f})" if state.get("score") is not None else ""
    return (f'<div class="folio-quote">[{state.get("label")}] “{html.escape(quote)}”'
            f'{score}</div>')


def render(db, state: dict | None, password_for: Callable[[str], str | None],
           unlocked: "UnlockedCopies | None" = None) -> str:
    """The inspector's HTML for `state`; every failure is a readable message."""
    if not state or state.get("doc") is None:
        if state and state.get("quote"):
            return (f'<div class="folio-note">The cited document was removed from the '
                    f'library.</div>{_quote(state)}')
        return EMPTY
    doc = documents.get_document(db, state["doc"])
    if doc is None:
        return f'<div class="folio-note">This document was removed from the library.</div>' \
               f'{_quote(state)}'
    if doc.kind == "pdf":
        page = state.get("page") or 1
        boxes = state.get("boxes") if page == state.get("cited_page") else []
        zoom_now = clamp_zoom(state.get("zoom"))
        try:
            copy = unlocked.get(doc.sha256) if unlocked is not None else None
            rendered = render_page(copy or doc.path, page, boxes, zoom=zoom_now or DEFAULT_ZOOM,
                                   password=None if copy else password_for(doc.path))
        except PageRenderError as exc:
            return f'<div class="folio-error">{html.escape(str(exc))}</div>{_quote(state)}'
        shown = "fit to width" if zoom_now == FIT else f"zoom {int(rendered.zoom * 100)}%"
        caption = f"{doc.display_name} · page {rendered.page} of {rendered.page_count} · {shown}"
        return _quote(state) + page_html(rendered, caption, fit=zoom_now == FIT)
    text = documents.document_text(db, doc.id) or ""
    start, end = (state.get("lines") or [None, None])[:2]
    return _quote(state) + code_html(text, doc.display_name, language=doc.language,
                                     line_start=start, line_end=end)


def navigate(db, state: dict | None, delta: int) -> dict | None:
    """Another page of the same PDF, kept within the document."""
    if not state or state.get("kind") != "pdf" or state.get("doc") is None:
        return state
    doc = documents.get_document(db, state["doc"])
    if doc is None:
        return state
    page = max(1, min(doc.pages or 1, (state.get("page") or 1) + delta))
    return {**state, "page": page}


def zoom(state: dict | None, factor: float) -> dict | None:
    """From "fit" the first step goes to 100% (out) or 150% (in)."""
    if not state:
        return state
    current = clamp_zoom(state.get("zoom"))
    if current == FIT:
        return {**state, "zoom": 1.0 if factor < 1 else DEFAULT_ZOOM}
    return {**state, "zoom": clamp_zoom(current * factor)}
