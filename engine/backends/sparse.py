"""The offloaded sparse-attention backend: documents are read once, answers
attend only to the KV blocks that matter.

Besides the plain `Backend` calls (a chat in, text out: its system message
is cached like a document, the rest is the local window), it answers over
*documents*: `stream_sources` lays each source's whole document out as
tokens (`engine.sparse.layout`), builds the document's KV cache on first use
and records it in `kv_caches` (so a later question, a follow-up or a restart
reuses it), then attends sparsely to the selected segments' blocks
(retrieval-first) or to every block of the documents (whole-document).
After each answer `last_segment_mass` holds the attention mass every
segment received: the citation step's attention signal.
"""
from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import sqlite_utils

from engine.backends.base import (Backend, BackendConfig, ChatMessage,
                                  GenerationStats, ModelInfo)
from engine.backends.errors import (ModelError, ModelFormatError, ModelNotFoundError,
                                    PromptTooLongError, UnsupportedModelError)
from engine.text import defuse_control_tokens

_MARK = "\x00FOLIO-CONTEXT\x00"
_QUESTION = "\x00FOLIO-QUESTION\x00"
SUPPORTED = ("llama", "qwen2")


@dataclass
class SparseOptions:
    """What the sparse backend needs beyond `BackendConfig`."""
    kv_root: Path
    mode: str = "retrieval"           # "retrieval": selected segments; "document": all blocks
    candidate_tokens: int = 16384     # retrieval-first: source tokens offered to the selector
    budget_tokens: int = 2048         # attended per KV head besides sinks and local window
    max_document_tokens: int = 131072 # a document's cache stops after this many tokens
    page_tokens: int = 4096           # retrieval-first: longer documents are read page by
                                      # page, as questions need them (0: whole documents)
    weights: str | None = None        # "int8", "bfloat16", "float32"; None: int8 CPU, bf16 GPU
    framing: str = "plain"            # "restated": the instructions again after the question
                                      # (the document sits between them and the question)
    unselected: str = "mean"          # blocks left out: attended as summaries, or "drop"
    layout: str = "packed"            # inside the window as past it: the picked blocks after
                                      # the sinks in score order, the best next to the question,
                                      # picked with the question's words (on the H200, 12 of 12
                                      # needles at 4K-32K and every budget, dense 7-12; RESULTS
                                      # "Inside the window"); "in-place": blocks keep their
                                      # positions, the rest attended as summaries

    def __post_init__(self):
        if self.framing not in FRAMINGS:
            raise ValueError(f"unknown framing {self.framing!r}: use {', '.join(FRAMINGS)}")
        if self.layout not in LAYOUTS:
            raise ValueError(f"unknown layout {self.layout!r}: use {', '.join(LAYOUTS)}")


# What "restated" framing adds after the question: a small model reads the
# system message's instructions thousands of tokens before the question.
RESTATED = ("Answer from the document above only, in one or two sentences. Copy names, "
            "numbers and code identifiers exactly.")
FRAMINGS = ("plain", "restated")
LAYOUTS = ("in-place", "packed")


@dataclass
class DocumentRead:
    """One document of an answer: its layout and whether its cache was built now."""
    document_id: int
    name: str
    tokens: int
    built: bool
    build_s: float = 0.0
    pages: list[str] = field(default_factory=list)   # pages read; [] = the whole document


@dataclass
class SourcesReport:
    documents: list[DocumentRead] = field(default_factory=list)
    candidate_tokens: int = 0         # tokens of the blocks offered to the selector
    attended_tokens: int = 0          # document tokens attended per head besides sinks


def pick_device(device: str) -> str:
    import torch

    if device not in ("auto", "cpu", "gpu"):
        raise ValueError(f"unknown device {device!r}: use auto, cpu or gpu")
    if device == "gpu" and not torch.cuda.is_available():
        raise UnsupportedModelError("the GPU was chosen, but torch sees no CUDA device: "
                                    "choose device auto or cpu")
    return "cuda" if device != "cpu" and torch.cuda.is_available() else "cpu"


