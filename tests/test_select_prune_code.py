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


BLOCK = ('def loads(s, *, cls=None):\n'
         '    """Deserialize s to a Python object."""\n'
         '    result = []\n' + FILLER + '\n\n'
         '    # Checked before anything else is parsed\n'
         '    if isinstance(s, str):\n'
         "        if s.startswith('\\ufeff'):\n"
         '            raise ValueError("unexpected byte order mark")\n'
         + FILLER.replace("total_", "other_") + "\n    return result\n")


def test_kept_lines_bring_the_comment_and_block_header_above_them():
    from engine.select.prune_code import header_lines, line_ranges, relevant_ranges
    from engine.text import LexicalScorer

    question = "what happens when the text starts with a byte order mark"
    scorer = LexicalScorer.fit(question, [BLOCK])
    lines = line_ranges(BLOCK)
    head = header_lines(BLOCK, lines, 12)
    # only the best window, no context: without the lead-in it would start
    # inside the `if isinstance` block
    kept = "".join(BLOCK[a:b] for a, b in relevant_ranges(BLOCK, scorer, head, ratio=1.0,
                                                          context=0))
    assert "\n    # Checked before anything else is parsed\n    if isinstance(s, str):\n" in kept
    assert 'raise ValueError("unexpected byte order mark")' in kept
    assert "total_59" not in kept          # the blank line above the comment stops it


def test_lead_in_stops_at_sibling_statements_blank_lines_and_the_head():
    from engine.select.prune_code import lead_in, line_ranges

    text = textwrap.dedent('''\
        def f(x):
            y = 1
            for item in x:
                # the comment
                # and more
                if item:
                    z = item
            return y
    ''')
    lines = line_ranges(text)
    # "z = item" (line 6): its block header, the comments, the loop header
    assert lead_in(text, lines, 6, head=1) == [5, 4, 3]
    assert lead_in(text, lines, 6, head=1, limit=5) == [5, 4, 3, 2]
    # "return y" (line 7) follows a deeper line: nothing to add
    assert lead_in(text, lines, 7, head=1) == []
    # never into the signature
    assert lead_in(text, lines, 2, head=2) == []
    assert lead_in("a = 1\n\nb = 2\n", line_ranges("a = 1\n\nb = 2\n"), 2, head=0) == []
