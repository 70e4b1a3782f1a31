"""Units from tree-sitter syntax trees (JS/TS, Go, Rust, Java, C, C++, and
Python when `ast` refuses the file).

tree-sitter never gives up on broken code, so this is also the fallback for
Python with syntax errors. Node positions are UTF-8 byte offsets; they are
mapped to lines through `LineIndex` so line numbers agree with the stored
text whatever its line breaks.

Qualified names join enclosing names with "." in every language:
`Class.method`, Go `Type.Method` (receiver type, pointer and type
arguments dropped), Rust `Type.method` for methods in `impl Type` or
`impl Trait for Type` and `Trait.method` for trait default methods, C++
`ns.Class.method` (also for out-of-line `Class::method` definitions), and
`outer.<locals>.inner` for functions nested in functions. Class-like
containers (classes, structs, interfaces, traits, Rust `impl` blocks --
named after the implementing type) give "code-class" headers; namespaces
(C++ `namespace`, Rust `mod`, TypeScript `namespace`) give "code-block"
headers named after themselves; Rust macros are named `name!`.
"""
from __future__ import annotations

import threading
from typing import Iterable

from ..decode import LineIndex
from .units import LOCALS, Unit

FUNCTIONS: dict[str, frozenset[str]] = {
    "javascript": frozenset({"function_declaration", "generator_function_declaration",
                             "method_definition"}),
    "python": frozenset({"function_definition"}),
    "go": frozenset({"function_declaration", "method_declaration"}),
    "rust": frozenset({"function_item", "macro_definition"}),
    "java": frozenset({"method_declaration", "constructor_declaration",
                       "compact_constructor_declaration"}),
    "c": frozenset({"function_definition"}),
}
CLASSES: dict[str, frozenset[str]] = {   # containers whose members are units
    "javascript": frozenset({"class_declaration", "class", "abstract_class_declaration"}),
    "python": frozenset({"class_definition"}),
    "go": frozenset(),
    "rust": frozenset({"trait_item", "impl_item"}),
    "java": frozenset({"class_declaration", "interface_declaration", "enum_declaration",
                       "record_declaration", "annotation_type_declaration"}),
    "c": frozenset({"class_specifier", "struct_specifier", "union_specifier"}),
}
TYPES: dict[str, frozenset[str]] = {     # type declarations kept whole
    "javascript": frozenset({"interface_declaration", "enum_declaration"}),
    "python": frozenset(),
    "go": frozenset({"type_declaration"}),
    "rust": frozenset({"struct_item", "enum_item", "union_item"}),
    "java": frozenset(),
    "c": frozenset({"enum_specifier", "type_definition"}),
}
NAMESPACES: dict[str, frozenset[str]] = {
    "javascript": frozenset({"internal_module", "module"}),
    "python": frozenset(),
    "go": frozenset(),
    "rust": frozenset({"mod_item"}),
    "java": frozenset(),
    "c": frozenset({"namespace_definition"}),
}
# Nodes whose span is the unit's but whose meaning is in a child.
WRAPPERS = frozenset({"export_statement", "template_declaration", "decorated_definition",
                      "ambient_declaration"})
# Nodes that group units without naming them: walk straight through.
TRANSPARENT = frozenset({"preproc_ifdef", "preproc_if", "preproc_else", "preproc_elif",
                         "preproc_elifdef", "linkage_specification", "enum_body_declarations",
                         "ERROR"})
LEADING = frozenset({"comment", "line_comment", "block_comment", "decorator",
                     "attribute_item"})
_FUNCTION_VALUES = frozenset({"arrow_function", "function_expression", "function",
                              "generator_function"})
_CLASS_VALUES = frozenset({"class", "class_expression"})
_DECLARATOR_WRAPPERS = frozenset({"pointer_declarator", "reference_declarator",
                                  "parenthesized_declarator", "attributed_declarator"})

FAMILY = {"javascript": "javascript", "typescript": "javascript", "tsx": "javascript",
          "python": "python", "go": "go", "rust": "rust", "java": "java",
          "c": "c", "cpp": "c"}


_local = threading.local()


def _parser(grammar: str):
    """One parser per grammar and thread (parsers are not thread-safe)."""
    cache = getattr(_local, "parsers", None)
    if cache is None:
        cache = _local.parsers = {}
    if grammar not in cache:
        from tree_sitter_language_pack import get_parser
        cache[grammar] = get_parser(grammar)
    return cache[grammar]


