"""The per-document time budget: checked between pages, so a document that
parses slowly is abandoned with a clear error instead of stalling a batch.

A single MuPDF call cannot be interrupted in-process; the per-page
character limit (`IngestConfig.max_page_chars`) bounds each page, and
`ingest.isolate` runs a parse in a child process with hard limits.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from .errors import TimeLimitExceeded


@dataclass
class Deadline:
    path: Path
    seconds: float | None                 # None: no limit
    started: float = field(default_factory=time.monotonic)

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def check(self, where: str) -> None:
        """Raise TimeLimitExceeded when the budget is spent; `where` says how
        far parsing got ("at page 812 of 10,000")."""
        if self.seconds is not None and self.elapsed() > self.seconds:
            raise TimeLimitExceeded(
                self.path,
                f"parsing took longer than the limit of {self.seconds:g} s per document "
                f"(stopped {where}); split the file or raise max_seconds_per_document")
