"""Progress reporting shared by the terminal bar and the UI."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable


@dataclass
class Progress:
    stage: str            # "parse", "store", "embed", "walk"
    done: int
    total: int | None
    unit: str             # "pages", "files", "segments"
    item: str | None = None  # the file being worked on


ProgressFn = Callable[[Progress], None]


def no_progress(_: Progress) -> None:
    """Default callback: report nothing."""
