"""The llama.cpp backend (llama-cpp-python): any chat GGUF on the CPU.

Why the low-level loop instead of `create_chat_completion`: Folio needs the
exact prompt token count before generating (the context budget), prefill
split into chunks so a stop request is honoured during a long prefill, and
precise timings (time to first token, prefill and decode rates). The prompt
is still rendered with the GGUF's own chat template, through the same
`Jinja2ChatFormatter` that llama-cpp-python uses for `chat_format=None`.
"""
from __future__ import annotations

import codecs
import logging
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engine.backends.base import (Backend, BackendConfig, ChatMessage,
                                  GenerationStats, ModelInfo)
from engine.backends.errors import ModelError, ModelFormatError, PromptTooLongError
from engine.backends.gguf_header import read_gguf_header
from engine.backends.llama_fit import check_memory, choose_n_ctx, offloaded_layers
from engine.hardware import physical_cores

CLOSE_WAIT_S = 30.0


@dataclass
class _Run:
    """Bookkeeping of one stream, turned into `GenerationStats` at its end."""
    start: float
    prompt_tokens: int
    cached: int = 0
    generated: int = 0
    prefill_end: float | None = None
    first_token: float | None = None
    reason: str = "stopped"

    def stats(self) -> GenerationStats:
        end = time.perf_counter()
        return GenerationStats(
            prompt_tokens=self.prompt_tokens, cached_tokens=self.cached,
            generated_tokens=self.generated,
            time_to_first_token_s=(self.first_token or end) - self.start,
            total_s=end - self.start,
            prefill_s=(self.prefill_end or end) - self.start,
            stop_reason=self.reason)


