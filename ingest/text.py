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
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

from .config import IngestConfig
from .decode import LineIndex, read_text_file
from .detect import MARKDOWN_EXTENSIONS, RST_EXTENSIONS
from .errors import EmptyDocument
from .hashing import sha256_bytes
from .model import ParsedDocument, Segment
from .code.lines import LineStats, split_range
from .tokens import count_tokens

__all__ = ["parse_text"]


@dataclass
class _Block:
    kind: str            # heading, paragraph, list, table, code-block, text
    first: int           # 0-based lines, inclusive
    last: int
    level: int = 0       # heading level (1 = top)
    title: str = ""      # heading text


# -- Markdown (also used for plain text, where the same conventions are common)

_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})(.*)$")
_ATX = re.compile(r"^ {0,3}(#{1,6})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$")
_SETEXT = re.compile(r"^ {0,3}(=+|-+)[ \t]*$")
_HR = re.compile(r"^ {0,3}([-*_])(?:[ \t]*\1){2,}[ \t]*$")
_LIST = re.compile(r"^[ \t]*(?:[-*+•]|\d{1,9}[.)])(?:[ \t]+|$)")
_UNDERLINE = re.compile(r"^ {0,3}([=\-~^*+#_.:'\"`])\1{2,}[ \t]*$")
_TABLE_DELIM = re.compile(r"^ *\|? *:?-+:? *(?:\| *:?-+:? *)*\|? *$")


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" \t"))


class _Scanner:
    def __init__(self, index: LineIndex, stats: LineStats):
        self.index, self.stats, self.n = index, stats, len(index)

    def line(self, i: int) -> str:
        return self.index.line(i)

    def blank(self, i: int) -> bool:
        return self.stats.blank[i]

    def next_nonblank(self, i: int) -> int | None:
        while i < self.n and self.blank(i):
            i += 1
        return i if i < self.n else None

    def last_nonblank(self, first: int, stop: int) -> int:
        """Last non-blank line in first..stop-1."""
        last = stop - 1
        while last > first and self.blank(last):
            last -= 1
        return last


class _Markdown(_Scanner):
    """CommonMark-ish blocks. With `plain`, for .txt and README-style files:
    titles may be underlined with any punctuation (`~~~`, `***`), and a
    fence only counts when it is closed, since plain text has no fences."""

    def __init__(self, index: LineIndex, stats: LineStats, plain: bool = False):
        super().__init__(index, stats)
        self.plain = plain
        # underline characters by level: fixed in Markdown, in order of
        # first use in plain text (as in reStructuredText)
        self.styles: list[str] = [] if plain else ["=", "-"]

    def blocks(self) -> list[_Block]:
        out: list[_Block] = []
        i = self._front_matter(out)
        while i < self.n:
            if self.blank(i):
                i += 1
                continue
            i = self._block(i, out)
        return out

    def _front_matter(self, out: list[_Block]) -> int:
        if self.n == 0 or self.line(0).strip() != "---":
            return 0
        for j in range(1, min(self.n, 200)):
            if self.line(j).strip() in ("---", "..."):
                if j > 1:
                    out.append(_Block("text", 0, j))
                return j + 1 if j > 1 else 0
        return 0

    def _block(self, i: int, out: list[_Block]) -> int:
        line = self.line(i)
        fence = _FENCE.match(line)
        if fence and not (fence.group(1)[0] == "`" and "`" in fence.group(2)):
            mark = fence.group(1)
            j = i + 1
            while j < self.n:
                close = _FENCE.match(self.line(j))
                if (close and close.group(1)[0] == mark[0] and len(close.group(1)) >= len(mark)
                        and not close.group(2).strip()):
                    break
                j += 1
            if j < self.n or not self.plain:
                last = min(j, self.n - 1)
                out.append(_Block("code-block", i, self.last_nonblank(i, last + 1)))
                return last + 1
        atx = _ATX.match(line)
        if atx:
            out.append(_Block("heading", i, i, len(atx.group(1)), (atx.group(2) or "").strip()))
            return i + 1
        if _HR.match(line):
            return i + 1
        if "|" in line and i + 1 < self.n and "-" in self.line(i + 1) \
                and _TABLE_DELIM.match(self.line(i + 1)):
            j = i + 2
            while j < self.n and not self.blank(j) and "|" in self.line(j):
                j += 1
            out.append(_Block("table", i, j - 1))
            return j
        if _LIST.match(line):
            return self._list(i, out)
        return self._paragraph(i, out)

    def _interrupts(self, line: str) -> bool:
        return bool(_ATX.match(line) or _FENCE.match(line) or _HR.match(line))

    def _list(self, i: int, out: list[_Block]) -> int:
        base = _indent(self.line(i))
        j = i + 1
        while j < self.n:
            if self.blank(j):
                k = self.next_nonblank(j)
                if k is None:
                    break
                following = self.line(k)
                if _indent(following) > base or (_LIST.match(following) and _indent(following) >= base
                                                 and not _HR.match(following)):
                    j = k
                    continue
                break
            line = self.line(j)
            if _indent(line) <= base and self._interrupts(line):
                break
            j += 1
        out.append(_Block("list", i, self.last_nonblank(i, j)))
        return j

    def _paragraph(self, i: int, out: list[_Block]) -> int:
        j = i + 1
        while j < self.n and not self.blank(j):
            line = self.line(j)
            setext = _SETEXT.match(line) or (self.plain and j == i + 1
                                              and _UNDERLINE.match(line))
            if setext:
                char = setext.group(1)[0]
                if char not in self.styles:
                    self.styles.append(char)
                title = " ".join(self.line(k).strip() for k in range(i, j))
                out.append(_Block("heading", i, j, self.styles.index(char) + 1, title))
                return j + 1
            if self._interrupts(line) or (_LIST.match(line) and not line[:1].isspace()):
                break
            j += 1
        out.append(_Block("paragraph", i, j - 1))
        return j


