"""Ingestion limits and switches, one dataclass so callers can override any."""
from __future__ import annotations

from dataclasses import dataclass, field

# Folders that hold third-party, generated or tool state rather than the
# user's own sources; skipped when walking a folder.
SKIPPED_DIRS = frozenset({
    ".git", ".hg", ".svn", "node_modules", "vendor", "third_party",
    "third-party", "__pycache__", ".venv", "venv", "env", ".tox", ".nox",
    ".mypy_cache", ".pytest_cache", ".ruff_cache", "site-packages", "dist",
    "build", "target", ".idea", ".vscode", ".eggs", "bower_components",
    ".next", ".cache", "coverage", "htmlcov", ".gradle", "Pods",
})


@dataclass
class IngestConfig:
    min_tokens: int = 60              # merge smaller paragraphs up to this
    max_tokens: int = 350             # split anything larger than this
    max_code_tokens: int = 900        # a function larger than this is split
    max_text_bytes: int = 2_000_000   # code / text files above this are skipped
    max_pdf_bytes: int = 1_000_000_000
    max_pdf_pages: int = 20_000
    # Per-document budget, so one pathological PDF cannot stall a batch: a
    # page with more characters than this (a "glyph bomb") is kept without
    # its text, and parsing that runs past the time limit is abandoned.
    # A dense real page has ~15,000 characters; the slowest real manual
    # parses at ~150 pages/s, so 20,000 pages fit well inside 600 s.
    max_page_chars: int = 200_000
    max_seconds_per_document: float | None = 600.0
    ocr: bool | None = None           # None: OCR when tesseract is installed
    ocr_language: str = "eng"
    find_tables: bool = True
    skipped_dirs: frozenset[str] = field(default=SKIPPED_DIRS)
