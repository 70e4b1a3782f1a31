"""A question in, a grounded answer out: search, select, generate, cite, store.

`Answerer.ask` is a generator of events so the CLI and the UI can both
stream: `Stage` while it works, `Token` pieces while the model writes, and
one `Done` with the cited, stored result. Nothing here parses files or
writes SQL: search and storage do that.
"""
from __future__ import annotations

import logging
import re
import threading
import time
from dataclasses import asdict, dataclass
from typing import Callable, Iterator

import numpy as np
import sqlite_utils

from storage import SegmentRecord
from storage import conversations as chats
from storage import segments as segment_store

from .answer_events import AnswerResult, Done, Event, Revise, Stage, Token, source_usage
from .cite import RESTATED, CitedAnswer, Citer, CiteConfig
from .followup import leans_on_history, search_query
from .locate import PLACE_PROMPT, Locator
from .prefill_speed import PrefillSpeed, RateMemory
from .prompts import (SPARSE_SYSTEM_PROMPT, QuestionError, answer_messages, clean_question,
                      question_alone)
from .search import HybridSearcher
from .select.base import Selection, SelectionContext

log = logging.getLogger(__name__)


@dataclass
class QAConfig:
    candidates: int = 40            # hits taken from hybrid search before selection
    answer_tokens: int = 256        # reserved for the answer
    target_ttft_s: float = 8.0      # the context budget follows the machine's prefill speed
    context_tokens: int | None = None   # fixed budget for sources; None = adapt
    min_context_tokens: int = 400   # below this an answer rarely has its evidence
    max_context_tokens: int | None = 900  # the most a fast machine gets: more sources than
                                    # the default 0.5B model reads well make its answers
                                    # worse (dev set, answers/citations: 0.67/0.74 at 700
                                    # tokens, 0.67/0.81 at 900, 0.63/0.74 at 1,100, 0.48/0.70
                                    # at 1,330; bench/RESULTS.md); None: no cap (bigger models)
    prefill_window: int = 5         # the speed estimate is the median of this many readings
    budget_step: int = 50           # the adapted budget moves in steps this size: a speed
                                    # estimate that wobbles by a few percent leaves the same
                                    # question with the same sources (and answer); 0: exact
    history_turns: int = 2          # earlier turns used to complete a follow-up question
    rewrite_follow_ups: bool = True  # the model rewrites a follow-up into a standalone query
    rewrite_tokens: int = 48         # the longest rewrite
    max_question_chars: int = 4_000  # a question, not a pasted document
    name_code_places: bool = True    # a where-question about code ends with its place (locate.py)
    contrast: bool = True            # decode against the question alone, where the backend
                                     # can (context-aware decoding, backends/contrast.py)
    go_on: bool = True               # an answer that only restates the question is continued


def search_query_for(question: str, history: list[str]) -> str:
    """A standalone search query without a model: a follow-up that leans on
    earlier turns ("and its default?") borrows the previous question's terms."""
    return search_query(question, history).query


_SENTENCE_END = re.compile(r"[.!?](?=\s)")


def repeating(text: str, times: int = 3) -> bool:
    """The same sentence written `times` times in a row: greedy decoding of a
    small model can loop forever, and nothing new follows."""
    plain = re.sub(r"\[\d+(?:\s*[,;-]\s*\d+)*\]", " ", text)
    sentences = [" ".join(s.split()) for s in re.split(r"(?<=[.!?])\s+", plain.strip()) if s.strip()]
    if len(sentences) < times + 1:    # the last one may still be growing
        return False
    tail = sentences[-times - 1:-1]
    return len(set(tail)) == 1 and len(tail[0]) > 8