# -- reStructuredText ---------------------------------------------------------

_ADORN = set("=-`:'\"~^_*+#<>.!$%&(),/;?@[\\]{|}")
_RST_LIST = re.compile(r"^[ \t]*(?:[-*+•]|\d{1,9}[.)]|#\.|\(?[0-9a-zA-Z#]\))[ \t]+\S")
_SIMPLE_TABLE = re.compile(r"^[ \t]*=+(?:[ \t]+=+)+[ \t]*$")
_CODE_DIRECTIVES = ("code", "code-block", "sourcecode", "highlight", "literalinclude",
                    "doctest", "testcode", "math")


def _is_adornment(line: str) -> bool:
    stripped = line.rstrip()
    return (len(stripped) >= 2 and stripped[0] in _ADORN and not line[:1].isspace()
            and stripped == stripped[0] * len(stripped) and stripped not in ("::", ".."))


class _Rst(_Scanner):
    def __init__(self, index: LineIndex, stats: LineStats):
        super().__init__(index, stats)
        self.styles: list[tuple[str, bool]] = []

    def _level(self, char: str, over: bool) -> int:
        if (char, over) not in self.styles:
            self.styles.append((char, over))
        return self.styles.index((char, over)) + 1

    def blocks(self) -> list[_Block]:
        out: list[_Block] = []
        i = 0
        while i < self.n:
            if self.blank(i):
                i += 1
                continue
            i = self._block(i, out)
        return out

    def _indented_end(self, j: int, indent: int) -> int:
        """End (exclusive) of the lines from j on indented deeper than `indent`,
        blank lines included when more indented text follows."""
        while j < self.n:
            if self.blank(j):
                k = self.next_nonblank(j)
                if k is None or _indent(self.line(k)) <= indent:
                    return j
                j = k
            elif _indent(self.line(j)) > indent:
                j += 1
            else:
                return j
        return j

    def _block(self, i: int, out: list[_Block]) -> int:
        line = self.line(i)
        nxt = self.line(i + 1) if i + 1 < self.n else ""
        if (_is_adornment(line) and i + 2 < self.n and not self.blank(i + 1)
                and _is_adornment(self.line(i + 2)) and self.line(i + 2)[0] == line[0]):
            out.append(_Block("heading", i, i + 2, self._level(line[0], True),
                              self.line(i + 1).strip()))
            return i + 3
        if (not line[:1].isspace() and not _is_adornment(line) and _is_adornment(nxt)
                and len(nxt.rstrip()) >= min(len(line.rstrip()), 3)):
            out.append(_Block("heading", i, i + 1, self._level(nxt[0], False), line.strip()))
            return i + 2
        if _is_adornment(line) and len(line.strip()) >= 4:
            return i + 1                       # a transition
        stripped = line.lstrip()
        if stripped.startswith(("+-", "+=")):
            j = i + 1
            while j < self.n and not self.blank(j):
                j += 1
            out.append(_Block("table", i, j - 1))
            return j
        if _SIMPLE_TABLE.match(line):
            return self._simple_table(i, out)
        if stripped.startswith(".. "):
            end = self._indented_end(i + 1, _indent(line))
            name = stripped[3:].split("::", 1)[0].strip() if "::" in stripped else ""
            kind = "code-block" if name in _CODE_DIRECTIVES else "paragraph"
            out.append(_Block(kind, i, self.last_nonblank(i, end)))
            return end
        if _RST_LIST.match(line):
            end = self._indented_end(i + 1, _indent(line))
            while end < self.n:                      # further items of the same list
                k = self.next_nonblank(end)
                if k is None or not _RST_LIST.match(self.line(k)) \
                        or _indent(self.line(k)) != _indent(line):
                    break
                end = self._indented_end(k + 1, _indent(line))
            out.append(_Block("list", i, self.last_nonblank(i, end)))
            return end
        j = i + 1
        while j < self.n and not self.blank(j):
            j += 1
        out.append(_Block("paragraph", i, j - 1))
        if self.line(j - 1).rstrip().endswith("::"):
            k = self.next_nonblank(j)
            if k is not None and _indent(self.line(k)) > _indent(line):
                end = self._indented_end(k, _indent(line))
                out.append(_Block("code-block", k, self.last_nonblank(k, end)))
                return end
        return j

    def _simple_table(self, i: int, out: list[_Block]) -> int:
        j, borders = i + 1, 1
        while j < self.n:
            if self.blank(j) and borders >= 2 and _SIMPLE_TABLE.match(self.line(j - 1)):
                break
            if _SIMPLE_TABLE.match(self.line(j)):
                borders += 1
            j += 1
        out.append(_Block("table", i, self.last_nonblank(i, j)))
        return j


