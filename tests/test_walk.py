"""Folder walking: .gitignore semantics, skipped folders, limits, summary."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from ingest.config import IngestConfig
from ingest.walk import IgnoreRule, Skipped, is_ignored, summarize, walk_paths


def make(root: Path, files: dict[str, str | bytes]) -> None:
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)


def rels(root: Path, paths: list[Path]) -> list[str]:
    return [p.relative_to(root).as_posix() for p in paths]


def reasons(root: Path, skipped: list[Skipped]) -> dict[str, str]:
    return {s.path.relative_to(root).as_posix(): s.reason for s in skipped}


def rules(text: str, base: str = "") -> list[IgnoreRule]:
    return [r for line in text.splitlines() if (r := IgnoreRule.parse(line, base))]


@pytest.mark.parametrize("patterns, path, is_dir, ignored", [
    ("*.log", "a.log", False, True),
    ("*.log", "deep/down/a.log", False, True),
    ("*.log\n!keep.log", "x/keep.log", False, False),
    ("build/", "build", True, True),
    ("build/", "build", False, False),             # dir-only pattern, file of that name
    ("build/", "src/build", True, True),           # unanchored: any depth
    ("/build", "src/build", True, False),          # anchored to the .gitignore folder
    ("/build", "build", False, True),
    ("doc/frotz", "doc/frotz", True, True),        # a middle slash anchors too
    ("doc/frotz", "a/doc/frotz", True, False),
    ("**/foo", "a/b/foo", False, True),
    ("**/foo", "foo", False, True),
    ("a/**/b", "a/b", False, True),
    ("a/**/b", "a/x/y/b", False, True),
    ("abc/**", "abc/x/y.txt", False, True),
    ("abc/**", "abc", True, False),
    ("*.py[co]", "m.pyc", False, True),
    ("*.py[!co]", "m.pyc", False, False),
    ("file?.txt", "file1.txt", False, True),
    ("file?.txt", "file/.txt", False, False),      # ? never matches a slash
    ("\\#notes", "#notes", False, True),
    ("# comment\n\n", "# comment", False, False),
    ("trailing   ", "trailing", False, True),
])
def test_pattern_semantics(patterns: str, path: str, is_dir: bool, ignored: bool) -> None:
    assert is_ignored(rules(patterns), path, is_dir) is ignored


def test_nested_gitignore_only_applies_below_it() -> None:
    ruleset = rules("*.tmp") + rules("/out\n!important.tmp", base="pkg")
    assert is_ignored(ruleset, "pkg/out", True)
    assert not is_ignored(ruleset, "out", True)
    assert not is_ignored(ruleset, "pkg/important.tmp", False)   # deeper file wins
    assert is_ignored(ruleset, "important.tmp", False)


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "project"
    make(root, {
        ".gitignore": "*.log\n!keep.log\nartifacts/\n/secret.txt\n",
        "main.py": "print('hi')\n",
        "README.md": "# Hi\n",
        "debug.log": "x\n",
        "keep.log": "kept\n",           # unsupported type, but not ignored
        "secret.txt": "s\n",
        "docs/secret.txt": "not anchored here\n",
        "docs/guide.md": "# Guide\n",
        "artifacts/out.py": "x = 1\n",
        "node_modules/lib/index.js": "module.exports = 1;\n",
        "pkg/.gitignore": "generated_*.py\n!generated_keep.py\n",
        "pkg/generated_a.py": "a = 1\n",
        "pkg/generated_keep.py": "k = 1\n",
        "pkg/mod.py": "def f():\n    pass\n",
        ".env": "TOKEN=x\n",
        ".github/workflows/ci.yml": "on: push\n",
        "image.py": b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(100),
        "wide.txt": "UTF-16 text is not binary\n".encode("utf-16"),
        "big.txt": "word " * 1000,
        "photo.png": b"\x89PNG\r\n",
        "package-lock.json": "{}\n",
        "empty.py": "",
    })
    (root / ".git" / "info").mkdir(parents=True)
    (root / ".git" / "info" / "exclude").write_text("excluded.py\n")
    (root / "excluded.py").write_text("x = 1\n")
    return root


def test_walk_tree(tree: Path) -> None:
    result = walk_paths([tree], IngestConfig(max_text_bytes=2000))
    assert rels(tree, result.files) == [
        "README.md", "docs/guide.md", "docs/secret.txt", "main.py",
        "pkg/generated_keep.py", "pkg/mod.py", "wide.txt",
    ]
    assert reasons(tree, result.skipped) == {
        ".env": "hidden file",
        ".github": "hidden folder",
        "big.txt": "over the size limit (5.0 KB > 2.0 KB)",
        "artifacts": "ignored by .gitignore",
        "debug.log": "ignored by .gitignore",
        "empty.py": "empty file",
        "excluded.py": "ignored by .gitignore",
        "image.py": "binary file",
        "keep.log": "unsupported type",
        "node_modules": "vendored or generated folder (node_modules)",
        "package-lock.json": "generated file (package-lock.json)",
        "photo.png": "unsupported type",
        "pkg/generated_a.py": "ignored by .gitignore",
        "secret.txt": "ignored by .gitignore",
    }
    assert ".git" not in reasons(tree, result.skipped)


def test_summary_counts_by_reason(tree: Path) -> None:
    result = walk_paths([tree], IngestConfig(max_text_bytes=2000))
    assert summarize(result.skipped) == (
        "skipped 11 files and 3 folders: 5 ignored by .gitignore, 2 unsupported, "
        "1 vendored or generated folder, 1 generated file, 1 binary file, "
        "1 over the size limit, 1 hidden file, 1 hidden folder, 1 empty file")


def test_summary_example_wording() -> None:
    skipped = ([Skipped(Path(f"l{i}.log"), "ignored by .gitignore") for i in range(7)]
               + [Skipped(Path(f"b{i}"), "binary file") for i in range(3)]
               + [Skipped(Path(f"s{i}"), "over the size limit (3.2 MB > 2.0 MB)")
                  for i in range(2)])
    assert summarize(skipped) == ("skipped 12 files: 7 ignored by .gitignore, "
                                  "3 binary files, 2 over the size limit")
    assert summarize([Skipped(Path("x"), "binary file")]) == "skipped 1 file: 1 binary file"
    assert summarize([]) == "skipped nothing"


def test_size_limit_message_in_megabytes(tmp_path: Path) -> None:
    (tmp_path / "huge.py").write_bytes(b"x = 1\n" * 550_000)        # 3.3 MB
    result = walk_paths([tmp_path], IngestConfig())
    assert result.files == []
    assert result.skipped[0].reason == "over the size limit (3.3 MB > 2.0 MB)"


def test_walking_a_subfolder_honours_the_repo_gitignore(tree: Path) -> None:
    result = walk_paths([tree / "pkg"], IngestConfig())
    assert rels(tree, result.files) == ["pkg/generated_keep.py", "pkg/mod.py"]
    (tree / "docs" / "debug.log").write_text("x\n")
    result = walk_paths([tree / "docs"], IngestConfig())
    assert reasons(tree, result.skipped) == {"docs/debug.log": "ignored by .gitignore"}


def test_explicit_files_and_duplicates(tree: Path) -> None:
    result = walk_paths([tree / "main.py", tree, tree / "photo.png"], IngestConfig())
    assert rels(tree, result.files).count("main.py") == 1
    assert any(s.path == tree / "photo.png" and s.reason == "unsupported type"
               for s in result.skipped)


def test_custom_skipped_dirs(tmp_path: Path) -> None:
    make(tmp_path, {"third/a.py": "a = 1\n", "src/b.py": "b = 1\n"})
    result = walk_paths([tmp_path], IngestConfig(skipped_dirs=frozenset({"third"})))
    assert rels(tmp_path, result.files) == ["src/b.py"]
    assert result.skipped == [Skipped(tmp_path / "third",
                                      "vendored or generated folder (third)", True)]


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="no symlinks")
def test_symlinks(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    make(outside, {"leak.py": "secret = 1\n", "dir/more.py": "x = 1\n"})
    root = tmp_path / "root"
    make(root, {"real.py": "r = 1\n", "sub/inner.py": "i = 1\n"})
    (root / "leak.py").symlink_to(outside / "leak.py")
    (root / "leakdir").symlink_to(outside / "dir")
    (root / "alias.py").symlink_to(root / "real.py")       # inside: same file once
    (root / "loop").symlink_to(root)                        # a cycle back to the top
    (root / "dangling.py").symlink_to(root / "missing.py")
    result = walk_paths([root], IngestConfig())
    assert rels(root, result.files) == ["real.py", "sub/inner.py"]   # not alias.py
    skipped = reasons(root, result.skipped)
    assert skipped["leak.py"] == "symlink outside the folder"
    assert skipped["leakdir"] == "symlink outside the folder"
    assert skipped["dangling.py"] == "broken symlink"
    assert "loop" not in skipped


def test_walk_is_deterministic(tree: Path) -> None:
    first = walk_paths([tree], IngestConfig())
    second = walk_paths([tree], IngestConfig())
    assert first.files == second.files == sorted(first.files)
    assert first.skipped == second.skipped
