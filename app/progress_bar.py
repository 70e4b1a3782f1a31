"""A terminal progress bar (count, rate, ETA) fed by ingest Progress events."""
from __future__ import annotations

import sys
import time
from typing import TextIO

from ingest.progress import Progress


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    if seconds >= 60:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds}s"


class TerminalProgress:
    """Redraws one line on a terminal; on a pipe, prints a line now and then
    so logs stay readable."""

    def __init__(self, stream: TextIO = sys.stderr, width: int = 24,
                 interval: float = 0.1, quiet: bool = False):
        self.stream = stream
        self.width = width
        self.interval = interval if stream.isatty() else 5.0
        self.quiet = quiet
        self._stage: tuple | None = None
        self._started = 0.0
        self._last = 0.0
        self._drawn = False

    def __call__(self, event: Progress) -> None:
        if self.quiet or (event.stage == "files" and (event.total or 0) < 2):
            return
        # One bar for the whole batch of files; one per document for pages.
        key = event.stage if event.stage == "files" else (event.stage, event.item)
        now = time.perf_counter()
        if key != self._stage:
            self.finish()
            self._stage, self._started, self._last = key, now, 0.0
        complete = event.total is not None and event.done >= event.total
        if not complete and now - self._last < self.interval:
            return
        self._last = now
        self._draw(event, now - self._started, complete)

    def line(self, event: Progress, elapsed: float) -> str:
        rate = event.done / elapsed if elapsed > 0 else 0.0
        label = f"{event.stage} {event.item}" if event.item else event.stage
        if event.total:
            filled = int(self.width * min(event.done / event.total, 1.0))
            bar = "#" * filled + "-" * (self.width - filled)
            eta = (event.total - event.done) / rate if rate > 0 else 0
            return (f"{label} [{bar}] {event.done}/{event.total} {event.unit} "
                    f"{rate:.1f}/s ETA {_duration(eta)}")
        return f"{label} {event.done} {event.unit} {rate:.1f}/s"

    def _draw(self, event: Progress, elapsed: float, complete: bool) -> None:
        text = self.line(event, elapsed)
        if self.stream.isatty():
            self.stream.write("\r\033[K" + text)
            self._drawn = True
            if complete:
                self.finish()
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    def finish(self) -> None:
        if self._drawn:
            self.stream.write("\n")
            self.stream.flush()
            self._drawn = False