# -- cutting big blocks and packing small ones ----------------------------------

_SENTENCE_END = re.compile(r"[.!?]+[\"'”’)\]]*(?=\s)|[。！？]")


@dataclass
class _Piece:
    start: int           # character span in the document text
    end: int
    kind: str
    tokens: int
    heading: bool = False


def _trimmed(text: str, start: int, end: int) -> tuple[int, int] | None:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return (start, end) if start < end else None


def _split_chars(text: str, start: int, end: int, max_tokens: int) -> list[tuple[int, int]]:
    """Cut text[start:end] at sentence ends (then line breaks, then spaces)
    into balanced spans of at most `max_tokens` where possible."""
    atoms: list[tuple[int, int]] = []

    def add(a: int, b: int, level: int) -> None:
        span = _trimmed(text, a, b)
        if span is None:
            return
        a, b = span
        if count_tokens(text[a:b]) <= max_tokens or level == 3:
            atoms.append((a, b))
            return
        pattern = (_SENTENCE_END, re.compile(r"\n"), re.compile(r"\s+"))[level]
        cursor = a
        for match in pattern.finditer(text, a, b):
            add(cursor, match.end(), level + 1)
            cursor = match.end()
        add(cursor, b, level + 1)

    add(start, end, 0)
    sizes = [count_tokens(text[a:b]) for a, b in atoms]
    target = sum(sizes) / max(1, math.ceil(sum(sizes) / max_tokens))
    spans, first, size, prev_end = [], None, 0, start
    for (a, b), tokens in zip(atoms, sizes):
        if first is not None and size + tokens > max_tokens:
            spans.append((first, prev_end))
            first, size = None, 0
        if first is None:
            first = a
        size += tokens
        prev_end = b
        if size >= target:
            spans.append((first, b))
            first, size = None, 0
    if first is not None:
        spans.append((first, prev_end))
    return spans


