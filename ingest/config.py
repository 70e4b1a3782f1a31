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
    ocr: bool | None = None           # None: OCR when tesseract is installed
    ocr_language: str = "eng"
    find_tables: bool = True
    skipped_dirs: frozenset[str] = field(default=SKIPPED_DIRS)
