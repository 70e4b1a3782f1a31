"""Plain text, Markdown and reStructuredText files to segments.

A line scanner finds blocks (headings, paragraphs, lists, tables, fenced or
literal code), headings give every block its section path, and blocks are
packed into segments of roughly `min_tokens`..`max_tokens`: small blocks of
one section are merged, big ones are cut at item, line or sentence
boundaries. Segments never straddle a heading, so a citation's section is
exact; a heading that has no text of its own before the next heading stays
a segment of kind "heading". Fenced code is kept whole (up to
`max_code_tokens`). Thematic breaks (`---`) and RST transitions are
separators and belong to no segment.

Modules: `text_blocks` (the line scanners), `text_pack` (cutting and
packing), this one (the file in, the document out).
"""
from __future__ import annotations

import re
from pathlib import Path

from .code.lines import LineStats
from .config import IngestConfig
from .decode import LineIndex, read_text_file
from .detect import MARKDOWN_EXTENSIONS, RST_EXTENSIONS
from .errors import EmptyDocument
from .hashing import sha256_bytes
from .model import ParsedDocument, Segment
from .text_blocks import Block, scan_blocks
from .table_parts import name_table_parts
from .text_pack import Packer, Piece

__all__ = ["parse_text"]


def _title(blocks: list[Block], index: LineIndex) -> str | None:
    if blocks and blocks[0].kind == "text" and blocks[0].first == 0:      # front matter
        for i in range(blocks[0].first, blocks[0].last + 1):
            match = re.match(r"^title:\s*(.+?)\s*$", index.line(i))
            if match:
                return match.group(1).strip("'\"") or None
    for block in blocks:
        if block.kind == "heading" and block.level == 1 and block.title:
            return block.title
    return None


def _format(path: Path) -> tuple[str, str | None]:
    """(mime, language) from the extension."""
    suffix = path.suffix.lower()
    if suffix in MARKDOWN_EXTENSIONS:
        return "text/markdown", "markdown"
    if suffix in RST_EXTENSIONS:
        return "text/x-rst", "restructuredtext"
    return "text/plain", None


def parse_text(path: Path | str, *, config: IngestConfig | None = None) -> ParsedDocument:
    """Parse a .txt/.md/.rst file (or README-style name). Raises TooLarge,
    BinaryFile, EmptyDocument or UnreadableEncoding."""
    config = config or IngestConfig()
    path = Path(path)
    decoded = read_text_file(path, config.max_text_bytes)
    index = LineIndex(decoded.text)
    stats = LineStats(index)
    mime, language = _format(path)
    blocks = scan_blocks(index, stats, language)
    if not blocks:
        raise EmptyDocument(path, "contains no text, only separators")

    packer = Packer(index, stats, config)
    segments: list[Segment] = []
    stack: list[Block] = []
    section: list[str] = []
    run: list[Piece] = []

    def flush() -> None:
        for group in packer.pack(run):
            segments.append(packer.segment(group, section))
        run.clear()

    for block in blocks:
        if block.kind == "heading":
            flush()
            while stack and stack[-1].level >= block.level:
                stack.pop()
            stack.append(block)
            section = [b.title for b in stack]
        run.extend(packer.pieces(block))
    flush()
    name_table_parts(segments, decoded.text)

    warnings = []
    if decoded.encoding not in ("utf-8", "utf-8-sig", "utf-16", "utf-16-le", "utf-16-be", "utf-32"):
        warnings.append(f"not UTF-8: decoded as {decoded.encoding}")
    return ParsedDocument(
        path=path, display_name=path.name, kind="text", mime=mime,
        sha256=sha256_bytes(decoded.data), size=len(decoded.data), segments=segments,
        text=decoded.text, language=language, title=_title(blocks, index), warnings=warnings)
