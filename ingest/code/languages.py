"""Which language a source file is in, and which parser handles it.

One table keeps detection (`ingest.detect`), MIME types and parser choice in
agreement. `parser` is "python" (the `ast` module), "treesitter" (a grammar
from tree-sitter-language-pack, named by `grammar`) or "lines" (line windows).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Language:
    name: str
    mime: str
    parser: str = "lines"
    grammar: str | None = None


def _ts(name: str, mime: str, grammar: str | None = None) -> Language:
    return Language(name, mime, "treesitter", grammar or name)


PYTHON = Language("python", "text/x-python", "python", "python")
JAVASCRIPT = _ts("javascript", "text/javascript")
TYPESCRIPT = _ts("typescript", "text/x-typescript")
TSX = _ts("tsx", "text/x-tsx")
GO = _ts("go", "text/x-go")
RUST = _ts("rust", "text/x-rust")
JAVA = _ts("java", "text/x-java")
C = _ts("c", "text/x-c")
CPP = _ts("cpp", "text/x-c++")


def _lines(name: str, mime: str) -> Language:
    return Language(name, mime)


BY_EXTENSION: dict[str, Language] = {
    ".py": PYTHON, ".pyi": PYTHON, ".pyw": PYTHON,
    ".js": JAVASCRIPT, ".mjs": JAVASCRIPT, ".cjs": JAVASCRIPT, ".jsx": JAVASCRIPT,
    ".ts": TYPESCRIPT, ".mts": TYPESCRIPT, ".cts": TYPESCRIPT, ".tsx": TSX,
    ".go": GO, ".rs": RUST, ".java": JAVA,
    ".c": C, ".h": C,
    ".cc": CPP, ".cpp": CPP, ".cxx": CPP, ".c++": CPP,
    ".hpp": CPP, ".hh": CPP, ".hxx": CPP, ".h++": CPP, ".ipp": CPP, ".inl": CPP,
    ".cs": _lines("csharp", "text/x-csharp"),
    ".rb": _lines("ruby", "text/x-ruby"), ".rake": _lines("ruby", "text/x-ruby"),
    ".php": _lines("php", "text/x-php"),
    ".swift": _lines("swift", "text/x-swift"),
    ".kt": _lines("kotlin", "text/x-kotlin"), ".kts": _lines("kotlin", "text/x-kotlin"),
    ".scala": _lines("scala", "text/x-scala"), ".sc": _lines("scala", "text/x-scala"),
    ".lua": _lines("lua", "text/x-lua"),
    ".sh": _lines("bash", "text/x-shellscript"), ".bash": _lines("bash", "text/x-shellscript"),
    ".zsh": _lines("bash", "text/x-shellscript"), ".fish": _lines("fish", "text/x-shellscript"),
    ".ps1": _lines("powershell", "text/x-powershell"),
    ".bat": _lines("batch", "text/x-bat"), ".cmd": _lines("batch", "text/x-bat"),
    ".sql": _lines("sql", "application/sql"),
    ".r": _lines("r", "text/x-r"),
    ".m": _lines("objective-c", "text/x-objc"), ".mm": _lines("objective-c", "text/x-objc"),
    ".jl": _lines("julia", "text/x-julia"),
    ".pl": _lines("perl", "text/x-perl"), ".pm": _lines("perl", "text/x-perl"),
    ".hs": _lines("haskell", "text/x-haskell"),
    ".ml": _lines("ocaml", "text/x-ocaml"), ".mli": _lines("ocaml", "text/x-ocaml"),
    ".ex": _lines("elixir", "text/x-elixir"), ".exs": _lines("elixir", "text/x-elixir"),
    ".erl": _lines("erlang", "text/x-erlang"),
    ".clj": _lines("clojure", "text/x-clojure"), ".cljs": _lines("clojure", "text/x-clojure"),
    ".dart": _lines("dart", "text/x-dart"),
    ".zig": _lines("zig", "text/x-zig"),
    ".nim": _lines("nim", "text/x-nim"),
    ".v": _lines("verilog", "text/x-verilog"), ".vhd": _lines("vhdl", "text/x-vhdl"),
    ".f90": _lines("fortran", "text/x-fortran"), ".f": _lines("fortran", "text/x-fortran"),
    ".groovy": _lines("groovy", "text/x-groovy"), ".gradle": _lines("groovy", "text/x-groovy"),
    ".elm": _lines("elm", "text/x-elm"), ".vue": _lines("vue", "text/x-vue"),
    ".svelte": _lines("svelte", "text/x-svelte"),
    ".proto": _lines("protobuf", "text/x-protobuf"),
    ".graphql": _lines("graphql", "application/graphql"), ".gql": _lines("graphql", "application/graphql"),
    ".tf": _lines("hcl", "text/x-hcl"), ".hcl": _lines("hcl", "text/x-hcl"),
    ".cmake": _lines("cmake", "text/x-cmake"),
    ".mk": _lines("make", "text/x-makefile"),
    ".toml": _lines("toml", "application/toml"),
    ".yaml": _lines("yaml", "application/yaml"), ".yml": _lines("yaml", "application/yaml"),
    ".json": _lines("json", "application/json"), ".jsonc": _lines("json", "application/json"),
    ".ini": _lines("ini", "text/x-ini"), ".cfg": _lines("ini", "text/x-ini"),
    ".css": _lines("css", "text/css"), ".scss": _lines("scss", "text/x-scss"),
    ".sass": _lines("sass", "text/x-sass"), ".less": _lines("less", "text/x-less"),
    ".html": _lines("html", "text/html"), ".htm": _lines("html", "text/html"),
    ".xml": _lines("xml", "application/xml"), ".xsd": _lines("xml", "application/xml"),
    ".tex": _lines("latex", "text/x-tex"),
}

# Build and config files known by name rather than extension.
BY_NAME: dict[str, Language] = {
    "makefile": _lines("make", "text/x-makefile"),
    "gnumakefile": _lines("make", "text/x-makefile"),
    "dockerfile": _lines("dockerfile", "text/x-dockerfile"),
    "containerfile": _lines("dockerfile", "text/x-dockerfile"),
    "cmakelists.txt": _lines("cmake", "text/x-cmake"),
    "jenkinsfile": _lines("groovy", "text/x-groovy"),
    "rakefile": _lines("ruby", "text/x-ruby"),
    "gemfile": _lines("ruby", "text/x-ruby"),
    "vagrantfile": _lines("ruby", "text/x-ruby"),
    "sconstruct": PYTHON, "sconscript": PYTHON,
    ".bashrc": _lines("bash", "text/x-shellscript"),
    ".zshrc": _lines("bash", "text/x-shellscript"),
    ".profile": _lines("bash", "text/x-shellscript"),
}

_SHEBANG = {
    "python": PYTHON, "python3": PYTHON, "python2": PYTHON, "pypy": PYTHON, "pypy3": PYTHON,
    "node": JAVASCRIPT, "deno": TYPESCRIPT, "bun": JAVASCRIPT,
    "sh": BY_EXTENSION[".sh"], "bash": BY_EXTENSION[".sh"], "zsh": BY_EXTENSION[".sh"],
    "dash": BY_EXTENSION[".sh"], "ruby": BY_EXTENSION[".rb"], "perl": BY_EXTENSION[".pl"],
    "lua": BY_EXTENSION[".lua"], "php": BY_EXTENSION[".php"],
}
_CPP_IN_HEADER = re.compile(
    r"^\s*(class\s+\w+\s*[:{]|namespace\b|template\s*<|public:|private:|"
    r"#include\s*<(iostream|string|vector|memory|map)>)", re.M)


def language_for_name(path: Path) -> Language | None:
    """Language from the file name alone (extension, then well-known names)."""
    name = path.name.lower()
    if name in BY_NAME:
        return BY_NAME[name]
    return BY_EXTENSION.get(path.suffix.lower()) if path.suffix else None


def language_from_shebang(first_line: str) -> Language | None:
    """`#!/usr/bin/env python3` -> Python, for scripts without an extension."""
    if not first_line.startswith("#!"):
        return None
    words = first_line[2:].split()
    if not words:
        return None
    program = words[0].rsplit("/", 1)[-1]
    if program == "env":
        rest = [w for w in words[1:] if not w.startswith("-")]
        program = rest[0] if rest else ""
    program = re.sub(r"[\d.]+$", "", program) or program
    return _SHEBANG.get(program) or _SHEBANG.get(program.rstrip("0123456789."))


def language_for(path: Path, text: str) -> Language:
    """Language of a code file, looking at the content where the name is
    ambiguous: `.h` may be C++, and extensionless scripts have a shebang."""
    lang = language_for_name(path)
    if lang is None:
        lang = language_from_shebang(text.split("\n", 1)[0]) or Language("text", "text/plain")
    if lang is C and path.suffix.lower() == ".h" and _CPP_IN_HEADER.search(text):
        return CPP
    return lang
