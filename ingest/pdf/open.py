"""Open a PDF safely: size/page limits, passwords, repairs, corrupt files.

Every failure becomes one of the specific errors in `ingest.errors`, naming
the file, so the caller never sees a raw MuPDF exception. MuPDF's own
stderr chatter is silenced; its messages are collected instead and quoted in
the error text, where they help the user understand what is wrong.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

# pymupdf prints a hint to stdout on the first find_tables call when its
# optional layout package is missing; that would leak into CLI output.
os.environ.setdefault("PYMUPDF_SUGGEST_LAYOUT_ANALYZER", "0")

import pymupdf  # noqa: E402

from ..config import IngestConfig  # noqa: E402
from ..errors import (CorruptFile, EmptyDocument, PasswordRequired,  # noqa: E402
                      TooLarge, WrongPassword)

REPAIRED_WARNING = "the file was damaged and has been repaired"

_quiet = False


def quiet_mupdf() -> None:
    """Stop MuPDF writing errors and warnings to stderr (once per process).

    The messages are still recorded and can be read with `mupdf_messages`.
    """
    global _quiet
    if not _quiet:
        pymupdf.TOOLS.mupdf_display_errors(False)
        pymupdf.TOOLS.mupdf_display_warnings(False)
        _quiet = True


def mupdf_messages(reset: bool = True) -> list[str]:
    """MuPDF's recent warning lines (de-duplicated, in order)."""
    text = pymupdf.TOOLS.mupdf_warnings(reset=reset) or ""
    seen: dict[str, None] = {}
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("... repeated"):
            seen.setdefault(line, None)
    return list(seen)


def _detail(exc: BaseException | None, messages: list[str]) -> str:
    """A short human reason: MuPDF's most telling message, else the exception."""
    for msg in messages:
        if "error" in msg.lower() or "cannot" in msg.lower():
            return msg[:200]
    if messages:
        return messages[0][:200]
    text = str(exc).strip() if exc else ""
    return (text or type(exc).__name__)[:200] if exc else "unknown error"


@dataclass
class OpenedPdf:
    doc: pymupdf.Document
    warnings: list[str] = field(default_factory=list)


def open_document(path: Path, password: str | None) -> pymupdf.Document:
    """Open and authenticate without the limit checks (used by workers, which
    re-open a file the parent already validated)."""
    quiet_mupdf()
    doc = pymupdf.open(str(path), filetype="pdf")
    if doc.needs_pass and not doc.authenticate(password or ""):
        doc.close()
        raise WrongPassword(path)
    return doc


def open_pdf(path: Path, password: str | None, config: IngestConfig) -> OpenedPdf:
    """Open `path` for parsing or raise the specific IngestError.

    Owner-password-only files (restrictions, no user password) open without
    a password: MuPDF reports `needs_pass` false for them.
    """
    quiet_mupdf()
    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise CorruptFile(path, f"cannot read the file ({exc.strerror or exc})") from exc
    if size > config.max_pdf_bytes:
        raise TooLarge(path, f"the file is {size:,} bytes; the limit is "
                             f"{config.max_pdf_bytes:,}")
    if size == 0:
        raise EmptyDocument(path, "the file is empty")
    mupdf_messages()  # drop messages left over from earlier files
    try:
        doc = pymupdf.open(str(path), filetype="pdf")
    except Exception as exc:  # MuPDF raises FileDataError, RuntimeError, ...
        raise CorruptFile(path, f"not a readable PDF ({_detail(exc, mupdf_messages())})") from exc
    try:
        if doc.needs_pass:
            if password is None:
                raise PasswordRequired(path)
            if not doc.authenticate(password):
                raise WrongPassword(path)
        try:
            pages = doc.page_count
        except Exception as exc:
            raise CorruptFile(path, f"not a readable PDF ({_detail(exc, mupdf_messages())})") from exc
        if pages == 0:
            raise EmptyDocument(path, "the PDF has no pages")
        if pages > config.max_pdf_pages:
            raise TooLarge(path, f"the PDF has {pages:,} pages; the limit is "
                                 f"{config.max_pdf_pages:,}")
    except Exception:
        doc.close()
        raise
    warnings = [REPAIRED_WARNING] if doc.is_repaired else []
    return OpenedPdf(doc, warnings)
