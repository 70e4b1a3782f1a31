"""Find the files to ingest under the folders a user adds, and say why the
others were left out.

The walk mirrors what a developer expects from their own tools: `.gitignore`
files at every level (and `.git/info/exclude`) are honoured with git's
semantics, vendored and generated folders are skipped, dotfiles stay private,
and symlinks are never followed out of the folder. Every file or folder left
out is reported with a short reason, so a summary can explain a smaller
than expected count.
"""
from __future__ import annotations

import os
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from .config import IngestConfig
from .decode import SNIFF_BYTES, format_size, looks_binary
from .detect import detect_kind
from .progress import Progress, ProgressFn, no_progress

# Version-control metadata is not content and not worth a mention.
_SILENT_DIRS = frozenset({".git", ".hg", ".svn", ".bzr", "_darcs", ".jj"})
# Files that are written by tools, not people: lockfiles and minified bundles.
_GENERATED_NAMES = frozenset({
    "package-lock.json", "yarn.lock", "pnpm-lock.yaml", "poetry.lock", "pipfile.lock",
    "cargo.lock", "composer.lock", "gemfile.lock", "go.sum", "uv.lock", "pdm.lock",
    "npm-shrinkwrap.json", "bun.lockb",
})
_GENERATED_SUFFIXES = (".min.js", ".min.css", ".min.mjs", ".bundle.js", ".map")


@dataclass(frozen=True)
class Skipped:
    path: Path
    reason: str
    is_dir: bool = False


@dataclass
class WalkResult:
    files: list[Path] = field(default_factory=list)      # sorted, no duplicates
    skipped: list[Skipped] = field(default_factory=list)


# -- .gitignore ---------------------------------------------------------------

def _glob_to_regex(pattern: str) -> str:
    """Translate one gitignore glob (already stripped of !, leading and
    trailing slash) to a regex body; `*`, `?` and `[...]` never match "/",
    `**` spans directories when it is a whole path component."""
    out, i, n = [], 0, len(pattern)
    while i < n:
        c = pattern[i]
        if c == "*":
            if pattern.startswith("**", i):
                j = i + 2
                whole = (i == 0 or pattern[i - 1] == "/") and (j == n or pattern[j] == "/")
                while j < n and pattern[j] == "*":
                    j += 1
                if whole and j == n:
                    out.append(".*")
                    i = j
                    continue
                if whole:
                    out.append("(?:.*/)?")
                    i = j + 1
                    continue
                out.append("[^/]*")
                i = j
                continue
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "[":
            j = i + 1
            if j < n and pattern[j] in "!^":
                j += 1
            if j < n and pattern[j] == "]":
                j += 1
            while j < n and pattern[j] != "]":
                j += 1
            if j >= n:
                out.append(re.escape(c))
            else:
                inner = pattern[i + 1:j]
                negate = inner[:1] in ("!", "^")
                inner = inner[1:] if negate else inner
                inner = inner.replace("\\", "\\\\").replace("[", "\\[")
                out.append(f"[{'^/' if negate else ''}{inner}]")
                i = j
        elif c == "\\" and i + 1 < n:
            i += 1
            out.append(re.escape(pattern[i]))
        else:
            out.append(re.escape(c))
        i += 1
    return "".join(out)


@dataclass(frozen=True)
class IgnoreRule:
    """One gitignore line, applying to paths under `base` ("" = top)."""

    base: str
    regex: re.Pattern[str]
    negate: bool
    dir_only: bool

    @classmethod
    def parse(cls, line: str, base: str) -> "IgnoreRule | None":
        line = line.rstrip("\r\n")
        while line.endswith(" ") and not line.endswith("\\ "):
            line = line[:-1]
        if not line or line.startswith("#"):
            return None
        negate = line.startswith("!")
        if negate:
            line = line[1:]
        elif line.startswith(("\\!", "\\#")):
            line = line[1:]
        dir_only = line.endswith("/") and not line.endswith("\\/")
        line = line.rstrip("/") if dir_only else line
        if not line:
            return None
        anchored = "/" in line
        body = _glob_to_regex(line.lstrip("/") if anchored else line)
        prefix = "^" if anchored else "^(?:.*/)?"
        return cls(base, re.compile(prefix + body + "$", re.S), negate, dir_only)

    def matches(self, rel: str, is_dir: bool) -> bool:
        if self.dir_only and not is_dir:
            return False
        if self.base:
            if not rel.startswith(self.base + "/"):
                return False
            rel = rel[len(self.base) + 1:]
        return self.regex.match(rel) is not None


