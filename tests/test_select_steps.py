"""Each selection step does what it claims, on crafted segments and a fake,
deterministic embedder (no model is loaded)."""
from __future__ import annotations

from engine.select import (GAP, CodeExpand, Diversify, NeighbourExpand, Pack, PruneSentences,
                           Rerank, render_sources)
from engine.text import sentence_spans, terms
from ingest.tokens import count_tokens
from test_select_support import cand, code_segments, context, seg

KMEANS = seg("The algorithm of Hartigan and Wong (1979) is used by default for kmeans "
             "clustering; Lloyd and MacQueen are the alternatives.", section=["kmeans"])
OPTIM = seg("Nelder-Mead runs at most 500 iterations unless maxit is changed.", section=["optim"])
CARS = seg("Automobiles need regular oil changes and tyre rotation.", section=["cars"])


# -- Rerank -------------------------------------------------------------------

def test_rerank_puts_the_relevant_segment_first():
    ctx = context("Which algorithm does kmeans use by default?")
    # retrieval ranked the answer last
    pool = [cand(CARS, 0.033), cand(OPTIM, 0.030), cand(KMEANS, 0.016)]
    ranked = Rerank()(pool, ctx)
    assert ranked[0].segment is KMEANS
    assert set(ranked[0].scores) >= {"retrieval", "lexical", "cosine", "rerank"}


def test_rerank_works_lexically_without_an_embedder():
    ctx = context("Which algorithm does kmeans use by default?", embed=None)
    ranked = Rerank()([cand(CARS, 0.033), cand(OPTIM, 0.030), cand(KMEANS, 0.016)], ctx)
    assert ranked[0].segment is KMEANS and "cosine" not in ranked[0].scores


def test_rerank_reads_either_spelling_of_a_word():
    licensed = seg("The package is licensed under the GNU GPL 2 or later.")
    other = seg("The package builds with the GNU compiler collection.")
    ranked = Rerank()([cand(other), cand(licensed)],
                      context("Under what licence is the package released?", embed=None))
    assert ranked[0].segment is licensed
    assert terms("licence licensed colour centre") == terms("license licenced color center")


def test_rerank_splits_identifiers_and_keeps_top_n():
    code = seg("def parse_constant(self, name):\n    return _CONSTANTS[name]", kind="code-function",
               name="JSONDecoder.parse_constant", page=None, line_start=10)
    other = seg("def raw_decode(self, s, idx=0):\n    return self.scan_once(s, idx)",
                kind="code-function", name="JSONDecoder.raw_decode", page=None, line_start=20)
    ctx = context("where are constants parsed?", embed=None)
    ranked = Rerank(keep=1)([cand(other, 0.03), cand(code, 0.02)], ctx)
    assert [c.segment for c in ranked] == [code]
    assert {"pars", "constant", "parse_constant"} <= set(terms("parse_constant"))


# -- Diversify ----------------------------------------------------------------

def test_mmr_drops_a_near_duplicate_and_keeps_the_different_segment():
    copy = seg(KMEANS.text.replace("clustering", "clustering."), section=["kmeans"])
    pool = [cand(KMEANS, 0.9), cand(copy, 0.85), cand(OPTIM, 0.3)]
    chosen = Diversify()(pool, context("kmeans default algorithm"))
    assert [c.segment for c in chosen] == [KMEANS, OPTIM]


def test_mmr_prefers_novelty_when_lambda_is_low():
    similar = seg("Hartigan and Wong is the kmeans algorithm used by default in clustering.",
                  section=["kmeans"])
    pool = [cand(KMEANS, 0.9), cand(similar, 0.8), cand(OPTIM, 0.7)]
    novel = Diversify(lam=0.3, duplicate=1.01)(pool, context("kmeans"))
    greedy = Diversify(lam=1.0, duplicate=1.01)(pool, context("kmeans"))
    assert [c.segment for c in novel] == [KMEANS, OPTIM, similar]
    assert [c.segment for c in greedy] == [KMEANS, similar, OPTIM]


# -- PruneSentences -------------------------------------------------------------

LONG = seg(
    "The optim function offers several methods. It is a general-purpose optimiser. "
    "Many users call it with default settings. The Nelder-Mead method is the default one. "
    "Its maximum number of iterations is 500, set by maxit in the control list. "
    "Convergence is reported in the result. The output also holds the counts. "
    "Plotting helpers are documented elsewhere. Random seeds do not matter here. "
    "See Sec. 3 of the appendix for the history of the package, e.g. its authors.",
    section=["optim"])


