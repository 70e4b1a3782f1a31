"""Pages without a text layer: detect them and, when possible, OCR them.

A scanned page has (almost) no text but images over much of its area.
OCR goes through pymupdf's Tesseract binding, which needs the `tesseract`
binary; with `config.ocr` None we OCR only when it is installed, so a
missing optional tool is a warning, not a failure.
"""
from __future__ import annotations

import shutil
from typing import Any

import pymupdf

from ..config import IngestConfig
from .lines import TEXT_FLAGS

NO_TEXT_CHARS = 40       # fewer printed characters than this is "little text"
SCAN_COVERAGE = 0.5      # ... when images cover at least this much of the page
OCR_DPI = 200
MAX_OCR_PIXELS = 4000    # longest side of the rendered page


def tesseract_path() -> str | None:
    return shutil.which("tesseract")


def ocr_enabled(config: IngestConfig) -> bool:
    """OCR when asked to, or by default when tesseract is installed."""
    if config.ocr is None:
        return tesseract_path() is not None
    return bool(config.ocr)


def image_coverage(page: pymupdf.Page) -> float:
    """Fraction of the page area covered by images (overlaps counted twice)."""
    try:
        infos = page.get_image_info()
    except Exception:
        return 0.0
    rect = page.rect
    area = rect.width * rect.height
    if area <= 0:
        return 0.0
    covered = 0.0
    for info in infos:
        r = pymupdf.Rect(info["bbox"]) & rect
        if not r.is_empty:
            covered += r.width * r.height
    return min(covered / area, 1.0)


def lacks_text_layer(page: pymupdf.Page, chars: int) -> bool:
    """No text, or little text over a page-sized image (a scan)."""
    if chars >= NO_TEXT_CHARS:
        return False
    coverage = image_coverage(page)
    return coverage >= SCAN_COVERAGE or (chars == 0 and coverage > 0.05)


def ocr_dpi(page: pymupdf.Page) -> int:
    """200 dpi reads normal print as well as 300 and is faster; very large
    pages are rendered coarser so the image stays under ~4000 pixels."""
    longest = max(page.rect.width, page.rect.height) / 72  # inches
    return max(72, min(OCR_DPI, int(MAX_OCR_PIXELS / max(longest, 1e-3))))


def ocr_dict(page: pymupdf.Page, config: IngestConfig) -> dict[str, Any]:
    """The page's text dictionary from a full-page OCR pass."""
    textpage = page.get_textpage_ocr(flags=TEXT_FLAGS, language=config.ocr_language,
                                     dpi=ocr_dpi(page), full=True)
    return page.get_text("dict", flags=TEXT_FLAGS, textpage=textpage)
