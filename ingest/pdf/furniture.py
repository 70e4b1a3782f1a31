"""Running headers, footers and page numbers ("page furniture").

They repeat on every page and would otherwise end up as tiny segments or
glued to the first paragraph. We keep them in the page text (a search for
a page number still finds the page) but out of segments. A line counts as
furniture when it sits in the top or bottom band, is short and either has
a number in it or repeats across the sampled pages, and is set apart from
the body by white space.
"""
from __future__ import annotations

from typing import Callable, Sequence

from .headings import BOTTOM_BAND, TOP_BAND, FontStats, furniture_key
from .lines import Line


def _candidate(ln: Line, stats: FontStats) -> bool:
    if len(ln.text.split()) > 15:
        return False
    if furniture_key(ln.text) in stats.furniture:
        return True
    if stats.body_size and ln.size > stats.body_size + 1.0:
        return False  # a big number at the top is more likely a chapter title
    return any(c.isdigit() for c in ln.text)


def _edge(ordered: list[Line], inside: Callable[[Line], bool], stats: FontStats,
          top: bool) -> list[Line]:
    """The shortest run of candidates from the page edge that white space
    separates from the next line (`ordered` runs from the edge inwards)."""
    found: list[Line] = []
    nxt: Line | None = None
    for ln in ordered:
        if inside(ln) and _candidate(ln, stats):
            found.append(ln)
        else:
            nxt = ln
            break
    for k in range(1, len(found) + 1):
        following = found[k] if k < len(found) else nxt
        if following is None:
            return []
        head = found[:k]
        tall = max(ln.height for ln in head)
        if top:
            gap = following.y0 - max(ln.y1 for ln in head)
        else:
            gap = min(ln.y0 for ln in head) - following.y1
        if gap >= 0.5 * tall:
            return head
    return []


def split_furniture(lines: Sequence[Line], height: float,
                    stats: FontStats) -> tuple[list[Line], list[Line], list[Line]]:
    """(header lines, body lines, footer lines)."""
    if len(lines) < 2:
        return [], list(lines), []
    top = _edge(sorted(lines, key=lambda ln: ln.y0),
                lambda ln: ln.y1 <= TOP_BAND * height, stats, True)
    bottom = _edge(sorted(lines, key=lambda ln: -ln.y1),
                   lambda ln: ln.y0 >= BOTTOM_BAND * height, stats, False)
    if not top and not bottom:
        return [], list(lines), []
    skip = {id(ln) for ln in top} | {id(ln) for ln in bottom}
    rest = [ln for ln in lines if id(ln) not in skip]
    if not rest:
        return [], list(lines), []
    key = lambda ln: (ln.y0, ln.x0)  # noqa: E731
    return sorted(top, key=key), rest, sorted(bottom, key=key)
