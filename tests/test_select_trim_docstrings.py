"""TrimDocstrings cuts docstrings to their first line for questions about
what code does, and leaves where-questions and prose alone."""
from __future__ import annotations

import textwrap

from engine.select import Candidate, default_pipeline
from engine.select import TrimDocstrings
from engine.select.trim_docstrings import docstring_tails, without

from test_select_support import context, seg

RATIO = textwrap.dedent('''\
    def ratio(self):
        """Return a measure of the sequences' similarity (float in [0,1]).

        Note that this is 1 if the sequences are identical, and 0 if
        they have nothing in common.
        """
        matches = sum(triple[-1] for triple in self.get_matching_blocks())
        return _calculate_ratio(matches, len(self.a) + len(self.b))
    ''')


def _code(text: str = RATIO):
    return seg(text, kind="code-function", name="SequenceMatcher.ratio", page=None,
               line_start=597, document_name="difflib.py")


def test_a_what_question_sees_the_docstrings_first_line_and_all_the_code():
    [out] = TrimDocstrings()([Candidate(_code())],
                             context("What does ratio() return when both sequences are empty?"))
    kept = out.kept_text
    assert kept.startswith('def ratio(self):\n    """Return a measure of the sequences\' similarity')
    assert "nothing in common" not in kept and "identical" not in kept
    assert "matches = sum(triple[-1]" in kept
    assert kept.rstrip().endswith("return _calculate_ratio(matches, len(self.a) + len(self.b))")


def test_a_where_question_and_prose_keep_their_docstrings():
    code, prose = Candidate(_code()), Candidate(seg(RATIO, kind="paragraph"))
    TrimDocstrings()([code], context("Where does difflib compute the similarity ratio?"))
    TrimDocstrings()([prose], context("What does ratio() return for empty sequences?"))
    assert code.kept is None and prose.kept is None


def test_trimming_keeps_what_an_earlier_step_cut():
    cand = Candidate(_code(), kept=[(0, RATIO.index("matches = sum"))])
    TrimDocstrings()([cand], context("What does ratio() return?"))
    assert "matches = sum" not in cand.kept_text
    assert "nothing in common" not in cand.kept_text
    assert cand.kept_text.startswith("def ratio(self):")


def test_docstring_tails_find_the_first_line_that_says_something():
    text = textwrap.dedent('''\
        def f(x):
            """
            Summary line.

            More text.
            """
            return 1

        def g():
            """One line only."""
            r"""Raw
            tail"""
            return 2
        ''')
    tails = [text[a:b] for a, b in docstring_tails(text)]
    assert tails == ['\n    More text.\n    """\n', '    tail"""\n']
    assert without([(0, 10)], [(2, 4), (6, 8)]) == [(0, 2), (4, 6), (8, 10)]


def test_the_default_pipeline_trims_after_code_expansion():
    names = default_pipeline().names
    assert names.index("trim-docstrings") > names.index("code")
