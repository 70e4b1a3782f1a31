"""PDF ingestion: pages in reading order, segments with exact spans and boxes.

Modules, one job each: `open` (limits, passwords, repairs, errors),
`lines` (MuPDF text dict -> printed lines), `layout` (reading order),
`furniture` (running headers/footers), `blocks` (paragraphs, lists, code),
`headings` (font statistics, outline matching, section paths), `tables`
(ruled tables as Markdown), `pagetext` (the page text spans index into),
`segments` (chunking), `ocr` (pages without text), `page` (one page end to
end) and `document` (whole file, serial or in a process pool).
"""
from __future__ import annotations

from .document import parse_pages, parse_pdf

__all__ = ["parse_pdf", "parse_pages"]
