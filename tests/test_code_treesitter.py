"""Tree-sitter languages: units, qualified names and exact line ranges."""
from __future__ import annotations

from pathlib import Path

import pytest

from ingest.code import parse_code
from ingest.config import IngestConfig


def assert_spans(doc) -> None:
    lines = doc.text.splitlines(keepends=True)
    previous_end = 0
    for seg in doc.segments:
        assert doc.text[seg.char_start:seg.char_end] == seg.text
        assert seg.line_start > previous_end
        previous_end = seg.line_end
        assert seg.text == "".join(lines[seg.line_start - 1:seg.line_end]).rstrip("\r\n")
    covered = {n for s in doc.segments for n in range(s.line_start, s.line_end + 1)}
    assert covered >= {i for i, line in enumerate(lines, 1) if line.strip()}


def parse(tmp_path: Path, name: str, source: str, **config) -> object:
    path = tmp_path / name
    path.write_text(source, encoding="utf-8")
    doc = parse_code(path, config=IngestConfig(**config))
    assert_spans(doc)
    return doc


def table(doc) -> list[tuple[str, str | None, int, int]]:
    return [(s.kind, s.name, s.line_start, s.line_end) for s in doc.segments]


JS = """\
import { x } from "./x.js";

// A shape.
export class Shape extends Base {
  static count = 0;

  constructor(w) {
    super();
    this.w = w;
  }

  /** Area. */
  area() {
    return this.w * this.w;
  }

  handle = () => {
    return 1;
  };
}

export const scale = (s, k) => {
  return s.area() * k;
};

function helper() {
  return 2;
}

module.exports = { helper };
"""


def test_javascript(tmp_path: Path) -> None:
    doc = parse(tmp_path, "shape.js", JS)
    assert doc.language == "javascript" and doc.mime == "text/javascript"
    assert table(doc) == [
        ("code-block", "<module>", 1, 1),
        ("code-class", "Shape", 3, 5),                 # comment + export + static field
        ("code-function", "Shape.constructor", 7, 10),
        ("code-function", "Shape.area", 12, 15),       # JSDoc comment included
        ("code-function", "Shape.handle", 17, 20),     # arrow field; the class's "}" joins
        ("code-function", "scale", 22, 24),            # export const arrow
        ("code-function", "helper", 26, 28),
        ("code-block", None, 30, 30),
    ]
    assert doc.segments[2].section == ["Shape"]
    assert doc.warnings == []


TS = """\
interface Point {
  x: number;
  y: number;
}

enum Color { Red, Green }

namespace Geo {
  export function dist(a: Point, b: Point): number {
    return Math.hypot(a.x - b.x, a.y - b.y);
  }
}

export abstract class Repo<T> {
  abstract find(id: string): T;

  @log()
  save(item: T): void {
    console.log(item);
  }
}
"""


def test_typescript(tmp_path: Path) -> None:
    doc = parse(tmp_path, "geo.ts", TS)
    assert doc.language == "typescript"
    assert table(doc) == [
        ("code-class", "Point", 1, 4),
        ("code-class", "Color", 6, 6),
        ("code-block", "Geo", 8, 8),                   # namespace header
        ("code-function", "Geo.dist", 9, 12),
        ("code-class", "Repo", 14, 15),                # abstract signature stays in header
        ("code-function", "Repo.save", 17, 21),        # decorator included
    ]


def test_tsx_component(tmp_path: Path) -> None:
    source = ("import React from 'react';\n\n"
              "export const Button = ({ label }: Props) => {\n"
              "  return <button>{label}</button>;\n"
              "};\n")
    doc = parse(tmp_path, "button.tsx", source)
    assert doc.language == "tsx"
    assert table(doc) == [("code-block", "<module>", 1, 1), ("code-function", "Button", 3, 5)]


