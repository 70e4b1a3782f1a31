"""Headings and section paths: from the PDF outline, else from font sizes.

Font statistics are document-wide (what is body text, which larger sizes
are headings, which header/footer lines repeat), but pages are parsed
independently, possibly in worker processes. So the statistics come from a
fixed sample of pages taken up front, which keeps serial and parallel runs
identical. Section paths need the previous page's path, so pages only emit
heading *events*; `SectionTracker` turns them into paths in page order.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Iterable, Sequence

from .lines import Line

SAMPLE_PAGES = 60
TOP_BAND = 0.12      # fraction of page height holding running headers
BOTTOM_BAND = 0.88   # ... and from where footers start

# ("toc" | "font", level, title)
HeadingEvent = tuple[str, int, str]

_CAPTION = re.compile(r"^(fig(ure)?|table|tab|listing|algorithm|source|note)\b[\s.:]*\d*", re.I)
_TWO_LETTERS = re.compile(r"[^\W\d_].*?[^\W\d_]", re.S)
_WORD = re.compile(r"[^\W_]+", re.UNICODE)
_DIGITS = re.compile(r"\d+")
_SPACES = re.compile(r"\s+")


@dataclass(frozen=True)
class FontStats:
    """Document-wide typography facts used to classify lines."""

    body_size: float = 0.0                     # 0: unknown (no text sampled)
    heading_sizes: tuple[float, ...] = ()      # descending, larger than body
    furniture: frozenset[str] = field(default_factory=frozenset)

    def heading_threshold(self) -> float:
        return self.body_size + max(1.0, 0.12 * self.body_size)

    def level_for(self, size: float, bold: bool) -> int | None:
        """Heading level of a short line of this style, or None for body."""
        if self.body_size <= 0:
            return None
        if size >= self.heading_threshold():
            return 1 + sum(1 for s in self.heading_sizes if s > size + 0.25)
        if bold and size >= self.body_size - 0.6:
            return len(self.heading_sizes) + 1
        return None


def furniture_key(text: str) -> str:
    """Running headers differ only by page numbers: compare without digits."""
    return _SPACES.sub(" ", _DIGITS.sub("", text.lower())).strip()


def sample_pages(page_count: int) -> list[int]:
    if page_count <= SAMPLE_PAGES:
        return list(range(page_count))
    return sorted({i * page_count // SAMPLE_PAGES for i in range(SAMPLE_PAGES)})


def font_stats(pages: Iterable[tuple[list[Line], float]]) -> FontStats:
    """Statistics from sampled pages, given as (lines, page height)."""
    by_size: dict[float, int] = {}
    short_sizes: dict[float, int] = {}
    band_count: dict[str, int] = {}
    n_pages = 0
    for lines, height in pages:
        n_pages += 1
        seen: set[str] = set()
        for ln in lines:
            size = round(ln.size * 2) / 2
            if not ln.mono:
                by_size[size] = by_size.get(size, 0) + ln.chars
            if len(ln.text) <= 120:
                short_sizes[size] = short_sizes.get(size, 0) + 1
            if ln.y1 <= TOP_BAND * height or ln.y0 >= BOTTOM_BAND * height:
                key = furniture_key(ln.text)
                if key and key not in seen:
                    seen.add(key)
                    band_count[key] = band_count.get(key, 0) + 1
    if not by_size:
        return FontStats()
    body = max(by_size.items(), key=lambda kv: kv[1])[0]
    probe = FontStats(body_size=body)
    sizes = sorted((s for s in short_sizes if s >= probe.heading_threshold()), reverse=True)
    merged: list[float] = []
    for s in sizes:
        if not merged or merged[-1] - s > 0.75:
            merged.append(s)
    need = max(2, int(0.2 * n_pages + 0.999))
    furniture = frozenset(k for k, n in band_count.items() if n >= need)
    return FontStats(body_size=body, heading_sizes=tuple(merged[:6]), furniture=furniture)


def font_heading_level(lines: Sequence[Line], text: str, stats: FontStats) -> int | None:
    """Level if a paragraph looks like a heading by typography, else None.

    Headings are short (at most 3 lines / 20 words), not code, not captions,
    not sentences, and either clearly larger than body text or all bold.
    """
    if len(lines) > 3 or any(ln.mono for ln in lines):
        return None
    size = max(ln.size for ln in lines)
    level = stats.level_for(size, all(ln.bold for ln in lines))
    if level is None:
        return None
    words = text.split()
    if not words or len(words) > 20 or not _TWO_LETTERS.search(text):
        return None
    if _CAPTION.match(text):
        return None
    if text[-1] in ".,;" and len(words) > 6:
        return None
    if size < stats.heading_threshold() and (len(words) > 12 or text[-1] in ".,;"):
        return None
    return level


def _words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


_NUMBERING = re.compile(r"^(\d+|[ivxlc]+|[a-z])$")


def _unnumbered(words: list[str]) -> list[str]:
    """Words without a leading section number ("5 1 3", "A 2", "iv")."""
    k = 0
    while k < len(words) - 1 and _NUMBERING.match(words[k]):
        k += 1
    return words[k:]


def _names(pw: list[str] | None, tw: list[str]) -> bool:
    if not pw:
        return False
    n = len(tw)
    return (pw[:n] == tw or (len(pw) <= n + 2 and pw[-n:] == tw)
            or (len(pw) >= max(2, n // 2) and tw[:len(pw)] == pw))


def match_toc(entries: Sequence[tuple[int, str]], texts: Sequence[str],
              candidates: Sequence[bool]) -> list[int | None]:
    """For each outline entry on a page, the index of the paragraph it names.

    `texts` are the page's paragraphs in reading order; `candidates` marks
    those short enough to be headings. A paragraph matches when its words
    start with the title's words (``abbreviate Abbreviate Strings`` for
    entry ``abbreviate``), end with them (``1 Introduction`` for
    ``Introduction``), or begin the title (a heading wrapped over blocks).
    Entries match in order, each paragraph at most once.
    """
    words = [(_words(t) if c else None) for t, c in zip(texts, candidates)]
    bare = [(_unnumbered(w) if w else None) for w in words]
    used: set[int] = set()
    out: list[int | None] = []
    start = 0
    for _level, title in entries:
        tw = _words(title)
        found = None
        if tw:
            for k in range(start, len(texts)):
                if k in used or not words[k]:
                    continue
                if _names(words[k], tw) or _names(bare[k], tw):
                    found = k
                    break
        if found is not None:
            used.add(found)
            start = found + 1
        out.append(found)
    return out


class SectionTracker:
    """Current heading path, carried across pages in document order.

    Outline (TOC) headings set the outer levels; typographic headings found
    between them (e.g. "Arguments" inside a manual entry) nest below the
    current outline entry and are reset by the next one.
    """

    def __init__(self) -> None:
        self.toc: list[tuple[int, str]] = []
        self.font: list[tuple[int, str]] = []

    def apply(self, event: HeadingEvent) -> None:
        source, level, title = event
        if source == "toc":
            self.toc = [h for h in self.toc if h[0] < level] + [(level, title)]
            self.font = []
        else:
            self.font = [h for h in self.font if h[0] < level] + [(level, title)]

    @property
    def path(self) -> list[str]:
        return [t for _, t in self.toc] + [t for _, t in self.font]
