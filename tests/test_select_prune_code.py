"""PruneCode keeps a long function's signature and its relevant lines."""
from __future__ import annotations

import textwrap

from engine.select import Candidate, PruneCode

from test_select_support import context, seg

FILLER = "\n".join(f"    total_{i} = compute_step({i}, data) + offset" for i in range(60))
FUNCTION = textwrap.dedent('''\
    def wrap_chunks(self, chunks):
        """Wrap a sequence of text chunks into lines."""
        lines = []
''') + FILLER + textwrap.dedent('''
        if self.placeholder_width > self.width:
            raise ValueError("placeholder too large for max width")
''') + FILLER.replace("total_", "other_") + "\n    return lines\n"


def test_long_function_keeps_signature_and_the_relevant_lines():
    segment = seg(FUNCTION, kind="code-function", name="TextWrapper.wrap_chunks",
                  line_start=200, page=None, document_name="textwrap.py")
    cand = Candidate(segment)
    [out] = PruneCode()([cand], context("where is the placeholder checked against the width"))
    kept = out.kept_text
    assert kept.startswith("def wrap_chunks(self, chunks):")
    assert '"""Wrap a sequence of text chunks into lines."""' in kept
    assert 'raise ValueError("placeholder too large for max width")' in kept
    assert len(kept) < len(FUNCTION) / 3
    # Kept ranges are whole lines of the original text.
    for a, b in out.kept:
        assert a == 0 or FUNCTION[a - 1] == "\n"
        assert FUNCTION[b - 1] == "\n"


def test_short_functions_and_prose_stay_whole():
    short = seg("def f(x):\n    return x + 1\n", kind="code-function", page=None, line_start=1)
    prose = seg(FUNCTION, kind="paragraph")
    out = PruneCode()([Candidate(short), Candidate(prose)], context("placeholder width"))
    assert all(c.kept is None for c in out)