class _Packer:
    def __init__(self, index: LineIndex, stats: LineStats, config: IngestConfig):
        self.index, self.stats, self.config = index, stats, config

    def pieces(self, block: _Block) -> list[_Piece]:
        """A block as one piece, or cut into pieces when it is too big."""
        text = self.index.text
        start, end = self.index.span(block.first, block.last)
        tokens = self.stats.tokens(block.first, block.last)
        limit = self.config.max_code_tokens if block.kind == "code-block" else self.config.max_tokens
        if block.kind == "heading" or tokens <= limit:
            return [_Piece(start, end, block.kind, tokens, block.kind == "heading")]
        spans: list[tuple[int, int]] = []
        if block.kind in ("code-block", "table", "list", "text"):
            starts = None
            if block.kind == "list":
                starts = frozenset(i for i in range(block.first, block.last + 1)
                                   if _LIST.match(self.index.line(i)) or _RST_LIST.match(self.index.line(i)))
            for a, b in split_range(self.stats, block.first, block.last, max_tokens=limit,
                                    starts=starts):
                spans.append(self.index.span(a, b))
        else:
            spans.append((start, end))
        out = []
        for a, b in spans:
            if block.kind != "code-block" and count_tokens(text[a:b]) > limit:
                for c, d in _split_chars(text, a, b, limit):
                    out.append(_Piece(c, d, block.kind, count_tokens(text[c:d])))
            else:
                out.append(_Piece(a, b, block.kind, count_tokens(text[a:b])))
        return out

    def _limit(self, pieces: list[_Piece]) -> int:
        if any(p.kind == "code-block" for p in pieces):
            return self.config.max_code_tokens
        return self.config.max_tokens

    def pack(self, pieces: list[_Piece]) -> list[list[_Piece]]:
        """Group one section's pieces into segments."""
        groups: list[list[_Piece]] = []
        current: list[_Piece] = []
        for piece in pieces:
            size = sum(p.tokens for p in current)
            if current and not all(p.heading for p in current) and not (
                    size < self.config.min_tokens
                    and size + piece.tokens <= self._limit([*current, piece])):
                groups.append(current)
                current = []
            current.append(piece)
        if current:
            if (groups and sum(p.tokens for p in current) < self.config.min_tokens
                    and sum(p.tokens for p in groups[-1] + current)
                    <= self._limit(groups[-1] + current)):
                groups[-1].extend(current)
            else:
                groups.append(current)
        return groups

    def segment(self, group: list[_Piece], section: list[str]) -> Segment:
        start, end = group[0].start, group[-1].end
        text = self.index.text[start:end]
        kinds = {p.kind for p in group if not p.heading}
        kind = "heading" if not kinds else kinds.pop() if len(kinds) == 1 else "text"
        return Segment(kind=kind, text=text, char_start=start, char_end=end,
                       tokens=count_tokens(text), line_start=self.index.line_of(start) + 1,
                       line_end=self.index.line_of(end - 1) + 1, section=list(section))


def _title(blocks: list[_Block], index: LineIndex) -> str | None:
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
    if language == "restructuredtext":
        scanner: _Scanner = _Rst(index, stats)
    else:
        scanner = _Markdown(index, stats, plain=language is None)
    blocks = scanner.blocks()
    if not blocks:
        raise EmptyDocument(path, "contains no text, only separators")

    packer = _Packer(index, stats, config)
    segments: list[Segment] = []
    stack: list[_Block] = []
    section: list[str] = []
    run: list[_Piece] = []

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

    warnings = []
    if decoded.encoding not in ("utf-8", "utf-8-sig", "utf-16", "utf-16-le", "utf-16-be", "utf-32"):
        warnings.append(f"not UTF-8: decoded as {decoded.encoding}")
    return ParsedDocument(
        path=path, display_name=path.name, kind="text", mime=mime,
        sha256=sha256_bytes(decoded.data), size=len(decoded.data), segments=segments,
        text=decoded.text, language=language, title=_title(blocks, index), warnings=warnings)
