"""The answering pipeline end to end, with a deterministic answer model:
search -> selection -> prompt -> stream -> citations -> stored turn."""
from __future__ import annotations

import threading

import pymupdf
import pytest

from engine.indexer import ingest_paths
from engine.answer_events import Done, Stage, Token
from engine.qa import Answerer, QAConfig, answer_once, search_query_for
from engine.search import HybridSearcher
from engine.select import default_pipeline
from ingest import IngestConfig
from ingest.pdf.words import WordBoxes
from storage import conversations, open_db

from qa_support import ExtractiveBackend

FACTS = [
    "Glaciers in the northern valley advance roughly forty metres every winter.",
    "The observatory on the ridge records wind speed with three cup anemometers.",
    "Meltwater from the eastern glacier feeds the Lindqvist reservoir in early summer.",
]


def fact_pdf(path):
    doc = pymupdf.open()
    filler = ("Field notes describe the survey routes, the weather on each day and the "
              "equipment that the team carried up the slopes. ") * 6
    for number, fact in enumerate(FACTS, 1):
        page = doc.new_page()
        page.insert_textbox(pymupdf.Rect(56, 56, 556, 160), f"Chapter {number}",
                            fontsize=16, fontname="hebo")
        page.insert_textbox(pymupdf.Rect(56, 100, 556, 700), f"{filler}\n\n{fact}\n\n{filler}",
                            fontsize=11, fontname="helv")
    doc.save(path)
    return path


CODE = '''"""Small helpers for reservoirs."""
import math


class Reservoir:
    """A water reservoir."""

    def __init__(self, capacity):
        self.capacity = capacity

    def overflow_volume(self, inflow):
        """Water that spills over the dam once the reservoir is full."""
        return max(0.0, inflow - self.capacity)


def evaporation_loss(area, days):
    """Evaporation loss grows with surface area and the number of days."""
    return area * days * 0.004
'''


@pytest.fixture
def library(tmp_path):
    db = open_db(tmp_path / "f.db")
    pdf = fact_pdf(tmp_path / "notes.pdf")
    code = tmp_path / "reservoir.py"
    code.write_text(CODE)
    report = ingest_paths(db, [pdf, code], config=IngestConfig())
    assert all(o.status == "added" for o in report.outcomes)
    return db, pdf


def answerer(db, backend, **config):
    return Answerer(db, backend, HybridSearcher(db), default_pipeline(),
                    config=QAConfig(**config), refine_boxes=WordBoxes())


def test_known_fact_is_answered_and_cited_on_its_page(library):
    db, pdf = library
    backend = ExtractiveBackend()
    events = list(answerer(db, backend, context_tokens=400).ask(
        "Which reservoir does meltwater from the eastern glacier feed?"))
    assert isinstance(events[0], Stage)
    assert any(isinstance(e, Token) for e in events)
    result = events[-1].result
    assert not result.declined and "Lindqvist" in result.text
    citation = result.citations[0]
    assert citation.page == 3 and "Lindqvist reservoir" in citation.quote
    # The boxes lie where pymupdf finds the cited words on that page.
    [hit] = pymupdf.open(pdf)[2].search_for("Lindqvist")
    assert any(b[0] - 2 <= hit.x0 and hit.x1 <= b[2] + 2 and b[1] - 2 <= hit.y0 <= b[3]
               for b in citation.boxes)
    # Stored with its citations.
    [turn] = conversations.get_turns(db, result.conversation_id)
    assert turn.answer == result.text and turn.citations[0].quote == citation.quote


def test_code_question_cites_the_function_lines(library):
    db, _ = library
    result = answer_once(answerer(db, ExtractiveBackend(), context_tokens=400),
                         "How is the water that spills over the dam computed?")
    citation = result.citations[0]
    lines = CODE.splitlines()
    assert citation.page is None
    assert "overflow_volume" in "\n".join(lines[citation.line_start - 3:citation.line_end])
    assert 11 <= citation.line_start <= citation.line_end <= 13


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


def test_unanswerable_question_is_declined_and_cites_nothing(library):
    db, _ = library
    result = answer_once(answerer(db, ExtractiveBackend(), context_tokens=400),
                         "What is the boiling point of liquid nitrogen at sea level?")
    assert result.declined and result.citations == []


@pytest.mark.parametrize("budget", [0, 5, 40, 90, 200, 400, 1000])
def test_budget_is_never_exceeded(library, budget):
    db, _ = library
    backend = ExtractiveBackend(n_ctx=4096)
    qa = answerer(db, backend, context_tokens=budget)
    result = answer_once(qa, "Where does meltwater from the glacier go in summer?")
    assert result.context_tokens <= budget
    assert sum(s.tokens for s in result.sources) <= budget
    assert result.prompt_tokens <= backend.n_ctx


