"""Python source ingestion: units, names, exact spans, fallbacks, errors."""
from __future__ import annotations

from pathlib import Path

import pytest

from ingest import parse_file
from ingest.code import parse_code
from ingest.config import IngestConfig
from ingest.errors import BinaryFile, EmptyDocument, TooLarge


def assert_spans(doc) -> None:
    """Every segment is exactly the whole lines it claims, in order, with
    no line in two segments."""
    lines = doc.text.splitlines(keepends=True) if "\x0c" not in doc.text else None
    previous_end = 0
    for seg in doc.segments:
        assert doc.text[seg.char_start:seg.char_end] == seg.text
        assert 1 <= seg.line_start <= seg.line_end
        assert seg.line_start > previous_end, f"{seg.name} overlaps the previous segment"
        previous_end = seg.line_end
        if lines is not None:
            expected = "".join(lines[seg.line_start - 1:seg.line_end]).rstrip("\r\n")
            assert seg.text == expected
        assert seg.text.strip() and seg.text == seg.text.strip("\r\n")


def covered_lines(doc) -> set[int]:
    return {n for s in doc.segments for n in range(s.line_start, s.line_end + 1)}


def nonblank_lines(text: str) -> set[int]:
    return {i for i, line in enumerate(text.splitlines(), 1) if line.strip()}


def table(doc) -> list[tuple[str, str | None, int, int]]:
    return [(s.kind, s.name, s.line_start, s.line_end) for s in doc.segments]


SAMPLE = '''\
#!/usr/bin/env python3
"""Demo module."""
import os

CONST = 1


# Comment about Outer.
@decorator
class Outer(Base):
    """Outer doc."""

    x = 1

    class Inner:
        def method(self):
            return 1

    @property
    async def fetch(self):
        def helper():
            return 2
        return helper()

    y = 2


def outer(a):
    def inner(b):
        return b

    return inner(a)


if __name__ == "__main__":
    outer(1)
'''


@pytest.fixture
def sample(tmp_path: Path) -> Path:
    path = tmp_path / "demo.py"
    path.write_text(SAMPLE, encoding="utf-8")
    return path


def test_units_names_and_line_ranges(sample: Path) -> None:
    doc = parse_code(sample, config=IngestConfig())
    assert table(doc) == [
        ("code-block", "<module>", 1, 5),
        ("code-class", "Outer", 8, 13),          # comment + decorator + docstring + x = 1
        ("code-class", "Outer.Inner", 15, 15),
        ("code-function", "Outer.Inner.method", 16, 17),
        ("code-function", "Outer.fetch", 19, 23),   # decorator included, helper stays inside
        ("code-block", "Outer", 25, 25),          # class-level code after the methods
        ("code-function", "outer", 28, 32),
        ("code-block", None, 35, 36),
    ]
    assert [s.section for s in doc.segments] == [
        [], [], ["Outer"], ["Outer", "Inner"], ["Outer"], ["Outer"], [], []]
    assert_spans(doc)
    assert covered_lines(doc) >= nonblank_lines(SAMPLE)


def test_document_fields(sample: Path) -> None:
    doc = parse_code(sample)
    raw = sample.read_bytes()
    assert doc.kind == "code" and doc.mime == "text/x-python" and doc.language == "python"
    assert doc.display_name == "demo.py" and doc.size == len(raw)
    assert doc.text == SAMPLE
    import hashlib
    assert doc.sha256 == hashlib.sha256(raw).hexdigest()
    assert doc.title == "Demo module."
    assert doc.warnings == []


def test_dispatch_through_parse_file(sample: Path) -> None:
    doc = parse_file(sample)
    assert doc.kind == "code"
    assert [s.name for s in doc.segments if s.kind == "code-function"] == [
        "Outer.Inner.method", "Outer.fetch", "outer"]


def test_oversized_function_is_split_and_locals_named(sample: Path) -> None:
    doc = parse_code(sample, config=IngestConfig(max_code_tokens=15))
    names = [s.name for s in doc.segments]
    assert "outer (part 1/2)" in names and "outer (part 2/2)" in names
    inner = next(s for s in doc.segments if s.name == "outer.<locals>.inner")
    assert (inner.kind, inner.line_start, inner.line_end, inner.section) == (
        "code-function", 29, 30, ["outer"])
    helper = next(s for s in doc.segments if s.name == "Outer.fetch.<locals>.helper")
    assert (helper.line_start, helper.line_end) == (21, 22)
    for seg in doc.segments:
        if seg.kind == "code-function" and "\n" in seg.text:
            assert seg.tokens <= 15 or seg.line_start == seg.line_end
    assert_spans(doc)
    assert covered_lines(doc) >= nonblank_lines(SAMPLE)


