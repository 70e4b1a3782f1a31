"""Turn files into segments with exact spans. Pure: no storage, no models."""
from __future__ import annotations

from pathlib import Path

from .config import IngestConfig
from .errors import IngestError, UnsupportedFile
from .model import LineBox, PageInfo, ParsedDocument, Segment
from .progress import Progress, ProgressFn, no_progress

__all__ = [
    "IngestConfig", "IngestError", "LineBox", "PageInfo", "ParsedDocument",
    "Progress", "ProgressFn", "Segment", "parse_file",
]


def parse_file(path: Path, *, password: str | None = None,
               config: IngestConfig | None = None,
               progress: ProgressFn = no_progress) -> ParsedDocument:
    """Parse one file of any supported kind; raises a specific IngestError."""
    from .detect import detect_kind

    config = config or IngestConfig()
    path = Path(path)
    kind = detect_kind(path)
    if kind == "pdf":
        from .pdf import parse_pdf
        return parse_pdf(path, password=password, config=config, progress=progress)
    if kind == "code":
        from .code import parse_code
        return parse_code(path, config=config)
    if kind == "text":
        from .text import parse_text
        return parse_text(path, config=config)
    raise UnsupportedFile(path, f"unsupported file type '{path.suffix or path.name}'")
