"""Blocks of a text, Markdown or reStructuredText file, found line by line.

A scanner per format finds headings (with their level and title),
paragraphs, lists, tables, fenced or literal code and separators, as
0-based line ranges; `ingest.text` turns them into segments.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from .code.lines import LineStats
from .decode import LineIndex


@dataclass
class Block:
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
LIST_ITEM = re.compile(r"^[ \t]*(?:[-*+•]|\d{1,9}[.)])(?:[ \t]+|$)")
_UNDERLINE = re.compile(r"^ {0,3}([=\-~^*+#_.:'\"`])\1{2,}[ \t]*$")
_TABLE_DELIM = re.compile(r"^ *\|? *:?-+:? *(?:\| *:?-+:? *)*\|? *$")


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" \t"))


class Scanner:
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

    def blocks(self) -> list[Block]:
        out: list[Block] = []
        i = self._start(out)
        while i < self.n:
            if self.blank(i):
                i += 1
                continue
            i = self._block(i, out)
        return out

    def _start(self, out: list[Block]) -> int:
        """The first line of the body (a format may consume a header first)."""
        return 0

    def _block(self, i: int, out: list[Block]) -> int:
        """Append the block starting at line i; return the line after it."""
        raise NotImplementedError


class MarkdownScanner(Scanner):
    """CommonMark-ish blocks. With `plain`, for .txt and README-style files:
    titles may be underlined with any punctuation (`~~~`, `***`), and a
    fence only counts when it is closed, since plain text has no fences."""

    def __init__(self, index: LineIndex, stats: LineStats, plain: bool = False):
        super().__init__(index, stats)
        self.plain = plain
        # underline characters by level: fixed in Markdown, in order of
        # first use in plain text (as in reStructuredText)
        self.styles: list[str] = [] if plain else ["=", "-"]

    def _start(self, out: list[Block]) -> int:
        return self._front_matter(out)

    def _front_matter(self, out: list[Block]) -> int:
        if self.n == 0 or self.line(0).strip() != "---":
            return 0
        for j in range(1, min(self.n, 200)):
            if self.line(j).strip() in ("---", "..."):
                if j > 1:
                    out.append(Block("text", 0, j))
                return j + 1 if j > 1 else 0
        return 0

    def _block(self, i: int, out: list[Block]) -> int:
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
                out.append(Block("code-block", i, self.last_nonblank(i, last + 1)))
                return last + 1
        atx = _ATX.match(line)
        if atx:
            out.append(Block("heading", i, i, len(atx.group(1)), (atx.group(2) or "").strip()))
            return i + 1
        if _HR.match(line):
            return i + 1
        if "|" in line and i + 1 < self.n and "-" in self.line(i + 1) \
                and _TABLE_DELIM.match(self.line(i + 1)):
            j = i + 2
            while j < self.n and not self.blank(j) and "|" in self.line(j):
                j += 1
            out.append(Block("table", i, j - 1))
            return j
        if LIST_ITEM.match(line):
            return self._list(i, out)
        return self._paragraph(i, out)

    def _interrupts(self, line: str) -> bool:
        return bool(_ATX.match(line) or _FENCE.match(line) or _HR.match(line))

    def _list(self, i: int, out: list[Block]) -> int:
        base = _indent(self.line(i))
        j = i + 1
        while j < self.n:
            if self.blank(j):
                k = self.next_nonblank(j)
                if k is None:
                    break
                following = self.line(k)
                if _indent(following) > base or (LIST_ITEM.match(following) and _indent(following) >= base
                                                 and not _HR.match(following)):
                    j = k
                    continue
                break
            line = self.line(j)
            if _indent(line) <= base and self._interrupts(line):
                break
            j += 1
        out.append(Block("list", i, self.last_nonblank(i, j)))
        return j

    def _paragraph(self, i: int, out: list[Block]) -> int:
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
                out.append(Block("heading", i, j, self.styles.index(char) + 1, title))
                return j + 1
            if self._interrupts(line) or (LIST_ITEM.match(line) and not line[:1].isspace()):
                break
            j += 1
        out.append(Block("paragraph", i, j - 1))
        return j


# -- reStructuredText ---------------------------------------------------------

_ADORN = set("=-`:'\"~^_*+#<>.!$%&(),/;?@[\\]{|}")
RST_LIST_ITEM = re.compile(r"^[ \t]*(?:[-*+•]|\d{1,9}[.)]|#\.|\(?[0-9a-zA-Z#]\))[ \t]+\S")
_SIMPLE_TABLE = re.compile(r"^[ \t]*=+(?:[ \t]+=+)+[ \t]*$")
_CODE_DIRECTIVES = ("code", "code-block", "sourcecode", "highlight", "literalinclude",
                    "doctest", "testcode", "math")


def _is_adornment(line: str) -> bool:
    stripped = line.rstrip()
    return (len(stripped) >= 2 and stripped[0] in _ADORN and not line[:1].isspace()
            and stripped == stripped[0] * len(stripped) and stripped not in ("::", ".."))


class RstScanner(Scanner):
    def __init__(self, index: LineIndex, stats: LineStats):
        super().__init__(index, stats)
        self.styles: list[tuple[str, bool]] = []

    def _level(self, char: str, over: bool) -> int:
        if (char, over) not in self.styles:
            self.styles.append((char, over))
        return self.styles.index((char, over)) + 1

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

    def _block(self, i: int, out: list[Block]) -> int:
        line = self.line(i)
        nxt = self.line(i + 1) if i + 1 < self.n else ""
        if (_is_adornment(line) and i + 2 < self.n and not self.blank(i + 1)
                and _is_adornment(self.line(i + 2)) and self.line(i + 2)[0] == line[0]):
            out.append(Block("heading", i, i + 2, self._level(line[0], True),
                              self.line(i + 1).strip()))
            return i + 3
        if (not line[:1].isspace() and not _is_adornment(line) and _is_adornment(nxt)
                and len(nxt.rstrip()) >= min(len(line.rstrip()), 3)):
            out.append(Block("heading", i, i + 1, self._level(nxt[0], False), line.strip()))
            return i + 2
        if _is_adornment(line) and len(line.strip()) >= 4:
            return i + 1                       # a transition
        stripped = line.lstrip()
        if stripped.startswith(("+-", "+=")):
            j = i + 1
            while j < self.n and not self.blank(j):
                j += 1
            out.append(Block("table", i, j - 1))
            return j
        if _SIMPLE_TABLE.match(line):
            return self._simple_table(i, out)
        if stripped.startswith(".. "):
            end = self._indented_end(i + 1, _indent(line))
            name = stripped[3:].split("::", 1)[0].strip() if "::" in stripped else ""
            kind = "code-block" if name in _CODE_DIRECTIVES else "paragraph"
            out.append(Block(kind, i, self.last_nonblank(i, end)))
            return end
        if RST_LIST_ITEM.match(line):
            end = self._indented_end(i + 1, _indent(line))
            while end < self.n:                      # further items of the same list
                k = self.next_nonblank(end)
                if k is None or not RST_LIST_ITEM.match(self.line(k)) \
                        or _indent(self.line(k)) != _indent(line):
                    break
                end = self._indented_end(k + 1, _indent(line))
            out.append(Block("list", i, self.last_nonblank(i, end)))
            return end
        j = i + 1
        while j < self.n and not self.blank(j):
            j += 1
        out.append(Block("paragraph", i, j - 1))
        if self.line(j - 1).rstrip().endswith("::"):
            k = self.next_nonblank(j)
            if k is not None and _indent(self.line(k)) > _indent(line):
                end = self._indented_end(k, _indent(line))
                out.append(Block("code-block", k, self.last_nonblank(k, end)))
                return end
        return j

    def _simple_table(self, i: int, out: list[Block]) -> int:
        j, borders = i + 1, 1
        while j < self.n:
            if self.blank(j) and borders >= 2 and _SIMPLE_TABLE.match(self.line(j - 1)):
                break
            if _SIMPLE_TABLE.match(self.line(j)):
                borders += 1
            j += 1
        out.append(Block("table", i, self.last_nonblank(i, j)))
        return j


def scan_blocks(index: LineIndex, stats: LineStats, language: str | None) -> list[Block]:
    """The blocks of a file: reST rules for reStructuredText, Markdown's
    for Markdown and plain text (whose conventions are mostly the same)."""
    if language == "restructuredtext":
        return RstScanner(index, stats).blocks()
    return MarkdownScanner(index, stats, plain=language is None).blocks()
