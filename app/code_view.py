"""A source file as highlighted HTML with line numbers and cited lines marked.

Pygments tokenises the whole file (so multi-line strings colour correctly)
and its HTML formatter closes every span at each line end, so the output
splits into exactly one fragment per source line; each becomes a row that
carries its number, which lets the inspector scroll the first cited line
into view and lets tests count the highlighted rows.
"""
from __future__ import annotations

import html

from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexer import Lexer
from pygments.lexers import TextLexer, get_lexer_by_name, get_lexer_for_filename
from pygments.util import ClassNotFound

MAX_LINES = 20_000   # beyond this the browser struggles; the view is cut, cited lines kept

_OPTIONS = {"stripnl": False, "stripall": False, "ensurenl": False}


def lexer_for(name: str, language: str | None = None) -> Lexer:
    """A lexer by the stored language name, else by the file name, else plain text."""
    for attempt in ((lambda: get_lexer_by_name(language, **_OPTIONS)) if language else None,
                    lambda: get_lexer_for_filename(name, **_OPTIONS)):
        if attempt is None:
            continue
        try:
            return attempt()
        except ClassNotFound:
            continue
    return TextLexer(**_OPTIONS)


def highlighted_lines(text: str, name: str, language: str | None = None) -> list[str]:
    """One HTML fragment per source line (`text.split("\\n")` order)."""
    body = highlight(text, lexer_for(name, language), HtmlFormatter(nowrap=True))
    lines = body.split("\n")
    want = text.count("\n") + 1
    if len(lines) > want:           # pygments may add a final newline
        lines = lines[:want]
    lines += [""] * (want - len(lines))
    return lines


def code_html(text: str, name: str, *, language: str | None = None,
              line_start: int | None = None, line_end: int | None = None) -> str:
    """The file as rows `<div class="folio-line [folio-cited]" data-line=N>`."""
    start = line_start or 0
    end = line_end or line_start or 0
    lines = highlighted_lines(text, name, language)
    first, last = 1, len(lines)
    if len(lines) > MAX_LINES:      # keep a window around the citation
        centre = start or 1
        first = max(1, centre - MAX_LINES // 2)
        last = min(len(lines), first + MAX_LINES - 1)
    rows = []
    for number in range(first, last + 1):
        cited = start <= number <= end if start else False
        rows.append(f'<div class="folio-line{" folio-cited" if cited else ""}" '
                    f'data-line="{number}"><span class="folio-ln">{number}</span>'
                    f'<span class="folio-src">{lines[number - 1] or " "}</span></div>')
    where = (f"lines {start}-{end}" if end and end != start else f"line {start}") if start else ""
    caption = f"{html.escape(name)}{' &middot; ' + where if where else ''}"
    return (f'<div class="folio-code-caption">{caption}</div>'
            f'<div class="folio-code highlight">{"".join(rows)}</div>')


def pygments_css() -> str:
    """Token colours for light mode and, under Gradio's `.dark`, dark mode."""
    light = HtmlFormatter(style="default").get_style_defs(".folio-code")
    dark = HtmlFormatter(style="monokai").get_style_defs(".dark .folio-code")
    return light + "\n" + dark
