"""A PDF page as a PNG with the cited words marked, for the citation inspector.

The page is rasterised by pymupdf at the chosen zoom; the highlight boxes are
returned separately (scaled to pixels) and drawn as HTML overlays, so they
stay crisp, can be counted by tests and never alter the rendered page.
Boxes are in PDF points with a top-left origin, the same space pymupdf's
text extraction uses, so scaling by the zoom is the whole transform.
"""
from __future__ import annotations

import base64
import html
from dataclasses import dataclass, field
from pathlib import Path

MIN_ZOOM, MAX_ZOOM = 0.5, 4.0
DEFAULT_ZOOM = 1.5   # ~108 dpi: body text of a letter page reads comfortably
FIT = 0.0            # zoom 0: as wide as the inspector, drawn at DEFAULT_ZOOM or finer


class PageRenderError(Exception):
    """The page cannot be drawn (file gone, password unknown, no such page)."""


@dataclass
class RenderedPage:
    png: bytes
    width: int            # pixels
    height: int
    page: int             # 1-based
    page_count: int
    zoom: float
    boxes: list[list[float]] = field(default_factory=list)   # pixels, x0 y0 x1 y1


def clamp_zoom(zoom: float | None) -> float:
    """A zoom within bounds; FIT (0) stays FIT."""
    try:
        zoom = float(zoom) if zoom is not None else FIT
    except (TypeError, ValueError):
        zoom = FIT
    if zoom <= 0:
        return FIT
    return min(MAX_ZOOM, max(MIN_ZOOM, zoom))


def render_page(path: Path | str, page: int, boxes: list[list[float]] | None = None, *,
                zoom: float = DEFAULT_ZOOM, password: str | None = None) -> RenderedPage:
    """Rasterise 1-based `page` of the PDF at `path`; scale `boxes` to pixels."""
    from ingest.errors import IngestError
    from ingest.pdf.open import open_document

    path = Path(path)
    if not path.is_file():
        raise PageRenderError(f"{path.name}: the file is no longer at {path}")
    zoom = clamp_zoom(zoom) or DEFAULT_ZOOM
    try:
        doc = open_document(path, password)
    except IngestError as exc:
        raise PageRenderError(str(exc)) from exc
    except Exception as exc:   # MuPDF's own errors: a damaged file
        raise PageRenderError(f"{path.name}: cannot open the PDF ({exc})") from exc
    try:
        count = doc.page_count
        if not 1 <= page <= count:
            raise PageRenderError(f"{path.name} has {count} pages; there is no page {page}")
        import pymupdf

        pix = doc[page - 1].get_pixmap(matrix=pymupdf.Matrix(zoom, zoom), alpha=False)
        png = pix.tobytes("png")
        scaled = [[round(v * zoom, 1) for v in box[:4]] for box in boxes or [] if len(box) >= 4]
        return RenderedPage(png, pix.width, pix.height, page, count, zoom, scaled)
    finally:
        doc.close()


def _pct(value: float, whole: int) -> str:
    return f"{100 * value / whole:.3f}%" if whole else "0%"


def page_html(rendered: RenderedPage, caption: str = "", *, fit: bool = False) -> str:
    """The page image with highlight boxes over it, placed in percent of the
    page so they stay on the words at any displayed size. `fit` shows the
    page as wide as the inspector; otherwise at its rendered pixel size."""
    data = base64.b64encode(rendered.png).decode("ascii")
    w, h = rendered.width, rendered.height
    marks = "".join(
        f'<div class="folio-hl" style="left:{_pct(x0, w)};top:{_pct(y0, h)};'
        f'width:{_pct(max(x1 - x0, 2), w)};height:{_pct(max(y1 - y0, 2), h)}"></div>'
        for x0, y0, x1, y1 in rendered.boxes)
    cap = f'<div class="folio-page-caption">{html.escape(caption)}</div>' if caption else ""
    size = "width:100%" if fit else f"width:{w}px"
    return (f'{cap}<div class="folio-page-scroll"><div class="folio-page" '
            f'data-page="{rendered.page}" style="{size}">'
            f'<img alt="page {rendered.page}" src="data:image/png;base64,{data}" '
            f'style="width:100%;height:auto">{marks}</div></div>')