def read_ignore_file(path: Path, base: str) -> list[IgnoreRule]:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return []
    return [rule for line in text.splitlines() if (rule := IgnoreRule.parse(line, base))]


def is_ignored(rules: list[IgnoreRule], rel: str, is_dir: bool) -> bool:
    """Git's rule: the last matching pattern decides; rules are ordered from
    lowest precedence (info/exclude, top .gitignore) to highest (deepest)."""
    ignored = False
    for rule in rules:
        if rule.matches(rel, is_dir):
            ignored = not rule.negate
    return ignored


def _repo_top(root: Path) -> Path | None:
    for folder in (root, *root.parents):
        if (folder / ".git").exists():
            return folder
    return None


# -- the walk ---------------------------------------------------------------

class _Walker:
    def __init__(self, config: IngestConfig, result: WalkResult, seen: dict[str, Path],
                 progress: ProgressFn):
        self.config = config
        self.result = result
        self.seen = seen              # real path -> the path taken for it
        self.progress = progress

    def skip(self, path: Path, reason: str, is_dir: bool = False) -> None:
        self.result.skipped.append(Skipped(path, reason, is_dir))

    def check_file(self, path: Path, size: int) -> None:
        """Take a file or record why not (explicitly named files too)."""
        lower = path.name.lower()
        if lower in _GENERATED_NAMES or lower.endswith(_GENERATED_SUFFIXES):
            self.skip(path, f"generated file ({path.name})")
            return
        kind = detect_kind(path)
        if kind is None:
            self.skip(path, "unsupported type")
            return
        limit = self.config.max_pdf_bytes if kind == "pdf" else self.config.max_text_bytes
        if size > limit:
            self.skip(path, f"over the size limit ({format_size(size)} > {format_size(limit)})")
            return
        if size == 0:
            self.skip(path, "empty file")
            return
        if kind != "pdf":
            try:
                with open(path, "rb") as handle:
                    head = handle.read(SNIFF_BYTES)
            except OSError as exc:
                self.skip(path, f"unreadable ({exc.strerror or exc})")
                return
            if looks_binary(head):
                self.skip(path, "binary file")
                return
        real = os.path.realpath(path)
        taken = self.seen.get(real)
        if taken is not None:            # the same file twice: keep the real path
            if taken.is_symlink() and not path.is_symlink():
                self.result.files[self.result.files.index(taken)] = path
                self.seen[real] = path
            return
        self.seen[real] = path
        self.result.files.append(path)
        if len(self.result.files) % 200 == 0:
            self.progress(Progress("walk", len(self.result.files), None, "files", str(path)))

    def walk(self, root: Path) -> None:
        real_root = os.path.realpath(root)
        top = _repo_top(Path(real_root))
        rules: list[IgnoreRule] = []
        base_parts: tuple[str, ...] = ()
        if top is not None:
            rules += read_ignore_file(top / ".git" / "info" / "exclude", "")
            rel_root = Path(real_root).relative_to(top)
            base_parts = rel_root.parts
            for depth in range(len(base_parts)):     # .gitignore files above the root
                folder = top.joinpath(*base_parts[:depth])
                rules += read_ignore_file(folder / ".gitignore", "/".join(base_parts[:depth]))
        visited = {real_root}
        self._dir(root, real_root, base_parts, rules, visited)

    def _dir(self, folder: Path, real_root: str, parts: tuple[str, ...],
             rules: list[IgnoreRule], visited: set[str]) -> None:
        ignore_file = folder / ".gitignore"
        if ignore_file.is_file():
            rules = rules + read_ignore_file(ignore_file, "/".join(parts))
        try:
            with os.scandir(folder) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as exc:
            self.skip(folder, f"unreadable folder ({exc.strerror or exc})", True)
            return
        for entry in entries:
            self._entry(folder / entry.name, entry, real_root, (*parts, entry.name), rules, visited)

    def _entry(self, path: Path, entry: os.DirEntry, real_root: str, parts: tuple[str, ...],
               rules: list[IgnoreRule], visited: set[str]) -> None:
        name = entry.name
        rel = "/".join(parts)
        try:
            is_link = entry.is_symlink()
            is_dir = entry.is_dir(follow_symlinks=True)
            is_file = entry.is_file(follow_symlinks=True)
        except OSError:
            is_link, is_dir, is_file = False, False, False
        if is_dir:
            if name in _SILENT_DIRS:
                return
            if name in self.config.skipped_dirs:
                self.skip(path, f"vendored or generated folder ({name})", True)
                return
            if name.startswith("."):
                self.skip(path, "hidden folder", True)
                return
        elif name == ".gitignore":
            return
        elif name.startswith("."):
            self.skip(path, "hidden file")
            return
        if is_ignored(rules, rel, is_dir):
            self.skip(path, "ignored by .gitignore", is_dir)
            return
        if is_link:
            target = os.path.realpath(path)
            if not os.path.exists(target):
                self.skip(path, "broken symlink")
                return
            if os.path.commonpath([target, real_root]) != real_root:
                self.skip(path, "symlink outside the folder", is_dir)
                return
        if is_dir:
            real = os.path.realpath(path)
            if real in visited:          # a link back into the tree: seen already
                return
            visited.add(real)
            self._dir(path, real_root, parts, rules, visited)
        elif is_file:
            try:
                size = entry.stat(follow_symlinks=True).st_size
            except OSError as exc:
                self.skip(path, f"unreadable ({exc.strerror or exc})")
                return
            self.check_file(path, size)
        else:
            self.skip(path, "not a regular file")