def test_pruning_keeps_relevant_sentences_and_neighbours_with_exact_offsets():
    c = cand(LONG)
    PruneSentences()([c], context("How many iterations does Nelder-Mead do at most (maxit)?"))
    assert c.kept is not None
    kept = [LONG.text[a:b] for a, b in c.kept]
    joined = " ".join(kept)
    assert "maximum number of iterations is 500" in joined
    assert "The Nelder-Mead method is the default one." in joined        # neighbour before
    assert "Convergence is reported in the result." in joined            # neighbour after
    assert "Plotting helpers" not in joined and "history of the package" not in joined
    assert c.kept_text == GAP.join(kept)
    for a, b in c.kept:   # ranges are whole sentences of the segment
        assert LONG.text[a:b] == LONG.text[a:b].strip()
        assert any(s[0] == a for s in sentence_spans(LONG.text))
        assert any(s[1] == b for s in sentence_spans(LONG.text))


def test_pruning_with_sentence_embeddings_keeps_the_answer():
    c = cand(LONG)
    PruneSentences(use_embeddings=True)([c], context("maximum iterations Nelder-Mead maxit"))
    assert c.kept and "iterations is 500" in c.kept_text and "Plotting" not in c.kept_text


def test_pruning_never_empties_a_segment():
    c = cand(LONG)
    PruneSentences(ratio=1.0, window=0)([c], context("zebra migration in Kenya"))
    assert c.kept and all(b > a for a, b in c.kept)


def test_tables_code_and_short_segments_are_not_pruned():
    table = seg("| method | maxit |\n| Nelder-Mead | 500 |\n| BFGS | 100 |\n" * 8, kind="table")
    code = seg("def f():\n    '''Iterations. Many. Words.'''\n" * 10, kind="code-function",
               name="f", page=None, line_start=1)
    short = seg("Iterations: 500. Nelder-Mead. Default.")
    pool = [cand(table), cand(code), cand(short)]
    PruneSentences()(pool, context("iterations Nelder-Mead"))
    assert all(c.kept is None for c in pool)


def test_sentence_splitter_handles_abbreviations_numbers_and_lists():
    text = ("Pi is approx. 3.14 here. See Fig. 2 by R. A. Fisher, i.e. the book.\n"
            "- first item\n- second item\n\nA new paragraph.")
    assert [text[a:b] for a, b in sentence_spans(text)] == [
        "Pi is approx. 3.14 here.", "See Fig. 2 by R. A. Fisher, i.e. the book.",
        "- first item", "- second item", "A new paragraph."]


# -- CodeExpand -----------------------------------------------------------------

SOURCE = '''"""JSON decoding, the module docstring."""
import re
from json import scanner
from .errors import (
    JSONDecodeError,
)

NaN = float("nan")


class JSONDecoder(object):
    """Simple JSON decoder.

    Performs the following translations in decoding by default, a long
    table follows in the real module, with many lines of text describing
    every JSON type and the Python type it becomes, line after line,
    until the reader knows them all by heart and wants to stop reading.
    """

    def __init__(self, *, object_hook=None, parse_constant=None):
        self.object_hook = object_hook
        self.parse_constant = parse_constant or float

    def decode(self, s):
        """Return the Python representation of s."""
        obj, end = self.raw_decode(s)
        return obj


def py_scanstring(s, end, strict=True):
    """Scan the string s for a JSON string. Returns a tuple. It is long.

    More words. More sentences. Even more.
    """
    chunks = []
    while True:
        chunks.append(s[end])
        end += 1
        if end > 10:
            break
    return "".join(chunks), end
'''


def test_a_method_brings_its_class_signature_and_the_imports(tmp_path):
    segments = code_segments(tmp_path, SOURCE)
    by_name = {s.name: s for s in segments}
    method = by_name["JSONDecoder.decode"]
    ctx = context("what does decode return?", segments=segments)
    out = CodeExpand(class_tokens=30)([cand(method)], ctx)
    roles = {c.role: c for c in out}
    assert [c.segment for c in out][0] is method and set(roles) == {"hit", "class", "imports"}
    cls = roles["class"]
    assert cls.segment.name == "JSONDecoder" and cls.parent == method.id
    assert cls.kept_text.startswith("class JSONDecoder(object):")
    assert "def __init__" not in cls.kept_text and "heart" not in cls.kept_text
    imports = roles["imports"].kept_text
    assert imports.startswith("import re\nfrom json import scanner")
    assert imports.endswith(")\n") and "JSONDecodeError" in imports
    assert "docstring" not in imports and "NaN" not in imports
    # the method itself is whole, and its header names the file, lines and method
    selection = Pack()(out, ctx)
    text = render_sources(selection)
    assert method.text in text
    assert f"json/decoder.py:{method.line_start}-{method.line_end} (JSONDecoder.decode)" in text
    # imports and class signature are adjacent segments: one source, from line 2
    assert text.startswith("[1] json/decoder.py:2-14 (JSONDecoder)\nimport re\n")
    assert [s.label for s in selection.sources] == [1, 2]


