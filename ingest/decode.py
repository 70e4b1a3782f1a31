"""Bytes to text for code and text files, and what a "line" of that text is.

The decoded text is stored as is (no newline rewriting), so every span a
segment carries is an offset into exactly the string the user will see.
Line numbering follows Python's tokenizer and editors: a line ends at
"\\r\\n", "\\r" or "\\n" -- not at form feeds or other characters that
`str.splitlines` would also break on -- so `ast` line numbers and ours agree.
"""
from __future__ import annotations

import bisect
import codecs
import re
from dataclasses import dataclass, field
from pathlib import Path

from .errors import BinaryFile, EmptyDocument, IngestError, TooLarge, UnreadableEncoding

SNIFF_BYTES = 8192

_BOMS = (  # longest first: the UTF-32 LE BOM starts with the UTF-16 LE one
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
# Control bytes that never occur in real text (tab, newlines, form feed,
# vertical tab and escape -- used by ANSI colour codes in logs -- are fine).
_CONTROL = frozenset(range(0x20)) - {0x09, 0x0A, 0x0B, 0x0C, 0x0D, 0x1B} | {0x7F}
_CODING = re.compile(rb"^[ \t\f]*#.*?coding[:=][ \t]*([-\w.]+)")
_WESTERN = ("cp1252", "latin_1", "iso8859_15")


def _bom_encoding(data: bytes) -> str | None:
    for bom, name in _BOMS:
        if data.startswith(bom):
            return name
    return None


def _utf16_without_bom(sample: bytes) -> str | None:
    """'utf-16-le'/'utf-16-be' when NULs sit at alternating positions, as
    they do when mostly-ASCII text is stored as UTF-16 without a BOM."""
    half = len(sample) // 2
    if half < 2:
        return None
    even = sum(1 for b in sample[0:half * 2:2] if b == 0)
    odd = sum(1 for b in sample[1:half * 2:2] if b == 0)
    if odd >= 0.4 * half and even <= 0.05 * half:
        return "utf-16-le"
    if even >= 0.4 * half and odd <= 0.05 * half:
        return "utf-16-be"
    return None


def looks_binary(sample: bytes) -> bool:
    """Cheap sniff used by the folder walker before a file is read whole.

    NUL bytes mean binary unless the data is UTF-16/32 (BOM or alternating
    NULs); otherwise a high share of control bytes means binary too.
    """
    if not sample or _bom_encoding(sample) or _utf16_without_bom(sample):
        return False
    if b"\x00" in sample:
        return True
    controls = sum(1 for b in sample if b in _CONTROL)
    return controls >= 3 and controls > 0.03 * len(sample)


def _coding_cookie(data: bytes) -> str | None:
    """A PEP 263 / Emacs-style `coding:` declaration in the first two lines."""
    for line in data.split(b"\n", 2)[:2]:
        match = _CODING.match(line)
        if match:
            try:
                return codecs.lookup(match.group(1).decode("ascii")).name
            except (LookupError, UnicodeDecodeError):
                return None
    return None


def _legacy(data: bytes) -> str | None:
    """Guess a legacy 8-bit encoding with charset_normalizer.

    On short texts its first guess is often an exotic code page that also
    fits (cp437, cp1250) while the text is really Western; when cp1252 or
    Latin-1 fits about as well we take it, because that is by far the most
    common legacy encoding of the files people keep.
    """
    from charset_normalizer import from_bytes

    matches = list(from_bytes(data))
    if not matches:
        return None
    best = matches[0]
    for match in matches:
        if match.chaos <= best.chaos + 0.1 and any(
                name in match.could_be_from_charset for name in _WESTERN):
            for name in ("cp1252", "latin_1"):
                try:
                    data.decode(name)
                    return name
                except UnicodeDecodeError:
                    continue
    return best.encoding


def decode_text(path: Path | str, data: bytes) -> tuple[str, str]:
    """Decode a whole file; returns (text, encoding name).

    Order: BOM, UTF-16 without BOM, UTF-8, a declared `coding:` cookie, then
    a legacy 8-bit guess. Raises EmptyDocument, BinaryFile or
    UnreadableEncoding with a message a person can act on.
    """
    if not data:
        raise EmptyDocument(path, "the file is empty")
    bom = _bom_encoding(data)
    if bom:
        try:
            return data.decode(bom), bom
        except UnicodeDecodeError:
            raise UnreadableEncoding(
                path, f"starts with a {bom.upper()} byte-order mark but is not valid {bom.upper()}") from None
    sample = data[:SNIFF_BYTES]
    utf16 = _utf16_without_bom(sample)
    if utf16:
        try:
            text = data.decode(utf16)
        except UnicodeDecodeError:
            raise BinaryFile(path, "looks like a binary file, not text") from None
        if looks_binary(text[:SNIFF_BYTES].encode("utf-8", "replace")):
            raise BinaryFile(path, "looks like a binary file, not text")
        return text, utf16
    if looks_binary(sample):
        raise BinaryFile(path, "looks like a binary file, not text")
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        pass
    for name in (_coding_cookie(data), _legacy(data)):
        if name:
            try:
                return data.decode(name), name
            except (UnicodeDecodeError, LookupError):
                continue
    raise UnreadableEncoding(
        path, "is not UTF-8 and its encoding could not be recognised; "
              "save it as UTF-8 and add it again")


@dataclass
class DecodedFile:
    data: bytes
    text: str
    encoding: str


def read_text_file(path: Path, max_bytes: int) -> DecodedFile:
    """Read and decode a file, refusing ones over `max_bytes` before reading."""
    try:
        size = path.stat().st_size
        if size > max_bytes:
            raise TooLarge(path, f"is {format_size(size)}, over the "
                                 f"{format_size(max_bytes)} limit for code and text files")
        data = path.read_bytes()
    except OSError as exc:
        raise IngestError(path, f"cannot be read ({exc.strerror or exc})") from None
    text, encoding = decode_text(path, data)
    if not text.strip():
        raise EmptyDocument(path, "the file contains only whitespace")
    return DecodedFile(data, text, encoding)


def format_size(size: int) -> str:
    """Human size in decimal units, as file managers show it."""
    if size < 1000:
        return f"{size} bytes"
    if size < 1_000_000:
        return f"{size / 1000:.1f} KB"
    return f"{size / 1_000_000:.1f} MB"


_BREAK = re.compile(r"\r\n|\r|\n")


@dataclass
class LineIndex:
    """Lines of a text as character offsets, 0-based internally.

    `starts[i]` is where line i begins, `ends[i]` where its content ends
    (before the line break). Segments end at `ends[last]`, so their text is
    whole lines without the final line break.
    """

    text: str
    starts: list[int] = field(init=False)
    ends: list[int] = field(init=False)
    _byte_starts: list[int] | None = field(init=False, default=None, repr=False)

    def __post_init__(self) -> None:
        self.starts, self.ends = [], []
        pos = 0
        for match in _BREAK.finditer(self.text):
            self.starts.append(pos)
            self.ends.append(match.start())
            pos = match.end()
        if pos < len(self.text):
            self.starts.append(pos)
            self.ends.append(len(self.text))

    def __len__(self) -> int:
        return len(self.starts)

    def line(self, i: int) -> str:
        return self.text[self.starts[i]:self.ends[i]]

    def is_blank(self, i: int) -> bool:
        return not self.line(i).strip()

    def span(self, first: int, last: int) -> tuple[int, int]:
        """Character span of lines first..last inclusive."""
        return self.starts[first], self.ends[last]

    def line_of(self, offset: int) -> int:
        """Index of the line holding character `offset`."""
        return max(0, bisect.bisect_right(self.starts, offset) - 1)

    def line_of_byte(self, offset: int) -> int:
        """Index of the line holding UTF-8 byte `offset` (tree-sitter units)."""
        if self._byte_starts is None:
            starts, pos, prev = [], 0, 0
            for start in self.starts:
                pos += len(self.text[prev:start].encode("utf-8"))
                starts.append(pos)
                prev = start
            self._byte_starts = starts
        return max(0, bisect.bisect_right(self._byte_starts, offset) - 1)
