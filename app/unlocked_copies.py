"""Decrypted copies of password-protected PDFs, kept in the data dir.

A password lives only in memory, so after a restart the inspector could not
draw an encrypted PDF's pages until the person typed it again. When a
password opens a PDF, Folio keeps a decrypted copy under
`<home>/unlocked/<sha256>.pdf` and renders from it. This exposes nothing
new: the document's text is already stored in the library, in the same
folder, in plain form. Copies of removed documents are swept.
"""
from __future__ import annotations

import os
from pathlib import Path


class UnlockedCopies:
    def __init__(self, folder: Path):
        self.folder = Path(folder)

    def path_for(self, sha256: str) -> Path:
        if not sha256 or not all(c in "0123456789abcdef" for c in sha256):
            raise ValueError(f"not a sha256: {sha256!r}")
        return self.folder / f"{sha256}.pdf"

    def get(self, sha256: str) -> Path | None:
        path = self.path_for(sha256)
        return path if path.is_file() else None

    def save(self, source: Path, password: str, sha256: str) -> Path | None:
        """Write the decrypted copy (atomically); None when the password does
        not open `source` (nothing is written then)."""
        import pymupdf

        dest = self.path_for(sha256)
        if dest.is_file():
            return dest
        doc = pymupdf.open(source)
        try:
            if doc.needs_pass and not doc.authenticate(password):
                return None
            self.folder.mkdir(parents=True, exist_ok=True)
            tmp = dest.with_suffix(f".tmp-{os.getpid()}")
            doc.save(tmp, encryption=pymupdf.PDF_ENCRYPT_NONE, garbage=1)
        finally:
            doc.close()
        os.replace(tmp, dest)
        return dest

    def remove(self, sha256: str) -> bool:
        path = self.path_for(sha256)
        if path.is_file():
            path.unlink()
            return True
        return False

    def sweep(self, keep: set[str]) -> int:
        """Delete copies (and interrupted writes) of documents not in `keep`."""
        if not self.folder.is_dir():
            return 0
        removed = 0
        for path in self.folder.iterdir():
            if path.is_file() and (path.suffix != ".pdf" or path.stem not in keep):
                path.unlink()
                removed += 1
        return removed