def test_long_function_parts_cut_at_blank_lines(tmp_path: Path) -> None:
    blocks = []
    for i in range(12):
        blocks.append("\n".join(f"    value_{i}_{j} = compute({i}, {j}, 'text here')"
                                for j in range(6)))
    source = "def big():\n" + "\n\n".join(blocks) + "\n    return None\n"
    path = tmp_path / "big.py"
    path.write_text(source)
    doc = parse_code(path, config=IngestConfig(max_code_tokens=300))
    parts = [s for s in doc.segments if s.name and s.name.startswith("big (part ")]
    assert len(parts) == len(doc.segments) >= 3
    total = len(parts)
    assert [s.name for s in parts] == [f"big (part {i}/{total})" for i in range(1, total + 1)]
    lines = source.splitlines()
    for seg in parts:
        assert seg.tokens <= 300
        if seg.line_start > 1:                       # every cut follows a blank line
            assert lines[seg.line_start - 2] == ""
    assert parts[0].line_start == 1 and parts[-1].line_end == len(lines)
    assert_spans(doc)


def test_syntax_error_falls_back_with_warning(tmp_path: Path) -> None:
    path = tmp_path / "broken.py"
    path.write_text("def ok():\n    return 1\n\ndef broken(:\n    pass\n\n"
                    "class K:\n    def m(self):\n        pass\n")
    doc = parse_code(path)
    assert any("syntax error at line 4" in w for w in doc.warnings)
    assert ("code-function", "ok", 1, 2) in table(doc)
    assert ("code-function", "K.m", 8, 9) in table(doc)
    assert_spans(doc)
    assert covered_lines(doc) >= nonblank_lines(path.read_text())


def test_python2_source_still_parses(tmp_path: Path) -> None:
    path = tmp_path / "old.py"
    path.write_text('print "hello"\n\ndef f(x):\n    print x\n    return x\n')
    doc = parse_code(path)
    assert doc.warnings and doc.segments
    assert_spans(doc)
    assert covered_lines(doc) >= nonblank_lines(path.read_text())


def test_crlf_and_form_feed_keep_line_numbers(tmp_path: Path) -> None:
    source = "import os\r\n\x0c\r\n\r\ndef f():\r\n    return 1\r\n\r\nclass A:\r\n    pass\r\n"
    path = tmp_path / "crlf.py"
    path.write_bytes(source.encode())
    doc = parse_code(path)
    assert doc.text == source
    assert table(doc) == [("code-block", "<module>", 1, 1), ("code-function", "f", 4, 5),
                          ("code-class", "A", 7, 8)]
    f = doc.segments[1]
    assert f.text == "def f():\r\n    return 1"
    for seg in doc.segments:
        assert doc.text[seg.char_start:seg.char_end] == seg.text


def test_latin1_and_utf16_sources_decode(tmp_path: Path) -> None:
    source = '# Autor: Jürgen Müller\n\ndef grüße():\n    return "Straße"\n'
    latin = tmp_path / "latin.py"
    latin.write_bytes(source.encode("latin-1"))
    doc = parse_code(latin)
    assert doc.text == source
    assert table(doc) == [("code-block", "<module>", 1, 1), ("code-function", "grüße", 3, 4)]
    assert any("latin" in w or "cp1252" in w for w in doc.warnings)

    wide = tmp_path / "wide.py"
    wide.write_bytes(source.encode("utf-16"))               # with BOM
    assert parse_code(wide).text == source
    bare = tmp_path / "bare.py"
    bare.write_bytes(source.encode("utf-16-le"))            # no BOM
    doc = parse_code(bare)
    assert doc.text == source and doc.size == len(source.encode("utf-16-le"))


def test_binary_named_py_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "module.py"
    path.write_bytes(b"\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00" + bytes(range(256)) * 4)
    with pytest.raises(BinaryFile, match="binary"):
        parse_code(path)


def test_empty_and_blank_files_are_refused(tmp_path: Path) -> None:
    empty = tmp_path / "empty.py"
    empty.write_bytes(b"")
    with pytest.raises(EmptyDocument):
        parse_code(empty)
    blank = tmp_path / "blank.py"
    blank.write_text("\n\n   \n")
    with pytest.raises(EmptyDocument):
        parse_code(blank)


def test_too_large_is_refused_before_reading(tmp_path: Path) -> None:
    path = tmp_path / "huge.py"
    path.write_text("x = 1\n" * 100)
    with pytest.raises(TooLarge, match="limit"):
        parse_code(path, config=IngestConfig(max_text_bytes=100))


def test_comments_only_file_is_one_block(tmp_path: Path) -> None:
    path = tmp_path / "notes.py"
    path.write_text("# just a comment\n# and another\n")
    doc = parse_code(path)
    assert table(doc) == [("code-block", "<module>", 1, 2)]
