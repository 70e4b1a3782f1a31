"""`SparseEngine`: prefill a document once, answer many questions over it.

`prefill_document` builds (or reuses) the document's KV cache on disk;
`answer` streams greedy token ids for a prompt over one or more caches.
A follow-up question reuses the stored caches, so its time to first token
is the cost of its own tokens only.
"""
from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator

import torch
from torch import Tensor

from .attention import SparseAttention, SparseConfig
from .question_pick import question_forward
from .attribution import Attribution
from .kv_build import build_cache
from .kvstore import (KVCache, KVCacheError, PrefillConfig, cache_dir, open_cache,
                      store_token_ids, tokens_hash)
from .model import Transformer, from_transformers, load_hf_model


@dataclass
class EngineConfig:
    prefill: PrefillConfig = field(default_factory=PrefillConfig)
    sparse: SparseConfig = field(default_factory=SparseConfig)
    placement: str = "mmap"     # where K/V blocks live: "mmap", "pinned" or "device"
    static_decode: str = "auto"  # the graph-captured decode step: "auto" (CUDA), "on", "off"
    static_compile: bool = False  # torch.compile it too (faster steps, a slow first answer)

    def __post_init__(self) -> None:
        if self.static_decode not in ("auto", "on", "off"):
            raise ValueError(f"static_decode must be auto, on or off, not {self.static_decode!r}")


@dataclass
class AnswerStats:
    prompt_tokens: int = 0
    generated: int = 0
    ttft_s: float = 0.0                 # prompt forward + first token
    decode_s: list[float] = field(default_factory=list)   # per later token
    selected_tokens: int = 0            # document tokens attended per head besides sinks
    local_start: int = 0                # position of the first prompt token
    everything: bool = False

    @property
    def decode_ms_per_token(self) -> float:
        return 1000 * sum(self.decode_s) / len(self.decode_s) if self.decode_s else 0.0


class AnswerStream:
    """Iterate for token ids; `stats` and `attribution` are complete once exhausted."""

    def __init__(self, engine: "SparseEngine", caches: list[KVCache], prompt: list[int],
                 max_new_tokens: int, stop_ids: Iterable[int],
                 ranges: list[list[tuple[int, int]] | None] | None = None,
                 query: list[int] | None = None):
        if not prompt:
            raise ValueError("the prompt has no tokens")
        check_tokens(prompt, engine.model.cfg.vocab_size, "prompt")
        self.engine, self.caches, self.prompt = engine, caches, prompt
        self.max_new_tokens, self.stop_ids = max_new_tokens, set(stop_ids)
        self.attention = SparseAttention(engine.model.cfg, caches, engine.config.sparse,
                                         local_max=len(prompt) + max_new_tokens,
                                         ranges=ranges)
        if query:
            check_tokens(query, engine.model.cfg.vocab_size, "query")
            self.attention.query_ids = torch.tensor(query, dtype=torch.long)
        self.stats = AnswerStats(prompt_tokens=len(prompt),
                                 selected_tokens=self.attention.plan.n_select
                                 * self.attention.block,
                                 local_start=self.attention.plan.local_start,
                                 everything=self.attention.plan.everything)
        self.attribution: Attribution | None = None

    @torch.no_grad()
    def __iter__(self) -> Iterator[int]:
        model, attn = self.engine.model, self.attention
        ids = torch.tensor(self.prompt, dtype=torch.long, device=model.device)
        t0 = time.perf_counter()
        logits = question_forward(model, ids, attn, last_only=True)
        attn.record = True
        if self.engine.uses_static(attn):
            yield from self._static(int(logits[-1].argmax()), t0)
            return
        for step in range(self.max_new_tokens):
            token = int(logits[-1].argmax())
            now = time.perf_counter()
            if step == 0:
                self.stats.ttft_s = now - t0
            else:
                self.stats.decode_s.append(now - t0)
            t0 = now
            self.stats.generated += 1
            yield token
            if token in self.stop_ids or step == self.max_new_tokens - 1:
                break
            logits = model(torch.tensor([token], device=model.device), attn)
        self.attribution = attn.attribution()

    def _static(self, first: int, t0: float) -> Iterator[int]:
        """The answer's tokens through the fixed-shape step (one graph replay
        each); the first token is out before the step is captured."""
        from .static_decode import greedy

        self.stats.ttft_s = time.perf_counter() - t0
        self.stats.generated = 1
        yield first
        if first not in self.stop_ids and self.max_new_tokens > 1:
            decoder = self.engine.static_decoder(self.attention)
            t0 = time.perf_counter()
            for token in greedy(decoder, first, self.max_new_tokens - 1, self.stop_ids):
                now = time.perf_counter()
                self.stats.decode_s.append(now - t0)
                t0 = now
                self.stats.generated += 1
                yield token
        self.attribution = self.attention.attribution()