def test_a_function_is_kept_whole_and_brings_only_imports(tmp_path):
    segments = code_segments(tmp_path, SOURCE)
    func = next(s for s in segments if s.name == "py_scanstring")
    ctx = context("how is a JSON string scanned? More words", segments=segments)
    out = CodeExpand()(PruneSentences(min_tokens=1)([cand(func)], ctx), ctx)
    assert [c.role for c in out] == ["hit", "imports"]
    assert out[0].kept is None


CALLS = '''"""Similarity of two sequences."""


def _ratio(matches, length):
    if length:
        return 2.0 * matches / length
    return 1.0


def _long_helper(items):
    """A helper too long to come along with its caller."""
''' + "".join(f"    total_{i} = sum(items[{i}:]) * {i} + len(items)\n" for i in range(40)) + '''    return items


class Matcher:
    """Compares two sequences."""

    def ratio(self):
        """Return a measure of the sequences' similarity."""
        matches = self.count() + _long_helper([1])
        return _ratio(matches, len(self.a) + len(self.b))

    def count(self):
        return len(self.a)

    def again(self):
        return self.again()


class Other:
    def count(self):
        return 0
'''


def test_called_names_are_calls_not_definitions():
    from engine.select.code import called_names

    text = ("def ratio(self):\n    x = self.count() + helper(1)\n"
            "    return obj.size(x), cls.build(), helper(2)\n")
    assert called_names(text) == [("count", True), ("helper", False), ("size", False),
                                  ("build", True)]


def test_a_hit_brings_the_short_functions_it_calls(tmp_path):
    segments = code_segments(tmp_path, CALLS, name="matcher.py")
    by_name = {s.name: s for s in segments}
    ratio, again = by_name["Matcher.ratio"], by_name["Matcher.again"]
    ctx = context("what does ratio return when both sequences are empty?", segments=segments)
    out = CodeExpand()([cand(ratio)], ctx)
    callees = [c for c in out if c.role == "callee"]
    # self.count() is Matcher.count (not Other.count); _ratio() is the module
    # function; _long_helper is over callee_tokens
    assert [c.segment.name for c in callees] == ["Matcher.count", "_ratio"]
    assert all(c.parent == ratio.id and c.kept is None for c in callees)
    def callee_names(step, hit):
        return [c.segment.name for c in step([cand(hit)], ctx) if c.role == "callee"]

    assert callee_names(CodeExpand(max_callees=1), ratio) == ["Matcher.count"]
    assert callee_names(CodeExpand(max_callees=0), ratio) == []
    assert callee_names(CodeExpand(callee_tokens=1000), ratio) == [
        "Matcher.count", "_long_helper"]
    # a recursive call brings nothing: the function is already there
    assert callee_names(CodeExpand(), again) == []
    # the helper's lines reach the packed sources, next to their caller
    text = render_sources(Pack()(out, ctx))
    assert "return 2.0 * matches / length" in text and "def ratio(self):" in text


def test_a_callee_ranked_lower_comes_up_to_its_caller(tmp_path):
    segments = code_segments(tmp_path, CALLS, name="matcher.py")
    by_name = {s.name: s for s in segments}
    ratio, helper, count = by_name["Matcher.ratio"], by_name["_ratio"], by_name["Matcher.count"]
    filler = seg("Unrelated prose about sequences and similarity measures. " * 12)
    ctx = context("what does ratio return when both sequences are empty?", segments=segments)
    pool = [cand(ratio, 0.9), cand(filler, 0.5), cand(helper, 0.1)]
    out = CodeExpand(imports=False)(pool, ctx)
    matcher = by_name["Matcher"]
    assert [(c.segment, c.role) for c in out] == [
        (ratio, "hit"), (matcher, "class"), (count, "callee"), (helper, "callee"),
        (filler, "hit"), (helper, "hit")]
    # room for the caller, its class line and its helpers but not the
    # filler: the helper comes in with its caller, and its later copy is
    # not packed twice
    room = count_tokens(render_sources(Pack()(out[:4], ctx)))
    selection = Pack()(out, context(ctx.question, budget=room, segments=segments))
    packed = [seg.id for source in selection.sources for seg in source.segments]
    assert sorted(packed) == sorted([ratio.id, matcher.id, count.id, helper.id])
    assert selection.dropped == [filler.id]
    # without the promotion the helper, ranked below the filler, is left out
    before = Pack()(pool, context(ctx.question, budget=room, segments=segments))
    assert helper.id not in [seg.id for source in before.sources for seg in source.segments]



