"""Real CPython standard-library sources: names, line ranges and coverage."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

from ingest.code import parse_code
from ingest.config import IngestConfig

FILES = ["argparse.py", "csv.py", "difflib.py", "pathlib.py", "textwrap.py",
         "json/__init__.py", "json/decoder.py", "json/encoder.py"]


@pytest.fixture(scope="module")
def stdlib(shared_dir: Path) -> Path:
    folder = shared_dir / "code" / "stdlib"
    if not (folder / "argparse.py").is_file():
        pytest.skip("stdlib sources not present")
    return folder


@pytest.fixture(scope="module")
def argparse_doc(stdlib: Path):
    return parse_code(stdlib / "argparse.py", config=IngestConfig())


def _line_of(path: Path, prefix: str) -> int:
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if line.startswith(prefix):
            return number
    raise AssertionError(f"{prefix!r} not in {path}")


def test_parse_known_args_segment(argparse_doc, stdlib: Path) -> None:
    seg = next(s for s in argparse_doc.segments if s.name == "ArgumentParser.parse_known_args")
    assert seg.kind == "code-function"
    assert seg.section == ["ArgumentParser"]
    assert seg.line_start == _line_of(stdlib / "argparse.py", "    def parse_known_args(")
    assert seg.text.startswith("    def parse_known_args(self, args=None, namespace=None):")
    # it ends where the next method's comment/def begins, minus blank lines
    source = (stdlib / "argparse.py").read_text().splitlines()
    assert source[seg.line_end].strip() == "" and source[seg.line_end - 1].strip()


def test_classes_and_header(argparse_doc, stdlib: Path) -> None:
    header = argparse_doc.segments[0]
    assert (header.kind, header.name, header.line_start) == ("code-block", "<module>", 1)
    assert '"""Command-line parsing library' in header.text
    cls = next(s for s in argparse_doc.segments
               if s.kind == "code-class" and s.name == "ArgumentParser")
    assert cls.line_start == _line_of(stdlib / "argparse.py", "class ArgumentParser(")
    assert "Keyword Arguments:" in cls.text          # the docstring is in the header
    assert "def __init__" not in cls.text
    assert argparse_doc.title == "Command-line parsing library"


@pytest.mark.parametrize("name", FILES)
def test_spans_and_coverage(stdlib: Path, name: str) -> None:
    path = stdlib / name
    doc = parse_code(path, config=IngestConfig())
    text = path.read_text(encoding="utf-8")
    assert doc.text == text and not doc.warnings
    lines = text.split("\n")
    covered: set[int] = set()
    for seg in doc.segments:
        assert doc.text[seg.char_start:seg.char_end] == seg.text
        assert seg.text == "\n".join(lines[seg.line_start - 1:seg.line_end])
        span = set(range(seg.line_start, seg.line_end + 1))
        assert not covered & span, f"{seg.name} overlaps"
        covered |= span
        assert seg.tokens > 0
    nonblank = {i for i, line in enumerate(lines, 1) if line.strip()}
    assert nonblank <= covered


@pytest.mark.parametrize("name", FILES)
def test_every_def_has_its_segment(stdlib: Path, name: str) -> None:
    """Each top-level function and each method is a code-function segment
    starting at its first decorator or def line (or the comment block above)."""
    path = stdlib / name
    doc = parse_code(path, config=IngestConfig())
    by_name: dict[str, list] = {}
    for seg in doc.segments:
        if seg.kind == "code-function" and seg.name:
            by_name.setdefault(seg.name.split(" (part ")[0], []).append(seg)
    tree = ast.parse(path.read_text(encoding="utf-8"))
    lines = path.read_text(encoding="utf-8").splitlines()
    expected = []
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            expected.append((node.name, node))
        elif isinstance(node, ast.ClassDef):
            expected += [(f"{node.name}.{item.name}", item) for item in node.body
                         if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef))]
    assert expected
    for qualname, node in expected:
        assert qualname in by_name, qualname
        first = min([node.lineno] + [d.lineno for d in node.decorator_list])
        # the segment (or first part) that holds the def line
        seg = next(s for s in by_name[qualname] if s.line_start <= first <= s.line_end)
        assert all(lines[i - 1].lstrip().startswith("#") for i in range(seg.line_start, first))
        last = max(s.line_end for s in by_name[qualname] if s.line_start <= node.end_lineno)
        assert last >= node.end_lineno or any(
            s.name.startswith(qualname + ".<locals>.") for s in doc.segments if s.name)


def test_big_functions_are_split_within_budget(stdlib: Path) -> None:
    doc = parse_code(stdlib / "difflib.py", config=IngestConfig(max_code_tokens=400))
    parts = [s for s in doc.segments if s.name and " (part " in s.name]
    assert parts
    for seg in doc.segments:
        if seg.line_start != seg.line_end:
            assert seg.tokens <= 400 + 60, (seg.name, seg.tokens)
