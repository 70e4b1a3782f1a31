"""CodeExpand: a method alone does not say what `self` is or where its
names come from; its class signature and the module's imports do, for a
few lines each. Nor does it say what the small helpers it calls do, when
the answer lies in one of them (`ratio()` returns `_calculate_ratio(...)`,
whose two lines say what an empty pair gives): the short functions of the
same file that the kept lines call come along too. And a class found by
its docstring brings the lines of its constructor that bear on the
question: a class docstring documents what construction does ("prog --
The name of the program (default: sys.argv[0])"), its `__init__` does it
(dev-21: `if prog is None: prog = _os.path.basename(_sys.argv[0])`).
Functions stay whole units (sentence pruning skips code)."""
from __future__ import annotations

import re
from dataclasses import dataclass

from storage import SegmentRecord

from .base import Candidate, SelectionContext
from .prune_code import relevant_ranges
from ..text import LexicalScorer, join_sentences

# The names ingest.code.units gives (kept here: importing ingest.code loads parsers).
MODULE_HEADER = "<module>"     # the first top-level window: docstring, imports
LOCALS = "<locals>"
_PART = re.compile(r" \(part \d+/\d+\)$")
_IMPORT = re.compile(r"^\s*(?:import\s|from\s+\S+\s+import\b|#\s*include\b|using\s|use\s|"
                     r"require\b|package\s|extern\s+crate\b|(?:const|let|var)\s+\w+\s*=\s*require\()")
_MEMBER = re.compile(r"^\s+(?:@|(?:async\s+)?def\s)")
# A call: `name(`, `self.name(`, `obj.name(`; not the name a definition gives.
_CALL = re.compile(r"(?<![\w.])((?:[A-Za-z_]\w*\.)*)([A-Za-z_]\w*)\s*\(")
_DEFINES = re.compile(r"\b(?:def|class|function|func|fn|struct|interface|new)\s+$")
_RECEIVERS = frozenset({"self", "cls", "this"})


def base_name(name: str | None) -> str:
    """A code name without its " (part i/n)" suffix."""
    return _PART.sub("", name or "")


def class_of(segment: SegmentRecord) -> str | None:
    """The qualified class name a method belongs to, or None."""
    name = base_name(segment.name)
    if segment.kind != "code-function" or "." not in name:
        return None
    owner = name.rsplit(".", 1)[0]
    return None if owner.endswith(LOCALS) else owner


def parameters(text: str) -> set[str]:
    """The argument names of the definition `text` starts with."""
    end = re.search(r"\)\s*(?:->[^:]*)?:", text)
    opened = text.find("(")
    if end is None or opened < 0 or opened > end.start():
        return set()
    names = re.findall(r"(?:^|[(,])\s*\**(\w+)", text[opened:end.start()])
    return set(names) - _RECEIVERS


def _lines(text: str) -> list[tuple[int, int]]:
    """(start, end) of every line, newline excluded."""
    out, pos = [], 0
    for line in text.splitlines(keepends=True):
        body = line.rstrip("\r\n")
        out.append((pos, pos + len(body)))
        pos += len(line)
    return out