class _Extractor:
    def __init__(self, grammar: str, source: bytes, index: LineIndex):
        self.grammar = grammar
        self.family = FAMILY[grammar]
        self.source = source
        self.index = index

    # -- positions and text ------------------------------------------------
    def first(self, node) -> int:
        return self.index.line_of_byte(node.start_byte)

    def last(self, node) -> int:
        return self.index.line_of_byte(max(node.end_byte - 1, node.start_byte))

    def text(self, node) -> str:
        return self.source[node.start_byte:node.end_byte].decode("utf-8", "replace")

    def _own_line(self, node) -> bool:
        """Nothing but indentation before `node` on its line."""
        line_start = self.source.rfind(b"\n", 0, node.start_byte) + 1
        return not self.source[line_start:node.start_byte].strip()

    def leading_start(self, node) -> int:
        """First line of `node` with the comments/decorators/attributes that
        sit directly above it (no blank line between) included."""
        start = self.first(node)
        prev = node.prev_named_sibling
        while (prev is not None and prev.type in LEADING and self._own_line(prev)
               and self.last(prev) >= start - 1):
            start = self.first(prev)
            prev = prev.prev_named_sibling
        return start

    # -- naming --------------------------------------------------------------
    def _field_text(self, node, name: str) -> str | None:
        child = node.child_by_field_name(name)
        return self.text(child) if child is not None else None

    def _type_name(self, node) -> str:
        """`*Server` -> Server, `List[T]` -> List, `Vec<T>` -> Vec."""
        while node is not None and node.type in ("pointer_type", "reference_type",
                                                 "generic_type", "qualified_type"):
            inner = node.child_by_field_name("type")
            if inner is None:
                inner = next((c for c in node.named_children if "type" in c.type), None)
            node = inner
        if node is None:
            return "<anonymous>"
        return self.text(node).replace("::", ".")

    def _c_name(self, node) -> list[str] | None:
        declarator = node.child_by_field_name("declarator")
        while declarator is not None and declarator.type in _DECLARATOR_WRAPPERS:
            nested = declarator.child_by_field_name("declarator")
            declarator = nested if nested is not None else next(iter(declarator.named_children), None)
        if declarator is None or declarator.type != "function_declarator":
            declarator = self._find_function_declarator(node)
        if declarator is None:
            return None
        name = declarator.child_by_field_name("declarator")
        if name is None:
            return None
        return " ".join(self.text(name).split()).replace("::", ".").split(".")

    def _find_function_declarator(self, node, depth: int = 3):
        """The declarator of a definition whose head the grammar could not
        place, e.g. behind unexpanded macros (`_GLIBCXX_NODISCARD inline bool
        operator==(...)`): search the head, never the body."""
        if depth == 0:
            return None
        for child in node.named_children:
            if child.type == "function_declarator":
                return child
            if child.type not in ("compound_statement", "field_declaration_list",
                                  "declaration_list"):
                found = self._find_function_declarator(child, depth - 1)
                if found is not None:
                    return found
        return None

    def _name(self, node, default: str = "<anonymous>") -> list[str]:
        t = node.type
        if t == "method_declaration" and self.family == "go":
            receiver = node.child_by_field_name("receiver")
            param = next((c for c in receiver.named_children
                          if c.type == "parameter_declaration"), None) if receiver else None
            owner = self._type_name(param.child_by_field_name("type")) if param else "<receiver>"
            return [owner, self._field_text(node, "name") or default]
        if t == "function_definition" and self.family == "c":
            return self._c_name(node) or [default]
        if t == "impl_item":
            return [self._type_name(node.child_by_field_name("type"))]
        if t == "macro_definition":
            return [(self._field_text(node, "name") or default) + "!"]
        if t == "type_declaration":
            names = [self._field_text(spec, "name") for spec in node.named_children
                     if spec.type in ("type_spec", "type_alias")]
            return [", ".join(n for n in names if n) or default]
        if t == "type_definition":
            return [self._field_text(node, "declarator") or default]
        if t == "namespace_definition":
            name = node.child_by_field_name("name")
            return self.text(name).replace("::", ".").split(".") if name else [default]
        if t in ("module", "internal_module"):
            return [(self._field_text(node, "name") or default).strip("'\"")]
        if t in ("field_definition", "public_field_definition"):
            return [self._field_text(node, "property") or self._field_text(node, "name") or default]
        return [self._field_text(node, "name") or default]

    # -- classification ------------------------------------------------------
    def _has_body(self, node) -> bool:
        return node.child_by_field_name("body") is not None

    def classify(self, node) -> tuple[str, list[str], object | None, bool] | None:
        """(segment kind, name parts, body node, is container) or None."""
        f, t = self.family, node.type
        if t in FUNCTIONS[f]:
            if t != "macro_definition" and not self._has_body(node):
                return None          # a declaration without a body (Java abstract)
            return "code-function", self._name(node), node.child_by_field_name("body"), False
        if t in CLASSES[f]:
            body = node.child_by_field_name("body")
            if body is None:
                return None          # `class Foo;` forward declaration
            return "code-class", self._name(node), body, True
        if t in TYPES[f]:
            if t == "type_definition" and not any(
                    c.child_by_field_name("body") is not None for c in node.named_children):
                return None          # typedef int size; -- a plain alias
            if t == "type_declaration" and not any(
                    spec.child_by_field_name("type") is not None
                    and spec.child_by_field_name("type").type in ("struct_type", "interface_type")
                    for spec in node.named_children):
                return None          # type ID int -- a plain alias
            if t == "enum_specifier" and not self._has_body(node):
                return None
            return "code-class", self._name(node), None, False
        if t in NAMESPACES[f] and self._has_body(node):
            if t == "namespace_definition" and node.child_by_field_name("name") is None:
                return None          # anonymous namespace: handled as transparent
            return "code-block", self._name(node), node.child_by_field_name("body"), True
        if f == "javascript":
            return self._js_value(node)
        return None

    def _js_value(self, node) -> tuple[str, list[str], object | None, bool] | None:
        """`const f = () => {}`, `const C = class {}` and class fields
        holding functions (`handle = () => {}`)."""
        if node.type in ("lexical_declaration", "variable_declaration"):
            declarators = [c for c in node.named_children if c.type == "variable_declarator"]
            if len(declarators) != 1:
                return None
            holder = declarators[0]
        elif node.type in ("field_definition", "public_field_definition"):
            holder = node
        else:
            return None
        value = holder.child_by_field_name("value")
        if value is None:
            return None
        name = self._name(holder)
        if value.type in _FUNCTION_VALUES:
            return "code-function", name, value.child_by_field_name("body"), False
        if value.type in _CLASS_VALUES and node.type != "public_field_definition":
            return "code-class", name, value.child_by_field_name("body"), True
        return None

    # -- walking -------------------------------------------------------------
    def _flatten(self, nodes: Iterable) -> Iterable:
        """Named nodes with transparent groupings opened up."""
        for node in nodes:
            if not node.is_named:
                continue
            if node.type in TRANSPARENT or self._anonymous_scope(node):
                body = node.child_by_field_name("body")
                yield from self._flatten((body if body is not None else node).children)
            else:
                yield node

    def _anonymous_scope(self, node) -> bool:
        """Anonymous namespaces, and "functions" without a name -- what the C
        grammar makes of macro-wrapped blocks like
        `namespace std _GLIBCXX_VISIBILITY(default) {` -- group units
        without naming them."""
        if node.type == "namespace_definition":
            return node.child_by_field_name("name") is None
        return (self.family == "c" and node.type == "function_definition"
                and self._c_name(node) is None)

    def units(self, nodes: Iterable, scope: tuple[str, ...]) -> list[Unit]:
        out = []
        for node in self._flatten(nodes):
            unit = self.unit(node, node, scope)
            if unit is not None:
                out.append(unit)
        return out

    def unit(self, node, span, scope: tuple[str, ...]) -> Unit | None:
        if node.type in WRAPPERS or (node.type == "expression_statement"
                                     and self.family == "javascript"):
            for child in node.named_children:
                if child.type not in LEADING:
                    found = self.unit(child, span, scope)
                    if found is not None:
                        return found
            return None
        info = self.classify(node)
        if info is None:
            return None
        kind, parts, body, container = info
        if parts == ["<anonymous>"] and span.type == "export_statement":
            parts = ["default"]
        outer, short = (*scope, *parts[:-1]), parts[-1]
        inner = (*outer, short) if container else (*outer, short, LOCALS)
        members = list(self._flatten(body.children)) if body is not None else []
        return Unit(kind, outer, short, self.leading_start(span), self.last(span),
                    container=container,
                    children=self.units(members, inner) if members else [],
                    breaks=frozenset(self.first(m) for m in members))

    def top_breaks(self, root) -> frozenset[int]:
        return frozenset(self.first(node) for node in self._flatten(root.children))