class Answerer:
    """Answers questions over the library with one backend and one pipeline."""

    def __init__(self, db: sqlite_utils.Database, backend, searcher: HybridSearcher,
                 pipeline, *, embed: Callable[[list[str]], np.ndarray] | None = None,
                 config: QAConfig | None = None, cite_config: CiteConfig | None = None,
                 refine_boxes=None, prefill_rate: Callable[[], float] | float | None = None,
                 rate_memory: RateMemory | None = None, citer: Citer | None = None):
        self.db = db
        self.backend = backend
        self.searcher = searcher
        self.pipeline = pipeline
        self.embed = embed
        self.config = config or QAConfig()
        self.citer = citer or Citer(cite_config, embed=embed, refine=refine_boxes)
        self.speed = PrefillSpeed(prefill_rate, rate_memory, self.config.prefill_window)
        self._lock = threading.Lock()     # one generation at a time per backend

    # -- budget ---------------------------------------------------------
    def prefill_rate(self) -> float | None:
        return self.speed.rate()

    def observe_prefill(self, stats) -> None:
        """Follow the machine (prefill_speed.py: a median of the last few
        answers' speeds, kept between runs with a `rate_memory`)."""
        self.speed.observe(stats)

    def budget(self, question: str) -> int:
        """Tokens for the sources: what the window leaves after the prompt,
        question and answer reserve, capped by what prefills in the target
        time on this machine (never below a useful minimum)."""
        if self.reads_documents:
            # Documents are read from cached KV: time to first token no
            # longer grows with the sources, only the selector's reach does.
            return self.config.context_tokens or self.backend.options.candidate_tokens
        bare = self.messages("", question)
        overhead = self.backend.prompt_tokens(bare)
        window = max(0, self.backend.n_ctx - overhead - self.config.answer_tokens)
        if self.config.context_tokens is not None:
            return min(window, self.config.context_tokens)
        rate = self.prefill_rate()
        if not rate:
            return window
        # The system prompt left in the cache by the previous answer is not
        # read again: only what follows it costs time.
        overhead -= self.backend.cached_tokens(bare)
        if self.contrastive:      # the question alone is read before the first token too
            overhead += self.backend.prompt_tokens(question_alone(question))
        affordable = int(rate * self.config.target_ttft_s) - overhead
        if self.config.budget_step > 0:
            affordable -= affordable % self.config.budget_step
        if self.config.max_context_tokens is not None:
            affordable = min(affordable, self.config.max_context_tokens)
        return min(window, max(self.config.min_context_tokens, affordable))

    @property
    def contrastive(self) -> bool:
        """The backend decodes against the question alone (contrast.py)."""
        return self.config.contrast and bool(getattr(self.backend, "contrastive", False)) \
            and not self.reads_documents

    @property
    def reads_documents(self) -> bool:
        """The backend answers over cached documents (the sparse engine)."""
        return bool(getattr(self.backend, "reads_documents", False))

    def generate(self, messages: list[dict], selection: Selection, question: str,
                 stop_event: threading.Event | None):
        if self.reads_documents:
            return self.backend.stream_sources(
                self.db, selection.sources, question, SPARSE_SYSTEM_PROMPT,
                max_tokens=self.config.answer_tokens, stop_event=stop_event)
        if self.contrastive:
            # the same chat without its sources: decoding favours what they add
            return self.backend.stream(messages, max_tokens=self.config.answer_tokens,
                                       stop_event=stop_event,
                                       contrast=question_alone(question))
        return self.backend.stream(messages, max_tokens=self.config.answer_tokens,
                                   stop_event=stop_event)

    def attention_by_label(self, selection: Selection) -> dict[int, float] | None:
        """Share of the answer's attention that each source received."""
        mass = getattr(self.backend, "last_segment_mass", None) if self.reads_documents else None
        if not mass:
            return None
        per = {s.label: sum(mass.get(seg.id, 0.0) for seg in s.segments)
               for s in selection.sources}
        total = sum(per.values()) or 1.0
        return {label: value / total for label, value in per.items()}

    def _check_fits(self, question: str) -> None:
        """A question that leaves no room for its answer in the model's
        window is refused before any work, with the numbers."""
        if self.reads_documents:   # the sparse engine sizes its own window
            return
        overhead = self.backend.prompt_tokens(self.messages("", question))
        if overhead + self.config.answer_tokens > self.backend.n_ctx:
            raise QuestionError(
                f"the question is too long for the model: with the instructions it takes "
                f"{overhead:,} tokens, and {self.config.answer_tokens} more are kept for the "
                f"answer, but the model's window holds {self.backend.n_ctx:,}")

    # -- prompt ---------------------------------------------------------
    messages = staticmethod(answer_messages)

    # -- selection -------------------------------------------------------
    def select(self, question: str, search_query: str, document_ids: list[int] | None,
               budget: int) -> Selection:
        from .select import candidates_from_hits   # the package's public entry

        hits = self.searcher.search(search_query, k=self.config.candidates,
                                    document_ids=document_ids or None)
        question_vector = self.embed([question])[0] if self.embed else None
        ctx = SelectionContext(
            question=question, budget=budget, count_tokens=self.backend.count_tokens,
            embed=self.embed, question_vector=question_vector,
            fetch_neighbours=lambda seg, before, after: segment_store.neighbours(
                self.db, seg.id, before, after),
            fetch_document_segments=lambda doc_id: segment_store.document_segments(
                self.db, doc_id))
        ctx.fetch_vectors = self.searcher.stored_vectors
        return self.pipeline.run(candidates_from_hits(hits), ctx)

    def retrieve(self, question: str, query: str | None = None,
                 document_ids: list[int] | None = None) -> tuple[int, Selection]:
        """The budget and the sources an answer to `question` would be given:
        the first half of `ask`, which benchmarks of retrieval call alone."""
        budget = self.budget(question)
        return budget, self.select(question, query or question, document_ids, budget)

    def _search_query(self, question: str, history: list[str],
                      stop_event: threading.Event | None) -> Iterator[Event]:
        """The follow-up rewritten by the model into a standalone query
        (engine/followup.py); a failed rewrite falls back to borrowing."""
        if not (self.config.rewrite_follow_ups and leans_on_history(question, history)):
            return search_query(question, history).query
        yield Stage("rewriting", question)
        try:
            return search_query(question, history, self.backend,
                                max_tokens=self.config.rewrite_tokens,
                                stop_event=stop_event).query
        except Exception as exc:  # noqa: BLE001 - the answer reports a broken model itself
            log.warning("rewriting the follow-up failed (%s); borrowing instead", exc)
            return search_query(question, history).query

    # -- the whole question --------------------------------------------
    def ask(self, question: str, *, document_ids: list[int] | None = None,
            conversation_id: int | None = None,
            stop_event: threading.Event | None = None) -> Iterator[Event]:
        started = time.perf_counter()
        question = clean_question(question, self.config.max_question_chars)
        history = []
        if conversation_id is not None:
            turns = chats.get_turns(self.db, conversation_id)
            history = [t.search_query or t.question for t in turns][-self.config.history_turns:]
        query = yield from self._search_query(question, history, stop_event)
        yield Stage("searching", query)
        self._check_fits(question)
        if conversation_id is None:
            conversation_id = chats.create_conversation(self.db, document_ids=document_ids)
        # The question is on record before the answer: one cut off by a
        # crash is reported at the next start instead of vanishing.
        turn_id = chats.begin_turn(self.db, conversation_id, question=question,
                                   search_query=query, model=self.backend.info.name)
        try:
            result = yield from self._answer(question, query, document_ids, stop_event, started)
        except GeneratorExit:               # the consumer went away mid-answer
            self._abandon(turn_id, "stopped", "the answer was abandoned before it finished")
            raise
        except Exception as exc:
            self._abandon(turn_id, "error", str(exc) or type(exc).__name__)
            raise
        result.conversation_id, result.turn_id = conversation_id, turn_id
        self._store(result)
        yield Done(result)

    def _abandon(self, turn_id: int, status: str, reason: str) -> None:
        """Close the stored question of an answer that did not finish; a
        failure here must not hide the error that ended the answer."""
        try:
            chats.finish_turn(self.db, turn_id, answer="", declined=False,
                              metadata={"reason": reason}, citations=[], status=status)
        except Exception:   # noqa: BLE001 - e.g. the disk is full: start-up reports it
            pass

    def _answer(self, question: str, query: str, document_ids: list[int] | None,
                stop_event: threading.Event | None, started: float):
        """Select, generate and cite; yields events, returns the result."""
        from .select import render_sources

        budget, selection = self.retrieve(question, query, document_ids)
        yield Stage("selecting", f"{len(selection.sources)} sources, "
                                 f"{selection.used_tokens} of {budget} tokens")
        messages = self.messages(render_sources(selection), question)
        prompt_tokens = self.backend.prompt_tokens(messages)
        pieces: list[str] = []
        ttft = None
        status = "done"
        with self._lock:
            yield Stage("reading", f"{prompt_tokens} prompt tokens")
            if selection.sources:
                stream = self.generate(messages, selection, question, stop_event)
                for piece in stream:
                    if ttft is None:
                        ttft = time.perf_counter() - started
                    pieces.append(piece)
                    yield Token(piece)
                    if piece.strip() and repeating("".join(pieces)):
                        stream.close()          # a small model stuck in a loop
                        break
                if stop_event is not None and stop_event.is_set():
                    status = "stopped"
                self.observe_prefill(getattr(self.backend, "last_stats", None))
        raw = "".join(pieces).strip()
        yield Stage("citing")
        attention = self.attention_by_label(selection)
        cited: CitedAnswer = self.citer.cite(raw, selection.sources, attention, question)
        first = ""
        if cited.reason == RESTATED and status == "done" and self.config.go_on:
            continued = yield from self.go_on(messages, raw, question, selection, attention,
                                              stop_event)
            if continued is not None:
                first, (raw, cited) = raw, continued
        if self.config.name_code_places:
            locator = Locator(self.citer, self.place_chooser(messages, raw))
            place = locator.add(question, cited, selection.sources)
            if place:
                yield Token(place)
        if not selection.sources and selection.dropped:
            cited.reason = (f"no passage fits the context budget of {budget} tokens "
                            f"({len(selection.dropped)} found); allow more context tokens")
        if ttft is None:
            ttft = time.perf_counter() - started
        result = AnswerResult(
            question=question, search_query=query, text=cited.text, raw_text=raw,
            declined=cited.declined, reason=cited.reason, citations=cited.citations,
            sentences=[{"text": s.text, "start": s.start, "end": s.end, "labels": s.labels,
                        "score": round(s.score, 4), "supported": s.supported}
                       for s in cited.sentences],
            sources=[source_usage(s) for s in selection.sources], budget=budget,
            context_tokens=selection.used_tokens, steps=selection.steps,
            ttft_s=round(ttft, 3), total_s=round(time.perf_counter() - started, 3),
            prompt_tokens=prompt_tokens, answer_tokens=self.backend.count_tokens(raw) if raw else 0,
            model=self.backend.info.name, status=status,
            kv=self.kv_report() if selection.sources else None, continued_from=first)
        if attention:
            for usage in result.sources:
                usage.attention = round(attention.get(usage.label, 0.0), 4)
        return result

    def go_on(self, messages: list[dict], raw: str, question: str, selection: Selection,
              attention: dict[int, float] | None, stop_event: threading.Event | None):
        """Continue an answer that only restated the question, after a
        comma: "The cluster configuration file should live on a Unix
        machine." stopped where the answer begins, and the default model
        goes on with ", under the standard location $HOME/.dynare." (dev-11).
        Asked again in the chat, it repeats itself word for word. Only that
        sentence is completed, and cited like any answer: returns the text
        and its `CitedAnswer` when supported, else None and the decline
        stands. Yields the `Revise` and `Token` events of the continuation."""
        reply = raw.rstrip()
        reply = (reply[:-1] if reply.endswith(".") else reply) + ","
        left = self.config.answer_tokens - self.backend.count_tokens(raw)
        if left < 8 or not hasattr(self.backend, "continue_reply"):
            return None
        contrast = question_alone(question) if self.contrastive else None
        pieces: list[str] = []
        with self._lock:
            stream = self.backend.continue_reply(messages, reply, left, stop_event, contrast)
            if stream is None:
                return None
            yield Stage("continuing", RESTATED)
            yield Revise(reply)
            for piece in stream:
                # one sentence: the one that restated the question, completed
                # (past it the default model drifts into what it knows)
                so_far = "".join(pieces)
                end = _SENTENCE_END.search(so_far + piece)
                if end:
                    piece = (so_far + piece)[len(so_far):end.end()]
                pieces.append(piece)
                if piece:
                    yield Token(piece)
                if end:
                    stream.close()
                    break
        if stop_event is not None and stop_event.is_set():
            return None                 # half a sentence is no answer
        text = (reply + "".join(pieces)).strip()
        cited = self.citer.cite(text, selection.sources, attention, question)
        return None if cited.declined else (text, cited)

    def place_chooser(self, messages: list[dict], answer: str):
        """How the model picks the place its answer is about (locate.py):
        each name scored as the next words of its answer. None where the
        backend cannot score (the sparse engine reads no numbered chat)."""
        if self.reads_documents or not hasattr(self.backend, "option_logprobs"):
            return None

        def choose(options: list[str]) -> list[float] | None:
            with self._lock:
                return self.backend.option_logprobs(messages, answer.rstrip() + PLACE_PROMPT,
                                                    options)
        return choose

    def kv_report(self) -> dict | None:
        report = getattr(self.backend, "last_report", None) if self.reads_documents else None
        return asdict(report) if report is not None else None

    def _store(self, result: AnswerResult) -> None:
        metadata = {k: v for k, v in result.to_json().items()
                    if k in ("sources", "budget", "context_tokens", "steps", "ttft_s",
                             "total_s", "prompt_tokens", "answer_tokens", "sentences",
                             "raw_text", "reason", "kv", "continued_from")}
        chats.finish_turn(self.db, result.turn_id, answer=result.text,
                          declined=result.declined, metadata=metadata,
                          citations=result.citations, status=result.status)


def answer_once(answerer: Answerer, question: str, **kwargs) -> AnswerResult:
    """Run `ask` to the end (tests, evaluation)."""
    result = None
    for event in answerer.ask(question, **kwargs):
        if isinstance(event, Done):
            result = event.result
    assert result is not None
    return result


def segment_of(db: sqlite_utils.Database, segment_id: int) -> SegmentRecord | None:
    found = segment_store.get_segments(db, [segment_id])
    return found[0] if found else None