GO = """\
package main

import "fmt"

// Server serves.
type Server struct {
	name string
}

// Start starts it.
func (s *Server) Start() error {
	fmt.Println(s.name)
	return nil
}

func (l List[T]) Len() int { return len(l.items) }

func main() {
	s := &Server{name: "x"}
	s.Start()
}
"""


def test_go(tmp_path: Path) -> None:
    doc = parse(tmp_path, "main.go", GO)
    assert table(doc) == [
        ("code-block", "<module>", 1, 3),
        ("code-class", "Server", 5, 8),
        ("code-function", "Server.Start", 10, 14),     # receiver type, pointer dropped
        ("code-function", "List.Len", 16, 16),         # type arguments dropped
        ("code-function", "main", 18, 21),
    ]
    assert doc.segments[2].section == ["Server"]


RUST = """\
use std::fmt;

/// A point.
#[derive(Debug)]
pub struct Point {
    x: i32,
}

impl Point {
    pub fn new(x: i32) -> Self {
        Point { x }
    }
}

impl fmt::Display for Point {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "{}", self.x)
    }
}

mod tests {
    #[test]
    fn works() {}
}
"""


def test_rust(tmp_path: Path) -> None:
    doc = parse(tmp_path, "point.rs", RUST)
    assert table(doc) == [
        ("code-block", "<module>", 1, 1),
        ("code-class", "Point", 3, 7),                 # doc comment + attribute included
        ("code-class", "Point", 9, 9),                 # impl Point header
        ("code-function", "Point.new", 10, 13),
        ("code-class", "Point", 15, 15),               # impl fmt::Display for Point
        ("code-function", "Point.fmt", 16, 19),
        ("code-block", "tests", 21, 21),               # mod header
        ("code-function", "tests.works", 22, 24),      # attribute included
    ]


JAVA = """\
package demo;

import java.util.List;

/** Greeter. */
public class Greeter {
    private final String name;

    public Greeter(String name) {
        this.name = name;
    }

    @Override
    public String toString() {
        return "Greeter " + name;
    }

    abstract void later();

    static class Inner {
        void run() {}
    }
}
"""


def test_java(tmp_path: Path) -> None:
    doc = parse(tmp_path, "Greeter.java", JAVA)
    assert table(doc) == [
        ("code-block", "<module>", 1, 3),
        ("code-class", "Greeter", 5, 7),
        ("code-function", "Greeter.Greeter", 9, 11),   # constructor
        ("code-function", "Greeter.toString", 13, 16),  # annotation included
        ("code-block", "Greeter", 18, 18),             # body-less method: class-level code
        ("code-class", "Greeter.Inner", 20, 20),
        ("code-function", "Greeter.Inner.run", 21, 23),
    ]
    assert doc.segments[-1].section == ["Greeter", "Inner"]


C = """\
#ifndef POINT_H
#define POINT_H
#include <stdio.h>

struct point {
    int x;
};

typedef struct {
    int y;
} pair;

/* Add two numbers. */
static int add(int a, int b)
{
    return a + b;
}

int *find(int *p);

int main(void) {
    printf("%d\\n", add(1, 2));
    return 0;
}

#endif
"""


def test_c_inside_include_guard(tmp_path: Path) -> None:
    doc = parse(tmp_path, "point.c", C)
    assert table(doc) == [
        ("code-block", "<module>", 1, 3),
        ("code-class", "point", 5, 7),
        ("code-class", "pair", 9, 11),
        ("code-function", "add", 13, 17),              # block comment included
        ("code-block", None, 19, 19),                  # a prototype is not a unit
        ("code-function", "main", 21, 26),             # the guard's #endif joins
    ]


CPP = """\
#include <string>

namespace geo {

class Shape {
 public:
  virtual ~Shape() = default;
  double area() const {
    return 0.0;
  }
};

double Circle::perimeter() const {
  return 1.0;
}

}  // namespace geo

template <typename T>
T twice(T x) {
  return x + x;
}
"""