def walk_paths(paths: list[Path], config: IngestConfig | None = None, *,
               progress: ProgressFn = no_progress) -> WalkResult:
    """Files to ingest under `paths` (folders are walked, files taken as
    named unless unsupported, binary or too big), plus what was skipped."""
    config = config or IngestConfig()
    result = WalkResult()
    walker = _Walker(config, result, {}, progress)
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            walker.walk(path)
        elif path.is_file():
            walker.check_file(path, path.stat().st_size)
        elif path.is_symlink():
            walker.skip(path, "broken symlink")
        else:
            walker.skip(path, "not found")
    result.files.sort()
    progress(Progress("walk", len(result.files), len(result.files), "files"))
    return result


# -- summary ----------------------------------------------------------------

_PHRASES = {   # reason group -> (singular, plural), in the order ties are shown
    "ignored by .gitignore": ("ignored by .gitignore", "ignored by .gitignore"),
    "vendored or generated folder": ("vendored or generated folder",
                                     "vendored or generated folders"),
    "generated file": ("generated file", "generated files"),
    "binary file": ("binary file", "binary files"),
    "over the size limit": ("over the size limit", "over the size limit"),
    "unsupported type": ("unsupported", "unsupported"),
    "hidden file": ("hidden file", "hidden files"),
    "hidden folder": ("hidden folder", "hidden folders"),
    "symlink outside the folder": ("symlink outside the folder", "symlinks outside the folder"),
    "broken symlink": ("broken symlink", "broken symlinks"),
    "empty file": ("empty file", "empty files"),
    "unreadable": ("unreadable", "unreadable"),
    "unreadable folder": ("unreadable folder", "unreadable folders"),
    "not a regular file": ("not a regular file", "not regular files"),
    "not found": ("not found", "not found"),
}


def _group(reason: str) -> str:
    return reason.split(" (", 1)[0]


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def summarize(skipped: list[Skipped]) -> str:
    """One line for the user: "skipped 12 files: 7 ignored by .gitignore,
    3 binary files, 2 over the size limit"."""
    if not skipped:
        return "skipped nothing"
    counts = Counter(_group(s.reason) for s in skipped)
    order = list(_PHRASES)
    ranked = sorted(counts.items(), key=lambda kv: (
        -kv[1], order.index(kv[0]) if kv[0] in order else len(order), kv[0]))
    parts = []
    for group, n in ranked:
        singular, plural = _PHRASES.get(group, (group, group))
        parts.append(f"{n} {singular if n == 1 else plural}")
    folders = sum(1 for s in skipped if s.is_dir)
    files = len(skipped) - folders
    what = [text for n, text in ((files, _plural(files, "file")),
                                 (folders, _plural(folders, "folder"))) if n]
    return f"skipped {' and '.join(what)}: {', '.join(parts)}"
