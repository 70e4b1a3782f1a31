"""Markdown, reStructuredText and plain-text ingestion."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from ingest import parse_file
from ingest.config import IngestConfig
from ingest.errors import BinaryFile, EmptyDocument, TooLarge
from ingest.text import parse_text
from ingest.tokens import count_tokens


def check(doc, separators: frozenset[int] = frozenset()) -> None:
    """Exact spans, honest line ranges, every non-blank line covered (but
    thematic-break `separators`), segments in order without overlap."""
    lines = doc.text.splitlines()
    starts = [0]
    for line in doc.text.splitlines(keepends=True):
        starts.append(starts[-1] + len(line))
    covered: set[int] = set()
    previous_end = 0
    for seg in doc.segments:
        assert doc.text[seg.char_start:seg.char_end] == seg.text
        assert seg.char_start >= previous_end
        previous_end = seg.char_end
        assert seg.text.strip() and seg.text == seg.text.rstrip()
        assert not seg.text.startswith(("\n", "\r"))
        assert starts[seg.line_start - 1] <= seg.char_start < starts[seg.line_start]
        assert starts[seg.line_end - 1] < seg.char_end <= starts[seg.line_end]
        covered |= set(range(seg.line_start, seg.line_end + 1))
        assert seg.tokens == count_tokens(seg.text)
    nonblank = {i for i, line in enumerate(lines, 1) if line.strip()}
    assert nonblank - separators <= covered


def table(doc) -> list[tuple[str, int, int, list[str]]]:
    return [(s.kind, s.line_start, s.line_end, s.section) for s in doc.segments]


GUIDE = """\
# Folio Guide

Folio answers questions about your documents.

## Install

Run the installer:

```bash
pip install folio

folio --help
```

## Usage

### Adding files

- add a folder
- add a PDF
  with a password

| command | meaning |
|---------|---------|
| add     | ingest  |

### Empty

Searching
---------

Type a question.
"""


def test_markdown_sections_and_kinds(tmp_path: Path) -> None:
    path = tmp_path / "guide.md"
    path.write_text(GUIDE)
    doc = parse_text(path, config=IngestConfig())
    assert (doc.kind, doc.mime, doc.language, doc.title) == (
        "text", "text/markdown", "markdown", "Folio Guide")
    top = ["Folio Guide"]
    assert table(doc) == [
        ("paragraph", 1, 3, top),
        ("text", 5, 13, [*top, "Install"]),            # paragraph + fence, fence whole
        ("heading", 15, 15, [*top, "Usage"]),          # lone heading
        ("text", 17, 25, [*top, "Usage", "Adding files"]),   # list + table
        ("heading", 27, 27, [*top, "Usage", "Empty"]),
        ("paragraph", 29, 32, [*top, "Searching"]),    # setext level 2 closes Usage
    ]
    assert "pip install folio\n\nfolio --help" in doc.segments[1].text
    check(doc)


def test_parse_file_dispatches_text(tmp_path: Path) -> None:
    path = tmp_path / "README"
    path.write_text("Project\n=======\n\nSome words.\n")
    doc = parse_file(path)
    assert doc.kind == "text" and doc.mime == "text/plain" and doc.title == "Project"


def _sentences(n: int, seed: str = "word") -> str:
    return " ".join(f"Sentence {i} talks about {seed} number {i} in some detail here."
                    for i in range(n))


def test_small_paragraphs_merge_and_big_ones_split(tmp_path: Path) -> None:
    small = "\n\n".join(f"Short note {i} about things." for i in range(12))
    big = _sentences(90)                                # one very long line
    path = tmp_path / "notes.txt"
    path.write_text(f"{small}\n\n{big}\n")
    config = IngestConfig(min_tokens=60, max_tokens=200)
    doc = parse_text(path, config=config)
    check(doc)
    assert doc.mime == "text/plain"
    merged = [s for s in doc.segments if s.line_start <= 23]
    assert len(merged) < 12                              # small notes were merged
    assert all(s.tokens >= 20 for s in merged)
    long_line = doc.text.index("Sentence 0")
    pieces = [s for s in doc.segments if s.line_end == 25]
    assert len(pieces) >= 5                              # the long line is cut ...
    for seg in pieces:
        assert seg.tokens <= 200
        assert seg.text.endswith(" here.")               # ... after a sentence
        if seg.char_start > long_line:
            assert seg.text.startswith("Sentence ")      # ... before the next one
    sizes = [s.tokens for s in pieces[1:]]
    assert min(sizes) > 0.5 * max(sizes)                 # balanced, no stub at the end


def test_big_list_is_cut_between_items(tmp_path: Path) -> None:
    items = "\n".join(f"- item {i}: {_sentences(1, f'item{i}')}" for i in range(40))
    path = tmp_path / "list.md"
    path.write_text(f"# Items\n\n{items}\n")
    doc = parse_text(path, config=IngestConfig(max_tokens=150))
    check(doc)
    assert len(doc.segments) >= 3
    for seg in doc.segments:
        assert seg.kind == "list" and seg.tokens <= 160
        assert seg.text.startswith(("# Items", "- item "))


def test_fenced_code_is_kept_whole(tmp_path: Path) -> None:
    code = "\n\n".join(f"def f{i}(x):\n    return x * {i} + helper(x, 'text')" for i in range(25))
    path = tmp_path / "code.md"
    path.write_text(f"## Example\n\nIntro.\n\n```python\n{code}\n```\n\nAfter the code.\n")
    doc = parse_text(path, config=IngestConfig(max_tokens=100))
    check(doc)
    fence = next(s for s in doc.segments if "```python" in s.text)
    assert "def f24" in fence.text and "\n```\n" in fence.text
    assert fence.tokens > 100                            # over max_tokens, not split


def test_restructuredtext_titles(tmp_path: Path) -> None:
    source = """\