def _with_newline(text: str, ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Ranges that end mid-text take their line break, so the gap marker
    between parts of code starts a line of its own."""
    return [(a, b + 1) if b < len(text) and text[b] == "\n" else (a, b) for a, b in ranges]


def import_ranges(text: str) -> list[tuple[int, int]]:
    """The import statements of a module header (with continuation lines
    of a bracketed import), as joined ranges."""
    keep, depth = [], 0
    for a, b in _lines(text):
        line = text[a:b]
        if depth > 0 or _IMPORT.match(line):
            keep.append((a, b))
            depth = max(0, depth + line.count("(") + line.count("{") - line.count(")") - line.count("}"))
            if line.rstrip().endswith("\\"):
                depth = max(depth, 1) if depth else 0
    return _with_newline(text, join_sentences(text, keep))


def called_names(text: str) -> list[tuple[str, bool]]:
    """(name, on_self) of the calls in `text`, in order, each once: `on_self`
    for `self.name(` / `cls.name(` / `this.name(`, which mean a member of
    the same class; definitions (`def name(`) are not calls."""
    out: dict[str, bool] = {}
    for m in _CALL.finditer(text):
        if _DEFINES.search(text[max(0, m.start() - 12):m.start()]):
            continue
        receiver = m.group(1).rstrip(".")
        name = m.group(2)
        on_self = receiver in _RECEIVERS
        if name not in out:
            out[name] = on_self
        else:
            out[name] = out[name] or on_self
    return list(out.items())


def resolve_calls(seg: SegmentRecord, text: str,
                  segments: list[SegmentRecord]) -> list[SegmentRecord]:
    """The functions among `segments` that `text` (lines of function `seg`)
    calls, in call order, each once: a method of `seg`'s own class for
    `self.name(`, else a module-level function, else a method of any class
    by that name when only one has it; an ambiguous name resolves to none."""
    functions: dict[str, list[SegmentRecord]] = {}
    for s in segments:
        if s.kind == "code-function" and s.id != seg.id and s.name and not _PART.search(s.name):
            functions.setdefault(s.name.rsplit(".", 1)[-1], []).append(s)
    owner = class_of(seg)
    found: list[SegmentRecord] = []
    for name, on_self in called_names(text):
        options = functions.get(name, [])
        same_class = [s for s in options if owner and class_of(s) == owner]
        module_level = [s for s in options if "." not in s.name]
        if on_self:
            pick = same_class or (options if len(options) == 1 else [])
        else:
            pick = module_level or (options if len(options) == 1 else [])
        if len(pick) == 1 and all(f.id != pick[0].id for f in found):
            found.append(pick[0])
    return found


def signature_ranges(text: str, count_tokens, max_tokens: int) -> list[tuple[int, int]]:
    """The first lines of a class header: always the line(s) through the
    class line, then more while they fit `max_tokens`, stopping at a member."""
    lines = [(a, b) for a, b in _lines(text) if text[a:b].strip()]
    if not lines:
        return []
    keep: list[tuple[int, int]] = []
    seen_class = False
    for a, b in lines:
        line = text[a:b]
        if seen_class and (_MEMBER.match(line) or
                           count_tokens(text[lines[0][0]:b]) > max_tokens):
            break
        keep.append((a, b))
        if re.search(r"\b(?:class|struct|interface|trait|impl|enum|type)\b", line) or len(keep) > 3:
            seen_class = True
    return _with_newline(text, [(keep[0][0], keep[-1][1])])


@dataclass
class CodeExpand:
    name: str = "code"
    class_tokens: int = 80          # budget for a class signature with its docstring start
    imports: bool = True            # any code hit brings its module's imports
    callee_tokens: int = 60         # a called function of the same file up to this size comes along
    max_callees: int = 2            # per hit, in the order the calls appear
    constructor_tokens: int = 120   # a class hit's __init__ lines for the question, at most

    def __call__(self, candidates: list[Candidate], ctx: SelectionContext) -> list[Candidate]:
        if ctx.fetch_document_segments is None:
            return candidates
        present = {c.segment.id for c in candidates}
        added: set[int] = set()     # extras put in `out` so far
        done: set[int] = set()      # candidates passed so far
        documents: dict[int, list[SegmentRecord]] = {}
        out: list[Candidate] = []
        for cand in candidates:
            out.append(cand)
            seg = cand.segment
            done.add(seg.id)
            if cand.role != "hit" or not seg.kind.startswith("code-"):
                continue
            if seg.document_id not in documents:
                documents[seg.document_id] = ctx.fetch_document_segments(seg.document_id)
            doc = documents[seg.document_id]
            for extra in self._extras(cand, doc, ctx):
                sid = extra.segment.id
                if sid in added:
                    continue
                # A callee (or a constructor) that search ranked lower as a
                # hit of its own comes up to its caller (its own, later
                # entry stays: Pack takes each segment once, so it still
                # counts if the caller does not fit).
                if sid not in present or (extra.role in ("callee", "constructor")
                                          and sid not in done):
                    present.add(sid)
                    added.add(sid)
                    out.append(extra)
        return out

    def _extras(self, cand: Candidate, doc: list[SegmentRecord],
                ctx: SelectionContext) -> list[Candidate]:
        seg, extras = cand.segment, []
        owner = class_of(seg)
        if owner:
            header = next((s for s in doc if s.kind == "code-class" and base_name(s.name) == owner
                           and s.ordinal < seg.ordinal), None)
            if header is not None:
                ranges = signature_ranges(header.text, ctx.count_tokens, self.class_tokens)
                if ranges:
                    extras.append(self._added(header, cand, "class", ranges))
        if self.imports and seg.name != MODULE_HEADER:
            module = next((s for s in doc if s.name == MODULE_HEADER and s.kind == "code-block"), None)
            if module is not None and module.ordinal < seg.ordinal:
                ranges = import_ranges(module.text)
                if ranges:
                    extras.append(self._added(module, cand, "imports", ranges))
        constructor = self.constructor(cand, doc, ctx)
        if constructor is not None:
            extras.append(constructor)
        for callee in self.callees(cand, doc, ctx):
            extras.append(Candidate(callee, score=cand.score, role="callee", parent=seg.id))
        return extras

    def callees(self, cand: Candidate, doc: list[SegmentRecord],
                ctx: SelectionContext) -> list[SegmentRecord]:
        """Short functions of the same document that the hit's kept lines
        call: a method of the hit's own class for `self.name(`, else a
        module-level function, else a method of any class by that name
        when only one has it."""
        if self.max_callees <= 0 or cand.segment.kind != "code-function":
            return []
        found: list[SegmentRecord] = []
        for callee in resolve_calls(cand.segment, cand.kept_text, doc):
            if ctx.count_tokens(callee.text) > self.callee_tokens:
                continue
            found.append(callee)
            if len(found) >= self.max_callees:
                break
        return found

    def constructor(self, cand: Candidate, doc: list[SegmentRecord],
                    ctx: SelectionContext) -> Candidate | None:
        """A class hit's `__init__`, when the class lines the question
        matches best name one of its arguments ("- prog -- The name of the
        program"): its first line and its lines that share the most with the
        question and those class lines (the docstring's words for the thing
        asked, "prog", "basename", are the names the code uses), within
        `constructor_tokens`; None otherwise, or when none fits."""
        seg = cand.segment
        if self.constructor_tokens <= 0 or seg.kind != "code-class":
            return None
        wanted = f"{base_name(seg.name)}.__init__"
        init = next((s for s in doc if s.kind == "code-function"
                     and base_name(s.name) == wanted), None)
        if init is None:
            return None
        documented = " ".join(seg.text[a:b] for a, b in relevant_ranges(
            seg.text, LexicalScorer.fit(ctx.question, [seg.text]), 0, ratio=1.0, context=0))
        if not parameters(init.text) & set(re.findall(r"\w+", documented)):
            return None     # what the question matched is not a constructor argument
        query = f"{ctx.question} {documented}"
        scorer = LexicalScorer.fit(query, [init.text])
        for ratio, context in ((0.6, 1), (1.0, 1), (1.0, 0)):
            ranges = relevant_ranges(init.text, scorer, 1, ratio=ratio, context=context)
            if not ranges:
                return None
            if ctx.count_tokens("".join(init.text[a:b] for a, b in ranges)) \
                    <= self.constructor_tokens:
                return self._added(init, cand, "constructor", ranges)
        return None

    @staticmethod
    def _added(segment: SegmentRecord, parent: Candidate, role: str,
               ranges: list[tuple[int, int]]) -> Candidate:
        whole = sum(b - a for a, b in ranges) >= len(segment.text.strip())
        return Candidate(segment, score=parent.score, kept=None if whole else ranges,
                         role=role, parent=parent.segment.id)
