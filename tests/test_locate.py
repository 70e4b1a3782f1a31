"""Where-questions about code end with the place (engine/locate.py): which
definition, and which of its lines are cited."""
from __future__ import annotations

import pytest

from engine.answer_events import Token
from engine.qa import answer_once, search_query_for
from storage import conversations

from qa_support import ExtractiveBackend
from test_qa import CODE, answerer, library  # noqa: F401 - the fixture


def test_where_question_about_code_ends_with_the_cited_definition(library):
    """The small model explains; the place comes from the citation (locate.py):
    streamed as the answer's last sentence, stored, and cited on its lines."""
    db, _ = library
    events = list(answerer(db, ExtractiveBackend(), context_tokens=400).ask(
        "Where is the water that spills over the dam computed?"))
    result = events[-1].result
    [place] = [s for s in result.sentences if s["text"].startswith("In `")]
    assert place["text"].startswith("In `Reservoir.overflow_volume` (reservoir.py:1")
    assert result.text.endswith(place["text"])
    streamed = "".join(e.text for e in events if isinstance(e, Token))
    assert streamed.split() == result.text.split()
    cited = [c for c in result.citations if c.sentence == result.sentences.index(place)]
    assert cited and 11 <= cited[0].line_start <= cited[0].line_end <= 13
    [turn] = conversations.get_turns(db, result.conversation_id)
    assert turn.answer == result.text
    # an explanation question, or a where-question answered from a PDF, gets no place
    for question in ("How is the water that spills over the dam computed?",
                     "Where does meltwater from the eastern glacier flow?"):
        result = answer_once(answerer(db, ExtractiveBackend(), context_tokens=400), question)
        assert not result.declined and "In `" not in result.text
    off = answer_once(answerer(db, ExtractiveBackend(), context_tokens=400,
                               name_code_places=False),
                      "Where is the water that spills over the dam computed?")
    assert "In `" not in off.text


def test_a_place_is_named_once(library):
    """An answer that already names the cited definition gets nothing more;
    a place cited on code is not put to the model (locate.py)."""
    from engine.locate import Locator

    db, _ = library
    qa = answerer(db, ExtractiveBackend(), context_tokens=400)
    question = "Where is the water that spills over the dam computed?"
    _, selection = qa.retrieve(question, search_query_for(question, []), None)
    cited = qa.citer.cite("The spill is max(0.0, inflow - self.capacity) once it is full.",
                          selection.sources, question=question)
    assert not cited.declined
    picks = Picks("evaporation_loss")
    added = Locator(qa.citer, picks).add(question, cited, selection.sources)
    assert added.startswith(" In `Reservoir.overflow_volume`") and cited.text.endswith(added)
    assert picks.asked == []
    before = (cited.text, len(cited.sentences), len(cited.citations))
    assert Locator(qa.citer).add(question, cited, selection.sources) == ""
    assert (cited.text, len(cited.sentences), len(cited.citations)) == before


@pytest.mark.parametrize("question, where", [
    ("Where does argparse pick the program name?", True),
    ("Which part of difflib drops popular items?", True),
    ("In which function is the BOM rejected?", True),
    ("What function handles leftover data?", True),
    ("What does ratio() return for empty sequences?", False),
    ("How does argparse split an @file?", False),
])
def test_where_questions_are_told_apart(question, where):
    from engine.question_form import asks_where

    assert asks_where(question) is where


def test_documentation_lines_are_told_from_code():
    from engine.select.prune_code import documentation_lines

    text = ('def f(x):\n    """Says what f does.\n\n    More words.\n    """\n'
            '    # a comment\n    return x + 1  # trailing\n')
    assert documentation_lines(text) == {1, 2, 3, 4, 5}


class Picks:
    """A stand-in for the model's pick: scores favour one name; records calls."""

    def __init__(self, favourite: str):
        self.favourite, self.asked = favourite, []

    def __call__(self, options):
        self.asked.append(options)
        return [0.0 if o == f"{self.favourite}`" else -5.0 for o in options]


def test_a_place_the_answer_names_as_code_is_where_the_model_picks(library):
    """A where-answer cited on a docstring that names one of the definitions
    shown, as code: the place is among those it names, not the definition
    whose name the model would score best after any answer; named but
    cited on no line of its code, it is cited on those."""
    from engine.locate import Locator

    db, _ = library
    qa = answerer(db, ExtractiveBackend(), context_tokens=400)
    question = "Where is the water lost to evaporation or spilled over the dam computed?"
    _, selection = qa.retrieve(question, search_query_for(question, []), None)
    answer = ("Water spills over the dam once the reservoir is full, and "
              "`evaporation_loss` computes the rest.")
    cited = qa.citer.cite(answer, selection.sources, question=question)
    assert not cited.declined
    assert Locator(qa.citer)._from_citation(cited, selection.sources)[2]   # cited on docs
    picks = Picks("Reservoir.overflow_volume")
    added = Locator(qa.citer, picks).add(question, cited, selection.sources)
    # the only named place: nothing to ask; named, but only documentation
    # was cited, so the place's code lines are added
    assert picks.asked == []
    assert added.startswith(" In `evaporation_loss` (reservoir.py:1")
    place = cited.citations[-1]
    assert 16 <= place.line_start <= place.line_end <= 18
    assert not any('"""' in line for line in CODE.splitlines()[place.line_start - 1:place.line_end])
    # the same words, not written as code: the model's pick over every place
    plain = qa.citer.cite(answer.replace("`evaporation_loss`", "evaporation loss"),
                          selection.sources, question=question)
    assert Locator(qa.citer)._from_citation(plain, selection.sources)[2]
    picks = Picks("Reservoir.overflow_volume")
    added = Locator(qa.citer, picks).add(question, plain, selection.sources)
    assert picks.asked and added.startswith(" In `Reservoir.overflow_volume` ")


