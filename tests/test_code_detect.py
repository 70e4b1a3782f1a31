"""File kind detection and the language table."""
from __future__ import annotations

from pathlib import Path

import pytest

from ingest import parse_file
from ingest.code.languages import language_for
from ingest.detect import detect_kind
from ingest.errors import UnsupportedFile


@pytest.mark.parametrize("name, kind", [
    ("a.py", "code"), ("a.pyi", "code"), ("a.JS", "code"), ("a.mjs", "code"),
    ("a.tsx", "code"), ("a.go", "code"), ("a.rs", "code"), ("A.java", "code"),
    ("a.h", "code"), ("a.hpp", "code"), ("a.cs", "code"), ("a.rb", "code"),
    ("a.R", "code"), ("a.r", "code"), ("a.kts", "code"), ("a.yml", "code"),
    ("a.json", "code"), ("a.scss", "code"), ("a.html", "code"), ("a.sql", "code"),
    ("Makefile", "code"), ("Dockerfile", "code"), ("CMakeLists.txt", "code"),
    ("notes.txt", "text"), ("README.md", "text"), ("guide.rst", "text"),
    ("README", "text"), ("LICENSE", "text"), ("CHANGELOG", "text"),
    ("COPYING.LESSER", "text"), ("paper.pdf", "pdf"), ("Paper.PDF", "pdf"),
    ("photo.png", None), ("archive.zip", None), ("data.bin", None), ("noext", None),
])
def test_by_name(tmp_path: Path, name: str, kind: str | None) -> None:
    path = tmp_path / name
    path.write_bytes(b"hello\n")
    assert detect_kind(path) == kind


def test_pdf_magic_beats_a_wrong_extension(tmp_path: Path) -> None:
    for name in ("scan.txt", "download", "report.dat"):
        path = tmp_path / name
        path.write_bytes(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n")
        assert detect_kind(path) == "pdf", name


def test_shebang_scripts_without_extension(tmp_path: Path) -> None:
    path = tmp_path / "deploy"
    path.write_text("#!/usr/bin/env python3\nprint('hi')\n")
    assert detect_kind(path) == "code"
    assert language_for(path, path.read_text()).name == "python"
    shell = tmp_path / "run"
    shell.write_text("#!/bin/bash\necho hi\n")
    assert detect_kind(shell) == "code"


def test_h_header_with_cpp_content(tmp_path: Path) -> None:
    assert language_for(Path("x.h"), "int f(void);\n").name == "c"
    assert language_for(Path("x.h"), "namespace a {\nclass B {};\n}\n").name == "cpp"


def test_parse_file_refuses_unknown_types(tmp_path: Path) -> None:
    path = tmp_path / "photo.png"
    path.write_bytes(b"\x89PNG\r\n")
    with pytest.raises(UnsupportedFile):
        parse_file(path)
