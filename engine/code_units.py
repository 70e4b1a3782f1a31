"""Which code units a question or an answer is about: the functions it
names ("What does `Path.exists()` return ..."), and the short helpers those
call. The citer prefers support inside them: "`Path.exists()` returns
False" is supported by `Path.exists`'s `return False`, not by the same two
words in `Path.is_dir`."""
from __future__ import annotations

import re

from storage import SegmentRecord

from .select.code import base_name, resolve_calls
from .select.prune_code import CODE_KINDS


def _last(name: str) -> str:
    return base_name(name).rsplit(".", 1)[-1]


def mentions(text: str, name: str) -> bool:
    """`text` names the unit as code: called (`name(`), as a member
    (`.name`) or in backticks; a bare word ("exists") is prose."""
    word = re.escape(name)
    return bool(re.search(rf"(?<![\w]){word}\s*\(|\.{word}\b|`{word}`", text))


def named_units(text: str, segments: list[SegmentRecord]) -> set[int]:
    """Ids of the code segments `text` names, with the functions they call
    (resolved as code expansion resolves them, `resolve_calls`). A
    class named beside one of its methods (`Sniffer().sniff()`) gives way
    to the method: the question is about what the method does."""
    code = [s for s in segments if s.kind in CODE_KINDS and s.name and not s.name.startswith("<")]
    named = [s for s in code if mentions(text, _last(s.name))]
    methods = {base_name(s.name).rsplit(".", 1)[0] for s in named if "." in base_name(s.name)}
    named = [s for s in named if s.kind != "code-class" or base_name(s.name) not in methods]
    ids = {s.id for s in named}
    for s in named:
        if s.kind == "code-function":
            ids.update(c.id for c in resolve_calls(s, s.text, code))
    return ids
