"""Decide how a file is ingested: "pdf", "code", "text" or None (unsupported).

Mostly by name, because that is what the user sees and cheap for a walk over
thousands of files; the first bytes are read only to catch PDFs saved under
another name and extensionless scripts with a shebang line.
"""
from __future__ import annotations

from pathlib import Path
from typing import Literal

from .code.languages import language_for_name, language_from_shebang

Kind = Literal["pdf", "code", "text"]

TEXT_EXTENSIONS = frozenset({
    ".txt", ".text", ".md", ".markdown", ".mdown", ".mkd", ".mkdn",
    ".rst", ".rest",
})
MARKDOWN_EXTENSIONS = frozenset({".md", ".markdown", ".mdown", ".mkd", ".mkdn"})
RST_EXTENSIONS = frozenset({".rst", ".rest"})

# Project documents conventionally named without an extension (or with one
# that says nothing about the format, like LICENSE.MIT).
TEXT_NAMES = frozenset({
    "readme", "license", "licence", "copying", "copyright", "changelog",
    "changes", "history", "news", "authors", "contributors", "contributing",
    "notice", "todo", "install", "thanks", "credits", "maintainers",
    "security", "code_of_conduct", "releasenotes", "release-notes",
})

PDF_MAGIC = b"%PDF-"


def _head(path: Path, size: int = 1024) -> bytes:
    try:
        with open(path, "rb") as handle:
            return handle.read(size)
    except OSError:
        return b""


def is_text_name(path: Path) -> bool:
    """README, LICENSE.MIT, CHANGELOG and friends."""
    return path.name.lower().split(".", 1)[0] in TEXT_NAMES


def detect_kind(path: Path | str) -> Kind | None:
    """How `path` should be parsed, or None when it is not supported."""
    path = Path(path)
    suffix = path.suffix.lower()
    head = _head(path) if path.is_file() else b""
    if head.startswith(PDF_MAGIC) or suffix == ".pdf":
        return "pdf"
    if suffix in TEXT_EXTENSIONS and path.name.lower() != "cmakelists.txt":
        return "text"
    if language_for_name(path) is not None:
        return "code"
    if is_text_name(path):
        return "text"
    if PDF_MAGIC in head:      # PDF header after some junk, unknown extension
        return "pdf"
    if not suffix and head.startswith(b"#!"):
        first = head.split(b"\n", 1)[0].decode("utf-8", "replace")
        if language_from_shebang(first) is not None:
            return "code"
    return None