def test_budget_follows_the_window_and_the_machine(library):
    db, _ = library
    backend = ExtractiveBackend(n_ctx=2048)
    window_only = answerer(db, backend)
    assert window_only.budget("q") == 2048 - backend.prompt_tokens(
        window_only.messages("", "q")) - QAConfig().answer_tokens
    overhead = backend.prompt_tokens(window_only.messages("", "q"))
    fast = Answerer(db, backend, HybridSearcher(db), default_pipeline(), prefill_rate=100.0,
                    config=QAConfig(budget_step=0))
    assert fast.budget("q") == int(100.0 * 8.0) - overhead
    # What the model still holds from its previous answer is not read again.
    backend.cached_tokens = lambda messages: 30
    assert fast.budget("q") == int(100.0 * 8.0) - overhead + 30
    del backend.cached_tokens
    # By default the budget moves in whole steps: a speed estimate a few
    # percent off gives the same question the same sources.
    stepped = {Answerer(db, backend, HybridSearcher(db), default_pipeline(),
                        prefill_rate=rate).budget("q") for rate in (100.0, 100.5, 101.0)}
    assert stepped == {(int(100.0 * 8.0) - overhead) // 50 * 50}
    assert Answerer(db, backend, HybridSearcher(db), default_pipeline(),
                    prefill_rate=110.0).budget("q") == (880 - overhead) // 50 * 50
    # A very fast machine gets no more than the model reads well.
    quick = Answerer(db, backend, HybridSearcher(db), default_pipeline(), prefill_rate=1000.0,
                     config=QAConfig(max_context_tokens=700))
    assert quick.budget("q") == 700
    quick.config.max_context_tokens = None
    assert quick.budget("q") == min(int(1000.0 * 8.0) - overhead, window_only.budget("q"))
    # A very slow machine still gets the minimum that can hold evidence.
    slow = Answerer(db, backend, HybridSearcher(db), default_pipeline(), prefill_rate=10.0)
    assert slow.budget("q") == QAConfig().min_context_tokens



def test_one_slow_answer_does_not_cut_the_next_ones_sources(library):
    from types import SimpleNamespace

    db, _ = library
    backend = ExtractiveBackend(n_ctx=4096)
    live = Answerer(db, backend, HybridSearcher(db), default_pipeline(), prefill_rate=120.0,
                    config=QAConfig(max_context_tokens=None))

    def answered_at(rate: float) -> None:
        live.observe_prefill(SimpleNamespace(prompt_tokens=900, cached_tokens=0,
                                             prefill_tokens_per_s=rate))

    steady = live.budget("q")
    answered_at(85.0)                       # the first answer after loading, say
    assert live.budget("q") == steady
    answered_at(120.0)
    answered_at(120.0)
    assert live.budget("q") == steady
    for _ in range(3):                      # the machine really is slower now
        answered_at(80.0)
    assert live.budget("q") == \
        (int(80.0 * 8.0) - backend.prompt_tokens(live.messages("", "q"))) // 50 * 50
    answered_at(500.0)                      # a short prompt read from cache: ignored
    live.observe_prefill(SimpleNamespace(prompt_tokens=900, cached_tokens=800,
                                         prefill_tokens_per_s=5000.0))
    assert live.prefill_rate() == 80.0


def test_follow_up_uses_the_previous_question(library):
    db, _ = library
    qa = answerer(db, ExtractiveBackend(), context_tokens=400)
    first = answer_once(qa, "What does the observatory on the ridge record?")
    second = answer_once(qa, "And with what does it record it?",
                         conversation_id=first.conversation_id)
    assert "observatory" in second.search_query
    assert len(conversations.get_turns(db, first.conversation_id)) == 2
    assert search_query_for("What is a reservoir's capacity?", ["old"]) == \
        "What is a reservoir's capacity?"


def test_stop_event_stops_generation(library):
    db, _ = library
    stop = threading.Event()
    stop.set()
    result = answer_once(answerer(db, ExtractiveBackend(), context_tokens=400),
                         "Which reservoir does the eastern glacier feed?", stop_event=stop)
    assert result.status == "stopped"


def test_a_looping_answer_is_cut_off():
    from engine.qa import repeating
    loop = "The glacier is in Norway. [1] " * 3 + "The"
    assert repeating(loop)
    assert not repeating("A is b. C is d. A is b. The")


class FailingBackend(ExtractiveBackend):
    """Writes a little, then fails like a model running out of memory."""

    def stream(self, messages, max_tokens, temperature=0.0, stop_event=None):
        pieces = super().stream(messages, max_tokens, temperature, stop_event)
        yield next(iter(pieces))
        raise RuntimeError("the model ran out of memory")


def test_the_question_is_stored_first_and_closed_when_the_answer_fails(library):
    db, _ = library
    qa = answerer(db, FailingBackend())
    events = qa.ask("Which reservoir does meltwater from the eastern glacier feed?")
    for event in events:
        if isinstance(event, Token):
            # Mid-answer, the question is already on record.
            [conv] = conversations.list_conversations(db)
            [turn] = conversations.get_turns(db, conv.id)
            assert turn.status == "answering" and turn.question.startswith("Which reservoir")
            break
    with pytest.raises(RuntimeError, match="out of memory"):
        list(events)
    [turn] = conversations.get_turns(db, conv.id)
    assert turn.status == "error" and turn.metadata["reason"] == "the model ran out of memory"

    # A consumer that goes away mid-answer (a closed browser tab) leaves it "stopped".
    events = answerer(db, ExtractiveBackend()).ask("How does the observatory record wind?",
                                                   conversation_id=conv.id)
    for event in events:
        if isinstance(event, Token):
            events.close()
            break
    turns = conversations.get_turns(db, conv.id)
    assert [t.status for t in turns] == ["error", "stopped"]


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

