"""Source files to segments: one per function, class header or block of
top-level code, each with exact line ranges and a qualified name.

Python goes through `ast`; JavaScript/TypeScript, Go, Rust, Java, C and C++
through tree-sitter; everything else through line windows. Python that
`ast` rejects falls back to tree-sitter, and anything a parser chokes on
falls back to line windows, with a note in `doc.warnings` -- a source file
is never refused for its content, only for being binary, empty or too big.
"""
from __future__ import annotations

from pathlib import Path

from ..config import IngestConfig
from ..decode import LineIndex, read_text_file
from ..hashing import sha256_bytes
from ..model import ParsedDocument
from .languages import PYTHON, Language, language_for
from .lines import LineStats
from .units import MODULE_HEADER, Unit, build_segments

__all__ = ["parse_code"]

_COMMENTS = {"python": ("#",)}
_LEGACY_NOTE = {"utf-8", "utf-8-sig", "utf-16", "utf-16-le", "utf-16-be", "utf-32"}


def _find_units(lang: Language, text: str, index: LineIndex,
                warnings: list[str]) -> tuple[list[Unit], frozenset[int] | None, str | None]:
    """(units, top-level statement starts, title) with fallbacks on failure."""
    from .treesitter import treesitter_units

    if lang.parser == "python":
        from .python_ast import python_units
        try:
            return python_units(text)
        except SyntaxError as exc:
            where = f" at line {exc.lineno}" if exc.lineno else ""
            warnings.append(f"Python syntax error{where} ({exc.msg or exc}); "
                            "parsed with the error-tolerant parser, so units may be coarser")
    if lang.parser in ("python", "treesitter"):
        try:
            units, breaks, notes = treesitter_units(lang.grammar or lang.name, text, index)
            if lang is not PYTHON:
                warnings.extend(notes)
            return units, breaks, None
        except Exception as exc:  # a grammar failure must not lose the file
            warnings.append(f"could not parse the {lang.name} source ({exc}); "
                            "split into line windows instead")
    return [], None, None


def parse_code(path: Path | str, *, config: IngestConfig | None = None) -> ParsedDocument:
    """Parse one source file. Raises TooLarge, BinaryFile, EmptyDocument or
    UnreadableEncoding; never fails on the code itself."""
    config = config or IngestConfig()
    path = Path(path)
    decoded = read_text_file(path, config.max_text_bytes)
    text = decoded.text
    lang = language_for(path, text)
    index = LineIndex(text)
    warnings: list[str] = []
    if decoded.encoding not in _LEGACY_NOTE:
        warnings.append(f"not UTF-8: decoded as {decoded.encoding}")
    units, breaks, title = _find_units(lang, text, index, warnings)
    segments, cut = build_segments(LineStats(index), units, config,
                                   comment_prefixes=_COMMENTS.get(lang.name, ()),
                                   top_breaks=breaks,
                                   header_name=None if lang.parser == "lines" else MODULE_HEADER)
    if cut:
        warnings.append("has lines too long for one segment (minified or generated code?); "
                        "they were cut inside the line")
    return ParsedDocument(
        path=path, display_name=path.name, kind="code", mime=lang.mime,
        sha256=sha256_bytes(decoded.data), size=len(decoded.data), segments=segments,
        text=text, language=lang.name, title=title, warnings=warnings)