PARSER = '''"""Command-line parsing."""
import os
import sys


class Parser:
    """Turns command lines into objects.

    Keyword Arguments:
        - prog -- The name of the program (default: os.path.basename(sys.argv[0]))
        - usage -- A usage message (default: generated from the arguments)
    """

    def __init__(self, prog=None, usage=None, add_help=True):
''' + "".join(f"        self.option_{i} = None  # the name shown for option {i}\n" for i in range(30)) + '''
        # default setting for prog
        if prog is None:
            prog = os.path.basename(sys.argv[0])
        self.prog = prog
        self.objects = []  # command lines turned into objects
''' + "".join(f"        self.table_{i} = []  # lookup table {i}\n" for i in range(30)) + '''
    def parse(self, args):
        return args
'''


def test_a_class_found_by_its_docstring_brings_the_constructor_lines_it_documents(tmp_path):
    """The docstring's words for the thing asked ("prog", "basename") find
    the constructor lines that do it, where the question's words do not."""
    segments = code_segments(tmp_path, PARSER, name="parser.py")
    by_name = {s.name: s for s in segments}
    cls, init = by_name["Parser"], by_name["Parser.__init__"]
    question = "Where does the parser decide which program name to show when none is given?"
    ctx = context(question, segments=segments)
    filler = seg("Unrelated prose about command lines and shells. " * 12)
    out = CodeExpand(imports=False)([cand(cls, 0.9), cand(filler, 0.5), cand(init, 0.1)], ctx)
    assert [(c.segment, c.role) for c in out] == [
        (cls, "hit"), (init, "constructor"), (filler, "hit"), (init, "hit")]
    kept = out[1].kept_text
    assert "prog = os.path.basename(sys.argv[0])" in kept and "def __init__" in kept
    assert "table_29" not in kept and "option_0 " not in kept
    assert count_tokens(kept) <= CodeExpand().constructor_tokens and out[1].parent == cls.id
    assert [c.role for c in CodeExpand(imports=False, constructor_tokens=0)(
        [cand(cls)], ctx)] == ["hit"]
    # the class lines a question matches best name no argument: no constructor
    other = context("What does the parser turn command lines into?", segments=segments)
    assert [c.role for c in CodeExpand(imports=False)([cand(cls)], other)] == ["hit"]
    # a method hit brings no constructor
    assert "constructor" not in [c.role for c in CodeExpand()([cand(by_name["Parser.parse"])],
                                                              ctx)]


# -- NeighbourExpand --------------------------------------------------------------

def test_a_segment_cut_mid_sentence_brings_its_continuation():
    first = seg("For kmeans the algorithm of Hartigan and Wong (1979) is used", doc=3, ordinal=4)
    nxt = seg("by default. Other methods are Lloyd and MacQueen. " * 20, doc=3, ordinal=5, page=2)
    ok = seg("A finished sentence about kmeans.", doc=3, ordinal=9)
    after_ok = seg("Another finished sentence.", doc=3, ordinal=10)
    ctx = context("kmeans default", segments=[first, nxt, ok, after_ok])
    out = NeighbourExpand()([cand(first), cand(ok)], ctx)
    assert [(c.segment, c.role) for c in out] == [(first, "hit"), (nxt, "neighbour"), (ok, "hit")]
    assert out[1].kept_text == "by default." and out[1].parent == first.id
    selection = Pack()(out, ctx)
    merged = selection.sources[0]
    assert [p.segment for p in merged.parts] == [first, nxt]
    assert merged.text == first.text + GAP + "by default."
    assert render_sources(selection).startswith("[1] manual.pdf, pp. 1–2\n")


def test_a_segment_starting_mid_sentence_brings_the_one_before():
    prev = seg("The default algorithm of kmeans is Hartigan and", doc=3, ordinal=1)
    cut = seg("Wong; others exist. more text.", doc=3, ordinal=2)
    cut2 = seg("and Wong (1979) is the default.", doc=3, ordinal=2, sid=99)
    ctx = context("kmeans", segments=[prev, cut2])
    out = NeighbourExpand()([cand(cut2)], ctx)
    assert [c.segment for c in out] == [cut2, prev] and out[1].role == "neighbour"
    assert cut.text  # a capitalised start is not a continuation:
    ctx = context("kmeans", segments=[prev, cut])
    assert [c.role for c in NeighbourExpand()([cand(cut)], ctx)] == ["hit"]


def test_tables_are_neither_pruned_nor_split_when_packed():
    table = seg("| method | maxit |\n" + "| Nelder-Mead | 500 |\n" * 40, kind="table")
    ctx = context("maxit Nelder-Mead", budget=60)
    chosen = PruneSentences()([cand(table)], ctx)
    assert chosen[0].kept is None
    selection = Pack()(chosen, ctx)
    assert selection.sources == [] and selection.dropped == [table.id]
    ctx.budget = 2000
    selection = Pack()(chosen, ctx)
    assert selection.sources[0].text == table.text