=========
 Project
=========

Intro paragraph that says what the project does.

Install
=======

Run this::

    pip install project
    project --help

Usage
-----

- first item
- second item
  continues here

----------

API
===

Nothing here yet.
"""
    path = tmp_path / "index.rst"
    path.write_text(source)
    doc = parse_text(path, config=IngestConfig())
    assert (doc.mime, doc.language, doc.title) == ("text/x-rst", "restructuredtext", "Project")
    assert table(doc) == [
        ("paragraph", 1, 5, ["Project"]),
        ("text", 7, 13, ["Project", "Install"]),          # paragraph + literal block
        ("list", 15, 20, ["Project", "Install", "Usage"]),
        ("paragraph", 24, 27, ["Project", "API"]),       # "=" underline: level 2 again
    ]
    check(doc, separators=frozenset({22}))


def test_crlf_text_spans(tmp_path: Path) -> None:
    path = tmp_path / "win.md"
    path.write_bytes(b"# Title\r\n\r\nFirst paragraph.\r\n\r\n## Next\r\n\r\nSecond one.\r\n")
    doc = parse_text(path)
    assert table(doc) == [("paragraph", 1, 3, ["Title"]), ("paragraph", 5, 7, ["Title", "Next"])]
    assert doc.segments[0].text == "# Title\r\n\r\nFirst paragraph."
    check(doc)


def test_front_matter_title(tmp_path: Path) -> None:
    path = tmp_path / "post.md"
    path.write_text("---\ntitle: 'My Post'\ndate: 2024-01-01\n---\n\n# Heading\n\nBody.\n")
    doc = parse_text(path)
    assert doc.title == "My Post"
    check(doc)


def test_latin1_text_file(tmp_path: Path) -> None:
    path = tmp_path / "brief.txt"
    text = "Sehr geehrte Damen und Herren,\n\nbitte prüfen Sie die Größe.\n"
    path.write_bytes(text.encode("latin-1"))
    doc = parse_text(path)
    assert doc.text == text and doc.warnings
    check(doc)


def test_refusals(tmp_path: Path) -> None:
    empty = tmp_path / "empty.md"
    empty.write_bytes(b"")
    with pytest.raises(EmptyDocument):
        parse_text(empty)
    binary = tmp_path / "notes.txt"
    binary.write_bytes(b"\x00\x01\x02binary\x00" * 50)
    with pytest.raises(BinaryFile):
        parse_text(binary)
    big = tmp_path / "big.txt"
    big.write_text("words " * 1000)
    with pytest.raises(TooLarge):
        parse_text(big, config=IngestConfig(max_text_bytes=1000))
    rules = tmp_path / "rules.md"
    rules.write_text("---\n\n***\n")
    with pytest.raises(EmptyDocument):
        parse_text(rules)


def test_segment_sizes_on_a_long_document(tmp_path: Path) -> None:
    sections = []
    for s in range(8):
        paragraphs = "\n\n".join(
            "\n".join(re.findall(r".{1,70}(?:\s|$)", _sentences(4 + (p * s) % 9, f"s{s}p{p}")))
            for p in range(6))
        sections.append(f"## Section {s}\n\n{paragraphs}")
    path = tmp_path / "long.md"
    path.write_text("# Long\n\n" + "\n\n".join(sections) + "\n")
    config = IngestConfig()
    doc = parse_text(path, config=config)
    check(doc)
    for seg in doc.segments:
        assert seg.tokens <= config.max_tokens + 10
        assert seg.section[:1] == ["Long"]
    small = [s for s in doc.segments if s.tokens < config.min_tokens]
    assert len(small) <= 2                                # only the lone "# Long"-like leftovers


def test_plain_text_underlines_and_stray_tildes(tmp_path: Path) -> None:
    source = """\
 Regression tests
 ~~~~~~~~~~~~~~~~

How to run the tests.

Options
-------

Pass --verbose to see more.

~~~ a stray line of tildes is not a fence in plain text

Closing words.
"""
    path = tmp_path / "howto.txt"
    path.write_text(source)
    doc = parse_text(path)
    assert doc.title == "Regression tests"
    assert table(doc) == [
        ("paragraph", 1, 4, ["Regression tests"]),
        ("paragraph", 6, 13, ["Regression tests", "Options"]),   # "~" came first: level 1
    ]
    check(doc)