def test_cpp(tmp_path: Path) -> None:
    doc = parse(tmp_path, "shape.cpp", CPP)
    assert doc.mime == "text/x-c++"
    assert table(doc) == [
        ("code-block", "<module>", 1, 1),
        ("code-block", "geo", 3, 3),
        ("code-class", "geo.Shape", 5, 7),
        ("code-function", "geo.Shape.area", 8, 11),
        ("code-function", "geo.Circle.perimeter", 13, 17),   # out-of-line definition
        ("code-function", "twice", 19, 22),                  # template included
    ]
    assert doc.segments[4].section == ["geo", "Circle"]


def test_cpp_header_with_h_extension(tmp_path: Path) -> None:
    source = "#pragma once\n\nnamespace ui {\nclass Widget {\n public:\n  void draw() {}\n};\n}\n"
    doc = parse(tmp_path, "widget.h", source)
    assert doc.language == "cpp"
    assert ("code-function", "ui.Widget.draw", 6, 8) in table(doc)


def test_oversized_js_function_names_locals(tmp_path: Path) -> None:
    body = "\n".join(f"  const v{i} = compute({i}, 'some text', other);" for i in range(30))
    source = (f"function outer() {{\n{body}\n\n  function inner(a) {{\n    return a;\n  }}\n\n"
              f"  return inner(1);\n}}\n")
    doc = parse(tmp_path, "big.js", source, max_code_tokens=200)
    names = [s.name for s in doc.segments]
    assert "outer.<locals>.inner" in names
    inner = doc.segments[names.index("outer.<locals>.inner")]
    assert (inner.line_start, inner.line_end, inner.section) == (33, 35, ["outer"])
    parts = [n for n in names if n.startswith("outer (part ")]
    assert len(parts) >= 2 and parts[-1] == f"outer (part {len(parts)}/{len(parts)})"


def test_syntax_error_warns_but_keeps_units(tmp_path: Path) -> None:
    source = "function good() {\n  return 1;\n}\n\nfunction bad( {\n  return ;;\n\n"
    doc = parse(tmp_path, "bad.js", source)
    assert any("syntax error" in w for w in doc.warnings)
    assert ("code-function", "good", 1, 3) in table(doc)


@pytest.mark.parametrize("name", ["script.rb", "config.yaml", "query.sql"])
def test_other_languages_use_line_windows(tmp_path: Path, name: str) -> None:
    chunks = []
    for block in range(10):
        chunks.append("\n".join(f"line_{block}_{i}: value {i}" for i in range(12)))
    source = "\n\n".join(chunks) + "\n"
    doc = parse(tmp_path, name, source)
    assert all(s.kind == "code-block" and s.name is None for s in doc.segments)
    assert len(doc.segments) >= 2
    lines = source.splitlines()
    for seg in doc.segments:
        assert seg.line_end - seg.line_start + 1 <= 80
        if seg.line_start > 1:
            assert lines[seg.line_start - 2] == ""   # windows break at blank lines
    # balanced: no stub window at the end
    assert doc.segments[-1].line_end - doc.segments[-1].line_start + 1 >= 30


def test_minified_line_is_cut_inside_the_line(tmp_path: Path) -> None:
    items = ", ".join(f'{{"id": {i}, "name": "item number {i}"}}' for i in range(400))
    source = f'{{"generated": true}}\n[{items}]\n'
    path = tmp_path / "data.json"
    path.write_text(source)
    doc = parse_code(path, config=IngestConfig(max_code_tokens=300))
    assert any("cut inside the line" in w for w in doc.warnings)
    long = [s for s in doc.segments if s.line_start == s.line_end == 2]
    assert len(long) >= 5
    for seg in doc.segments:
        assert doc.text[seg.char_start:seg.char_end] == seg.text
        assert seg.tokens <= 300 * 1.2
    # the pieces of line 2 tile it exactly, up to the spaces between them
    assert long[0].char_start == source.index("[")
    assert long[-1].char_end == len(source) - 1
    for a, b in zip(long, long[1:]):
        assert not source[a.char_end:b.char_start].strip()