class LlamaCppBackend(Backend):
    """A loaded GGUF model. Streams are serialised: one model, one answer at
    a time, and a second caller waits."""

    def __init__(self, llm, info: ModelInfo, config: BackendConfig):
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        self._llm = llm
        self.info = info
        self.config = config
        self.last_stats = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.prefill_rate: float | None = None   # memo for measure_prefill_rate
        self._alone = None      # contrast.QuestionAlone, made on the first contrasted answer
        self._held_lead = 0     # the lead (`_lead`) of the prompt whose blocks the cache holds
        template = llm.metadata.get("tokenizer.chat_template")
        if not template:
            raise ModelFormatError(
                f"{info.path.name} has no chat template in its GGUF metadata; "
                "Folio needs an instruct (chat) model")
        model = llm._model
        eos, bos = llm.token_eos(), llm.token_bos()
        self._formatter = Jinja2ChatFormatter(
            template=template,
            eos_token=model.token_get_text(eos) if eos != -1 else "",
            bos_token=model.token_get_text(bos) if bos != -1 else "",
            add_generation_prompt=True)

    # -- loading ---------------------------------------------------------

    @classmethod
    def load(cls, path: Path, config: BackendConfig | None = None) -> "LlamaCppBackend":
        """Check the file and the memory first, so each failure has its own
        message, then load with `use_mmap=False` (weights fully in RAM: no
        page-ins from disk in the middle of an answer)."""
        config = config or BackendConfig()
        path = Path(path)
        header = read_gguf_header(path)          # missing / not GGUF / truncated
        n_ctx = choose_n_ctx(header, config)
        check_memory(path, header, n_ctx)
        from llama_cpp import Llama, llama_supports_gpu_offload

        gpu_layers = offloaded_layers(config.device, llama_supports_gpu_offload())
        threads = config.n_threads or physical_cores()
        try:
            llm = Llama(model_path=str(path), n_ctx=n_ctx, n_batch=config.n_batch,
                        n_threads=threads, n_threads_batch=threads, n_gpu_layers=gpu_layers,
                        use_mmap=False, seed=config.seed, verbose=False)
        except (ValueError, RuntimeError, OSError) as exc:
            raise ModelFormatError(
                f"llama.cpp could not load {path.name} ({header.architecture or 'unknown'} "
                f"architecture): the file may be corrupt, or made for a newer "
                f"llama.cpp ({exc})") from None
        # Llama() resets this to ERROR; llama.cpp's own chatter (KV slot
        # warnings and the like) is for developers, our errors are for people.
        logging.getLogger("llama-cpp-python").setLevel(logging.CRITICAL)
        info = ModelInfo(path=path, name=header.name, backend="llama.cpp",
                         n_ctx=llm.n_ctx(), n_ctx_train=header.context_length,
                         file_size=header.file_size)
        try:
            return cls(llm, info, config)
        except ModelError:
            llm.close()
            raise

    def close(self) -> None:
        """Stop any stream, wait for it to let go of the model, then free it.
        A stream left suspended by its consumer (neither exhausted nor
        closed) holds the model: close that generator first."""
        self._stop.set()
        if not self._lock.acquire(timeout=CLOSE_WAIT_S):
            raise ModelError("the model is still generating an answer and cannot be closed yet")
        try:
            if self._alone is not None:
                self._alone.close()
                self._alone = None
            if self._llm is not None:
                self._llm.close()
                self._llm = None
        finally:
            self._lock.release()

    def _model(self):
        if self._llm is None:
            raise ModelError("the model has been closed")
        return self._llm

    # -- tokens ----------------------------------------------------------

    def count_tokens(self, text: str) -> int:
        return len(self._model().tokenize(text.encode("utf-8"), add_bos=False, special=False))

    def chat_tokens(self, messages: Sequence[ChatMessage]) -> list[int]:
        """The chat rendered by the GGUF's template, as token ids. The template
        writes its own BOS and role tokens, hence no add_bos and special=True
        (what llama-cpp-python's chat handler does too)."""
        try:
            rendered = self._formatter(messages=list(messages))
        except Exception as exc:   # jinja raises many types for a bad chat
            raise ModelError(f"the model's chat template rejected this chat: {exc}") from None
        return self._model().tokenize(rendered.prompt.encode("utf-8"),
                                      add_bos=not rendered.added_special, special=True)

    def prompt_tokens(self, messages: Sequence[ChatMessage]) -> int:
        return len(self.chat_tokens(messages))

    def cached_tokens(self, messages: Sequence[ChatMessage]) -> int:
        if not self._lock.acquire(blocking=False):
            return 0            # a stream is rewriting the cache: assume nothing
        try:
            tokens = self.chat_tokens(messages)
            return self._reusable(self._model(), tokens, self._lead(messages, tokens))
        finally:
            self._lock.release()

    @staticmethod
    def _shared_prefix(llm, tokens: list[int]) -> int:
        """Tokens at the start of `tokens` already in the KV cache; at least
        one is always read again, so the logits are fresh."""
        n = min(llm.n_tokens, len(tokens))
        if n == 0:
            return 0
        differs = np.flatnonzero(llm.input_ids[:n] != np.asarray(tokens[:n], dtype=np.intc))
        return min(int(differs[0]) if differs.size else n, len(tokens) - 1)

    def _reusable(self, llm, tokens: list[int], lead: int = 0) -> int:
        """The shared prefix cut back to a block boundary: the lead, then
        whole prefill blocks after it. llama.cpp's arithmetic for a token
        depends on the batch it is read in: reusing a prefix of any length
        shifts every later batch, and the default model's logits for the
        same prompt then differ by up to 0.3 with what was asked before
        (bench/prefill_determinism.py), enough to change a greedy answer.
        Blocks fixed from the prompt's start keep each token in the same
        batch whatever the cache holds; a cache read with another lead has
        other blocks, and none of it is reused."""
        shared = self._shared_prefix(llm, tokens)
        if lead != self._held_lead or shared < lead:
            return 0
        return lead + block_floor(shared - lead, self.config.prefill_block)

    def _lead(self, messages: Sequence[ChatMessage], tokens: list[int]) -> int:
        """The chat's tokens up to the end of its system message's first
        paragraph: the instructions, the same in every answer (the sources
        follow a blank line, prompts.py). Read as a block of its own, they
        are reused by the next answer; inside the first 64-token block with
        the first source's words they never were (44 tokens, about 0.4 s
        of every answer on 2 cores). 0 where there is no such paragraph."""
        if not messages or messages[0].get("role") != "system":
            return 0
        content = messages[0]["content"]
        cut = content.find("\n\n")
        if cut <= 0:
            return 0
        head = self.chat_tokens([{"role": "system", "content": content[:cut]},
                                 *messages[1:]])
        lead = 0
        for a, b in zip(head, tokens):
            if a != b:
                break
            lead += 1
        return lead if lead < len(tokens) else 0

    # -- generation ------------------------------------------------------

    def stop(self) -> None:
        self._stop.set()

    @property
    def contrastive(self) -> bool:
        return self.config.contrast_alpha > 0

    def stream(self, messages: Sequence[ChatMessage], max_tokens: int,
               temperature: float = 0.0,
               stop_event: threading.Event | None = None,
               contrast: Sequence[ChatMessage] | None = None) -> Iterator[str]:
        """Validate now (a too-long prompt raises here, not at the first
        `next`), then return the generator. With `contrast` (the chat
        without its sources) a greedy answer is decoded against it
        (contrast.py), unless that chat is too long for its small window."""
        tokens = self.chat_tokens(messages)
        if len(tokens) >= self.n_ctx:
            raise PromptTooLongError(len(tokens), self.n_ctx)
        alone = None
        if contrast is not None and self.contrastive and temperature == 0.0:
            alone = self.chat_tokens(contrast)
            if len(alone) + max_tokens > self.config.contrast_ctx:
                alone = None
        return self._generate(tokens, max(1, max_tokens), temperature, stop_event, alone,
                              lead=self._lead(messages, tokens))

    def continue_reply(self, messages: Sequence[ChatMessage], reply: str, max_tokens: int,
                       stop_event: threading.Event | None = None,
                       contrast: Sequence[ChatMessage] | None = None) -> Iterator[str] | None:
        """Greedy text that follows `reply` in the assistant's turn. The chat
        and the reply were just read (the answer being continued), so all of
        that prefix is reused from the cache, not only whole blocks: only the
        reply's new last tokens are read. None: it does not fit the window."""
        extra = self._model().tokenize(reply.encode("utf-8"), add_bos=False, special=False)
        tokens = self.chat_tokens(messages) + extra
        if len(tokens) + 1 >= self.n_ctx:
            return None
        alone = None
        if contrast is not None and self.contrastive:
            alone = self.chat_tokens(contrast) + extra
            if len(alone) + max_tokens > self.config.contrast_ctx:
                alone = None
        return self._generate(tokens, max(1, max_tokens), 0.0, stop_event, alone,
                              whole_blocks=False)

    def _generate(self, tokens: list[int], max_tokens: int, temperature: float,
                  stop_event: threading.Event | None,
                  alone: list[int] | None = None, whole_blocks: bool = True,
                  lead: int = 0) -> Iterator[str]:
        with self._lock:
            self._stop.clear()

            def stopped() -> bool:
                return self._stop.is_set() or (stop_event is not None and stop_event.is_set())

            run = _Run(start=time.perf_counter(), prompt_tokens=len(tokens))
            try:
                yield from self._run(tokens, max_tokens, temperature, stopped, run, alone,
                                     whole_blocks, lead)
            except ModelError:
                raise
            except RuntimeError as exc:       # llama_decode failures and the like
                if self._llm is not None:
                    self._llm.reset()
                raise ModelError(f"the model failed while generating: {exc}") from None
            finally:
                self.last_stats = run.stats()

    def _run(self, tokens: list[int], max_tokens: int, temperature: float,
             stopped, run: "_Run", alone: list[int] | None = None,
             whole_blocks: bool = True, lead: int = 0) -> Iterator[str]:
        import llama_cpp

        llm = self._model()
        run.cached = self._prefill(tokens, stopped, whole_blocks, lead)
        run.prefill_end = time.perf_counter()
        if stopped():
            run.reason = "stopped"
            return
        budget = min(max_tokens, self.n_ctx - len(tokens))
        limit = "max_tokens" if budget == max_tokens else "context_full"
        run.reason = "closed"          # stays so if the consumer closes the stream
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        generator = self._contrasted(llm, alone) if alone is not None else \
            llm.generate(tokens, temp=temperature, repeat_penalty=self.config.repeat_penalty)
        try:
            for token in generator:
                if llama_cpp.llama_vocab_is_eog(llm._model.vocab, token):
                    run.reason = "end"
                    break
                run.generated += 1
                if run.first_token is None:
                    run.first_token = time.perf_counter()
                piece = decoder.decode(llm.detokenize([token]))
                if piece:
                    yield piece
                if stopped():
                    run.reason = "stopped"
                    break
                if run.generated >= budget:
                    run.reason = limit
                    break
        finally:
            generator.close()
        tail = decoder.decode(b"", final=True)   # an incomplete UTF-8 sequence
        if tail:
            yield tail

    def _contrasted(self, llm, alone: list[int]) -> Iterator[int]:
        """Greedy tokens under context-aware decoding, the prompt already
        evaluated (its last token's logits fresh: `_prefill` evaluates at
        least one token). Each token is evaluated when the next is asked
        for, as `Llama.generate` does."""
        from .contrast import QuestionAlone, contrast

        if self._alone is None:
            self._alone = QuestionAlone(llm, self.config.contrast_ctx,
                                        self.config.n_threads or physical_cores(),
                                        self.config.n_batch)
        vocab = llm.n_vocab()

        def logits() -> np.ndarray:
            return np.ctypeslib.as_array(llm._ctx.get_logits(), shape=(vocab,)).copy()

        with_sources, without = logits(), self._alone.start(alone)
        while True:
            token = contrast(with_sources, without, self.config.contrast_alpha,
                             self.config.contrast_plausibility) \
                if without is not None else int(with_sources.argmax())
            yield token
            llm.eval([token])
            with_sources = logits()
            without = self._alone.advance(token) if without is not None else None

    def option_logprobs(self, messages: Sequence[ChatMessage], reply: str,
                        options: Sequence[str]) -> list[float] | None:
        """The chat and `reply` are read once (mostly from the cache the
        answer left); each option is then one batch of a few tokens whose
        per-position logits give its summed log-probability."""
        if not options:
            return []
        llm = self._model()
        prefix = self.chat_tokens(messages) + llm.tokenize(
            reply.encode("utf-8"), add_bos=False, special=False)
        encoded = [llm.tokenize(o.encode("utf-8"), add_bos=False, special=False) or [0]
                   for o in options]
        if len(prefix) + max(len(t) for t in encoded) > self.n_ctx:
            return None
        vocab = llm.n_vocab()

        def log_softmax(row) -> np.ndarray:
            x = np.ctypeslib.as_array(row, shape=(vocab,)).astype(np.float64)
            top = x.max()
            return x - (top + np.log(np.exp(x - top).sum()))

        with self._lock:
            try:
                # the answer just read is the prefix: reuse all of it (its
                # tokens were generated one by one, never in fixed blocks)
                self._prefill(prefix, lambda: False, whole_blocks=False)
                n = llm.n_tokens
                first = log_softmax(llm._ctx.get_logits())
                scores = []
                batch = llm._batch
                for tokens in encoded:
                    # Private API, as in `_prefill`: forget the previous option.
                    llm._ctx.kv_cache_seq_rm(-1, n, -1)
                    total = float(first[tokens[0]])
                    if len(tokens) > 1:
                        batch.set_batch(batch=tokens[:-1], n_past=n, logits_all=True)
                        llm._ctx.decode(batch)
                        total += sum(float(log_softmax(llm._ctx.get_logits_ith(i))[t])
                                     for i, t in enumerate(tokens[1:]))
                    scores.append(total)
                llm._ctx.kv_cache_seq_rm(-1, n, -1)
                llm.n_tokens = n
            except RuntimeError as exc:
                llm.reset()
                raise ModelError(f"the model failed while scoring options: {exc}") from None
        return scores

    def _prefill(self, tokens: list[int], stopped, whole_blocks: bool = True,
                 lead: int = 0) -> int:
        """Evaluate the prompt in blocks fixed from its start (the first
        `lead` tokens, then `prefill_block` at a time), checking for a stop
        between blocks, and reuse the KV cache of the prefix shared with the
        previous call, in whole blocks (`_reusable`; `whole_blocks=False`:
        all of it, in `n_batch` chunks). Returns how many tokens were
        reused."""
        llm = self._model()
        if whole_blocks:
            reuse = self._reusable(llm, tokens, lead)
        else:
            reuse = self._shared_prefix(llm, tokens)
        # Private API, as in Llama.generate: drop the KV cells past the prefix.
        if reuse > 0 and not llm._ctx.kv_cache_seq_rm(-1, reuse, -1):
            reuse = 0
        if reuse:
            llm.n_tokens = reuse
        else:
            llm.reset()
        if whole_blocks:
            self._held_lead = lead
            chunk = max(1, self.config.prefill_block)
            starts = ([0] if reuse < lead else []) + \
                list(range(max(reuse, lead), len(tokens), chunk))
            ends = starts[1:] + [len(tokens)]
        else:
            chunk = max(1, self.config.n_batch)
            starts = list(range(reuse, len(tokens), chunk))
            ends = [min(i + chunk, len(tokens)) for i in starts]
        for start, end in zip(starts, ends):
            if stopped():
                llm.reset()       # a half-filled prompt must not look cached
                break
            llm.eval(tokens[start:end])
        return reuse


def block_floor(n: int, block: int) -> int:
    """`n` rounded down to a whole number of `block`s."""
    return n - n % max(1, block)
