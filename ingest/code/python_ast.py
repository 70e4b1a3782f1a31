"""Python units from the standard `ast` module.

`ast` is exact for valid code and knows `end_lineno`, decorators and
async functions; its line numbers use the same line breaks as
`LineIndex`. Comments are invisible to it, so the layout attaches the
comment block above a definition by looking at "#" lines.
"""
from __future__ import annotations

import ast

from .units import LOCALS, Unit

_DEFS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)


def _first_line(node: ast.stmt) -> int:
    """0-based first line of a statement, decorators included."""
    lines = [node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])]
    return min(lines) - 1


def _units(body: list[ast.stmt], scope: tuple[str, ...]) -> list[Unit]:
    units = []
    for node in body:
        if not isinstance(node, _DEFS):
            continue
        start, end = _first_line(node), (node.end_lineno or node.lineno) - 1
        breaks = frozenset(_first_line(s) for s in node.body)
        if isinstance(node, ast.ClassDef):
            units.append(Unit("code-class", scope, node.name, start, end, container=True,
                              children=_units(node.body, (*scope, node.name)),
                              breaks=breaks, body_start=node.lineno))
        else:
            units.append(Unit("code-function", scope, node.name, start, end,
                              children=_units(node.body, (*scope, node.name, LOCALS)),
                              breaks=breaks, body_start=node.lineno))
    return units


def python_units(text: str) -> tuple[list[Unit], frozenset[int], str | None]:
    """(units, top-level statement starts, module docstring title).

    Raises SyntaxError (also for source `ast` cannot take at all, such as
    nesting too deep), so the caller can fall back to tree-sitter.
    """
    try:
        tree = ast.parse(text, type_comments=False)
    except (ValueError, RecursionError, MemoryError) as exc:
        raise SyntaxError(str(exc) or type(exc).__name__) from exc
    docstring = ast.get_docstring(tree, clean=True)
    title = docstring.strip().splitlines()[0].strip() if docstring and docstring.strip() else None
    return _units(tree.body, ()), frozenset(_first_line(s) for s in tree.body), title