class SparseBackend(Backend):
    reads_documents = True       # the Answerer hands it sources, not a rendered prompt

    def __init__(self, engine, tokenizer, info: ModelInfo, options: SparseOptions):
        self.engine, self.tokenizer, self.info, self.options = engine, tokenizer, info, options
        self.last_stats: GenerationStats | None = None
        self.last_segment_mass: dict[int, float] = {}
        self.last_report = SourcesReport()
        self._attribution = None
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._layouts: dict[tuple, tuple] = {}     # (doc, system, limit) -> (stamp, layout)
        if not getattr(tokenizer, "chat_template", None):
            raise ModelFormatError(f"{info.path.name} has no chat template; Folio needs an "
                                   "instruct (chat) model")
        stop = {tokenizer.eos_token_id}
        for name in ("<|im_end|>", "<|eot_id|>", "<|end|>"):
            tid = tokenizer.convert_tokens_to_ids(name)
            if isinstance(tid, int) and tid != tokenizer.unk_token_id:
                stop.add(tid)
        self.stop_ids = {t for t in stop if t is not None}

    # -- loading ---------------------------------------------------------
    @classmethod
    def load(cls, path: Path, config: BackendConfig | None = None,
             options: SparseOptions | None = None) -> "SparseBackend":
        import torch
        from transformers import AutoTokenizer
        from transformers.utils import logging as hf_logging

        from engine.hardware import physical_cores
        from engine.sparse import EngineConfig, SparseConfig, SparseEngine
        from engine.sparse.config import PACKED

        config = config or BackendConfig()
        path = Path(path)
        if options is None:
            raise ValueError("the sparse backend needs SparseOptions (where KV caches live)")
        if not path.exists():
            raise ModelNotFoundError(f"no model at {path}")
        device = pick_device(config.device)
        hf_logging.disable_progress_bar()     # GGUF reading draws bars: noise in the CLI
        if device == "cpu":
            torch.set_num_threads(config.n_threads or physical_cores())
        try:
            if path.is_dir():
                tokenizer = AutoTokenizer.from_pretrained(path)
            else:
                tokenizer = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
        except (OSError, ValueError, KeyError) as exc:
            raise ModelFormatError(f"could not read the tokenizer of {path.name}: {exc}") from None
        # On a GPU the blocks are read from page-locked host memory (the
        # graph-captured decode step fetches the selected ones over UVA).
        layout = PACKED if options.layout == "packed" else {}
        engine_config = EngineConfig(sparse=SparseConfig(budget_tokens=options.budget_tokens,
                                                         unselected=options.unselected,
                                                         **layout),
                                     placement="pinned" if device == "cuda" else "mmap")
        try:
            engine = SparseEngine.from_file(path, options.kv_root, device=device,
                                            mode=options.weights, config=engine_config)
        except (KeyError, NotImplementedError) as exc:
            raise UnsupportedModelError(
                f"the sparse engine runs Llama and Qwen2 models; {path.name} is not one "
                f"({exc})") from None
        except (OSError, ValueError, RuntimeError) as exc:
            raise ModelFormatError(f"could not load {path.name} for the sparse engine: "
                                   f"{exc}") from None
        window = engine.model.cfg.max_position
        size = sum(f.stat().st_size for f in path.iterdir()) if path.is_dir() \
            else path.stat().st_size
        info = ModelInfo(path=path, name=path.stem, backend=f"sparse ({device})",
                         n_ctx=window, n_ctx_train=window, file_size=size)
        return cls(engine, tokenizer, info, options)

    # -- tokens ----------------------------------------------------------
    def encode(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False)["input_ids"] if text else []

    def count_tokens(self, text: str) -> int:
        return len(self.encode(text))

    def _template(self, messages: Sequence[ChatMessage]) -> str:
        return self.tokenizer.apply_chat_template(list(messages), tokenize=False,
                                                  add_generation_prompt=True)

    def prompt_tokens(self, messages: Sequence[ChatMessage]) -> int:
        return len(self.encode(self._template(messages)))

    def frame(self, system: str) -> tuple[list[int], str, str]:
        """(preamble tokens, text between the context and the question, text
        after the question) of this model's chat template."""
        text = self._template([{"role": "system", "content": f"{system}\n\n{_MARK}"},
                               {"role": "user", "content": _QUESTION}])
        head, rest = text.split(_MARK, 1)
        middle, tail = rest.split(_QUESTION, 1)
        return self.encode(head), middle, tail

    # -- answering over documents ------------------------------------------
    def layout(self, db: sqlite_utils.Database, document_id: int, system: str,
               max_tokens: int | None | str = "default"):
        """The document's token layout, up to `max_tokens` (default: the
        options' max_document_tokens; None: all of it), cached per system
        prompt and limit until the document is re-indexed."""
        from engine.sparse.layout import aligned, layout_document
        from storage import segments as segment_store

        if max_tokens == "default":
            max_tokens = self.options.max_document_tokens
        key = (document_id, system, max_tokens)
        stamp = segment_store.segment_fingerprint(db, document_id)
        if key not in self._layouts or self._layouts[key][0] != stamp:
            preamble = aligned(self.frame(system)[0], self.engine.config.prefill.block_size,
                               self.encode("\n")[-1])
            segs = segment_store.document_segments(db, document_id)
            self._layouts[key] = (stamp, layout_document(
                self.encode, preamble, ((s.id, defuse_control_tokens(s.text)) for s in segs),
                max_tokens=max_tokens))
        return self._layouts[key][1]

    def read_document(self, db: sqlite_utils.Database, document_id: int, system: str,
                      wanted: set[int] | None = None):
        """([(layout, cache)], report): the whole document's cache or, given the
        `wanted` segment ids of a retrieval-first answer and a document longer
        than a page, the caches of the pages holding them; built on first use."""
        from engine.sparse.layout import layout_key
        from engine.sparse.registry import prefill_for_document
        from storage import documents

        doc = documents.get_document(db, document_id)
        if doc is None:
            raise ModelError(f"document {document_id} was removed while answering")
        page, limit = self.options.page_tokens, self.options.max_document_tokens
        paged = wanted is not None and page > 0
        # Read page by page, a document has no length limit: every source counts.
        lay = self.layout(db, document_id, system, None if paged else limit)
        if paged and len(lay.tokens) > limit:
            limit = None        # past what one whole-document cache may hold: pages only
        key = layout_key(doc.sha256, lay.tokens[:lay.preamble], limit)
        parts = [("", lay, key)]
        if paged and len(lay.tokens) - lay.preamble > page:
            pages = lay.pages(page)
            parts = [(f"page {i + 1}/{len(pages)}", p, f"{key}-p{page}-{i}")
                     for i, p in enumerate(pages) if wanted & p.segments.keys()] \
                or [(f"page 1/{len(pages)}", pages[0], f"{key}-p{page}-0")]
        t0 = time.perf_counter()
        out, built = [], False
        for part, part_layout, part_key in parts:
            built |= not (self.engine.cache_path(part_key) / "meta.json").exists()
            cache = prefill_for_document(self.engine, db, document_id, part_layout.tokens,
                                         part_key, part)
            if cache is None:
                raise ModelError(f"{doc.display_name} was removed while its KV cache was "
                                 "being built")
            out.append((part_layout, cache))
        return out, DocumentRead(document_id, doc.display_name,
                                 sum(len(p.tokens) for p, _ in out), built,
                                 round(time.perf_counter() - t0, 3),
                                 [part for part, _, _ in parts if part])

    def stream_sources(self, db: sqlite_utils.Database, sources, question: str, system: str,
                       max_tokens: int, stop_event: threading.Event | None = None
                       ) -> Iterator[str]:
        """Answer `question` over the documents of `sources` (engine.select
        `Source`s), attending to the sources' segments (retrieval mode) or
        to whole documents (document mode)."""
        doc_ids = list(dict.fromkeys(s.document_id for s in sources))
        with self._lock:
            self._stop.clear()
            self.last_segment_mass, self.last_report = {}, SourcesReport()
            started = time.perf_counter()
            whole = self.options.mode == "document"
            wanted = None if whole else {seg.id for s in sources for seg in s.segments}
            reads = [self.read_document(db, d, system, wanted) for d in doc_ids]
            self.last_report.documents = [report for _, report in reads]
            pieces = [piece for parts, _ in reads for piece in parts]    # (layout, cache)
            if whole:
                ranges = [lay.body() if i else [(0, len(lay.tokens))]
                          for i, (lay, _) in enumerate(pieces)]
            else:
                ranges = [lay.ranges(wanted) for lay, _ in pieces]
            _, middle, tail = self.frame(system)
            asked = defuse_control_tokens(question.strip())
            query = self.encode(asked)          # the question's own words: lexical match
            if self.options.framing == "restated":
                asked = f"{asked}\n\n{RESTATED}"
            prompt = self.encode(middle + asked + tail)
            caches = [cache for _, cache in pieces]
            # The whole preamble (instructions) is the attention sink.
            self.engine.config.sparse.sink_blocks = max(
                1, pieces[0][0].preamble // self.engine.config.prefill.block_size)
            yield from self._generate(caches, prompt, ranges, max_tokens, stop_event, started,
                                      query)
            attribution = self._attribution
            if attribution is not None:
                for (lay, _), mass in zip(pieces, attribution.per_cache):
                    for sid, value in lay.segment_mass(mass.tolist()).items():
                        if value > 0:
                            self.last_segment_mass[sid] = value

    def _generate(self, caches, prompt: list[int], ranges, max_tokens: int,
                  stop_event: threading.Event | None, started: float,
                  query: list[int] | None = None) -> Iterator[str]:
        cfg = self.engine.model.cfg
        if len(prompt) + 1 > cfg.max_position // 2:
            raise PromptTooLongError(len(prompt), cfg.max_position // 2)
        max_tokens = max(1, min(max_tokens, cfg.max_position // 2 - len(prompt)))
        self._attribution = None
        stream = self.engine.answer(caches, prompt, max_tokens, self.stop_ids, ranges=ranges,
                                    query=query)
        self.last_report.candidate_tokens = sum(
            c.layout.tokens for c in caches) if ranges is None else sum(
            b - a for rs in ranges for a, b in rs)
        self.last_report.attended_tokens = stream.stats.selected_tokens
        ids: list[int] = []
        shown = ""
        reason = "max_tokens"
        ttft = None
        for token in stream:
            if ttft is None:
                ttft = time.perf_counter() - started
            if token in self.stop_ids:
                reason = "end"
                break
            ids.append(token)
            text = self.tokenizer.decode(ids, skip_special_tokens=True)
            if not text.endswith("\ufffd") and len(text) > len(shown):
                piece, shown = text[len(shown):], text
                yield piece
            if self._stop.is_set() or (stop_event is not None and stop_event.is_set()):
                reason = "stopped"
                break
        # Read from the attention state: the token stream was left at the
        # stop token, before it computed its own attribution.
        self._attribution = stream.attention.attribution()
        total = time.perf_counter() - started
        self.last_stats = GenerationStats(
            prompt_tokens=len(prompt), cached_tokens=0, generated_tokens=len(ids),
            time_to_first_token_s=ttft or total, total_s=total,
            prefill_s=stream.stats.ttft_s, stop_reason=reason)

    # -- the plain Backend calls ---------------------------------------------
    def stream(self, messages: Sequence[ChatMessage], max_tokens: int,
               temperature: float = 0.0,
               stop_event: threading.Event | None = None,
               contrast: Sequence[ChatMessage] | None = None) -> Iterator[str]:
        """Any chat: everything up to the last user turn is cached on disk
        (keyed by its tokens, so the same system prompt is read once), the
        last user turn and the answer are the local window. Greedy only;
        `contrast` is not used (not `contrastive`)."""
        messages = list(messages)
        if not messages or messages[-1]["role"] != "user":
            raise ValueError("the chat must end with a user message")
        text = self._template(messages)
        earlier = self.tokenizer.apply_chat_template(messages[:-1], tokenize=False) \
            if len(messages) > 1 else ""
        if earlier and text.startswith(earlier):
            head, local = self.encode(earlier), self.encode(text[len(earlier):])
        else:                     # a template that rewrites earlier turns: split by tokens
            full = self.encode(text)
            cut = max(1, len(full) - 64)
            head, local = full[:cut], full[cut:]
        with self._lock:
            self._stop.clear()
            started = time.perf_counter()
            cache = self.engine.prefill_document(head)
            yield from self._generate([cache], local, None, max_tokens, stop_event, started)

    def stop(self) -> None:
        self._stop.set()