def _first_error(root) -> int | None:
    """Row of the first ERROR or MISSING node, for the warning."""
    stack = [root]
    while stack:
        node = stack.pop()
        if node.is_error or node.is_missing:
            return node.start_point.row
        if node.has_error:
            stack.extend(reversed(node.children))
    return None


def treesitter_units(grammar: str, text: str,
                     index: LineIndex) -> tuple[list[Unit], frozenset[int], list[str]]:
    """(units, top-level statement starts, warnings) for one file."""
    source = text.encode("utf-8")
    tree = _parser(grammar).parse(source)
    extractor = _Extractor(grammar, source, index)
    warnings = []
    # C and C++ trip the grammar on every unexpanded macro, so a warning
    # there would be noise on perfectly good code.
    if tree.root_node.has_error and FAMILY[grammar] != "c":
        row = _first_error(tree.root_node)
        where = f" near line {index.line_of_byte(_row_byte(source, row)) + 1}" if row is not None else ""
        warnings.append(f"the {grammar} parser found a syntax error{where}; "
                        "segments around it may be coarser")
    return (extractor.units(tree.root_node.children, ()), extractor.top_breaks(tree.root_node),
            warnings)


def _row_byte(source: bytes, row: int) -> int:
    """Byte offset of tree-sitter row `row` (rows are split at "\\n")."""
    pos = 0
    for _ in range(row):
        nxt = source.find(b"\n", pos)
        if nxt < 0:
            break
        pos = nxt + 1
    return pos