class SparseEngine:
    def __init__(self, model: Transformer, model_id: str, kv_root: Path | str,
                 config: EngineConfig | None = None):
        self.model, self.model_id, self.kv_root = model, model_id, Path(kv_root)
        self.config = config or EngineConfig()

    @classmethod
    def from_file(cls, path: Path | str, kv_root: Path | str, *, mode: str | None = None,
                  device: str = "cpu", model_id: str | None = None,
                  config: EngineConfig | None = None) -> "SparseEngine":
        """Load a GGUF or HF directory. Default weights: int8 on CPU, bf16 on CUDA."""
        mode = mode or ("int8" if device == "cpu" else "bfloat16")
        model = from_transformers(load_hf_model(path), mode=mode, device=device)
        return cls(model, model_id or model_identity(path), kv_root, config)

    def uses_static(self, attn: SparseAttention) -> bool:
        """Whether this answer decodes through the graph-captured step: not
        when off, on a CPU ("auto"), over several caches, with int8/int4
        weights, or with unselected blocks summarised while the selection can
        move. On a GPU the dynamic step is bound by kernel launches."""
        how = self.config.static_decode
        if how == "off" or (how == "auto" and self.model.device.type != "cuda"):
            return False
        cache = attn.caches[0]
        readable = cache.device.type == "cpu" or cache.placement in ("pinned", "device")
        # summaries of the left-out blocks need a selection fixed by the question
        summarised = attn.summarises() and attn.config.pin_fraction < 1.0
        if len(attn.caches) != 1 or self.model.mode not in ("float32", "bfloat16") \
                or not readable or summarised:
            if how == "on":
                raise ValueError("the static decode step needs one document cache, float32 "
                                 "or bfloat16 weights, summaries only with every block "
                                 "pinned and, on a GPU, pinned or device K/V "
                                 f"({len(attn.caches)} caches, {self.model.mode} weights, "
                                 f"{cache.placement} K/V, unselected "
                                 f"{attn.config.unselected}, pin {attn.config.pin_fraction})")
            return False
        return True

    def static_decoder(self, attn: SparseAttention):
        """The fixed-shape decode step for `attn` after its question, captured."""
        from .static_decode import StaticConfig, StaticDecoder

        decoder = StaticDecoder(self.model, attn, StaticConfig(compile=self.config.static_compile))
        decoder.capture()
        return decoder

    def cache_path(self, key: str) -> Path:
        return cache_dir(self.kv_root, self.model_id, key)

    def prefill_document(self, tokens: list[int], key: str | None = None, *,
                         metadata: dict | None = None) -> KVCache:
        """The document's cache: reused when a complete one for the same tokens
        exists under `key` (e.g. the document's sha256), else built."""
        check_tokens(tokens, self.model.cfg.vocab_size, "document")
        key = key or tokens_hash(tokens)
        path = self.cache_path(key)
        if (path / "meta.json").exists():
            try:
                cache = self.open(key)
                if cache.tokens_sha256 == tokens_hash(tokens):
                    if cache.token_ids is None:       # built before token ids were kept
                        try:
                            cache.token_ids = store_token_ids(path, tokens)
                        except OSError:               # a read-only or full disk: keep them here
                            cache.token_ids = torch.tensor(tokens, dtype=torch.long)
                    return cache
            except KVCacheError:
                pass            # stale or damaged: rebuild below
        return build_cache(self.model, tokens, path, self.config.prefill, metadata=metadata,
                           placement=self.config.placement)

    def open(self, key: str) -> KVCache:
        return open_cache(self.cache_path(key), device=self.model.device,
                          placement=self.config.placement)

    def answer(self, caches: KVCache | list[KVCache], prompt: list[int],
               max_new_tokens: int = 256, stop_ids: Iterable[int] = (), *,
               ranges: list[list[tuple[int, int]] | None] | None = None,
               query: list[int] | None = None) -> AnswerStream:
        """Greedy answer over whole documents (whole-document mode) or, with
        `ranges`, over the blocks of the given token ranges per cache only
        (retrieval-first mode: the context selector's candidates). `query`:
        the question's own tokens for the lexical match (default: the prompt)."""
        caches = [caches] if isinstance(caches, KVCache) else list(caches)
        return AnswerStream(self, caches, prompt, max_new_tokens, stop_ids, ranges, query)

    @torch.no_grad()
    def prompt_logits(self, caches: KVCache | list[KVCache], prompt: list[int]) -> Tensor:
        """Logits [T, vocab] of every prompt token (checks and benchmarks)."""
        caches = [caches] if isinstance(caches, KVCache) else list(caches)
        attn = SparseAttention(self.model.cfg, caches, self.config.sparse, local_max=len(prompt))
        ids = torch.tensor(prompt, dtype=torch.long, device=self.model.device)
        return question_forward(self.model, ids, attn)


def check_tokens(tokens: list[int], vocab_size: int, what: str) -> None:
    """Token ids from another tokenizer would index past the embedding table."""
    bad = [t for t in tokens if not 0 <= t < vocab_size]
    if bad:
        raise ValueError(f"{what} has {len(bad)} token ids outside the model's vocabulary "
                         f"of {vocab_size} (first: {bad[0]}); was it tokenized for another model?")


def model_identity(path: Path | str) -> str:
    """Folder name for a model's caches: its name plus a hash of its weights,
    so caches of other weights are never mixed up."""
    path = Path(path)
    h = hashlib.sha256()
    files = sorted(p for p in path.iterdir() if p.is_file()) if path.is_dir() else [path]
    for f in files:
        with open(f, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 22), b""):
                h.update(chunk)
    return f"{path.stem}-{h.hexdigest()[:12]}"