def test_code_lines_are_told_from_documentation():
    from engine.locate import is_code, is_documentation
    from storage import SegmentRecord

    text = ('def decode(self, s):\n    """Return the object."""\n'
            '    obj, end = self.raw_decode(s)  # the value\n    # trailing data\n'
            '    if end != len(s):\n        raise ValueError("Extra data")\n')
    seg = SegmentRecord(1, 1, 0, "code-function", text, None, 0, len(text), 10, 15,
                        [], [], "decode", 40)
    at = [0] + [i + 1 for i, c in enumerate(text) if c == "\n"]   # line starts
    assert is_code(seg, at[0], at[1]) and not is_documentation(seg, at[0], at[1])
    assert is_documentation(seg, at[1], at[2]) and not is_code(seg, at[1], at[2])
    assert not is_code(seg, at[0], at[3]) and not is_documentation(seg, at[0], at[3])
    assert is_documentation(seg, at[3], at[4])              # a comment line
    assert is_code(seg, at[4], at[6])                       # the check and the raise
    assert is_code(seg, at[2], at[3])     # code with a trailing comment acts: it is code


def test_a_place_cited_on_code_and_docstring_together_is_cited_on_its_code(library):
    """The answer's best citation takes in the def line, the docstring and
    the return: the place is that definition (the model's own evidence),
    cited on the line of code alone."""
    from engine.locate import Locator

    db, _ = library
    qa = answerer(db, ExtractiveBackend(), context_tokens=400)
    question = "Where is the water that spills over the dam computed?"
    _, selection = qa.retrieve(question, search_query_for(question, []), None)
    cited = qa.citer.cite("Water spills over the dam once the reservoir is full: "
                          "max(0.0, inflow - self.capacity).", selection.sources,
                          question=question)
    assert [(c.line_start, c.line_end) for c in cited.citations] == [(11, 13)]
    added = Locator(qa.citer).add(question, cited, selection.sources)
    assert added.startswith(" In `Reservoir.overflow_volume` (reservoir.py:13) [")
    assert (cited.citations[-1].line_start, cited.citations[-1].line_end) == (13, 13)


def test_a_place_is_written_out_only_as_a_whole_name():
    from engine.locate import written_out

    answer = "`json.dumps` reuses the default encoder."
    assert written_out(answer, "dumps") and not written_out(answer, "dump")
    assert written_out("See JSONDecoder.decode.", "JSONDecoder.decode")
    assert not written_out("The `decode` method of the `JSONDecoder` class.",
                           "JSONDecoder.decode")
    assert written_out("It is in `__chain_b`.", "__chain_b")


def test_names_place_counts_code_not_words():
    from engine.locate import names_place

    answer = ("The `py_scanstring` function scans strings. The `decode` method of the "
              "`JSONDecoder` class is used to decode a JSON document.")
    assert names_place(answer, "JSONDecoder.decode") and names_place(answer, "py_scanstring")
    assert not names_place(answer, "JSONDecoder.raw_decode")
    assert not names_place("It is used to decode a document.", "JSONDecoder.decode")
    assert names_place("See JSONDecoder.decode.", "JSONDecoder.decode")
    assert names_place("It calls `self.decode()` last.", "JSONDecoder.decode")
    assert not names_place("It calls os.mkdir.", "Path.mkdir")


def test_a_documented_place_is_left_to_the_models_pick(library):
    """A where-answer cited on a docstring: the model picks among the
    functions shown, and the place is cited on that function's code lines,
    not on a window that takes in its docstring (the docstring echoes the
    answer's words; the code is the place)."""
    from engine.locate import Locator

    db, _ = library
    qa = answerer(db, ExtractiveBackend(), context_tokens=400)
    question = "Where is the water lost to evaporation or spilled over the dam computed?"
    _, selection = qa.retrieve(question, search_query_for(question, []), None)
    answer = "Water spills over the dam once the reservoir is full."
    cited = qa.citer.cite(answer, selection.sources, question=question)
    assert not cited.declined and cited.citations[0].line_start == 12   # the docstring
    for favourite in ("Reservoir.overflow_volume", "evaporation_loss"):
        picks = Picks(favourite)
        fresh = qa.citer.cite(answer, selection.sources, question=question)
        added = Locator(qa.citer, picks).add(question, fresh, selection.sources)
        assert added.startswith(f" In `{favourite}` ")
        assert picks.asked and "Reservoir`" not in picks.asked[0]      # functions only
        place = fresh.citations[-1]
        assert place.sentence == len(fresh.sentences) - 1
        lines = CODE.splitlines()[place.line_start - 1:place.line_end]
        assert lines and not any('"""' in line for line in lines)      # code lines only
        first = 11 if favourite != "evaporation_loss" else 16     # the definition's lines
        assert first <= place.line_start <= place.line_end <= first + 2
    # without a model to ask, the cited definition is named as before
    assert Locator(qa.citer).add(question, cited, selection.sources).startswith(
        " In `Reservoir.overflow_volume` ")
